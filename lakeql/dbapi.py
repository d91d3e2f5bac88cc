"""The class of :func:`lakeql.connect`'s connection: a ``DuckDBPyConnection`` whose errors name the fix.

DuckDB says ``Table with name broken does not exist! Did you mean "good"?`` for a table that the lake has
but lakeql left out as unreadable (or whose view could not be made when connecting): that sends a Python
user the wrong way. The CLI, the shell and the MCP server turn it into lakeql's message
(:func:`lakeql.sqlerrors.unreadable_table_message`); :class:`LakeqlConnection` does the same for DB-API users.

It *is* a ``DuckDBPyConnection`` (a subclass without state of its own: ``isinstance``, ``duckdb.sql(...,
connection=con)``, relations, pandas and every other method behave as before); only the methods that bind a
query (``execute``, ``executemany``, ``sql``, ``query``, ``from_query``, ``table``, ``view``) turn DuckDB's
'does not exist' for such a table into :class:`UnreadableTableError`, which is both a
``duckdb.CatalogException`` (code that catches DuckDB's error keeps working) and a
:class:`lakeql.errors.LakeqlError`. A scalar function called in ``FROM`` gets DuckDB's error plus a hint line.
Every other catalog error is DuckDB's own. The look-ups run on a cursor of their own: the connection is
left as DuckDB left it (no result of lakeql's; an explicit transaction stays aborted, as DuckDB aborts it
at any error). ``cursor()`` returns a connection of this class too.

An error raised by one of lakeql's SQL functions reaches DuckDB's caller wrapped: ``Invalid Input Error:
Python exception occurred while executing the UDF: LakeqlError: the search query is empty: ...``. Those
methods raise lakeql's message as is (what the CLI, the shell and the MCP server show), as a :class:`UdfError`
of the error's own class (``UnknownTableError``, ``StaleIndexError``, ...): still a
``duckdb.InvalidInputException`` (so ``except duckdb.InvalidInputException`` / ``duckdb.Error`` keep
working) and now also a ``LakeqlError`` subclass; DuckDB's text stays in its ``duckdb_message``. Other
Python exceptions in a UDF (a bug) keep DuckDB's text. A lazy relation (``sql()``, ``query()``) runs its
query later, in the relation's own methods: those errors stay DuckDB's.

This module is also PEP 249's module (as ``lakeql`` is): ``apilevel``, ``threadsafety``, ``paramstyle``, the
exception classes, type objects and constructors (:mod:`lakeql.pep249`), ``connect``; the connection adds
what DuckDB's leaves out of PEP 249 (:class:`LakeqlConnection`), and lakeql's errors while opening a lake are
``OperationalError`` s too (:func:`open_error`).
"""

from __future__ import annotations

import functools
import re
import weakref
from typing import Any

import duckdb

from lakeql import pep249
from lakeql.errors import LakeqlError
from lakeql.pep249 import (  # noqa: F401 - PEP 249's module-level names, re-exported
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    DatabaseError,
    DataError,
    Date,
    DateFromTicks,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    Warning,
    apilevel,
    paramstyle,
    threadsafety,
)


class UnreadableTableError(LakeqlError, duckdb.CatalogException):
    """A query named a table that is in the lake but has no view: its files could not be read (the catalog's
    reason and the fix), or its view could not be made when connecting. The message keeps DuckDB's
    ``LINE n:`` caret."""

    keeps_lines = True  # lakeql.sqlrun.error_text shows every line (the caret), not only the first


class _Plain:
    """The look-ups made while converting an error, on a cursor of ``con`` (same database, views and
    functions) seen through the base class's ``execute``: not converted themselves (a missing view would
    recurse), and leaving ``con`` as DuckDB left it (no result or ``description`` of lakeql's, no
    unfinished result; another thread's use of ``con`` is not interleaved with them)."""

    __slots__ = ("_con", "_cur")

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._cur: duckdb.DuckDBPyConnection | None = None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if self._cur is None:
            self._cur = duckdb.DuckDBPyConnection.cursor(self._con)
        return duckdb.DuckDBPyConnection.execute(self._cur, *args, **kwargs)

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()


