"""The lake-wide SQL functions of the foundation: ``lakeql_indexes()``, ``lakeql_tables()``,
``lakeql_columns()`` (macros in ``udfs/lakeql.sql`` over the UDFs bound here).

``lakeql_tables()`` also lists what was left out of the lake, so nothing is dropped silently: ``status``
is ``'ok'``, ``'partial'`` (some files unreadable and skipped, named in ``error``), ``'error'`` (no file
readable: the table has no view) or ``'unsupported'`` (a file of a format lakeql cannot read)."""

from __future__ import annotations

import os
from typing import Any

from lakeql.udf import scalar_udf, table_udf

INDEX_COLUMNS = [("kind", "VARCHAR"), ("table_name", "VARCHAR"), ("column_name", "VARCHAR"),
                 ("bytes", "BIGINT"), ("source_bytes", "BIGINT"), ("built_at", "TIMESTAMP WITH TIME ZONE"),
                 ("stale", "BOOLEAN"), ("path", "VARCHAR"), ("params", "VARCHAR")]
TABLE_COLUMNS = [("table_name", "VARCHAR"), ("domain", "VARCHAR"), ("name", "VARCHAR"),
                 ("source", "VARCHAR"), ("n_files", "BIGINT"), ("row_count", "BIGINT"),
                 ("source_bytes", "BIGINT"), ("n_columns", "BIGINT"), ("status", "VARCHAR"),
                 ("error", "VARCHAR")]
NAMED_COLUMNS = [("table_name", "VARCHAR"), ("domain", "VARCHAR"), ("name", "VARCHAR"), ("source", "VARCHAR"),
                 ("status", "VARCHAR"), ("error", "VARCHAR")]
