"""review28: a hard review of h/leftovers5 (owned MCP temp folders, options of capabilities not built,
NFD column names, parked pooled builder databases). Each test failed on main at 8a519f9."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.errors import LakeqlError
from lakeql.options import IndexOptions

NFC_NAME = "café"
NFD_NAME = "cafe\u0301"  # as macOS writes it


def child_env(tmpdir: Path) -> dict[str, str]:
    """A child's environment: this checkout first on the path, its own ``TMPDIR``."""
    src = str(Path(lakeql.__file__).resolve().parents[1])
    return {**os.environ, "TMPDIR": str(tmpdir), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("r28") / "lake"
    (root / "shop").mkdir(parents=True)
    items = pa.table({"id": [1, 2, 3], "name": ["tea", "milk", "bread"]})
    pq.write_table(items, root / "shop" / "items.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(root, capabilities=["context"], progress=False)
    return root


# ------------------------------------------------------------------ 1. owned temp folders and fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_exiting_does_not_remove_its_parents_temp_folder(small_lake: Path,
                                                                        tmp_path: Path) -> None:
    """main: the service's ``weakref.finalize`` runs at interpreter exit in a forked child too (a gunicorn
    or celery prefork worker, a plain ``os.fork``), removing the temp folder its live parent still spills
    to. Only the process that made the folder removes it."""
    code = textwrap.dedent(f"""
        import os, sys
        from lakeql.mcp.service import LakeService
        svc = LakeService({str(small_lake)!r})
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a forked worker that ends normally: atexit handlers run
        os.waitpid(pid, 0)
        kept = svc.temp_dir.exists()
        svc.close()
        print(kept, svc.temp_dir.exists())
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=child_env(tmp_path))
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.split() == ["True", "False"]  # kept while the parent lives, removed by its close()


# ------------------------------------------------------------------ 2. options of capabilities not built
@pytest.mark.parametrize("kwargs", [
    {"capabilities": ["context"], "joins": False},  # --only context --no-joins
    {"capabilities": ["context"], "discovery": False},
    {"capabilities": ["joins"], "schemas": False},
    {"capabilities": ["joins"], "ngram_words": False},
])
def test_switching_off_a_part_of_a_capability_not_built_is_accepted(kwargs) -> None:
    """main: ``--only context --no-joins`` was refused with the fix 'add joins to capabilities' (which
    would build what ``--no-joins`` turns off). Turning a part off is met when its capability is not
    built; only an option that asks for something is refused."""
    opts = IndexOptions.from_kwargs(**kwargs)
    assert opts.core.capabilities == kwargs["capabilities"]


def test_an_option_asking_for_something_is_still_refused() -> None:
    with pytest.raises(LakeqlError, match="add 'ngrams' to capabilities"):
        IndexOptions.from_kwargs(capabilities=["joins"], ngram=["d.t.c"])
    with pytest.raises(LakeqlError, match="add 'joins' to capabilities"):
        IndexOptions.from_kwargs(capabilities=["context"], joins_semantic=True)


def test_an_unknown_capability_is_named_before_the_options_it_would_take() -> None:
    """main: ``capabilities=['ngram'], ngram=[...]`` said the option configures a capability 'this build
    leaves out' and to add 'ngrams' (then failing on 'ngram'): the typo is the error."""
    with pytest.raises(LakeqlError, match="unknown capability 'ngram'.*did you mean"):
        IndexOptions.from_kwargs(capabilities=["ngram"], ngram=["d.t.c"])


# ------------------------------------------------------------------ 3. a column that changed Unicode form
def test_a_refresh_after_a_column_changed_unicode_form_keeps_its_ngram_index(tmp_path: Path) -> None:
    """main: a file rewritten with its column in the other form (NFD on macOS, NFC elsewhere) dropped the
    column's n-gram index on refresh ('column d.menu.café is gone', naming what looks like the same
    column), although lakeql's functions take either spelling. The index follows the column."""
    root = tmp_path / "lake"
    (root / "d").mkdir(parents=True)
    path = root / "d" / "menu.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], NFD_NAME: ["black coffee", "tea", "flat coffee"]}), path)
    lakeql.index(root, ngram=[f"d.menu.{NFD_NAME}"], capabilities=["ngrams"], progress=False)
    pq.write_table(pa.table({"id": [1, 2, 3, 4], NFC_NAME: ["black coffee", "tea", "flat coffee", "coffee"]}),
                   path)
    os.utime(path, (time.time() + 5, time.time() + 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = lakeql.index(root, refresh=True, capabilities=["ngrams"], progress=False)
    assert not [w for w in caught if "is gone" in str(w.message)]
    entries = [(e.table_name, e.column_name) for e in report.store.entries("ngram")]
    assert entries == [("d.menu", NFC_NAME)]  # under the name the file has now; the old row dropped
    con = lakeql.connect(root)
    for name in (NFC_NAME, NFD_NAME):
        assert con.execute(f"SELECT ngram_count('d.menu', '{name}', 'coffee')").fetchone()[0] == 3


def test_a_column_renamed_for_real_still_drops_its_index(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    (root / "d").mkdir(parents=True)
    path = root / "d" / "menu.parquet"
    pq.write_table(pa.table({"id": [1], "body": ["black coffee"]}), path)
    lakeql.index(root, ngram=["d.menu.body"], capabilities=["ngrams"], progress=False)
    pq.write_table(pa.table({"id": [1], "text": ["black coffee"]}), path)
    os.utime(path, (time.time() + 5, time.time() + 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = lakeql.index(root, refresh=True, capabilities=["ngrams"], progress=False)
    assert [w for w in caught if "is gone" in str(w.message)]
    assert report.store.entries("ngram") == []


# ------------------------------------------------------------------ 4. the pool lock across fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_the_pool_lock_is_held_can_build(tmp_path: Path) -> None:
    """main: the idle-park timer thread (and any builder thread) takes the pool lock at any moment; a
    child forked meanwhile inherited it locked and hung for ever in its first ``pooled()``."""
    code = textwrap.dedent("""
        import os, sys, threading, time
        from lakeql.sources import buildfs
        held, release = threading.Event(), threading.Event()
        def hold():
            with buildfs._POOL_LOCK:
                held.set()
                release.wait()
        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(20)  # a hung child ends (SIGALRM: exit status -14), never left behind
            con = buildfs.pooled()
            ok = con.execute("SELECT 42").fetchone()[0] == 42
            con.close()
            os._exit(0 if ok else 3)
        release.set()
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=child_env(tmp_path))
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == "0"


# ------------------------------------------------------------------ 5. serve() in a host program
def test_serve_restores_the_hosts_signal_handlers_when_close_fails(small_lake: Path, monkeypatch) -> None:
    """main: an error in ``service.close()`` skipped ``_restore_signals``: the host program embedding
    ``serve()`` was left ignoring Ctrl-C, SIGTERM and SIGHUP."""
    import signal

    from lakeql.mcp import server as srv
    from lakeql.mcp.service import LakeService

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are the main thread's")

    class Fake:
        def run(self, *_a, **_k) -> None:
            return None

    close = LakeService.close

    def failing_close(self, wait: float = 0.0) -> None:
        close(self, wait)
        raise RuntimeError("close failed")

    monkeypatch.setattr(LakeService, "close", failing_close)
    monkeypatch.setattr(srv, "build_server", lambda service: Fake())

    def host(*_a) -> None:
        return None

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for s in before:
            signal.signal(s, host)
        with pytest.raises(RuntimeError, match="close failed"):
            srv.serve(str(small_lake), warm=False)
        assert {s: signal.getsignal(s) for s in before} == {s: host for s in before}
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_a_refresh_after_a_column_changed_unicode_form_keeps_its_embed_index(tmp_path: Path) -> None:
    """The same for an embed index (main: dropped as 'gone')."""
    root = tmp_path / "lake"
    (root / "d").mkdir(parents=True)
    path = root / "d" / "menu.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], NFD_NAME: ["black coffee", "green tea", "flat white"]}), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(root, embed=[f"d.menu.{NFD_NAME}"], capabilities=["vectors"], progress=False)
    texts = ["black coffee", "green tea", "flat white", "espresso"]
    pq.write_table(pa.table({"id": [1, 2, 3, 4], NFC_NAME: texts}), path)
    os.utime(path, (time.time() + 5, time.time() + 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = lakeql.index(root, refresh=True, capabilities=["vectors"], progress=False)
    assert not [w for w in caught if "is gone" in str(w.message)]
    assert [(e.table_name, e.column_name) for e in report.store.entries("embed")] == [("d.menu", NFC_NAME)]
    con = lakeql.connect(root)
    for name in (NFC_NAME, NFD_NAME):
        sql = f"SELECT id FROM semantic_search('d.menu', '{name}', 'coffee', k := 4)"
        ids = [r[0] for r in con.execute(sql).fetchall()]
        assert sorted(ids) == [1, 2, 3, 4]


def test_a_server_that_fails_to_start_while_warming_exits_non_zero_with_the_error(small_lake: Path,
                                                                                 tmp_path: Path) -> None:
    """main: leftovers5 put the whole start in ``try/finally``, so an error after the warm-up began (an
    unsupported mcp SDK in ``build_server``) reached the ``os._exit(0)`` meant for a warm-up stuck in
    native code: the server exited 0 and said nothing. It now prints the error and exits 1 (its temp
    folder removed)."""
    code = textwrap.dedent(f"""
        from lakeql.mcp import server
        from lakeql.mcp.service import LakeService
        LakeService.warm_running = lambda self: True  # a warm-up stuck in native code
        def unsupported(service):
            raise RuntimeError("unsupported mcp SDK: upgrade it")
        server.build_server = unsupported
        server.serve({str(small_lake)!r}, warm=False)
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=child_env(tmp_path))
    assert got.returncode == 1, (got.returncode, got.stderr[-2000:])
    assert "unsupported mcp SDK: upgrade it" in got.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("lakeql-mcp-")]


def test_a_give_back_when_no_thread_can_start_does_not_fail(monkeypatch) -> None:
    """main: a database given back outside a build starts the idle-park timer under the pool lock; when
    no thread can start (a container's pids limit: 'can't start new thread'), ``close()`` raised, failing
    the caller's work for an optimisation. The database is kept, unparked."""
    from lakeql.sources import buildfs

    def refuse(self) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(buildfs, "_BUILDS", [0])
    monkeypatch.setitem(buildfs._IDLE, "timer", None)
    monkeypatch.setattr(threading.Timer, "start", refuse)
    con = buildfs.pooled()
    root = con._root
    con.close()
    assert root in buildfs._POOL
    again = buildfs.pooled()  # still usable
    assert again.execute("SELECT 1").fetchone() == (1,)
    again.close()


def test_a_live_owner_that_refuses_signal_zero_is_alive(monkeypatch) -> None:
    """main: ``kill(pid, 0)`` answering EPERM was taken as 'another user's process holds the pid now'
    and the folder removed; a process of this user can refuse it too (SELinux/AppArmor signal rules, a
    user namespace). ``/proc`` says whether it is the recorded process (its start time)."""
    from lakeql import owned_temp

    parent = os.getppid()
    start = owned_temp.process_start(parent)
    assert start is not None

    def eperm(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(owned_temp.os, "kill", eperm)
    assert owned_temp.owner_alive(parent, start)
    assert not owned_temp.owner_alive(parent, start + 1)  # the pid reused by a later process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the abort was seen on Linux")
def test_the_interpreter_exits_cleanly_while_the_timer_parks_a_database(tmp_path: Path) -> None:
    """main: the idle-park timer is a daemon thread; an exit while it was inside DuckDB (``SET threads``)
    aborted the process: 'terminate called ... FATAL: exception not rethrown', exit status 134, in 14 of
    60 runs of a script exiting as the timer fired (0 of 30 with the timer off), or left 'Exception in
    thread lakeql-park-idle' on stderr. Exit now waits for a park in progress (~2 ms) and starts none."""
    code = textwrap.dedent("""
        import threading, time
        from lakeql.sources import buildfs
        started = threading.Event()
        real = buildfs._park
        def slow_park(root):  # the park, held inside DuckDB for a while
            started.set()
            root.execute("SELECT sum(i) FROM range(200000000) t(i)").fetchall()
            return real(root)
        buildfs._park = slow_park
        buildfs.IDLE_PARK_SECONDS = 0.1
        con = buildfs.pooled()
        con.close()
        assert started.wait(60)
        time.sleep(0.05)
        print("exiting", flush=True)
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=child_env(tmp_path))
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == "exiting"
    assert "Exception in thread" not in got.stderr and "terminate called" not in got.stderr, got.stderr
