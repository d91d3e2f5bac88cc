"""More table formats: CSV/TSV, JSON/NDJSON, Delta and Iceberg tables become lake tables; anything lakeql
cannot read is a warning naming it (and a row of lakeql_tables()), never silence."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from testutil import require

import lakeql
from lakeql.catalog import Catalog
from lakeql.demo import SAMPLE_LAKE
from lakeql.lake import discover

AIRLINES = Path(SAMPLE_LAKE) / "flights" / "airlines.parquet"
WEATHER = Path(SAMPLE_LAKE) / "flights" / "weather.parquet"


def _copy(sql_from: str, target: Path, fmt: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    t = str(target).replace("'", "''")
    duckdb.execute(f"COPY (SELECT * FROM {sql_from}) TO '{t}' ({fmt})")


@pytest.fixture(scope="module")
def mixed_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    src = f"read_parquet('{AIRLINES}')"
    _copy(src, root / "fmt" / "airlines_csv.csv", "FORMAT csv, HEADER true")
    _copy(src, root / "fmt" / "airlines_tsv.tsv", "FORMAT csv, HEADER true, DELIMITER '\t'")
    _copy(f"read_parquet('{WEATHER}')", root / "fmt" / "weather.ndjson", "FORMAT json")
    _copy(src, root / "fmt" / "airlines_json.json", "FORMAT json, ARRAY true")
    _copy(src, root / "fmt" / "parts" / "a.csv", "FORMAT csv, HEADER true")
    _copy(src, root / "fmt" / "parts" / "b.csv", "FORMAT csv, HEADER true")
    with gzip.open(root / "fmt" / "gz.csv.gz", "wt") as fh:
        fh.write("id,name\n1,one\n2,two\n")
    (root / "fmt" / "broken.json").write_text('{"a": 1, "b": [unclosed\n')
    (root / "fmt" / "sheet.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (root / "fmt" / "README.md").write_text("notes are not tables and are not warned about")
    _delta(root / "fmt" / "delta_airlines")
    _iceberg(root / "fmt" / "ice_airlines", tmp_path_factory.mktemp("icecat"))
    return root


def _delta(path: Path) -> None:
    deltalake = require("deltalake")
    tbl = pq.read_table(AIRLINES)
    deltalake.write_deltalake(str(path), tbl.slice(0, 10))
    deltalake.write_deltalake(str(path), tbl.slice(10), mode="append")
    deltalake.write_deltalake(str(path), tbl, mode="overwrite")  # the live files: one version of 16 rows


def _iceberg(path: Path, catdir: Path) -> None:
    require("sqlalchemy")
    from pyiceberg.catalog.sql import SqlCatalog

    cat = SqlCatalog("t", uri=f"sqlite:///{catdir}/cat.db", warehouse=f"file://{catdir}")
    cat.create_namespace("ns")
    tbl = pq.read_table(AIRLINES)
    t = cat.create_table("ns.airlines", schema=tbl.schema, location=f"file://{path}")
    t.append(tbl.slice(0, 6))
    t.append(tbl.slice(6))


@pytest.fixture(scope="module")
def lake_and_catalog(mixed_lake):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lake = discover(mixed_lake)
        cat = Catalog.open(lake, None)
    return lake, cat, [str(w.message) for w in caught]


def test_every_format_is_a_table(lake_and_catalog) -> None:
    lake, cat, _ = lake_and_catalog
    assert {"fmt.airlines_csv", "fmt.airlines_tsv", "fmt.weather", "fmt.airlines_json", "fmt.parts",
            "fmt.gz", "fmt.delta_airlines", "fmt.ice_airlines"} <= set(lake.tables)
    assert lake.tables["fmt.airlines_csv"].format == "csv"
    assert lake.tables["fmt.weather"].format == "json"
    assert lake.tables["fmt.delta_airlines"].layout == "delta"
    assert lake.tables["fmt.ice_airlines"].layout == "iceberg"
    for key in ("fmt.airlines_csv", "fmt.airlines_tsv", "fmt.airlines_json", "fmt.delta_airlines",
                "fmt.ice_airlines"):
        assert cat.row_count(lake.tables[key]) == 16, key
    assert cat.row_count(lake.tables["fmt.parts"]) == 32
    assert cat.row_count(lake.tables["fmt.weather"]) == pq.read_metadata(WEATHER).num_rows


def test_types_are_sniffed(lake_and_catalog) -> None:
    lake, cat, _ = lake_and_catalog
    types = {c.column_name: c.type for c in cat.columns("fmt.weather")}
    assert types["temp"] == "DOUBLE" and types["origin"] == "VARCHAR" and types["year"] == "BIGINT"
    assert {c.column_name: c.type for c in cat.columns("fmt.gz")} == {"id": "BIGINT", "name": "VARCHAR"}


def test_unreadable_and_unsupported_are_named(lake_and_catalog) -> None:
    lake, cat, messages = lake_and_catalog
    assert any("sheet.xlsx" in m and "cannot read .xlsx" in m for m in messages)
    assert any("broken.json" in m for m in messages)
    assert not any("README.md" in m for m in messages)
    assert "fmt.broken" not in lake.tables
    kinds = {(p.kind, p.path) for p in cat.problems}
    assert ("unsupported", "fmt/sheet.xlsx") in kinds and ("table", "fmt/broken.json") in kinds


def test_index_and_query_every_format(mixed_lake, tmp_path) -> None:
    with pytest.warns(UserWarning):
        lakeql.index(mixed_lake, index_dir=tmp_path / "idx", progress=False, capabilities=["joins"])
    with pytest.warns(UserWarning):
        con = lakeql.connect(mixed_lake, index_dir=tmp_path / "idx", capabilities=["joins"])
    for key in ("airlines_csv", "airlines_tsv", "airlines_json", "delta_airlines", "ice_airlines"):
        assert con.execute(f'SELECT count(*) FROM fmt."{key}" WHERE carrier = ?', ["UA"]).fetchone() == (1,)
    rows = con.execute("SELECT source, status FROM lakeql_tables() WHERE status <> 'ok' ORDER BY 1"
                       ).fetchall()
    assert rows == [("fmt/broken.json", "error"), ("fmt/sheet.xlsx", "unsupported")]
    # row identity works for CSV/JSON too: __rowid is 0..n-1 in file order
    rid = con.execute("SELECT min(__rowid), max(__rowid), count(DISTINCT __rowid) "
                      "FROM query_table(lakeql_rows_view('fmt.parts'))").fetchone()
    assert rid == (0, 31, 32)
    edges = con.execute("SELECT candidate_table FROM joinable('fmt.airlines_csv', 'carrier', k := 20)"
                        ).fetchall()
    assert ("fmt.ice_airlines",) in edges and ("fmt.delta_airlines",) in edges


def test_delta_table_reads_only_live_files(mixed_lake) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lake = discover(mixed_lake)
    t = lake.tables["fmt.delta_airlines"]
    all_parquet = list((mixed_lake / "fmt" / "delta_airlines").glob("*.parquet"))
    assert len(all_parquet) == 3 and len(t.files) == 1  # two files removed by the overwrite
