"""The fifth leftovers session: what earlier sessions noticed and left, that a user would hit.

1. MCP temp folders: every way a server stops removes its ``$TMPDIR/lakeql-mcp-*`` folder, and the next
   server removes the folder a ``kill -9``'d one left (never a live server's, never another user's).
   A killed build leaves no worker and nothing in ``$TMPDIR``.
2. A spec for a capability that is not built (``ngram=`` with ``capabilities=['joins']``, ``--embed`` with
   ``--only context``) is an error naming the fix, not silently ignored.
3. Column names in NFD (as macOS writes them) are reachable by their NFC spelling.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.errors import LakeqlError


def child_env(tmpdir: Path) -> dict[str, str]:
    """A server's environment: this checkout first on the path, its own ``TMPDIR``."""
    src = str(Path(lakeql.__file__).resolve().parents[1])
    return {**os.environ, "TMPDIR": str(tmpdir), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> Path:
    """A two-table lake with a context index (all an MCP server needs)."""
    root = tmp_path_factory.mktemp("l5") / "lake"
    (root / "shop").mkdir(parents=True)
    items = pa.table({"id": [1, 2, 3], "name": ["tea", "milk", "bread"]})
    pq.write_table(items, root / "shop" / "items.parquet")
    pq.write_table(pa.table({"item_id": [1, 1, 3], "qty": [2, 5, 1]}), root / "shop" / "orders.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(root, capabilities=["context"], progress=False)
    return root


def mcp_folders(tmpdir: Path) -> list[Path]:
    return sorted(p for p in tmpdir.iterdir() if p.name.startswith("lakeql-mcp-"))


def start_server(lake: Path, tmpdir: Path) -> subprocess.Popen:
    """``python -m lakeql.mcp`` on stdio, its stdin kept open; returns once its temp folder exists."""
    proc = subprocess.Popen([sys.executable, "-m", "lakeql.mcp", "--lake", str(lake), "--no-warm"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=child_env(tmpdir))
    deadline = time.monotonic() + 120
    while not mcp_folders(tmpdir):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the server never made its temp folder"
        time.sleep(0.05)
    return proc


# ------------------------------------------------------------------ 1. MCP temp folders
@pytest.mark.parametrize("how", ["eof", "SIGTERM", "SIGINT", "SIGHUP"])
def test_mcp_server_removes_its_temp_folder_on_every_stop(small_lake: Path, tmp_path: Path, how: str) -> None:
    """Stdin closed, or a stop signal at once after the folder appears (main: SIGTERM before the
    handler was installed killed the server with its folder; SIGHUP was never handled)."""
    proc = start_server(small_lake, tmp_path)
    try:
        if how == "eof":
            proc.stdin.close()
        else:
            proc.send_signal(getattr(signal, how))
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert mcp_folders(tmp_path) == [], proc.stderr.read().decode()[-2000:]


def test_mcp_server_removes_its_temp_folder_when_it_fails_to_start(small_lake: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """An error after the service opened (here: building the MCP server) used to leave the folder."""
    from lakeql.mcp import server

    def broken(_service):
        raise RuntimeError("unsupported SDK")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(server, "build_server", broken)
    with pytest.raises(RuntimeError, match="unsupported SDK"):
        server.serve(str(small_lake), warm=False)
    assert mcp_folders(tmp_path) == []


def test_unclosed_service_removes_its_temp_folder(small_lake: Path, tmp_path: Path, monkeypatch) -> None:
    """``LakeService(lake).list_domains()`` without close() (a script, a test) leaked one folder a call."""
    from lakeql.mcp.service import LakeService

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert "shop" in LakeService(small_lake).list_domains()
    gc.collect()
    assert mcp_folders(tmp_path) == []


def test_next_server_removes_a_killed_servers_folder_only(small_lake: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    """``kill -9`` leaves the folder; the next server removes it, but keeps a live server's folder, a
    folder without an owner record (an older lakeql's) and another user's."""
    from lakeql.mcp.service import LakeService

    live = start_server(small_lake, tmp_path)
    live_folder = mcp_folders(tmp_path)
    (tmp_path / "k").mkdir()
    killed = start_server(small_lake, tmp_path / "k")
    killed_folder = mcp_folders(tmp_path / "k")
    deadline = time.monotonic() + 60  # (review28) the folder appears before its owner file: a kill
    while not (killed_folder[0] / "owner").exists() and time.monotonic() < deadline:  # between left it
        time.sleep(0.01)  # unowned, kept by design (1 in ~4 runs at load 6)
    killed.kill()
    killed.wait()
    assert mcp_folders(tmp_path / "k") == killed_folder  # SIGKILL cannot be handled
    dead = tmp_path / killed_folder[0].name
    os.replace(killed_folder[0], dead)  # beside the live one
    legacy = tmp_path / "lakeql-mcp-abc123"
    legacy.mkdir()
    others = None
    from lakeql.owned_temp import where

    if os.getuid() == 0:  # root can make a folder of another user with a dead owner
        others = tmp_path / f"lakeql-mcp-{killed.pid}-other"
        others.mkdir()
        (others / "owner").write_text(f"{killed.pid} - {where()}\n")
        os.chown(others, 65534, 65534)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        svc = LakeService(small_lake)
        try:
            now = mcp_folders(tmp_path)
            assert not dead.exists()
            assert live_folder[0] in now and legacy in now
            assert others is None or others in now
            assert svc.temp_dir in now
        finally:
            svc.close()
        assert not svc.temp_dir.exists()
    finally:
        live.stdin.close()
        live.wait(timeout=60)
    assert not live_folder[0].exists()


def test_owner_record_is_checked_strictly(tmp_path: Path) -> None:
    """A malformed owner file, a pid that does not match the name, a symlink, or a folder made in another
    pid namespace or host: never removed."""
    from lakeql.owned_temp import remove_stale, where

    dead_pid = 2**22 + 17  # above the default pid_max: no such process
    bad = tmp_path / f"lakeql-mcp-{dead_pid}-a"
    bad.mkdir()
    (bad / "owner").write_text("not a pid\n")
    here = where()
    other = tmp_path / f"lakeql-mcp-{dead_pid}-b"
    other.mkdir()
    (other / "owner").write_text(f"{os.getpid()} - {here}\n")
    target = tmp_path / "target"
    target.mkdir()
    (target / "owner").write_text(f"{dead_pid} - {here}\n")
    (tmp_path / f"lakeql-mcp-{dead_pid}-c").symlink_to(target)
    elsewhere = tmp_path / f"lakeql-mcp-{dead_pid}-e"  # another container or host sharing the folder
    elsewhere.mkdir()
    (elsewhere / "owner").write_text(f"{dead_pid} 12345 {'0' * 16}\n")
    gone = tmp_path / f"lakeql-mcp-{dead_pid}-d"
    gone.mkdir()
    (gone / "owner").write_text(f"{dead_pid} 12345 {here}\n")
    assert remove_stale("lakeql-mcp-", tmp_path) == [gone]
    assert bad.exists() and other.exists() and target.exists() and elsewhere.exists()


# ------------------------------------------------------------------ 1b. a killed build
def running(pid: int) -> bool:
    """Whether ``pid`` is a live, not zombie, process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_build_leaves_no_worker_and_nothing_in_tmpdir(tmp_path: Path) -> None:
    """A real ``kill -9`` of an n-gram build in its worker phase: every worker exits, the build's
    ``$TMPDIR`` stays empty, and the next build removes the temp folders it left in the index."""
    from lakeql.engine import descendants
    from lakeql.store import TEMP_RE

    lake = tmp_path / "lake"
    (lake / "t").mkdir(parents=True)
    words = [f"w{i % 997} x{i % 89} y{i % 7}" for i in range(300_000)]
    texts = [" ".join(words[i:i + 40]) for i in range(0, len(words), 40)]
    pq.write_table(pa.table({"text": texts * 4}), lake / "t" / "docs.parquet")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    idx = tmp_path / "idx"
    boot = ("import sys, lakeql.ngrams.fileshards as f; f.IN_PROCESS_BYTES = 0; "
            "from lakeql.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", boot, "index", str(lake), "--index-dir", str(idx),
                             "--only", "ngrams", "--ngram", "t.docs.text", "--ngram-shard-mb", "0.5",
                             "--ngram-jobs", "2", "-q"], env=child_env(tmpdir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    workers: set[int] = set()
    while len(workers) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the build never started its workers"
        workers = {p for p in descendants(proc.pid)
                   if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()}
        time.sleep(0.05)
    time.sleep(0.5)
    every = set(descendants(proc.pid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15 and [p for p in every if running(p)]:
        time.sleep(0.1)
    assert [p for p in every if running(p)] == [], "processes of the killed build are still running"
    assert list(tmpdir.iterdir()) == []
    assert [p for p in idx.rglob("*") if TEMP_RE.match(p.name)], "the kill came too late to test the cleanup"
    got = subprocess.run([sys.executable, "-m", "lakeql.cli", "index", str(lake), "--index-dir", str(idx),
                          "--only", "ngrams", "--ngram", "t.docs.text", "-q"], env=child_env(tmpdir),
                         capture_output=True, timeout=600)
    assert got.returncode == 0, got.stderr.decode()[-2000:]
    assert [p for p in idx.rglob("*") if TEMP_RE.match(p.name)] == []
    assert list(tmpdir.iterdir()) == []


# ------------------------------------------------------------------ 2. a spec for a capability not built
def test_a_spec_for_a_capability_not_built_is_an_error(small_lake: Path, tmp_path: Path) -> None:
    """``ngram=`` with ``capabilities=['joins']`` built joins and silently no n-gram index."""
    idx = tmp_path / "idx"
    with pytest.raises(LakeqlError, match=r"ngram= \(--ngram\) configures the 'ngrams' capability.*"
                                          r"add 'ngrams' to capabilities \(--only ngrams\), or drop it"):
        lakeql.index(small_lake, index_dir=idx, ngram=["shop.items.name"], capabilities=["joins"],
                     progress=False)
    assert not idx.exists()  # refused before anything was written
    with pytest.raises(LakeqlError, match=r"embed= \(--embed\), embed_ann= \(--embed-ann\) configure the "
                                          r"'vectors' capability"):
        lakeql.index(small_lake, index_dir=idx, embed="shop.items.name", embed_ann=True,
                     capabilities=["context", "joins"], progress=False)
    # an option at its default, or one of a capability that is built, is accepted
    from lakeql.options import IndexOptions

    default_method = IndexOptions()["vectors"].embed_method
    IndexOptions.from_kwargs(capabilities=["joins"], ngram=[], embed_method=default_method)
    IndexOptions.from_kwargs(capabilities=["ngrams"], ngram=["shop.items.name"])


def test_cli_embed_with_only_context_is_an_error(small_lake: Path, tmp_path: Path) -> None:
    got = subprocess.run([sys.executable, "-m", "lakeql.cli", "index", str(small_lake), "--index-dir",
                          str(tmp_path / "idx"), "--embed", "shop.items.name", "--only", "context"],
                         capture_output=True, text=True, env=child_env(tmp_path), timeout=300)
    assert got.returncode == 2
    assert "add 'vectors' to capabilities (--only vectors), or drop it" in got.stderr
    assert not (tmp_path / "idx").exists()


# ------------------------------------------------------------------ 3. NFD column names
NFC_NAME = "café"
NFD_NAME = "cafe\u0301"  # as macOS writes it


@pytest.fixture(scope="module")
def nfd_lake(tmp_path_factory) -> Path:
    """A table whose text column is named in NFD, another holding both forms of one name, n-gram indexed
    through the NFD spelling (an index built before lakeql accepted the NFC one)."""
    root = tmp_path_factory.mktemp("nfd") / "lake"
    (root / "d").mkdir(parents=True)
    menu = pa.table({"id": [1, 2, 3], NFD_NAME: ["black coffee", "tea with milk", "flat white coffee"]})
    pq.write_table(menu, root / "d" / "menu.parquet")
    pq.write_table(pa.table({NFC_NAME: ["composed coffee"], NFD_NAME: ["decomposed coffee"]}),
                   root / "d" / "both.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(root, ngram=[f"d.menu.{NFD_NAME}", f"d.both.{NFD_NAME}"], progress=False)
    return root


def test_lakeql_functions_take_the_nfc_spelling_of_an_nfd_column(nfd_lake: Path) -> None:
    """main: 'table d.menu has no column 'café' (did you mean café?)' for the name anyone types."""
    con = lakeql.connect(nfd_lake)
    hits = con.execute(f"SELECT id FROM ngram_search('d.menu', '{NFC_NAME}', 'coffee') ORDER BY 1").fetchall()
    assert hits == [(1,), (3,)]
    assert con.execute(f"SELECT ngram_count('d.menu', '{NFC_NAME}', 'coffee')").fetchone()[0] == 2
    assert con.execute(f"SELECT ngram_count('d.menu', '{NFD_NAME}', 'coffee')").fetchone()[0] == 2
    con.execute(f"SELECT * FROM joinable('d.menu', '{NFC_NAME}', k := 2)").fetchall()  # resolves, no error
    # both forms in one table: each spelling reaches its own column
    assert con.execute(f"SELECT ngram_count('d.both', '{NFD_NAME}', 'decomposed')").fetchone()[0] == 1
    with pytest.raises(Exception, match="no ngram index|not indexed|--ngram"):
        con.execute(f"SELECT ngram_count('d.both', '{NFC_NAME}', 'composed')").fetchone()


def test_an_existing_index_keeps_its_stored_column_name(nfd_lake: Path) -> None:
    """The index records the column as stored (NFD); a refresh, and a build naming the NFC spelling, keep
    that one index (not rebuilt, not a second one under another name)."""
    store = lakeql.index(nfd_lake, refresh=True, progress=False).store
    before = {(e.table_name, e.column_name): e.built_at for e in store.entries("ngram")}
    assert ("d.menu", NFD_NAME) in before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = lakeql.index(nfd_lake, ngram=[f"d.menu.{NFC_NAME}"], refresh=True, progress=False)
    after = {(e.table_name, e.column_name): e.built_at for e in report.store.entries("ngram")}
    assert after == before


def test_sql_with_the_nfc_spelling_says_which_spelling_binds(nfd_lake: Path) -> None:
    """DuckDB binds names byte for byte: its error (and check_sql) now give the stored spelling to copy,
    which then runs."""
    import duckdb

    from lakeql.lake import quote_ident

    con = lakeql.connect(nfd_lake)
    with pytest.raises(duckdb.BinderException) as err:
        con.execute(f'SELECT "{NFC_NAME}" FROM d.menu').fetchall()
    assert "Unicode NFD ('cafe\\u0301')" in str(err.value)
    assert f"write {quote_ident(NFD_NAME)} (copy it)" in str(err.value)
    sql = f'SELECT "{NFC_NAME}" FROM d.menu'
    problems = con.execute("SELECT severity, message, suggestion FROM check_sql(?)", [sql]).fetchall()
    assert len(problems) == 1 and problems[0][0] == "error"
    assert "stored as" in problems[0][1] and problems[0][2] in (NFD_NAME, quote_ident(NFD_NAME))
    fixed = f"SELECT {problems[0][2]} FROM d.menu ORDER BY id"
    assert con.execute(fixed).fetchall()[0] == ("black coffee",)
    sql = f'SELECT m."{NFC_NAME}" FROM d.menu m'
    got = con.execute("SELECT suggestion FROM check_sql(?)", [sql]).fetchone()[0]
    assert got in (f"m.{NFD_NAME}", f"m.{quote_ident(NFD_NAME)}")
    assert con.execute(f"SELECT {got} FROM d.menu m ORDER BY id").fetchall()[0] == ("black coffee",)


def test_cli_sql_error_names_the_stored_spelling(nfd_lake: Path) -> None:
    got = subprocess.run([sys.executable, "-m", "lakeql.cli", "sql", str(nfd_lake),
                          f'SELECT "{NFC_NAME}" FROM d.menu'], capture_output=True, text=True,
                         env=child_env(nfd_lake.parent), timeout=300)
    assert got.returncode != 0
    assert "Hint: the column is stored as" in got.stderr and "Unicode NFD" in got.stderr


# ------------------------------------------------------------------ 4. idle threads of pooled databases
def process_threads() -> int:
    time.sleep(0.3)  # a stopped thread leaves /proc/self/task shortly after
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pooled_builder_databases_hold_no_threads_between_builds(small_lake: Path, tmp_path: Path) -> None:
    """main: each kept database held ``threads - 1`` workers and 8 ``async_threads`` after the build
    (3 kept: ~27 idle threads in an MCP server or notebook). Now parked when the build ends, started again
    when a builder takes one; during a build a database given back keeps its threads."""
    from lakeql.sources import buildfs

    lakeql.index(small_lake, index_dir=tmp_path / "idx", capabilities=["joins", "context"],
                 joins_semantic=False, progress=False)
    kept = list(buildfs._POOL)
    assert kept, "the build used no pooled database"
    for root in kept:
        assert root.execute("SELECT current_setting('async_threads'), current_setting('threads')"
                            ).fetchone() == (0, 1)
    idle = process_threads()
    default = buildfs.connect()
    want = default.execute("SELECT current_setting('async_threads'), current_setting('threads')").fetchone()
    default.close()
    taken = [buildfs.pooled() for _ in kept]  # started again for a builder
    for con in taken:
        assert con.execute("SELECT current_setting('async_threads'), current_setting('threads')"
                           ).fetchone() == want
    assert process_threads() >= idle + 8 * len(kept)
    with buildfs.build_scope():
        for con in taken:
            con.close()
        assert process_threads() >= idle + 8 * len(kept)  # kept running while the build runs
    assert process_threads() <= idle + 1  # parked when it ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_database_given_back_outside_a_build_is_parked_once_idle(monkeypatch) -> None:
    """Outside a build (a Ray worker profiling table after table, a query-time profile) a give-back does
    not park at once (that would cost ~1.8 CPU ms per take): after IDLE_PARK_SECONDS without one."""
    from lakeql.sources import buildfs

    monkeypatch.setattr(buildfs, "IDLE_PARK_SECONDS", 1.0)
    con = buildfs.pooled()
    root = con._root
    con.close()
    assert root in buildfs._POOL
    assert id(root) not in buildfs._PARKED  # still running: the next take is ~0.2 ms
    again = buildfs.pooled()
    assert again._root is root
    again.close()
    deadline = time.monotonic() + 30
    while id(root) not in buildfs._PARKED and time.monotonic() < deadline:
        time.sleep(0.1)
    got = root.execute("SELECT current_setting('async_threads'), current_setting('threads')").fetchone()
    assert got == (0, 1)
