"""``lakeql index``: catalogue the lake, run every capability's builder, write ``lake.duckdb``.

Order: catalog -> capability builders (joins, vectors, ngrams, context) -> the catalog database file.
Each builder writes atomically, so an interrupted run leaves the previous indexes usable. With
``refresh`` only new or changed tables are rebuilt, and indexes of removed tables are dropped.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql import plugins, sqlfiles
from lakeql.catalog import Catalog
from lakeql.lake import Lake, discover
from lakeql.progress import say
from lakeql.store import IndexEntry, Store

DUCKDB_CLI_STORAGE = "v1.5.0"  # the stock duckdb CLI (PyPI duckdb-cli 1.5.x) reads this storage version


@dataclass
class BuildContext:
    """What a capability builder gets: the lake, its catalog, the store and the CLI options."""

    lake: Lake
    store: Store
    catalog: Catalog
    options: argparse.Namespace
    refresh: bool = False
    stats: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        return getattr(self.options, name, default)

    def needs_build(self, kind: str, table_key: str, column: str = "", params: str | None = None) -> bool:
        """False when ``refresh`` and an up-to-date index with the same params already exists."""
        if not self.refresh:
            return True
        entry = self.store.find(kind, table_key, column)
        if entry is None or entry.fingerprint != self.lake.tables[table_key].fingerprint:
            return True
        return params is not None and entry.params != params


def default_options(**overrides: Any) -> argparse.Namespace:
    """The options of ``lakeql index`` with their defaults (for calling :func:`build_index` from Python)."""
    from lakeql.cli import index_parser

    ns = index_parser().parse_args(["."])
    for k, v in overrides.items():
        setattr(ns, k, v)
    return ns


def build_index(lake_path: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None,
                refresh: bool = False, options: argparse.Namespace | None = None) -> Store:
    """Build (or refresh) every index of the lake; returns the store."""
    t0 = time.perf_counter()
    lake = discover(lake_path)
    store = Store.for_lake(lake, index_dir)
    store.ensure_writable()
    opts = options if options is not None else default_options()
    catalog = Catalog.build(lake, store, refresh=True)
    ctx = BuildContext(lake, store, catalog, opts, refresh)
    for _, build in plugins.hook("build"):
        build(ctx)
    drop_removed(store, lake)
    write_database(store, catalog)
    say(f"indexed {len(lake.tables)} tables in {time.perf_counter() - t0:.1f} s -> {store.root}")
    return store


def drop_removed(store: Store, lake: Lake) -> None:
    """Drop manifest rows (and files) of tables that are no longer in the lake."""
    for e in store.entries():
        if e.table_name and e.table_name not in lake.tables:
            store.drop(e.kind, e.table_name, e.column_name)


def write_database(store: Store, catalog: Catalog) -> Path:
    """Write ``lake.duckdb``: schemas, a view per table, and every capability's pure-SQL macros.

    Created with the storage version the stock duckdb CLI 1.5 reads; paths inside are absolute.
    """
    import duckdb

    from lakeql.connection import run_batch, views_sql

    lake = catalog.lake
    target = store.path("lake.duckdb")
    with store.atomic_file(target) as tmp:
        tmp.unlink()  # duckdb must create the file itself
        con = duckdb.connect(str(tmp), config={"storage_compatibility_version": DUCKDB_CLI_STORAGE})
        try:
            run_batch(con, views_sql(catalog))
            for name in ["lakeql", *[m.NAME for m in plugins.capabilities() if hasattr(m, "NAME")]]:
                sqlfiles.run(con, name, kinds=("pure",), index_dir=store.root)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = Path(str(tmp) + ".wal")
        if wal.exists():
            wal.unlink()
    store.record(IndexEntry("database", "", "", "lake.duckdb", target.stat().st_size,
                            sum(t.source_bytes for t in lake.tables.values()), ""))
    return target
