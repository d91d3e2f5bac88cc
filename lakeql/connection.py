"""``connect()`` and ``register()``: a DuckDB connection with the lake's views and lakeql's SQL functions.

The connection is a ``duckdb.DuckDBPyConnection`` (DB-API 2.0; ``connect()`` returns the subclass
:class:`lakeql.dbapi.LakeqlConnection`, whose errors for unreadable lake tables are lakeql's): every lake
table is a view ``"domain"."name"`` over its Parquet files, and every capability registers its Python UDFs
and its ``udfs/*.sql`` macros on it. Cursors (``con.cursor()``) share the database, hence views and macros.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql.catalog import Catalog, Column
from lakeql.dbutil import database_is_file
from lakeql.errors import LakeqlError, NotIndexedError, UnknownTableError
from lakeql.indexcache import IndexCache
from lakeql.lake import Lake, Table, discover
from lakeql.store import IndexEntry, Store


@dataclass
class LakeContext:
    """What a connection knows about its lake: the tables, the catalog and the index store.

    Capabilities' UDFs close over this object; it is also where per-connection caches live (loaded
    code matrices, memory-mapped FM-indexes, models), so nothing is re-read per query.
    """

    lake: Lake | None
    store: Store | None
    _catalog: Catalog | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # small derived objects (not index files)
    indexes: IndexCache = field(default_factory=IndexCache)
    views: Any = None  # the lakeql.views.AttachPlan of this connection
    con: Any = None  # the connection the functions were registered on (rowid views attach through it)

    def rows_view(self, table: Table) -> str:
        """The quoted name of ``table``'s rowid view (its columns plus ``__rowid``) on this connection."""
        from lakeql.views import rows_view_for

        return rows_view_for(self.views, table, self.con, self)

    def row_files_view(self, table: Table) -> str:
        """The quoted name of ``table``'s row-files view (:func:`lakeql.rows.row_files_sql`)."""
        from lakeql.views import row_files_view_for

        return row_files_view_for(self.views, table, self.con, self)

    def require_lake(self) -> Lake:
        if self.lake is None:
            raise LakeqlError("no lake is attached: use lakeql.connect(lake=PATH) or --lake PATH")
        return self.lake

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.open(self.require_lake(), self.store)
        return self._catalog

    def table(self, name: str) -> Table:
        lake = self.require_lake()
        try:
            return lake.table(name)
        except UnknownTableError as exc:
            better = self.catalog.unreadable_table_error(name) if self.store is not None else None
            raise better or exc from None

    def column(self, table: str | Table, column: str) -> Column:
        return self.catalog.column(table, column)

    def require_index(self, kind: str, table: Table | None = None, column: str = "", flag: str = ""
                      ) -> IndexEntry:
        """The fresh index (kind, table, column) or a clear error (not built / stale / missing).

        ``table=None``: a lake-wide index (its staleness is the capability's to judge).
        """
        if self.store is None:
            raise NotIndexedError("no index store: run 'lakeql index LAKE' first")
        return self.store.require(kind, table, column, flag)

    def load_index(self, kind: str, table: Table | None, column: str,
                   loader: Callable[[Path, IndexEntry], Any], flag: str = "",
                   prepare: Callable[[Path, IndexEntry], Any] | None = None, variant: str = "") -> Any:
        """Load (once, cached and memory-bounded) the fresh index of (kind, table, column).

        ``loader(path, entry)`` opens the index files at ``path``; it runs again only after a rebuild.
        The one way capabilities read their indexes at query time (see :mod:`lakeql.indexcache`).
        ``prepare(path, entry)``: slow work that may run before, outside the swap lock that ``loader``
        holds (which makes ``lakeql index`` wait), e.g. filling a cache the loader then reads; a failure
        is ignored (the loader does the work itself). ``variant``: another way of opening the same files,
        cached beside the first (``':ann'``: the ANN lists' memory-mapped rows, :mod:`lakeql.vectors.ann`).
        """
        entry = self.require_index(kind, table, column, flag)
        key = (kind + variant, table.key if table is not None else "", column, str(entry.built_at))

        def load() -> Any:
            if prepare is not None and self.store is not None:
                try:
                    prepare(self.store.root / entry.path, entry)
                except Exception:  # noqa: BLE001 - only an optimisation: the loader redoes it
                    pass
            return self.store.load_verified(entry, loader)  # checksums

        return self.indexes.get_or_load(key, load, size_hint=entry.bytes)

    def cached_index(self, kind: str, table: Table | None, column: str, flag: str = "") -> Any:
        """The index :meth:`load_index` already loaded for the fresh build of (kind, table, column), or
        None (nothing is loaded here)."""
        entry = self.require_index(kind, table, column, flag)
        return self.indexes.peek((kind, table.key if table is not None else "", column, str(entry.built_at)))


