"""lakeql's wording of DuckDB errors that would send a user the wrong way (used by every front end and by
:class:`lakeql.dbapi.LakeqlConnection`): a table in the lake that has no view, a scalar function in
``FROM``, a table name that needs quotes written without them."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_TABLE_FUNCTION_MISSING = re.compile(r"Table Function with name (\w+) does not exist")
_TABLE_MISSING = re.compile(r"Catalog Error: Table with name (.+?) does not exist!")


def unreadable_table_message(msg: str, con: Any) -> str:
    """lakeql's one-line error when ``msg`` is DuckDB's 'Table with name X does not exist' and the lake
    has a table named X that has no view: left out as unreadable (the catalog's reason and the fix), or
    whose view could not be made when connecting. ``''`` otherwise (or when ``con`` has no lake).

    DuckDB names only the bare table: the domain the query wrote is read from its caret line when the
    message has one (``d2.t`` is never blamed on an unreadable ``d1.t``); without it, a table of that name
    that reads (in another domain, the query left it unqualified) means DuckDB's own 'Did you mean' is
    the fix, so ``''``."""
    from lakeql.catalog import unreadable_message
    from lakeql.lake import quote_ident

    m = _TABLE_MISSING.search(msg)
    if not m:
        return ""
    try:
        rows = con.execute(
            "SELECT r.table_name, r.domain, r.name, r.source, r.status, r.error FROM "
            "(SELECT unnest(lakeql_tables_named_impl(?)) AS r)",
            [m.group(1)],
        ).fetchall()
    except Exception:  # noqa: BLE001 - a hint must never hide the error itself
        return ""
    domain_written = _referenced_domain(msg)
    if domain_written is not None:
        rows = [r for r in rows if str(r[1]).lower() == domain_written.lower()]

    def binds(domain: str, name: str) -> bool:
        try:  # a catalogued table: does its view bind? (LIMIT 0 reads no rows)
            con.execute(f"SELECT * FROM {quote_ident(domain)}.{quote_ident(name)} LIMIT 0").fetchall()
            return True
        except Exception:  # noqa: BLE001 - no view: the table was left out when connecting
            return False

    readable = [r for r in rows if r[4] not in ("error", "unsupported")]
    if domain_written is None and any(binds(r[1], r[2]) for r in readable):
        return ""  # the name is there, readable, in another domain: DuckDB's 'Did you mean' says where
    for key, domain, name, source, status, error in rows:
        if status in ("error", "unsupported"):
            return unreadable_message(key, error or status, source)
        if not binds(domain, name):
            return (
                f"table {key!r} is in the lake but its view could not be made when connecting (its files "
                "no longer read as catalogued; the warning at connect says why): fix or replace its "
                "files, then run 'lakeql index LAKE --refresh' ('lakeql doctor LAKE' checks it)"
            )
    return ""


_IDENT = r'(?:"(?:[^"]|"")*"|[^\s."(),;]+)'
_QUALIFIED = re.compile(rf"({_IDENT})\s*\.\s*{_IDENT}")


def _referenced_domain(msg: str) -> str | None:
    """The domain (schema) of the table reference DuckDB's caret points at (``LINE n: ...`` then a line of
    ``^``), or None when the reference is unqualified or the message has no caret."""
    lines = msg.splitlines()
    for i, line in enumerate(lines[:-1]):
        head = re.match(r"LINE \d+: ", line)
        caret = lines[i + 1].find("^")
        if head is None or caret < 0:
            continue
        ref = _QUALIFIED.match(line, caret)
        if ref is None:
            return None
        word = ref.group(1)
        return word[1:-1].replace('""', '"') if word.startswith('"') else word
    return None


def scalar_in_from_hint(msg: str, con: Any) -> str:
    """A hint line when ``msg`` says a table function is missing but ``con`` has a scalar of that name."""
    m = _TABLE_FUNCTION_MISSING.search(msg)
    if not m or f"Hint: {m.group(1)} is a scalar function" in msg:  # a LakeqlConnection added it already
        return ""
    try:
        found = con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = ? "
            "AND function_type IN ('scalar', 'macro')",
            [m.group(1)],
        ).fetchall()[0][0]  # fetchall: a fetchone() leaves DuckDB an unfinished result on the user's con
    except Exception:  # noqa: BLE001 - a hint must never hide the error itself
        return ""
    if not found:
        return ""
    name = m.group(1)
    return (
        f"\nHint: {name} is a scalar function: call it in the SELECT list, e.g. SELECT {name}(...) AS value"
    )


# a name DuckDB's lexer reads unquoted: ASCII letters, '_', digits and '$' after the first character, and any
# non-ASCII character but whitespace ('geo.größe', '名前' need no quotes); keywords are not told apart here
# (needs_quotes does)
PLAIN_NAME = re.compile(r"(?:[A-Za-z_]|[^\x00-\x7f\s])(?:[A-Za-z0-9_$]|[^\x00-\x7f\s])*\Z")


@lru_cache(maxsize=1)
def reserved_words() -> frozenset[str]:
    """DuckDB's reserved keywords (``select``, ``from``, ``order``, ...), lower-cased: a table or column so
    named must be quoted in SQL. Asked of DuckDB itself once per process (~1 ms)."""
    import duckdb

    rows = duckdb.connect().execute(
        "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()
    return frozenset(r[0].lower() for r in rows)


def needs_quotes(name: str) -> bool:
    """Whether SQL can name ``name`` only quoted: not a plain identifier, or a reserved keyword."""
    return not PLAIN_NAME.match(name) or name.lower() in reserved_words()
_LINE = re.compile(r"LINE \d+: ")
# string literals and comments, blanked before looking for table names (a name in them is no table's)
# An unclosed one runs to the end (as DuckDB reads it): one pass over hostile SQL ('/*a' * 80,000 took
# minutes as '/\*.*?\*/', which rescans to the end from every '/*')
_NOT_NAMES = re.compile(r"'(?:[^']|'')*(?:'|\Z)|--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/|\Z)")


_WORDS = re.compile(r"\w+")
# characters unquoted_table may scan (str.find over the SQL per candidate table): ~0.1 s
_SCAN_BUDGET = 50_000_000


def unquoted_table(sql: str, names: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(as written, quoted) for the first table ``(domain, name)`` of ``names`` that ``sql`` names without
    the quotes its name needs: ``iso.iso_3166-1``, ``stats models.fertility``, or a bare name that itself
    needs quoting (``iso_3166-1``; a bare keyword is not looked for: it is in every query). Tables whose names
    are plain identifiers and no keywords are skipped."""
    from lakeql.lake import quote_ident

    low = _NOT_NAMES.sub(lambda m: " " * len(m.group()), sql).lower()
    words = set(_WORDS.findall(low))
    budget = _SCAN_BUDGET
    for dom, name in names:
        if not (needs_quotes(dom) or needs_quotes(name)):
            continue
        for written in [f"{dom}.{name}"] + ([name] if not PLAIN_NAME.match(name) else []):
            w = written.lower()
            if not all(x in words for x in _WORDS.findall(w)):
                continue  # a word of the name is not a word of the SQL: not named there (a set lookup)
            budget -= len(low)
            if budget < 0:  # a hint is not worth seconds (hostile SQL naming many tables' words)
                return None
            i = low.find(w)
            while i >= 0:
                before = low[i - 1] if i else " "
                end = i + len(w)
                after = low[end] if end < len(low) else " "
                if not (before.isalnum() or before in '_".') and not (after.isalnum() or after in '_"'):
                    return written, f"{quote_ident(dom)}.{quote_ident(name)}"
                i = low.find(w, i + 1)
    return None


