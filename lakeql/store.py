"""The index directory: atomic writes, the manifest of built indexes, and staleness checks.

Layout of an index dir (default ``LAKE/.lakeql``)::

    indexes.parquet          the manifest: one row per built index (see schemas/indexes.schema.json)
    catalog/tables.parquet   one row per lake table
    catalog/columns.parquet  one row per column
    catalog/files.parquet    one row per Parquet file (size, mtime, rows): the fingerprints
    lake.duckdb              views + pure-SQL macros, readable by the stock duckdb CLI
    <kind>/<slug>/...        one folder per capability index (e.g. embed/, ngram/, joins/)
    csv_utf8/                UTF-8 copies of the lake's CSV files that are not UTF-8 (lakeql.csvenc)

Every write goes to a temporary name in the same folder (``.NAME.PID-RANDOM.tmp``), is flushed to disk
(``fsync``) and is renamed into place, so an interrupted build (killed, Ctrl-C, disk full) leaves the
previous index usable; the next build removes the temporary files of dead processes
(:meth:`Store.clean_stale`). After a failed write the store refuses every further commit of that build,
so a degraded index never replaces a good one. Files and folders are created with the user's umask.

Every manifest row records the fingerprint of the files the index was built from; :meth:`Store.require`
compares it with the files on disk and raises :class:`StaleIndexError` naming the table and ``lakeql
index --refresh``. It also records a checksum (size and CRC-32) of each of its files, verified once when
the index is loaded (:meth:`Store.verify`, cached by file size and mtime): a damaged file is a
:class:`CorruptIndexError` naming ``lakeql index --refresh``, which rebuilds every damaged, missing or
incomplete index (:meth:`Store.drop_damaged`).

Concurrency: ``lakeql index`` runs hold ``.build.lock`` (:meth:`Store.build_lock`), so two runs on one
lake serialize with a message naming the other's pid. Swapping a new index folder in and recording it
happen under an exclusive ``.swap.lock``; loaders verify and open an index under a shared one
(:meth:`Store.load_verified`), so a reader sees the old or the new index, never a mix.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import errno
import fcntl
import hashlib
import json
import operator
import os
import re
import secrets
import shutil
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql import parquet_io
from lakeql.cliargs import shell_word
from lakeql.dbutil import inflate
from lakeql.errors import CorruptIndexError, IndexDirError, LakeqlError, NotIndexedError, StaleIndexError
from lakeql.lake import Lake, Table, files_word, glob_escape, join_root

MANIFEST = "indexes.parquet"
FORMAT_VERSION = 1
DEFAULT_DIRNAME = ".lakeql"
DAMAGED = "<damaged>"  # the fingerprint of an index row whose damaged files were removed
BUILD_LOCK = ".build.lock"
#: the pre-build integrity pass's record of the files it found intact (:meth:`Store.drop_damaged`)
VERIFIED = ".verified.json.z"
SWAP_LOCK = ".swap.lock"
# a temp file, or the DuckDB write-ahead log beside a temp database file of a killed build
TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]+\.tmp(?:\.wal)?$")
OLD_RE = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)$")
LEGACY_TEMP_RE = re.compile(r"^\.(?:.+)\.[A-Za-z0-9_]{8}\.tmp$|^\.probe-")


class IndexWriteError(IndexDirError):
    """Writing the index failed (disk full, read-only, killed): the previous index is kept."""


class IndexBusyError(LakeqlError):
    """Another ``lakeql index`` holds the lake's build lock."""


#: errno values of an OSError that mean the index cannot be written (not that the data is bad)
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO, errno.EFBIG)


def write_failure(exc: BaseException) -> int | None:
    """The errno of a failed write that ``exc`` reports, or None when it reports something else.

    Besides an ``OSError`` with one of :data:`WRITE_ERRNOS`, writers that wrap the OS error in their own
    (DuckDB's IOException, Arrow) say "No space left on device" / "Disk quota exceeded", and numpy's and
    Arrow's short writes say "N requested and M written": the device filled up mid-write.
    """
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return exc.errno
    text = str(exc)
    if "File too large" in text:  # EFBIG wrapped by DuckDB or Arrow: over the file size limit
        return errno.EFBIG
    if "No space left on device" in text or re.search(r"\d+ requested and \d+ written", text):
        # a short write: the device filled up, or the file reached the process's file size limit
        return errno.EFBIG if file_size_limit() is not None and "No space" not in text else errno.ENOSPC
    if "Disk quota exceeded" in text:
        return errno.EDQUOT
    return None


