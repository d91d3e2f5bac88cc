"""Row identity: ``__rowid``, the 0-based position of a row in its table (files in catalog order).

Indexes that point at rows (embedding codes, FM-index row maps) store ``__rowid``. Every table also gets
a hidden view ``lakeql_rows."domain.name"`` = the table's columns plus ``__rowid``, so a macro can join
search hits back to whole rows::

    SELECT {{row_columns()}}, h.__rowid.score AS score
    FROM (SELECT unnest(f_impl(...)) AS __rowid) h
    {{join_rows(tbl, h.__rowid.rowid)}}

``{{join_rows(tbl, rowid)}}`` (:func:`join_rows_sql`) joins the view as ``r`` on the hits' rowids. It
does not join on ``__rowid`` (for a table of several files an expression of the file name, which no
DuckDB filter passes through: every file would be read): the rowid view also has the scan's own file
name and row number (``__rowid_file``, ``__rowid_row``), and a second hidden view of the table's files
(``lakeql_row_files``: each file's name, first rowid and end) turns each hit into (file, row number), so
the join hands the Parquet scan ``filename IN (...)`` and ``file_row_number IN (...)`` filters: only the
files and row groups holding hits are read.

A table may have columns of its own named ``__rowid`` (any case), even ``__rowid~`` (or
``__rowid_file``, ``__rowid_row``): in the rowid view such a column gets one more ``~``
(:func:`escape_column`), so ``__rowid`` there is always lakeql's row id and the joins stay plain
equi-joins. ``{{row_columns()}}`` (:func:`row_columns_sql`) selects every column except the ones named
exactly ``__rowid``, ``__rowid_file`` or ``__rowid_row`` (lakeql's, and the hits struct named so on
purpose) under its own name (one ``~`` taken back off); ``{{row_column(name)}}``
(:func:`row_column_sql`) is a column name as the view has it (``similar_rows``' key column).

``lakeql_rows_view(tbl)`` is deterministic, so DuckDB folds it at bind time and ``query_table`` gets a
constant; an unknown table fails there with suggestions.
"""

from __future__ import annotations

import re

from lakeql.lake import Table, quote_ident, quote_literal, quote_path

ROWID = "__rowid"
ROW_FILE = "__rowid_file"  # the rowid view's file name (read_parquet's filename) ...
ROW_NUMBER = "__rowid_row"  # ... and row number in that file (file_row_number)
HIDDEN = (ROWID, ROW_FILE, ROW_NUMBER)  # lakeql's columns of a rowid view (and of a row-files view)
ROWS_SCHEMA = "lakeql_rows"
_HIDDEN_RE = "(?:" + "|".join(HIDDEN) + ")"
_OWN = re.compile(rf"(?is){_HIDDEN_RE}~*")  # table columns renamed in the rowid view (one more "~")


def escape_column(name: str) -> str:
    """A table column's name in the rowid view: ``__rowid``, ``__rowid~``, ... (any case) get one more
    ``~`` (so none is ``__rowid``); any other name is itself."""
    return name + "~" if _OWN.fullmatch(name) else name


def _not_any(words: tuple[str, ...]) -> str:
    """An RE2 pattern (no lookahead there) of every string but ``words`` (lower case; with ``(?is)``:
    any case): the empty string unless a word, and for each prefix ``p`` of a word: ``p`` itself when
    it is not a word, ``p`` + a character that no word has next + anything."""
    prefixes = sorted({w[:i] for w in words for i in range(len(w) + 1)})
    alts = []
    for p in prefixes:
        if p and p not in words:
            alts.append(re.escape(p))
        nxt = sorted({w[len(p)] for w in words if w.startswith(p) and len(w) > len(p)})
        alts.append(re.escape(p) + ("[^" + "".join(re.escape(c) for c in nxt) + "]" if nxt else ".") + ".*")
    if "" not in words:
        alts.append("")
    return "|".join(alts)


def row_columns_sql() -> str:
    """``COLUMNS(...) AS ...``: the table's own columns of a rowid view joined to search hits, under
    their own names: every column but those named exactly ``__rowid``, ``__rowid_file`` or
    ``__rowid_row`` (lakeql's row id, file and row number, the row-files view's columns, and the hits
    struct that the macros name ``__rowid``), an escaped ``__rowid~...`` with one ``~`` taken back off.
    Bind-time only: the plan is the same projection as ``r.* EXCLUDE (__rowid, ...)``."""
    pattern = f"(?is)^(?:({_HIDDEN_RE}~*)~|({_not_any(HIDDEN)}))$"
    return f"COLUMNS({quote_literal(pattern)}) AS '\\1\\2'"


def row_column_sql(name_expr: str) -> str:
    """The SQL twin of :func:`escape_column` over a SQL expression of a column name."""
    return f"regexp_replace({name_expr}, '(?is)^({_HIDDEN_RE}~*)$', '\\1~')"


#: read_parquet's filename column, named so that a data column called "filename" is free
FILE_COLUMN = "__lakeql_file"


