"""Per-file shards: which of a table's files an index already covers, and where each file's rows start.

An index made of per-file shards (one shard per data file, plus whatever small part is merged from
them) can be refreshed by indexing only the files that are new or changed and dropping the shards of
files that are gone. A shard is named by :func:`shard_id` of the file it was built from (path, size and
mtime), so a rewritten file is a new shard and its old shard is dropped; nothing else is compared.

Rows in a shard are numbered from 0 within their file. A table's ``__rowid`` is the file's offset (the
rows of the files before it, in catalog order: see :mod:`lakeql.rows`) plus that number, so a shard
never stores global rowids: :func:`row_offsets` maps each file to its offset as the table is *now*, and
appending a file anywhere in the order leaves every other shard valid.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lakeql.lake import FileStamp, Table


def shard_id(stamp: FileStamp) -> str:
    """A short stable name for the shard of one file version (changes when the file changes)."""
    tag = f"\0{stamp.etag}" if stamp.etag else ""
    key = f"{stamp.path}\0{stamp.size}\0{stamp.mtime_ns}{tag}".encode("utf-8", "surrogatepass")
    return hashlib.sha1(key).hexdigest()[:16]


@dataclass(frozen=True)
class FileDiff:
    """The files of a table against the shards an index holds."""

    added: list[FileStamp]  # files (new or changed) that have no shard yet, in catalog order
    kept: list[FileStamp]  # files whose shard is still valid, in catalog order
    removed: list[str]  # shard ids whose file is gone or changed

    @property
    def unchanged(self) -> bool:
        return not self.added and not self.removed


def diff(table: Table, built: Iterable[str]) -> FileDiff:
    """Compare ``table``'s current files with the shard ids an index was built from."""
    have = set(built)
    current = {shard_id(f): f for f in table.files}
    added = [f for f in table.files if shard_id(f) not in have]
    kept = [f for f in table.files if shard_id(f) in have]
    removed = sorted(have - set(current))
    return FileDiff(added, kept, removed)


def row_offsets(table: Table, file_rows: list[int]) -> dict[str, int]:
    """``{shard_id: first __rowid of that file}`` for the table as it is now (``file_rows``: the row count
    of each of ``table.files``, in catalog order, as :meth:`lakeql.catalog.Catalog.file_rows` gives)."""
    if len(file_rows) != len(table.files):
        raise ValueError(f"{table.key}: {len(file_rows)} row counts for {len(table.files)} files")
    out, acc = {}, 0
    for f, n in zip(table.files, file_rows, strict=True):
        out[shard_id(f)] = acc
        acc += int(n)
    return out


def link_tree(src: Path, dst: Path) -> int:
    """Hard-link every file under ``src`` into ``dst`` (same layout; a copy where a link fails: another
    file system, no hard links, too many links): how a refresh keeps an unchanged shard without
    rewriting its bytes. Returns the number of files copied."""
    copied = 0
    for dirpath, _, filenames in os.walk(src):
        here = Path(dirpath)
        out = dst / here.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for fn in filenames:
            try:
                os.link(here / fn, out / fn)
            except OSError:
                shutil.copy2(here / fn, out / fn)
                copied += 1
    return copied
