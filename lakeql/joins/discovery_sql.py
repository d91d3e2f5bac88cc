"""The SQL surface of discovery: ``unionable_impl``, ``union_graph_impl`` and ``find_tables_impl``
(behind the ``unionable``, ``union_graph`` and ``find_tables`` macros at the end of udfs/joins.sql)."""

from __future__ import annotations

from typing import Any

from lakeql import parquet_io
from lakeql.errors import LakeqlError
from lakeql.udf import check_k, table_udf


def unionable(ctx, table: str | None, k: Any) -> list[dict[str, Any]]:
    from lakeql.joins import union
    from lakeql.joins.union_store import load

    kk = check_k(k)
    if table is None:
        raise LakeqlError("unionable needs a table name, got NULL")
    t = ctx.table(table)  # unknown table -> suggestions
    ix = load(ctx)
    if t.key not in ix.table_id:
        raise LakeqlError(f"table {t.key} is not in the discovery index: run 'lakeql index --refresh LAKE'")
    return union.unionable_rows(ix, t.key, kk, tables=ctx.require_lake().tables)


def union_graph(ctx, min_score: Any) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    from lakeql.joins.union_index import UNION_GRAPH_MAX_TABLES
    from lakeql.joins.union_store import load

    ix = load(ctx)
    path = ix.root / "union_edges.parquet"
    if not path.exists():
        raise LakeqlError(f"union_graph() is precomputed for lakes of up to {UNION_GRAPH_MAX_TABLES} "
                          f"tables (this one has {len(ix.tables)}): call unionable(table) per table")
    t = parquet_io.read_table(path)
    t = t.filter(pc.greater_equal(t["score"], float(0.0 if min_score is None else min_score)))
    return t.sort_by([("score", "descending"), ("table_name", "ascending"),
                      ("candidate_table", "ascending")]).to_pylist()


def find_tables(ctx, query: Any, k: Any) -> list[dict[str, Any]]:
    from lakeql.joins.tables import check_query, find_tables_rows
    from lakeql.joins.union_store import load

    kk = check_k(k)
    q = check_query(query)
    return find_tables_rows(load(ctx), q, kk)


def register(con, ctx) -> None:
    from lakeql.joins import tables, union

    table_udf(con, "unionable", lambda t, k: unionable(ctx, t, k), ["VARCHAR", "BIGINT"],
              union.RESULT_COLUMNS)
    table_udf(con, "union_graph", lambda s: union_graph(ctx, s), ["DOUBLE"], union.GRAPH_COLUMNS)
    table_udf(con, "find_tables", lambda q, k: find_tables(ctx, q, k), ["VARCHAR", "BIGINT"],
              tables.RESULT_COLUMNS)