def quote_hint(msg: str, con: Any) -> str:
    """A hint line when ``msg`` is DuckDB's syntax error for a query (its ``LINE n:`` text) that names a
    lake table needing quotes without them (``syntax error at or near "-"`` on ``iso.iso_3166-1``)."""
    if "Parser Error" not in msg or "must be quoted in SQL" in msg:
        return ""
    lines = [line[m.end():] for line in msg.splitlines() if (m := _LINE.match(line))]
    if not lines:
        return ""
    try:
        # a cursor of its own: the caller's connection (the MCP server's, shared by concurrent calls) keeps
        # its pending result
        cur = con.cursor() if hasattr(con, "cursor") else con
        rows = cur.execute("SELECT domain, name FROM lakeql_tables() WHERE domain IS NOT NULL").fetchall()
    except Exception:  # noqa: BLE001 - a hint must never hide the error itself
        return ""
    hit = unquoted_table("\n".join(lines), rows)
    if hit:
        return f"\nHint: {hit[0]} is a table whose name must be quoted in SQL: {hit[1]}"
    return _keyword_column_hint(msg, cur)


def _keyword_column_hint(msg: str, cur: Any) -> str:
    """A hint when DuckDB's syntax error is at a reserved word that names a column of the lake (``select``,
    ``order``: Hive and Spark tables have them): it must be quoted (trial13)."""
    m = re.search(r'at or near "([^"]+)"', msg)
    if m is None or m.group(1).lower() not in reserved_words():
        return ""
    try:
        row = cur.execute("SELECT column_name, table_name FROM lakeql_columns() WHERE lower(column_name) = ? "
                          "ORDER BY table_name LIMIT 1", [m.group(1).lower()]).fetchone()
    except Exception:  # noqa: BLE001 - a hint must never hide the error itself
        return ""
    if row is None:
        return ""
    return (f'\nHint: {row[0]} is a column of {row[1]} whose name is a reserved word: quote it as '
            f'"{row[0].replace(chr(34), chr(34) * 2)}"')
