"""Faults and bad input: unreadable files, damaged index files, kill -9, a full disk, two builds at once,
readers during a rebuild. Each test reproduces one failure of issue 12 and asserts the fixed behaviour on
the bundled sample lake (docs/robustness.md lists them all)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakeql
from lakeql.catalog import DamagedCatalogWarning
from lakeql.connection import open_lake
from lakeql.demo import SAMPLE_LAKE
from lakeql.doctor import diagnose
from lakeql.errors import CorruptIndexError
from lakeql.store import Store

OPTS = {"capabilities": ["joins", "ngrams"], "joins_semantic": False, "discovery": False,
        "ngram": ["python.modules.docstring"]}
CLI_OPTS = ["--only", "joins", "--only", "ngrams", "--no-joins-semantic", "--no-discovery",
            "--ngram", "python.modules.docstring", "--quiet"]
CAPS = ["joins", "ngrams"]
PHRASE_COUNT = 24  # ngram_count('python.modules', 'docstring', 'the file') on the sample lake
LAKEQL = [sys.executable, "-m", "lakeql.cli"]


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LAKEQL, *args], capture_output=True, text=True, timeout=timeout, **kw)


def answers(lake: Path, index_dir: Path | None = None) -> tuple:
    """What a fresh connection answers: n-gram count, best join for flights.carrier, a row count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con, _ = open_lake(lake, index_dir=index_dir, capabilities=CAPS)
    try:
        n = con.execute("SELECT ngram_count('python.modules', 'docstring', 'the file')").fetchone()[0]
        best = con.execute("SELECT candidate_table, candidate_column FROM "
                           "joinable('flights.flights', 'carrier', k := 1)").fetchone()
        rows = con.execute("SELECT count(*) FROM flights.flights WHERE dep_delay > ?", [60]).fetchone()[0]
        return n, best, rows
    finally:
        con.close()


EXPECTED = (PHRASE_COUNT, ("flights.airlines", "carrier"), 328)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The sample lake with its index (joins + n-grams of python.modules.docstring), built once."""
    lake = tmp_path_factory.mktemp("built") / "lake"
    shutil.copytree(SAMPLE_LAKE, lake)
    lakeql.index(lake, progress=False, **OPTS)
    assert answers(lake) == EXPECTED
    return lake


@pytest.fixture
def lake(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built lake (data and index) that a test may damage."""
    dst = tmp_path / "lake"
    shutil.copytree(built, dst)
    return dst


def index_file(lake: Path, pattern: str) -> Path:
    hits = sorted((lake / ".lakeql").glob(pattern))
    assert hits, pattern
    return hits[0]


# ----------------------------------------------------------------------------------- isolation
def test_unreadable_file_is_left_out_everywhere(tmp_path: Path) -> None:
    """Issue 12, failure 1: a corrupt Parquet file made every connect fail with KeyError."""
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE, lake)
    (lake / "flights" / "broken.parquet").write_bytes(
        (lake / "flights" / "planes.parquet").read_bytes()[:3000])
    (lake / "flights" / "parts").mkdir()
    shutil.copy(lake / "flights" / "airlines.parquet", lake / "flights" / "parts" / "a.parquet")
    (lake / "flights" / "parts" / "b.parquet").write_bytes(b"PAR1 garbage")
    res = run_cli("index", str(lake), *CLI_OPTS)
    assert res.returncode == 0, res.stderr
    assert "broken.parquet" in res.stderr and "b.parquet" in res.stderr
    res = run_cli("sql", "--lake", str(lake), "SELECT 1 AS one", "--format", "csv")
    assert res.returncode == 0 and res.stdout.split() == ["one", "1"], res.stderr
    assert answers(lake) == EXPECTED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con, _ = open_lake(lake, capabilities=CAPS)
    status = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT table_name, status, error FROM lakeql_tables()").fetchall()}
    assert status["flights.broken"][0] == "error" and "magic bytes" in status["flights.broken"][1]
    assert status["flights.parts"][0] == "partial" and "b.parquet" in status["flights.parts"][1]
    assert con.execute("SELECT count(*) FROM flights.parts").fetchone() == (16,)
    # the partial table is indexed and not stale: joinable answers over it
    hits = con.execute("SELECT candidate_table FROM joinable('flights.parts', 'carrier', k := 5)").fetchall()
    assert ("flights.airlines",) in hits
    # the wholly unreadable table is named as such, with the fix (was "unknown table")
    for name in ("flights.broken", "broken"):
        with pytest.raises(duckdb.Error, match=r"none of its files could be read.*broken\.parquet.*refresh"):
            con.execute("SELECT * FROM joinable(?, 'carrier')", [name]).fetchall()
    assert {f.subject.split(" ")[0] for f in diagnose(lake).findings if f.area == "lake"} == {
        "flights.broken", "flights.parts"}


