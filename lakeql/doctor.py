"""``lakeql doctor LAKE [--repair]``: what is wrong with a lake and its index, and the fix.

It reports, without changing anything:

* files and tables left out of the lake (unreadable, or a format lakeql cannot read);
* indexes whose files are missing or damaged (checksums), or older than their tables (stale);
* a damaged or missing catalog;
* temporary files left by dead builds (kill -9, Ctrl-C), and a build running now.

It also notes, without counting them as problems, the CSV files that are not UTF-8 and are read through a
UTF-8 copy, with the encoding each was read as (:mod:`lakeql.csvenc`).

``--repair`` removes the leftovers and runs ``lakeql index --refresh``, which rebuilds every missing,
damaged, stale or incomplete index. Exit code 0 when all is well, 1 when something needs attention.
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Finding:
    """One thing doctor found: where, what, and the fix."""

    area: str  # 'lake', 'index', 'catalog', 'leftover', 'build'
    subject: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.area}] {self.subject}: {self.problem} -> {self.fix}"


@dataclass
class Diagnosis:
    lake: str
    index_dir: str
    tables: int = 0
    indexes: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)  # facts, not problems (the encoding of a CSV file)

    @property
    def healthy(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        head = (f"lake {self.lake}: {self.tables} tables; index {self.index_dir}: {self.indexes} indexes; "
                + ("all well" if self.healthy else f"{len(self.findings)} problem(s)"))
        return [head, *(str(f) for f in self.findings), *(str(f) for f in self.notes)]


def diagnose(lake_path: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None
             ) -> Diagnosis:
    """Inspect the lake and its index store (read-only)."""
    from lakeql.catalog import LEFT_OUT_HERE, Catalog
    from lakeql.lake import discover
    from lakeql.store import MANIFEST, Store

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lake = discover(lake_path)
        store = Store.for_lake(lake, index_dir)
        diag = Diagnosis(lake.url, str(store.root))
        found = diag.findings
        stored_ok = True
        manifest_ok = True
        if not os.path.lexists(store.root / MANIFEST):  # a symlink loop is there, and damaged
            fix = "run 'lakeql index LAKE'"
            first = next((p for p in (store.root, *store.root.parents) if p.exists()), None)
            if first is not None and not os.access(first, os.W_OK | os.X_OK):  # a read-only lake (trial10)
                fix = (f"run 'lakeql index LAKE --index-dir DIR' with a writable DIR ({str(first)!r} is not "
                       "writable), and pass the same --index-dir to sql, shell, mcp and doctor")
            found.append(Finding("index", str(store.root), "no index", fix))
        else:
            try:
                entries = store.entries()
            except Exception as exc:  # noqa: BLE001 - a damaged manifest is a finding
                entries = []
                manifest_ok = stored_ok = False  # nothing else of the index can be looked up
                found.append(Finding("index", MANIFEST, str(exc), f"delete {MANIFEST} and run 'lakeql index "
                                                                   "LAKE'"))
            diag.indexes = len(entries)
            for e in entries:
                target = ".".join(x for x in (e.table_name, e.column_name) if x) or "lake"
                what = store.damage(e)
                if what is not None:
                    stored_ok = stored_ok and e.kind != "catalog"
                    found.append(Finding("index", f"{e.kind} {target}", what,
                                         "run 'lakeql index --refresh LAKE'"))
            if manifest_ok and store.find("catalog") is None:
                found.append(Finding("catalog", "catalog", "no catalog in the manifest",
                                     "run 'lakeql index LAKE'"))
        stored = Catalog.load(lake, store) if stored_ok else None
        if stored is None and (store.root / MANIFEST).exists() and stored_ok:
            found.append(Finding("catalog", "catalog", "the stored catalog is missing or unreadable",
                                 "run 'lakeql index LAKE'"))
        cat = Catalog._resolve(lake, stored, store)
        diag.tables = len(lake.tables)
        for t in lake.tables.values():
            for path, (label, _copy) in sorted(t.decoded.items()):
                from lakeql import csvenc

                base, lf = label.removesuffix(csvenc.LF), label.endswith(csvenc.LF)
                what = "not UTF-8" if base != "utf-8" else ""
                if lf:  # lakeql.csvenc.mixed_line_ends
                    ends = "lines ending in more than one way (\\r\\n, \\n, \\r)"
                    what = ends + (f", {what}" if what else "")
                diag.notes.append(Finding("encoding", f"{t.key} ({path})",
                                          f"{what}: read as {label} through a UTF-8 copy",
                                          "save it as UTF-8" + (" with one kind of line end" if lf else "")
                                          + " to read it directly (nothing to do otherwise)"))
            if t.csv_whole_sniff:  # lakeql.catalog._count_rows: a late value its sniffed type refused
                diag.notes.append(Finding("types", f"{t.key} ({t.source})",
                                          "a value past DuckDB's 20,480-row sample does not fit the type "
                                          "sniffed from it: the types come from every row",
                                          "nothing to do (read_csv(..., sample_size = -1) reads it so)"))
            if t.csv_header:  # lakeql.csvheader: DuckDB's sniffer read the header line as a data row
                diag.notes.append(Finding("header", f"{t.key} ({t.source})",
                                          "its first line is read as the header (DuckDB: a data row)",
                                          "nothing to do (read_csv(..., header = true) reads it so)"))
        for p in cat.problems:
            subject = p.table_name or p.path
            fix = {"unsupported": "convert it to Parquet/CSV/JSON, or move it out of the lake",
                   "file": "replace or remove the file (the table is read without it)",
                   "table": "replace or remove its files (the table is left out)"}[p.kind]
            if p.error.startswith(LEFT_OUT_HERE):  # its files are fine; the reason names the fix (review32)
                fix = "as the reason says (its files read; the index folder is the problem)"
            found.append(Finding("lake", f"{subject} ({p.path})" if p.table_name else subject, p.error, fix))
        for e in store.entries() if diag.indexes and manifest_ok else []:
            if e.table_name and e.table_name in lake.tables and store.is_stale(e):
                found.append(Finding("index", f"{e.kind} {e.table_name}", "stale (the table changed)",
                                     "run 'lakeql index --refresh LAKE'"))
            elif e.kind == "ngram" and e.table_name in lake.tables:
                _not_text(found, cat, lake.tables[e.table_name], e.column_name)
        pid = store.build_running()
        for rel in store.clean_stale(dry_run=True):
            _leftover(diag, store.root, rel, pid)
        if pid is not None:
            found.append(Finding("build", f"pid {pid}", "a lakeql index is running now",
                                 "wait for it to finish"))
    return diag


def _not_text(found: list[Finding], cat: Any, table: Any, column: str) -> None:
    """A finding when the n-gram index of ``table.column`` is of a column that is not text (anymore): a
    refresh before trial13 indexed the digits of a column rewritten as numbers, which every query refuses
    while the index looked fresh (review37)."""
    col = next((c for c in cat.columns(table) if c.column_name == column), None)
    if col is not None and not col.is_text:
        found.append(Finding("index", f"ngram {table.key}.{column}",
                             f"the column has type {col.type}, not text: every n-gram query refuses it",
                             "run 'lakeql index --refresh LAKE' (drops this index)"))


def _leftover(diag: Diagnosis, root: Path, rel: str, running: int | None = None) -> None:
    """What a dead process left in the index (``rel``, from :meth:`Store.clean_stale`): a file it kept
    aside (``.NAME.old-PID``) whose ``NAME`` is gone is a missing index file (a finding: exit 1); any other
    (a temp file or folder, or a kept-aside copy of a file that is in place: a Ctrl-C early in a build,
    trial12) is harmless, nothing reads it, and the next build removes it: a note, not a problem (doctor
    said exit 1 until then).

    ``running``: the pid in the lock of a ``lakeql index`` running on this index now. Its pid may not be
    one of this machine's (another container or host sharing the folder), so its files look like a dead
    process's: while it runs nothing is called "ended" nor offered for removal (review32)."""
    from lakeql.store import OLD_RE, TEMP_RE

    name = rel.rsplit("/", 1)[-1]
    m = OLD_RE.match(name) or TEMP_RE.match(name)
    if running is not None:
        diag.notes.append(Finding("leftover", rel, "may belong to the lakeql index running now (pid "
                                  f"{running}, maybe in another container or host: its pid is not seen "
                                  "here)", "nothing to do: leave it to that build, then run 'lakeql "
                                  "doctor LAKE' again"))
        return
    pid = f" (pid {m.group('pid')}, no longer running)" if m is not None else ""
    old = OLD_RE.match(name)
    if old is not None and not os.path.lexists(root / rel.rpartition("/")[0] / old.group("name")):
        diag.findings.append(Finding("leftover", rel, f"a copy kept aside by a build that ended{pid}, and "
                                     "the file it was kept for is missing",
                                     "run 'lakeql doctor LAKE --repair' (puts it back)"))
        return
    diag.notes.append(Finding("leftover", rel, f"left by a lakeql process that ended{pid}, e.g. a build "
                              "stopped by Ctrl-C; harmless (nothing reads it)", "nothing to do: the next "
                              "'lakeql index' removes it ('lakeql doctor LAKE --repair' removes it now)"))


