"""``lakeql sql``: run a SQL text of one or more statements and print each result, like ``duckdb -c``.

The text is split by DuckDB's own parser (``con.extract_statements``), so ``;`` inside strings or
comments never splits a statement. Every statement that returns rows prints them; DDL, ``SET`` and
DML print nothing (as in the duckdb CLI). The first failing statement stops the run with exit code 2.
DuckDB's errors are shown in full (the ``LINE 1:`` caret, ``Candidate bindings``, ``Did you mean``);
lakeql's own errors stay one line. Output to a pipe or file is never clipped; ``--format json`` is valid
JSON (one array per result), ``ndjson`` one object per row.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from lakeql.colnames import unicode_hint
from lakeql.errors import unwrap_udf_message
from lakeql.render import MODES, Options, escape_controls, mode_name, print_result
from lakeql.sqlerrors import quote_hint, scalar_in_from_hint, unreadable_table_message

FORMATS = ("table", "csv", "json", "ndjson")
# statement types whose result is rows to show; the others answer Count/Success, which the CLI hides
QUERY_TYPES = {"SELECT", "EXPLAIN", "PRAGMA", "CALL", "EXECUTE", "RELATION", "ANALYZE", "EXPORT",
               "LOGICAL_PLAN", "MULTI"}
STATUS_COLUMNS = ({("Count", "BIGINT")}, {("Success", "BOOLEAN")})


def error_text(exc: BaseException, con: Any = None, sql: str | None = None) -> str:
    """The message to show for ``exc``: DuckDB's full text (all lines, caret and suggestions included);
    one line for lakeql's own errors, also when they surface through a UDF. Control characters are
    escaped (a message may quote hostile input). With ``con``, a scalar function called in ``FROM``
    gets a line saying how to call it (DuckDB only says the table function does not exist); with the
    ``sql`` text too, a column named by a keyword written bare gets one naming the quoting."""
    from lakeql.errors import LakeqlError, undecodable_duckdb_message

    msg, from_udf = unwrap_udf_message((undecodable_duckdb_message(exc) or str(exc)).strip())
    if from_udf:
        msg = msg.strip().splitlines()[0] if msg.strip() else msg
    elif isinstance(exc, LakeqlError) and not getattr(exc, "keeps_lines", False):
        msg = msg.splitlines()[0] if msg else msg
    if not msg:
        return type(exc).__name__
    better = unreadable_table_message(msg, con) if con is not None else ""
    if better:  # DuckDB's 'does not exist' (and its 'did you mean') would send the user the wrong way
        caret = msg.find("\nLINE ")
        msg = better + ("\n" + msg[caret:] if caret >= 0 else "")
    hint = (scalar_in_from_hint(msg, con) or quote_hint(msg, con)) if con is not None else ""
    if not hint and con is not None and sql is not None:  # a column named by a keyword, written bare
        from lakeql.sqlerrors import error_offset, keyword_column_hint

        hint = keyword_column_hint(sql, error_offset(msg, sql), con)
    hint = hint or unicode_hint(msg)  # a column typed NFC, stored NFD: the stored spelling to copy
    return "\n".join(escape_controls(line.rstrip()) for line in (msg + hint).splitlines())


def shows_result(statement: Any, cur: Any) -> bool:
    """Whether the result of ``statement`` is rows a user asked for (not DDL's Count or SET's Success)."""
    if cur.description is None:
        return False
    kind = getattr(getattr(statement, "type", None), "name", "SELECT")
    if kind in QUERY_TYPES:
        return True
    return {(d[0], str(d[1])) for d in cur.description} not in STATUS_COLUMNS


def finish(cur: Any) -> None:
    """Consume a result that is not shown (DDL's Count, SET's Success): DuckDB 2 refuses other work on a
    connection while a result is unfinished."""
    if cur.description is not None:
        cur.fetchall()


def split(con, text: str) -> list[Any]:
    """The statements of ``text`` (DuckDB's parser); [] for empty text or comments only."""
    return list(con.extract_statements(text))


def run_sql(con, text: str, fmt: str, out: TextIO, *, is_tty: bool, err: TextIO | None = None) -> int:
    """Run every statement of ``text`` on ``con`` and print each result to ``out`` in format ``fmt``.

    Returns the exit code: 0, or 2 after printing an error (no statement, a parse error, a failing
    statement: the statements before it have run and printed).
    """
    err = err or sys.stderr
    mode = mode_name(fmt)
    if mode is None:
        print(f"lakeql: error: unknown format {fmt!r}: use one of {', '.join(MODES)}", file=err)
        return 2
    try:
        statements = split(con, text)
    except Exception as exc:  # noqa: BLE001 - a parse error: shown in full, like the duckdb CLI
        print(f"lakeql: error: {error_text(exc, con, text)}", file=err)
        return 2
    if not statements:
        print("lakeql: error: no SQL statement to run (the text is empty or only comments)", file=err)
        return 2
    opts = Options(is_tty=is_tty)
    from lakeql.interrupt import interrupt_on_sigint, is_interrupt

    try:
        for stmt in statements:
            try:
                with interrupt_on_sigint(con):  # Ctrl-C stops the query (DuckDB's client may not see it)
                    cur = con.execute(stmt.query.strip())  # the text alone: error carets line up
                    if shows_result(stmt, cur):
                        print_result(cur, mode, out, opts)
                    else:
                        finish(cur)
            except (KeyboardInterrupt, BrokenPipeError):
                raise
            except Exception as exc:  # noqa: BLE001 - SQL errors are the user's to fix: report, stop
                if is_interrupt(exc):  # Ctrl-C, seen by DuckDB: an interrupt (exit 130), not a SQL error
                    raise KeyboardInterrupt from None
                out.flush()
                print(f"lakeql: error: {error_text(exc, con)}", file=err)
                return 2
        out.flush()
    except BrokenPipeError:  # `lakeql sql ... | head`: the reader left, which is not an error
        _quiet_broken_pipe(out)
    return 0


def _quiet_broken_pipe(out: TextIO) -> None:
    """Point ``out`` at /dev/null so the interpreter's final flush does not report the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    except (OSError, AttributeError, ValueError):
        pass
