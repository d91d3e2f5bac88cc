"""The lake's tables as DuckDB views, attached instead of created: ``connect()`` in a fraction of a second.

Creating a view costs DuckDB about 0.4 ms (it binds the query, which opens the Parquet footers), so a
10,000-table lake took ~10 s to connect when every view was created anew. Instead, ``lakeql index``
writes the views once (:func:`write_views`) into small database files under ``INDEX_DIR/views/``:

* one file per domain of more than :data:`SMALL_DOMAIN` tables, its views in ``main``: attached read-only
  **as a catalog named after the domain**, so ``"flights"."airlines"`` resolves (DuckDB reads ``a.b`` as
  catalog ``a``, table ``b`` too) on the connection and on every cursor of it, without a search path;
* smaller domains get no file (a database file costs ~256 KB of blocks however few views it holds):
  the manifest keeps their views' scans and ``connect()`` creates them in an in-memory catalog of the
  domain's name (a few views: well under a millisecond each).

Attaching only reads the catalog entries (0.3 s for 20,000 views measured here). Staleness is still
exact: ``connect()`` walks the lake (stat only) and compares each domain's file fingerprints with those
recorded at index time. A domain whose files changed (or that has no prebuilt views) gets live views in
an in-memory catalog of the same name, built from the current catalog. The hidden rowid views
``lakeql_rows."domain.name"`` (columns + ``__rowid``) are created on first use, one table at a time, by
``lakeql_rows_view()`` (most connections never need one; a prebuilt file of them was most of this
folder). Tables of the root domain (``main``) and domains whose names DuckDB reserves or that clash with
an attached database are created as ordinary views in the connection's own database (``TEMP`` views when
that database is a file, so nothing is left behind in it).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeql.lake import ROOT_DOMAIN, Lake, Table, quote_ident, quote_literal, scan_sql
from lakeql.rows import ROWS_SCHEMA, rowid_scan_of

if TYPE_CHECKING:
    from lakeql.catalog import Catalog

VIEWS_DIR = "views"
MANIFEST = "views.json"
FORMAT = 3  # 2: no lakeql_rows.duckdb (rowid views made on first use); small domains have no file;
#             3: a small domain's tables are stored as data (format, paths, hive), never as SQL text
SMALL_DOMAIN = 3  # domains of at most this many tables get their views at connect time
RESERVED = {"main", "memory", "system", "temp", "lakeql_rows", "lakeql_rows_live"}


def domain_fingerprint(fingerprints: dict[str, str], keys: list[str]) -> str:
    """A hash of the keys and file fingerprints of a domain's tables (``fingerprints``: as discovered,
    before profiling). The same at index time (recorded) and at connect time (compared)."""
    h = hashlib.sha1()
    for k in sorted(keys):
        h.update(f"{k}\0{fingerprints.get(k, '')}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def by_domain(lake: Lake) -> dict[str, list[Table]]:
    out: dict[str, list[Table]] = {}
    for t in lake.tables.values():
        out.setdefault(t.domain, []).append(t)
    return out


def attachable(domain: str) -> bool:
    return domain.lower() not in RESERVED and not domain.lower().startswith("lakeql_")


# ----------------------------------------------------------------------------------- index time
def write_views(store, catalog, discovered: dict[str, str], storage_version: str) -> Path:
    """Write ``INDEX_DIR/views/``: a database file per attachable domain of more than
    :data:`SMALL_DOMAIN` tables (the files of smaller ones, as data, in the manifest), and the manifest.

    ``discovered``: ``{table key: fingerprint}`` of the tables as discovered (before unreadable files were
    dropped), which is what ``connect()`` compares against.
    """
    lake = catalog.lake
    target = store.path(VIEWS_DIR)
    domains: dict[str, Any] = {}
    with store.atomic_dir(target) as tmp:
        groups = by_domain(lake)
        for i, (domain, tables) in enumerate(sorted(groups.items())):
            if not attachable(domain):
                continue
            spec: dict[str, Any] = {"fingerprint": domain_fingerprint(discovered, [t.key for t in tables])}
            if len(tables) > SMALL_DOMAIN:
                spec["file"] = f"d{i:05d}.duckdb"
                _write_db(tmp / spec["file"], storage_version,
                          [f"CREATE VIEW main.{quote_ident(t.name)} AS SELECT * FROM {t.scan_sql()}"
                           for t in tables if t.files])
            else:  # what each scan reads, as data: connect() makes the SQL, quoting every path itself
                spec["views"] = {t.name: {"format": t.format, "paths": list(t.paths), "hive": bool(t.hive)}
                                 for t in tables if t.files}
            domains[domain] = spec
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "domains": domains,
                                                "tables": dict(sorted(discovered.items()))}))
    return target


def _write_db(path: Path, storage_version: str, statements: list[str]) -> None:
    """A small database file holding ``statements``' views (written in one transaction, checkpointed)."""
    from lakeql.dbutil import new_database_file, run_batch

    with new_database_file(path, storage_version) as con:
        run_batch(con, statements)