COLUMN_COLUMNS = [("table_name", "VARCHAR"), ("column_name", "VARCHAR"), ("ordinal", "INTEGER"),
                  ("type", "VARCHAR"), ("note", "VARCHAR")]  # note: NULL, or how SQL must spell the name


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

    def named(name: Any) -> list[dict[str, Any]]:
        """The lakeql_tables() rows (table_name, domain, name, source, status, error only) of the tables
        whose bare name is ``name`` (case-insensitive), for an error hint: the lake's tables by name and
        the stored catalog's unreadable ones, without loading the whole catalog (lakeql_tables() on a
        10,000-table lake: 1.7 s the first time in a connection, 0.4 s after)."""
        wanted = str(name or "").lower()
        if ctx.lake is None or not wanted:
            return []
        bad = {}
        for p in _table_problems(ctx, con, wanted):
            top = p[2].replace("\\", "/").split("/", 1)[0]  # a domain may hold dots: its folder says
            if "/" in p[2] and p[1].startswith(top + "."):
                domain, bare = top, p[1][len(top) + 1:]
            else:
                domain, _, bare = p[1].partition(".")
            if bare.lower() == wanted:
                bad.setdefault(p[1], {"table_name": p[1], "domain": domain, "name": bare, "source": p[2],
                                      "status": "error" if p[0] == "table" else "unsupported",
                                      "error": p[3]})
        ok = [{"table_name": key, "domain": t.domain, "name": t.name, "source": t.source, "status": "ok",
               "error": None}
              for key, t in sorted(ctx.lake.tables.items()) if t.name.lower() == wanted and key not in bad]
        return sorted([*bad.values(), *ok], key=lambda r: r["table_name"])

    def columns(_dummy: Any = None) -> list[dict[str, Any]]:
        if ctx.lake is None:
            return []
        from lakeql.colnames import stored_form_note

        cat = ctx.catalog
        out = []
        for key in sorted(ctx.lake.tables):
            cols = cat.columns(key)
            names = None  # the table's names, listed only for a column stored in another Unicode form
            for c in cols:
                note = ""  # NULL in the macro (udfs/lakeql.sql): DuckDB converts a None ~3.5 us slower
                if not c.column_name.isascii():  # an ASCII name is NFC: the common case pays one check
                    names = names if names is not None else [x.column_name for x in cols]
                    note = stored_form_note(c.column_name, names) or ""
                out.append({"table_name": c.table_name, "column_name": c.column_name, "ordinal": c.ordinal,
                            "type": c.type, "note": note})
        return out

    def table_key(name: str) -> str:
        return ctx.table(name).key

    def rows_view(name: str) -> str:
        return ctx.rows_view(ctx.table(name))

    def row_files_view(name: str) -> str:
        return ctx.row_files_view(ctx.table(name))

    def row_column(name: str, column: str) -> str:
        """``column`` of table ``name`` as its rowid view names it; an unknown column is a lakeql error
        with the closest names (DuckDB's binder would say only "was not found in the FROM clause")."""
        from lakeql.errors import LakeqlError, did_you_mean, shown
        from lakeql.rows import escape_column

        if name is None or column is None:
            raise LakeqlError("a table and a key column are needed, got NULL")
        table = ctx.table(name)
        names = [c.column_name for c in ctx.catalog.columns(table)]
        if column.lower() not in {n.lower() for n in names}:  # DuckDB's names are case-insensitive
            from lakeql.colnames import match_column

            stored = match_column(column, names)  # typed NFC, stored NFD: the view's (stored) name
            if stored is None:
                raise LakeqlError(f"table {table.key!r} has no column {shown(column)}"
                                  f"{did_you_mean(column, names)}")
            column = stored
        return escape_column(column)

    def manifest_file(path: str) -> str:
        """``path`` unchanged; when it is this index's manifest, the manifest must read (a damaged one is
        lakeql's error naming the fix, not DuckDB's "too small to be a Parquet file"). Other paths are
        not looked at."""
        from lakeql.errors import NotIndexedError
        from lakeql.lake import glob_escape
        from lakeql.store import MANIFEST

        if ctx.store is None or path != f"{glob_escape(str(ctx.store.root))}/{MANIFEST}":
            return path
        if not os.path.lexists(ctx.store.root / MANIFEST):
            raise NotIndexedError(f"no index manifest in {str(ctx.store.root)!r}: run 'lakeql index LAKE'")
        ctx.store.entries()  # CorruptIndexError naming the fix when it cannot be read
        return path

    scalar_udf(con, "lakeql_manifest_file", manifest_file, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    # Deterministic (no side effects): DuckDB folds them at bind time, so query_table() gets a constant.
    scalar_udf(con, "lakeql_table_key", table_key, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    scalar_udf(con, "lakeql_rows_view", rows_view, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    scalar_udf(con, "lakeql_row_files_view", row_files_view, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")
    scalar_udf(con, "lakeql_row_column", row_column, ["VARCHAR", "VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="special")
    table_udf(con, "lakeql_indexes", indexes, ["INTEGER"], INDEX_COLUMNS)
    table_udf(con, "lakeql_tables", tables, ["INTEGER"], TABLE_COLUMNS)
    table_udf(con, "lakeql_columns", columns, ["INTEGER"], COLUMN_COLUMNS)
    table_udf(con, "lakeql_tables_named", named, ["VARCHAR"], NAMED_COLUMNS)


def _table_problems(ctx, con, wanted: str) -> list[tuple[str, str, str, str]]:
    """(kind, table_name, path, error) of the unreadable tables and files of an unsupported format that
    may be named ``wanted``: from the connection's catalog when it is loaded, else from the stored
    catalog's problems file (read with DuckDB, filtered), else from the catalog (loaded now)."""
    from lakeql.catalog import _current_format

    cat = getattr(ctx, "_catalog", None)
    if cat is None and ctx.store is not None:
        path = ctx.store.path("catalog", "problems.parquet")
        try:
            entry = ctx.store.find("catalog")
            if path.exists() and _current_format(entry):
                ctx.store.verify(entry)
                cur = con.cursor()
                try:
                    return cur.execute(
                        "SELECT kind, table_name, path, error FROM read_parquet(?) WHERE kind <> 'file' "
                        "AND (lower(table_name) = ? OR ends_with(lower(table_name), ?))",
                        [str(path), wanted, "." + wanted]).fetchall()
                finally:
                    cur.close()
        except Exception:  # noqa: BLE001 - a damaged stored catalog: the catalog itself says
            pass
    cat = ctx.catalog
    return [(p.kind, p.table_name, p.path, p.error) for p in cat.problems
            if p.kind != "file" and (p.table_name.lower() == wanted
                                     or p.table_name.lower().endswith("." + wanted))]
