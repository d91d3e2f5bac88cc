"""The object-store filesystem of the remote-lake build now running, for what its builders open.

While ``lakeql index`` builds a remote (``s3://``) lake, the capability builders open private DuckDB
connections and ``pyarrow.parquet.ParquetFile`` objects to scan the lake's tables. They do it through
:func:`connect` and :func:`parquet_file`, which give them the lake's filesystem and the build's
snapshot of the listing (each object fetched once; :mod:`lakeql.sources.snapshot`). Nothing global is
patched: connections and files that lakeql's builders do not open are never touched. Outside a remote
build both are plain ``duckdb.connect`` / ``pyarrow.parquet.ParquetFile``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

_STATE: dict[str, Any] = {"fs": None, "snapshot": None}


def start(fs: Any, snap: Any) -> None:
    """Mark a remote build on ``fs`` (reading through ``snap`` when given) as running."""
    _STATE["fs"], _STATE["snapshot"] = fs, snap


def stop(fs: Any) -> None:
    """The build on ``fs`` ended."""
    if _STATE["fs"] is fs:
        _STATE["fs"], _STATE["snapshot"] = None, None


#: the time zone of every builder's connection: a TIMESTAMPTZ value of a file whose column the view reads
#: as VARCHAR (schema drift) is indexed as its UTC text (``2014-07-01 12:00:00+00``), a TIMESTAMP of a
#: file whose column the view reads as TIMESTAMPTZ is taken as UTC, whatever the build machine's ``TZ``
BUILD_TIME_ZONE = "UTC"


def connect(*args: Any, **kwargs: Any):
    """``duckdb.connect(...)`` in the time zone :data:`BUILD_TIME_ZONE`, with the running remote build's
    filesystem registered on it."""
    import duckdb

    _register_at_exit()  # after duckdb's own exit handler is registered, so it runs before it
    con = duckdb.connect(*args, **kwargs)
    con.execute(f"SET TimeZone = '{BUILD_TIME_ZONE}'")
    fs = _STATE["fs"]
    if fs is not None:
        from lakeql.sources.remote import register_filesystem

        with contextlib.suppress(Exception):  # a local path reads without it; an s3 read then names the fault
            register_filesystem(con, fs)
    return con


#: idle DuckDB databases kept for :func:`pooled` (per process): making one costs ~15-25 ms of CPU (its
#: catalog of built-in functions, its threads), a cursor of a kept one ~0.2 ms
POOL_MAX = 4
#: the memory limit a database given back is set to for a moment, so that it returns its memory
FLUSH_LIMIT = "16MB"
_POOL: list[Any] = []
_POOL_LOCK = threading.Lock()
#: builds running in this process (:func:`build_scope`): while none runs, an idle kept database is parked
_BUILDS = [0]
#: kept databases whose threads are stopped (:func:`_park`): started again when handed out
_PARKED: set[int] = set()
#: what parks an idle database: DuckDB 2.0 runs ``threads - 1`` workers and 8 ``async_threads`` per
#: database, so 3 kept databases held ~27 idle threads in a resident process (review23). Both settings
#: stop their threads at once (~1-2 ms each) and a RESET starts them again (~1-2 ms each)
PARK = ("SET async_threads = 0", "SET threads = 1")
UNPARK = ("RESET async_threads", "RESET threads")
#: a database given back while no build runs (a Ray worker profiling table after table, a query-time
#: profile) is parked after this many idle seconds, not at once: parking and starting cost ~1.8 CPU ms
IDLE_PARK_SECONDS = 5.0
_IDLE = {"last": 0.0, "timer": None, "closed": False}  # the last give-back outside a build; the pending
# park timer; whether the interpreter is exiting (no park starts then)
#: held while databases are parked: interpreter exit waits for a park in progress (:func:`_at_exit`)
_PARKING = threading.Lock()
_POOL_PID = [os.getpid()]
_FORKED: list[Any] = []  # a forked child's inherited databases, kept referenced (see pooled)
#: what a connection given back must have left in its database: no attached file, no object of its own
#: (checked on every give-back, with the filesystems registered on it: ~2 ms)
_LEFTOVERS = ("SELECT (SELECT count(*) FROM duckdb_databases() WHERE NOT internal AND database_name <> "
              "'memory') + (SELECT count(*) FROM duckdb_tables() WHERE NOT temporary AND database_name = "
              "'memory') + (SELECT count(*) FROM duckdb_views() WHERE NOT internal AND NOT temporary AND "
              "database_name = 'memory')")
#: a full check of a database given back, against its state when it was handed out: what the cheap check
#: does not see (global settings such as preserve_insertion_order or temp_directory, macros and Python
#: functions, schemas, sequences, types, secrets). It costs ~10-25 CPU ms, as much as a new database,
#: so it runs only when :data:`VERIFY` is set (the tests: tests/test_review23.py builds and refreshes a
#: lake of every default capability under it). A builder on a pooled connection must leave none of these.
VERIFY = False
#: what :data:`VERIFY` found (one line per database closed for it)
VIOLATIONS: list[str] = []
_SETTINGS = "SELECT name, coalesce(value, '') FROM duckdb_settings()"
_OBJECTS = ("SELECT 'function ' || database_name || '.' || schema_name || '.' || function_name FROM "
            "duckdb_functions() UNION ALL "  # every one: a Python function is 'internal', in 'system'
            "SELECT 'schema ' || database_name || '.' || schema_name FROM duckdb_schemas() "
            "WHERE NOT internal UNION ALL "
            "SELECT 'sequence ' || sequence_name FROM duckdb_sequences() UNION ALL "
            "SELECT 'type ' || type_name FROM duckdb_types() WHERE NOT internal UNION ALL "
            "SELECT 'secret ' || name FROM duckdb_secrets()")


def _state(root: Any) -> tuple[dict[str, str], set[str]]:
    """The database's global settings (as its own session reads them) and its objects (:data:`VERIFY`)."""
    return dict(root.execute(_SETTINGS).fetchall()), {r[0] for r in root.execute(_OBJECTS).fetchall()}