# ----------------------------------------------------------------------------------- connect time
@dataclass
class AttachPlan:
    """What :func:`attach` did: for tests, ``lakeql doctor`` and the rowid-view name lookup."""

    attached: list[str] = field(default_factory=list)  # domains attached from prebuilt files
    live: list[str] = field(default_factory=list)  # domains given live views (changed or no file)
    local: list[str] = field(default_factory=list)  # domains created in the connection's own database
    small: list[str] = field(default_factory=list)  # small fresh domains: views made from the manifest
    rows_made: set[str] = field(default_factory=set)  # tables whose rowid view exists on this database
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ensure_rows(self, con, ctx, table: Table) -> None:
        """Create ``table``'s rowid view in ``lakeql_rows`` (once per database, on first use).

        Called from ``lakeql_rows_view()`` while DuckDB binds a query, so it creates the view through a
        cursor (another connection to the same database: the view is shared, and the binding query
        sees it).
        """
        if table.key in self.rows_made:
            return
        with self.lock:
            if table.key in self.rows_made:
                return
            cur = con.cursor()
            try:
                for t in _readable(ctx, [table]):
                    cur.execute(f"CREATE OR REPLACE VIEW {ROWS_SCHEMA}.main.{quote_ident(t.key)} AS "
                                f"{rowid_scan_of(ctx.catalog, t)}").fetchall()
            finally:
                cur.close()
            self.rows_made.add(table.key)


