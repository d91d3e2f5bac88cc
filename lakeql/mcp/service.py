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

import contextlib
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeql.errors import LakeqlError
from lakeql.mcp.readiness import Readiness
from lakeql.mcp.tables import markdown_table
from lakeql.owned_temp import make_owned_temp, remove_owned
from lakeql.store import DEFAULT_DIRNAME, MANIFEST

TEMP_PREFIX = "lakeql-mcp-"  # the server's private DuckDB temp folder: $TMPDIR/lakeql-mcp-<pid>-<random>
HARD_MAX_ROWS = 10_000
MODEL = "model"  # warm-up key: the embedding model and the schema index (search_tables, schema_context)
JOINS = "joins"  # warm-up key: the join index (joinable)
LOAD_TIMEOUT = 3600.0  # seconds a warm-up step may take (a first numba compile: minutes); close() stops it
SEARCH_CELL_CHARS = 300


@dataclass
class Limits:
    """Caps of one tool result: rows of a query, characters of any result, seconds of a query."""

    max_rows: int = 1000
    max_chars: int = 50_000
    timeout: float = 30.0
    cell_chars: int = 1000
    memory_limit: str | None = None  # DuckDB's memory_limit of the connection ('4GB'); None: DuckDB's
    #: seconds a call waits for a warm-up load it needs (the model, its index) before it answers "warming
    #: up: retry": below the 30-60 s tool-call timeout of common MCP clients
    warm_wait: float = 20.0

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
        w = self.warm_wait
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise LakeqlError(f"warm_wait must be 0 or more seconds, got {w!r}")
        if self.memory_limit is not None:
            memory_bytes(self.memory_limit)  # refused at start, naming the flag


_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT])(i?)B\s*", re.IGNORECASE)
MIN_MEMORY = 64 * 1000**2  # below it the locked connection cannot even set itself up (1KB: out of memory)


def memory_bytes(size: Any) -> int:
    """Bytes of a ``--memory-limit`` size (``4GB``, ``512MiB``), or :class:`LakeqlError` naming the flag.

    DuckDB alone read ``-1`` as no limit at all (16383.9 PiB) and ``0GB``/``1KB`` as a limit under which
    the server failed to start with DuckDB's own out-of-memory advice (review34): a number and a unit are
    required, at least 64MB."""
    m = _MEMORY.fullmatch(size) if isinstance(size, str) else None
    if m is None:
        raise LakeqlError(f"--memory-limit {size!r} is not a memory size: write it like 4GB or 512MB "
                          "(KB, MB, GB, TB; KiB, MiB, GiB, TiB)")
    value = float(m.group(1)) * (1024 if m.group(3) else 1000) ** ("KMGT".index(m.group(2).upper()) + 1)
    if value < MIN_MEMORY:
        raise LakeqlError(f"--memory-limit {size!r} is too small for the server: give at least 64MB")
    return int(value)