def _differences(before: tuple[dict[str, str], set[str]] | None, root: Any) -> list[str]:
    if before is None:
        return []
    settings, objects = _state(root)
    out = [f"setting {k}: {before[0][k]!r} -> {v!r}" for k, v in sorted(settings.items())
           if k in before[0] and before[0][k] != v]  # a setting an extension added is not a change
    return out + [f"new {o}" for o in sorted(objects - before[1])]


class PooledConnection:
    """A builder connection (a cursor of a pooled in-memory DuckDB database, in :data:`BUILD_TIME_ZONE`)
    that gives its database back on :meth:`close` instead of closing it; every other attribute is the
    cursor's. The database is kept only when the connection left nothing in it (no attached file, no
    table or view of its own, no registered filesystem: temp objects and registered Arrow data go with
    the cursor); then its thread count is set back and the memory its queries used is returned
    (:data:`FLUSH_LIMIT`); else, or after an error, it is closed. What the cheap check does not see
    (global settings, macros, functions, ...) a builder must not leave (:data:`VERIFY` checks it).
    Never shared between threads."""

    __slots__ = ("_cur", "_root", "_before")

    def __init__(self, cur: Any, root: Any, before: tuple[dict[str, str], set[str]] | None = None) -> None:
        self._cur, self._root, self._before = cur, root, before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def close(self) -> None:
        with _POOL_LOCK:  # given back once, even when two threads close it
            cur, root, before = self._cur, self._root, self._before
            self._cur = self._root = self._before = None
        if root is None:
            return
        keep = False
        try:
            cur.close()
            # first what it left (a database about to be closed is not flushed: the flush would spill
            # a table left in it to the temp directory), and a registered filesystem: a remote lake's
            # credentials must not reach the next (local) build
            if root.execute(_LEFTOVERS).fetchall()[0][0] == 0 and not root.list_filesystems():
                root.execute("RESET threads")
                # the memory its queries used goes back to the system (DuckDB's allocator keeps it: ~500
                # MB after a 4M-row aggregate, kept for the rest of the build and of a resident process):
                # a limit below it flushes the allocator, then the default limit is set back (~0.4 ms;
                # lakeql sets no memory limit of its own on a builder's database)
                root.execute(f"SET memory_limit = '{FLUSH_LIMIT}'")
                root.execute("RESET memory_limit")
                found = _differences(before, root) if VERIFY else []
                if found:
                    VIOLATIONS.append("; ".join(found))
                keep = not found
        except Exception:  # noqa: BLE001 - a database in an unknown state is closed, not kept
            keep = False
        if keep:
            with _POOL_LOCK:
                fits = len(_POOL) < POOL_MAX and all(r is not root for r in _POOL)
                if _POOL_PID[0] == os.getpid() and fits:
                    _POOL.append(root)
                    if _BUILDS[0] == 0:  # no build runs: park the idle ones once nothing used them a while
                        _park_later()
                    return
                _PARKED.discard(id(root))
        with contextlib.suppress(Exception):
            root.close()

    def __enter__(self) -> PooledConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def pooled() -> Any:
    """A builder connection like :func:`connect`'s, from a kept idle DuckDB database when there is one
    (:class:`PooledConnection`: ``close()`` gives the database back). A remote build's connections are
    not pooled (they carry its filesystem): those are :func:`connect`'s. A refresh that profiles one new
    file and updates two database files made three databases (~0.06-0.08 CPU s of a 0.5 s refresh)."""
    if _STATE["fs"] is not None:
        return connect()
    root = None
    parked = False
    with _POOL_LOCK:
        if _POOL_PID[0] != os.getpid():  # a forked child: its parent's databases are not its own
            # (nor their threads): set aside, never used nor closed here (closing one joins threads
            # that only exist in the parent)
            _FORKED.extend(_POOL)
            _POOL.clear()
            _PARKED.clear()
            _POOL_PID[0] = os.getpid()
        if _POOL:
            root = _POOL.pop()
            parked = id(root) in _PARKED
            _PARKED.discard(id(root))
    if root is None:
        root = connect()
    elif parked:
        try:
            for sql in UNPARK:
                root.execute(sql)
        except Exception:  # noqa: BLE001 - a database that cannot start its threads: a new one
            with contextlib.suppress(Exception):
                root.close()
            root = connect()
    cur = root.cursor()
    try:
        cur.execute(f"SET TimeZone = '{BUILD_TIME_ZONE}'")
        before = _state(root) if VERIFY else None
    except Exception:
        cur.close()
        root.close()
        raise
    return PooledConnection(cur, root, before)


