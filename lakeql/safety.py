"""Treat SQL text from users and agents as hostile until parsed.

Two guards, shared by every front end (SQL functions, the CLI, the MCP server):

* :func:`parse_filter` turns a row predicate (``semantic_search(..., filter := ...)``) into ONE
  expression over a table's own columns, built only from an allow-list of scalar operators and
  functions, re-rendered from the sqlglot AST with quoted identifiers. Statements, subqueries, table
  functions (``read_text``, ``read_csv`` ...), parameters, lakeql's own UDFs and unknown columns are
  refused, so ``1=1); COPY ... TO ...; SELECT 0 WHERE (1=1`` cannot break out of ``WHERE (...)``.
  The result must still be evaluated on the caller's own connection (a cursor of it), never on a
  private ``duckdb.connect()``, so the caller's ``allowed_directories`` / ``enable_external_access``
  settings apply.
* :func:`require_read_only` accepts a single SELECT (or a plain ``EXPLAIN`` of one) using DuckDB's own
  statement type (``con.extract_statements``), not a regex: ``allowed_directories`` alone still lets
  ``COPY ... TO`` write inside an allowed folder.

:func:`nesting_depth` bounds the nesting of parentheses on the token stream (no recursion), so 3,000
nested parentheses give a clear error instead of a ``RecursionError``.
"""

from __future__ import annotations

import re
from typing import Any

from lakeql.errors import LakeqlError

MAX_FILTER_CHARS = 10_000
MAX_NESTING = 100

#: sqlglot expression classes a filter may contain (besides the functions below).
_NODE_NAMES = (
    "Column Identifier Literal Boolean Null Paren Tuple And Or Not Xor EQ NEQ GT GTE LT LTE NullSafeEQ "
    "NullSafeNEQ Is In Between Like ILike SimilarTo Glob Escape Add Sub Mul Div IntDiv Mod Neg DPipe "
    "Bracket Case If Cast TryCast DataType DataTypeParam Interval Extract"
)
#: sqlglot classes of the scalar functions a filter may call (string, math, date, null handling).
_FUNC_NAMES = (
    "Lower Upper Length Trim Substring Left Right StrPosition Contains StartsWith EndsWith Replace Concat "
    "ConcatWs Pad Reverse Repeat RegexpLike RegexpILike RegexpFullMatch RegexpReplace RegexpExtract "
    "SplitPart Levenshtein JarowinklerSimilarity Abs Round Floor Ceil Sqrt Ln Log Exp Pow Sign Greatest "
    "Least Year Month Day Hour Minute Second DayOfWeek DayOfYear Week Quarter TimestampTrunc DateTrunc "
    "DateDiff TimeToStr StrToTime TimeToUnix DateFromParts Coalesce Nullif IsNan IsInf Trunc ArrayContains "
    "ArraySize"
)
#: functions sqlglot does not model (parsed as ``Anonymous``), by their DuckDB name.
ANONYMOUS_FUNCTIONS = frozenset(
    "strlen suffix prefix date_part datepart ifnull nullif lcase ucase list_contains len array_length "
    "ilike_escape like_escape not_like_escape bit_length octet_length ascii chr unicode isfinite "
    "cbrt degrees radians pi sin cos tan asin acos atan atan2 even gcd lcm factorial "
    "dayname monthname yearweek isodow isoyear weekday weekofyear millisecond microsecond epoch_ms "
    "make_timestamp to_timestamp age last_day".split())
#: plain types a filter may CAST to.
CAST_TYPES = frozenset(
    "BOOLEAN TINYINT SMALLINT INT INTEGER BIGINT HUGEINT UTINYINT USMALLINT UINT UBIGINT FLOAT DOUBLE "
    "DECIMAL VARCHAR CHAR TEXT NCHAR NVARCHAR DATE TIME TIMESTAMP TIMESTAMPTZ TIMESTAMPNTZ INTERVAL".split())

#: a table name that DuckDB would read as a file (``FROM 'dir/data.csv'``)
FILE_NAME_PATTERN = re.compile(
    r"[/\\]|\.(csv|tsv|txt|parquet|json|jsonl|ndjson|gz|zst|xlsx|arrow|db|duckdb)$", re.I)
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN\s+(?!ANALY[SZ]E\b)", re.IGNORECASE)


class UnsafeSqlError(LakeqlError):
    """SQL text that lakeql refuses to run: not one expression / not a read-only query / too deep."""


def _classes(names: str) -> tuple[type, ...]:
    from sqlglot import exp

    return tuple(c for c in (getattr(exp, n, None) for n in names.split()) if isinstance(c, type))


