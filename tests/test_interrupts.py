"""Clean interrupts: ``kill -9`` or Ctrl-C of ``lakeql index`` leaves no worker process behind, and the
next build removes the temporary folders the dead build left.

The lake is real text: the Python standard library's ``.py`` files, one row per file, n-gram indexed in
small shards by two spawned workers (so the build is in its shard phase for a few seconds).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from testutil import require

import lakeql
from lakeql.store import TEMP_RE

TEXT_MB = 12  # of stdlib source: a few seconds of shard building on 2 busy cores
NGRAM = "code.stdlib.text"


@pytest.fixture(scope="module")
def stdlib_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupts") / "lake"
    (root / "code").mkdir(parents=True)
    paths, texts, size = [], [], 0
    for p in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in p.parts:
            continue
        try:
            t = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        paths.append(str(p.relative_to(p.parents[len(p.parents) - 1])))
        texts.append(t)
        size += len(t)
        if size > TEXT_MB * 1_000_000:
            break
    assert size > TEXT_MB * 1_000_000, "the Python standard library sources are missing"
    pq.write_table(pa.table({"path": paths, "text": texts}), root / "code" / "stdlib.parquet")
    return root


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds no memory; its new parent (PID 1) may never reap it


def start_build(lake: Path, idx: Path) -> subprocess.Popen:
    # a small build runs in-process (lakeql.ngrams.fileshards.IN_PROCESS_BYTES): force the worker pool
    boot = ("import sys, lakeql.ngrams.fileshards as f; f.IN_PROCESS_BYTES = 0; "
            "from lakeql.cli import main; sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", boot, "index", str(lake), "--index-dir", str(idx), "--only",
           "ngrams", "--ngram", NGRAM, "--ngram-shard-mb", "0.5", "--ngram-jobs", "2", "-q"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_workers(proc: subprocess.Popen, n: int = 2, timeout: float = 240) -> set[int]:
    """The build's worker pids, once ``n`` shard workers (plus the resource tracker) run."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        kids = children(proc.pid)
        workers = {k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()}
        if len(workers) >= n:
            time.sleep(1.0)  # let them start on their shards
            return children(proc.pid)
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.1)
    raise AssertionError("the build never started its shard workers")


def assert_all_exit(pids: set[int], timeout: float = 15) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and any(alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "worker processes outlived their parent"


def temp_names(idx: Path) -> list[str]:
    return [p.name for p in idx.rglob("*") if TEMP_RE.match(p.name)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_leaves_no_workers_and_next_build_cleans(stdlib_lake: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    proc = start_build(stdlib_lake, idx)
    workers = wait_for_workers(proc)
    assert len(workers) >= 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert_all_exit(workers)
    assert temp_names(idx), "the killed build should have left its temporary shard folder"
    # the next build (here one that indexes nothing new) removes the dead build's temp folders
    lakeql.index(stdlib_lake, index_dir=idx, capabilities=["ngrams"], progress=False)
    assert temp_names(idx) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_workers(stdlib_lake: Path, tmp_path: Path) -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C sends): everyone exits at once."""
    idx = tmp_path / "idx"
    proc = start_build(stdlib_lake, idx)
    workers = wait_for_workers(proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    assert_all_exit(workers)
    err = proc.stderr.read().decode()
    assert err.count("Traceback") <= 1  # the workers ignore SIGINT: no traceback per worker


def test_worker_init_exits_with_parent(tmp_path: Path) -> None:
    """A grandchild running :func:`worker_init` dies when its parent is killed (prctl or watchdog)."""
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import os, time; "
            "from lakeql.engine import worker_init; worker_init(); print(os.getpid(), flush=True); "
            "time.sleep(120)'], stdout=subprocess.PIPE)\n"
            "print(child.stdout.readline().decode().strip(), flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    grandchild = int(proc.stdout.readline())
    assert alive(grandchild)
    proc.kill()
    proc.wait()
    assert_all_exit({grandchild})


def descendants(pid: int) -> set[int]:
    """Live processes below ``pid`` in the process tree."""
    from lakeql.engine import descendants as tree

    return set(tree(pid))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_with_ray_engine_leaves_no_process(stdlib_lake: Path, tmp_path: Path) -> None:
    """``--engine ray`` without an address starts a local Ray: after a kill -9 of the build, its
    raylet, GCS, workers and agents are gone too (the agents alone would linger for a minute or more)."""
    require("ray")
    cmd = [sys.executable, "-m", "lakeql.cli", "index", str(stdlib_lake), "--index-dir", str(tmp_path / "i"),
           "--only", "ngrams", "--ngram", NGRAM, "--ngram-shard-mb", "0.5", "--engine", "ray", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    seen: set[int] = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 240:
        seen |= descendants(proc.pid)
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() if alive(p) else b"" for p in seen]
        if any(c.startswith(b"ray::") and b"Agent" not in c for c in cmdlines):  # a Ray worker runs
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    else:
        raise AssertionError("Ray never started a worker")
    seen |= descendants(proc.pid)
    assert len(seen) >= 4  # raylet, gcs, agents, a worker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert_all_exit(seen, timeout=20)


SPAWNER = """
import os, time
while True:  # a process that starts children all the time, as a raylet starting workers
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    time.sleep(0.002)
"""


def session_members(sid: int) -> set[int]:
    """Live processes of session ``sid`` (children stay in their parent's session when reparented)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out.add(int(d.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_reaper_leaves_no_child_a_dying_process_was_starting() -> None:
    """The reaper stops a tree before it kills it: a process that forks children all the time (as a
    raylet starts workers) leaves none behind, even those forked while the reaper was at work."""
    from lakeql.engine import _kill_trees, _started_at

    proc = subprocess.Popen([sys.executable, "-c", SPAWNER], start_new_session=True)
    try:
        t0 = time.monotonic()
        while len(session_members(proc.pid)) < 20 and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        assert len(session_members(proc.pid)) >= 20
        _kill_trees({proc.pid: _started_at(proc.pid)}, os.getpid())
        proc.wait(timeout=10)
        assert_all_exit(session_members(proc.pid), timeout=10)
    finally:
        for p in session_members(proc.pid):
            os.kill(p, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_reaper_spares_a_reused_pid_and_the_callers_other_children() -> None:
    """Only the processes named (pid and start time) and what runs below them are killed."""
    from lakeql.engine import _kill_trees, _started_at

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _kill_trees({other.pid: _started_at(other.pid) + 1}, os.getpid())  # a different start: a reused pid
        time.sleep(0.3)
        assert other.poll() is None
        assert alive(other.pid) and Path(f"/proc/{other.pid}/stat").read_text().split(") ")[1][0] != "T"
    finally:
        other.kill()
        other.wait()
