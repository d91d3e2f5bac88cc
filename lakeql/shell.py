"""``lakeql shell``: an interactive SQL shell that behaves like the duckdb shell, with lakeql's functions.

Statements may span lines and end with ``;``. Dot commands: ``.tables``, ``.schema [TABLE]``,
``.mode MODE``, ``.timer on|off``, ``.indexes``, ``.read FILE``, ``.help``, ``.quit``. History is kept in
``~/.lakeql_history`` when the terminal supports readline. With stdin not a terminal (a pipe or a file)
no prompt is printed and the exit code is 1 if any statement failed, as with ``duckdb < script.sql``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

from lakeql.render import MODES, print_result, render

HELP = """\
.help                 show this help
.tables [PATTERN]     list the lake's tables (views), optionally matching a LIKE pattern
.schema [TABLE]       show the columns of every table (or of one)
.indexes              list built indexes (same as SELECT * FROM lakeql_indexes())
.functions            list lakeql's SQL functions and macros
.mode MODE            output mode: box (default), csv, json, markdown, line, list
.timer on|off         print the run time of each statement
.read FILE            run the SQL statements of FILE
.quit / .exit         leave the shell (also Ctrl-D)
SQL statements end with ';' and may span several lines."""

def statement_complete(buffer: str) -> bool:
    """True when ``buffer`` ends with a ``;`` outside quotes and comments."""
    in_single = in_double = in_line_comment = in_block = False
    last_significant = ""
    i = 0
    while i < len(buffer):
        ch = buffer[i]
        nxt = buffer[i + 1] if i + 1 < len(buffer) else ""
        if in_line_comment:
            if ch == "\n":
                in_line_comment = False
        elif in_block:
            if ch == "*" and nxt == "/":
                in_block = False
                i += 1
        elif in_single:
            if ch == "'":
                in_single = False
        elif in_double:
            if ch == '"':
                in_double = False
        elif ch == "-" and nxt == "-":
            in_line_comment = True
        elif ch == "/" and nxt == "*":
            in_block = True
            i += 1
        elif ch == "'":
            in_single = True
            last_significant = ch
        elif ch == '"':
            in_double = True
            last_significant = ch
        elif not ch.isspace():
            last_significant = ch
        i += 1
    return not (in_single or in_double or in_block) and last_significant == ";"


class Shell:
    """The REPL: reads statements, runs them on a lakeql connection, renders results."""

    def __init__(self, lake: str | None = None, index_dir: str | None = None, con=None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.lake, self.index_dir = lake, index_dir
        self._con = con
        self.stdin = stdin or sys.stdin
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.mode = "box"
        self.timer = False
        self.failed = False
        self.interactive = self.stdin.isatty()

    @property
    def con(self):
        if self._con is None:
            from lakeql.connection import connect

            self._con = connect(self.lake, index_dir=self.index_dir)
        return self._con

    # ----------------------------------------------------------------- loop
    def run(self) -> int:
        if self.interactive:
            self._setup_readline()
            print(f"lakeql shell on {self.lake or '(no lake)'}: enter '.help' for usage hints.",
                  file=self.out)
        _ = self.con  # connect first so errors in the lake show at once
        buffer = ""
        while True:
            prompt = ("lakeql> " if not buffer else "   ...> ") if self.interactive else ""
            try:
                line = input(prompt) if self.interactive else self._read_line()
            except EOFError:
                break
            except KeyboardInterrupt:
                print(file=self.out)
                buffer = ""
                continue
            if line is None:
                break
            if not buffer and line.strip().startswith("."):
                if self.dot_command(line.strip()) == "quit":
                    return 1 if (self.failed and not self.interactive) else 0
                continue
            buffer += line + "\n"
            if statement_complete(buffer):
                self.execute(buffer)
                buffer = ""
        if buffer.strip():
            self.execute(buffer)
        return 1 if (self.failed and not self.interactive) else 0

    def _read_line(self) -> str | None:
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\n")

    def _setup_readline(self) -> None:
        try:
            import atexit
            import readline
        except ImportError:  # pragma: no cover - platforms without readline
            return
        hist = Path(os.environ.get("LAKEQL_HISTORY", Path.home() / ".lakeql_history"))
        try:
            readline.read_history_file(hist)
        except OSError:
            pass
        readline.set_history_length(2000)
        atexit.register(lambda: _save_history(readline, hist))

    # ----------------------------------------------------------------- statements
    def execute(self, sql: str) -> None:
        from lakeql.cli import format_error

        try:
            statements = [s.query for s in self.con.extract_statements(sql)]
        except Exception as exc:  # noqa: BLE001 - a parse error: report it like duckdb does
            self.failed = True
            print(f"Error: {format_error(exc)}", file=self.err)
            return
        for stmt in statements:
            t0 = time.perf_counter()
            try:
                cur = self.con.execute(stmt)
                if cur.description is not None:
                    print_result(cur, self.mode, self.out)
            except Exception as exc:  # noqa: BLE001 - the shell reports and goes on
                self.failed = True
                print(f"Error: {format_error(exc)}", file=self.err)
            if self.timer:
                print(f"Run Time (s): real {time.perf_counter() - t0:.3f}", file=self.out)
            self.out.flush()

    def query_rows(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def dot_command(self, line: str) -> str | None:
        parts = line.split(None, 1)
        cmd, arg = parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")
        if cmd in (".quit", ".exit", ".q"):
            return "quit"
        if cmd == ".help":
            print(HELP, file=self.out)
        elif cmd == ".tables":
            self.show_tables(arg)
        elif cmd == ".schema":
            self.show_schema(arg)
        elif cmd == ".indexes":
            self.execute("SELECT kind, table_name, column_name, bytes, source_bytes, built_at, stale "
                         "FROM lakeql_indexes();")
        elif cmd == ".functions":
            self.execute("SELECT DISTINCT function_name, function_type FROM duckdb_functions() "
                         "WHERE function_name LIKE 'lakeql%' OR (NOT internal AND function_name NOT LIKE "
                         "'%\\_impl' ESCAPE '\\') ORDER BY 1;")
        elif cmd == ".mode":
            if arg in MODES or arg == "table":
                self.mode = "box" if arg == "table" else arg
            else:
                self._error(f".mode: unknown mode {arg!r}: use one of {', '.join(MODES)}")
        elif cmd == ".timer":
            if arg.lower() in ("on", "off"):
                self.timer = arg.lower() == "on"
            else:
                self._error(".timer: use '.timer on' or '.timer off'")
        elif cmd == ".read":
            try:
                text = Path(arg).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                self._error(f".read: cannot read {arg!r}: {exc.strerror}")
            else:
                self.execute(text)
        else:
            self._error(f"unknown command {cmd!r}: enter '.help' for the list")
        self.out.flush()
        return None

    def _error(self, message: str) -> None:
        self.failed = True
        print(f"Error: {message}", file=self.err)

    def show_tables(self, pattern: str = "") -> None:
        rows = self.query_rows(
            "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal "
            "AND schema_name NOT IN ('lakeql_rows') "
            "AND (? = '' OR schema_name || '.' || view_name LIKE ?) ORDER BY 1",
            [pattern, pattern])
        names = [r[0] for r in rows]
        rows_t = self.query_rows(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT internal "
            "AND (? = '' OR schema_name || '.' || table_name LIKE ?) ORDER BY 1", [pattern, pattern])
        names += [r[0] for r in rows_t]
        if names:
            render(["name"], ["VARCHAR"], [(n,) for n in sorted(names)], "list" if self.mode != "box"
                   else "box", self.out)

    def show_schema(self, table: str = "") -> None:
        from lakeql.lake import quote_ident

        rows = self.query_rows(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal AND schema_name NOT IN ('lakeql_rows') ORDER BY schema_name, table_name, "
            "column_index")
        grouped: dict[tuple[str, str], list[str]] = {}
        for schema, tbl, col, ty in rows:
            grouped.setdefault((schema, tbl), []).append(f"{quote_ident(col)} {ty}")
        wanted = table.strip().strip(";")
        shown = 0
        for (schema, tbl), cols in grouped.items():
            full = f"{schema}.{tbl}"
            if wanted and wanted.lower() not in (full.lower(), tbl.lower()):
                continue
            print(f"CREATE VIEW {quote_ident(schema)}.{quote_ident(tbl)}({', '.join(cols)});",
                  file=self.out)
            shown += 1
        if wanted and not shown:
            self._error(f".schema: no table {wanted!r}")


def _save_history(readline, path: Path) -> None:
    try:
        readline.write_history_file(path)
    except OSError:
        pass
