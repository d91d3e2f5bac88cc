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


def test_two_sources_one_name_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "d" / "t.parquet")
    write(tmp_path / "d" / "T" / "part.parquet")
    with pytest.raises(LakeqlError, match="two sources map to table"):
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