def lock_down(con, folders: list[Path], temp_dir: Path | None = None,
              memory_limit: str | None = None) -> None:
    """Restrict ``con`` to reading ``folders`` and lock its configuration (irreversible for ``con``).

    DuckDB also allows its own temp directory (for spilling); ``temp_dir`` puts it in a private folder
    rather than ``.tmp`` under the server's working directory. ``memory_limit`` (``--memory-limit``) caps
    DuckDB's memory on the connection before it is locked: without it, one agent query (``list()`` over
    10^9 rows) may take DuckDB's default, 80% of the machine's memory.
    """
    from lakeql.lake import glob_escape, quote_literal

    if temp_dir is not None:
        con.execute(f"SET temp_directory = {quote_literal(str(temp_dir))}")
    if memory_limit is not None:
        import duckdb

        try:
            con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
        except duckdb.Error as exc:
            raise LakeqlError(f"--memory-limit {memory_limit!r} is not a memory size "
                              f"({str(exc).splitlines()[0]}): write it like 4GB or 512MB") from None
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
            lock_down(con, [self.lake_root, self.index_root], self._next_temp(), self.limits.memory_limit)
        except BaseException:
            con.close()
            if hasattr(self, "_remove_temp"):
                self._remove_temp()
            raise
        self._conn = _Opened(con, ctx, stamp)
        self.reopened = 0  # connections opened after the first (the index changed)
        self._readiness = Readiness()  # what the warm-up loads, per capability (lakeql.mcp.readiness)
        self.warm_started: float | None = None  # monotonic time the warm-up began
        self._closing = threading.Event()
        self._running: set[Any] = set()  # cursors executing now (close() interrupts them)
        self._lock = threading.Lock()  # guards _running, _conn and its users count
        self._reopen_lock = threading.Lock()  # one thread opens the next connection
        self._warm_thread: threading.Thread | None = None
        self._loaders: set[threading.Thread] = set()  # on-demand loads (lakeql-mcp-load) still running
        self._steps: dict[Any, tuple[str, list[Any]]] = {}  # warm-up key -> its step (sql, params)

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
            lock_down(con, [self.lake_root, self.index_root], self._next_temp(), self.limits.memory_limit)
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
        """Load, once and before agents ask, what the first call of each tool would load: the embedding
        model with the schema index (``search_tables``, an agent's usual first call), then each n-gram
        index, each embed index, the join index.

        Each is a key of :class:`~lakeql.mcp.readiness.Readiness`: a call waits only for the key it needs
        (``search_tables`` for the model, not for every index after it), at most ``Limits.warm_wait``
        seconds, and a call that comes before the warm-up reaches its key loads it itself (the warm-up
        then skips it): nothing is loaded twice.
        """
        ready = self._readiness
        self.warm_started = time.monotonic()
        # planned before the thread starts: a call right after warm() finds its key pending or running
        embeds, ngrams = self._indexed_quietly("embed"), self._indexed_quietly("ngram")
        steps: list[tuple[Any, str, list[Any]]] = [
            (MODEL, "SELECT count(*) FROM schema_context('warm up', k := 1)", [])]
        steps += [(self._key("ngram", t, c), "SELECT ngram_count(?, ?, 'a')", [t, c]) for t, c in ngrams]
        steps += [(self._key("embed", t, c), "SELECT count(*) FROM semantic_search(?, ?, 'warm up', k := 1)",
                   [t, c]) for t, c in embeds]
        steps.append((JOINS, "SELECT count(*) FROM joinable(?, ?, k := 1, mode := 'equi')", []))
        self._steps = {key: (sql, params) for key, sql, params in steps}
        ready.plan(key for key, _, _ in steps)

        def run() -> None:
            try:
                single_threaded_compute()
                for key, _, _ in steps:
                    if self._closing.is_set():
                        break
                    self._load(key)
                    single_threaded_compute()  # the step may have imported torch or faiss
            except LakeqlError:
                if not self._closing.is_set():  # stopped by close(): nothing to report
                    raise
            # a key the warm-up did not reach (stopped by close()) stays pending: the call that needs it
            # loads it

        if background:
            self._warm_thread = threading.Thread(target=run, name="lakeql-mcp-warm", daemon=True)
            self._warm_thread.start()
        else:
            run()

    def _indexed_quietly(self, kind: str) -> list[tuple[str, str]]:
        try:
            return self.indexed(kind)
        except LakeqlError:
            return []

    def _first_use(self, keys: list[Any], budget: float | None) -> contextlib.AbstractContextManager[bool]:
        """:meth:`Readiness.first_use` of all ``keys`` at once, within ``budget`` seconds (None: no bound,
        the warm-up's); yields whether this caller claimed one of them (its body loads it)."""
        return self._readiness.first_use(list(keys), _what, budget, self._closing)

    def _key(self, kind: str, table: str, column: str) -> tuple[str, str, str]:
        """The warm-up key of the ``kind`` index of ``table``.``column`` in every spelling the lake's
        functions take (any case, ``"dom"."t"``, a bare table name): an agent writing ``Python.Modules``
        found no planned key, waited for nothing and loaded the index inline under the query timeout, next
        to the warm-up loading it too (review38)."""
        from lakeql.lake import nfc

        try:
            name = self.ctx.lake.table(table).key
        except Exception:  # noqa: BLE001 - an unknown or hostile name: no key; the call says what is wrong
            name = table
        col = column if isinstance(column, str) else str(column)
        if len(col) > 1 and col[0] == col[-1] == '"':
            col = col[1:-1].replace('""', '"')
        return (kind, nfc(str(name)), nfc(col).lower())  # the table's own key: tables may differ by case

    def _query_keys(self, sql: str) -> list[Any]:
        """The warm-up keys a ``query`` tool call needs: the model when it encodes, and each index its
        lake functions name with literal arguments (``semantic_search('t', 'c', ...)``): it waited only for
        the model and ran a first index load (a numba compile: 53 s) under the 30 s query timeout."""
        keys: list[Any] = [MODEL] if _uses_model(sql) else []
        named = {("ngram" if fn.lower().startswith("ngram") else "embed", table, column)
                 for fn, table, column in _INDEX_CALL.findall(sql)}
        for kind, table, column in sorted(named)[:64]:  # a hostile SQL naming 100,000: not one wait each
            keys.append(self._key(kind, table.replace("''", "'"), column.replace("''", "'")))
        if re.search(r"\bjoinable\s*\(", sql, re.IGNORECASE):
            keys.append(JOINS)
        return list(dict.fromkeys(keys))

    def _load(self, key: Any, claimed: bool = False) -> None:
        """Run the warm-up step of ``key`` unless it is loaded or loading (then wait for it, unbounded);
        ``claimed``: the caller claimed ``key`` already (:meth:`Readiness.try_claim`).

        Its query may take minutes the first time (numba compiles the search kernels once per install:
        53 s of a cold ``semantic_search`` at load 10), so it is not cut at the tool's query timeout."""
        sql, params = self._steps[key]
        needs = [MODEL] if isinstance(key, tuple) and key[0] == "embed" else []
        ok = False
        try:
            if key == JOINS:
                first = self._rows("SELECT table_name, column_name FROM lakeql_columns() LIMIT 1", [])[1]
                if not first:
                    ok = True  # no column to warm with: nothing to wait for
                    return
                params = list(first[0])
            with self._first_use(needs + ([] if claimed else [key]), None) as owner:
                if owner or claimed:
                    self._rows(sql, params, timeout=LOAD_TIMEOUT)
            ok = True
        except LakeqlError:
            pass  # the key is pending again: the call that needs it gets the error itself
        finally:
            if claimed:
                self._readiness.release(key, ok)

    def _needs(self, *keys: Any) -> contextlib.AbstractContextManager[bool]:
        """A call's wait for ``keys``, at most ``Limits.warm_wait`` s. A key the warm-up planned but has
        not reached is loaded now by its warm-up step in a thread of its own (the call waits for it like
        for the warm-up): a first call that loaded it inline ran past the tool's query timeout while
        numba compiled (measured 32 s, "interrupted"), and past the client's."""
        for key in keys:
            if key in self._steps and not self._closing.is_set() and self._readiness.try_claim(key):
                thread = threading.Thread(target=self._run_loader, args=(key,), name="lakeql-mcp-load",
                                          daemon=True)
                with self._lock:
                    self._loaders.add(thread)
                try:
                    thread.start()
                except BaseException:  # no thread could start: the key must not stay 'running' for ever
                    with self._lock:
                        self._loaders.discard(thread)
                    self._readiness.release(key, False)
                    raise
        return self._first_use(list(keys), self.limits.warm_wait)

    def _run_loader(self, key: Any) -> None:
        """An on-demand load (:meth:`_needs`); tracked so that ``close()`` waits for it like for the
        warm-up and ``serve()`` knows a thread may still be in native code (review38)."""
        try:
            self._load(key, True)
            single_threaded_compute()  # the load may have imported torch or faiss (the warm-up may be over)
        finally:
            with self._lock:
                self._loaders.discard(threading.current_thread())

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
            if isinstance(exc, duckdb.OutOfMemoryException):
                # DuckDB's own fixes are SET statements, which this locked connection refuses
                raise LakeqlError(f"the query needs more memory than the server's limit "
                                  f"({self.limits.memory_limit or 'DuckDB default'}): filter, aggregate or "
                                  "select fewer columns (SET is not available here). "
                                  + str(exc).splitlines()[0][:200]) from None
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
    def list_domains(self, offset: int = 0) -> str:
        """Domains with their table counts, rows, tables and the schema file of each domain, from the
        ``offset``-th (0-based): a lake of many domains comes in pages, each note naming the next offset."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise LakeqlError(f"offset must be 0 or more, got {offset!r}")
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
        if offset and offset >= len(rows):
            raise LakeqlError(f"offset {offset} is past the last domain: the lake has {len(rows)}")
        out = [(dom, n, total, names, files.get(dom)) for dom, n, total, names in rows[offset:]]

        def next_page(shown: int) -> str:
            return f"the next domains: list_domains(offset={offset + shown})"

        text = markdown_table(["domain", "tables", "rows", "table names", "schema file"], out,
                              max_chars=self.limits.max_chars, cell_chars=2000, next_rows=next_page)
        if offset:
            text = f"Domains {offset + 1:,}- of {len(rows):,}:\n\n" + text
        return text

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
        with self._needs(MODEL):
            _, rows, _ = self._rows("SELECT path, score FROM schema_context(?, k := ?)",
                                    [question, _k(k, 50)])
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
        if fmt is None and (paged or len(text) > cap):
            if columns is not None:
                raise LakeqlError(f"columns applies to table files only, not to {rel.as_posix()!r}: read it "
                                  "with offset (its first line) and limit (lines)")
            return _line_page(text, rel.as_posix(), int(offset), limit, cap)
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
        with self._needs(*self._query_keys(sql)):
            cols, rows, more = self._rows(sql, [], cap)
        return markdown_table(cols, rows, max_chars=self.limits.max_chars, cell_chars=self.limits.cell_chars,
                              more=more, row_cap=cap, next_rows=_next_query_rows(sql))

    def joinable(self, table: str, column: str, k: int = 5, mode: str = "equi") -> str:
        """Columns elsewhere in the lake that ``table.column`` joins with, with the join SQL.

        ``mode`` 'equi' (exact value overlap; milliseconds) is the default: 'auto' and 'semantic' also
        match values that mean the same and take seconds per call on the sample lake (measured ~3 s).
        """
        try:
            with self._needs(JOINS):
                text = self._table("SELECT candidate_table, candidate_column, round(score, 3) AS score, "
                                   "round(containment, 3) AS containment, method, join_sql "
                                   "FROM joinable(?, ?, k := ?, mode := ?)",
                                   [table, column, _k(k, 100), mode])
        except LakeqlError as exc:
            # an agent cannot build the index the message names: the call that works here is the fix
            if mode != "equi" and "no semantic join index" in str(exc):
                raise LakeqlError(f"{exc} — this lake has none: call joinable with mode='equi' (exact value "
                                  "overlap)") from None
            raise
        from lakeql.joins.sqlapi import left_out_tables, stale_note

        opened = self._acquire()  # the SQL call's warning goes to the server's stderr: tell the agent
        try:
            note = stale_note(left_out_tables(opened.ctx, table, column, mode))
        finally:
            self._release(opened)
        return text if note is None else f"{text}\n\nNote: {note}."

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
        try:
            with self._needs(MODEL, self._key("embed", table, column)):
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
            with self._needs(self._key("ngram", table, column)):
                return self._table("SELECT * FROM ngram_search(?, ?, ?, k := ?)",
                                   [table, column, phrase, _k(k, 100)])
        except LakeqlError as exc:
            if "index" in str(exc) and "--ngram" in str(exc):
                raise self._needs_index("ngram", "--ngram", exc) from None
            raise

    def ngram_count(self, table: str, column: str, phrase: str) -> str:
        """How often the exact ``phrase`` occurs in ``column`` (needs an ngram index)."""
        try:
            with self._needs(self._key("ngram", table, column)):
                _, rows, _ = self._rows("SELECT ngram_count(?, ?, ?)", [table, column, phrase])
        except LakeqlError as exc:
            if "index" in str(exc) and "--ngram" in str(exc):
                raise self._needs_index("ngram", "--ngram", exc) from None
            raise
        return f"{rows[0][0]} occurrences of {phrase!r} in {table}.{column}"

    def warm_running(self) -> bool:
        """True while the background warm-up, or a load a call started (``lakeql-mcp-load``), still runs."""
        return bool(self._warm_threads())

    def _warm_threads(self) -> list[threading.Thread]:
        """The warm-up thread and the on-demand loaders alive now (not the calling thread)."""
        with self._lock:
            threads = [self._warm_thread, *self._loaders]
        me = threading.current_thread()
        return [t for t in threads if t is not None and t is not me and t.is_alive()]

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
            warming = self._warm_threads()
            left = deadline - time.monotonic()
            if (not warming and not running) or left <= 0:
                break
            if warming:
                warming[0].join(min(0.1, left))
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
    thread and ~400 ms with two (measured), and the server answers one agent call at a time.

    Only for the ones already imported: importing torch here cost 1.3-1.6 CPU s and 2.6-4.7 s of wall
    (load 8-14, benchmarks/results/mcpcold.md) before the first ``search_tables`` could run, and the
    default (ONNX) encoder never imports it. The warm-up calls this again after each step, so a module a
    step imported (a torch-backend index, faiss) is set then.
    """
    import sys

    for name, setter in (("torch", "set_num_threads"), ("faiss", "omp_set_num_threads")):
        module = sys.modules.get(name)
        try:
            if module is not None and hasattr(module, setter):
                getattr(module, setter)(1)
        except Exception:  # noqa: BLE001 - a module another thread is still importing: set after the next step
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