def rowid_scan_sql(table: Table, file_rows: list[int], columns: list[str] | None = None) -> str:
    """``SELECT <rowid>, * FROM read_parquet(...)`` for ``table`` (rowid = file offset + file_row_number).

    CSV and JSON files have no row numbers of their own: their rowid is the scan's ``WITH ORDINALITY``
    position (files in catalog order, rows in file order; DuckDB preserves insertion order). So is a
    Parquet table with a data column named ``file_row_number`` (``columns``: the table's column names),
    which DuckDB's ``file_row_number`` option cannot rename. Either way the view also has
    ``__rowid_file`` and ``__rowid_row`` (the file name and row number that :func:`row_files_sql` maps
    a rowid to; an ordinality scan: '' and the rowid).
    """
    paths = table.paths
    rename = ""
    if columns is not None:
        own = [(c, escape_column(c)) for c in columns if escape_column(c) != c]
        if own:
            rename = " RENAME (" + ", ".join(f"{quote_ident(a)} AS {quote_ident(b)}" for a, b in own) + ")"
    if not _numbered(table, columns):
        return (f"SELECT ordinality - 1 AS {ROWID}, ''::VARCHAR AS {ROW_FILE}, "
                f"ordinality - 1 AS {ROW_NUMBER}, * EXCLUDE (ordinality){rename} "
                f"FROM {table.scan_sql()} WITH ORDINALITY")
    offsets = _offsets(file_rows)
    if len(paths) == 1:
        rowid = "file_row_number"
    else:
        cases = " ".join(f"WHEN {quote_literal(p)} THEN {o}" for p, o in zip(paths, offsets, strict=True))
        rowid = f"(CASE {FILE_COLUMN} {cases} END) + file_row_number"
    listing = ", ".join(quote_path(p) for p in paths)
    hive = "true" if table.hive else "false"
    return (f"SELECT {rowid} AS {ROWID}, {FILE_COLUMN} AS {ROW_FILE}, file_row_number AS {ROW_NUMBER}, "
            f"* EXCLUDE ({FILE_COLUMN}, file_row_number){rename} "
            f"FROM read_parquet("
            f"[{listing}], filename = '{FILE_COLUMN}', file_row_number = true, union_by_name = true, "
            f"hive_partitioning = {hive})")


def _numbered(table: Table, columns: list[str] | None) -> bool:
    """Whether :func:`rowid_scan_sql` numbers ``table``'s rows by file and ``file_row_number``."""
    clash = columns is not None and any(c.lower() in ("file_row_number", FILE_COLUMN) for c in columns)
    return table.format == "parquet" and not clash


def _offsets(file_rows: list[int]) -> list[int]:
    out, acc = [], 0
    for n in file_rows:
        out.append(acc)
        acc += n
    return out


def row_files_sql(table: Table, file_rows: list[int], columns: list[str] | None = None) -> str:
    """The row-files view of ``table``: one row per file, ``__rowid_file`` (its name as the rowid view
    has it), ``__rowid`` (its first rowid) and ``__rowid_row`` (the rowid after its last row), so that
    :func:`join_rows_sql` turns a rowid into the (file, row number) the Parquet scan can filter on.
    An ordinality-numbered table: one entry ('', 0, 2^62) covering every rowid."""
    if not _numbered(table, columns):
        rows = f"('', 0, {1 << 62})"
    else:
        rows = ", ".join(f"({quote_literal(p)}, {o}, {o + n})"
                         for p, o, n in zip(table.paths, _offsets(file_rows), file_rows, strict=True))
    return (f"SELECT col0::VARCHAR AS {ROW_FILE}, col1::BIGINT AS {ROWID}, col2::BIGINT AS {ROW_NUMBER} "
            f"FROM (VALUES {rows})")


def join_rows_sql(view_expr: str, files_expr: str, rowid_expr: str) -> str:
    """``JOIN ... r ON ...``: a rowid view (``view_expr``: a SQL expression of its name) joined as ``r``
    to the rows whose rowid is ``rowid_expr``, through its row-files view (``files_expr``, joined as
    ``rf``) on the scan's own file name and row number (see the module doc)."""
    return (f"JOIN query_table({files_expr}) rf "
            f"ON {rowid_expr} >= rf.{ROWID} AND {rowid_expr} < rf.{ROW_NUMBER} "
            f"JOIN query_table({view_expr}) r ON r.{ROW_FILE} = rf.{ROW_FILE} "
            f"AND r.{ROW_NUMBER} = {rowid_expr} - rf.{ROWID}")


def rowid_scan_of(catalog, table: Table) -> str:
    """:func:`rowid_scan_sql` with the file row counts and column names the catalog knows."""
    return rowid_scan_sql(table, catalog.file_rows(table), [c.column_name for c in catalog.columns(table)])


def row_files_of(catalog, table: Table) -> str:
    """:func:`row_files_sql` with the file row counts and column names the catalog knows."""
    return row_files_sql(table, catalog.file_rows(table), [c.column_name for c in catalog.columns(table)])


def rows_view_name(table: Table) -> str:
    """The quoted name of the hidden rowid view of ``table``."""
    return f"{ROWS_SCHEMA}.{quote_ident(table.key)}"


#: the schema of the row-files views: in a connection's ``lakeql_rows`` database, or in ``lake.duckdb``
#: (the stock CLI) beside the ``lakeql_rows`` schema
FILES_SCHEMA = "lakeql_row_files"


def row_files_view_name(table: Table, cli: bool = False) -> str:
    """The quoted name of the hidden row-files view of ``table`` (on a lakeql connection, or ``cli``:
    in ``lake.duckdb``)."""
    return f"{'' if cli else ROWS_SCHEMA + '.'}{FILES_SCHEMA}.{quote_ident(table.key)}"


def rows_view_sql(table_key_expr: str) -> str:
    """The SQL twin of :func:`rows_view_name` over a SQL expression of a table key ('domain.name')."""
    return f"('{ROWS_SCHEMA}.\"' || replace({table_key_expr}, '\"', '\"\"') || '\"')"


def row_files_view_sql(table_key_expr: str) -> str:
    """The SQL twin of :func:`row_files_view_name` (``cli``) over a SQL expression of a table key."""
    return f"('{FILES_SCHEMA}.\"' || replace({table_key_expr}, '\"', '\"\"') || '\"')"
