"""Row identity: ``__rowid``, the 0-based position of a row in its table (files in catalog order).

Indexes that point at rows (embedding codes, FM-index row maps) store ``__rowid``. Every table also gets
a hidden view ``lakeql_rows."domain.name"`` = the table's columns plus ``__rowid``, so a macro can join
search hits back to whole rows::

    SELECT r.* EXCLUDE (__rowid), h.score
    FROM (SELECT unnest(f_impl(...), recursive := true)) h
    JOIN query_table(lakeql_rows_view(tbl)) r ON r.__rowid = h.rowid

``lakeql_rows_view(tbl)`` is deterministic, so DuckDB folds it at bind time and ``query_table`` gets a
constant; an unknown table fails there with suggestions.
"""

from __future__ import annotations

from lakeql.lake import Table, quote_ident, quote_literal

ROWID = "__rowid"
ROWS_SCHEMA = "lakeql_rows"


#: read_parquet's filename column, named so that a data column called "filename" is free
FILE_COLUMN = "__lakeql_file"


def rowid_scan_sql(table: Table, file_rows: list[int], columns: list[str] | None = None) -> str:
    """``SELECT <rowid>, * FROM read_parquet(...)`` for ``table`` (rowid = file offset + file_row_number).

    CSV and JSON files have no row numbers of their own: their rowid is the scan's ``WITH ORDINALITY``
    position (files in catalog order, rows in file order; DuckDB preserves insertion order). So is a
    Parquet table with a data column named ``file_row_number`` (``columns``: the table's column names),
    which DuckDB's ``file_row_number`` option cannot rename.
    """
    paths = table.paths
    clash = columns is not None and any(c.lower() in ("file_row_number", FILE_COLUMN) for c in columns)
    if table.format != "parquet" or clash:
        return (f"SELECT ordinality - 1 AS {ROWID}, * EXCLUDE (ordinality) "
                f"FROM {table.scan_sql()} WITH ORDINALITY")
    offsets, acc = [], 0
    for n in file_rows:
        offsets.append(acc)
        acc += n
    if len(paths) == 1:
        rowid = "file_row_number"
    else:
        cases = " ".join(f"WHEN {quote_literal(p)} THEN {o}" for p, o in zip(paths, offsets, strict=True))
        rowid = f"(CASE {FILE_COLUMN} {cases} END) + file_row_number"
    listing = ", ".join(quote_literal(p) for p in paths)
    hive = "true" if table.hive else "false"
    return (f"SELECT {rowid} AS {ROWID}, * EXCLUDE ({FILE_COLUMN}, file_row_number) FROM read_parquet("
            f"[{listing}], filename = '{FILE_COLUMN}', file_row_number = true, union_by_name = true, "
            f"hive_partitioning = {hive})")


def rowid_scan_of(catalog, table: Table) -> str:
    """:func:`rowid_scan_sql` with the file row counts and column names the catalog knows."""
    return rowid_scan_sql(table, catalog.file_rows(table), [c.column_name for c in catalog.columns(table)])


def rows_view_name(table: Table) -> str:
    """The quoted name of the hidden rowid view of ``table``."""
    return f"{ROWS_SCHEMA}.{quote_ident(table.key)}"


def rows_view_sql(table_key_expr: str) -> str:
    """The SQL twin of :func:`rows_view_name` over a SQL expression of a table key ('domain.name')."""
    return f"('{ROWS_SCHEMA}.\"' || replace({table_key_expr}, '\"', '\"\"') || '\"')"