def _converted(con: duckdb.DuckDBPyConnection, exc: duckdb.CatalogException) -> BaseException | None:
    """lakeql's exception for ``exc`` (a catalog error of a query on ``con``), or None to keep DuckDB's."""
    from lakeql.sqlerrors import scalar_in_from_hint, unreadable_table_message

    msg = str(exc)
    plain = _Plain(con)
    try:
        better = unreadable_table_message(msg, plain)
        if better:
            caret = msg.find("\nLINE ")
            return UnreadableTableError(better + (msg[caret:] if caret >= 0 else ""))
        hint = scalar_in_from_hint(msg, plain)
        if hint:
            return type(exc)(msg + hint)
        return None
    finally:
        plain.close()


class UdfError(LakeqlError, duckdb.InvalidInputException):
    """An error raised by one of lakeql's SQL functions, as a DB-API caller gets it: lakeql's message (the
    ``LakeqlError`` subclass it was raised as, when lakeql has one of that name), still DuckDB's
    ``InvalidInputException``; ``duckdb_message``: DuckDB's text."""

    duckdb_message: str = ""


_UDF_CLASSES: dict[str, type] = {}


def _operational() -> tuple[type, ...]:
    from lakeql.errors import CorruptIndexError, IndexDirError, RemoteStoreError, StaleIndexError

    return (StaleIndexError, CorruptIndexError, IndexDirError, RemoteStoreError)


#: lakeql errors of a SQL function that are about the index or the store, not the caller's query: also
#: PEP 249's ``OperationalError`` (still ``InvalidInputException``, so a ``ProgrammingError`` as before)
_OPERATIONAL = _operational()


def _lakeql_class(name: str) -> type | None:
    """The ``LakeqlError`` subclass (loaded by now: it was just raised) called ``name``, or None."""
    todo, seen = [LakeqlError], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__name__ == name:
            return cls
        todo.extend(cls.__subclasses__())
    return None


def _udf_error(exc: duckdb.InvalidInputException) -> BaseException | None:
    """lakeql's error for DuckDB's wrapped exception of a lakeql UDF, or None (not lakeql's: keep it)."""
    from lakeql.errors import UDF_MARKER

    msg = str(exc)
    if UDF_MARKER not in msg:
        return None
    head, _, rest = msg.split(UDF_MARKER, 1)[1].partition(": ")
    cls = _lakeql_class(head.strip())
    if cls is None or not rest.strip():
        return None
    if issubclass(cls, duckdb.InvalidInputException):
        err_cls = cls
    elif cls is LakeqlError:
        err_cls = UdfError
    else:  # e.g. UnknownTableError: catchable as itself, as LakeqlError and as DuckDB's exception
        err_cls = _UDF_CLASSES.get(head)
        if err_cls is None:
            bases = (cls, UdfError) + ((duckdb.OperationalError,) if issubclass(cls, _OPERATIONAL) else ())
            err_cls = _UDF_CLASSES[head] = type(head, bases, {
                "__module__": cls.__module__, "__doc__": cls.__doc__,
                "__reduce__": _reduce_udf_error})  # pickle looked the name up: another class
    out = err_cls(rest)
    out.duckdb_message = msg
    return out


def _reduce_udf_error(self: BaseException) -> tuple[Any, tuple[str, str]]:
    """Pickle a lakeql UDF error of a class made by :func:`_udf_error` as DuckDB's message it came from
    (a worker process, ``multiprocessing``, Ray): the other side makes the same class again."""
    return _rebuild_udf_error, (type(self).__module__, self.duckdb_message)


def _rebuild_udf_error(module: str, msg: str) -> BaseException:
    import importlib

    importlib.import_module(module)  # its class is found among LakeqlError's subclasses
    return _udf_error(duckdb.InvalidInputException(msg)) or UdfError(msg)