def file_size_limit() -> int | None:
    """The process's file size limit in bytes (``ulimit -f``; RLIMIT_FSIZE), or None when unlimited."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _write_error(target: Path, exc: OSError) -> IndexWriteError:
    what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}.get(
        exc.errno or 0, exc.strerror or str(exc))
    fix = "free space or pass another --index-dir"
    if exc.errno == errno.EFBIG:
        limit = file_size_limit()
        what = (f"over the file size limit of {limit:,} bytes ('ulimit -f')" if limit is not None
                else "file too large for the file system")
        fix = "raise the limit ('ulimit -f unlimited') or pass another --index-dir"
    return IndexWriteError(f"cannot write {str(target)!r} ({what}); the previous index is kept: {fix}, "
                           "then run 'lakeql index --refresh LAKE'")


def write_error(target: Path | str, exc: BaseException) -> IndexWriteError | None:
    """The :class:`IndexWriteError` of a failed write of ``target`` (disk full, quota, file size limit,
    read-only), or None when ``exc`` reports something else (bad data)."""
    code = write_failure(exc)
    if code is None:
        return None
    return _write_error(Path(target), exc if isinstance(exc, OSError) and exc.errno == code
                        else OSError(code, os.strerror(code)))


def file_checksum(path: Path | str) -> str:
    """``size:crc32`` of a file.

    CRC-32 detects damage (zeroed, truncated, flipped bytes; not tampering) at ~580 MB/s here, 4x
    BLAKE2b's ~135 MB/s on this loaded 2-core machine; the size catches truncation before any read.
    """
    crc = 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return f"{os.stat(path).st_size}:{crc:08x}"


def _checksum_like(path: Path, want: str) -> str:
    """The checksum of ``path`` in the format of ``want`` (CRC-32, or BLAKE2b-128 of early manifests)."""
    if len(want.split(":", 1)[-1]) == 32:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
        return f"{path.stat().st_size}:{digest}"
    return file_checksum(path)


# caches that readers (re)write inside an index folder after the build recorded it: the schema files'
# embeddings (lakeql.context.retrieve.EMB), written by the first schema_context after a change. They are
# not the manifest's to vouch for (a recorded one failed its checksum as soon as a reader updated it:
# every schema_context then said 'damaged'); the cache checks itself (a zip's CRC-32) and is remade.
READER_CACHES = frozenset({".lakeql-embeddings.npz"})


def _files_of(path: Path) -> list[tuple[str, Path]]:
    """The files of an index (a file, or every file below a folder but temp and kept-aside copies and
    :data:`READER_CACHES`)."""
    if path.is_file():
        return [("", path)]
    return sorted((rel, Path(full)) for rel, full, _ in _walk_files(path, _not_recorded))


def _kept_aside_below(root: str, suffix: str) -> list[str]:
    """The paths below folder ``root`` (not itself) whose name matches :data:`OLD_RE` and ends with
    ``suffix``: what ``Path(root).rglob("*" + suffix)`` filtered by ``OLD_RE`` finds (symlinked folders are
    not entered; a match is not entered either: it is removed whole). ``os.scandir`` strings: rglob's
    pathlib objects for 11,000 schema files cost ~0.15 CPU s per record of the schemas folder."""
    out: list[str] = []
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                name = e.name
                if name.endswith(suffix) and OLD_RE.match(name):
                    out.append(e.path)
                    continue
                try:
                    if e.is_dir() and not e.is_symlink():
                        stack.append(e.path)
                except OSError:
                    continue
    return out


def _walk_index(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top)`` (top-down, symlinked folders listed but not entered, a folder that cannot be listed
    left out; removing a name from the folder names yielded keeps the walk out of it), with the entries'
    own symlink flag instead of an ``lstat`` per folder: ~40% less CPU on an index of 11,000 folders."""
    stack = [top]
    while stack:
        here = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        links: set[str] = set()
        try:
            with os.scandir(here) as it:
                for e in it:
                    try:
                        is_dir = e.is_dir()
                    except OSError:
                        is_dir = False
                    if is_dir:
                        dirs.append(e.name)
                        if e.is_symlink():
                            links.add(e.name)
                    else:
                        files.append(e.name)
        except OSError:
            continue
        yield here, dirs, files
        stack.extend(os.path.join(here, d) for d in reversed(dirs) if d not in links)


def _temp_or_old(name: str) -> bool:
    """A temp file or a kept-aside copy of a build (:data:`TEMP_RE`, :data:`OLD_RE`)."""
    return bool(TEMP_RE.match(name) or OLD_RE.match(name))


def _not_recorded(name: str) -> bool:
    """A path part :func:`_files_of` leaves out: temp and kept-aside copies and :data:`READER_CACHES`."""
    return _temp_or_old(name) or name in READER_CACHES


def _walk_files(root: Path, skip: Callable[[str], bool]) -> Iterator[tuple[str, str, os.DirEntry]]:
    """``(relative posix path, path, entry)`` of every file below ``root`` (as ``Path.rglob('*')`` with
    ``is_file()``: symlinked folders are not entered, symlinked files count), leaving out every file with
    a path part for which ``skip(part)`` is true. ``os.scandir``: a folder of 11,000 schema files is
    listed in milliseconds (pathlib's rglob and relative_to cost ~10x more)."""
    stack = [("", str(root))]
    while stack:
        rel, folder = stack.pop()
        try:
            it = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                if skip(e.name):
                    continue
                r = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((r, e.path))
                    continue
                try:
                    is_file = e.is_file()
                except OSError:  # a symlink loop (ELOOP): listed, so a check of it finds it damaged
                    is_file = e.is_symlink()
                if is_file:
                    yield r, e.path, e


def _old_name(target: Path, pid: int | None = None) -> Path:
    return target.parent / f".{target.name}.old-{os.getpid() if pid is None else pid}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_bytes(path: Path, data: bytes) -> bool:
    """True when ``path`` holds exactly ``data`` (its size is compared first: no read when it differs)."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it holds exactly these bytes (a refresh that changed nothing
    leaves the file, its mtime and inode as they are); True when written. Written like the store's other
    files: a temp file beside it (named so :meth:`Store.clean_stale` removes one a killed process left),
    fsynced and renamed over it, then the folder fsynced."""
    if same_bytes(path, data):
        return False
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _fsync_files(paths: list[Path]) -> None:
    """fsync every file, from up to 16 threads: each fsync waits for a journal commit and a disk flush
    (~5 ms here, even for an unchanged file), and concurrent ones share them (360 files of an index
    folder: 1.9 s one by one, ~0.1 s at once)."""
    if len(paths) <= 2:
        for p in paths:
            _fsync_file(p)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        list(pool.map(_fsync_file, paths))


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            return False
        raise OSError(err, os.strerror(err), str(b))
    return True


def open_memmap(path: str | os.PathLike[str], dtype: Any, shape: tuple[int, ...]):
    """``numpy.lib.format.open_memmap(mode='w+')`` with its blocks reserved up front.

    A plain memory-mapped ``.npy`` is a sparse file: on a full disk the first write to an unbacked page
    kills the process with SIGBUS (exit 135, no message). Reserving the blocks with ``posix_fallocate``
    turns that into an ``OSError(ENOSPC)`` before anything is written.
    """
    import numpy as np

    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate") and size:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        del arr
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)
    return arr


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
    checksums: str = ""  # JSON {relative file: 'size:crc32'} of the index files, set by Store.record

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
    """Total size of a file or of every file below a folder (not the temp files or the old copies a
    build keeps aside until the manifest records the new ones: they are not part of the index)."""
    if path.is_file():
        return path.stat().st_size
    return sum(_size(e) for _, _, e in _walk_files(path, _aside))


def _size(e: os.DirEntry) -> int:
    try:
        return e.stat().st_size
    except OSError:  # a symlink loop: no bytes
        return 0


def _aside(name: str) -> bool:
    return bool(TEMP_RE.match(name) or OLD_RE.match(name) or LEGACY_TEMP_RE.match(name))


