"""Defects found reviewing h/trial13 (benchmarks/results/review37.md)."""

from __future__ import annotations

import pytest

from lakeql.joins.transform import Learned, _changes_numbers


def _learned(pairs: list[tuple[str, str]]) -> Learned:
    return Learned("q->c", [], len(pairs), len(pairs), 1.0, 0, pairs)


def test_number_changing_transform_of_long_ids_is_refused():
    """Trial13's rule compared numbers as floats: 19-digit ids (Snowflake/Twitter ids) that a transform
    maps onto other ids differing in the last digits are equal floats, so the nonsense join was kept."""
    assert _changes_numbers(_learned([("1234567890123456789", "1234567890123456780"),
                                      ("9876543210987654321", "9876543210987654320")]))
    assert _changes_numbers(_learned([("13", "2013")]))  # the short case trial13 tested still holds
    # a change of format only is still a join: zero padding, a trailing '.0', a sign
    assert not _changes_numbers(_learned([("7", "007"), ("42", "42.0"), ("+5", "5")]))
    assert not _changes_numbers(_learned([("1234567890123456789", "0001234567890123456789")]))


def _ts_tables(root, n: int) -> None:
    """``n`` one-file tables of a millisecond timestamp (what pandas and Spark write), then two files whose
    Arrow schemas are equal but Parquet schemas are not: ``t`` as INT96 (Spark) and as INT64 nanoseconds."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    at = pa.array([dt.datetime(2013, 1, 1, h) for h in range(5)], pa.timestamp("ms"))
    for i in range(n):
        pq.write_table(pa.table({"at": at, "v": pa.array(range(5))}), root / f"w{i}.parquet")
    ns = pa.array([dt.datetime(2013, 1, 1, h) for h in range(5)], pa.timestamp("ns"))
    both = pa.table({"at": at, "t": ns})
    pq.write_table(both, root / "spark_int96.parquet", use_deprecated_int96_timestamps=True)
    pq.write_table(both, root / "arrow_ns.parquet")


def test_catalog_describes_each_parquet_schema_once(tmp_path, monkeypatch):
    """Trial13 made the catalog DESCRIBE (read_parquet) every one-file table with a second/millisecond
    timestamp, a duration or a fixed-size list: a second open and parse of each footer, 1.7 CPU ms per
    table against 0.2 (2,000 tables: 3.4 CPU s, main 0.4). One DESCRIBE per Parquet schema now; the
    types stay the view's, also for two files of one Arrow schema that DuckDB types otherwise (INT96)."""
    from lakeql import catalog
    from lakeql.lake import discover

    _ts_tables(tmp_path, 12)
    monkeypatch.setattr(catalog, "_PARQUET_TYPES", {})
    calls = []
    real = catalog._type_connection

    def counting(fs=None):
        calls.append(1)
        return real(fs)

    monkeypatch.setattr(catalog, "_type_connection", counting)
    got = {t.key: catalog.profile_table(t)[1] for t in discover(tmp_path).tables.values()}
    assert len(calls) == 3  # 12 + 2 tables, 3 Parquet schemas
    assert all(got[f"main.w{i}"] == [("at", "TIMESTAMP"), ("v", "BIGINT")] for i in range(12))
    assert got["main.spark_int96"] == [("at", "TIMESTAMP"), ("t", "TIMESTAMP")]
    assert got["main.arrow_ns"] == [("at", "TIMESTAMP"), ("t", "TIMESTAMP_NS")]
    import duckdb

    for name in ("spark_int96", "arrow_ns", "w3"):  # the view's types (DuckDB's Parquet reader)
        view = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path / name}.parquet')").fetchall()
        assert got[f"main.{name}"] == [(r[0], r[1]) for r in view]


def test_doctor_reports_an_ngram_index_of_a_column_no_longer_text(tmp_path, monkeypatch):
    """An n-gram index built of a column's digits (what a refresh before trial13 did after a rewrite made
    the column BIGINT) is fresh to the manifest: ``lakeql doctor`` said "all well" while every query
    refused it. Trial13's refresh drops such an index; doctor now says so and names that fix."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql
    from lakeql import doctor
    from lakeql.ngrams import builder

    sample = Path(lakeql.__file__).parent / "sample_lake" / "flights" / "airlines.parquet"
    (tmp_path / "air").mkdir()
    al = pq.read_table(sample)
    pq.write_table(al, tmp_path / "air" / "airlines.parquet")
    lakeql.index(tmp_path, ngram=["air.airlines.name"], progress=False)
    assert doctor.diagnose(tmp_path).healthy
    numbers = al.set_column(1, "name", pa.array(range(al.num_rows)))
    pq.write_table(numbers, tmp_path / "air" / "airlines.parquet")
    with monkeypatch.context() as m:  # the refresh of before trial13: no text check of kept targets
        m.setattr(builder, "text_column", lambda catalog, table, column: column)
        lakeql.index(tmp_path, refresh=True, progress=False)
    diag = doctor.diagnose(tmp_path)
    hits = [f for f in diag.findings if f.subject == "ngram air.airlines.name"]
    assert not diag.healthy and len(hits) == 1 and "BIGINT" in hits[0].problem, diag.lines()
    with pytest.warns(UserWarning, match="dropping the n-gram index"):
        lakeql.index(tmp_path, refresh=True, progress=False)
    assert doctor.diagnose(tmp_path).healthy  # the fix it names heals it


def test_refresh_retypes_a_catalog_written_before_trial13(tmp_path, monkeypatch):
    """Trial13 changed how one-file Parquet tables are typed (TIMESTAMP_MS -> TIMESTAMP, FLOAT[3] ->
    FLOAT[]) without bumping CATALOG_FORMAT: a stored catalog keeps the Arrow scan's types for every
    unchanged table through ``--refresh`` and even a full ``lakeql index`` (measured on an index of
    main: lakeql_columns and the schema file still said TIMESTAMP_MS, FLOAT[3]). Format 5 re-reads it; the
    stored profiles (schema files) follow at the next full build (their format was not bumped)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql
    from lakeql import catalog

    (tmp_path / "t").mkdir()
    pos = pa.FixedSizeListArray.from_arrays(pa.array([float(i) for i in range(15)], pa.float32()), 3)
    at = pa.array([dt.datetime(2013, 1, 1, h) for h in range(5)], pa.timestamp("ms"))
    pq.write_table(pa.table({"at": at, "pos": pos}), tmp_path / "t" / "a.parquet")
    with monkeypatch.context() as m:  # the catalog of before trial13: its types, format 4
        m.setattr(catalog, "_ARROW_DIFFERS", ("fixed_size_binary[12]", "halffloat"))
        m.setattr(catalog, "CATALOG_FORMAT", 4)
        m.setattr(catalog, "_PARQUET_TYPES", {})
        lakeql.index(tmp_path, progress=False)
        types = "SELECT column_name, type FROM lakeql_columns() ORDER BY 1"
        old = lakeql.connect(tmp_path).execute(types).fetchall()
        assert old == [("at", "TIMESTAMP_MS"), ("pos", "FLOAT[3]")]
    lakeql.index(tmp_path, refresh=True, progress=False)
    con = lakeql.connect(tmp_path)
    assert con.execute(types).fetchall() == [("at", "TIMESTAMP"), ("pos", "FLOAT[]")]
    view = [r[:2] for r in con.execute('DESCRIBE "t"."a"').fetchall()]
    assert view == [("at", "TIMESTAMP"), ("pos", "FLOAT[]")]
    lakeql.index(tmp_path, progress=False)  # a full build: the profiles and schema files too
    schema = (tmp_path / ".lakeql" / "schemas" / "t" / "a.yaml").read_text()
    assert "TIMESTAMP_MS" not in schema and "FLOAT[3]" not in schema, schema
