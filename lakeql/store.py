"""The index directory: atomic writes, the manifest of built indexes, and staleness checks.

Layout of an index dir (default ``LAKE/.lakeql``)::

    indexes.parquet          the manifest: one row per built index (see schemas/indexes.schema.json)
    catalog/tables.parquet   one row per lake table
    catalog/columns.parquet  one row per column
    catalog/files.parquet    one row per Parquet file (size, mtime, rows): the fingerprints
    lake.duckdb              views + pure-SQL macros, readable by the stock duckdb CLI
    <kind>/<slug>/...        one folder per capability index (e.g. embed/, ngram/, joins/)

Every write goes to a temporary name in the same folder and is renamed into place, so an interrupted
build leaves the previous index usable. Every manifest row records the fingerprint of the files the index
was built from; :meth:`Store.require` compares it with the files on disk and raises
:class:`StaleIndexError` naming the table and ``lakeql index --refresh``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lakeql.errors import CorruptIndexError, IndexDirError, NotIndexedError, StaleIndexError
from lakeql.lake import Lake, Table

MANIFEST = "indexes.parquet"
FORMAT_VERSION = 1
DEFAULT_DIRNAME = ".lakeql"


@dataclass
class IndexEntry:
    """One built index: what it covers, where it lives, and what it was built from."""

    kind: str  # 'catalog', 'embed', 'ngram', 'joins', 'schemas', ...
    table_name: str  # 'domain.name' ('' for lake-wide indexes)
    column_name: str  # '' for table-wide or lake-wide indexes
    path: str  # relative to the index dir
    bytes: int
    source_bytes: int
    fingerprint: str  # of the table's files when built ('' for lake-wide)
    built_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    format_version: int = FORMAT_VERSION
    params: str = "{}"  # JSON: builder parameters (model, method, case, ...)

    @property
    def params_dict(self) -> dict[str, Any]:
        return json.loads(self.params or "{}")


def slug(*parts: str) -> str:
    """A safe, unique folder name for a table/column: readable ASCII plus a short hash of the exact name."""
    raw = "\x1f".join(parts)
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(parts)).strip("._")[:60] or "x"
    return f"{readable}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"


def slug_sql(table_expr: str, column_expr: str) -> str:
    """The SQL twin of :func:`slug` over two SQL text expressions (for pure macros in ``udfs/*.sql``)."""
    joined = f"{table_expr} || '__' || {column_expr}"
    return (f"(coalesce(nullif(left(trim(regexp_replace({joined}, '[^A-Za-z0-9_.-]+', '_', 'g'), '._'), "
            f"60), ''), 'x') || '-' || left(sha1({table_expr} || chr(31) || {column_expr}), 8))")


def dir_bytes(path: Path) -> int:
    """Total size of a file or of every file below a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Store:
    """An index directory for one lake."""

    def __init__(self, root: str | os.PathLike[str], lake: Lake | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.lake = lake
        self._manifest_cache: tuple[float, list[IndexEntry]] | None = None

    @classmethod
    def for_lake(cls, lake: Lake, index_dir: str | os.PathLike[str] | None = None) -> Store:
        return cls(index_dir if index_dir is not None else lake.root / DEFAULT_DIRNAME, lake)

    # ----------------------------------------------------------------- writing
    def ensure_writable(self) -> None:
        """Create the index dir, or raise :class:`IndexDirError` naming ``--index-dir``."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as exc:
            raise IndexDirError(
                f"cannot write the index dir {str(self.root)!r} ({exc.strerror or exc}): "
                "pass a writable folder with --index-dir") from None

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def index_path(self, kind: str, table: str = "", column: str = "") -> Path:
        """The folder of one capability index (not created)."""
        return self.root / kind / (slug(table, column) if table else "lake")

    @contextlib.contextmanager
    def atomic_file(self, target: str | os.PathLike[str]) -> Iterator[Path]:
        """Yield a temp path beside ``target``; rename it into place only if the block succeeds."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()

    @contextlib.contextmanager
    def atomic_dir(self, target: str | os.PathLike[str]) -> Iterator[Path]:
        """Yield a fresh temp folder; swap it in for ``target`` only if the block succeeds.

        The old folder is renamed aside before the new one is renamed in, so at every instant a
        complete index (old or new) sits at ``target`` except between two renames.
        """
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            yield tmp
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.old-{os.getpid()}"
                if old.exists():
                    shutil.rmtree(old)
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def write_parquet(self, table: Any, target: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write an Arrow table to ``target`` atomically (zstd by default)."""
        import pyarrow.parquet as pq

        kwargs.setdefault("compression", "zstd")
        with self.atomic_file(target) as tmp:
            pq.write_table(table, tmp, **kwargs)
        return Path(target)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def record(self, entry: IndexEntry) -> None:
        """Add or replace the manifest row of ``(kind, table, column)``."""
        with self._locked():
            rows = [e for e in self._read_manifest()
                    if (e.kind, e.table_name, e.column_name)
                    != (entry.kind, entry.table_name, entry.column_name)]
            rows.append(entry)
            self._write_manifest(rows)

    def record_many(self, entries: list[IndexEntry]) -> None:
        """Add or replace several manifest rows with one manifest write (builders of many tables)."""
        if not entries:
            return
        with self._locked():
            keys = {(e.kind, e.table_name, e.column_name) for e in entries}
            rows = [e for e in self._read_manifest()
                    if (e.kind, e.table_name, e.column_name) not in keys]
            self._write_manifest(rows + list(entries))

    def drop(self, kind: str, table: str = "", column: str = "", *, delete_files: bool = True) -> None:
        """Remove an index from the manifest (and its files)."""
        with self._locked():
            rows = self._read_manifest()
            keep = []
            for e in rows:
                if (e.kind, e.table_name, e.column_name) == (kind, table, column):
                    if delete_files:
                        p = self.root / e.path
                        if p.is_dir():
                            shutil.rmtree(p, ignore_errors=True)
                        elif p.exists():
                            p.unlink()
                else:
                    keep.append(e)
            self._write_manifest(keep)

    def _write_manifest(self, rows: list[IndexEntry]) -> None:
        import pyarrow as pa

        cols: dict[str, list[Any]] = {f: [] for f in IndexEntry.__dataclass_fields__}
        for e in sorted(rows, key=lambda r: (r.kind, r.table_name, r.column_name)):
            for k, v in asdict(e).items():
                cols[k].append(v)
        schema = pa.schema([
            ("kind", pa.string()), ("table_name", pa.string()), ("column_name", pa.string()),
            ("path", pa.string()), ("bytes", pa.int64()), ("source_bytes", pa.int64()),
            ("fingerprint", pa.string()), ("built_at", pa.timestamp("us", tz="UTC")),
            ("format_version", pa.int32()), ("params", pa.string()),
        ])
        self.write_parquet(pa.table(cols, schema=schema), self.root / MANIFEST)
        self._manifest_cache = None

    # ----------------------------------------------------------------- reading
    def _read_manifest(self) -> list[IndexEntry]:
        path = self.root / MANIFEST
        if not path.exists():
            return []
        mtime = path.stat().st_mtime_ns
        if self._manifest_cache and self._manifest_cache[0] == mtime:
            return list(self._manifest_cache[1])
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - any read failure means a corrupt manifest
            raise CorruptIndexError(
                f"index manifest {str(path)!r} is unreadable ({exc}): delete it and run "
                "'lakeql index LAKE' again") from None
        entries = [IndexEntry(**r) for r in rows]
        self._manifest_cache = (mtime, entries)
        return list(entries)

    def entries(self, kind: str | None = None) -> list[IndexEntry]:
        """Every manifest row (of one kind)."""
        return [e for e in self._read_manifest() if kind is None or e.kind == kind]

    def find(self, kind: str, table: str = "", column: str = "") -> IndexEntry | None:
        for e in self._read_manifest():
            if (e.kind, e.table_name, e.column_name) == (kind, table, column):
                return e
        return None

    def is_stale(self, entry: IndexEntry) -> bool:
        """True when the table's files changed since the index was built (or the table is gone)."""
        if not entry.table_name or self.lake is None:
            return False
        table = self.lake.tables.get(entry.table_name)
        if table is None:
            return True
        return current_fingerprint(table) != entry.fingerprint

    def require(self, kind: str, table: Table | None = None, column: str = "", flag: str = ""
                ) -> IndexEntry:
        """The fresh index of ``(kind, table, column)``, or a clear error saying how to build it.

        ``flag`` is the ``lakeql index`` option that builds this index (e.g. ``--embed``);
        ``table=None`` is a lake-wide index (existence and files only).
        """
        key = table.key if table is not None else ""
        entry = self.find(kind, key, column)
        target = (f"{key}.{column}" if column else key) or "the lake"
        if entry is None:
            how = f"lakeql index LAKE {flag} {_cli_arg(target)}" if flag else "lakeql index LAKE"
            raise NotIndexedError(f"no {kind} index for {target}: build it with '{how}'")
        if table is not None and current_fingerprint(table) != entry.fingerprint:
            raise StaleIndexError(
                f"the {kind} index of {target} is older than the Parquet files of table "
                f"{table.key}: run 'lakeql index --refresh LAKE'")
        p = self.root / entry.path
        if not p.exists():
            raise CorruptIndexError(
                f"the {kind} index of {target} is missing its files ({entry.path}): run "
                "'lakeql index --refresh LAKE'")
        return entry


def _cli_arg(text: str) -> str:
    return text if re.fullmatch(r"[\w.]+", text) else "'" + text.replace("'", "'\\''") + "'"


def current_fingerprint(table: Table) -> str:
    """Fingerprint of the table's files as they are on disk now (re-walks a folder table)."""
    from lakeql.lake import _folder_files, _stamp, fingerprint_of

    src = table.root / table.source
    if not src.exists():
        return "<missing>"
    if src.is_file():
        return fingerprint_of([_stamp(table.root, src)])
    files, _ = _folder_files(table.root, src)
    return fingerprint_of(files)
