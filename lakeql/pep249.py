"""The module-level names PEP 249 (DB-API 2.0) asks of a database module, for :mod:`lakeql.dbapi`.

``lakeql.connect()`` returns a DuckDB connection, so the globals, the exceptions and the type objects are
DuckDB's own objects (``lakeql.dbapi.Error is duckdb.Error``: an ``except`` written for either catches
both). DuckDB's module has no ``InterfaceError`` and no type constructors; they are defined here, the
constructors as the Python types DuckDB binds as parameters (``Date`` -> ``DATE``, ``Binary`` -> ``BLOB``).

``threadsafety = 1`` (DuckDB's level, and true here): threads may share the module, not a connection; a
connection used by two threads at once refuses with ``duckdb.ResourceInUseException`` naming the fix (one
``con.cursor()`` per thread; cursors share the lake's views and lakeql's functions).
``paramstyle = 'qmark'`` (``WHERE x = ?`` with a sequence); DuckDB also binds ``$1`` with a sequence and
``$name`` with a dict.
"""

from __future__ import annotations

import datetime
import time

import duckdb

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

Warning = duckdb.Warning  # noqa: A001 - the name PEP 249 gives it
Error = duckdb.Error
DatabaseError = duckdb.DatabaseError
DataError = duckdb.DataError
OperationalError = duckdb.OperationalError
IntegrityError = duckdb.IntegrityError
InternalError = duckdb.InternalError
ProgrammingError = duckdb.ProgrammingError
NotSupportedError = duckdb.NotSupportedError


class InterfaceError(duckdb.Error):
    """PEP 249's error of the database interface rather than the database (DuckDB's module has none)."""


STRING = duckdb.STRING
NUMBER = duckdb.NUMBER
DATETIME = duckdb.DATETIME
BINARY = duckdb.BINARY
ROWID = duckdb.ROWID

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 - PEP 249's name
    """The local date of ``ticks`` seconds since the epoch (as the sqlite3 module does)."""
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802
    """The local time of day of ``ticks`` seconds since the epoch."""
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802
    """The local date and time of ``ticks`` seconds since the epoch."""
    return Timestamp(*time.localtime(ticks)[:6])


#: PEP 249's module-level names (``lakeql`` exposes them lazily, ``lakeql.dbapi`` directly)
NAMES = (
    "apilevel", "threadsafety", "paramstyle", "Warning", "Error", "InterfaceError", "DatabaseError",
    "DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
    "NotSupportedError", "STRING", "NUMBER", "DATETIME", "BINARY", "ROWID", "Date", "Time", "Timestamp",
    "Binary", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks",
)
#: the exception classes PEP 249 makes reachable as attributes of a connection (``con.Error``)
EXCEPTIONS = NAMES[3:13]
