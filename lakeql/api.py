"""lakeql's Python API: ``index()`` builds a lake's indexes, ``connect()`` opens it in DuckDB.

Front ends (the CLI, the shell, the MCP server, tests, benchmarks) call these two functions; they hold no
logic of their own. Options are keyword arguments named as the fields of the options dataclasses
(:mod:`lakeql.options`): ``lakeql.index(lake, embed=["python.modules.docstring"], embed_method="sign")``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from lakeql.options import IndexOptions

PathLike = str | os.PathLike[str]


def index(lake: PathLike, *, index_dir: PathLike | None = None, embed: str | Iterable[str] | None = None,
          ngram: str | Iterable[str] | None = None, refresh: bool = False, progress: bool = True,
          capabilities: Iterable[str] | None = None, **options: Any):
    """Build (or with ``refresh=True`` update) the indexes of ``lake``; returns an ``IndexReport``.

    ``embed`` / ``ngram``: text columns (``'domain.table.column'``) to embed for ``semantic_search`` /
    to FM-index for ``ngram_*``. ``capabilities``: build only these (``['joins', 'context']``); an option
    of a capability left out (``ngram=`` with ``capabilities=['joins']``) is a ``LakeqlError`` naming the fix.
    Other keywords are capability options (see ``lakeql.options`` and ``lakeql index --help``), e.g.
    ``embed_method='sign'``, ``joins_semantic=False``, ``schemas_format='md'``.
    """
    from lakeql.indexer import build_index
    from lakeql.progress import quiet_while

    if embed is not None:
        options["embed"] = embed
    if ngram is not None:
        options["ngram"] = ngram
    opts = IndexOptions.from_kwargs(
        index_dir=None if index_dir is None else os.fspath(index_dir), refresh=refresh, progress=progress,
        capabilities=None if capabilities is None else (
            [capabilities] if isinstance(capabilities, str) else list(capabilities)), **options)
    with quiet_while(not progress):
        return build_index(lake, opts)


def connect(lake: PathLike | None = None, database: str = ":memory:", *, index_dir: PathLike | None = None,
            capabilities: Iterable[str] | None = None, **duckdb_kwargs: Any):
    """A ``duckdb.DuckDBPyConnection`` with the lake's tables as views and lakeql's SQL functions.

    ``capabilities``: register only these (``['joins']``); default all. Other keywords go to
    ``duckdb.connect`` (``read_only``, ``config``). The connection is a
    :class:`lakeql.dbapi.LakeqlConnection`: a query of a table that lakeql left out as unreadable raises
    lakeql's reason and fix (an ``UnreadableTableError``, also a ``duckdb.CatalogException``), not DuckDB's
    'does not exist'; an error raised by a lakeql SQL function is lakeql's message (its own ``LakeqlError``
    class, also a ``duckdb.InvalidInputException``), not DuckDB's UDF wrapper around it. lakeql's error
    while opening is also PEP 249's: ``duckdb.OperationalError`` (``LakeNotFoundError``, ``RemoteStoreError``,
    a damaged index) or ``duckdb.ProgrammingError`` (a wrong argument): :func:`lakeql.dbapi.open_error`.
    """
    from lakeql.connection import open_lake
    from lakeql.dbapi import as_lakeql_connection, open_error, remember_temp_macros
    from lakeql.errors import LakeqlError

    try:
        con, ctx = open_lake(lake, database, index_dir, capabilities=capabilities, **duckdb_kwargs)
    except LakeqlError as exc:  # also a PEP 249 error: `except duckdb.Error` catches it
        raise open_error(exc) from exc.__cause__
    con = as_lakeql_connection(con)
    remember_temp_macros(con, ctx.store.root if ctx.store else None, capabilities)
    return con