def repair(lake_path: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None,
           progress: bool = False) -> Diagnosis:
    """Remove leftovers, rebuild every missing/damaged/stale index (``lakeql index --refresh``), and
    diagnose again."""
    from lakeql.api import index

    index(str(lake_path), index_dir=index_dir, refresh=True, progress=progress)
    return diagnose(lake_path, index_dir)


def cmd_doctor(args: argparse.Namespace) -> int:
    diag = (repair(args.lake, args.index_dir, progress=not args.quiet) if args.repair
            else diagnose(args.lake, args.index_dir))
    for line in diag.lines():
        print(line)
    index_left = [f for f in diag.findings if f.area != "lake"]
    return 0 if not index_left and (not diag.findings or args.repair) else 1


def add_commands(subparsers: Any) -> None:
    """The ``lakeql doctor`` subcommand (wired by the CLI's plugin hook)."""
    p = subparsers.add_parser("doctor", help="check a lake and its index for damage; --repair fixes it")
    p.add_argument("lake", help="the lake (a folder, or s3://bucket/prefix)")
    p.add_argument("--index-dir", help="index dir (default: LAKE/.lakeql)")
    p.add_argument("--repair", action="store_true",
                   help="remove dead builds' temp files and rebuild every missing, damaged or stale index")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.set_defaults(func=cmd_doctor)
