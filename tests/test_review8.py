"""Faults found reviewing the trial8 fixes (benchmarks/results/review8.md)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

import lakeql


def test_a_file_symlink_to_a_file_no_table_reads_is_kept(tmp_path):
    """trial8 skipped every symlinked file whose target the lake walk lists under its own name, so a
    link to a file without a table suffix was skipped too, although nothing reads that file as a table:
    a Hugging Face hub cache ('snapshots/<rev>/data/train.parquet -> ../../../blobs/<sha>') lost its
    table ('no Parquet files under ...'). Only a link to a file read as a table is another name."""
    lake = tmp_path / "hf"
    (lake / "blobs").mkdir(parents=True)
    (lake / "snapshots" / "abc" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"k": [1, 2, 3]}), lake / "blobs" / "9f86d081884c7d659a2f")
    os.symlink("../../../blobs/9f86d081884c7d659a2f", lake / "snapshots" / "abc" / "data" / "train.parquet")
    lakeql.index(lake, progress=False)
    con = lakeql.connect(lake)
    got = con.execute("SELECT table_name, row_count FROM lakeql_tables() WHERE status = 'ok'").fetchall()
    assert got == [("snapshots.abc", 3)]  # (the folder table of the snapshot)
    assert con.execute("SELECT sum(k) FROM snapshots.abc").fetchone()[0] == 6


def test_a_chain_of_file_symlinks_leaving_the_lake_is_read_once(tmp_path):
    """'latest.parquet -> v3.parquet -> /elsewhere/v3.parquet' in a folder table: both links resolve to a
    file outside the lake, so both were kept and the table read that file twice (4 + 2 + 2 rows). A link
    whose next hop is a file of the lake read under its own name is that file's alias."""
    (tmp_path / "store").mkdir()
    pq.write_table(pa.table({"k": [10, 20]}), tmp_path / "store" / "v3.parquet")
    t = tmp_path / "lake" / "dom" / "t"
    t.mkdir(parents=True)
    pq.write_table(pa.table({"k": [1, 2, 3, 4]}), t / "part-0.parquet")
    os.symlink(tmp_path / "store" / "v3.parquet", t / "v3.parquet")
    os.symlink("v3.parquet", t / "latest.parquet")
    lakeql.index(tmp_path / "lake", progress=False)
    con = lakeql.connect(tmp_path / "lake")
    assert con.execute("SELECT count(*), sum(k) FROM dom.t").fetchone() == (6, 40)
