"""The lake-wide SQL functions of the foundation: ``lakeql_indexes()``, ``lakeql_tables()``,
``lakeql_columns()`` (macros in ``udfs/lakeql.sql`` over the UDFs bound here).

``lakeql_tables()`` also lists what was left out of the lake, so nothing is dropped silently: ``status``
is ``'ok'``, ``'partial'`` (some files unreadable and skipped, named in ``error``), ``'error'`` (no file
readable: the table has no view) or ``'unsupported'`` (a file of a format lakeql cannot read)."""

from __future__ import annotations

from typing import Any

from lakeql.udf import scalar_udf, table_udf

INDEX_COLUMNS = [("kind", "VARCHAR"), ("table_name", "VARCHAR"), ("column_name", "VARCHAR"),
                 ("bytes", "BIGINT"), ("source_bytes", "BIGINT"), ("built_at", "TIMESTAMP WITH TIME ZONE"),
                 ("stale", "BOOLEAN"), ("path", "VARCHAR"), ("params", "VARCHAR")]
TABLE_COLUMNS = [("table_name", "VARCHAR"), ("domain", "VARCHAR"), ("name", "VARCHAR"),
                 ("source", "VARCHAR"), ("n_files", "BIGINT"), ("row_count", "BIGINT"),
                 ("source_bytes", "BIGINT"), ("n_columns", "BIGINT"), ("status", "VARCHAR"),
                 ("error", "VARCHAR")]
COLUMN_COLUMNS = [("table_name", "VARCHAR"), ("column_name", "VARCHAR"), ("ordinal", "INTEGER"),
                  ("type", "VARCHAR")]


def register(con, ctx) -> None:
    def indexes(_dummy: Any = None) -> list[dict[str, Any]]:
        if ctx.store is None:
            return []
        out = []
        for e in ctx.store.entries():
            out.append({"kind": e.kind, "table_name": e.table_name or None,
                        "column_name": e.column_name or None, "bytes": e.bytes,
                        "source_bytes": e.source_bytes, "built_at": e.built_at,
                        "stale": ctx.store.is_stale(e), "path": e.path, "params": e.params})
        return out

    def tables(_dummy: Any = None) -> list[dict[str, Any]]:
        if ctx.lake is None:
            return []
        cat = ctx.catalog
        out = []
        for key, t in sorted(ctx.lake.tables.items()):
            row = cat.table_rows.get(key, {})
            bad = [p for p in cat.problems_of(key) if p.kind == "file"]
            out.append({"table_name": key, "domain": t.domain, "name": t.name, "source": t.source,
                        "n_files": len(t.files), "row_count": row.get("row_count"),
                        "source_bytes": t.source_bytes, "n_columns": len(cat.columns(t)),
                        "status": "partial" if bad else "ok",
                        "error": "; ".join(f"skipped {p.path}: {p.error}" for p in bad) or None})
        for p in sorted(cat.problems, key=lambda p: (p.table_name, p.path)):
            if p.kind == "file":
                continue
            top = p.path.replace("\\", "/").split("/", 1)[0]  # a domain may hold dots: its folder says
            if "/" in p.path and p.table_name.startswith(top + "."):
                domain, name = top, p.table_name[len(top) + 1:]
            else:
                domain, _, name = p.table_name.partition(".")
            out.append({"table_name": p.table_name or None, "domain": domain or None, "name": name or None,
                        "source": p.path, "n_files": 0, "row_count": None, "source_bytes": None,
                        "n_columns": 0, "status": "error" if p.kind == "table" else "unsupported",
                        "error": p.error})
        return out

    def columns(_dummy: Any = None) -> list[dict[str, Any]]:
        if ctx.lake is None:
            return []
        cat = ctx.catalog
        return [{"table_name": c.table_name, "column_name": c.column_name, "ordinal": c.ordinal,
                 "type": c.type}
                for key in sorted(ctx.lake.tables) for c in cat.columns(key)]

    def table_key(name: str) -> str:
        return ctx.table(name).key

    def rows_view(name: str) -> str:
        return ctx.rows_view(ctx.table(name))

    def row_files_view(name: str) -> str:
        return ctx.row_files_view(ctx.table(name))

    # Deterministic (no side effects): DuckDB folds them at bind time, so query_table() gets a constant.
    scalar_udf(con, "lakeql_table_key", table_key, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    scalar_udf(con, "lakeql_rows_view", rows_view, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    scalar_udf(con, "lakeql_row_files_view", row_files_view, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    table_udf(con, "lakeql_indexes", indexes, ["INTEGER"], INDEX_COLUMNS)
    table_udf(con, "lakeql_tables", tables, ["INTEGER"], TABLE_COLUMNS)
    table_udf(con, "lakeql_columns", columns, ["INTEGER"], COLUMN_COLUMNS)
