"""The in-process 1% append refresh (issue 10 item 4, benchmarks/results/append5.md): builder connections
from a pool of kept DuckDB databases (``lakeql.sources.buildfs.pooled``) and the discovery index's TF-IDF
products over the features present only (``union_index.tfidf_csr``, byte-equal: tests/test_refresh_floor.py).

What a pooled connection may leave behind is checked here; that a refresh after an append still equals
a full build is checked by tests/joins/test_incremental.py (every index file, byte for byte for the
discovery index) and below for a resident process that refreshes several times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.sources import buildfs


@pytest.fixture()
def empty_pool():
    """An empty pool before and after the test (another test's kept databases do not count)."""
    with buildfs._POOL_LOCK:
        buildfs._POOL.clear()
    yield buildfs._POOL
    with buildfs._POOL_LOCK:
        buildfs._POOL.clear()


def _setting(con, name: str):
    return con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]


def test_a_pooled_connection_is_kept_only_when_it_left_nothing(empty_pool, tmp_path):
    con = buildfs.pooled()
    root = con._root
    assert _setting(con, "TimeZone") == buildfs.BUILD_TIME_ZONE
    con.execute("SET threads = 1")  # the database's setting: set back when it is given back
    con.execute("CREATE TEMP TABLE t AS SELECT 1 AS x")  # the session's: goes with the cursor
    con.register("arrow_t", pa.table({"a": [1, 2]}))
    con.close()
    con.close()  # twice: nothing more happens
    assert empty_pool == [root]

    again = buildfs.pooled()
    assert again._root is root and empty_pool == []  # the kept database, with a fresh session
    assert _setting(again, "threads") == _setting(duckdb.connect(), "threads")
    assert _setting(again, "TimeZone") == buildfs.BUILD_TIME_ZONE
    assert again.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(0,)]
    with pytest.raises(duckdb.CatalogException):
        again.execute("SELECT * FROM arrow_t")
    again.execute("CREATE TABLE memory.main.kept (a INTEGER)")  # an object of the database: not kept
    again.close()
    assert empty_pool == []

    with buildfs.pooled() as con:  # a file left attached (an error in a database_file block): not kept
        con.execute(f"ATTACH '{tmp_path / 'x.duckdb'}' AS other")
    assert empty_pool == []
    with buildfs.pooled() as con:
        pass
    assert len(empty_pool) == 1


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS read from /proc (Linux)")
def test_a_kept_database_gives_its_memory_back(empty_pool):
    """DuckDB's allocator keeps what a query used (~500 MB after a 4M-row aggregate) while the database
    lives: a kept one returns it, and its memory limit is the default again."""
    default = _setting(duckdb.connect(), "memory_limit")
    con = buildfs.pooled()
    con.execute("CREATE TEMP TABLE t AS SELECT range AS a, md5(range::VARCHAR) AS s FROM range(3000000)")
    assert con.execute("SELECT count(DISTINCT s) FROM t").fetchall() == [(3_000_000,)]
    during = _rss_mb()
    con.close()
    assert len(empty_pool) == 1
    assert _rss_mb() < during - 150
    again = buildfs.pooled()
    assert _setting(again, "memory_limit") == default
    again.close()


def test_the_pool_keeps_at_most_pool_max_and_a_fork_starts_its_own(empty_pool):
    cons = [buildfs.pooled() for _ in range(buildfs.POOL_MAX + 2)]
    assert len({id(c._root) for c in cons}) == len(cons)  # each open connection has its own database
    for c in cons:
        c.close()
    assert len(empty_pool) == buildfs.POOL_MAX
    kept = list(empty_pool)
    # in a forked child (another pid than the pool's) the parent's databases are not reused
    buildfs._POOL_PID[0] = -1
    c = buildfs.pooled()
    assert all(c._root is not k for k in kept) and empty_pool == [] and buildfs._POOL_PID[0] == os.getpid()
    assert all(any(k is f for f in buildfs._FORKED) for k in kept)  # set aside, not closed
    buildfs._FORKED.clear()
    c.close()
    assert len(empty_pool) == 1


def test_a_remote_build_gets_its_own_database(empty_pool, monkeypatch):
    """A remote build's connections carry its filesystem: never pooled."""
    made = []
    monkeypatch.setattr(buildfs, "connect", lambda: made.append(1) or duckdb.connect())
    monkeypatch.setitem(buildfs._STATE, "fs", object())
    con = buildfs.pooled()
    assert not isinstance(con, buildfs.PooledConnection) and made == [1]
    con.close()
    assert empty_pool == []


