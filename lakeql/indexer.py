"""``lakeql index``: catalogue the lake, run every capability's builder, write ``lake.duckdb``.

Order: catalog -> capability builders (joins, vectors, ngrams, context) -> the catalog database file.
Each builder writes atomically, so an interrupted run leaves the previous indexes usable. With
``refresh`` only new or changed tables are rebuilt, and indexes of removed tables are dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql import plugins, sqlfiles
from lakeql.catalog import Catalog
from lakeql.errors import LakeqlError
from lakeql.lake import Lake, discover
from lakeql.options import IndexOptions
from lakeql.progress import say
from lakeql.store import IndexEntry, Store

DUCKDB_CLI_STORAGE = "v1.5.0"  # the stock duckdb CLI (PyPI duckdb-cli 1.5.x) reads this storage version


@dataclass
class BuildContext:
    """What a capability builder gets: the lake, its catalog, the store and the typed options.

    ``options["joins"]`` is the joins capability's options object (see :mod:`lakeql.options`).
    """

    lake: Lake
    store: Store
    catalog: Catalog
    options: IndexOptions
    stats: dict[str, Any] = field(default_factory=dict)
    engine: Any = None  # lakeql.engine (issue 10): builders' loops run as ctx.engine.map(fn, items)

    def __post_init__(self) -> None:
        if self.engine is None:
            from lakeql.engine import LocalEngine

            self.engine = LocalEngine()

    @property
    def refresh(self) -> bool:
        return bool(self.options.core.refresh)

    def needs_build(self, kind: str, table_key: str, column: str = "", params: str | None = None) -> bool:
        """False when ``refresh`` and an up-to-date, complete index with the same params already exists."""
        if not self.refresh:
            return True
        entry = self.store.find(kind, table_key, column)
        if entry is None or entry.fingerprint != self.lake.tables[table_key].fingerprint:
            return True
        if not self.store.intact(entry):  # missing or damaged files (lakeql.store checksums)
            return True
        return params is not None and entry.params != params


@dataclass
class IndexReport:
    """What ``lakeql.index()`` did: per index (kind, table, column) its seconds and bytes."""

    lake: str
    index_dir: str
    seconds: float
    tables: int
    source_bytes: int
    indexes: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def store(self) -> Store:
        """The index store that was written (to read its manifest or files)."""
        return Store(self.index_dir)

    @property
    def bytes(self) -> int:
        return sum(int(r["bytes"]) for r in self.indexes)

    def __str__(self) -> str:
        ratio = self.bytes / self.source_bytes if self.source_bytes else 0.0
        return (f"indexed {self.tables} tables in {self.seconds:.1f} s -> {self.index_dir} "
                f"({self.bytes / 1e6:.1f} MB of index, {ratio:.2f}x the {self.source_bytes / 1e6:.1f} MB "
                "of data)")


def build_index(lake_path: str | os.PathLike[str], options: IndexOptions | None = None) -> IndexReport:
    """Build (or refresh) every index of the lake with ``options``; returns an :class:`IndexReport`."""
    opts = options if options is not None else IndexOptions()
    opts.validate()
    from lakeql.engine import make_engine  # issue 10: a Ray address that does not answer fails before writes

    with make_engine(opts.core.engine, opts.core.ray_address) as engine:
        return _build(lake_path, opts, engine)


def _build(lake_path: str | os.PathLike[str], opts: IndexOptions, engine: Any) -> IndexReport:
    t0 = time.perf_counter()
    started = dt_now()
    lake = discover(lake_path)
    store = Store.for_lake(lake, opts.core.index_dir)
    store.ensure_writable()
    # lakeql.store (issue 12): one build per index dir; remove dead builds' temp files; rebuild damaged
    from lakeql.sources.buildfs import build_scope
    from lakeql.sources.remote import builder_connections

    lock = store.build_lock(wait=getattr(opts.core, "wait", True), say=say)
    # build_scope: the pooled builder databases keep their threads until the build ends, then are parked
    with lock, build_scope(), builder_connections(lake.fs, lake.root):  # remote: one snapshot
        # the verification record written once, by remember_checksummed at the end of the build
        store.drop_damaged(verify=bool(getattr(opts.core, "verify", False)), defer_record=True)
        store.clean_stale()
        return _build_locked(lake, store, opts, t0, started, engine)


def _build_locked(lake: Lake, store: Store, opts: IndexOptions, t0: float, started, engine: Any = None
                  ) -> IndexReport:
    """The build proper, under the lake's build lock."""
    stages: list[dict[str, Any]] = []

    def stage(name: str, fn, *args) -> None:
        s0, c0 = time.perf_counter(), time.process_time()
        before = store_bytes(store)
        fn(*args)
        if lake.fs is not None:  # a remote lake: a read met a failing store (a table was left out for it)
            from lakeql.sources.snapshot import store_failure

            failed = store_failure(lake.fs)
            if failed is not None:
                raise failed  # stop here: the next stages and the database are not written
        secs, cpu = time.perf_counter() - s0, time.process_time() - c0
        delta = store_bytes(store) - before
        # CPU seconds of this process (all its threads): the steady figure on a shared machine
        stages.append({"stage": name, "seconds": round(secs, 3), "cpu_seconds": round(cpu, 3),
                       "bytes": delta})
        say(f"{name}: {secs:.1f} s ({cpu:.1f} CPU s)")

    if getattr(opts.core, "csv_encoding", None):  # --csv-encoding: checked against the lake, then recorded
        from lakeql import csvnamed

        named = csvnamed.parse(opts.core.csv_encoding)
        csvnamed.apply(lake, named or {})
        csvnamed.record(store, named)
    else:  # the names an earlier build recorded (the fingerprints below include them)
        from lakeql import csvnamed

        csvnamed.apply(lake, csvnamed.recorded(store), strict=False)
    discovered = {k: t.fingerprint for k, t in lake.tables.items()}  # before unreadable files are dropped
    holder: dict[str, Catalog] = {}
    stage("catalog", lambda: holder.setdefault("cat", Catalog.build(lake, store, refresh=True)))
    ctx = BuildContext(lake, store, holder["cat"], opts, engine=engine)
    check_targets(ctx)  # every --embed/--ngram TABLE.COLUMN checked before any capability writes
    for mod, build in plugins.hook("build", opts.core.capabilities):
        stage(getattr(mod, "NAME", mod.__name__), build, ctx)
    drop_removed(store, lake)
    stage("database", write_database, store, holder["cat"], discovered, bool(opts.core.refresh))
    store.remember_checksummed()  # the next integrity pass need not read what this build wrote
    report = IndexReport(str(lake.root), str(store.root), time.perf_counter() - t0, len(lake.tables),
                         sum(t.source_bytes for t in lake.tables.values()),
                         [{"kind": e.kind, "table": e.table_name, "column": e.column_name, "bytes": e.bytes,
                           "built": e.built_at >= started} for e in store.entries()], stages)
    say(str(report))
    return report