def nesting_depth(text: str, dialect: str = "duckdb") -> int:
    """Deepest nesting of ``(``/``[``/``{`` in ``text``, counted on sqlglot's tokens (strings ignored)."""
    import sqlglot
    from sqlglot.tokens import TokenType

    opens = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
    closes = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}
    depth = deepest = 0
    for tok in sqlglot.tokenize(text, read=dialect):
        if tok.token_type in opens:
            depth += 1
            deepest = max(deepest, depth)
        elif tok.token_type in closes:
            depth -= 1
    return deepest


def check_nesting(text: str, limit: int = MAX_NESTING) -> None:
    """Raise :class:`UnsafeSqlError` when ``text`` nests brackets deeper than ``limit``.

    Text that does not tokenize (an unterminated string) passes: the parser then reports it, without
    recursing.
    """
    from sqlglot.errors import TokenError

    try:
        depth = nesting_depth(text)
    except TokenError:
        return
    if depth > limit:
        raise UnsafeSqlError(f"the SQL text nests parentheses {depth} deep; at most {limit} are allowed")


def _tree_depth(node) -> int:
    """Depth of a sqlglot tree, iteratively (a long ``a AND b AND ...`` chain is deep without brackets)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in n.iter_expressions())
    return deepest


def parse_filter(text: Any, columns: list[str]) -> str:
    """One safe boolean expression over ``columns``, re-rendered as DuckDB SQL with quoted identifiers.

    Raises :class:`UnsafeSqlError` naming what was refused. Column names match case-insensitively and
    come back spelled as in ``columns``.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    src = str(text)
    if len(src) > MAX_FILTER_CHARS:
        raise UnsafeSqlError(f"the filter is {len(src):,} characters long; at most {MAX_FILTER_CHARS:,} "
                             "are allowed")
    check_nesting(src)
    try:
        tree = sqlglot.parse_one(src, read="duckdb", into=exp.Condition)
    except (ParseError, TokenError) as exc:
        raise UnsafeSqlError("the filter must be one SQL expression over the table's columns, such as "
                             f"lines > 500 AND module LIKE 'email%' ({_parse_message(exc)})") from None
    except RecursionError:
        raise UnsafeSqlError("the filter is nested too deeply") from None
    if _tree_depth(tree) > 4 * MAX_NESTING:
        raise UnsafeSqlError("the filter is nested too deeply")
    if tree.find(exp.Query, exp.Subquery) is not None:
        raise UnsafeSqlError("filter: a subquery is not allowed in a filter (one expression over the table's "
                             "columns with scalar functions only)")
    by_lower = {c.lower(): c for c in columns}
    allowed = set(_classes(_NODE_NAMES + " " + _FUNC_NAMES))
    for node in list(tree.walk()):
        if isinstance(node, exp.Column):
            if node.table or not isinstance(node.this, exp.Identifier):
                raise UnsafeSqlError(f"filter: refer to columns by their name only, not {node.sql('duckdb')}")
            real = by_lower.get(node.name.lower())
            if real is None:
                from lakeql.errors import did_you_mean

                hint = did_you_mean(node.name, columns)
                raise UnsafeSqlError(f"filter: unknown column {node.name!r}{hint}")
            fresh = exp.column(real, quoted=True)
            if node is tree:
                tree = fresh  # a bare boolean column is the whole filter
            else:
                node.replace(fresh)
        elif isinstance(node, exp.Anonymous):
            if str(node.name).lower() not in ANONYMOUS_FUNCTIONS:
                raise UnsafeSqlError(f"filter: function {node.name}() is not allowed in a filter (only "
                                     "scalar string, math, date and comparison functions are)")
        elif isinstance(node, exp.DataType):
            if node.this.name not in CAST_TYPES or node.expressions and node.this.name != "DECIMAL":
                raise UnsafeSqlError(f"filter: CAST to {node.sql('duckdb')} is not allowed (plain types "
                                     "only)")
        elif isinstance(node, exp.Var):
            if not isinstance(node.parent, exp.Interval | exp.Extract):
                raise UnsafeSqlError(f"filter: {node.sql('duckdb')!r} is not allowed here")
        elif type(node) in allowed:
            continue
        else:
            what = "a subquery" if isinstance(node, exp.Query | exp.Subquery) else (
                f"function {node.sql_name()}()" if isinstance(node, exp.Func) else type(node).__name__)
            raise UnsafeSqlError(f"filter: {what} is not allowed in a filter (one expression over the "
                                 "table's columns with scalar functions only)")
    try:
        return tree.sql(dialect="duckdb", identify=True, comments=False)
    except RecursionError:
        raise UnsafeSqlError("the filter is nested too deeply") from None


