"""review11: guards for ctxrefresh (hints read for the tables a change reaches, the 64-pair cap of composite
candidates) and leftovers (lake.duckdb and views/ copied by COPY FROM DATABASE)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

_NAMES = ["id", "Id", "ID", "code", "year", "x", "y", "k"]  # case variants: several columns per lower name


def _random_graph(seed: int):
    rnd = random.Random(seed)
    tables = {f"t{i}": f"t{i}" for i in range(rnd.randint(2, 6))}
    cols = {
        t: [
            SimpleNamespace(column_name=n, type=rnd.choice(["INTEGER", "VARCHAR"]))
            for n in rnd.sample(_NAMES, rnd.randint(2, 6))
        ]
        for t in tables
    }
    edges = []
    for _ in range(rnd.randint(1, 60)):
        a, b = rnd.sample(list(tables), 2)
        score = rnd.choice([0.5, 0.3, 0.3, 0.9, -0.2, float("nan"), 0.0, 1.0, 0.25])  # ties, NaN, < 0
        containment = rnd.choice([0.5, 0.8, 0.8, 0.3, float("nan"), 0.0, -0.5, 1.0])
        edges.append(
            (a, rnd.choice(cols[a]).column_name, b, rnd.choice(cols[b]).column_name, score, containment)
        )
    return SimpleNamespace(tables=tables), SimpleNamespace(columns=lambda t: cols[t]), edges, rnd


def test_the_capped_candidate_visit_returns_the_first_pairs_of_the_whole_list():
    """The cap stops the visit of the edges (strongest first) early; what it returns must be the head
    of the uncapped, sorted list, ties, NaN and negative scores included (the composite keys a full
    build checks)."""
    from lakeql.context import hints

    compared = 0
    for seed in range(600):
        lake, catalog, edges, rnd = _random_graph(seed)
        limit = rnd.choice([1, 2, 3, 5, 8, 64])
        whole = hints._candidate_pairs(edges, lake, catalog)
        capped = hints._candidate_pairs(edges, lake, catalog, limit)
        assert [c[1:] for c in capped] == [c[1:] for c in whole[:limit]], seed
        assert [c[0] for c in capped] == [c[0] for c in whole[:limit]], seed
        compared += len(whole) > limit
    assert compared > 100  # the cap cut the list in many of the cases


def _lake_file(tmp_path: Path) -> Path:
    """A database file like lake.duckdb: hostile schema, view and macro names, a view whose Parquet file
    is gone (a removed table) and views that read other schemas' views."""
    src = tmp_path / "lake.duckdb"
    data = tmp_path / "gone.parquet"
    con = duckdb.connect(str(src))
    try:
        con.execute(f"COPY (SELECT 1 AS a) TO '{data}' (FORMAT parquet)")
        con.execute('CREATE SCHEMA "we""ird; sch"; CREATE SCHEMA "select"; CREATE SCHEMA lakeql_prev')
        con.execute(
            f"""CREATE VIEW "we""ird; sch"."v; drop" AS SELECT a AS "a""b" FROM read_parquet('{data}')"""
        )
        con.execute('CREATE VIEW "select"."from" AS SELECT * FROM "we""ird; sch"."v; drop"')
        con.execute("CREATE VIEW lakeql_prev.x AS SELECT 2 AS c")
        con.execute('CREATE MACRO "ma""c"(x) AS x * 2')
        con.execute("CREATE MACRO lakeql_prev.rows_of(n) AS TABLE SELECT * FROM range(n)")
    finally:
        con.close()
    data.unlink()
    return src


def _catalog(path: Path) -> tuple[list, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        views = con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY ALL"
        ).fetchall()
        macros = con.execute(
            "SELECT schema_name, function_name, function_type FROM duckdb_functions() "
            "WHERE database_name = current_database() ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    return views, macros


def test_copy_catalog_keeps_every_view_and_macro_binding_none(tmp_path):
    """COPY FROM DATABASE keeps hostile names, the macros, and a view whose Parquet file is gone (it binds
    no view: a refresh that removed a table must not fail on the copy of its old view)."""
    from lakeql.dbutil import new_database_file
    from lakeql.indexer import DUCKDB_CLI_STORAGE
    from lakeql.lakedb import copy_catalog

    src = _lake_file(tmp_path)
    out = tmp_path / "new.duckdb"
    scratch = tmp_path / ".lake.duckdb.1-ab.tmp"
    with new_database_file(out, DUCKDB_CLI_STORAGE) as con:
        copy_catalog(con, src, scratch)
    assert not scratch.exists() and not Path(f"{scratch}.wal").exists()
    assert _catalog(out) == _catalog(src)
    views, macros = _catalog(out)
    assert ('we"ird; sch', "v; drop") in {(s, v) for s, v, _ in views}
    assert ("main", 'ma"c', "macro") in macros and ("lakeql_prev", "rows_of", "table_macro") in macros


@pytest.mark.parametrize("change", ["rename", "column", "move"])
def test_refresh_after_a_rename_a_new_column_or_a_move_equals_a_full_build(change, tmp_path):
    """joins + context refreshed after a table is renamed, gains a column that is a join key elsewhere,
    or moves to another folder: schema files (and join graph) byte for byte those of a full build."""
    from testutil import SAMPLE_LAKE

    import lakeql

    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE, lake)
    caps = ["joins", "context"]
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=caps)
    flights = lake / "flights"
    if change == "rename":
        os.replace(flights / "planes.parquet", flights / "aircraft.parquet")
    elif change == "column":  # weather gains 'carrier', the key of airlines
        src, tmp = flights / "weather.parquet", flights / "w.tmp"
        duckdb.sql(f"COPY (SELECT *, 'AA' AS carrier FROM read_parquet('{src}')) TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, src)
    else:
        (lake / "other").mkdir()
        os.replace(flights / "airlines.parquet", lake / "other" / "airlines.parquet")
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=caps, refresh=True)
    full = tmp_path / "full"
    lakeql.index(lake, index_dir=full, progress=False, capabilities=caps)

    def files(d: Path) -> dict[str, bytes]:
        return {
            p.relative_to(d).as_posix(): p.read_bytes()
            for p in sorted(d.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }

    got, want = files(idx / "schemas"), files(full / "schemas")
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []

    def edges(d: Path) -> list:
        return duckdb.sql(
            f"SELECT * FROM read_parquet('{d / 'joins' / 'edges.parquet'}') ORDER BY ALL"
        ).fetchall()

    assert edges(idx) == edges(full)