def check_targets(ctx: BuildContext) -> None:
    """Run every capability's ``check`` hook (its named targets against the catalog) before any build.

    One error names every bad target (a wrong ``--embed`` and a wrong ``--ngram`` are both reported);
    a single one keeps its own type (unknown table / column)."""
    errors: list[LakeqlError] = []
    for _mod, check in plugins.hook("check_targets", ctx.options.core.capabilities):
        try:
            check(ctx)
        except LakeqlError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise LakeqlError("; ".join(str(e) for e in errors))


def dt_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def store_bytes(store: Store) -> int:
    """Bytes of the manifest's indexes now (cheap: read from the manifest, not the disk)."""
    return sum(e.bytes for e in store.entries())


def drop_removed(store: Store, lake: Lake) -> None:
    """Drop manifest rows (and files) of tables that are no longer in the lake."""
    for e in store.entries():
        if e.table_name and e.table_name not in lake.tables:
            store.drop(e.kind, e.table_name, e.column_name)


def write_database(store: Store, catalog: Catalog, discovered: dict[str, str] | None = None,
                   refresh: bool = False) -> Path:
    """Write ``lake.duckdb``: schemas, a view per table, and every capability's pure-SQL macros; and
    the prebuilt views that connections attach (``views/``, see :mod:`lakeql.views`).

    Created with the storage version the stock duckdb CLI 1.5 reads; paths inside are absolute.
    ``discovered``: the tables' fingerprints as discovered (default: as they are now). ``refresh``: a
    file the manifest vouches for is updated in place for the views that changed (:mod:`lakeql.lakedb`).
    """
    from lakeql import lakedb
    from lakeql.dbutil import new_database_file, run_views
    from lakeql.views import views_named, write_views

    lake = catalog.lake
    target = store.path("lake.duckdb")
    # rowid views only where the stock CLI's search macros need them (embedded / n-gram indexed
    # tables): one per table was most of this file
    named = views_named(catalog, {e.table_name for e in store.entries()
                                  if e.kind in ("embed", "ngram") and e.table_name})
    views = [create for _, create in named]
    macros = _Recorder()
    sqlfiles.run(macros, "lakeql", kinds=("pure",), index_dir=store.root, target="cli")
    for mod in plugins.capabilities():
        sqlfiles.run(macros, mod.NAME, kinds=("pure",), index_dir=store.root, target="cli")
    digest = hashlib.sha1(json.dumps([DUCKDB_CLI_STORAGE, views, macros.sql]).encode()).hexdigest()
    source = sum(t.source_bytes for t in lake.tables.values())
    old = store.find("database")
    intact = old is not None and store.intact(old)
    prev = old.params_dict if intact else {}
    # --refresh: the same statements make the same file, so an intact one is kept (~0.1 CPU s)
    if prev.get("digest") == digest:
        params = old.params
        if not prev.get("statements"):  # made by an older lakeql: record its statements for next time
            params = json.dumps({"digest": digest, "statements": lakedb.save(
                store, lakedb.encode(named, macros.sql, DUCKDB_CLI_STORAGE))})
        if old.source_bytes != source or params != old.params:  # a table's files changed, its view did not
            store.record(dataclasses.replace(old, source_bytes=source, params=params))
    else:
        before = lakedb.load(store, prev) if refresh and prev.get("digest") else None
        # in place while the file is not much larger than when last written whole; else compacted
        in_place = before is not None and lakedb.in_place_ok(target, prev.get("compact_bytes"))
        skipped = None if before is None else lakedb.update(store, target, before, named, macros.sql,
                                                             DUCKDB_CLI_STORAGE, in_place=in_place)
        if skipped is None or not in_place:  # written whole or compacted: the size to grow from
            compact = None
        else:
            compact = prev["compact_bytes"]
        if skipped is None:
            with store.atomic_file(target) as tmp:
                tmp.unlink()  # duckdb must create the file itself
                with new_database_file(tmp, DUCKDB_CLI_STORAGE) as con:
                    skipped = run_views(con, views)  # one view that fails leaves that table out, not the lake
                    for sql in macros.sql:
                        con.execute(sql)
        lakedb.drop_wal(target)  # the WAL of the file just replaced (a killed stock CLI session's)
        # a view left out: no digest, so the next build makes the file again (the files may be fixed)
        params = {"digest": "" if skipped else digest}
        if not skipped:
            params["statements"] = lakedb.save(store, lakedb.encode(named, macros.sql, DUCKDB_CLI_STORAGE))
        size = target.stat().st_size
        params["compact_bytes"] = size if compact is None else compact
        store.record(IndexEntry("database", "", "", "lake.duckdb", size, source, "",
                                params=json.dumps(params)))
    write_views(store, catalog, discovered or {k: t.fingerprint for k, t in lake.tables.items()},
                DUCKDB_CLI_STORAGE)
    return target


class _Recorder:
    """Stands in for a connection: keeps the SQL text :func:`lakeql.sqlfiles.run` would execute."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def execute(self, sql: str) -> None:
        self.sql.append(sql)