def connect(lake: str | os.PathLike[str] | None = None, database: str = ":memory:",
            index_dir: str | os.PathLike[str] | None = None, **duckdb_kwargs: Any):
    """Open a DuckDB connection with the lake's views and every lakeql SQL function registered.

    ``lake``: a folder of Parquet files (or None for the functions alone); ``index_dir``: where
    ``lakeql index`` wrote its indexes (default ``LAKE/.lakeql``); other keyword arguments go to
    ``duckdb.connect``. The connection is a :class:`lakeql.dbapi.LakeqlConnection` (a
    ``DuckDBPyConnection`` whose error for a table lakeql left out as unreadable names the reason and fix).
    """
    from lakeql.dbapi import as_lakeql_connection

    return as_lakeql_connection(open_lake(lake, database, index_dir, **duckdb_kwargs)[0])


_DUCKDB_CONNECT_ARGS = ("read_only", "config")  # what duckdb.connect takes besides the database


def _check_duckdb_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuse a keyword :func:`connect` would pass to ``duckdb.connect`` that it does not take, naming
    it: an index option such as ``embed_backend`` got DuckDB's "incompatible function arguments"."""
    unknown = sorted(set(kwargs) - set(_DUCKDB_CONNECT_ARGS))
    if unknown:
        raise TypeError(
            f"lakeql.connect() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: it takes "
            "lake, database, index_dir and duckdb.connect's read_only and config. Index options (the "
            "encoder, capabilities, ...) belong to lakeql.index(); queries use what the index recorded."
        )


def open_lake(lake: str | os.PathLike[str] | None = None, database: str = ":memory:",
              index_dir: str | os.PathLike[str] | None = None, capabilities: Iterable[str] | None = None,
              **duckdb_kwargs: Any):
    """Like :func:`connect`, but also return the :class:`LakeContext` (for tools built on lakeql)."""
    import duckdb

    _check_duckdb_kwargs(duckdb_kwargs)
    con = duckdb.connect(database, **duckdb_kwargs)
    try:
        ctx = register(con, lake, index_dir=index_dir, capabilities=capabilities)
    except BaseException:
        con.close()
        raise
    return con, ctx


def register(con, lake: str | os.PathLike[str] | Lake | None = None,
             index_dir: str | os.PathLike[str] | None = None, capabilities: Iterable[str] | None = None
             ) -> LakeContext:
    """Add the lake's views and lakeql's functions to an existing DuckDB connection.

    ``capabilities``: register only these (default all). The host runs each capability's
    ``udfs/<NAME>.sql`` right after its ``register`` hook bound the Python UDFs.
    """
    from lakeql import core_udfs, plugins, sqlfiles, views

    lk = lake if isinstance(lake, Lake) else (discover(lake) if lake is not None else None)
    store = Store.for_lake(lk, index_dir) if lk is not None else (
        Store(index_dir) if index_dir is not None else None)
    ctx = LakeContext(lk, store)
    ctx.con = con
    root = store.root if store else None
    if lk is not None and lk.fs is not None:  # a lake on object storage (lakeql.sources.remote)
        from lakeql.sources.remote import register_filesystem

        register_filesystem(con, lk.fs)
    if lk is not None:
        ctx.views = views.attach(con, ctx)
        if store is not None:
            hint = outdated_index_hint(store, ctx.views)
            if hint:
                from lakeql.progress import say

                say(hint)
    temporary = database_is_file(con)  # nothing of lakeql's is left behind in a user's database file
    import duckdb

    try:
        core_udfs.register(con, ctx)
    except duckdb.CatalogException as exc:  # another connection's functions in this shared database
        if "already exists" not in str(exc):
            raise
        raise _shared_registration(con) from None
    sqlfiles.run(con, "lakeql", index_dir=root, temporary=temporary)
    for mod, fn in plugins.hook("register", capabilities):
        fn(con, ctx)
        sqlfiles.run(con, mod.NAME, index_dir=root, temporary=temporary)
    return ctx


