"""Schema files of the sample lake: layout, profiles checked against DuckDB, descriptions, join hints,
JSON Schema validation of every file and of the listing."""

from __future__ import annotations

import json
import re
import shutil

import duckdb
import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeql.catalog import Catalog
from lakeql.context import formats
from lakeql.context.generate import FILES, generate
from lakeql.lake import discover
from lakeql.store import IndexEntry, Store

from .conftest import SAMPLE, SCHEMAS

TABLE_SCHEMA = json.loads((SCHEMAS / "context_table.schema.json").read_text())
FILES_SCHEMA = json.loads((SCHEMAS / "context_files.schema.json").read_text())


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    lake = discover(SAMPLE)
    res = {}
    for fmt in formats.FORMATS:
        res[fmt] = generate(lake, Catalog.open(lake, None), out / fmt, fmt)
    return out, res


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
def test_layout_and_every_file_validates(sample_out, fmt):
    out, res = sample_out
    root = out / fmt
    assert (root / "INDEX.md").exists()
    folders = {p.name for p in root.iterdir() if p.is_dir() and p.name[0] != "."}  # not .lakeql-profiles
    assert folders == {"flights", "python"}
    ext = formats.FORMATS[fmt]
    tables = sorted(p.relative_to(root).as_posix() for p in root.rglob(f"*.{ext}")
                    if p.name not in ("_DOMAIN.md", "INDEX.md") and not p.name.startswith("."))
    assert tables == ["flights/airlines." + ext, "flights/airports." + ext, "flights/flights." + ext,
                      "flights/planes." + ext, "flights/weather." + ext, "python/functions." + ext,
                      "python/modules." + ext]
    for rel in tables:
        doc = formats.parse((root / rel).read_text(), fmt)
        jsonschema.validate(doc, TABLE_SCHEMA)
        assert doc["table"] == rel.split("/")[0] + "." + rel.split("/")[1].rsplit(".", 1)[0]
    for row in pq.read_table(root / FILES).to_pylist():
        jsonschema.validate(row, FILES_SCHEMA)
        assert (root / row["path"]).stat().st_size == row["bytes"]


def test_index_md_lists_domains_and_how_to_navigate(sample_out):
    text = (sample_out[0] / "yaml" / "INDEX.md").read_text()
    assert "7 tables in 2 domains" in text
    assert re.search(r"^- \*\*flights\*\* \(`flights/`, 5 tables\): "
                     r"airlines, airports, flights, planes, weather$",
                     text, re.M)
    assert "grep" in text and "_DOMAIN.md" in text and "check_sql" in text
    overview = (sample_out[0] / "yaml" / "flights" / "_DOMAIN.md").read_text()
    assert "- flights.airlines (16 rows) -> airlines.yaml: carrier VARCHAR, name VARCHAR" in overview


def test_grep_hit_is_self_explaining(sample_out):
    root = sample_out[0] / "yaml"
    hits = [ln for p in root.rglob("*.yaml") for ln in p.read_text().splitlines() if "tailnum" in ln]
    assert hits and all(ln.strip().startswith(("flights.flights.tailnum", "flights.planes.tailnum"))
                        for ln in hits)


def test_profiles_match_duckdb(sample_out):
    doc = formats.parse((sample_out[0] / "json" / "flights" / "planes.json").read_text(), "json")
    cols = {c["column"].rsplit(".", 1)[1]: c for c in doc["columns"]}
    path = str(SAMPLE / "flights" / "planes.parquet")
    con = duckdb.connect()
    n, nonnull_year, dist_tail, lo, hi, lmin, lmax = con.execute(
        f"SELECT count(*), count(year), count(DISTINCT tailnum), min(manufacturer), max(manufacturer), "
        f"min(length(tailnum)), max(length(tailnum)) FROM '{path}'").fetchall()[0]
    assert doc["rows"] == n
    assert cols["year"]["nulls"] == pytest.approx(1 - nonnull_year / n, abs=0.001)
    assert cols["tailnum"]["key"] == "unique" and cols["tailnum"]["distinct"] == dist_tail == n
    assert (cols["manufacturer"]["min"], cols["manufacturer"]["max"]) == (lo, hi)
    assert (cols["tailnum"]["min_len"], cols["tailnum"]["max_len"]) == (lmin, lmax)
    top = {r[0] for r in con.execute(f"SELECT manufacturer FROM '{path}' GROUP BY 1 ORDER BY count(*) DESC "
                                     "LIMIT 3").fetchall()}
    assert set(cols["manufacturer"]["samples"]) == top
    est = con.execute(f"SELECT count(DISTINCT model) FROM '{path}'").fetchall()[0][0]
    assert abs(cols["model"]["distinct"] - est) <= 0.1 * est  # HyperLogLog estimate
    assert cols["model"]["key"] is None


def test_descriptions_nulls_and_odd_values(tmp_path):
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    field = pa.field("note", pa.string(), metadata={"description": "free text\nnote"})
    schema = pa.schema([field, pa.field("n", pa.int64())], metadata={"description": "Odd table"})
    long = "x" * 10_000
    pq.write_table(pa.table({"note": [None, "", "a|b\x00", long, "ü😀"], "n": [1, 1, None, None, None]},
                            schema=schema), lake / "d" / "odd.parquet")
    pq.write_table(pa.table({"k": pa.array([], pa.int64())}), lake / "d" / "empty.parquet")
    lk = discover(lake)
    generate(lk, Catalog.open(lk, None), tmp_path / "out", "yaml")
    doc = formats.parse((tmp_path / "out" / "d" / "odd.yaml").read_text(), "yaml")
    jsonschema.validate(doc, TABLE_SCHEMA)
    assert doc["description"] == "Odd table"
    note, n = doc["columns"]
    assert note["description"] == "free text note"
    assert note["nulls"] == 0.2 and n["nulls"] == 0.6
    assert (note["min_len"], note["max_len"]) == (0, 10_000)
    assert all(len(s) <= 41 and "|" not in s for s in note["samples"])
    assert '""' in note["samples"] or len(note["samples"]) == 3
    empty = formats.parse((tmp_path / "out" / "d" / "empty.yaml").read_text(), "yaml")
    assert empty["rows"] == 0 and empty["columns"][0]["nulls"] is None