def _line_page(text: str, rel: str, offset: int, limit: int | None, cap: int) -> str:
    """Lines ``offset``.. of a schema file that is not a table file (INDEX.md, a _DOMAIN.md), at most
    ``limit`` lines and ``cap`` characters, with a note naming the call for the next lines. INDEX.md of a
    1,366-table lake was 50,060 characters, cut at 50,000 with no way to read the rest (agent13).

    A line longer than a page counts as several lines of a page each: its start alone was shown, and its
    rest could not be reached by any offset (review34). The note's path is reserved too: a long path made
    the page longer than ``cap``."""
    budget = max(1, cap - 200 - len(repr(rel)))  # room for the note, which names the path
    lines = [piece for line in text.splitlines(keepends=True)
             for piece in (line[i:i + budget] for i in range(0, len(line), budget))]
    if offset and offset >= len(lines):
        raise LakeqlError(f"offset {offset} is past the last line of {rel!r}: it has {len(lines)}")
    out: list[str] = []
    used = 0
    for line in lines[offset:offset + limit if limit is not None else None]:
        if out and used + len(line) > budget:
            break
        out.append(line)
        used += len(line)
    end = offset + len(out)
    body = "".join(out)
    if end < len(lines):
        body += (f"\n_Truncated: lines {offset + 1:,}-{end:,} of {len(lines):,} shown (a line longer than "
                 f"{budget:,} characters counts as several); the next: read_schema({rel!r}, offset={end})._")
    return body


