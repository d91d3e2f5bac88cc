"""Per-file shards of an n-gram index, and ``--refresh`` that indexes only new or changed files.

Every data file of the table gets its own shards (a file with more text than ``--ngram-shard-mb`` is
cut into several, at row boundaries), named ``shard-<shard_id>-<k>`` from :func:`lakeql.shards.shard_id`
of the file version they were built from. Row bases inside a shard (``meta.json``) count from the first
row of *its file*; ``index.json`` lists the files in catalog order with their shards, rows and row
offset, and a query adds that offset (:func:`layout`), so row ids are the table's ``__rowid`` now::

    {"files": [{"shard_id": "9f..", "path": "code/files/part-0.parquet", "shards": ["shard-9f..-0000"],
                "rows": 1200, "offset": 0, "text_bytes": 812345}, ...], "n_rows": .., "shards": .., ...}

On ``lakeql index --refresh`` after files were added, removed or rewritten (:func:`lakeql.shards.diff`),
the new index folder gets hard links (a copy where links fail) to the shards of unchanged files, the
new files' shards are built, and the folder is swapped in atomically through :class:`lakeql.store.Store`
(a reader sees the old index or the new one). The checksums of the linked files are carried over from the
manifest instead of being read again. Options that change the index (case, mode, words, scan, shard
size) or an index written before per-file shards (no ``files`` in ``index.json``) make a full rebuild.

A refresh that builds little runs in this process: spawning shard workers costs more (each imports
numba and loads its compiled kernels) than building a few MB of text here.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from lakeql import shards as S
from lakeql.errors import ChangedDuringBuildError, CorruptIndexError
from lakeql.lake import FileStamp, Table
from lakeql.progress import bar, say
from lakeql.sources import buildfs
from lakeql.store import IndexEntry, _stamped_checksum, dir_bytes

INDEX_JSON = "index.json"
#: below this much new text a build runs in this process (no worker spawn: ~2 s per worker here)
IN_PROCESS_BYTES = 16 << 20


def shard_name(sid: str, k: int) -> str:
    return f"shard-{sid}-{k:04d}"


# ------------------------------------------------------------------------------------ reading
def layout(root: Path, meta: dict[str, Any]) -> tuple[list[Path], list[int] | None]:
    """The shard folders of an index in row order, and the row offset to add to each shard's own row
    base (None for an index built before per-file shards: its row bases are the table's already).
    Raises :class:`CorruptIndexError` when ``index.json`` and the shard folders disagree."""
    from lakeql.ngrams.fmindex import shard_dirs

    files = meta.get("files")
    if files is None:
        return shard_dirs(root), None
    dirs: list[Path] = []
    offsets: list[int] = []
    try:
        for f in files:
            for name in f["shards"]:
                dirs.append(root / name)
                offsets.append(int(f["offset"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptIndexError(f"its list of files is unreadable ({exc!r})") from None
    on_disk = {p.name for p in shard_dirs(root)}
    missing = [d.name for d in dirs if d.name not in on_disk]
    if missing or len(on_disk) != len(dirs):
        what = f", {missing[0]} missing" if missing else ""
        raise CorruptIndexError(f"it lists {len(dirs)} shard folders, {len(on_disk)} are on disk{what}")
    return dirs, offsets


def rebase(shards: list[Any], offsets: list[int] | None) -> None:
    """Add each file's row offset to its shards' row bases (a no-op for an older index)."""
    if offsets is None:
        return
    for s, off in zip(shards, offsets, strict=True):
        s.row_base = int(s.row_base) + int(off)


# ------------------------------------------------------------------------------------ building
def _previous(ctx, target, path: Path) -> tuple[IndexEntry, dict[str, Any]] | None:
    """The current index of the target when its shards can be reused: same options, per-file layout,
    intact; else None (full build)."""
    if not ctx.refresh:
        return None
    from lakeql.ngrams.builder import KIND

    e = ctx.store.find(KIND, target.table.key, target.column)
    if e is None or not (path / INDEX_JSON).exists():
        return None
    want = json.loads(target.params())
    if any(e.params_dict.get(k) != v for k, v in want.items()):
        return None
    try:
        meta = json.loads((path / INDEX_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta.get("files"), list) or ctx.store.damage(e) is not None:
        return None
    return e, meta


def _file_batches(target, stamp: FileStamp):
    from lakeql.ngrams.builder import table_batches

    return table_batches(target.table.with_files([stamp]), target.column)


def _zoned(target, stamp: FileStamp) -> bool:
    """Whether the file's column text depends on the session's zone (:func:`buildfs.zoned_column`)."""
    if target.table.format != "parquet":
        return False
    return buildfs.zoned_column(target.table.with_files([stamp]).paths[0], target.column)


def _catalog_rows(ctx, table: Table) -> list[int] | None:
    try:
        rows = ctx.catalog.file_rows(table)
    except (KeyError, AttributeError):
        return None
    return rows if len(rows) == len(table.files) else None


def _changed_on_disk(ctx, table: Table) -> bool:
    """Whether a file of local ``table`` no longer has the size and mtime the catalog listed (a writer
    at work). A lake on object storage: True (its objects are not listed again here)."""
    if getattr(getattr(ctx, "lake", None), "fs", None) is not None:
        return True
    for f in table.files:
        try:
            st = os.stat(os.path.join(table.root, f.path))
        except OSError:
            return True
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            return True
    return False


def build_target(ctx, target, jobs_n: int) -> IndexEntry:
    """Build (or, on ``--refresh``, update) the per-file sharded FM-index of one column and record it."""
    from lakeql.ngrams.builder import FOLD, FORMAT, KIND, cut_shards, run_job

    table, key, col = target.table, target.table.key, target.column
    path = ctx.store.index_path(KIND, key, col)
    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    prev = _previous(ctx, target, path)
    old_files = {f["shard_id"]: f for f in prev[1]["files"]} if prev else {}
    diff = S.diff(table, old_files)
    kept_ids = {S.shard_id(f) for f in diff.kept}
    if prev is not None and prev[1].get("time_zone") != buildfs.BUILD_TIME_ZONE:
        # built in another zone (or before the zone was recorded: the build machine's): the shards of
        # files whose column holds a zone-dependent type are built again, so one index has one zone
        kept_ids -= {S.shard_id(f) for f in diff.kept if _zoned(target, f)}
    files: list[dict[str, Any]] = []
    jobs: list = []
    copied = 0
    with ctx.store.atomic_dir(path) as tmp:
        for f in table.files:
            sid = S.shard_id(f)
            if sid in kept_ids:
                old = old_files[sid]
                for name in old["shards"]:
                    copied += S.link_tree(path / name, tmp / name)
                files.append(
                    {
                        "shard_id": sid,
                        "path": f.path,
                        "shards": list(old["shards"]),
                        "rows": int(old["rows"]),
                        "text_bytes": int(old["text_bytes"]),
                    }
                )
                continue
            fj, rows, text_bytes = cut_shards(
                target,
                tmp,
                _file_batches(target, f),
                name=lambda k, sid=sid: shard_name(sid, k),
                first=len(jobs),
            )
            jobs += fj
            files.append(
                {
                    "shard_id": sid,
                    "path": f.path,
                    "shards": [Path(j.out_dir).name for j in fj],
                    "rows": rows,
                    "text_bytes": text_bytes,
                }
            )
        file_rows = [f["rows"] for f in files]
        known = _catalog_rows(ctx, table)
        if known is not None and [int(n) for n in known] != file_rows:
            if not _changed_on_disk(ctx, table):
                # the files are as the catalog listed them: not a writer, an inconsistency of the build's
                # own (a reader counting otherwise, stored shard rows): stop, never skip it as a write
                # (review30: trial12 took every mismatch for a writer, and the index was never built)
                raise CorruptIndexError(
                    f"the row counts of {key}'s files ({sum(file_rows):,}) differ from the catalog's "
                    f"({sum(known):,}) while its files are unchanged: run 'lakeql index LAKE' (a full "
                    "build); if it stays, report it as a bug"
                )
            # the files changed after the catalog read them (a writer replaced or appended one during
            # this build): the shards would not match the catalog's rows; the build goes on without them
            raise ChangedDuringBuildError(
                f"table {key} changed during the build (its files hold {sum(file_rows):,} rows, the "
                f"catalog read {sum(known):,}): its n-gram index is left as it was; run 'lakeql index "
                "--refresh LAKE' once the writes are done"
            )
        offsets = S.row_offsets(table, file_rows)
        for f in files:
            f["offset"] = offsets[f["shard_id"]]
        peak = _run(ctx, jobs, jobs_n, run_job, f"ngram {key}.{col}")
        n_rows, text_bytes = sum(file_rows), sum(f["text_bytes"] for f in files)
        n_shards = sum(len(f["shards"]) for f in files)
        meta = {
            "table": key,
            "column": col,
            "n_rows": n_rows,
            "text_bytes": text_bytes,
            "shards": n_shards,
            "case": target.case,
            "mode": target.mode,
            "words": target.words,
            "scan": target.scan,
            "fold": FOLD,
            "format": FORMAT,
            "time_zone": buildfs.BUILD_TIME_ZONE,
            "files": files,
        }
        (tmp / INDEX_JSON).write_text(json.dumps(meta))
    secs = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    size = dir_bytes(path)
    new_bytes = sum(j.n_bytes for j in jobs)
    params = json.loads(target.params())
    params.update(
        {
            "text_bytes": text_bytes,
            "n_rows": n_rows,
            "shards": n_shards,
            "build_seconds": round(secs, 3),
            "build_cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(peak / 1024, 1),
            "files": len(files),
            "refreshed": prev is not None,
            "built_shards": len(jobs),
            "kept_shards": n_shards - len(jobs),
            "removed_files": len(diff.removed) if prev else 0,
            "time_zone": buildfs.BUILD_TIME_ZONE,
        }
    )
    entry = IndexEntry(
        KIND,
        key,
        col,
        str(path.relative_to(ctx.store.root)),
        size,
        text_bytes,
        table.fingerprint,
        params=json.dumps(params, sort_keys=True),
    )
    entry.checksums = _checksums(
        path, prev[0] if prev else None, {n for f in files if f["shard_id"] in kept_ids for n in f["shards"]}
    )
    ctx.store.record(entry)
    mb = text_bytes / 1e6
    if prev is not None:
        say(
            f"ngram {key}.{col}: refreshed, {len(jobs)} shard(s) built ({new_bytes / 1e6:.1f} MB text of "
            f"{len(files) - len(diff.kept)} new file(s)), {n_shards - len(jobs)} kept"
            f"{f' ({copied} files copied, not linked)' if copied else ''}, {len(diff.removed)} file(s) "
            f"dropped, {secs:.2f} s"
        )
    else:
        say(
            f"ngram {key}.{col}: {mb:.1f} MB text in {n_shards} shard(s) of {len(files)} file(s), "
            f"{secs:.1f} s ({mb / max(secs, 1e-9):.1f} MB/s), index {size / max(text_bytes, 1):.2f}x text"
        )
    return entry


def _run(ctx, jobs: list, jobs_n: int, run_job, desc: str) -> int:
    """Build the shards of ``jobs`` (in this process when they are few or small); returns peak RSS KiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if not jobs:
        return peak
    total = sum(j.n_bytes for j in jobs)
    pb = bar(total, desc=desc, unit="B", unit_scale=True)
    local = ctx.engine.name == "local" and (jobs_n <= 1 or len(jobs) <= 1 or total <= IN_PROCESS_BYTES)
    if local:
        for j in jobs:
            _, _, _, rss = run_job(j)
            peak = max(peak, rss)
            pb.update(j.n_bytes)
    else:  # lakeql.engine (issue 10): spawned workers that die with the build, or Ray tasks
        sizes = {j.index: j.n_bytes for j in jobs}

        def done(_: int, res: tuple[int, int, float, int]) -> None:
            nonlocal peak
            peak = max(peak, res[3])
            pb.update(sizes[res[0]])

        ctx.engine.map(run_job, jobs, pool="process", workers=jobs_n, on_result=done)
    pb.close()
    return peak


def _checksums(path: Path, prev: IndexEntry | None, kept: set[str]) -> str:
    """Checksums of the committed index files: carried over from ``prev`` for the kept (linked) shards,
    computed for the rest."""
    old: dict[str, str] = json.loads(prev.checksums) if prev is not None and prev.checksums else {}
    out: dict[str, str] = {}
    for p in sorted(path.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(path).as_posix()
        top = rel.split("/", 1)[0]
        want = old.get(rel) if top in kept else None
        if want is not None and want.split(":", 1)[0] == str(p.stat().st_size):
            out[rel] = want
        else:
            out[rel] = _stamped_checksum(p)  # stamped: the verification record trusts it later
    return json.dumps(out, sort_keys=True)


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime
