"""The lake's tables as DuckDB views, attached instead of created: ``connect()`` in a fraction of a second.

Creating a view costs DuckDB about 0.4 ms (it binds the query, which opens the Parquet footers), so a
10,000-table lake took ~10 s to connect when every view was created anew. Instead, ``lakeql index``
writes the views once (:func:`write_views`) into small database files under ``INDEX_DIR/views/``:

* one file per domain of more than :data:`SMALL_DOMAIN` tables, its views in ``main``: attached read-only
  **as a catalog named after the domain**, so ``"flights"."airlines"`` resolves (DuckDB reads ``a.b`` as
  catalog ``a``, table ``b`` too) on the connection and on every cursor of it, without a search path;
* smaller domains share one file, ``small.duckdb``, a schema each (a file per domain costs ~28 KB
  however few views it holds: 9 MB for the 315 small domains of a 2,427-table lake, 0.5 MB shared). The
  manifest also keeps their tables' files as data (format, paths, hive). ``connect()`` copies their
  views (at least :data:`SMALL_COPY_MIN` of them; fewer are made from the data) into the connection's
  own in-memory database with ``COPY FROM DATABASE ... (SCHEMA)``, which does not bind them again
  (creating 404 views binds each, opening its Parquet footer: ~0.33 s CPU under load; copying them
  ~0.12 s with the check), after checking the file (:func:`_checked_small`): schemas and views only,
  and a domain is copied only when its views are exactly those made from the manifest's data by
  :func:`lakeql.lake.scan_sql`, as DuckDB renders them; the data is itself checked against the lake (a
  table's own files, format and hive flag). Whatever fails a check gets views made from the data. On a
  database file (nothing may be left in it), or for a format-3 index, the views are made from the data.

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
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeql.dbutil import inflate
from lakeql.lake import ROOT_DOMAIN, Lake, Table, quote_ident, quote_literal, quote_path, scan_sql
from lakeql.rows import ROWS_SCHEMA, rowid_scan_of

if TYPE_CHECKING:
    from lakeql.catalog import Catalog

VIEWS_DIR = "views"
MANIFEST = "views.json"
FORMAT = 4  # 2: no lakeql_rows.duckdb (rowid views made on first use); small domains have no file;
#             3: a small domain's tables are stored as data (format, paths, hive), never as SQL text;
#             4: + small.duckdb, every small domain's views in one file (a schema each), checked and copied
READS = (3, 4)  # manifest formats connect() reads (a format-3 index: its small domains' views are created)
SMALL_FILE = "small.duckdb"
STATEMENTS = ".statements.json.z"  # what each views file was made from: [[drop, create], ...] per digest
SMALL_ALIAS = "lakeql_small_views"  # the name small.duckdb is attached under while it is copied
#: copy the small domains' views from small.duckdb when they are at least this many: its check costs ~30 ms
#: (listing the functions, to find macros), creating a view ~0.5 ms
SMALL_COPY_MIN = 64
Scan = tuple  # (format, paths, hive, header, whole_sniff): what a small domain's view reads, as data
SMALL_DOMAIN = 3  # domains of at most this many tables get their views at connect time
RESERVED = {"main", "memory", "system", "temp", "lakeql_rows", "lakeql_rows_live", "lakeql_row_files"}


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
    small: list[str] = []  # the small domains' schemas and views, for small.duckdb
    in_small: set[str] = set()
    files: list[tuple[str, str, list[str]]] = []  # (file name, statements' digest, statements)
    view_of: dict[str, tuple[str, str]] = {}  # a domain file's view statement -> (domain, view name)
    drops: dict[str, str] = {}  # each statement's undo (a refresh updates a changed file in place)
    owner: dict[str, str] = {SMALL_FILE: SMALL_FILE}  # file name -> its domain

    def digest_of(statements: list[str]) -> str:
        return hashlib.sha1(json.dumps([storage_version, statements]).encode()).hexdigest()

    groups = by_domain(lake)
    for i, (domain, tables) in enumerate(sorted(groups.items())):
        if not attachable(domain):
            continue
        spec: dict[str, Any] = {"fingerprint": domain_fingerprint(discovered, [t.key for t in tables])}
        if len(tables) > SMALL_DOMAIN:
            spec["file"] = f"d{i:05d}.duckdb"
            statements = []
            for t in tables:
                if t.files:
                    statements.append(sql := f"CREATE VIEW main.{quote_ident(t.name)} AS SELECT * FROM "
                                             f"{t.scan_sql()}")
                    drops[sql] = f"DROP VIEW IF EXISTS main.{quote_ident(t.name)}"
                    view_of[sql] = (domain, t.name)
            spec["sql"] = digest_of(statements)
            files.append((spec["file"], spec["sql"], statements))
            owner[spec["file"]] = domain
        else:  # what each scan reads, as data: connect() makes the SQL, quoting every path itself
            spec["views"] = {t.name: {"format": t.format, "paths": list(t.paths), "hive": bool(t.hive),
                                      **({"header": True} if t.csv_header else {}),
                                      **({"whole_sniff": True} if t.csv_whole_sniff else {})}
                             for t in tables if t.files}
            if domain.lower() in in_small or domain.lower() in ("information_schema", "pg_catalog"):
                domains[domain] = spec  # names DuckDB folds together, or its own: made from data
                continue
            in_small.add(domain.lower())
            small.append(sql := f"CREATE SCHEMA {quote_ident(domain)}")
            drops[sql] = f"DROP SCHEMA IF EXISTS {quote_ident(domain)} CASCADE"
            for t in tables:
                if t.files:
                    name = f"{quote_ident(domain)}.{quote_ident(t.name)}"
                    small.append(sql := f"CREATE VIEW {name} AS SELECT * FROM {t.scan_sql()}")
                    drops[sql] = f"DROP VIEW IF EXISTS {name}"
        domains[domain] = spec
    manifest: dict[str, Any] = {"format": FORMAT, "domains": domains}
    if small:  # one file for them all: ~30 KB however many (a file per domain: ~28 KB each)
        manifest["small_sql"] = digest_of(small)
        manifest["small_file"] = SMALL_FILE
        files.append((SMALL_FILE, manifest["small_sql"], small))
    manifest["tables"] = dict(sorted(discovered.items()))
    from lakeql.store import IndexEntry, dir_bytes, same_bytes

    data = json.dumps(manifest).encode()  # ASCII (json escapes the rest)
    kept, before = _previous_files(store, target)
    if (all(kept.get(d) == target / name for name, d, _ in files) and same_bytes(target / MANIFEST, data)
            and store.find("views") is not None):  # no files to write (none kept to check): is it recorded?
        return target  # --refresh, nothing changed: the folder stays as it is (intact, checked above)

    with store.atomic_dir(target) as tmp:
        partial = set()
        why: dict[str, str] = {}  # a statement left out -> DuckDB's error (the table is listed with it)
        for name, digest, statements in files:
            # --refresh: hard-link the previous file made from the same statements instead of writing it
            old = kept.get(digest)
            try:
                if old is None:
                    raise OSError
                os.link(old, tmp / name)
            except OSError:
                # a changed file: its previous version updated on a copy when few of its views changed
                skipped = _update_db(before, owner.get(name, ""), tmp / name, statements, drops,
                                     storage_version, why)
                if skipped is None:
                    skipped = _write_db(tmp / name, storage_version, statements, why)
                if skipped:
                    partial.add(name)
                    for sql in skipped:  # a domain file's view: connect() lists its table as left out
                        if sql in view_of:
                            dom, view = view_of[sql]
                            domains[dom].setdefault("left_out", {})[view] = why.get(sql, "error unknown")
        if files:  # what each file was made from, for the next refresh's in-place updates
            (tmp / STATEMENTS).write_bytes(zlib.compress(json.dumps(
                {"version": 1, "storage": storage_version,
                 "files": {d: [[drops[x], x] for x in st] for _, d, st in files}}).encode(), 1))
        if partial:  # a view was left out: its file is not reused by the next build (the files may be fixed)
            for spec in domains.values():
                if spec.get("file") in partial:
                    spec["sql"] = "partial:" + spec["sql"]
            if SMALL_FILE in partial:
                manifest["small_sql"] = "partial:" + manifest["small_sql"]
            data = json.dumps(manifest).encode()
        (tmp / MANIFEST).write_bytes(data)
    store.record(IndexEntry("views", "", "", target.name, dir_bytes(target),
                            sum(t.source_bytes for t in lake.tables.values()), ""))
    return target


def _previous_files(store, target: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """``{statements digest: file}`` of the previous views folder when the manifest records it intact
    (a refresh hard-links a file whose statements did not change instead of writing it again), and what
    :func:`_update_db` needs to update a changed one: ``{"by_name": {file name: digest}, "statements":
    {digest: [[drop, create], ...]}}`` (empty when the folder has no record of its statements)."""
    entry = store.find("views")
    if entry is None or not (target / MANIFEST).exists() or not store.intact(entry):
        return {}, {}
    try:  # the record of the statements is SQL run on a connection: only one the row's checksums cover
        listed = STATEMENTS in json.loads(entry.checksums or "{}")
    except ValueError:
        listed = False
    try:
        old = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}, {}
    out = {spec["sql"]: target / spec["file"] for spec in old.get("domains", {}).values()
           if isinstance(spec, dict) and spec.get("sql") and spec.get("file")}
    if old.get("small_sql") and old.get("small_file"):
        out[old["small_sql"]] = target / old["small_file"]
    kept = {k: v for k, v in out.items() if isinstance(k, str) and v.parent == target and v.is_file()}
    # per domain (SMALL_FILE: the small domains) its file's digest; the record of the statements is read
    # on first use (_update_db); the manifest row's checksums vouch for both
    by_key = {dom: spec["sql"] for dom, spec in old.get("domains", {}).items()
              if isinstance(spec, dict) and spec.get("sql") in kept}
    if old.get("small_sql") in kept:
        by_key[SMALL_FILE] = old["small_sql"]
    return kept, {"dir": target, "by_key": by_key, "paths": kept, **({} if listed else {"record": {}})}


def _statements_of(before: dict[str, Any], digest: str, storage_version: str) -> list | None:
    """The ``[[drop, create], ...]`` the previous file of statements ``digest`` was made from."""
    if "record" not in before:
        rec: Any = None
        try:
            rec = json.loads(inflate((before["dir"] / STATEMENTS).read_bytes()))
        except (OSError, ValueError, zlib.error):
            pass
        ok = (isinstance(rec, dict) and rec.get("version") == 1 and rec.get("storage") == storage_version
              and isinstance(rec.get("files"), dict))
        before["record"] = rec["files"] if ok else {}
    got = before["record"].get(digest)
    return got if isinstance(got, list) else None


def _update_db(before: dict[str, Any], key: str, path: Path, statements: list[str], drops: dict[str, str],
               storage_version: str, errors: dict[str, str] | None = None) -> list[str] | None:
    """Make views file ``path`` from the previous file of the same domain ``key`` (or the small domains')
    by applying the difference of the statements (drop the views that went or changed, create the new
    ones), when the previous file and its statements are known and few changed. Returns the statements
    left out, or None (not made)."""
    from lakeql.dbutil import new_database_file, run_batch, run_views
    from lakeql.lakedb import MAX_SHARE, copy_catalog

    old_digest = (before.get("by_key") or {}).get(key)
    if not old_digest or old_digest.startswith("partial:"):
        return None
    old = _statements_of(before, old_digest, storage_version)
    if old is None:
        return None
    from lakeql.lakedb import diff

    got = diff(old, [(drops.get(c, ""), c) for c in statements])  # None: not a record lakeql writes
    if got is None:
        return None
    new = set(statements)
    gone = [d for d, c in old if c not in new]  # a changed view's drop too (CREATE VIEW, not OR REPLACE)
    gone.sort(key=lambda d: d.startswith("DROP SCHEMA"))  # views first
    made = got[1]
    if len(gone) + len(made) > max(16, MAX_SHARE * len(statements)):
        return None
    with new_database_file(path, storage_version) as con:  # the catalog copied: one copy, not two
        copy_catalog(con, before["paths"][old_digest], path.with_name(f".{path.name}.src.tmp"))
        run_batch(con, gone)
        return run_views(con, made, errors=errors)


def _write_db(path: Path, storage_version: str, statements: list[str],
              errors: dict[str, str] | None = None) -> list[str]:
    """A small database file holding ``statements``' views (written in one transaction, checkpointed).
    Returns the statements left out (views that could not be created, each with a warning; ``errors``
    filled with each one's DuckDB error)."""
    from lakeql.dbutil import new_database_file, run_views

    with new_database_file(path, storage_version) as con:
        return run_views(con, statements, errors=errors)


# ----------------------------------------------------------------------------------- connect time
@dataclass
class AttachPlan:
    """What :func:`attach` did: for tests, ``lakeql doctor`` and the rowid-view name lookup."""

    attached: list[str] = field(default_factory=list)  # domains attached from prebuilt files
    live: list[str] = field(default_factory=list)  # domains given live views (changed or no file)
    local: list[str] = field(default_factory=list)  # domains created in the connection's own database
    small: list[str] = field(default_factory=list)  # small fresh domains: views made from the manifest
    copied: list[str] = field(default_factory=list)  # those of them copied from small.duckdb (checked)
    rows_made: set[str] = field(default_factory=set)  # tables whose rowid view exists on this database
    outdated: bool = False  # views.json is of another format than FORMAT (or unreadable): views made anew
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ensure_rows(self, con, ctx, table: Table) -> None:
        """Create ``table``'s rowid view in ``lakeql_rows`` and its row-files view in
        ``lakeql_rows.lakeql_row_files`` (once per database, on first use).

        Called from ``lakeql_rows_view()`` while DuckDB binds a query, so it creates the view through a
        cursor (another connection to the same database: the view is shared, and the binding query
        sees it).
        """
        from lakeql.rows import FILES_SCHEMA

        if table.key in self.rows_made:
            return
        with self.lock:
            if table.key in self.rows_made:
                return
            cur = con.cursor()
            try:
                for scan, files in _rowid_scans(ctx, table, cur):
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ROWS_SCHEMA}.{FILES_SCHEMA}").fetchall()
                    cur.execute(f"CREATE OR REPLACE VIEW {ROWS_SCHEMA}.{FILES_SCHEMA}."
                                f"{quote_ident(table.key)} AS {files}").fetchall()
                    cur.execute(f"CREATE OR REPLACE VIEW {ROWS_SCHEMA}.main.{quote_ident(table.key)} AS "
                                f"{scan}").fetchall()
            finally:
                cur.close()
            self.rows_made.add(table.key)


def load_manifest(views_root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((views_root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") in READS else None


def attach(con, ctx) -> AttachPlan:
    """Make every table of ``ctx.lake`` reachable as ``"domain"."name"`` (and, on first use,
    ``lakeql_rows."domain.name"``)."""
    import duckdb

    from lakeql.dbutil import database_is_file, run_batch, run_views

    lake = ctx.lake
    plan = AttachPlan()
    if getattr(ctx, "con", None) is None:
        ctx.con = con  # rowid views are created through it on first use
    views_root = ctx.store.root / VIEWS_DIR if ctx.store is not None else None
    manifest = load_manifest(views_root) if views_root is not None else None
    plan.outdated = bool(views_root is not None and (manifest or {}).get("format") != FORMAT
                         and (views_root / MANIFEST).exists())
    existing = {r[0]: r[1]
                for r in con.execute("SELECT database_name, path FROM duckdb_databases()").fetchall()}
    own_is_file = database_is_file(con)
    # schemas the caller already has in its database: a small domain of the same name gets a catalog of
    # its own instead, so that register() never replaces (or fails on) the caller's objects
    own_schemas = {r[0].lower() for r in con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()").fetchall()}
    built_tables = (manifest or {}).get("tables", {})
    from lakeql import csvnamed

    csvnamed.apply(lake, csvnamed.recorded(ctx.store), strict=False)  # named CSV encodings: in fingerprints
    fingerprints = {k: t.fingerprint for k, t in lake.tables.items()}  # hashed once per connect
    plan.changed_tables = {k for k, fp in fingerprints.items() if built_tables.get(k) != fp}
    local_stmts: list[str] = []
    small: dict[str, dict[str, Scan]] = {}  # small fresh domains, in the connection's own in-memory database
    attach_files: list[tuple[str, list[Table], str]] = []  # the bigger fresh domains' prebuilt files
    live: list[tuple[str, list[Table]]] = []  # changed domains (or with no prebuilt views)
    from lakeql import csvenc

    bad_copies: set[str] | None = None  # UTF-8 copies of CSV files found damaged (read once)
    made_for: dict[str, Table] = {}  # a view statement made from the data -> its table (one that fails)
    for domain, tables in sorted(by_domain(lake).items()):
        spec = (manifest or {}).get("domains", {}).get(domain)
        path = str(views_root / spec["file"]) if spec and spec.get("file") else None
        if not attachable(domain) or (domain in existing and existing[domain] != path):
            plan.local.append(domain)
            local_stmts += _local_views(domain, tables, ctx, temporary=own_is_file, made_for=made_for)
            continue
        if domain in existing:  # attached by an earlier register() on this database instance
            plan.attached.append(domain)
            continue
        fresh = (spec is not None
                 and spec["fingerprint"] == domain_fingerprint(fingerprints, [t.key for t in tables]))
        if fresh and bad_copies is None:
            bad_copies = csvenc.damaged_copies(views_root.parent)
        if fresh and bad_copies and any(bad_copies & csvenc.copy_names(t)
                                        for t in tables if t.format == "csv"):
            fresh = False  # a UTF-8 copy its views read is damaged: views from the catalog (remakes it)
        if fresh and path is not None and Path(path).exists():
            attach_files.append((domain, tables, path))
            plan.attached.append(domain)
        elif fresh and path is None and (scans := _small_scans(spec.get("views"), tables,
                                                               views_root.parent)) is not None:
            clash = domain.lower() in own_schemas and not _made_by_register(con, domain, scans)
            if own_is_file or clash:  # nothing written into a user's database file, nothing of the
                # caller's replaced: a catalog of its own instead
                con.execute(f"ATTACH ':memory:' AS {quote_ident(domain)} (READ_WRITE)").fetchall()
                run_batch(con, [f"CREATE VIEW {quote_ident(domain)}.main.{quote_ident(name)} AS "
                                f"SELECT * FROM {scan_sql(*v)}" for name, v in scans.items()])
            else:  # a schema of the connection's own database (below: copied from small.duckdb)
                small[domain] = scans
            plan.small.append(domain)
        else:
            live.append((domain, tables))
            plan.live.append(domain)
    if small:  # first: the check of small.duckdb lists catalog entries, fewer before the other ATTACHes
        copied: set[str] = set()
        many = sum(map(len, small.values())) >= SMALL_COPY_MIN
        if many and (manifest or {}).get("small_file") == SMALL_FILE:
            copied = _copy_small(con, views_root / SMALL_FILE, small)
        plan.copied = sorted(copied)
        # the rest (few views, a format-3 index, a changed or damaged small.duckdb): made from the data
        run_batch(con, [stmt for d in sorted(set(small) - copied) for stmt in [
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(d)}", *[
                f"CREATE OR REPLACE VIEW {quote_ident(d)}.{quote_ident(n)} AS SELECT * FROM {scan_sql(*v)}"
                for n, v in small[d].items()]]])
    for domain, tables, path in attach_files:
        try:
            con.execute(f"ATTACH {quote_literal(path)} AS {quote_ident(domain)} (READ_ONLY)").fetchall()
        except duckdb.Error as exc:  # a damaged views file: the views are made from the data instead
            import warnings

            from lakeql.catalog import DamagedCatalogWarning

            warnings.warn(f"the views file {path!r} of domain {domain!r} cannot be opened "
                          f"({str(exc).splitlines()[0][:200]}): making its views from the lake; run "
                          "'lakeql index --refresh LAKE' to repair it", DamagedCatalogWarning, stacklevel=2)
            plan.attached.remove(domain)
            live.append((domain, tables))
            plan.live.append(domain)
            continue
        _left_out_by_build(ctx, tables, (manifest or {}).get("domains", {}).get(domain, {}).get("left_out"))
    for domain, tables in live:
        con.execute(f"ATTACH ':memory:' AS {quote_ident(domain)} (READ_WRITE)").fetchall()
        stmts = []
        for t in _readable(ctx, tables):
            stmts.append(f"CREATE VIEW {quote_ident(domain)}.main.{quote_ident(t.name)} AS "
                         f"SELECT * FROM {t.scan_sql()}")
            made_for[stmts[-1]] = t
        why: dict[str, str] = {}
        _left_out(ctx, made_for, run_views(con, stmts, errors=why), why)
    # one view that fails leaves that table out, not the connection
    why = {}
    _left_out(ctx, made_for, run_views(con, local_stmts, errors=why), why)
    if ROWS_SCHEMA not in existing:
        con.execute(f"ATTACH ':memory:' AS {ROWS_SCHEMA} (READ_WRITE)").fetchall()
    return plan


def _copy_small(con, path: Path, want: dict[str, dict[str, Scan]]) -> set[str]:
    """Copy the views of the small domains ``want`` (``{domain: {view: (format, paths, hive)}}``)
    from ``small.duckdb`` into the connection's own in-memory database, one schema per domain; return
    the domains copied.

    ``COPY FROM DATABASE ... (SCHEMA)`` copies the stored views without binding them (creating 404 views
    binds each, opening its Parquet footer: ~0.3 s; the copy: ~25 ms). The file's SQL is not trusted:
    it is checked first (:func:`_checked_small`), and a domain is kept only when its views are exactly
    ``want``'s, as DuckDB renders them; everything else copied is dropped at once.
    """
    import duckdb

    from lakeql.dbutil import run_batch

    if not path.exists():
        return set()
    db = con.execute("SELECT current_database()").fetchone()[0]
    mine = {r[0].lower() for r in con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?", [db]).fetchall()}
    try:
        con.execute(f"ATTACH {quote_literal(str(path))} AS {SMALL_ALIAS} (READ_ONLY)").fetchall()
    except duckdb.Error:
        return set()  # unreadable: the views are made from the manifest's data
    try:
        found = _checked_small(con, want)
        if found is None:
            return set()
        schemas, ok = found
        if any(d.lower() in mine for d in schemas):  # already there (another register()): not copied
            return set()
        con.execute(f"COPY FROM DATABASE {SMALL_ALIAS} TO {quote_ident(db)} (SCHEMA)").fetchall()
    except duckdb.Error:
        return set()
    finally:
        con.execute(f"DETACH {SMALL_ALIAS}").fetchall()
    run_batch(con, [f"DROP SCHEMA {quote_ident(d)} CASCADE" for d in sorted(set(schemas) - ok)])
    return ok


def _checked_small(con, want: dict[str, dict[str, Scan]]) -> tuple[set[str], set[str]] | None:
    """(every schema of the attached ``small.duckdb``, the domains of ``want`` whose views there are
    exactly the expected ones), or None when the file holds anything but schemas and views in them.

    Expected: ``CREATE VIEW domain.name AS SELECT * FROM <scan>;`` as DuckDB renders the views
    :func:`lakeql.lake.scan_sql` makes from ``want``'s data (:func:`_rendered`; ``duckdb_views().sql``
    is made from a stored view's parsed query, not text kept beside it). A rendering that differs
    (another DuckDB) only costs the copy: those views are made from the data."""
    a = quote_literal(SMALL_ALIAS)
    others = con.execute(
        f"SELECT (SELECT count(*) FROM duckdb_tables() WHERE database_name = {a}) "
        f"+ (SELECT count(*) FROM duckdb_functions() WHERE database_name = {a} AND NOT internal) "
        f"+ (SELECT count(*) FROM duckdb_sequences() WHERE database_name = {a}) "
        f"+ (SELECT count(*) FROM duckdb_indexes() WHERE database_name = {a}) "
        f"+ (SELECT count(*) FROM duckdb_types() WHERE database_name = {a} AND NOT internal) "
        f"+ (SELECT count(*) FROM duckdb_views() WHERE database_name = {a} AND NOT internal "
        f"AND schema_name = 'main')").fetchone()[0]
    if others:
        return None
    schemas = {r[0] for r in con.execute(
        f"SELECT schema_name FROM duckdb_schemas() WHERE database_name = {a} AND NOT internal "
        "AND schema_name <> 'main'").fetchall()}
    have: dict[str, set[tuple[str, str]]] = {}
    for schema, view, sql in con.execute(
            f"SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = {a} "
            "AND NOT internal").fetchall():
        have.setdefault(schema, set()).add((view, sql))
    ok = set()
    for d, views in want.items():
        got = dict(have.get(d, ()))
        if d in schemas and set(got) == set(views) and all(
                got[n] in _rendered(d, n, *v) for n, v in views.items()):
            ok.add(d)
    return schemas, ok


def _made_by_register(con, domain: str, scans: dict[str, Scan]) -> bool:
    """True when schema ``domain`` of the connection's database holds exactly the views an earlier
    register() of this lake made there (and nothing else): register() again may replace them; any other
    schema of that name is the caller's."""
    got = dict(con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() AND NOT internal "
        "AND lower(schema_name) = lower(?) UNION ALL SELECT table_name, NULL FROM duckdb_tables() "
        "WHERE database_name = current_database() AND lower(schema_name) = lower(?)",
        [domain, domain]).fetchall())
    return set(got) == set(scans) and all(got[n] in _rendered(domain, n, *v) for n, v in scans.items())


def _rendered(domain: str, name: str, fmt: str, paths: list[str], hive: bool,
              header: bool = False, whole_sniff: bool = False) -> set[str]:
    """How DuckDB renders ``CREATE VIEW domain.name AS SELECT * FROM <scan_sql(fmt, paths, hive, header)>``: a
    name bare or quoted, the list of paths as ``list_value(...)``, the options parenthesized (checked by the
    tests against DuckDB's own rendering)."""
    listing = ", ".join(quote_path(p) for p in paths)
    hdr = ', ("header" = true)' if header else ""
    hdr += ", (sample_size = -1)" if whole_sniff else ""
    query = (f"SELECT * FROM read_{fmt}(list_value({listing}), (union_by_name = true), "
             f"(hive_partitioning = {'true' if hive else 'false'}){hdr})")
    return {f"CREATE VIEW {a}.{b} AS {query};"
            for a in {domain, quote_ident(domain)} for b in {name, quote_ident(name)}}


def _small_scans(views: Any, tables: list[Table], index_root: Path | None = None) -> dict[str, Scan] | None:
    """``{view name: (format, paths, hive, header)}`` of a small domain's manifest entry (None when it is
    malformed: the caller then makes live views). The manifest is a file, so its values are data checked
    here against the domain's ``tables`` as discovered now: a view per table of the domain, of the
    table's format and hive flag, reading some of the table's own files (the readable ones, as
    catalogued); the SQL is made by :func:`lakeql.lake.scan_sql`, which quotes every path. ``header``
    (CSV only, a bool) is taken as the build recorded it: the catalog decided it (:mod:`lakeql.csvheader`)."""
    if not isinstance(views, dict):
        return None
    by_name = {t.name: t for t in tables}
    out = {}
    for name, v in views.items():
        t = by_name.get(name) if isinstance(name, str) else None
        if not (t is not None and isinstance(v, dict)
                and v.get("format") in ("parquet", "csv", "json") and v["format"] == t.format
                and isinstance(v.get("paths"), list) and v["paths"]
                and all(isinstance(p, str) for p in v["paths"])
                and isinstance(v.get("hive"), bool) and v["hive"] == bool(t.hive)
                and isinstance(v.get("header", False), bool)
                and (v["format"] == "csv" or not v.get("header"))
                and isinstance(v.get("whole_sniff", False), bool)
                and (v["format"] == "csv" or not v.get("whole_sniff"))):
            return None
        if not set(v["paths"]) <= set(t.paths) and not _own_copies(v["paths"], t, index_root):
            return None
        out[name] = (v["format"], list(v["paths"]), v["hive"], v.get("header", False),
                     v.get("whole_sniff", False))
    return out


def _own_copies(paths: list[str], table: Table, index_root: Path | None) -> bool:
    """True when every path of ``paths`` is a file of ``table`` or an existing UTF-8 copy of one of its
    CSV files in ``INDEX_DIR/csv_utf8`` (:mod:`lakeql.csvenc`), named after that file as it is now (a
    changed file's copy has another name): a domain with such a file keeps its prebuilt views."""
    from lakeql import csvenc

    if index_root is None or table.format != "csv":
        return False
    own = set(table.paths)
    folder = index_root / csvenc.DIR
    copies = {str(folder / name) for name in csvenc.copy_names(table)}
    return all(p in own or (p in copies and csvenc.intact(p)) for p in paths)


def _rowid_scans(ctx, table: Table, cur=None) -> list[tuple[str, str]]:
    """The rowid scan and row-files view of ``table`` (none when no file of it is readable): from the
    stored catalog's rows
    of this one table while the connection has not loaded the whole catalog and the table is unchanged
    (the first rowid view of a big lake then costs milliseconds, not the catalog's load), else from
    the catalog as it is now. ``cur``: a cursor to read the stored catalog through."""
    from lakeql.catalog import Catalog
    from lakeql.rows import row_files_of, row_files_sql, rowid_scan_sql

    if getattr(ctx, "_catalog", None) is None:
        one = Catalog.stored_table(table, ctx.store, cur)
        if one is not None:
            return [(rowid_scan_sql(*one), row_files_sql(*one))]
    return [(rowid_scan_of(ctx.catalog, t), row_files_of(ctx.catalog, t)) for t in _readable(ctx, [table])]


def _readable(ctx, tables: list[Table]) -> list[Table]:
    """The tables as the catalog sees them now (unreadable files dropped), those with files left."""
    cat = ctx.catalog
    out = []
    for t in tables:
        cur = cat.lake.tables.get(t.key)
        if cur is not None and cur.files and t.key in cat.table_rows:
            out.append(cur)
    return out


def _left_out(ctx, made_for: dict[str, Table], failed: list[str], errors: dict[str, str]) -> None:
    """Record the tables whose view statements ``failed`` (their files no longer read as catalogued: a
    writer between the catalog and the views) as left out of this connection: ``lakeql_tables()`` lists
    them with status 'error', why and the fix, so an MCP agent sees them (the
    :class:`~lakeql.dbutil.SkippedViewWarning` is a Python warning only), and a query of one says so.
    The reason carries DuckDB's error (``errors``: statement -> error): a view failing for another reason
    than a writer (a bug, a type, a name) is not hidden behind "changed while connecting?" (review32)."""
    from lakeql.catalog import LEFT_OUT_HERE
    from lakeql.lake import Problem

    for sql in failed:
        t = made_for.get(sql)
        if t is None:  # a CREATE SCHEMA: its views fail on their own
            continue
        ctx.catalog.problems.append(Problem(
            "table", t.source, f"{LEFT_OUT_HERE}: its view cannot be made ({errors.get(sql, 'error unknown')}"
            "; were its files changed while connecting?); reconnect, or fix or replace its files and run "
            "'lakeql index LAKE --refresh'", t.key))
        ctx.catalog.lake.tables.pop(t.key, None)


def _left_out_by_build(ctx, tables: list[Table], left_out: Any) -> None:
    """Record the tables of an attached domain file whose views ``lakeql index`` could not make
    (``left_out``: the manifest's ``{view name: DuckDB's error}``, data from a file: anything else is
    ignored) as left out, like :func:`_left_out`: the file lacks their views, so ``lakeql_tables()`` lists
    them with status 'error', why and the fix, and a query of one says so (before: no view, no row)."""
    from lakeql.catalog import LEFT_OUT_HERE
    from lakeql.lake import Problem

    if not isinstance(left_out, dict) or not left_out:
        return
    for t in tables:
        err = left_out.get(t.name)
        if not isinstance(err, str) or t.key not in ctx.catalog.lake.tables:
            continue
        ctx.catalog.problems.append(Problem(
            "table", t.source, f"{LEFT_OUT_HERE}: its view could not be made when 'lakeql index' wrote the "
            f"views ({err[:300]}; were its files being written then?); fix or replace its files if they do "
            "not read, then run 'lakeql index LAKE --refresh'", t.key))
        ctx.catalog.lake.tables.pop(t.key, None)


def _local_views(domain: str, tables: list[Table], ctx, temporary: bool,
                 made_for: dict[str, Table] | None = None) -> list[str]:
    """The view statements of a domain made in the connection's own database (``made_for``: each view
    statement -> its table, filled)."""
    out = []
    if domain != ROOT_DOMAIN and not temporary:
        out.append(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(domain)}")
    for t in _readable(ctx, tables):
        if temporary:
            # a TEMP view cannot live in a schema: the root domain's tables only (others are skipped)
            if domain == ROOT_DOMAIN:
                out.append(f"CREATE OR REPLACE TEMP VIEW {quote_ident(t.name)} AS "
                           f"SELECT * FROM {t.scan_sql()}")
                if made_for is not None:
                    made_for[out[-1]] = t
            continue
        out.append(f"CREATE OR REPLACE VIEW {t.sql_name} AS SELECT * FROM {t.scan_sql()}")
        if made_for is not None:
            made_for[out[-1]] = t
    return out


def rows_view_for(plan: AttachPlan | None, table: Table, con=None, ctx=None) -> str:
    """The quoted name of the rowid view of ``table`` on this connection (created on first use)."""
    if plan is not None and con is not None and ctx is not None:
        plan.ensure_rows(con, ctx, table)
    return f"{ROWS_SCHEMA}.{quote_ident(table.key)}"


def row_files_view_for(plan: AttachPlan | None, table: Table, con=None, ctx=None) -> str:
    """The quoted name of the row-files view of ``table`` on this connection (created on first use)."""
    from lakeql.rows import row_files_view_name

    if plan is not None and con is not None and ctx is not None:
        plan.ensure_rows(con, ctx, table)
    return row_files_view_name(table)


def views_sql(catalog: Catalog, rows_for: set[str] | None = None) -> list[str]:
    """A schema per domain, a view per table and the ``lakeql_rows`` views, for ``lake.duckdb``.

    ``rows_for``: the tables that get a rowid view (the stock CLI's search macros need one for each
    table with an embedded or n-gram index; None: every table). Connections attach prebuilt views
    instead: see :mod:`lakeql.views`.
    """
    return [create for _, create in views_named(catalog, rows_for)]


def views_named(catalog: Catalog, rows_for: set[str] | None = None) -> list[tuple[str, str]]:
    """:func:`views_sql` as ``(drop, create)`` pairs: each statement with the one that removes what it
    makes (``DROP VIEW IF EXISTS name`` / ``DROP SCHEMA IF EXISTS name CASCADE``), so that
    ``lake.duckdb`` can be updated in place (:mod:`lakeql.lakedb`)."""
    from lakeql.rows import FILES_SCHEMA, row_files_of, row_files_view_name, rows_view_name

    lake = catalog.lake

    def schema(q: str) -> tuple[str, str]:
        return f"DROP SCHEMA IF EXISTS {q} CASCADE", f"CREATE SCHEMA IF NOT EXISTS {q}"

    out = [schema(quote_ident(d)) for d in lake.domains]
    out.append(schema(ROWS_SCHEMA))
    out.append(schema(FILES_SCHEMA))
    for t in lake.tables.values():
        if not t.files:
            continue
        out.append((f"DROP VIEW IF EXISTS {t.sql_name}",
                    f"CREATE OR REPLACE VIEW {t.sql_name} AS SELECT * FROM {t.scan_sql()}"))
        if rows_for is None or t.key in rows_for:
            out.append((f"DROP VIEW IF EXISTS {rows_view_name(t)}",
                        f"CREATE OR REPLACE VIEW {rows_view_name(t)} AS {rowid_scan_of(catalog, t)}"))
            name = row_files_view_name(t, cli=True)
            out.append((f"DROP VIEW IF EXISTS {name}",
                        f"CREATE OR REPLACE VIEW {name} AS {row_files_of(catalog, t)}"))
    return out