def _parse_message(exc: Exception) -> str:
    """sqlglot's own description of a parse error, with its position, in one short line."""
    errors = getattr(exc, "errors", None) or []
    if not errors:
        return _first_line(exc)
    e = errors[0]
    desc = str(e.get("description") or "").split("<Token")[0].strip().rstrip(":") or "invalid syntax"
    where = f" at line {e.get('line')}, column {e.get('col')}" if e.get("line") else ""
    return f"{desc}{where}"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


# ---------------------------------------------------------------------------- statements
def statement_types(con, sql: str) -> list[str]:
    """DuckDB's own statement type name (``SELECT``, ``COPY``, ``ATTACH`` ...) of each statement."""
    return [s.type.name for s in con.extract_statements(sql)]


def require_read_only(con, sql: Any) -> str:
    """``sql`` if it is exactly one SELECT (or plain ``EXPLAIN SELECT``), else :class:`UnsafeSqlError`.

    The type comes from DuckDB's parser (``con.extract_statements``), so comments, odd spacing or
    ``WITH ... SELECT`` are judged as DuckDB will run them. ``EXPLAIN ANALYZE`` runs its statement, so it
    is refused like the statement would be.
    """
    import duckdb

    if sql is None or not str(sql).strip():
        raise UnsafeSqlError("empty SQL text: pass one SELECT query")
    text = str(sql)
    check_nesting(text)
    try:
        stmts = con.extract_statements(text)
    except duckdb.Error as exc:
        from lakeql.sqlerrors import error_offset, keyword_column_hint, quote_hint

        hint = (quote_hint(str(exc), con)  # a table name that needs quotes, or a column named by a keyword
                or keyword_column_hint(text, error_offset(str(exc), text), con)).removeprefix("\nHint: ")
        raise UnsafeSqlError(f"syntax error: {_first_line(exc)}" + (f" ({hint})" if hint else "")) from None
    if len(stmts) != 1:
        raise UnsafeSqlError(f"pass exactly one statement, got {len(stmts)} "
                             f"({', '.join(s.type.name for s in stmts)})")
    kind = stmts[0].type.name
    if kind == "SELECT":
        return text
    if kind == "EXPLAIN":
        inner = _EXPLAIN_PREFIX.sub("", stmts[0].query.strip(), count=1)
        if inner != stmts[0].query.strip():
            try:
                inner_stmts = con.extract_statements(inner)
            except duckdb.Error:
                inner_stmts = []
            if len(inner_stmts) == 1 and inner_stmts[0].type.name == "SELECT":
                return text
        raise UnsafeSqlError("only EXPLAIN of a SELECT query is allowed (EXPLAIN ANALYZE runs the statement)")
    raise UnsafeSqlError(f"only read-only queries (SELECT) are allowed; this is a {kind} statement")


def is_read_only_query(con, sql: Any) -> bool:
    """True when ``sql`` is one SELECT (or plain ``EXPLAIN`` of one), by DuckDB's statement type."""
    try:
        require_read_only(con, sql)
    except UnsafeSqlError:
        return False
    return True


# ---------------------------------------------------------------------------- files
#: DuckDB table functions (and scalar functions) that read or list files, or reach other databases.
FILE_FUNCTIONS = frozenset(
    "read_csv read_csv_auto read_parquet parquet_scan read_json read_json_auto read_json_objects "
    "read_json_objects_auto read_ndjson read_ndjson_auto read_ndjson_objects read_text read_blob glob "
    "parquet_metadata parquet_schema parquet_file_metadata parquet_kv_metadata parquet_bloom_probe "
    "read_xlsx st_read sniff_csv iceberg_scan delta_scan sqlite_scan sqlite_attach postgres_scan "
    "mysql_scan read_ipc arrow_scan getenv".split())


def file_functions(tree) -> list[Any]:
    """The nodes of a sqlglot tree that read files: ``read_csv(...)``, ``glob(...)``, ``FROM 'data.csv'``."""
    from sqlglot import exp

    found = []
    for node in tree.walk():
        if isinstance(node, exp.Func):
            name = str(node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in FILE_FUNCTIONS:
                found.append(node)
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier) and \
                FILE_NAME_PATTERN.search(node.this.name):
            found.append(node)  # FROM 'data.csv': DuckDB's replacement scan reads the file
    return found
