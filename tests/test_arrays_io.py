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