def test_files_appearing_or_vanishing_after_indexing(lake: Path) -> None:
    """A half-uploaded file appearing, or a table's file vanishing, after indexing never breaks connect."""
    (lake / "flights" / "incoming.parquet").write_bytes(b"PAR1\x00\x00 half uploaded")
    (lake / "python" / "extra").mkdir()
    (lake / "python" / "extra" / "part-0.parquet").write_bytes(b"PAR1")
    (lake / "flights" / "planes.parquet").unlink()
    with pytest.warns(UserWarning, match="incoming.parquet"):
        con, _ = open_lake(lake, capabilities=CAPS)
    rows = dict(con.execute("SELECT table_name, status FROM lakeql_tables()").fetchall())
    assert rows["flights.incoming"] == "error" and rows["python.extra"] == "error"
    assert "flights.planes" not in rows and rows["flights.flights"] == "ok"
    assert con.execute("SELECT count(*) FROM flights.weather").fetchone()[0] > 0
    assert answers(lake) == EXPECTED


# ----------------------------------------------------------------------------------- integrity
DAMAGE = [
    ("ngram/*/shard-*/offsets.npy", "zero"),
    ("ngram/*/shard-*/rows.npy", "truncate"),
    ("ngram/*/shard-*/sup.npy", "delete"),
    ("ngram/*/shard-*/words/offsets.npy", "zero"),
    ("joins/lake/columns.parquet", "zero"),
    ("joins/lake/columns.parquet", "truncate"),
    ("joins/lake/tables.json", "delete"),
]
REFRESH_ONLY = [  # damage the joins loader tolerates (the table is left out): --refresh must repair it
    ("column_profile/flights.airlines-*/hashes.parquet", "zero"),
    ("column_profile/flights.airlines-*/columns.parquet", "delete"),
]


@pytest.mark.parametrize("pattern, how", REFRESH_ONLY)
def test_refresh_repairs_damaged_column_profiles(lake: Path, pattern: str, how: str) -> None:
    damage(index_file(lake, pattern), how)
    assert any(f.area == "index" and "column_profile flights.airlines" in f.subject
               for f in diagnose(lake).findings)
    res = run_cli("index", "--refresh", str(lake), *CLI_OPTS)
    assert res.returncode == 0, res.stderr
    assert answers(lake) == EXPECTED
    assert diagnose(lake).healthy


def damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
        return
    start = 128 if path.suffix == ".npy" else 4  # keep the .npy header: damage the values
    before = bytes(data)
    data[start:] = bytes(len(data) - start)
    assert bytes(data) != before
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("pattern, how", DAMAGE)
def test_damaged_index_file_is_an_error_and_refresh_repairs_it(lake: Path, pattern: str, how: str) -> None:
    """Failure 7: zeroed offsets.npy made ngram_count return 2 instead of 24, a zeroed join index file changed
    joinable's answer; failure 5: a deleted tables.json was not repaired by --refresh. Now every damaged
    file is a CorruptIndexError naming --refresh, which repairs it."""
    damage(index_file(lake, pattern), how)
    with pytest.raises(Exception, match=r"(damaged|missing).*lakeql index --refresh"):
        answers(lake)
    store = Store(lake / ".lakeql")
    assert any(store.damage(e) for e in store.entries())
    assert any(f.area == "index" for f in diagnose(lake).findings)
    res = run_cli("index", "--refresh", str(lake), *CLI_OPTS)
    assert res.returncode == 0, res.stderr
    assert answers(lake) == EXPECTED
    assert diagnose(lake).healthy


def test_verify_raises_corrupt_index_error(lake: Path) -> None:
    store = Store(lake / ".lakeql")
    entry = store.find("ngram", "python.modules", "docstring")
    store.verify(entry)
    damage(index_file(lake, "ngram/*/shard-*/offsets.npy"), "zero")
    with pytest.raises(CorruptIndexError, match="offsets.npy fails its checksum.*--refresh"):
        store.verify(entry)


@pytest.mark.parametrize("how", ["delete", "truncate"])
def test_damaged_catalog_never_breaks_connect_and_index_repairs_it(lake: Path, how: str) -> None:
    """Failure 5: a deleted or truncated catalog/columns.parquet broke every connection, and the advised
    'lakeql index LAKE' failed with the same error."""
    damage(lake / ".lakeql" / "catalog" / "columns.parquet", how)
    with pytest.warns(DamagedCatalogWarning, match="lakeql index LAKE"):  # when the catalog is read
        con, _ = open_lake(lake, capabilities=CAPS)
        assert con.execute("SELECT count(*) FROM lakeql_columns() WHERE table_name = 'flights.flights'"
                           ).fetchone() == (19,)
    res = run_cli("index", str(lake), *CLI_OPTS)
    assert res.returncode == 0, res.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedCatalogWarning)
        assert answers(lake) == EXPECTED
    assert diagnose(lake).healthy


