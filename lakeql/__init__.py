"""lakeql: a folder of Parquet tables as a searchable data lake, every operation a SQL function in DuckDB.

``lakeql.connect(lake)`` returns a DuckDB connection (DB-API 2.0) with a view per lake table and every
lakeql SQL function registered. Importing this package is cheap: DuckDB, numpy, torch and
sentence-transformers load on first use. The package is also PEP 249's module: ``lakeql.paramstyle``,
``lakeql.Error``, ``lakeql.Date``, ... (the same objects as in :mod:`lakeql.dbapi`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "connect", "index", "register", "LakeqlError"]


def connect(lake: Any = None, database: str = ":memory:", **kwargs: Any):
    """Open a DuckDB connection with the lake's views and lakeql's functions (:func:`lakeql.api.connect`)."""
    from lakeql.api import connect as _connect

    return _connect(lake, database, **kwargs)


def index(lake: Any, **kwargs: Any):
    """Build or refresh the lake's indexes; returns a report (see :func:`lakeql.api.index`)."""
    from lakeql.api import index as _index

    return _index(lake, **kwargs)


def register(con: Any, lake: Any = None, index_dir: Any = None, capabilities: Any = None):
    """Add the lake's views and lakeql's functions to an existing DuckDB connection."""
    from lakeql.connection import register as _register

    return _register(con, lake, index_dir=index_dir, capabilities=capabilities)


#: PEP 249's module-level names (``lakeql.paramstyle``, ``lakeql.Error``, ``lakeql.Date``, ...), loaded with
#: DuckDB on first use from :mod:`lakeql.pep249` (``lakeql.dbapi`` has them too)
_PEP249 = frozenset({
    "apilevel", "threadsafety", "paramstyle", "Warning", "Error", "InterfaceError", "DatabaseError",
    "DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
    "NotSupportedError", "STRING", "NUMBER", "DATETIME", "BINARY", "ROWID", "Date", "Time", "Timestamp",
    "Binary", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks",
})


def __getattr__(name: str) -> Any:
    if name == "LakeqlError":
        from lakeql.errors import LakeqlError

        return LakeqlError
    if name in _PEP249:
        from lakeql import pep249

        return getattr(pep249, name)
    raise AttributeError(f"module 'lakeql' has no attribute {name!r}")