def _next_query_rows(sql: str) -> Callable[[int], str]:
    """The query tool's note on how to get the rows after the ``shown`` first ones of ``sql``.

    Wrapped as written, a query ending in ';' or holding a ``--`` comment did not parse (the ';' inside
    the parentheses, the comment swallowing the ')'): the note says what to change for this query
    (review34)."""
    from lakeql.sqlerrors import _NOT_NAMES

    text = sql if isinstance(sql, str) else ""
    blanked = _NOT_NAMES.sub(lambda m: " " * len(m.group()), text)
    fixes = []
    if blanked.rstrip().endswith(";"):
        fixes.append("without its trailing ';'")
    if any(m.group().startswith("--") for m in _NOT_NAMES.finditer(text)):
        fixes.append("with a line break before the ')': it has a -- comment")
    how = f" ({', '.join(fixes)})" if fixes else ""

    def note(shown: int) -> str:
        return (f"the next rows: wrap the query{how} as SELECT * FROM (...) LIMIT {shown} OFFSET {shown} "
                "(with an ORDER BY for a stable order), or select fewer columns, or aggregate")

    return note


def _what(key: Any) -> str:
    """What a warm-up key loads, for the "warming up" message."""
    if key == MODEL:
        return "the embedding model (with the schema index)"
    if key == JOINS:
        return "the join index"
    kind, table, column = key
    return f"the {kind} index of {table}.{column}"


#: a lake function naming its index with literal arguments: ``semantic_search('t', 'c', ...)``
_INDEX_CALL = re.compile(r"\b(semantic_search_vector|semantic_search|hybrid_search|similar_rows|ngram_search|"
                         r"ngram_count|ngram_longest|ngram_next)\s*\(\s*"
                         r"'((?:[^']|'')*)'\s*,\s*'((?:[^']|'')*)'", re.IGNORECASE)


def _uses_model(sql: str) -> bool:
    low = sql.lower()
    return any(f in low for f in ("semantic_search", "similar_rows", "embed(", "schema_context"))

