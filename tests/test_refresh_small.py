"""The fixed costs of a fresh ``lakeql index --refresh`` process on a small lake (issue 10 item 4).

The OpenBLAS thread timeout the ``lakeql index`` command sets before numpy loads, and the single DuckDB
thread a refresh profiles a few appended rows on (its answers: tests/joins/test_incremental.py, which
compares every refresh after an append with a full build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

import lakeql

SPY = """
import os, sys
import lakeql.indexer
from lakeql import cli

def spy(lake, opts):
    print("TIMEOUT", os.environ.get("OPENBLAS_THREAD_TIMEOUT"), NUMPY_BEFORE, flush=True)

NUMPY_BEFORE = "numpy" in sys.modules  # numpy (and its OpenBLAS) not loaded before the command runs
lakeql.indexer.build_index = spy
sys.argv = ["lakeql", *sys.argv[1:]]
if os.environ.get("CALL_MAIN_WITH_ARGS"):
    sys.exit(cli.main(sys.argv[1:]))
cli.main()
"""


def _run(args: list[str], **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    base["PYTHONPATH"] = os.pathsep.join([str(Path(lakeql.__file__).parents[1]), base.get("PYTHONPATH", "")])
    p = subprocess.run(
        [sys.executable, "-c", SPY, *args], capture_output=True, text=True, env={**base, **env}
    )
    assert p.returncode == 0, p.stderr
    return next(line for line in p.stdout.splitlines() if line.startswith("TIMEOUT"))


def test_index_command_sets_the_blas_thread_timeout_before_numpy_loads(tmp_path):
    from lakeql.cli import BLAS_THREAD_TIMEOUT

    lake = str(tmp_path / "lake")
    # the command: set before anything imported numpy
    assert _run(["index", lake, "--quiet"]) == f"TIMEOUT {BLAS_THREAD_TIMEOUT} False"
    # a value the user chose is kept
    assert _run(["index", lake, "--quiet"], OPENBLAS_THREAD_TIMEOUT="20") == "TIMEOUT 20 False"
    # main([...]) from a caller's Python process: its environment is left alone
    assert _run(["index", lake, "--quiet"], CALL_MAIN_WITH_ARGS="1") == "TIMEOUT None False"


def test_one_thread_sets_and_restores_duckdb_threads():
    import duckdb

    from lakeql.profile_shards import one_thread

    def threads(con) -> int:
        return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])

    con = duckdb.connect()
    con.execute("SET threads = 3")
    with one_thread(con):
        assert threads(con) == 1
    assert threads(con) == 3
    try:  # restored after an error too
        with one_thread(con):
            raise KeyError("x")
    except KeyError:
        pass
    assert threads(con) == 3
    con.execute("SET threads = 1")
    with one_thread(con):
        assert threads(con) == 1
    assert threads(con) == 1
    with one_thread(None):  # no connection: nothing to set
        pass
    con.close()


def test_refresh_profiles_a_small_append_on_one_thread_and_equals_a_full_build(tmp_path, monkeypatch):
    import duckdb

    from lakeql import profile_shards

    root = tmp_path / "lake"
    folder = root / "d" / "t"
    folder.mkdir(parents=True)
    con = duckdb.connect()
    for i in range(4):
        con.execute(
            f"COPY (SELECT range AS id, 'k' || (range % 37) AS key, range * 0.5 AS x FROM range({i * 500}, "
            f"{(i + 1) * 500})) TO '{folder / f'part-{i}.parquet'}' (FORMAT parquet)"
        )
    con.close()
    held = tmp_path / "part-3.parquet"
    shutil.move(folder / "part-3.parquet", held)
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False)

    seen: list[int] = []
    orig = profile_shards.profile_files

    def spy(table, files, columns, con=None, row_count=0):
        seen.append(int(con.execute("SELECT current_setting('threads')").fetchall()[0][0]))
        return orig(table, files, columns, con, row_count)

    monkeypatch.setattr(profile_shards, "profile_files", spy)
    shutil.copy(held, folder / held.name)
    lakeql.index(root, index_dir=idx, refresh=True, capabilities=["joins"], progress=False)
    assert seen == [1]
    seen.clear()
    full = tmp_path / "full"
    lakeql.index(root, index_dir=full, capabilities=["joins"], progress=False)
    assert seen and seen[0] >= 1  # a full build: the connection's own thread count
    prof = [p for p in (idx / "column_profile").iterdir() if p.is_dir()][0].name
    for f in ("columns.parquet", "hashes.parquet", "merge_union.parquet", "merge_tops.parquet"):
        assert pq.read_table(idx / "column_profile" / prof / f).equals(
            pq.read_table(full / "column_profile" / prof / f)
        ), f


def test_read_table_decodes_small_files_on_the_calling_thread(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql import parquet_io

    t = pa.table({"a": pa.array(range(50_000), pa.int64()), "s": [f"v{i % 977}" for i in range(50_000)]})
    path = tmp_path / "t.parquet"
    pq.write_table(t, path, row_group_size=10_000)
    seen: list[bool] = []
    orig = pq.ParquetFile.read

    def spy(self, *a, **k):
        seen.append(k.get("use_threads", True))
        return orig(self, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read", spy)
    assert parquet_io.read_table(path).equals(t)
    assert parquet_io.read_table(path, columns=["s"]).equals(t.select(["s"]))
    monkeypatch.setattr(parquet_io, "THREADED_READ_BYTES", 1)  # a "large" file: Arrow's pool, same table
    assert parquet_io.read_table(path).equals(t)
    assert parquet_io.read_table(str(path)).equals(t)
    assert seen == [False, False, True, True]


def test_dist_info_version_equals_importlib_metadata(tmp_path, monkeypatch):
    import importlib.metadata

    from lakeql.context import generate

    for name in ("duckdb", "pyarrow", "numpy"):
        assert generate._dist_info_version(name) == importlib.metadata.version(name)
    assert generate._dist_info_version("no_such_package_lakeql") is None
    assert generate._dist_info_version("json") is None  # the standard library: no dist-info

    # two dist-info folders of one package (a broken install): not guessed, importlib.metadata decides
    site = tmp_path / "site"
    (site / "fakepkg").mkdir(parents=True)
    (site / "fakepkg" / "__init__.py").write_text("")
    for v in ("1.0", "2.0"):
        (site / f"fakepkg-{v}.dist-info").mkdir()
        (site / f"fakepkg-{v}.dist-info" / "METADATA").write_text(f"Name: fakepkg\nVersion: {v}\n\nbody\n")
    monkeypatch.syspath_prepend(str(site))
    assert generate._dist_info_version("fakepkg") is None
    (site / "fakepkg-1.0.dist-info" / "METADATA").unlink()
    (site / "fakepkg-1.0.dist-info").rmdir()
    assert generate._dist_info_version("fakepkg") == "2.0"
    # another package whose name starts with it is not taken for it
    (site / "fakepkg-extra-3.0.dist-info").mkdir()
    assert generate._dist_info_version("fakepkg") == "2.0"