def _converting(name: str):
    base = getattr(duckdb.DuckDBPyConnection, name)

    def method(self, *args: Any, **kwargs: Any) -> Any:
        query = args[0] if args else kwargs.get("query")
        if _TEMP_PENDING and self in _TEMP_PENDING:
            _temp_macros_for(self, query)
        try:
            try:
                return base(self, *args, **kwargs)
            except duckdb.CatalogException as exc:
                if self in _TEMP_MACROS and _remake_temp_macros(self, query, exc):  # e.g. rolled back
                    return base(self, *args, **kwargs)  # once: its error is handled below
                raise
        except duckdb.CatalogException as exc:
            better = _converted(self, exc)
            if better is None:
                raise
            raise better from None
        except duckdb.BinderException as exc:  # a column typed NFC, stored NFD: say which spelling binds
            from lakeql.colnames import unicode_hint

            hint = unicode_hint(str(exc))
            if not hint:
                raise
            raise type(exc)(str(exc) + hint) from None
        except duckdb.InvalidInputException as exc:
            better = _udf_error(exc)
            if better is None:
                raise
            raise better from None
        except UnicodeDecodeError as exc:  # DuckDB's message cut a character in half: its error, readable
            from lakeql.errors import undecodable_duckdb_message

            msg = undecodable_duckdb_message(exc)
            if msg is None:
                raise
            cls = duckdb.ConversionException if msg.startswith("Conversion Error") else duckdb.Error
            raise cls(msg) from None

    method.__name__ = method.__qualname__ = name
    method.__doc__ = base.__doc__
    return method