def _park(root: Any) -> bool:
    """Stop an idle kept database's threads (:data:`PARK`); False when it could not be (close it)."""
    try:
        for sql in PARK:
            root.execute(sql)
    except Exception:  # noqa: BLE001 - a database in an unknown state is closed, not kept
        return False
    with _POOL_LOCK:
        _PARKED.add(id(root))
    return True


def _park_later() -> None:
    """Note a give-back outside a build and make sure one timer will park the idle databases
    :data:`IDLE_PARK_SECONDS` after the last one (called under the pool lock)."""
    import time

    _IDLE["last"] = time.monotonic()
    timer = _IDLE["timer"]
    if timer is None or not timer.is_alive():
        timer = threading.Timer(IDLE_PARK_SECONDS, _park_idle)
        timer.daemon = True
        timer.name = "lakeql-park-idle"
        try:
            timer.start()
        except RuntimeError:  # no thread can start (a pids limit, interpreter shutdown): kept unparked,
            return  # parked when a build ends; never fail the give-back for it
        _IDLE["timer"] = timer


def _park_idle() -> None:
    """The timer's body: park the idle databases when no build runs and none was given back for
    :data:`IDLE_PARK_SECONDS`; else wait again."""
    import time

    with _POOL_LOCK:
        _IDLE["timer"] = None
        if _BUILDS[0] or _POOL_PID[0] != os.getpid():
            return
        left = _IDLE["last"] + IDLE_PARK_SECONDS - time.monotonic()
        if left > 0.05:
            timer = threading.Timer(left, _park_idle)
            timer.daemon = True
            timer.name = "lakeql-park-idle"
            try:
                timer.start()
                _IDLE["timer"] = timer
                return
            except RuntimeError:  # no thread can start: park now instead
                pass
    _park_pool()