def test_deleted_index_folder_is_rebuilt_by_refresh(lake: Path) -> None:
    """Failure 5: a deleted index folder said --refresh, which did not rebuild it."""
    shutil.rmtree(index_file(lake, "ngram/*"))
    shutil.rmtree(lake / ".lakeql" / "joins" / "lake")
    with pytest.raises(Exception, match="lakeql index --refresh"):
        answers(lake)
    assert run_cli("index", "--refresh", str(lake), *CLI_OPTS).returncode == 0
    assert answers(lake) == EXPECTED


def test_deleted_manifest_says_so_and_names_the_build(lake: Path) -> None:
    """A deleted indexes.parquet: every index reads as not built; the error says the manifest is missing
    (not just 'no ngram index') and names the build of the index asked for, which repairs it."""
    (lake / ".lakeql" / "indexes.parquet").unlink()
    with pytest.raises(Exception, match=r"no ngram index for python.modules.docstring: the index manifest "
                                        r".*indexes.parquet' is missing .*'lakeql index LAKE --ngram "
                                        r"python.modules.docstring'"):
        answers(lake)
    res = run_cli("index", "--refresh", str(lake), *CLI_OPTS)
    assert res.returncode == 0, res.stderr
    assert answers(lake) == EXPECTED


def test_refresh_without_flags_rebuilds_a_damaged_table_index(lake: Path) -> None:
    """The damaged index of a column is rebuilt by a bare --refresh (no --ngram flag repeated)."""
    damage(index_file(lake, "ngram/*/shard-*/offsets.npy"), "zero")
    res = run_cli("index", "--refresh", str(lake), "--only", "ngrams", "--quiet")
    assert res.returncode == 0, res.stderr
    assert answers(lake) == EXPECTED
    assert diagnose(lake).healthy