def test_a_failing_database_file_block_leaves_no_attached_file_in_the_pool(empty_pool, tmp_path):
    from lakeql.dbutil import database_file

    with pytest.raises(KeyError), database_file(tmp_path / "a.duckdb") as con:
        con.execute("CREATE VIEW v AS SELECT 1 AS x")
        raise KeyError("x")
    assert empty_pool == []  # the database still had the file attached: closed, not kept
    with database_file(tmp_path / "a.duckdb") as con:
        con.execute("CREATE OR REPLACE VIEW v AS SELECT 2 AS x")
    assert len(empty_pool) == 1
    assert duckdb.connect(str(tmp_path / "a.duckdb")).execute("SELECT x FROM v").fetchall() == [(2,)]


def _lake(root: Path) -> tuple[Path, Path]:
    """A two-table lake: ``d.t`` of four Parquet files (the last held back to append), ``d.u``."""
    folder = root / "lake" / "d" / "t"
    folder.mkdir(parents=True)
    con = duckdb.connect()
    for i in range(4):
        con.execute(
            f"COPY (SELECT range AS id, 'k' || (range % 37) AS key, 'w' || (range % 11) AS word FROM "
            f"range({i * 400}, {(i + 1) * 400})) TO '{folder / f'part-{i}.parquet'}' (FORMAT parquet)"
        )
    con.execute(
        f"COPY (SELECT 'k' || range AS key, range * 2 AS n FROM range(40)) TO "
        f"'{root / 'lake' / 'd' / 'u.parquet'}' (FORMAT parquet)"
    )
    con.close()
    held = root / "part-3.parquet"
    shutil.move(folder / "part-3.parquet", held)
    return root / "lake", held


def _files(idx: Path, sub: str) -> dict[str, bytes]:
    files = sorted((idx / sub).rglob("*"))
    return {p.relative_to(idx).as_posix(): p.read_bytes() for p in files if p.is_file()}


def _edges(idx: Path):
    return pq.read_table(idx / "joins" / "edges.parquet")


def test_resident_refreshes_make_no_database_and_equal_full_builds(tmp_path, monkeypatch, empty_pool):
    """One process: build, then append / remove / append a file with ``--refresh``. After the first
    build no refresh makes a DuckDB database (the pooled ones serve the profile, ``lake.duckdb`` and the
    views file), and each refreshed index equals a full build: the discovery index byte for byte, the
    join graph and the flights view's answers."""
    lake, held = _lake(tmp_path)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False)
    made: list[int] = []
    real = buildfs.connect
    monkeypatch.setattr(buildfs, "connect", lambda *a, **k: made.append(1) or real(*a, **k))
    target = lake / "d" / "t" / held.name
    for step in ("append", "remove", "append"):
        if step == "append":
            shutil.copy(held, target)
        else:
            target.unlink()
        lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
        full = tmp_path / f"full-{step}"
        shutil.rmtree(full, ignore_errors=True)
        monkeypatch.setattr(buildfs, "connect", real)
        lakeql.index(lake, index_dir=full, progress=False)
        monkeypatch.setattr(buildfs, "connect", lambda *a, **k: made.append(1) or real(*a, **k))
        assert _files(idx, "discovery") == _files(full, "discovery"), step
        assert _edges(idx).equals(_edges(full)), step
        with lakeql.connect(lake, index_dir=idx) as con:
            got = con.execute("SELECT count(*), count(DISTINCT key) FROM d.t").fetchall()
        assert got == [(1600 if step == "append" else 1200, 37)], step
    assert made == []  # every refresh's DuckDB work ran on kept databases


def test_cli_refresh_after_an_append_equals_a_full_build(tmp_path):
    """The command in fresh processes (no database is kept between them): the same index as a full build."""
    lake, held = _lake(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(lakeql.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}

    def run(*args: str) -> None:
        p = subprocess.run([sys.executable, "-m", "lakeql.cli", "index", str(lake), "-q", *args],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr

    idx, full = tmp_path / "idx", tmp_path / "full"
    run("--index-dir", str(idx))
    shutil.copy(held, lake / "d" / "t" / held.name)
    run("--index-dir", str(idx), "--refresh")
    run("--index-dir", str(full))
    assert _files(idx, "discovery") == _files(full, "discovery")
    assert _edges(idx).equals(_edges(full))
