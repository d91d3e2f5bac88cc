"""lakeql's wording of DuckDB errors that would send a user the wrong way (used by every front end and by
:class:`lakeql.dbapi.LakeqlConnection`): a table in the lake that has no view, a scalar function in
``FROM``, a table name that needs quotes written without them."""

from __future__ import annotations

import re
import threading
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
    return f"\nHint: {hit[0]} is a table whose name must be quoted in SQL: {hit[1]}" if hit else ""


# a name as DuckDB's lexer reads it unquoted (keywords are such names); blanked first: string literals,
# comments and quoted identifiers ("Group" is no keyword)
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_QUOTED_IDENT = re.compile(r'"(?:[^"]|"")*(?:"|\Z)')
HINT_SECONDS = 5.0  # the most a keyword hint's look-up of the lake's columns may take (10k tables: ~0.3 s)
_CARET = re.compile(r"^LINE (\d+): (.*)\n( *)\^", re.MULTILINE)


def error_offset(msg: str, sql: str) -> int | None:
    """The character offset in ``sql`` of the caret under DuckDB's ``LINE n: ...`` text in ``msg``, or None.
    A long line is shown as a window starting or ending with ``...``: it is found in the line."""
    m = _CARET.search(msg)
    if not m:
        return None
    lines = sql.split("\n")  # DuckDB numbers lines by '\n'
    n = int(m.group(1))
    if not 1 <= n <= len(lines):
        return None
    shown, col = m.group(2), len(m.group(3)) - len(f"LINE {m.group(1)}: ")
    start = 0
    if shown.startswith("..."):
        shown, col = shown[3:], col - 3
        start = lines[n - 1].find(shown.removesuffix("...")) if shown.removesuffix("...") else -1
        if start < 0:
            return None
    if col < 0:
        return None
    return sum(len(line) + 1 for line in lines[:n - 1]) + start + _char_index(shown, col)


def _char_index(shown: str, col: int) -> int:
    """The index in ``shown`` of the character under a caret ``col`` display columns in: DuckDB places its
    caret by display width, and a wide character (日本語, an emoji) takes two columns, a combining mark none
    (the caret after '日本語日本語' was 6 columns right of the error, and the hint missed it: review34)."""
    import unicodedata

    width = 0
    for i, ch in enumerate(shown):
        if width >= col:
            return i
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return len(shown) + col - width


def keyword_column_hint(sql: str, offset: int | None, con: Any) -> str:
    """A hint line when a syntax error at ``offset`` of ``sql`` sits at, or just after, a reserved keyword
    written bare that is the name of a lake column (``SELECT Group, ...``, ``WHERE order = 1``, ``desc.``):
    DuckDB says only 'syntax error at or near ","', and the schema files list such a column as ``Group``.
    ``''`` when no such keyword or column (the lake's columns come from ``lakeql_columns()`` on ``con``)."""
    found = keyword_column(sql, offset, con)
    if found is None:
        return ""
    word, quoted, tables = found
    return (f"\nHint: {word} is an SQL keyword: write the column {quoted} in double quotes "
            f"(a column of {tables})")


def keyword_column(sql: str, offset: int | None, con: Any) -> tuple[str, str, str] | None:
    """(keyword as written, the column's quoted name, its tables) for :func:`keyword_column_hint`."""
    if offset is None or not isinstance(sql, str) or len(sql) > 1_000_000:
        return None
    blank = lambda m: " " * len(m.group())  # noqa: E731 - offsets are kept
    text = _QUOTED_IDENT.sub(blank, _NOT_NAMES.sub(blank, sql))
    at, before = None, None
    for m in _BARE_WORD.finditer(text):
        if m.start() > offset:
            break
        if m.start() <= offset < m.end():
            at = m
        elif m.end() <= offset:
            before = m
    reserved = reserved_words()
    for m in (before, at):
        if m is None or m.group().lower() not in reserved:
            continue
        if m.start() and text[m.start() - 1] == ".":
            continue  # t.group: DuckDB reads a qualified keyword as a name
        if not _parses_further(sql, m, offset, con):
            continue  # quoted, it is still the error there ('SELECT a, b, group FROM t': not FROM)
        word = m.group().lower()
        timer = None
        try:
            cur = con.cursor() if hasattr(con, "cursor") else con
            # the caller's timeout does not cover this (the query tool checks the SQL before its timer
            # starts): a lake of many thousands of columns must not hold an agent's error (review34)
            timer = threading.Timer(HINT_SECONDS, cur.interrupt)
            timer.daemon = True
            timer.start()
            rows = cur.execute(
                "SELECT column_name, string_agg(DISTINCT table_name, ', ' ORDER BY table_name) FROM "
                "(SELECT column_name, table_name FROM lakeql_columns() WHERE lower(column_name) = ? OR "
                "regexp_full_match(lower(column_name), ? || '[^a-z0-9_$].*') LIMIT 50) GROUP BY 1 "
                "ORDER BY lower(column_name) = ? DESC, column_name LIMIT 1", [word, word, word]).fetchall()
        except Exception:  # noqa: BLE001 - a hint must never hide the error itself
            return None
        finally:
            if timer is not None:
                timer.cancel()
        if rows:
            from lakeql.lake import quote_ident

            name, tables = rows[0]
            return m.group(), quote_ident(name), tables if len(tables) <= 200 else tables[:200] + "…"
    return None


def _parses_further(sql: str, word: re.Match, offset: int, con: Any) -> bool:
    """Whether ``sql`` with ``word`` double-quoted parses, or fails only after ``offset``: then the bare
    keyword was the error (a ``From`` column in ``SELECT a, b, group FROM t`` is not)."""
    quoted = sql[:word.start()] + '"' + word.group() + '"' + sql[word.end():]
    try:
        con.extract_statements(quoted)
    except Exception as exc:  # noqa: BLE001 - any parser error: where is it now?
        moved = error_offset(str(exc), quoted)
        return moved is not None and moved > offset + 2
    return True