def _shared_registration(con) -> LakeqlError:
    """The error for a connection whose database already has lakeql's Python functions from another
    connection of this process. DuckDB shares one database instance (and its functions) among the
    connections of a process to the same file: a second ``lakeql.connect(lake, 'my.duckdb')`` while the
    first is open (a notebook cell run again), or ``register()`` on a cursor of a file database, failed
    half-way with ``Catalog Error: Scalar Function with name "lakeql_manifest_file" already exists!``.
    (Functions of this very connection, ``register()`` twice, are replaced: :func:`lakeql.udf.scalar_udf`.)
    Caught when binding the first function rather than looked up before: a catalog look-up on a fresh
    connection cost 50 ms of every connect."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                       ).fetchall()
    where = repr(rows[0][0]) if rows and rows[0][0] else "this in-memory database"
    return LakeqlError(
        f"lakeql's SQL functions are already registered in {where} by another open connection of this "
        "process (an earlier lakeql.connect() or lakeql.register() of this database, or the connection "
        "this cursor came from): DuckDB shares one database and its functions among the connections and "
        "cursors of a process. Use that connection, or close it before connecting again")


def outdated_index_hint(store: Store, plan: Any) -> str:
    """A one-line hint when the index was written by another lakeql in a way that makes every connection
    slower (the stored catalog is not reused, so a query of the catalog reads every Parquet footer again;
    views of another format are made anew); ``''`` otherwise, or while a build is running. An index of a
    newer format says so (a refresh by this lakeql would rewrite it in the older format for the newer
    one to redo): upgrade lakeql."""
    import json

    from lakeql.catalog import CATALOG_FORMAT, _current_format

    old, newer = [], False
    try:
        entry = store.find("catalog")
        if entry is not None and not _current_format(entry):
            found = entry.params_dict.get("format", 1)
            newer |= isinstance(found, int) and found > CATALOG_FORMAT
            old.append(f"catalog format {found!s}, now {CATALOG_FORMAT}")
    except Exception:  # noqa: BLE001 - an unreadable manifest is reported where it is read
        pass
    if plan is not None and getattr(plan, "outdated", False):
        from lakeql.views import FORMAT, MANIFEST, VIEWS_DIR

        try:
            found = json.loads((store.root / VIEWS_DIR / MANIFEST).read_text()).get("format")
        except (OSError, ValueError, AttributeError):
            found = None
        if isinstance(found, int) and found > FORMAT:
            newer = True
            old.append(f"views format {found}, now {FORMAT}")
        else:
            old.append(f"views of an older format, now {FORMAT}")
    if not old or store.build_running() is not None:
        return ""
    if newer:
        return (f"lakeql: hint: the index {str(store.root)!r} was written by a newer lakeql "
                f"({'; '.join(old)}), so each connection reads the lake's Parquet footers again: upgrade "
                "lakeql (pip install -U lakeql); 'lakeql index --refresh LAKE' would rewrite it for this "
                "older version")
    return (f"lakeql: hint: the index {str(store.root)!r} was written by an older lakeql ({'; '.join(old)}), "
            "so each connection reads the lake's Parquet footers again: run 'lakeql index --refresh LAKE' "
            "once to update it")