def _park_pool() -> None:
    """Park every idle database of the pool (taken out while parked: no builder pops one meanwhile)."""
    with _PARKING:
        with _POOL_LOCK:
            stop = _BUILDS[0] or _POOL_PID[0] != os.getpid() or _IDLE["closed"]
            idle = [] if stop else [r for r in _POOL if id(r) not in _PARKED]
            for r in idle:
                _POOL.remove(r)
        for r in idle:
            if _park(r):
                with _POOL_LOCK:
                    if len(_POOL) < POOL_MAX and _POOL_PID[0] == os.getpid():
                        _POOL.append(r)
                        continue
                    _PARKED.discard(id(r))
            with contextlib.suppress(Exception):
                r.close()


def _at_exit() -> None:
    """At interpreter exit: no park starts, the pending timer is cancelled and a park in progress (in the
    timer's daemon thread, ~2 ms) is waited for. An exit while that thread was inside DuckDB aborted the
    process ('terminate called ... FATAL: exception not rethrown', exit status 134)."""
    with _POOL_LOCK:
        _IDLE["closed"] = True
        timer, _IDLE["timer"] = _IDLE["timer"], None
    if timer is not None:
        timer.cancel()
    if _PARKING.acquire(timeout=10.0):  # bounded: a park is two SET statements (~2 ms)
        _PARKING.release()


def _register_at_exit() -> None:
    """Register :func:`_at_exit` once, after ``duckdb`` is imported: atexit handlers run last registered
    first, and duckdb's own exit handler interrupts running queries (a park in progress then raised in
    the timer thread while the interpreter went down)."""
    if not _IDLE.get("registered"):
        _IDLE["registered"] = True
        atexit.register(_at_exit)


@contextlib.contextmanager
def build_scope() -> Iterator[None]:
    """While a build runs, databases given back keep their threads (the next builder takes one at ~0.2
    ms, the pool's gain); when the last build of the process ends, the idle ones are parked
    (:func:`_park`), so a resident process (MCP server, notebook, a service that refreshes) holds no idle
    DuckDB threads between builds. Outside any build, idle databases are parked after
    :data:`IDLE_PARK_SECONDS` (:func:`_park_later`)."""
    with _POOL_LOCK:
        _BUILDS[0] += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _BUILDS[0] -= 1
        _park_pool()


def _after_fork_in_child() -> None:
    """A forked child gets a pool lock of its own: the parent's may be held at the fork by another thread
    (a builder giving a database back, the idle-park timer), and a lock copied locked is never released
    in the child, whose first :func:`pooled` then hung for ever. No park timer runs in the child (threads
    do not survive a fork). The parent's databases are set aside by the child's first :func:`pooled`
    (``_POOL_PID``), as before."""
    global _POOL_LOCK, _PARKING
    _POOL_LOCK = threading.Lock()
    _PARKING = threading.Lock()
    _IDLE["timer"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parquet_file(source: Any, *args: Any, **kwargs: Any):
    """``pyarrow.parquet.ParquetFile(source, ...)``; an ``s3://`` URL of an object of the running build's
    snapshot is read from the snapshot (pyarrow would otherwise make its own S3 client: a HEAD and a GET
    per file and builder)."""
    import pyarrow.parquet as pq

    snap = _STATE["snapshot"]
    if snap is not None and isinstance(source, str) and source.startswith(("s3://", "s3a://")):
        f = snap.open(source.split("://", 1)[1])
        if f is not None:
            source = f
    return pq.ParquetFile(source, *args, **kwargs)


def zoned_column(path: str, column: str) -> bool:
    """Whether the Parquet file's ``column`` holds a type whose text depends on the session's
    ``TimeZone`` (a TIMESTAMPTZ, also inside a LIST or STRUCT): a refresh of an index built in another
    zone (or before the zone was recorded: the build machine's) builds such a file's shards again, so
    that one index holds one zone's text. A file that cannot be read counts as zoned (built again)."""
    try:
        schema = parquet_file(path).schema_arrow
    except Exception:  # noqa: BLE001 - gone or damaged: build it again (its error is told then)
        return True
    col = column.lower()
    return any("tz=" in str(f.type) for f in schema if f.name.lower() == col)
