"""lakeql.arrays.unique equals np.unique; lakeql.parquet_io reads index files as pyarrow does, without
importing pandas (checked in a fresh interpreter)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeql import arrays, parquet_io

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("values", [
    RNG.integers(0, 1 << 40, 20_000),
    RNG.integers(0, 5, 1_000).astype(np.uint32),
    np.array([], np.int64),
    np.array([3], np.uint64),
    RNG.integers(0, 2, 100).astype(bool),
    np.array([[3, 1], [1, 2]], np.int16),
    np.array([1.5, np.nan, np.nan, 0.5]),
])
def test_unique_equals_numpy(values) -> None:
    got, want = arrays.unique(values), np.unique(values)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_rows_of_zoned_timestamps_equal_pyarrows(tmp_path) -> None:
    t = pa.table({
        "a": pa.array([1, None, 3]),
        "at": pa.array([0, 1_700_000_000_123_456, None], pa.timestamp("us", tz="UTC")),
        "s": pa.array(["x", "y", None]),
        "sec": pa.array([1, 2, 3], pa.timestamp("s", tz="Europe/Paris")),
        "naive": pa.array([5, 6, 7], pa.timestamp("ms")),
    })
    pq.write_table(t, tmp_path / "t.parquet")
    got = parquet_io.rows(parquet_io.read_table(tmp_path / "t.parquet"))
    want = t.to_pylist()
    assert [list(r) for r in got] == [list(r) for r in want]  # same columns, same order
    assert got == want  # aware datetimes compare as instants
    assert got[1]["at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC)
    assert parquet_io.read_table(tmp_path / "t.parquet", columns=["s"]).column_names == ["s"]


def test_reading_an_index_file_imports_no_pandas(tmp_path) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"k": ["a"], "built_at": pa.array([1], pa.timestamp("us", tz="UTC"))}), path)
    code = ("import sys; from lakeql import parquet_io; "
            f"rows = parquet_io.rows(parquet_io.read_table({str(path)!r})); "
            "assert rows[0]['k'] == 'a'; print('pandas' in sys.modules, 'pyarrow.dataset' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_without_pandas_writes_index_files_then_gives_pandas_back(tmp_path) -> None:
    """Inside ``without_pandas`` pyarrow and DuckDB convert and write Python values (timestamps too)
    without importing pandas; after it pandas imports and ``to_pandas`` works."""
    path = tmp_path / "t.parquet"
    code = f"""
import datetime as dt, sys
from lakeql import parquet_io
import pyarrow as pa, pyarrow.parquet as pq
with parquet_io.without_pandas() as hidden:
    t = pa.Table.from_pylist([{{"k": "a", "at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "n": [1, 2]}}])
    pq.write_table(pa.table({{"x": [1.5, None], "s": ["a", None]}}), {str(path)!r})
    import duckdb
    types = [str(x) for x in duckdb.connect().from_arrow(t.schema.empty_table()).types]
    during = type(sys.modules.get("pandas")).__name__
import pandas
print(hidden, during, types, t.to_pandas().shape, pq.read_table({str(path)!r}).num_rows)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "NoneType", "['VARCHAR',", "'TIMESTAMP", "WITH", "TIME", "ZONE',",
                           "'BIGINT[]']", "(1,", "3)", "2"]


def test_without_pandas_is_a_no_op_when_pandas_is_imported() -> None:
    code = ("import sys, pandas; from lakeql import parquet_io\n"
            "with parquet_io.without_pandas() as hidden:\n    print(hidden, sys.modules['pandas'] is pandas)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_lakeql_index_command_imports_no_pandas(tmp_path) -> None:
    """The ``lakeql index`` command (every default capability) then ``--refresh`` after an append build
    without importing pandas (~0.3 CPU s of every run)."""
    lake = tmp_path / "lake"
    (lake / "d" / "t").mkdir(parents=True)
    at = pa.timestamp("us", tz="UTC")
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "at": pa.array([1, 2, 3], at)}),
                   lake / "d" / "t" / "a.parquet")
    pq.write_table(pa.table({"id": [4, 5], "name": ["d", "e"], "at": pa.array([4, 5], at)}),
                   lake / "d" / "t" / "b.parquet")
    pq.write_table(pa.table({"k": [1, 2], "v": ["x", "y"]}), lake / "d" / "u.parquet")
    code = f"""
import sys
from lakeql.cli import main
assert main(["index", {str(lake)!r}, "-q"]) == 0
import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({{"id": [6], "name": ["f"], "at": pa.array([6], pa.timestamp("us", tz="UTC"))}}),
               {str(lake / "d" / "t" / "c.parquet")!r})
assert main(["index", {str(lake)!r}, "--refresh", "-q"]) == 0
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "False"


def test_lakeql_index_hides_pandas_only_for_the_local_engine(tmp_path) -> None:
    """Ray Data imports pandas in the driver: ``--engine ray`` builds with pandas importable."""
    code = f"""
import sys
from lakeql import cli, indexer
seen = []
indexer.build_index = lambda lake, opts: seen.append(type(sys.modules.get("pandas", 0)).__name__)
for engine in ("local", "ray"):
    assert cli.main(["index", {str(tmp_path)!r}, "--engine", engine, "-q"]) == 0
print(*seen)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["NoneType", "int"]
