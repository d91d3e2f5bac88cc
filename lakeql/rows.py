"""Row identity: ``__rowid``, the 0-based position of a row in its table (files in catalog order).

Indexes that point at rows (embedding codes, FM-index row maps) store ``__rowid``. Every table also gets
a hidden view ``lakeql_rows."domain.name"`` = the table's columns plus ``__rowid``, so a macro can join
search hits back to whole rows::

    SELECT {{row_columns()}}, h.__rowid.score AS score
    FROM (SELECT unnest(f_impl(...)) AS __rowid) h
    JOIN query_table(lakeql_rows_view(tbl)) r ON r.__rowid = h.__rowid.rowid

A table may have columns of its own named ``__rowid`` (any case), even ``__rowid~``: in the rowid view
such a column gets one more ``~`` (:func:`escape_column`), so ``__rowid`` there is always lakeql's row id
and the join stays a plain equi-join. ``{{row_columns()}}`` (:func:`row_columns_sql`) selects every
column except the ones named exactly ``__rowid`` (lakeql's, and the hits struct named so on purpose)
under its own name (one ``~`` taken back off); ``{{row_column(name)}}`` (:func:`row_column_sql`) is a
column name as the view has it (``similar_rows``' key column).

``lakeql_rows_view(tbl)`` is deterministic, so DuckDB folds it at bind time and ``query_table`` gets a
constant; an unknown table fails there with suggestions.
"""

from __future__ import annotations

import re

from lakeql.lake import Table, quote_ident, quote_literal, quote_path

ROWID = "__rowid"
ROWS_SCHEMA = "lakeql_rows"
_OWN = re.compile(r"(?is)__rowid~*")  # table columns renamed in the rowid view (one more "~")


def escape_column(name: str) -> str:
    """A table column's name in the rowid view: ``__rowid``, ``__rowid~``, ... (any case) get one more
    ``~`` (so none is ``__rowid``); any other name is itself."""
    return name + "~" if _OWN.fullmatch(name) else name


def _not_exactly(word: str) -> str:
    """An RE2 pattern (no lookahead there) of every string but ``word`` (with ``(?is)``: any case)."""
    n = len(word)
    alts = [f".{{0,{n - 1}}}", f".{{{n + 1},}}"]
    alts += [re.escape(word[:i]) + f"[^{re.escape(word[i])}]" + (f".{{{n - 1 - i}}}" if i < n - 1 else "")
             for i in range(n)]
    return "|".join(alts)


def row_columns_sql() -> str:
    """``COLUMNS(...) AS ...``: the table's own columns of a rowid view joined to search hits, under
    their own names: every column but those named exactly ``__rowid`` (lakeql's row id, and the hits
    struct that the macros name so), an escaped ``__rowid~...`` with one ``~`` taken back off.
    Bind-time only: the plan is the same projection as ``r.* EXCLUDE (__rowid)``."""
    pattern = f"(?is)^(?:(__rowid~*)~|({_not_exactly(ROWID)}))$"
    return f"COLUMNS({quote_literal(pattern)}) AS '\\1\\2'"


def row_column_sql(name_expr: str) -> str:
    """The SQL twin of :func:`escape_column` over a SQL expression of a column name."""
    return f"regexp_replace({name_expr}, '(?is)^(__rowid~*)$', '\\1~')"


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
    rename = ""
    if columns is not None:
        own = [(c, escape_column(c)) for c in columns if escape_column(c) != c]
        if own:
            rename = " RENAME (" + ", ".join(f"{quote_ident(a)} AS {quote_ident(b)}" for a, b in own) + ")"
    clash = columns is not None and any(c.lower() in ("file_row_number", FILE_COLUMN) for c in columns)
    if table.format != "parquet" or clash:
        return (f"SELECT ordinality - 1 AS {ROWID}, * EXCLUDE (ordinality){rename} "
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
    listing = ", ".join(quote_path(p) for p in paths)
    hive = "true" if table.hive else "false"
    return (f"SELECT {rowid} AS {ROWID}, * EXCLUDE ({FILE_COLUMN}, file_row_number){rename} "
            f"FROM read_parquet("
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