def test_join_hints_from_the_join_graph(tmp_path):
    lake_root = tmp_path / "lake"
    shutil.copytree(SAMPLE, lake_root)
    lake = discover(lake_root)
    store = Store.for_lake(lake, tmp_path / "idx")
    store.ensure_writable()
    graph = pa.table({"table_name": ["flights.flights", "flights.flights", "flights.flights"],
                      "column_name": ["carrier", "day", "origin"],
                      "candidate_table": ["flights.airlines", "flights.airports", "flights.airports"],
                      "candidate_column": ["carrier", "alt", "faa"], "score": [1.0, 0.62, 0.9],
                      "containment": [1.0, 1.0, 1.0], "candidate_uniqueness": [1.0, 0.6, 1.0],
                      "method": ["equi"] * 3})
    store.write_parquet(graph, store.path("joins", "edges.parquet"))
    store.record(IndexEntry("join_graph", "", "", "joins/edges.parquet", 1, 1, ""))
    generate(lake, Catalog.open(lake, store), tmp_path / "out", "yaml", store=store)
    doc = formats.parse((tmp_path / "out" / "flights" / "flights.yaml").read_text(), "yaml")
    joins = {c["column"]: c["joins"] for c in doc["columns"]}
    assert joins["flights.flights.carrier"] == ["-> flights.airlines.carrier"]
    assert joins["flights.flights.origin"] == ["-> flights.airports.faa"]
    assert joins["flights.flights.day"] == []  # weak, non-key candidate: not a hint
    # a corrupt join graph warns and writes the files without hints
    store.path("joins", "edges.parquet").write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="join graph"):
        generate(lake, Catalog.open(lake, store), tmp_path / "out2", "yaml", store=store)
    assert (tmp_path / "out2" / "flights" / "flights.yaml").exists()


def test_arrow_and_duckdb_profiles_agree_and_big_tables_are_sampled(monkeypatch):
    from lakeql.context import profile as P

    lake = discover(SAMPLE)
    cat = Catalog.open(lake, None)
    con = duckdb.connect()
    t = lake.tables["flights.planes"]
    arrow = P.profile_table(con, t, cat)
    monkeypatch.setattr(P, "ARROW_ROWS", -1)
    duck = P.profile_table(con, t, cat)
    for a, d in zip(arrow.columns, duck.columns, strict=True):
        assert (a.name, a.nulls, a.min_len, a.max_len, a.key) == (
            d.name, d.nulls, d.min_len, d.max_len, d.key)
        if a.type == "VARCHAR":
            assert (a.min, a.max) == (d.min, d.max)
        assert abs((a.distinct or 0) - (d.distinct or 0)) <= 0.1 * max(a.distinct or 1, 1)
    monkeypatch.setattr(P, "FULL_SCAN_ROWS", 1000)
    monkeypatch.setattr(P, "SAMPLE_ROWS", 500)
    big = P.profile_table(con, lake.tables["flights.flights"], cat)
    assert big.sampled and big.rows == cat.row_count(lake.tables["flights.flights"])
    assert all(c.key is None for c in big.columns)


def test_function_list_falls_back_to_the_udfs_macros(monkeypatch):
    import lakeql
    from lakeql.context.generate import lake_functions

    def broken(*_a, **_k):
        raise RuntimeError("a capability failed to register")

    monkeypatch.setattr(lakeql, "connect", broken)
    with pytest.warns(UserWarning, match="cannot list the registered lakeql functions"):
        got = dict(lake_functions())
    assert {"schema_context(...)", "check_sql(...)", "schema_files(...)"} <= set(got)
    assert not any(name.startswith(("schema_context_impl", "_")) for name in got)


def test_refresh_reuses_the_function_list_while_the_code_is_the_same(tmp_path, monkeypatch):
    """INDEX.md's list of lakeql SQL functions costs a lakeql connection (~0.2 CPU s per refresh): it is
    kept in the state while code_key() (lakeql/DuckDB versions, source files) is the same."""
    from lakeql.context import generate as gen

    lake = discover(SAMPLE)
    out = tmp_path / "out"
    generate(lake, Catalog.open(lake, None), out, "yaml")
    first = (out / "INDEX.md").read_text()
    calls = []
    real = gen.registered_functions
    monkeypatch.setattr(gen, "registered_functions", lambda: calls.append(1) or real())
    generate(lake, Catalog.open(lake, None), out, "yaml")
    assert calls == [] and (out / "INDEX.md").read_text() == first
    assert "joinable(" in first
    monkeypatch.setattr(gen, "code_key", lambda: "another lakeql")
    generate(lake, Catalog.open(lake, None), out, "yaml")
    assert calls == [1] and (out / "INDEX.md").read_text() == first
    # a failed listing falls back to udfs/*.sql's macros and is not kept: the next run asks again
    monkeypatch.setattr(gen, "code_key", lambda: "a third lakeql")
    monkeypatch.setattr(gen, "registered_functions", lambda: calls.append(2) and None)
    generate(lake, Catalog.open(lake, None), out, "yaml")
    assert "joinable(...)" in (out / "INDEX.md").read_text()
    generate(lake, Catalog.open(lake, None), out, "yaml")
    assert calls == [1, 2, 2]