#: ``cursor.arraysize`` of each connection/cursor that set one (the class has no instance state: see
#: ``__slots__``); entries go with their connection
_ARRAYSIZE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class LakeqlConnection(duckdb.DuckDBPyConnection):
    """A DuckDB connection whose catalog errors for the lake's unreadable tables are lakeql's (module doc).

    It also fills the parts of PEP 249 that DuckDB's connection leaves out: the exception classes as
    attributes (``con.Error``), ``arraysize`` (used by ``fetchmany()``), iteration over the rows of the
    last result (``for row in con.execute(...)``, one row at a time: a result is not materialised),
    ``setinputsizes``/``setoutputsize`` (no-ops, as PEP 249 allows), ``nextset()`` (None: DuckDB keeps the
    last statement's result only), ``callproc()`` (``NotSupportedError`` naming the fix) and a
    ``rollback()`` without an open transaction that does nothing (DuckDB commits each statement by itself;
    its ``TransactionException`` there replaced the error an ``except: con.rollback(); raise`` re-raises).
    """

    __slots__ = ()  # the layout of DuckDBPyConnection: an open connection's class can be switched to this

    Warning = pep249.Warning
    Error = pep249.Error
    InterfaceError = pep249.InterfaceError
    DatabaseError = pep249.DatabaseError
    DataError = pep249.DataError
    OperationalError = pep249.OperationalError
    IntegrityError = pep249.IntegrityError
    InternalError = pep249.InternalError
    ProgrammingError = pep249.ProgrammingError
    NotSupportedError = pep249.NotSupportedError

    execute = _converting("execute")
    executemany = _converting("executemany")
    sql = _converting("sql")
    query = _converting("query")
    from_query = _converting("from_query")
    table = _converting("table")
    view = _converting("view")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database: the views and functions are shared; on a database file
        lakeql's table functions are ``TEMP`` macros (nothing written into the user's file), made again
        for the cursor (else ``find_tables``, ``joinable``, ... did not exist on it) when it first runs SQL
        naming one: :func:`_temp_macros_for`, :func:`_remake_temp_macros`."""
        cur = as_lakeql_connection(duckdb.DuckDBPyConnection.cursor(self))
        macros = _TEMP_MACROS.get(self)
        if macros is not None:  # made when the cursor first runs SQL naming one (33-56 ms of DuckDB's
            _TEMP_MACROS[cur] = _TEMP_PENDING[cur] = macros  # time: not paid by a cursor that never does)
        return cur

    @property
    def arraysize(self) -> int:
        """Rows ``fetchmany()`` returns when given no size (PEP 249; default 1)."""
        return _ARRAYSIZE.get(self, 1)

    @arraysize.setter
    def arraysize(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ProgrammingError(f"arraysize must be a whole number of rows >= 1, got {size!r}")
        _ARRAYSIZE[self] = size

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """The next ``size`` rows (default ``arraysize``) of the last result; fewer at its end."""
        return duckdb.DuckDBPyConnection.fetchmany(self, self.arraysize if size is None else size)

    def __iter__(self):
        """The remaining rows of the last result, fetched one at a time (``fetchone`` until None)."""
        return iter(self.fetchone, None)

    def setinputsizes(self, sizes: Any) -> None:
        """PEP 249: a hint that DuckDB does not need; does nothing."""

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """PEP 249: a hint that DuckDB does not need; does nothing."""

    def nextset(self) -> None:
        """None: DuckDB keeps the result of the last statement only, so there is never a next set."""
        return None

    def callproc(self, procname: str, parameters: Any = ()) -> Any:
        """DuckDB has no stored procedures: :class:`NotSupportedError` naming what to call instead."""
        raise NotSupportedError(
            "DuckDB has no stored procedures: call a table function or macro with "
            "execute('SELECT * FROM name(?, ?)', parameters), a scalar one with "
            "execute('SELECT name(?)', parameters)")

    def rollback(self) -> duckdb.DuckDBPyConnection:
        """Roll back the open transaction; without one (DuckDB commits each statement by itself unless
        ``begin()``/``BEGIN`` opened one) nothing to undo, as ``sqlite3`` does, instead of DuckDB's
        ``TransactionException``."""
        try:
            return duckdb.DuckDBPyConnection.rollback(self)
        except duckdb.TransactionException as exc:
            if "no transaction is active" not in str(exc):
                raise
            return self


#: a connection to a database file -> (index dir, capabilities) of its lakeql macros, made ``TEMP`` (this
#: connection only) there: its cursors make them again
_TEMP_MACROS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember_temp_macros(con: duckdb.DuckDBPyConnection, index_dir: Any, capabilities: Any) -> None:
    """Record that ``con`` (a database file: lakeql's macros are ``TEMP``) needs them on its cursors."""
    from lakeql.dbutil import database_is_file

    if database_is_file(con):
        caps = None if capabilities is None else (
            (capabilities,) if isinstance(capabilities, str) else tuple(capabilities))
        _TEMP_MACROS[con] = (index_dir, caps)


#: cursors of such a connection whose ``TEMP`` macros are not made yet -> (index dir, capabilities)
_TEMP_PENDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=16)
def _macro_names(capabilities: tuple[str, ...] | None) -> re.Pattern[str]:
    """A pattern matching the name of any lakeql macro of ``capabilities`` (as a word, any case)."""
    from lakeql import plugins, sqlfiles

    names = set()
    for name in ["lakeql", *(mod.NAME for mod, _fn in plugins.hook("register", capabilities))]:
        for text in sqlfiles.sections(name).values():
            names.update(m.lower() for m in _MACRO_NAME.findall(text))
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, names))) + r")\b", re.IGNORECASE)


_MACRO_NAME = re.compile(r"\bCREATE\s+OR\s+REPLACE\s+(?:TEMP\s+)?MACRO\s+\"?(\w+)", re.IGNORECASE)


def _temp_macros_for(cur: duckdb.DuckDBPyConnection, query: Any) -> None:
    """Make a cursor's pending ``TEMP`` macros if ``query`` (SQL text, or anything else: made) names one.
    A failure (an aborted transaction) leaves them pending: the caller's own statement reports it."""
    macros = _TEMP_PENDING.get(cur)
    if macros is None or (isinstance(query, str) and not _macro_names(macros[1]).search(query)):
        return
    _TEMP_PENDING.pop(cur, None)  # first: making them runs SQL on this cursor
    try:
        _make_temp_macros(cur, *macros)
    except duckdb.Error:
        _TEMP_PENDING[cur] = macros