def test_index_files_respect_the_umask(built: Path) -> None:
    """Failure 8: index files were created 0600 (mkstemp), unreadable to other users of a shared lake."""
    mask = os.umask(0)
    os.umask(mask)
    files = [p for p in (built / ".lakeql").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert files
    modes = {p.stat().st_mode & 0o777 for p in files}
    assert modes == {0o666 & ~mask}, sorted(oct(m) for m in modes)
    dirs = {p.stat().st_mode & 0o777 for p in (built / ".lakeql").rglob("*") if p.is_dir()}
    assert dirs == {0o777 & ~mask}


def test_doctor_reports_and_repairs(lake: Path) -> None:
    damage(index_file(lake, "joins/lake/columns.parquet"), "zero")
    (lake / ".lakeql" / "ngram" / ".leftover.99999999-abcd.tmp").mkdir()  # a dead build's temp folder
    res = run_cli("doctor", str(lake))
    assert res.returncode == 1
    assert "columns.parquet fails its checksum" in res.stdout and "leftover" in res.stdout
    res = run_cli("doctor", str(lake), "--repair", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all well" in res.stdout.splitlines()[0]
    assert not (lake / ".lakeql" / "ngram" / ".leftover.99999999-abcd.tmp").exists()
    assert answers(lake) == EXPECTED


# ----------------------------------------------------------------------------------- concurrency
def test_two_builds_serialize(lake: Path) -> None:
    store = Store(lake / ".lakeql")
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with store.build_lock():
            held.set()
            release.wait(60)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        res = run_cli("index", "--refresh", "--no-wait", str(lake), *CLI_OPTS)
        assert res.returncode == 2
        assert (f"lakeql: error: another lakeql index is running on this lake (pid {os.getpid()})"
                in res.stderr.strip().splitlines()[-1])
        proc = subprocess.Popen([*LAKEQL, "index", "--refresh", str(lake), *CLI_OPTS[:-1]],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = proc.stderr.readline()  # printed before it blocks on the lock
        want = f"another lakeql index is running on this lake (pid {os.getpid()}); waiting..."
        assert first.strip() == want
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for the lock, not failing
    finally:
        release.set()
        t.join()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_readers_during_rebuilds_see_old_or_new(lake: Path) -> None:
    """Connections opened while full rebuilds run answer exactly as before: never a mix, never an error."""
    proc = subprocess.Popen(
        ["bash", "-c", " && ".join([" ".join([*LAKEQL, "index", str(lake), *CLI_OPTS])] * 2)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, errors = [], []

    def reader() -> None:
        while proc.poll() is None:
            try:
                seen.append(answers(lake))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.returncode == 0, proc.stderr.read()
    assert not errors, errors[:3]
    assert seen and set(seen) == {EXPECTED}


# ----------------------------------------------------------------------------------- kill -9
@pytest.fixture(scope="module")
def build_seconds(built: Path) -> float:
    """How long a full rebuild of the sample lake takes here (to spread the kill points over it)."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "lake"
        shutil.copytree(built, dst)
        t0 = time.monotonic()
        assert run_cli("index", str(dst), *CLI_OPTS).returncode == 0
        return time.monotonic() - t0


@settings(max_examples=4, deadline=None, derandomize=True)
@given(fraction=st.floats(min_value=0.0, max_value=1.0))
def test_kill_9_leaves_the_previous_index_usable(built: Path, build_seconds: float, fraction: float) -> None:
    """kill -9 of a full rebuild at any point: the previous index still answers, the next build repairs
    everything and removes the dead build's temp files."""
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        shutil.copytree(built, lake)
        proc = subprocess.Popen([*LAKEQL, "index", str(lake), *CLI_OPTS], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(fraction * build_seconds)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert answers(lake) == EXPECTED
        res = run_cli("index", "--refresh", str(lake), *CLI_OPTS)
        assert res.returncode == 0, res.stderr
        assert answers(lake) == EXPECTED
        diag = diagnose(lake)
        assert diag.healthy, diag.lines()
        leftovers = [p for p in (lake / ".lakeql").rglob("*") if ".tmp" in p.name or ".old-" in p.name]
        assert not leftovers


# ----------------------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path: Path):
    """A tmpfs of 8 MB mounted for the test (root only); yields (mount point, fill(free_bytes))."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")

    def fill(leave: int) -> None:
        free = shutil.disk_usage(mnt).free
        with open(mnt / "filler", "wb") as fh:
            fh.write(b"\0" * max(0, free - leave))

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_keeps_the_good_index_and_says_so(built: Path, small_disk) -> None:
    """Failure 6: on a full disk lakeql index died with SIGBUS (exit 135, no message), or went on after
    'No space left on device', exited 0 and replaced the good join index with a degraded one."""
    mnt, fill = small_disk
    lake = mnt.parent / "lake"
    shutil.copytree(built, lake, ignore=shutil.ignore_patterns(".lakeql"))
    idx = mnt / "idx"
    res = run_cli("index", str(lake), "--index-dir", str(idx), *CLI_OPTS)
    assert res.returncode == 0, res.stderr
    assert answers(lake, idx) == EXPECTED
    need = sum(p.stat().st_size for p in idx.rglob("*") if p.is_file())  # a rebuild writes about this
    for leave in (need // 2, need // 8, 20_000):
        fill(leave)
        res = run_cli("index", str(lake), "--index-dir", str(idx), *CLI_OPTS)
        assert res.returncode == 2, (leave, res.returncode, res.stderr[-500:])  # never SIGBUS (135/-7)
        last = res.stderr.strip().splitlines()[-1]
        assert "no space left on the device" in last and "previous index is kept" in last
        assert answers(lake, idx) == EXPECTED
        (mnt / "filler").unlink()
    assert run_cli("index", "--refresh", str(lake), "--index-dir", str(idx), *CLI_OPTS).returncode == 0
    assert diagnose(lake, idx).healthy


def test_disk_too_small_for_a_first_build(built: Path, small_disk) -> None:
    mnt, fill = small_disk
    lake = mnt.parent / "lake"
    shutil.copytree(built, lake, ignore=shutil.ignore_patterns(".lakeql"))
    fill(300_000)
    res = run_cli("index", str(lake), "--index-dir", str(mnt / "idx"), *CLI_OPTS)
    assert res.returncode == 2, res.stderr[-500:]
    assert "no space left on the device" in res.stderr.strip().splitlines()[-1]


def test_open_memmap_on_a_full_disk_is_enospc_not_sigbus(small_disk) -> None:
    """A sparse memory-mapped .npy on a full disk kills the process with SIGBUS at the first write;
    lakeql.store.open_memmap reserves the blocks first, so it is an OSError(ENOSPC) instead."""
    import errno

    mnt, fill = small_disk
    fill(64 * 1024)
    code = ("import numpy as np; from lakeql.store import open_memmap\n"
            f"try:\n    a = open_memmap({str(mnt / 'big.npy')!r}, np.uint64, (1 << 20,)); a[:] = 1\n"
            "except OSError as e:\n    print('errno', e.errno)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (res.returncode, res.stderr[-300:])  # -7 would be SIGBUS
    assert res.stdout.strip() == f"errno {errno.ENOSPC}"