def load_manifest(views_root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((views_root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("format") == FORMAT else None


def attach(con, ctx) -> AttachPlan:
    """Make every table of ``ctx.lake`` reachable as ``"domain"."name"`` (and, on first use,
    ``lakeql_rows."domain.name"``)."""
    from lakeql.dbutil import database_is_file, run_batch

    lake = ctx.lake
    plan = AttachPlan()
    if getattr(ctx, "con", None) is None:
        ctx.con = con  # rowid views are created through it on first use
    views_root = ctx.store.root / VIEWS_DIR if ctx.store is not None else None
    manifest = load_manifest(views_root) if views_root is not None else None
    existing = {r[0]: r[1]
                for r in con.execute("SELECT database_name, path FROM duckdb_databases()").fetchall()}
    own_is_file = database_is_file(con)
    built_tables = (manifest or {}).get("tables", {})
    fingerprints = {k: t.fingerprint for k, t in lake.tables.items()}  # hashed once per connect
    plan.changed_tables = {k for k, fp in fingerprints.items() if built_tables.get(k) != fp}
    local_stmts: list[str] = []
    for domain, tables in sorted(by_domain(lake).items()):
        spec = (manifest or {}).get("domains", {}).get(domain)
        path = str(views_root / spec["file"]) if spec and spec.get("file") else None
        if not attachable(domain) or (domain in existing and existing[domain] != path):
            plan.local.append(domain)
            local_stmts += _local_views(domain, tables, ctx, temporary=own_is_file)
            continue
        if domain in existing:  # attached by an earlier register() on this database instance
            plan.attached.append(domain)
            continue
        fresh = (spec is not None
                 and spec["fingerprint"] == domain_fingerprint(fingerprints, [t.key for t in tables]))
        if fresh and path is not None and Path(path).exists():
            con.execute(f"ATTACH {quote_literal(path)} AS {quote_ident(domain)} (READ_ONLY)").fetchall()
            plan.attached.append(domain)
        elif fresh and path is None and (scans := _small_scans(spec.get("views"))) is not None:
            con.execute(f"ATTACH ':memory:' AS {quote_ident(domain)}").fetchall()
            run_batch(con, [f"CREATE VIEW {quote_ident(domain)}.main.{quote_ident(name)} AS "
                            f"SELECT * FROM {scan}" for name, scan in scans.items()])
            plan.small.append(domain)
        else:
            con.execute(f"ATTACH ':memory:' AS {quote_ident(domain)}").fetchall()
            run_batch(con, [f"CREATE VIEW {quote_ident(domain)}.main.{quote_ident(t.name)} AS "
                            f"SELECT * FROM {t.scan_sql()}" for t in _readable(ctx, tables)])
            plan.live.append(domain)
    run_batch(con, local_stmts)
    if ROWS_SCHEMA not in existing:
        con.execute(f"ATTACH ':memory:' AS {ROWS_SCHEMA}").fetchall()
    return plan


def _small_scans(views: Any) -> dict[str, str] | None:
    """``{view name: scan SQL}`` of a small domain's manifest entry (None when it is malformed: the caller
    then makes live views). The manifest is a file, so its values are data checked here, and the SQL
    is made by :func:`lakeql.lake.scan_sql`, which quotes every path."""
    if not isinstance(views, dict):
        return None
    out = {}
    for name, v in views.items():
        if not (isinstance(name, str) and isinstance(v, dict)
                and v.get("format") in ("parquet", "csv", "json")
                and isinstance(v.get("paths"), list) and v["paths"]
                and all(isinstance(p, str) for p in v["paths"]) and isinstance(v.get("hive"), bool)):
            return None
        out[name] = scan_sql(v["format"], v["paths"], v["hive"])
    return out


def _readable(ctx, tables: list[Table]) -> list[Table]:
    """The tables as the catalog sees them now (unreadable files dropped), those with files left."""
    cat = ctx.catalog
    out = []
    for t in tables:
        cur = cat.lake.tables.get(t.key)
        if cur is not None and cur.files and t.key in cat.table_rows:
            out.append(cur)
    return out


def _local_views(domain: str, tables: list[Table], ctx, temporary: bool) -> list[str]:
    out = []
    if domain != ROOT_DOMAIN and not temporary:
        out.append(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(domain)}")
    for t in _readable(ctx, tables):
        if temporary:
            # a TEMP view cannot live in a schema: the root domain's tables only (others are skipped)
            if domain == ROOT_DOMAIN:
                out.append(f"CREATE OR REPLACE TEMP VIEW {quote_ident(t.name)} AS "
                           f"SELECT * FROM {t.scan_sql()}")
            continue
        out.append(f"CREATE OR REPLACE VIEW {t.sql_name} AS SELECT * FROM {t.scan_sql()}")
    return out


def rows_view_for(plan: AttachPlan | None, table: Table, con=None, ctx=None) -> str:
    """The quoted name of the rowid view of ``table`` on this connection (created on first use)."""
    if plan is not None and con is not None and ctx is not None:
        plan.ensure_rows(con, ctx, table)
    return f"{ROWS_SCHEMA}.{quote_ident(table.key)}"


def views_sql(catalog: Catalog, rows_for: set[str] | None = None) -> list[str]:
    """A schema per domain, a view per table and the ``lakeql_rows`` views, for ``lake.duckdb``.

    ``rows_for``: the tables that get a rowid view (the stock CLI's search macros need one for each
    table with an embedded or n-gram index; None: every table). Connections attach prebuilt views
    instead: see :mod:`lakeql.views`.
    """
    from lakeql.rows import rows_view_name

    lake = catalog.lake
    out = [f"CREATE SCHEMA IF NOT EXISTS {quote_ident(d)}" for d in lake.domains]
    out.append(f"CREATE SCHEMA IF NOT EXISTS {ROWS_SCHEMA}")
    for t in lake.tables.values():
        if not t.files:
            continue
        out.append(f"CREATE OR REPLACE VIEW {t.sql_name} AS SELECT * FROM {t.scan_sql()}")
        if rows_for is None or t.key in rows_for:
            out.append(f"CREATE OR REPLACE VIEW {rows_view_name(t)} AS {rowid_scan_of(catalog, t)}")
    return out