def _remake_temp_macros(cur: duckdb.DuckDBPyConnection, query: Any, exc: duckdb.CatalogException) -> bool:
    """True when ``exc`` says a lakeql macro of ``cur`` does not exist (never made, or dropped by a
    ``ROLLBACK`` of the transaction that made it) and they were made again, so the caller retries: only
    for one statement, since the statements of a script before the failing one have already run."""
    macros = _TEMP_MACROS.get(cur)
    if macros is None or not isinstance(query, str) or "does not exist" not in str(exc):
        return False
    if not _macro_names(macros[1]).search(str(exc)):
        return False
    try:
        if len(cur.extract_statements(query)) != 1:  # parsed on the caller's cursor, not DuckDB's default
            return False
    except duckdb.Error:
        return False
    pending = _TEMP_PENDING.pop(cur, None)  # first: making them runs SQL on this cursor
    try:
        _make_temp_macros(cur, *macros)
    except duckdb.Error:
        if pending is not None:
            _TEMP_PENDING[cur] = pending
        return False
    return True


def _make_temp_macros(cur: duckdb.DuckDBPyConnection, index_dir: Any, capabilities: Any) -> None:
    """The ``TEMP`` macros that :func:`lakeql.connection.register` made on the cursor's parent (the
    Python functions they call are the database's, shared)."""
    from lakeql import plugins, sqlfiles

    sqlfiles.run(cur, "lakeql", index_dir=index_dir, temporary=True)
    for mod, _fn in plugins.hook("register", capabilities):
        sqlfiles.run(cur, mod.NAME, index_dir=index_dir, temporary=True)


_OPEN_CLASSES: dict[type, type] = {}


def open_error(exc: LakeqlError) -> LakeqlError:
    """``exc`` (lakeql's error while opening a lake) as an error of its own class that is also PEP 249's:
    ``OperationalError`` when the data source cannot be opened (the lake is not found, the store refused,
    the index is damaged or stale), ``ProgrammingError`` for a wrong argument (an unknown capability, the
    database already registered by another connection). So ``except lakeql.dbapi.Error`` / ``duckdb.Error``
    catch it as they catch every other error of the connection. Same message, attributes and traceback."""
    from lakeql.errors import LakeNotFoundError

    cls = type(exc)
    if isinstance(exc, duckdb.Error):
        return exc
    err_cls = _OPEN_CLASSES.get(cls)
    if err_cls is None:
        pep = (duckdb.OperationalError if issubclass(cls, (LakeNotFoundError, *_OPERATIONAL))
               else duckdb.ProgrammingError)
        err_cls = _OPEN_CLASSES[cls] = type(cls.__name__, (cls, pep), {
            "__module__": cls.__module__, "__doc__": cls.__doc__,
            "__reduce__": lambda self: (_reopen_error, (cls, self.args))})  # picklable (multiprocessing)
    out = err_cls(*exc.args)
    out.__dict__.update(exc.__dict__)
    return out.with_traceback(exc.__traceback__)


def _reopen_error(cls: type, args: tuple) -> LakeqlError:
    return open_error(cls(*args))


def connect(lake: Any = None, database: str = ":memory:", **kwargs: Any) -> duckdb.DuckDBPyConnection:
    """PEP 249's module ``connect``: :func:`lakeql.connect` (same arguments). It goes through the package's
    public entry point, as a user's call does: this module is the core's connection class, below the API
    layer (tests/test_layers.py), so it does not import ``lakeql.api`` itself."""
    import lakeql

    return lakeql.connect(lake, database, **kwargs)


def as_lakeql_connection(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` itself, its class switched to :class:`LakeqlConnection` (same object, same state). A DuckDB
    whose connection class cannot be switched (another layout) leaves ``con`` a plain connection."""
    if type(con) is duckdb.DuckDBPyConnection:
        try:
            con.__class__ = LakeqlConnection
        except TypeError:
            pass
    return con
