"""``lakeql shell``: an interactive SQL shell that behaves like the duckdb shell, with lakeql's functions.

On a terminal the shell runs on prompt_toolkit (imported only then): tab completion of tables, columns,
lakeql's functions, keywords and dot-commands (:mod:`lakeql.completion`), multi-line statements ended by
``;``, and one history entry per statement in ``~/.lakeql_history`` (``LAKEQL_HISTORY`` overrides the
path; an empty value keeps history in memory). With stdin not a terminal (a pipe or a file) lines are
read plainly, no prompt is printed and the exit code is 1 if any statement failed, as with
``duckdb < script.sql``. DuckDB's errors are shown in full (caret, candidates, suggestions).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lakeql.interrupt import interrupt_on_sigint, is_interrupt
from lakeql.render import MODES, Options, mode_name, print_result, render

COMMANDS = {
    ".help": ".help                 show this help",
    ".tables": ".tables [PATTERN]     list the lake's tables, optionally matching a LIKE pattern",
    ".schema": ".schema [TABLE]       show the columns of every table (or of one)",
    ".indexes": ".indexes              list built indexes (same as SELECT * FROM lakeql_indexes())",
    ".functions": ".functions            list lakeql's public SQL functions and macros",
    ".mode": ".mode [MODE]          show or set the output mode: box (default; also duckbox, table), csv, "
             "json, ndjson, markdown, line, list",
    ".headers": ".headers on|off       column names in box, csv and list modes",
    ".maxrows": ".maxrows [N]          rows a box table shows before eliding the middle (0: all)",
    ".output": ".output [FILE]        send results to FILE (no FILE: back to the screen)",
    ".once": ".once FILE            send the next statement's results to FILE",
    ".timer": ".timer on|off         print the run time of each statement",
    ".read": ".read FILE            run the SQL statements and dot-commands of FILE",
    ".quit": ".quit / .exit         leave the shell (also Ctrl-D)",
}
ALIASES = {".exit": ".quit", ".q": ".quit", ".header": ".headers"}
HELP = "\n".join(COMMANDS.values()) + "\nSQL statements end with ';' and may span several lines."
MAX_READ_DEPTH = 16  # .read inside .read: enough for real scripts, stops a file that reads itself
HIDDEN = "'lakeql\\_%' ESCAPE '\\'"  # lakeql_rows, lakeql_rows_live and any future internal catalog/schema
DDL_WORDS = ("create", "drop", "alter", "attach", "detach", "use", "import", "load")


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


def ready_to_run(text: str) -> bool:
    """Whether Enter in the interactive editor runs ``text``: empty, a dot-command, or a full statement."""
    stripped = text.strip()
    return not stripped or stripped.startswith(".") or statement_complete(text)


@dataclass(frozen=True)
class Relation:
    """A user-visible table or view: ``parts`` is how SQL names it (``('flights', 'airlines')``)."""

    parts: tuple[str, ...]
    is_table: bool

    @property
    def key(self) -> str:
        return ".".join(self.parts)

    @property
    def sql(self) -> str:
        from lakeql.lake import quote_ident

        return ".".join(quote_ident(p) for p in self.parts)


def name_parts(database: str, schema: str, table: str, current: str) -> tuple[str, ...]:
    """The shortest SQL name of a relation: ``table`` in the current database's ``main`` schema, else
    qualified by schema and/or catalog (a lake domain is a schema or an attached catalog)."""
    if database in (current, "temp"):
        return (table,) if schema == "main" else (schema, table)
    return (database, table) if schema == "main" else (database, schema, table)


def visible_columns(con) -> list[tuple[Relation, str, str]]:
    """``(relation, column, type)`` of the user's tables and views, lakeql's hidden copies left out."""
    rows = con.execute(
        "SELECT c.database_name, c.schema_name, c.table_name, c.column_name, c.data_type, "
        "t.table_name IS NOT NULL, current_database() "
        "FROM duckdb_columns() c LEFT JOIN duckdb_tables() t "
        "ON t.database_name = c.database_name AND t.schema_name = c.schema_name "
        "AND t.table_name = c.table_name "
        f"WHERE NOT c.internal AND c.database_name <> 'system' AND c.database_name NOT LIKE {HIDDEN} "
        f"AND c.schema_name NOT LIKE {HIDDEN} "
        "ORDER BY c.database_name, c.schema_name, c.table_name, c.column_index").fetchall()
    return [(Relation(name_parts(db, schema, table, cur), bool(is_table)), col, ty)
            for db, schema, table, col, ty, is_table, cur in rows]


_NAME_PART = re.compile(r'\s*("(?:[^"]|"")*"|[^."\s]+)\s*(?:\.|$)')


def sql_name_parts(text: str) -> tuple[str, ...] | None:
    """The parts of a (possibly quoted) dotted SQL name (``'"d x"."表"'`` -> ``('d x', '表')``),
    None when ``text`` is not one (unbalanced quotes, an empty part)."""
    parts, pos = [], 0
    while pos < len(text):
        m = _NAME_PART.match(text, pos)
        if m is None or m.end() == pos:
            return None
        word = m.group(1)
        parts.append(word[1:-1].replace('""', '"') if word.startswith('"') else word)
        pos = m.end()
        if pos == len(text) and text.rstrip().endswith("."):
            return None
    return tuple(parts) or None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def history_path() -> Path | None:
    """Where the history goes: ``$LAKEQL_HISTORY`` (empty: nowhere) or ``~/.lakeql_history``."""
    env = os.environ.get("LAKEQL_HISTORY")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    return Path.home() / ".lakeql_history"


class Shell:
    """The REPL: reads statements, runs them on a lakeql connection, renders results.

    ``interactive`` defaults to whether ``stdin`` is a terminal; ``prompt_input``/``prompt_output`` are
    handed to prompt_toolkit (tests drive the interactive editor through a pipe input).
    """

    def __init__(self, lake: str | None = None, index_dir: str | None = None, con: Any = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, *, interactive: bool | None = None,
                 prompt_input: Any = None, prompt_output: Any = None) -> None:
        self.lake, self.index_dir = lake, index_dir
        self._con = con
        self.stdin = stdin or sys.stdin
        if stdin is None and not _isatty(sys.stdin) and hasattr(sys.stdin, "reconfigure"):
            # a piped script that is not UTF-8: keep its bytes (execute names the first bad one) instead of
            # stopping the shell with a decode error (sys.stdin is strict under most UTF-8 locales)
            sys.stdin.reconfigure(errors="surrogateescape")
        self.stdout = stdout or sys.stdout
        self.out = self.stdout  # where results go: stdout, or the file of .output / .once
        self.err = stderr or sys.stderr
        self.mode = "box"
        self.options = Options()
        self.timer = False
        self.failed = False
        self.interactive = _isatty(self.stdin) if interactive is None else interactive
        self._once = False
        self._prompt_io = (prompt_input, prompt_output)
        self.completer: Any = None

    @property
    def con(self):
        if self._con is None:
            from lakeql.connection import connect

            self._con = connect(self.lake, index_dir=self.index_dir)
            from lakeql.render import keep_arrow_exact

            keep_arrow_exact(self._con)  # a TIMETZ keeps its offset in results read as Arrow
        return self._con

    # ----------------------------------------------------------------- loop
    def run(self) -> int:
        """Read and run until ``.quit`` or end of input; the exit code (1 if a piped statement failed)."""
        _ = self.con  # connect first so errors in the lake show at once
        try:
            if self.interactive:
                self._run_prompt()
            else:
                self.run_lines(iter(self._read_line, None))
        finally:
            self._set_output(None)
        return 1 if (self.failed and not self.interactive) else 0

    def _read_line(self) -> str | None:
        line = self.stdin.readline()
        return line.rstrip("\n") if line else None

    def run_lines(self, lines: Iterable[str], depth: int = 0) -> bool:
        """Run dot-commands and SQL statements from ``lines``; True when ``.quit`` was met."""
        buffer = ""
        for line in lines:
            if not buffer.strip() and line.strip().startswith("."):
                buffer = ""
                if self.dot_command(line.strip(), depth) == "quit":
                    return True
                continue
            buffer += line + "\n"
            if statement_complete(buffer):
                self.execute(buffer)
                buffer = ""
        if buffer.strip():
            self.execute(buffer)
        return False

    def _run_prompt(self) -> None:
        session = self._session()
        print(f"lakeql shell on {self.lake or '(no lake)'}: enter '.help' for usage hints; Tab completes.",
              file=self.stdout)
        while True:
            try:  # no prompt_toolkit "press ENTER" handler: an error surfaces instead of hanging a pipe
                text = session.prompt("lakeql> ", set_exception_handler=False)
            except KeyboardInterrupt:  # Ctrl-C drops the statement being typed
                continue
            except EOFError:
                return
            try:
                if self.run_lines(text.split("\n")):
                    return
            except KeyboardInterrupt:
                print("Interrupted", file=self.err)

    def _session(self):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings

        from lakeql.completion import SqlCompleter, load_vocabulary

        class QuietFileHistory(FileHistory):
            """A history file that never breaks the shell (read-only home, full disk)."""

            def store_string(self, string: str) -> None:
                try:
                    super().store_string(string)
                except OSError:
                    pass

            def load_history_strings(self):
                try:
                    yield from super().load_history_strings()
                except OSError:
                    return

        path = history_path()
        history = QuietFileHistory(str(path)) if path is not None else InMemoryHistory()
        self.completer = SqlCompleter(load_vocabulary(self.con, [*COMMANDS, *ALIASES]))
        kb = KeyBindings()

        @kb.add("enter")
        def _enter(event) -> None:  # noqa: ANN001 - run a complete statement, else a new line
            buf = event.current_buffer
            state = buf.complete_state
            if state is not None and state.current_completion is not None:
                buf.apply_completion(state.current_completion)
            elif ready_to_run(buf.text):
                buf.validate_and_handle()
            else:
                buf.insert_text("\n")

        @kb.add("escape", "enter")
        def _force(event) -> None:  # noqa: ANN001 - Alt-Enter runs even without the final ';'
            event.current_buffer.validate_and_handle()

        pin, pout = self._prompt_io
        if pout is None and not _isatty(self.stdout) and _isatty(sys.stderr):
            from prompt_toolkit.output import create_output

            pout = create_output(stdout=sys.stderr)  # `lakeql shell > out.txt`: the editor stays visible
        return PromptSession(history=history, completer=self.completer, multiline=True, key_bindings=kb,
                             prompt_continuation="   ...> ", complete_while_typing=False,
                             enable_history_search=True, input=pin, output=pout)

    # ----------------------------------------------------------------- statements
    def execute(self, sql: str) -> None:
        """Run every statement of ``sql``, printing each result; errors go to stderr and the shell goes on."""
        from lakeql.cliargs import utf8_sql
        from lakeql.sqlrun import error_text, finish, shows_result, split

        text = None
        try:
            text = utf8_sql(sql)
            statements = split(self.con, text)
        except Exception as exc:  # noqa: BLE001 - a parse error: report it like duckdb does
            self._error(error_text(exc, self.con, text))
            statements = []
        for stmt in statements:
            t0 = time.perf_counter()
            try:
                with interrupt_on_sigint(self.con):  # Ctrl-C stops the query (DuckDB may not see it)
                    cur = self.con.execute(stmt.query.strip())
                    if shows_result(stmt, cur):
                        print_result(cur, self.mode, self.out, self.options)
                    else:
                        finish(cur)
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                self._error("Interrupted")
                break
            except Exception as exc:  # noqa: BLE001 - the shell reports and goes on
                if is_interrupt(exc):  # Ctrl-C, seen by DuckDB: as a KeyboardInterrupt
                    if not self.interactive:
                        raise KeyboardInterrupt from None
                    self._error("Interrupted")
                    break
                self._error(error_text(exc, self.con))
            if self.timer:
                print(f"Run Time (s): real {time.perf_counter() - t0:.3f}", file=self.stdout)
            if self.completer is not None and stmt.query.lstrip().lower().startswith(DDL_WORDS):
                self.completer.refresh(self.con)
        self.out.flush()
        if self._once:
            self._set_output(None)

    def query_rows(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def dot_command(self, line: str, depth: int = 0) -> str | None:
        """Run one dot-command line; ``'quit'`` for ``.quit``."""
        parts = line.split(None, 1)
        cmd, arg = parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")
        cmd = ALIASES.get(cmd, cmd)
        if cmd == ".quit":
            return "quit"
        handler = {".help": lambda a: print(HELP, file=self.stdout), ".tables": self.show_tables,
                   ".schema": self.show_schema, ".indexes": self.show_indexes,
                   ".functions": self.show_functions, ".mode": self.set_mode, ".headers": self.set_headers,
                   ".maxrows": self.set_maxrows, ".output": self.set_output, ".once": self.set_once,
                   ".timer": self.set_timer}.get(cmd)
        if cmd == ".read":
            if self.read_file(arg, depth):
                return "quit"
        elif handler is not None:
            handler(arg)
        else:
            self._error(f"unknown command {cmd!r}: enter '.help' for the list")
        self.stdout.flush()
        return None

    def _error(self, message: str) -> None:
        self.failed = True
        print(f"Error: {message}", file=self.err)
        self.err.flush()

    # ----------------------------------------------------------------- settings
    def set_mode(self, arg: str) -> None:
        if not arg:
            print(f"current output mode: {self.mode}", file=self.stdout)
            return
        mode = mode_name(arg)
        if mode is None:
            self._error(f".mode: unknown mode {arg!r}: use one of {', '.join(MODES)} (or duckbox, table)")
        else:
            self.mode = mode

    def _on_off(self, arg: str, name: str) -> bool | None:
        if arg.lower() in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            return arg.lower() in ("on", "true", "1", "yes")
        self._error(f"{name}: use '{name} on' or '{name} off'")
        return None

    def set_headers(self, arg: str) -> None:
        value = self._on_off(arg, ".headers")
        if value is not None:
            self.options.headers = value

    def set_timer(self, arg: str) -> None:
        value = self._on_off(arg, ".timer")
        if value is not None:
            self.timer = value

    def set_maxrows(self, arg: str) -> None:
        if not arg:
            print(f"current max rows: {self.options.max_rows}", file=self.stdout)
        elif arg.isdigit():
            self.options.max_rows = int(arg)
        else:
            self._error(f".maxrows: expected a number of rows (0 for all), got {arg!r}")

    def set_output(self, arg: str) -> None:
        self._once = False
        self._set_output(arg or None)

    def set_once(self, arg: str) -> None:
        if not arg:
            self._error(".once: name the file, e.g. '.once result.csv'")
        elif self._set_output(arg):
            self._once = True

    def _set_output(self, path: str | None) -> bool:
        """Send results to ``path`` (None: back to stdout); False if the file cannot be opened."""
        if self.out is not self.stdout:
            self.out.close()
            self.out = self.stdout
        self._once = False
        if path is None:
            return True
        try:
            self.out = open(Path(path).expanduser(), "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            self._error(f"cannot write {path!r}: {exc.strerror}")
            return False
        return True

    def read_file(self, arg: str, depth: int) -> bool:
        """Run the lines of file ``arg`` as if typed; True when the file said ``.quit``."""
        if not arg:
            self._error(".read: name the file, e.g. '.read script.sql'")
            return False
        if depth >= MAX_READ_DEPTH:
            self._error(f".read: files nested more than {MAX_READ_DEPTH} deep (does {arg!r} read itself?)")
            return False
        try:
            with open(Path(arg).expanduser(), encoding="utf-8", errors="surrogateescape") as fh:
                return self.run_lines((line.rstrip("\r\n") for line in fh), depth + 1)
        except OSError as exc:
            self._error(f".read: cannot read {arg!r}: {exc.strerror}")
            return False

    # ----------------------------------------------------------------- listings
    def _render(self, columns: list[str], rows: list[tuple]) -> None:
        """A listing (.tables, .functions): every row, whatever ``.maxrows`` says."""
        opts = Options(headers=self.options.headers, max_rows=0, is_tty=self.options.is_tty)
        render(columns, ["VARCHAR"] * len(columns), rows, self.mode, self.out, opts)
        self.out.flush()

    def relations(self) -> dict[Relation, list[str]]:
        """Every visible table and view with its column definitions, in catalog order."""
        from lakeql.lake import quote_ident

        grouped: dict[Relation, list[str]] = {}
        for rel, col, ty in visible_columns(self.con):
            grouped.setdefault(rel, []).append(f"{quote_ident(col)} {ty}")
        return grouped

    def show_tables(self, pattern: str = "") -> None:
        names = sorted({rel.key for rel in self.relations()})
        if pattern:
            names = [n for (n,) in self.query_rows(
                "SELECT n FROM (SELECT unnest(?::VARCHAR[]) AS n) WHERE n LIKE ? ORDER BY n",
                [names, pattern])]
        if names:
            self._render(["name"], [(n,) for n in names])

    def show_schema(self, table: str = "") -> None:
        wanted = table.strip().rstrip(";").strip().lower()
        parts = sql_name_parts(wanted)  # '"odd types"."表格"' as SQL writes it
        shown = 0
        for rel, cols in self.relations().items():
            if wanted and wanted not in (rel.key.lower(), rel.parts[-1].lower()) and not (
                    parts and tuple(p.lower() for p in rel.parts[-len(parts):]) == parts):
                continue
            kind = "TABLE" if rel.is_table else "VIEW"
            print(f"CREATE {kind} {rel.sql}({', '.join(cols)});", file=self.out)
            shown += 1
        self.out.flush()
        if wanted and not shown:
            self._error(f".schema: no table {table.strip()!r}")

    def show_indexes(self, _arg: str = "") -> None:
        self.execute("SELECT kind, table_name, column_name, bytes, source_bytes, built_at, stale "
                     "FROM lakeql_indexes();")

    def show_functions(self, _arg: str = "") -> None:
        from lakeql.functions import public_functions

        self._render(["name", "kind", "signature"], public_functions(self.con))
