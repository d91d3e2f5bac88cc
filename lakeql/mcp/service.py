"""What the MCP tools do, on ONE DuckDB connection that is read-only and contained.

:class:`LakeService` opens the lake with every lakeql function, then locks the connection down:
DuckDB may touch only the lake and index folders (``allowed_directories`` + ``enable_external_access =
false``), extensions are not auto-installed or loaded, and ``lock_configuration = true`` stops SQL from
undoing any of it. Every call runs on its own cursor of that connection, so lakeql's UDFs (which run
filters on a cursor of the same connection) carry the same restrictions.

``query`` accepts one SELECT only, judged by DuckDB's statement type (``allowed_directories`` alone still
lets ``COPY ... TO`` write inside the lake), refuses direct file readers, and is capped in rows,
characters and time (a timer interrupts the cursor). Every method returns text for an agent or raises
:class:`~lakeql.errors.LakeqlError` with a message that says what to do.

A connection's views read the files the lake had when it opened, so after ``lakeql index --refresh`` its
indexes would name other rows (``Store.require`` refuses: "open a new connection"). The service therefore
compares the index manifest's stat (mtime, size, inode: one ``stat`` per call) with the one it saw before
opening its connection and, when the manifest changed, opens a new connection (locked down the same way)
and swaps it in under a lock; the old one is closed once no call uses it any more.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeql.errors import LakeqlError
from lakeql.mcp.tables import markdown_table
from lakeql.owned_temp import make_owned_temp, remove_owned
from lakeql.store import DEFAULT_DIRNAME, MANIFEST

TEMP_PREFIX = "lakeql-mcp-"  # the server's private DuckDB temp folder: $TMPDIR/lakeql-mcp-<pid>-<random>
HARD_MAX_ROWS = 10_000
SEARCH_CELL_CHARS = 300


@dataclass
class Limits:
    """Caps of one tool result: rows of a query, characters of any result, seconds of a query."""

    max_rows: int = 1000
    max_chars: int = 50_000
    timeout: float = 30.0
    cell_chars: int = 1000

    def __post_init__(self) -> None:
        """``--timeout nan`` made every query's timer thread fail (no timeout at all), 0 or less
        interrupted every query at once; 0 rows or characters answered nothing: refused, naming the flag."""
        import math

        for name, flag in (("max_rows", "--max-rows"), ("max_chars", "--max-chars"), ("cell_chars", None)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LakeqlError(f"{flag or name} must be a positive number, got {value!r}")
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise LakeqlError(f"--timeout must be a positive number of seconds, got {t!r}")


def lock_down(con, folders: list[Path], temp_dir: Path | None = None) -> None:
    """Restrict ``con`` to reading ``folders`` and lock its configuration (irreversible for ``con``).

    DuckDB also allows its own temp directory (for spilling); ``temp_dir`` puts it in a private folder
    rather than ``.tmp`` under the server's working directory.
    """
    from lakeql.lake import glob_escape, quote_literal

    if temp_dir is not None:
        con.execute(f"SET temp_directory = {quote_literal(str(temp_dir))}")
    # DuckDB checks the text it is given (lakeql's paths are glob-escaped: 'lk[1]' -> 'lk[[]1]') and then
    # every file a pattern expands to, so the escaped spelling of a folder reaches only that folder's files
    spellings = dict.fromkeys(p for f in folders for p in (str(f) + os.sep, glob_escape(str(f)) + os.sep))
    dirs = ", ".join(quote_literal(p) for p in spellings)
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    from lakeql.render import keep_arrow_exact

    keep_arrow_exact(con)  # the query tool's results: a TIMETZ keeps its offset when read as Arrow
    con.execute("SET lock_configuration = true")


class _Opened:
    """One locked-down connection of the service, the manifest stat it was opened after, and how many
    calls use it now (a replaced connection is closed when the last of them ends)."""

    def __init__(self, con: Any, ctx: Any, stamp: tuple[int, int, int] | None) -> None:
        self.con, self.ctx, self.stamp = con, ctx, stamp
        self.users = 0
        self.retired = False
        self.closed = False

    def close(self) -> None:
        import duckdb

        if self.closed:
            return
        self.closed = True
        try:
            self.con.close()
        except duckdb.Error:  # a call that could not be interrupted: the process exits anyway
            pass


class LakeService:
    """The lake behind the MCP tools: one locked-down connection (reopened after the index changed), the
    schemas folder, caps."""

    def __init__(self, lake: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None,
                 limits: Limits | None = None) -> None:
        from lakeql.connection import open_lake
        from lakeql.store import Store

        self.limits = limits or Limits()
        self._lake_arg, self._index_arg = lake, index_dir
        # the manifest's stat BEFORE opening: a refresh that ends while the connection opens is seen next call
        if index_dir is not None:
            early: Path | None = Store(index_dir).root
        else:  # a local lake's default index folder (a remote lake's: known once opened)
            local = Path(os.fspath(lake)).expanduser()
            early = local.resolve() / DEFAULT_DIRNAME if local.is_dir() else None
        stamp = _stat_stamp(early / MANIFEST) if early is not None else None
        con, ctx = open_lake(lake, index_dir=index_dir)
        try:
            self.lake_root = Path(ctx.lake.root).resolve()
            if ctx.store is None or not Path(ctx.store.root).is_dir():
                raise LakeqlError(f"the lake {str(lake)!r} has no index: run 'lakeql index {lake}' first")
            self.index_root = Path(ctx.store.root).resolve()
            if early is None or early.resolve() != self.index_root:
                stamp = _stat_stamp(self.index_root / MANIFEST)
            self.schemas_root = (self.index_root / "schemas").resolve()
            self.temp_dir = make_owned_temp(TEMP_PREFIX)  # removes dead servers' folders first
            # removed by close(), or when the service is collected unclosed, or at interpreter exit; only by
            # this process (a forked child's exit must not remove its live parent's folder)
            self._remove_temp = weakref.finalize(self, remove_owned, self.temp_dir, os.getpid())
            self._temps = 0
            lock_down(con, [self.lake_root, self.index_root], self._next_temp())
        except BaseException:
            con.close()
            if hasattr(self, "_remove_temp"):
                self._remove_temp()
            raise
        self._conn = _Opened(con, ctx, stamp)
        self.reopened = 0  # connections opened after the first (the index changed)
        self._ready = threading.Event()
        self._ready.set()
        self._closing = threading.Event()
        self._running: set[Any] = set()  # cursors executing now (close() interrupts them)
        self._lock = threading.Lock()  # guards _running, _conn and its users count
        self._reopen_lock = threading.Lock()  # one thread opens the next connection
        self._warm_thread: threading.Thread | None = None

    @property
    def con(self) -> Any:
        """The connection calls use now (it is replaced after the index changed: use it for one call)."""
        return self._conn.con

    @property
    def ctx(self) -> Any:
        return self._conn.ctx

    # ------------------------------------------------------------------ the connection in use
    def _open(self, stamp: tuple[int, int, int] | None) -> _Opened:
        """A new connection of the lake, locked down like the first one (built whole before it is used)."""
        from lakeql.connection import open_lake

        con, ctx = open_lake(self._lake_arg, index_dir=self._index_arg)
        try:
            if ctx.store is None or Path(ctx.store.root).resolve() != self.index_root:
                raise LakeqlError(f"the index of the lake moved from {str(self.index_root)!r}: "
                                  "restart the server")
            # a temp folder of its own: the old connection may still spill into its own (DuckDB clears
            # its temp folder when it closes)
            lock_down(con, [self.lake_root, self.index_root], self._next_temp())
        except BaseException:
            con.close()
            raise
        return _Opened(con, ctx, stamp)

    def _next_temp(self) -> Path:
        self._temps += 1
        path = self.temp_dir / f"c{self._temps}"
        path.mkdir()
        return path

    def _refresh_connection(self) -> None:
        """Open a new connection when the index manifest changed since the current one opened (after
        ``lakeql index --refresh``): the current one's views read the old files, so the refreshed indexes'
        row ids would name other rows of them. In-flight calls finish on the old connection, which is
        closed when the last of them ends."""
        stamp = _stat_stamp(self.index_root / MANIFEST)
        if stamp is None or stamp == self._conn.stamp or self._closing.is_set():
            return
        with self._reopen_lock:
            stamp = _stat_stamp(self.index_root / MANIFEST)  # read before opening (see __init__)
            if stamp is None or stamp == self._conn.stamp or self._closing.is_set():
                return  # another call reopened it meanwhile
            try:
                new = self._open(stamp)
            except Exception as exc:  # noqa: BLE001 - mid-rewrite lake or index: keep serving, retry next call
                from lakeql.progress import say

                say(f"lakeql mcp: the index changed but reopening the lake failed ({exc}); "
                    "still serving the previous connection, retrying on the next call")
                return
            with self._lock:
                if self._closing.is_set():
                    old, close_old = new, True
                else:
                    old, self._conn = self._conn, new
                    old.retired = True
                    close_old = old.users == 0
                    self.reopened += 1
            if close_old:
                old.close()

    def _acquire(self) -> _Opened:
        self._refresh_connection()
        with self._lock:
            opened = self._conn
            opened.users += 1
        return opened

    def _release(self, opened: _Opened) -> None:
        with self._lock:
            opened.users -= 1
            close_now = opened.retired and opened.users == 0
        if close_now:
            opened.close()

    # ------------------------------------------------------------------ plumbing
    def warm(self, background: bool = True) -> None:
        """Load the embedding model (and the schema and embedding indexes) once, before the first call.

        Calls that need the model wait until the warm-up ends, so the model is never loaded twice.
        """
        self._ready.clear()

        def run() -> None:
            try:
                single_threaded_compute()
                try:
                    self._rows("SELECT count(*) FROM schema_context('warm up', k := 1)", [])
                except LakeqlError:
                    pass
                warm_ups = [("SELECT count(*) FROM semantic_search(?, ?, 'warm up', k := 1)", [t, c])
                            for t, c in self.indexed("embed")]
                warm_ups += [("SELECT ngram_count(?, ?, 'a')", [t, c]) for t, c in self.indexed("ngram")]
                first = self._rows("SELECT table_name, column_name FROM lakeql_columns() LIMIT 1", [])[1]
                warm_ups += [("SELECT count(*) FROM joinable(?, ?, k := 1, mode := 'equi')", list(r))
                             for r in first]
                for sql, params in warm_ups:
                    if self._closing.is_set():
                        break
                    try:
                        self._rows(sql, params)
                    except LakeqlError:
                        pass
            except LakeqlError:
                if not self._closing.is_set():  # stopped by close(): nothing to report
                    raise
            finally:
                self._ready.set()

        if background:
            self._warm_thread = threading.Thread(target=run, name="lakeql-mcp-warm", daemon=True)
            self._warm_thread.start()
        else:
            run()

    def _rows(self, sql: str, params: list[Any], max_rows: int | None = None,
              timeout: float | None = None) -> tuple[list[str], list[tuple], bool]:
        """(columns, rows, more) of ``sql`` on a fresh cursor, at most ``max_rows`` rows, interrupted after
        ``timeout`` seconds; DuckDB errors become :class:`LakeqlError` with DuckDB's message."""
        import itertools

        import duckdb

        from lakeql.render import result_rows

        if self._closing.is_set():
            raise LakeqlError("the lake server is shutting down")
        opened = self._acquire()
        try:
            cur = opened.con.cursor()
        except BaseException:
            self._release(opened)
            raise
        with self._lock:
            self._running.add(cur)
        limit = self.limits.timeout if timeout is None else timeout
        timer = threading.Timer(limit, cur.interrupt)
        timer.daemon = True
        timer.start()
        try:
            cur.execute(sql, params)
            cols = [d[0] for d in cur.description or []]
            # INTERVAL values as DuckDB writes them (lakeql.render.result_rows), other values as fetched
            if max_rows is None:
                return cols, list(result_rows(cur)), False
            rows = list(itertools.islice(result_rows(cur, size=max_rows + 1), max_rows + 1))
            return cols, rows[:max_rows], len(rows) > max_rows
        except (duckdb.Error, UnicodeDecodeError) as exc:
            from lakeql.errors import undecodable_duckdb_message

            if isinstance(exc, UnicodeDecodeError):  # DuckDB's message cut a character in half
                text = undecodable_duckdb_message(exc)
                if text is None:
                    raise
                raise LakeqlError(_duckdb_message(text)) from None
            if self._closing.is_set():  # close() interrupted it (or closed the connection): not a slow query
                raise LakeqlError("the server is shutting down: the call was interrupted; "
                                  "call again once it is back") from None
            if isinstance(exc, duckdb.InterruptException):
                raise LakeqlError(f"the query ran longer than {limit:g} s and was interrupted: add filters "
                                  "or a LIMIT, or aggregate") from None
            from lakeql.colnames import unicode_hint
            from lakeql.render import escape_controls
            from lakeql.sqlrun import quote_hint, scalar_in_from_hint, unreadable_table_message

            unreadable = unreadable_table_message(str(exc), cur)
            if unreadable:  # not DuckDB's 'does not exist, did you mean': the table is there, unreadable
                raise LakeqlError(escape_controls(unreadable)) from None
            hint = scalar_in_from_hint(str(exc), cur) or quote_hint(str(exc), cur) or unicode_hint(str(exc))
            raise LakeqlError(_duckdb_message(exc) + hint) from None
        finally:
            timer.cancel()
            with self._lock:
                self._running.discard(cur)
            cur.close()
            self._release(opened)

    def _table(self, sql: str, params: list[Any], cell_chars: int = SEARCH_CELL_CHARS,
               max_rows: int | None = None) -> str:
        cols, rows, more = self._rows(sql, params, max_rows or self.limits.max_rows)
        return markdown_table(cols, rows, max_chars=self.limits.max_chars, cell_chars=cell_chars, more=more,
                              row_cap=max_rows or self.limits.max_rows)

    def indexed(self, kind: str) -> list[tuple[str, str]]:
        """(table, column) of every fresh index of ``kind`` ('embed', 'ngram')."""
        _, rows, _ = self._rows("SELECT table_name, column_name FROM lakeql_indexes() WHERE kind = ? AND NOT "
                                "stale ORDER BY ALL", [kind])
        return [(r[0], r[1]) for r in rows]

    def _needs_index(self, kind: str, flag: str, exc: LakeqlError) -> LakeqlError:
        """``exc`` plus the columns that do have a ``kind`` index, so the agent can pick one."""
        have = ", ".join(f"{t}.{c}" for t, c in self.indexed(kind)) or "none"
        article = "an" if kind[:1] in "aeiou" else "a"
        return LakeqlError(f"{exc} — this tool works only on columns with {article} {kind} index (built with "
                           f"'lakeql index {flag} TABLE.COLUMN'); indexed here: {have}")

    # ------------------------------------------------------------------ tools
    def list_domains(self) -> str:
        """Domains with their table counts, rows, tables and the schema file of each domain."""
        # a table left out of the lake (no readable file, or a name two sources share: one row per source)
        # is named once, marked, and not counted: an agent cannot query it
        _, rows, _ = self._rows(
            "WITH t AS (SELECT domain, row_count, status IN ('ok', 'partial') AS ok, CASE WHEN status IN "
            "('ok', 'partial') THEN name ELSE name || ' (left out: see lakeql_tables())' END AS shown "
            "FROM lakeql_tables() WHERE domain IS NOT NULL AND status <> 'unsupported') "
            "SELECT domain, count(*) FILTER (WHERE ok) AS tables, sum(row_count) AS total_rows, "
            "string_agg(DISTINCT shown, ', ' ORDER BY shown) AS table_names FROM t "
            "GROUP BY domain ORDER BY domain", [])  # (a file no table reads: NULL)
        files = self._domain_files()
        out = [(dom, n, total, names, files.get(dom)) for dom, n, total, names in rows]
        return markdown_table(["domain", "tables", "rows", "table names", "schema file"], out,
                              max_chars=self.limits.max_chars, cell_chars=2000)

    def _domain_files(self) -> dict[str, str]:
        """domain -> its ``_DOMAIN.md`` relative to the schemas folder. The folder is not always the domain's
        name (``stats models`` -> ``stats_models-d34397f0``): the schema file listing says which."""
        try:
            _, rows, _ = self._rows("SELECT domain, path FROM schema_files() WHERE kind = 'domain'", [])
        except Exception:  # noqa: BLE001 - no listing (an index without schema files): none to name
            return {}
        return {d: p for d, p in rows if d is not None and (self.schemas_root / p).is_file()}

    def search_tables(self, question: str, k: int = 3) -> str:
        """The schema files to read for ``question`` (schema_context), relative to the schemas folder."""
        self._ready.wait()
        _, rows, _ = self._rows("SELECT path, score FROM schema_context(?, k := ?)", [question, _k(k, 50)])
        out = [(self._relative(p), round(float(s), 4)) for p, s in rows]
        return (markdown_table(["path", "score"], out, max_chars=self.limits.max_chars)
                + "\n\nOpen a file with read_schema(path).")

    def _relative(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self.schemas_root).as_posix()
        except ValueError:
            return path

    def schema_files(self) -> list[str]:
        """Every readable schema file, relative to the schemas folder (INDEX.md first)."""
        if not self.schemas_root.is_dir():
            return []
        files = sorted(p.relative_to(self.schemas_root).as_posix() for p in self.schemas_root.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in
                                                  p.relative_to(self.schemas_root).parts))
        return sorted(files, key=lambda f: (f != "INDEX.md", f))

    def read_schema(self, path: str, offset: int = 0, limit: int | None = None,
                    columns: str | None = None) -> str:
        """One schema file. Only files under the schemas folder: anything else (``..``, absolute paths
        elsewhere, symlinks leading out, hidden files) is refused. A table file longer than
        ``max_chars``, or read with ``offset``/``limit``/``columns``, comes in pages of columns
        (:func:`lakeql.context.pages.page`) with a note naming the next page."""
        if not path or "\0" in path:
            raise LakeqlError("pass the path of a schema file, e.g. INDEX.md or flights/flights.yaml")
        root = self.schemas_root
        candidate = Path(path)
        target = candidate if candidate.is_absolute() else root / candidate
        if not Path(os.path.normpath(target)).is_relative_to(root):
            raise LakeqlError(f"refused: {path!r} is outside the schemas folder")
        try:
            real = target.resolve(strict=True)
        except (OSError, RuntimeError):
            raise LakeqlError(f"no schema file {path!r}: list them with search_tables or read INDEX.md"
                              ) from None
        if not real.is_relative_to(root) or real == root:
            raise LakeqlError(f"refused: {path!r} is not a file under the schemas folder")
        rel = real.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not real.is_file():
            raise LakeqlError(f"refused: {path!r} is not a schema file")
        text = real.read_text(encoding="utf-8", errors="replace")
        cap = self.limits.max_chars
        from lakeql.context import pages

        fmt = pages.fmt_of(rel.as_posix())
        paged = offset or limit is not None or columns is not None
        if paged and fmt is None:
            raise LakeqlError("offset, limit and columns apply to table files only, not to "
                              f"{rel.as_posix()!r}")
        if fmt is not None and (paged or len(text) > cap):
            want = limit
            while True:
                try:
                    part = pages.page(text, fmt, int(offset), want, columns,
                                      path=rel.as_posix())
                except LakeqlError:
                    raise
                except Exception as exc:  # noqa: BLE001 - not a table file lakeql can parse: shown cut below
                    if paged:
                        raise LakeqlError(f"cannot read {rel.as_posix()!r} in pages: it does not parse as "
                                          f"a lakeql table file ({type(exc).__name__}); read it without "
                                          "offset, limit and columns") from None
                    break
                if len(part.text) <= cap or part.shown <= 1:
                    text = part.text
                    break
                want = max(1, part.shown // 2)  # the page does not fit: fewer columns
        if len(text) > cap:
            text = text[:cap] + f"\n\n_Truncated: the file has {len(text):,} characters; shown {cap:,}._"
        return text

    def check_sql(self, sql: str) -> str:
        """Problems of ``sql`` (syntax, not a query, file reads, names with suggestions, types), or OK."""
        _, rows, _ = self._rows("SELECT severity, message, suggestion, line, col FROM check_sql(?)", [sql])
        if not rows:
            return "OK: no problems found. Run it with the query tool."
        return markdown_table(["severity", "message", "suggestion", "line", "col"], rows,
                              max_chars=self.limits.max_chars, cell_chars=2000)

    def query(self, sql: str, max_rows: int | None = None) -> str:
        """Rows of one read-only SELECT as a Markdown table, capped in rows, characters and time."""
        from lakeql.safety import require_read_only

        cap = min(_k(max_rows if max_rows is not None else self.limits.max_rows, HARD_MAX_ROWS, "max_rows"),
                  self.limits.max_rows)  # --max-rows is the cap; an agent may ask for fewer
        opened = self._acquire()
        try:
            require_read_only(opened.con, sql)
        finally:
            self._release(opened)
        _refuse_file_reads(sql)
        if _uses_model(sql):
            self._ready.wait()
        cols, rows, more = self._rows(sql, [], cap)
        return markdown_table(cols, rows, max_chars=self.limits.max_chars, cell_chars=self.limits.cell_chars,
                              more=more, row_cap=cap)

    def joinable(self, table: str, column: str, k: int = 5, mode: str = "equi") -> str:
        """Columns elsewhere in the lake that ``table.column`` joins with, with the join SQL.

        ``mode`` 'equi' (exact value overlap; milliseconds) is the default: 'auto' and 'semantic' also
        match values that mean the same and take seconds per call on the sample lake (measured ~3 s).
        """
        return self._table("SELECT candidate_table, candidate_column, round(score, 3) AS score, "
                           "round(containment, 3) AS containment, method, join_sql "
                           "FROM joinable(?, ?, k := ?, mode := ?)", [table, column, _k(k, 100), mode])

    def find_tables(self, query: str, k: int = 10) -> str:
        """Tables whose names, descriptions, column names or sample values match ``query`` (BM25)."""
        return self._table("SELECT table_name, round(score, 3) AS score, matched FROM find_tables(?, k := ?)",
                           [query, _k(k, 100)])

    def unionable(self, table: str, k: int = 5) -> str:
        """Tables holding more rows of the same kind as ``table``, with the UNION ALL BY NAME query."""
        return self._table("SELECT candidate_table, round(score, 3) AS score, matched_columns, union_sql "
                           "FROM unionable(?, k := ?)", [table, _k(k, 100)])

    def semantic_search(self, table: str, column: str, query: str, k: int = 5, filter: str | None = None
                        ) -> str:  # noqa: A002 - the SQL argument's name
        """Rows whose ``column`` means the same as ``query`` (needs an embed index)."""
        self._ready.wait()
        try:
            return self._table("SELECT * FROM semantic_search(?, ?, ?, k := ?, filter := ?)",
                               [table, column, query, _k(k, 100), filter])
        except LakeqlError as exc:
            if "holds your own vectors" in str(exc):  # no text tool fits: the query tool does (trial13)
                from lakeql.context.generate import USAGE_VECTOR_SQL
                from lakeql.context.safe import sql_literal
                from lakeql.lake import quote_ident

                example = USAGE_VECTOR_SQL.format(t=sql_literal(table), c=sql_literal(column),
                                                  q=quote_ident(column))
                example = example.replace("k := 10", f"k := {_k(k, 100)}")
                raise LakeqlError(f"{exc} -- with the query tool: {example}") from None
            if "index" in str(exc) and "--embed" in str(exc):
                raise self._needs_index("embed", "--embed", exc) from None
            raise

    def ngram_search(self, table: str, column: str, phrase: str, k: int = 10) -> str:
        """Rows whose ``column`` contains the exact ``phrase`` (needs an ngram index)."""
        try:
            return self._table("SELECT * FROM ngram_search(?, ?, ?, k := ?)",
                               [table, column, phrase, _k(k, 100)])
        except LakeqlError as exc:
            if "index" in str(exc) and "--ngram" in str(exc):
                raise self._needs_index("ngram", "--ngram", exc) from None
            raise

    def ngram_count(self, table: str, column: str, phrase: str) -> str:
        """How often the exact ``phrase`` occurs in ``column`` (needs an ngram index)."""
        try:
            _, rows, _ = self._rows("SELECT ngram_count(?, ?, ?)", [table, column, phrase])
        except LakeqlError as exc:
            if "index" in str(exc) and "--ngram" in str(exc):
                raise self._needs_index("ngram", "--ngram", exc) from None
            raise
        return f"{rows[0][0]} occurrences of {phrase!r} in {table}.{column}"

    def warm_running(self) -> bool:
        """True while the background warm-up still runs."""
        return self._warm_thread is not None and self._warm_thread.is_alive()

    def close(self, wait: float = 30.0) -> None:
        """Stop: interrupt running queries (the warm-up's too), wait up to ``wait`` s for the warm-up
        thread, then close the connection. Closing it under a running cursor raised DuckDB's "connection is
        busy" and left the thread in native code while the interpreter shut down (a fatal error at exit)."""
        self._closing.set()
        # interrupt again until the deadline: an interrupt that lands before its query started is lost
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                running = list(self._running)
            for cur in running:
                try:
                    cur.interrupt()
                except Exception:  # noqa: BLE001 - a cursor that just finished
                    pass
            thread = self._warm_thread
            warming = thread is not None and thread is not threading.current_thread() and thread.is_alive()
            left = deadline - time.monotonic()
            if (not warming and not running) or left <= 0:
                break
            if warming:
                thread.join(min(0.1, left))
            else:  # a call between its cursor and its execute: interrupt again until it ends
                time.sleep(min(0.02, left))
        if not self.warm_running():  # else the connection is busy under the thread: the process ends anyway
            with self._lock:
                opened = self._conn
                opened.retired = True
                close_now = opened.users == 0
            if close_now:
                opened.close()
        self._remove_temp()


def _stat_stamp(path: Path) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode) of ``path`` (the manifest is replaced by a rename: a new inode), or None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def single_threaded_compute() -> None:
    """One thread for torch and faiss: one query's encode takes ~40 ms on a busy 2-core machine with one
    thread and ~400 ms with two (measured), and the server answers one agent call at a time."""
    import torch

    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass


