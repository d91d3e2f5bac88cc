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


def test_the_quoted_name_hint_is_only_for_names_that_need_quotes(tmp_path):
    """trial8's check_sql / error hint ('... is a table whose name must be quoted in SQL') took every name
    outside [A-Za-z0-9_] as needing quotes, so any syntax error in SQL naming 'geo.größe' (which DuckDB
    reads unquoted: non-ASCII letters are identifier characters) got that hint, and its quoted name as the
    suggestion, for an error elsewhere; a name inside a string literal or a comment got it too."""
    from lakeql.sqlrun import error_text

    lake = tmp_path / "lake"
    (lake / "geo").mkdir(parents=True)
    (lake / "iso").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), lake / "geo" / "größe.parquet")
    pq.write_table(pa.table({"alpha_2": ["FR", "US"]}), lake / "iso" / "iso_3166-1.parquet")
    lakeql.index(lake, progress=False)
    con = lakeql.connect(lake)

    def check(sql):
        return con.execute("SELECT message, suggestion FROM check_sql(?)", [sql]).fetchall()

    assert con.execute("SELECT count(*) FROM geo.größe").fetchone()[0] == 2  # no quotes needed
    for sql in (
        "SELECT count(*) FROM geo.größe WHERE",
        "SELECT count(*) FROM geo.größe WHERE a = 'iso.iso_3166-1' AND",
        "SELECT count(*) FROM geo.größe -- not iso.iso_3166-1\nWHERE",
    ):
        ((message, suggestion),) = check(sql)
        assert message.startswith("syntax error") and "quoted" not in message and suggestion is None, sql
        try:
            con.execute(sql)
        except Exception as exc:  # noqa: BLE001 - DuckDB's parser error
            assert "Hint" not in error_text(exc, con), sql
        else:
            raise AssertionError(sql)
    ((message, suggestion),) = check("SELECT * FROM iso.iso_3166-1 WHERE alpha_2 = 'geo.größe'")
    assert suggestion == '"iso"."iso_3166-1"'  # the hint where it belongs


def test_the_quoted_name_hint_is_linear_on_hostile_sql():
    """The hint looks for table names in the SQL of any syntax error (check_sql, an agent's SQL): an
    unclosed-comment pattern rescanned to the end from every '/*' ('/*a' * 80,000: minutes), and a
    str.find per table over a 1 MB SQL on a lake of 10,000 hyphenated tables took 30 s. Both are now
    bounded (one pass; words of a name must be words of the SQL; a scan budget)."""
    import time

    from lakeql.sqlerrors import unquoted_table

    names = [(f"dom-{i}", f"t-{i}") for i in range(10_000)]
    hostile = [
        "SELECT 1 " + "/*a" * 80_000,
        "SELECT 1 " + "x" * 1_000_000 + " WHERE",
        "SELECT 1 " + " ".join(f"dom t {i}" for i in range(10_000)) + "x" * 1_000_000 + " WHERE",
    ]
    for sql in hostile:
        t0 = time.process_time()  # CPU time: a loaded machine slows the wall clock, not the work done
        assert unquoted_table(sql, names) is None
        assert time.process_time() - t0 < 5, sql[:20]
    got = unquoted_table("SELECT 1 FROM dom-9999.t-9999 WHERE", names)
    assert got == ("dom-9999.t-9999", '"dom-9999"."t-9999"')