class Store:
    """An index directory for one lake."""

    def __init__(self, root: str | os.PathLike[str], lake: Lake | None = None) -> None:
        if not str(root).strip():  # Path('') is the current directory: an index written where the user is
            raise IndexDirError("the index dir is empty (''): pass a folder with --index-dir DIR, or leave "
                                "it out for LAKE/.lakeql")
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():  # else "index manifest .../indexes.parquet is
            # unreadable (Not a directory): delete it" at the first query, naming a file that is not there
            raise IndexDirError(f"the index dir {str(self.root)!r} is a file, not a folder: pass a folder "
                                "with --index-dir DIR (index_dir=), or leave it out for LAKE/.lakeql")
        self.lake = lake
        self._manifest_cache: tuple[tuple[int, int, int], list[IndexEntry]] | None = None
        self._manifest_index: tuple[Any, dict[tuple[str, str, str], IndexEntry]] | None = None
        self.write_error: IndexWriteError | None = None  # set by the first failed write of a build
        self._verified_entries: set[tuple[str, ...]] = set()  # verify_once()
        self._verified_kinds: dict[str, list[IndexEntry]] = {}  # verify_kind_once(): kind -> manifest read
        # the verification record as this store last read or wrote it, under the file's stat stamp
        self._verified_memo: tuple[tuple[int, int, int, int], dict[str, list]] | None = None
        # drop_damaged(defer_record=True): the verification record to write at remember_checksummed, and
        # the stamp the record file had when it was made (None: no file)
        self._verified_pending: tuple[tuple[int, int, int, int] | None, dict[str, list]] | None = None

    @classmethod
    def for_lake(cls, lake: Lake, index_dir: str | os.PathLike[str] | None = None) -> Store:
        """The store of ``lake``: ``index_dir``, else ``LAKE/.lakeql`` (a remote lake: a local cache dir)."""
        if index_dir is not None:
            return cls(index_dir, lake)
        if lake.is_remote:
            from lakeql.sources.remote import default_index_dir

            return cls(default_index_dir(lake.url), lake)
        return cls(Path(lake.root) / DEFAULT_DIRNAME, lake)

    # ----------------------------------------------------------------- writing
    def ensure_writable(self) -> None:
        """Create the index dir, or raise :class:`IndexDirError` naming ``--index-dir``."""
        if "\\" in str(self.root):
            # DuckDB opens a database file at a path with '\' turned into '/' (on Linux too): lake.duckdb
            # would be written to another folder, or fail with a path the user never gave
            raise IndexDirError(
                f"the index dir {str(self.root)!r} holds a backslash, which DuckDB reads as '/' in a "
                "database path: pass a folder without one with --index-dir")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self._temp_name(self.root / ".probe")
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            probe.unlink()
        except OSError as exc:
            raise IndexDirError(
                f"cannot write the index dir {str(self.root)!r} ({exc.strerror or exc}): "
                "pass a writable folder with --index-dir") from None

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def index_path(self, kind: str, table: str = "", column: str = "") -> Path:
        """The folder of one capability index (not created)."""
        return self.root / kind / (slug(table, column) if table else "lake")

    def _temp_name(self, target: Path) -> Path:
        return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"

    def _check_writable(self, target: Path) -> None:
        if self.write_error is not None:
            raise IndexWriteError(f"not writing {str(target)!r}: an earlier write of this build failed "
                                  f"({self.write_error})")

    @contextlib.contextmanager
    def _write_guard(self, target: Path) -> Iterator[None]:
        """Turn an ``OSError`` of a write (disk full, read-only) into one :class:`IndexWriteError`."""
        try:
            yield
        except IndexWriteError as exc:
            self.write_error = self.write_error or exc
            raise
        except Exception as exc:
            code = write_failure(exc)
            if code is None:
                raise
            same = isinstance(exc, OSError) and exc.errno == code
            err = _write_error(target, exc if same else OSError(code, os.strerror(code)))
            self.write_error = self.write_error or err
            raise err from None

    @contextlib.contextmanager
    def atomic_file(self, target: str | os.PathLike[str]) -> Iterator[Path]:
        """Yield a temp path beside ``target``; fsync it and rename it into place only if the block
        succeeds (the file is created empty, with the umask's mode)."""
        target = Path(target)
        self._check_writable(target)
        tmp_path = self._temp_name(target)
        with self._write_guard(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            try:
                yield tmp_path
                self._check_writable(target)
                if tmp_path.exists():
                    _fsync_file(tmp_path)
                with self.swap_lock():
                    if target.exists():  # kept aside until the manifest records the new file
                        old = _old_name(target)
                        old.unlink(missing_ok=True)
                        os.link(target, old)
                    os.replace(tmp_path, target)
                _fsync_dir(target.parent)
            finally:
                if tmp_path.exists():
                    tmp_path.unlink()

    @contextlib.contextmanager
    def atomic_dir(self, target: str | os.PathLike[str]) -> Iterator[Path]:
        """Yield a fresh temp folder; fsync its files and swap it in for ``target`` only if the block
        succeeds.

        The swap is one atomic ``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere the old folder is
        renamed aside first (``.NAME.old-PID``, restored by :meth:`clean_stale` if the process dies in
        between). Either way it happens under the exclusive swap lock, which loaders share.
        """
        target = Path(target)
        self._check_writable(target)
        tmp = self._temp_name(target)
        with self._write_guard(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(tmp, 0o777)
            try:
                yield tmp
                self._check_writable(target)
                _fsync_files([f for _, f in _files_of(tmp)])
                _fsync_dir(tmp)
                with self.swap_lock():
                    # the old folder is kept aside (.NAME.old-PID) until the manifest records the new
                    # one, so a build killed in between leaves the recorded (old) index loadable
                    old = _old_name(target)
                    if old.exists():
                        shutil.rmtree(old)
                    if target.exists() and _exchange(tmp, target):
                        os.replace(tmp, old)
                    else:
                        if target.exists():
                            os.replace(target, old)
                        os.replace(tmp, target)
                _fsync_dir(target.parent)
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

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int, blocking: bool = True) -> Iterator[bool]:
        """Hold ``flock(mode)`` on ``root/name``; yields False (no lock) when it cannot be opened
        (a read-only shared index dir) or, non-blocking, when another process holds it."""
        try:
            fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            try:
                fd = os.open(self.root / name, os.O_RDONLY)
            except OSError:
                yield False
                return
        try:
            try:
                fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def swap_lock(self) -> Iterator[None]:
        """Exclusive: index files are being swapped or recorded (readers wait)."""
        with self._flock(SWAP_LOCK, fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def build_lock(self, wait: bool = True, say: Callable[[str], Any] | None = None) -> Iterator[None]:
        """Serialize ``lakeql index`` runs on one index dir.

        When another run holds the lock: wait for it (saying so once, with its pid) or, with
        ``wait=False``, raise :class:`IndexBusyError`. The lock is an ``flock``: it is released when
        its holder dies, even by ``kill -9``.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / BUILD_LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = _read_pid(path)
                msg = f"another lakeql index is running on this lake (pid {other or '?'})"
                if not wait:
                    raise IndexBusyError(f"{msg}: wait for it to finish, or run again without --no-wait"
                                         ) from None
                (say or (lambda m: print(m, file=sys.stderr)))(f"{msg}; waiting...")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def build_running(self) -> int | None:
        """The pid of a ``lakeql index`` running on this index dir now, or None."""
        path = self.root / BUILD_LOCK
        if not path.exists():
            return None
        with self._flock(BUILD_LOCK, fcntl.LOCK_SH, blocking=False) as got:
            if got:
                return None
        return _read_pid(path) or -1

    def clean_stale(self, dry_run: bool = False) -> list[str]:
        """Remove temp files/folders left by dead processes (kill -9, Ctrl-C, power loss).

        A ``.NAME.old-PID`` folder whose ``NAME`` is gone (the process died between the two renames of a
        swap) is renamed back. Returns what was (or, with ``dry_run``, would be) removed or restored.
        """
        done: list[str] = []
        if not self.root.exists():
            return done
        for dirpath, dirnames, filenames in _walk_index(str(self.root)):
            for name in list(dirnames) + filenames:
                if not name.startswith("."):  # every temp / kept-aside / legacy name starts with a dot
                    continue
                m = TEMP_RE.match(name) or OLD_RE.match(name)
                legacy = m is None and LEGACY_TEMP_RE.match(name) is not None
                if m is None and not legacy:
                    continue
                if m is not None and _pid_alive(int(m.group("pid"))):
                    continue
                here = Path(dirpath)  # (a Path per matching name, not per folder: 11,000 of them at 10k)
                if legacy and time.time() - (here / name).stat().st_mtime < 3600:
                    continue
                p = here / name
                if dry_run:
                    done.append(p.relative_to(self.root).as_posix())
                elif m is not None and OLD_RE.match(name) and not (here / m.group("name")).exists():
                    os.replace(p, here / m.group("name"))
                    done.append(f"restored {p.relative_to(self.root).as_posix()}")
                elif p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                    done.append(p.relative_to(self.root).as_posix())
                else:
                    p.unlink(missing_ok=True)
                    done.append(p.relative_to(self.root).as_posix())
                if name in dirnames:
                    dirnames.remove(name)
        return done

    # ------------------------------------------------------------- checksums
    def checksums_of(self, entry: IndexEntry) -> str:
        """The JSON checksums of ``entry``'s files as they are on disk now. A file this process already
        checked or checksummed is not read again while its ``[size, mtime_ns, ctime_ns, inode]`` is the
        same (the rule of the verification record): recording a folder of 11,000 schema files after a
        refresh that wrote three of them reads three."""
        p = self.root / entry.path
        # paths as strings (a Path per file was ~0.1 CPU s of recording 11,000 schema files)
        files = ([("", str(p))] if p.is_file()
                 else [(rel, full) for rel, full, _ in _walk_files(p, _not_recorded)])
        return json.dumps({rel: _stamped_checksum(f) for rel, f in files}, sort_keys=True)

    def bytes_and_checksums(self, rel_path: str) -> tuple[int, str]:
        """``(dir_bytes(p), checksums)`` of index ``rel_path`` (a file or folder below the root): what
        :func:`dir_bytes` and :meth:`checksums_of` return, from one walk and one ``stat`` per file (the
        schema step records a folder of 11,000 files: each walk was ~0.1 CPU s)."""
        p = self.root / rel_path
        if p.is_file():
            ck, size = _stamped_checksum_sized(str(p))
            return size, json.dumps({"": ck}, sort_keys=True)
        total = 0
        cks: dict[str, str] = {}
        for rel, full, _ in _walk_files(p, _temp_or_old):
            parts = rel.split("/") if rel[0] == "." or "/." in rel else ()  # both sets' names start with '.'
            counted = not any(LEGACY_TEMP_RE.match(x) for x in parts)  # dir_bytes leaves these out
            if any(x in READER_CACHES for x in parts):  # counted, not recorded
                if counted:
                    with contextlib.suppress(OSError):
                        total += os.stat(full).st_size
                continue
            ck, size = _stamped_checksum_sized(full)
            cks[rel] = ck
            if counted:
                total += size
        return total, json.dumps(cks, sort_keys=True)

    def _stamped(self, entry: IndexEntry) -> IndexEntry:
        if not entry.checksums and (self.root / entry.path).exists():
            entry.checksums = self.checksums_of(entry)
        return entry

    def damage(self, entry: IndexEntry, path: Path | None = None, *,
               trusted: dict[str, list] | None = None, seen: dict[str, list] | None = None,
               checked: dict[str, tuple] | None = None) -> str | None:
        """What is wrong with ``entry``'s files (missing, changed size, checksum), or None when intact.

        Entries written before checksums existed are checked for existence only. Results are cached
        per file (size, mtime), so checking an intact index again costs a ``stat`` per file. ``path``:
        check these files against ``entry`` instead of the ones at ``entry.path``. ``trusted``: the
        verification record (:meth:`drop_damaged`): a file whose ``[size, mtime_ns, ctime_ns, inode,
        checksum]`` equals its record is not read again. ``seen``: filled with that list of every file
        found intact. ``checked``: filled with ``{path: (size, mtime_ns, ctime_ns, inode, checksum)}`` of
        the same files (by the path :data:`_VERIFIED` holds).
        """
        # the path as a string (what ``self.root / entry.path`` makes: a Path per index was ~0.05 CPU s of
        # an integrity pass at 10,000 tables)
        p = str(path) if path is not None else join_root(self.root, entry.path)
        try:  # one stat for Path.exists() and is_file() (the errors they take as "no such file")
            is_file = stat.S_ISREG(os.stat(p).st_mode)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
                raise
            return f"missing its files ({entry.path})"
        except ValueError:  # a NUL in the recorded path (a damaged manifest): Path.exists() said False
            return f"missing its files ({entry.path})"
        if not entry.checksums:
            return None
        try:
            expected: dict[str, str] = json.loads(entry.checksums)
        except ValueError:
            return "its checksums are unreadable"
        files: dict[str, str] | None = None
        if is_file:
            files = {"": p}
        elif not all(rel and "/" not in rel
                     and not (rel[0] == "." and (TEMP_RE.match(rel) or OLD_RE.match(rel)))
                     for rel in expected):  # paths as strings: a Path per file cost most of checking
            # (both patterns start with a dot: the others are not matched against them)
            files = {rel: full for rel, full, _ in _walk_files(p, _temp_or_old)}
        # else the files sit in the folder itself: each found by its name (what the walk would find:
        # a regular file or a symlink to one), without listing 10,000 tables' profile folders
        base = f"{p}{os.sep}"
        for rel, want in sorted(expected.items()):
            if rel.rsplit("/", 1)[-1] in READER_CACHES:  # recorded by an older lakeql: a reader's cache
                continue
            f = base + rel if files is None else files.get(rel)
            label = f"{entry.path}/{rel}" if rel else entry.path
            if f is None:
                return f"missing {label}"
            try:
                st = os.stat(f)
            except (OSError, ValueError):  # ValueError: a NUL in a recorded name (no listing holds it)
                return f"missing {label}"
            if not stat.S_ISREG(st.st_mode):  # a folder (or a FIFO, ...) where a file was recorded
                return f"missing {label}"
            size, colon, digest = want.partition(":")
            if str(st.st_size) != size:
                return f"{label} has {st.st_size} bytes, {size} expected (truncated?)"
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            ck = (f, *key, want)  # ctime: no restored mtime
            stamp = [*key, want]
            if ck not in _VERIFIED and not (trusted is not None and trusted.get(label) == stamp):
                if _checksum_like(Path(f), want) != want:
                    if path is None:  # a later build must read every file again, not trust its record
                        with contextlib.suppress(OSError):
                            (self.root / VERIFIED).unlink()
                    return f"{label} fails its checksum (damaged)"
            _VERIFIED.add(ck)
            if len(_VERIFIED) + len(_STAMPED) > _sweep_at[0]:
                _sweep_gone()
            if len(digest if colon else size) != 32:  # a CRC-32, not an early BLAKE2b: checksums_of reuses it
                _STAMPED[f] = (key, want)
            if seen is not None:
                seen[label] = stamp
            if checked is not None:
                checked[f] = ck[1:]
        return None

    def recorded_as(self, entry: IndexEntry) -> bool:
        """True when the manifest's row of ``entry``'s key already says what recording ``entry`` would: the
        same path, params, sizes and set of files, each intact. A builder that found nothing to change
        then skips :meth:`record` (which rewrites the manifest with a new ``built_at`` and checksums every
        file again). A build's :meth:`drop_damaged` checksummed the files already: this costs a ``stat``
        per file."""
        old = self.find(entry.kind, entry.table_name, entry.column_name)
        if old is None or not old.checksums or (old.path, old.params, old.bytes, old.source_bytes,
                                                old.fingerprint, old.format_version) != (
                entry.path, entry.params, entry.bytes, entry.source_bytes, entry.fingerprint,
                entry.format_version):
            return False
        try:
            names = set(json.loads(old.checksums))
        except ValueError:
            return False
        return names == {rel for rel, _ in _files_of(self.root / entry.path)} and self.intact(old)

    def intact(self, entry: IndexEntry) -> bool:
        return self.damage(entry) is None

    def verify(self, entry: IndexEntry, trusted: dict[str, list] | None = None) -> None:
        """Raise :class:`CorruptIndexError` naming ``lakeql index --refresh`` when ``entry`` is damaged.
        ``trusted``: the verification record (see :meth:`damage`)."""
        what = self.damage(entry, trusted=trusted)
        if what is not None:
            target = ".".join(x for x in (entry.table_name, entry.column_name) if x) or "the lake"
            raise CorruptIndexError(f"the {entry.kind} index of {target} is damaged ({what}): run "
                                    "'lakeql index --refresh LAKE' to rebuild it")

    def verify_once(self, entry: IndexEntry) -> None:
        """:meth:`verify` the first time this store object sees ``entry`` (as built: a rebuild is another
        entry); later calls cost nothing. For files that SQL reads directly (``read_parquet`` in a macro),
        checked like a loaded index: once per connection and rebuild (a file walk per entry costs ~0.1-0.4
        ms, too much to repeat for 10,000 tables' profiles on every query)."""
        key = (entry.kind, entry.table_name, entry.column_name, entry.path, str(entry.built_at))
        if key not in self._verified_entries:
            self.verify(entry)
            self._verified_entries.add(key)

    def verify_kind_once(self, kind: str) -> list[IndexEntry]:
        """The manifest rows of ``kind``, each :meth:`verify_once`'d; while the manifest is the one read
        last time (its mtime: a rebuild records new rows), nothing is looked at again: a query over every
        table's files (``joins_lookup`` reads each column profile) costs one ``stat``, not a key per table
        (~3.6 us each, 36 ms a query at 10,000 tables)."""
        entries = self._cached_entries()
        if self._verified_kinds.get(kind) is entries:  # the same list object: the same manifest read
            return [e for e in entries if e.kind == kind]
        mine = [e for e in entries if e.kind == kind]
        for e in mine:
            self.verify_once(e)
        self._verified_kinds[kind] = entries
        return mine

    def load_verified(self, entry: IndexEntry, loader: Callable[[Path, IndexEntry], Any],
                      timeout: float = 30.0) -> Any:
        """Verify ``entry`` and run ``loader(path, entry)`` under the shared swap lock.

        While a rebuild is between swapping files in and recording them, the manifest row and the files
        disagree: then re-read the manifest and retry (up to ``timeout`` s while a build runs), so a
        reader gets the old index or the new one, never a mix.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._flock(SWAP_LOCK, fcntl.LOCK_SH):
                self._manifest_cache = None
                fresh = self.find(entry.kind, entry.table_name, entry.column_name) or entry
                try:
                    # files whose stat stamp the record holds with the expected checksum are not read
                    # again (the build's rule: a write changes the ctime); 32,000 n-gram shard files
                    # of 2,000 small Parquet files were all read on a process's first query
                    self.verify(fresh, trusted=self._load_verified())
                    return loader(self.root / fresh.path, fresh)
                except CorruptIndexError:
                    kept = self.kept_aside(fresh)
                    if kept is not None:  # a build died between swapping files in and recording them
                        return loader(kept, fresh)
                    if self.build_running() is None or time.monotonic() > deadline:
                        raise
            time.sleep(0.05)

    def kept_aside(self, entry: IndexEntry) -> Path | None:
        """The copy of ``entry``'s files kept aside by a swap (``.NAME.old-PID``) that matches the
        manifest row, or None (see :meth:`atomic_dir`)."""
        if not entry.checksums:
            return None
        target = self.root / entry.path
        if not target.parent.exists():
            return None
        for cand in sorted(target.parent.glob(f".{glob_escape(target.name)}.old-*")):
            if self.damage(entry, cand) is None:
                return cand
        return None

    def _release_kept(self, entries: list[IndexEntry]) -> None:
        """After the manifest recorded ``entries``: drop this process's kept-aside copies of them."""
        for e in entries:
            target = self.root / e.path
            old = _old_name(target)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            elif old.exists():
                old.unlink(missing_ok=True)
            if target.is_dir():
                for inner in _kept_aside_below(str(target), f".old-{os.getpid()}"):
                    if os.path.isdir(inner):
                        shutil.rmtree(inner, ignore_errors=True)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(inner)

    def drop_damaged(self, verify: bool = False, defer_record: bool = False) -> list[IndexEntry]:
        """Repair the store before a build: restore indexes whose recorded files were kept aside by a
        killed build; delete the files of every other index that is missing files or damaged, dropping
        its manifest row (lake-wide indexes) or marking it (fingerprint ``'<damaged>'``: a table's index
        keeps its row and parameters, and is rebuilt as stale). Returns the damaged rows.

        Every file is checked for existence and size. Its checksum is read again unless the verification
        record (``VERIFIED``, written here: per file the ``[size, mtime_ns, ctime_ns, inode, checksum]``
        it had when this pass last found it intact) holds exactly what ``stat`` says now and the
        checksum the manifest expects: a file written, replaced, truncated or touched since has another
        ctime (which no program can set back). ``verify``: read every file (``lakeql index --refresh
        --verify``: damage that bypasses the file system, e.g. a failing disk). A reader that finds a
        file failing its checksum deletes the record, so the next build reads every file. See
        docs/robustness.md, "Integrity check before a build".

        ``defer_record``: the record is not written here but by :meth:`remember_checksummed` at the end of
        the build (one write of the 1.2 MB record at 10,000 tables instead of two), unless the record
        file changed in between (a reader voided it: not written). When there is no record file it is
        written here as before: a reader's deletion of a file that is not there would leave no trace
        (review22). A build that fails before then leaves
        the previous record (the next pass reads again what it does not vouch for)."""
        trusted = None if verify else self._load_verified()
        seen: dict[str, list] = {}
        checked: dict[str, tuple] = {}
        bad = []
        self._verified_pending = None
        # a process that checked no file before (a fresh `lakeql index`): what the caches hold after this
        # pass is what it found intact, so there is nothing to forget (the scan of ~32,000 entries at
        # 10,000 tables is skipped)
        cold = not _VERIFIED and not _STAMPED
        for e in self.entries():
            if self.damage(e, trusted=trusted, seen=seen, checked=checked) is None:
                continue
            kept = self.kept_aside(e)
            if kept is not None:  # a killed build swapped new files in but never recorded them
                target = self.root / e.path
                with self.swap_lock():
                    if target.is_dir():
                        shutil.rmtree(target)
                    os.replace(kept, target)
                continue
            bad.append(e)
            if not e.table_name or e.fingerprint == DAMAGED:
                self.drop(e.kind, e.table_name, e.column_name)
                continue
            # a table's index: delete its files but keep its row (marked), so builders that rebuild
            # what the manifest lists (n-grams) still know it, with its parameters, and rebuild it
            p = self.root / e.path
            with self.swap_lock():
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                elif p.exists():
                    p.unlink()
            e.fingerprint, e.checksums = DAMAGED, ""
            self.record(e)
        if seen != trusted:
            record_stamp = _record_stamp(self.root / VERIFIED) if defer_record else None
            if record_stamp is not None:  # written once, with what the build checksums (remember_checksummed)
                self._verified_pending = (record_stamp, seen)
            else:  # (no record file: written now, so that a reader voiding it during the build shows)
                self._write_verified(seen)
        if not cold:
            _forget_unseen(str(self.root) + os.sep, seen, checked)
        return bad

    def remember_checksummed(self) -> None:
        """Add to the verification record (when there is one) every file of this index dir that this
        process checksummed while recording it (:meth:`checksums_of` read its bytes after it was written)
        and that still has the stamp it had then: the next integrity pass trusts it as if it had read it
        itself (a build rewrote ``lake.duckdb``, the catalog and a few schema files: ~40 MB at 10,000
        tables the next pass read again). Same rule: any later write changes the ctime."""
        root = str(self.root) + os.sep
        pending, self._verified_pending = self._verified_pending, None
        if pending is not None and _record_stamp(self.root / VERIFIED) != pending[0]:
            pending = None  # the record changed since the integrity pass (a reader voided it): leave it
        mine = sorted(f for f in list(_READ_BACK) if f.startswith(root) and f in _STAMPED)
        if not mine:  # nothing recorded since the integrity pass (a no-op refresh): no record to read
            if pending is not None:
                self._write_verified(pending[1])
            return
        _READ_BACK.difference_update(mine)
        rec = pending[1] if pending is not None else self._load_verified()
        if rec is None:  # no record (a reader voided it): the next pass reads every file
            return
        changed = pending is not None
        for f in mine:
            got = _STAMPED.get(f)  # (a reader's sweep in another thread may have dropped it)
            if got is None:
                continue
            stamp, ck = got
            label = f[len(root):].replace(os.sep, "/")
            new = [*stamp, ck]
            if rec.get(label) == new:
                continue
            try:
                if _stat_stamp(f) != stamp:
                    continue
            except OSError:
                continue
            rec[label] = new
            changed = True
        if changed:
            self._write_verified(rec)

    def _load_verified(self) -> dict[str, list] | None:
        """The verification record (``{file: [size, mtime_ns, ctime_ns, inode, checksum]}``), or None."""
        try:
            with open(self.root / VERIFIED, "rb") as fh:
                st = os.fstat(fh.fileno())
                stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                if self._verified_memo is not None and self._verified_memo[0] == stamp:
                    return self._verified_memo[1]  # the file this store read or wrote (a build reads it
                    # twice: the integrity pass, then remember_checksummed; 1.2 MB at 10,000 tables)
                data = json.loads(inflate(fh.read()))
        except (OSError, ValueError, zlib.error):
            return None
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("files"), dict):
            return None
        self._verified_memo = (stamp, data["files"])
        return data["files"]

    def _write_verified(self, files: dict[str, list]) -> None:
        """Replace the verification record (atomically; a record that cannot be written is left out:
        the next build reads every file)."""
        target = self.root / VERIFIED
        tmp = self._temp_name(target)
        data = zlib.compress(json.dumps({"version": 1, "files": files}, separators=(",", ":"),
                                        sort_keys=True).encode("utf-8", "surrogatepass"), 1)
        self._verified_memo = None
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
            os.replace(tmp, target)
            st = os.stat(target)  # (a rename changes the ctime: stamped after it; builds hold the lock)
            self._verified_memo = ((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino), files)
        except OSError:
            self._verified_memo = None
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                target.unlink()

    def record(self, entry: IndexEntry) -> None:
        """Add or replace the manifest row of ``(kind, table, column)``, with its files' checksums."""
        self.record_many([entry])

    def record_many(self, entries: list[IndexEntry]) -> None:
        """Add or replace several manifest rows with one manifest write (builders of many tables)."""
        if not entries:
            return
        self._check_writable(self.root / MANIFEST)
        entries = [self._stamped(e) for e in entries]
        with self._locked(), self.swap_lock():
            keys = {(e.kind, e.table_name, e.column_name) for e in entries}
            rows = [e for e in self._read_manifest()
                    if (e.kind, e.table_name, e.column_name) not in keys]
            self._write_manifest(rows + list(entries), fresh=entries)
            self._release_kept(entries)

    def drop(self, kind: str, table: str = "", column: str = "", *, delete_files: bool = True) -> None:
        """Remove an index from the manifest (and its files)."""
        with self._locked(), self.swap_lock():
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

    def _write_manifest(self, rows: list[IndexEntry], fresh: list[IndexEntry] = ()) -> None:
        """Write the manifest of ``rows``. ``fresh``: rows given by a caller (checked and copied before
        they are kept as the cache; the other rows come from the cache and are its own copies)."""
        import pyarrow as pa

        rows = sorted(rows, key=_row_key)
        # the fields are scalars: no asdict (its deep copies cost ~0.25 CPU s per write of a 900-row
        # manifest, and a build writes many); a column at a time
        cols: dict[str, list[Any]] = {f: list(map(operator.attrgetter(f), rows))
                                      for f in IndexEntry.__dataclass_fields__}
        schema = pa.schema([
            ("kind", pa.string()), ("table_name", pa.string()), ("column_name", pa.string()),
            ("path", pa.string()), ("bytes", pa.int64()), ("source_bytes", pa.int64()),
            ("fingerprint", pa.string()), ("built_at", pa.timestamp("us", tz="UTC")),
            ("format_version", pa.int32()), ("params", pa.string()), ("checksums", pa.string()),
        ])
        import pyarrow.parquet as pq

        target = self.root / MANIFEST
        self._check_writable(target)
        tmp = self._temp_name(target)
        previous = self._manifest_cache
        with self._write_guard(target):  # the swap lock is held by the caller
            self._manifest_cache = None
            try:
                pq.write_table(pa.table(cols, schema=schema), tmp, compression="zstd")
                _fsync_file(tmp)
                mtime = _manifest_stamp(os.stat(tmp))  # a rename keeps the inode, size and mtime
                os.replace(tmp, target)
                _fsync_dir(self.root)
            finally:
                if tmp.exists():
                    tmp.unlink()
        # what a read of the file just written returns (a build records ~14 times: each re-read of a
        # 10,000-row manifest cost ~0.06 CPU s); rows of other types than a read makes: read it back
        # (rows of the cache this store read or wrote are its own copies already, checked when they went
        # in: only the others are checked and copied; copying 10,000 rows per write was ~0.05 CPU s)
        mine = {id(e) for e in (previous[1] if previous else ())} - {id(e) for e in fresh}
        if all(_as_read(e) for e in rows if id(e) not in mine):
            self._manifest_cache = (mtime, [e if id(e) in mine else copy.copy(e) for e in rows])

    # ----------------------------------------------------------------- reading
    def _read_manifest(self) -> list[IndexEntry]:
        return list(self._cached_entries())

    def _cached_entries(self) -> list[IndexEntry]:
        """The manifest's rows, read again when the file changed (the cached list itself: do not modify)."""
        path = self.root / MANIFEST
        try:
            mtime = _manifest_stamp(path.stat())
        except FileNotFoundError:
            return []
        except OSError as exc:  # a symlink loop, a permission error: damaged, not absent
            raise CorruptIndexError(f"index manifest {str(path)!r} is unreadable ({exc.strerror or exc}): "
                                    "delete it and run 'lakeql index LAKE' again") from None
        if self._manifest_cache and self._manifest_cache[0] == mtime:
            return self._manifest_cache[1]

        try:
            rows = _manifest_rows(parquet_io.read_table(path))
        except Exception as exc:  # noqa: BLE001 - any read failure means a corrupt manifest
            raise CorruptIndexError(
                f"index manifest {str(path)!r} is unreadable ({exc}): delete it and run "
                "'lakeql index LAKE' again") from None
        known = set(IndexEntry.__dataclass_fields__)
        entries = [IndexEntry(**{k: v for k, v in r.items() if k in known}) for r in rows]
        self._manifest_cache = (mtime, entries)
        return entries

    def entries(self, kind: str | None = None) -> list[IndexEntry]:
        """Every manifest row (of one kind)."""
        return [e for e in self._cached_entries() if kind is None or e.kind == kind]

    def find(self, kind: str, table: str = "", column: str = "") -> IndexEntry | None:
        entries = self._cached_entries()  # (re)read when the manifest changed on disk
        if not entries:
            return None
        if self._manifest_index is None or self._manifest_index[0] is not entries:
            # by key, made once per manifest read: a refresh asks for each of 10,000 tables' rows (a scan
            # per lookup was quadratic)
            index: dict[tuple[str, str, str], IndexEntry] = {}
            for e in entries:
                index.setdefault((e.kind, e.table_name, e.column_name), e)
            self._manifest_index = (entries, index)
        return self._manifest_index[1].get((kind, table, column))

    def is_stale(self, entry: IndexEntry) -> bool:
        """True when the table's files changed since the index was built (or the table is gone)."""
        if not entry.table_name or self.lake is None:
            return False
        table = self.lake.tables.get(entry.table_name)
        if table is None:
            return True
        return current_fingerprint(table, self.lake.fs) != entry.fingerprint

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
            how = f"lakeql index LAKE {flag} {shell_word(target)}" if flag else "lakeql index LAKE"
            manifest = self.root / MANIFEST
            if self.root.is_dir() and not manifest.exists() and any(self.root.iterdir()):
                raise NotIndexedError(
                    f"no {kind} index for {target}: the index manifest {str(manifest)!r} is missing "
                    f"(deleted?), so no index of this folder is known: build it with '{how}' (a bare "
                    "'lakeql index --refresh LAKE' rebuilds only the lake-wide indexes)")
            raise NotIndexedError(f"no {kind} index for {target}: build it with '{how}'")
        again = (f"lakeql index --refresh LAKE {flag} {shell_word(target)}" if flag and column
                 else "lakeql index --refresh LAKE")
        if entry.fingerprint == DAMAGED:
            raise CorruptIndexError(
                f"the {kind} index of {target} was damaged and its files removed: run '{again}'")
        fs = getattr(self.lake, "fs", None)
        if table is not None and current_fingerprint(table, fs) != entry.fingerprint:
            raise StaleIndexError(
                f"the {kind} index of {target} is older than the {files_word(table)} of table "
                f"{table.key}: run 'lakeql index --refresh LAKE'")
        if table is not None and table.fingerprint != entry.fingerprint:
            # the index is of the files as they are now, but this connection's view of the table reads the
            # files it found when it opened: the index's rowids would name other rows of that view
            raise StaleIndexError(
                f"the {kind} index of {target} was rebuilt for files of table {table.key} that changed "
                "after this connection was opened (its view still reads the old files): open a new "
                "connection (lakeql.connect) or restart the server")
        p = self.root / entry.path
        if not p.exists():
            raise CorruptIndexError(
                f"the {kind} index of {target} is missing its files ({entry.path}): run '{again}'")
        return entry


# (file, size, mtime_ns, ctime_ns, inode, checksum) checked in this process
_VERIFIED: set[tuple[str, int, int, int, int, str]] = set()
# file -> ((size, mtime_ns, ctime_ns, inode), its file_checksum) as checked or computed in this process
_STAMPED: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_READ_BACK: set[str] = set()  # the files of _STAMPED that checksums_of read (not known to the record yet)


_sweep_at = [100_000]  # the caches' size at which the next _sweep_gone runs (then twice what it kept)


def _record_stamp(path: Path) -> tuple[int, int, int, int] | None:
    """``(size, mtime_ns, ctime_ns, inode)`` of the verification record file, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _forget_unseen(prefix: str, seen: dict[str, list], checked: dict[str, tuple] | None = None) -> None:
    """Drop from the process's checksum caches every file under ``prefix`` (an index dir) that the
    integrity pass did not just find intact with that stamp: a removed file (a dropped table's index, an
    old shard folder of content-named shards) or an older stamp of a rewritten one. They were never
    pruned, so a long-lived process that refreshes kept one entry per file path it ever checked.
    ``checked``: the same files by path (:meth:`Store.damage`), instead of made from ``seen``'s labels."""
    keep = (checked if checked is not None
            else {prefix + label.replace("/", os.sep): tuple(st) for label, st in seen.items()})
    # copies first (list() of a set or dict is atomic): another thread may add entries meanwhile
    _VERIFIED.difference_update([c for c in list(_VERIFIED)
                                 if c[0].startswith(prefix) and keep.get(c[0]) != c[1:]])
    gone = [f for f, (st, ck) in list(_STAMPED.items()) if f.startswith(prefix) and keep.get(f) != (*st, ck)]
    for f in gone:
        _STAMPED.pop(f, None)
    _READ_BACK.difference_update(gone)


def _sweep_gone() -> None:
    """Drop the entries of files whose stamp is no longer the cached one (removed or rewritten), in any
    index dir: readers (an MCP server reopening after every refresh) check files but run no integrity
    pass. Runs when the caches doubled since the last sweep, so it costs a ``stat`` per entry now and
    then."""
    if not _SWEEPING.acquire(blocking=False):  # another thread sweeps (a sweep stats every entry)
        return
    try:
        _sweep_copies()
    finally:
        _SWEEPING.release()


_SWEEPING = threading.Lock()


def _sweep_copies() -> None:
    """:func:`_sweep_gone`'s work, on copies of the caches: its ``stat`` calls let other threads run, and
    those check files (adding entries) while it iterates."""
    now: dict[str, tuple[int, int, int, int] | None] = {}

    def stamp(f: str) -> tuple[int, int, int, int] | None:
        if f not in now:
            try:
                now[f] = _stat_stamp(f)
            except OSError:
                now[f] = None
        return now[f]

    _VERIFIED.difference_update([c for c in list(_VERIFIED) if stamp(c[0]) != c[1:5]])
    gone = [f for f, (st, _) in list(_STAMPED.items()) if stamp(f) != st]
    for f in gone:
        _STAMPED.pop(f, None)
    _READ_BACK.difference_update(gone)
    _sweep_at[0] = max(100_000, 2 * (len(_VERIFIED) + len(_STAMPED)))


def _stat_stamp(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _stamped_checksum(path: Path | str) -> str:
    """:func:`file_checksum` of ``path``, from :data:`_STAMPED` while its stamp is the same (a write,
    truncation, replacement or touch changes the ctime, which no program can set back)."""
    return _stamped_checksum_sized(path)[0]


def _stamped_checksum_sized(path: Path | str) -> tuple[str, int]:
    """:func:`_stamped_checksum` and the file's size (from the same ``stat``)."""
    key = str(path)
    stamp = _stat_stamp(key)
    got = _STAMPED.get(key)
    if got is not None and got[0] == stamp:
        return got[1], stamp[0]
    ck = file_checksum(path)
    if _stat_stamp(key) == stamp:  # not changed while it was read
        _STAMPED[key] = (stamp, ck)
        _READ_BACK.add(key)
    return ck, stamp[0]


def _manifest_stamp(st: os.stat_result) -> tuple[int, int, int]:
    """What tells one manifest file from another: mtime, inode and size. The mtime alone does not: two
    writes within one timestamp tick (coarse timestamps: a jiffy on Linux before 6.13, 1-2 s on HFS+ or
    FAT) have the same one; each write is a new file renamed into place, made while the old one exists,
    so it has another inode."""
    return (st.st_mtime_ns, st.st_ino, st.st_size)


def _row_key(r: IndexEntry) -> tuple[str, str, str]:
    return (r.kind, r.table_name, r.column_name)


def _as_read(e: IndexEntry) -> bool:
    """True when ``e``'s fields are of the types a manifest read makes (so a written row can be cached as
    it is): ``str``, ``int`` and a UTC ``datetime``."""
    return (type(e.kind) is type(e.table_name) is type(e.column_name) is type(e.path) is str
            and type(e.fingerprint) is type(e.params) is type(e.checksums) is str
            and type(e.bytes) is type(e.source_bytes) is type(e.format_version) is int
            and type(e.built_at) is dt.datetime and e.built_at.tzinfo is dt.UTC
            and -(2**63) <= e.bytes < 2**63 and -(2**63) <= e.source_bytes < 2**63
            and -(2**31) <= e.format_version < 2**31)


def _manifest_rows(table: Any) -> list[dict[str, Any]]:
    """The manifest's rows as dicts (``built_at`` a UTC datetime, made without pandas)."""
    return parquet_io.rows(table)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def current_fingerprint(table: Table, fs: Any = None) -> str:
    """Fingerprint of the table's files as they are now (re-lists the table's file or folder;
    ``fs``: the filesystem of a remote lake)."""
    from lakeql.lake import rescan_fingerprint

    return rescan_fingerprint(table, fs)