def _k(value: Any, most: int, name: str = "k") -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise LakeqlError(f"{name} must be a positive integer, got {value!r}") from None
    if k < 1 or k > most:
        raise LakeqlError(f"{name} must be between 1 and {most}, got {k}")
    return k


def _duckdb_message(exc: Exception) -> str:
    """DuckDB's error without the UDF wrapper noise, at most a few lines, control characters shown as
    ``\\xNN`` (the error may quote the lake's data: 'Could not convert string ...')."""
    from lakeql.render import escape_controls

    text = str(exc).strip()
    for noise in ("Invalid Input Error: Python exception occurred while executing the UDF: ",):
        text = text.replace(noise, "")
    lines = text.splitlines()
    return escape_controls("\n".join(lines[:6])[:2000])


def _refuse_file_reads(sql: str) -> None:
    """Refuse SQL that calls a file reader directly (the lake's views are the way to read data)."""
    from lakeql.context.check import parse_quietly
    from lakeql.safety import UnsafeSqlError, file_functions

    try:
        stmts = parse_quietly(sql)
    except Exception:  # noqa: BLE001 - sqlglot cannot parse all DuckDB SQL; DuckDB's own limits still apply
        return
    for st in stmts:
        found = file_functions(st)
        if found:
            raise UnsafeSqlError(f"refused: {found[0].sql('duckdb')[:80]} reads files (or the environment) "
                                 "directly; query the lake's tables (\"domain\".\"table\") instead")


def _uses_model(sql: str) -> bool:
    low = sql.lower()
    return any(f in low for f in ("semantic_search", "similar_rows", "embed(", "schema_context"))

