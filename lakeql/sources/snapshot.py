"""One build's view of a lake on object storage: the listing, and each object's bytes fetched once.

Without it, every reader asks the store again: a DuckDB scan through fsspec costs ``info`` (HEAD),
``modified`` (HEAD) and ``open`` (HEAD + GET) per object and per scan, and an index build scans each table
several times (column profiles, value sketches, hints): 2,600 tiny objects took ~10 minutes, nearly all
of it HEAD requests (benchmarks/results/s3scale.md). While ``lakeql index`` runs on a remote lake
(:func:`lakeql.sources.remote.builder_connections`), a :class:`Snapshot` answers instead:

* sizes and times come from the one paginated listing discovery made (no HEAD per object);
* the objects the build reads are fetched up front, concurrently (at most :func:`concurrency` requests
  in flight, ``LAKEQL_S3_CONCURRENCY``, default 16): small objects whole (up to ``LAKEQL_S3_WHOLE_MB``,
  default 8 MB each), bigger ones their footer (the last 64 KiB), ``LAKEQL_S3_CACHE_MB`` in all (default
  512 MB, footers included; beyond it objects are read from the store); every later read of them (the
  catalog's footers, every builder's DuckDB scan) is served from memory, so one fetch feeds every profile;
* an object that cannot be fetched (gone, access denied, rewritten since the listing: each GET asks for
  the listed ETag) is left to the reader, which fails on it as before and names it: its table is left
  out with a warning, the rest of the lake is indexed;
* a store that fails past the retries (``LAKEQL_S3_RETRIES``, ``LAKEQL_S3_TIMEOUT``: unreachable,
  throttling, 5xx, no answer, bodies cut short) stops the build with one
  :class:`lakeql.errors.RemoteStoreError` naming the object and the setting, before anything is written.

The snapshot lives as long as the build: a connection opened later reads the store again.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FOOTER_BYTES = 64 * 1024
MAX_CONCURRENCY = 256


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        from lakeql.errors import LakeqlError

        raise LakeqlError(f"{name}={text!r} is not a number: set it to e.g. {default:g}") from None
    if not math.isfinite(value) or value < 0:
        from lakeql.errors import LakeqlError

        raise LakeqlError(f"{name}={text!r} is not a finite number >= 0: set it to e.g. {default:g}")
    return value


def concurrency() -> int:
    """Requests in flight when objects are fetched (``LAKEQL_S3_CONCURRENCY``, default 16, 1 to
    :data:`MAX_CONCURRENCY`: each request in flight is a thread)."""
    return min(MAX_CONCURRENCY, max(1, int(_env_number("LAKEQL_S3_CONCURRENCY", 16))))


def whole_bytes() -> int:
    """Objects up to this size are fetched whole (``LAKEQL_S3_WHOLE_MB``, default 8)."""
    return int(_env_number("LAKEQL_S3_WHOLE_MB", 8) * 1e6)


def cache_bytes() -> int:
    """At most this many bytes of objects are held (``LAKEQL_S3_CACHE_MB``, default 512)."""
    return int(_env_number("LAKEQL_S3_CACHE_MB", 512) * 1e6)


def request_timeout() -> float:
    """Seconds a request to the store may take to connect, and to answer each read, before it is retried
    (``LAKEQL_S3_TIMEOUT``, default 30)."""
    return max(0.1, _env_number("LAKEQL_S3_TIMEOUT", 30))


def request_retries() -> int:
    """Attempts per request (``LAKEQL_S3_RETRIES``, default 5, 1 to 20): throttling (503 SlowDown), 5xx
    answers, timeouts, dropped connections and bodies cut short are retried with exponential backoff."""
    return min(20, max(1, int(_env_number("LAKEQL_S3_RETRIES", 5))))


class Snapshot:
    """The listing of a remote lake (``listing``: FileStamps relative to ``root``) and a cache of its
    objects' bytes, keyed by filesystem path (``bucket/key``)."""

    def __init__(
        self, fs: Any, root: str, listing: Iterable[Any], whole: int | None = None, budget: int | None = None
    ) -> None:
        from lakeql.sources.remote import fs_path

        self.whole = whole_bytes() if whole is None else whole
        self.budget = cache_bytes() if budget is None else budget
        self._folders: set[str] = set()
        self._folder_lock = threading.Lock()

        self.fs = fs
        self.root = str(root)
        self.listing = list(listing)
        self.stamps = {fs_path(self.root, f.path): f for f in self.listing}
        self.blobs: dict[str, bytes] = {}  # whole objects
        self.tails: dict[str, bytes] = {}  # the last bytes of bigger objects
        self.held = 0
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        # the first store failure (RemoteStoreError) met by a read through this snapshot: DuckDB turns a
        # reader's exception into its own IOException, so the build asks here whether the store failed
        self.failure: Exception | None = None

    # ------------------------------------------------------------- what the listing says
    def stamp(self, path: str) -> Any | None:
        return self.stamps.get(path)

    def below(self, sub: str) -> list[Any]:
        """The listing's files at or below ``sub`` (relative to the root): what a new listing of that
        prefix answered when the lake was discovered."""
        if not sub:
            return list(self.listing)
        return [f for f in self.listing if f.path == sub or f.path.startswith(sub.rstrip("/") + "/")]

    # ------------------------------------------------------------- fetching
    def prefetch(self, paths: Iterable[str], workers: int | None = None) -> None:
        """Fetch ``paths`` (filesystem paths of listed objects) not held yet: whole when small and the
        budget allows, else their footer; at most ``workers`` requests in flight. Failures of one object
        are left to the reader (it fails on the object as it would have, and names it); a failing store
        raises :class:`lakeql.errors.RemoteStoreError` once every request ended."""
        budget, whole = self.budget, self.whole
        todo: list[tuple[str, int, bool]] = []
        planned = self.held
        for p in dict.fromkeys(paths):
            st = self.stamps.get(p)
            if st is None or p in self.blobs or p in self.tails:
                continue
            size = int(st.size)
            if size <= whole and planned + size <= budget:
                todo.append((p, size, True))
                planned += size
            elif size > 0 and planned + min(size, FOOTER_BYTES) <= budget:  # footers count too
                todo.append((p, size, False))
                planned += min(size, FOOTER_BYTES)
        if not todo:
            return
        n = min(workers or concurrency(), len(todo))
        if n <= 1:
            fatal = [f for f in map(self._fetch, todo) if f is not None]
        else:
            with ThreadPoolExecutor(n, thread_name_prefix="lakeql-s3") as pool:
                fatal = [f for f in pool.map(self._fetch, todo) if f is not None]
        if fatal:  # the store itself failed (past the retries): stop before anything is written
            raise fatal[0]

    def adopt(self, old: Snapshot) -> None:
        """Take over ``old``'s fetched bytes of objects listed again with the same size and time, and
        its folders already fetched (a re-listing must not fetch them all again)."""
        with old._lock:
            for store, mine in ((old.blobs, self.blobs), (old.tails, self.tails)):
                for p, data in store.items():
                    st, was = self.stamps.get(p), old.stamps.get(p)
                    if (
                        st is not None
                        and was is not None
                        and (st.size, st.mtime_ns, st.etag) == (was.size, was.mtime_ns, was.etag)
                    ):
                        mine[p] = data
                        self.held += len(data)
            self._folders |= old._folders

    def prefetch_folder(self, path: str) -> None:
        """Before the first read of an object in a folder: fetch every listed object directly in that
        folder (once per folder; concurrent callers wait for it)."""
        folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        if folder in self._folders:
            return
        with self._folder_lock:
            if folder in self._folders:
                return
            n = len(folder)
            self.prefetch([p for p in self.stamps if p.startswith(folder) and "/" not in p[n:]])
            self._folders.add(folder)

    def _fetch(self, item: tuple[str, int, bool]) -> Exception | None:
        """Fetch one object (or its footer); the error to stop the build with when the store failed."""
        from lakeql.errors import LakeqlError
        from lakeql.sources.remote import error_kind, store_error

        path, size, is_whole = item
        start = 0 if is_whole else max(0, size - FOOTER_BYTES)
        st = self.stamps.get(path)
        try:
            data = read_range(
                self.fs,
                path,
                start,
                size,
                st.etag if st is not None else "",
                (size, int(st.mtime_ns or 0)) if st is not None else None,
            )
        except Exception as exc:  # noqa: BLE001 - gone, denied, changed: the reader names it
            kind = error_kind(exc)
            with self._lock:
                self.stats["changed" if kind == "changed" else "failed"] += 1
            err = store_error(exc, f"cannot read s3://{path}")
            return err if isinstance(err, LakeqlError) else None
        if len(data) != size - start:  # changed since the listing: let the reader see what is there
            with self._lock:
                self.stats["changed"] += 1
            return None
        with self._lock:
            (self.blobs if is_whole else self.tails)[path] = data
            self.held += len(data)
            self.stats["whole" if is_whole else "footer"] += 1
            self.stats["bytes"] += len(data)
        return None

    # ------------------------------------------------------------- reading
    def open(self, path: str):
        """A seekable binary file of ``path``: from memory when held, else read from the store (with the
        listed size, its footer from memory when held)."""
        blob = self.blobs.get(path)
        if blob is not None:
            return io.BytesIO(blob)
        st = self.stamps.get(path)
        if st is None:
            return None
        f = TailFile(self.fs, path, int(st.size), self.tails.get(path, b""), int(st.mtime_ns or 0), st.etag)
        f.on_store_failure = self._note_failure
        return f

    def _note_failure(self, exc: Exception) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = exc


def read_range(
    fs: Any, path: str, start: int, end: int, etag: str = "", listed: tuple[int, int] | None = None
) -> bytes:
    """Bytes ``[start, end)`` of object ``path`` (one ranged GET with botocore when the filesystem is
    lakeql's S3 one and botocore is installed, else through the pyarrow filesystem); with ``etag``, of
    that version only (another one: ``PreconditionFailed``); ``listed``: its (size, time in ns)."""
    from lakeql.sources.remote import direct_get

    got = direct_get(fs, path, start, end, 0, etag, listed)
    if got is not None:
        return got
    with fs.open_input_file(path) as f:
        return f.read_at(end - start, start)


class TailFile(io.RawIOBase):
    """A read-only file of known ``size`` whose last bytes (``tail``) are in memory: reads inside the tail
    cost nothing, others open the object once (lazily) and read the range."""

    def __init__(
        self, fs: Any, path: str, size: int, tail: bytes = b"", mtime_ns: int = 0, etag: str = ""
    ) -> None:
        super().__init__()
        self.fs, self.path, self.size_, self.tail = fs, path, size, tail
        self.mtime_ns = mtime_ns  # the listed time: a read of a version written since fails
        self.etag = etag  # the listed ETag, likewise (exact: times are whole seconds)
        self.on_store_failure: Any = None  # called with a RemoteStoreError before it is raised
        self.tail_start = size - len(tail)
        self.pos = 0
        self._f = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self.size_

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size_}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size_ if n is None or n < 0 else min(self.size_, self.pos + n)
        if end <= self.pos:
            return b""
        if self.pos >= self.tail_start and self.tail:
            data = self.tail[self.pos - self.tail_start : end - self.tail_start]
        else:
            data = self._read(self.pos, end)
        self.pos += len(data)
        return data

    def _read(self, start: int, end: int) -> bytes:
        if self._f is None:
            from lakeql.sources.remote import direct_get

            try:  # one GET, no HEAD; only of the version listed (its footer may be held: never mix two)
                got = direct_get(
                    self.fs, self.path, start, end, self.mtime_ns, self.etag, (self.size_, self.mtime_ns)
                )
            except Exception as exc:  # noqa: BLE001 - botocore's errors, as the file errors readers expect
                err = _as_os_error(exc, self.path, self.fs)
                if self.on_store_failure is not None and not isinstance(err, OSError):
                    self.on_store_failure(err)
                raise err from None
            if got is not None:
                return got
            try:
                self._f = self.fs.open_input_file(self.path)
            except OSError as exc:
                raise self._store_failed(exc) from None
            if self._f.size() != self.size_:
                raise _changed(self.path, self.fs)
        try:
            return self._f.read_at(end - start, start)
        except OSError as exc:
            raise self._store_failed(exc) from None

    def _store_failed(self, exc: OSError) -> Exception:
        """A read error of pyarrow's filesystem (no botocore): the store's failure (recorded for the build,
        which stops with it), or ``exc`` itself (this object is gone, denied, unreadable)."""
        from lakeql.errors import LakeqlError
        from lakeql.sources.remote import store_error

        err = store_error(exc, f"cannot read s3://{self.path}")
        if not isinstance(err, LakeqlError):
            return exc
        if self.on_store_failure is not None:
            self.on_store_failure(err)
        return err

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        super().close()


class ObjectChanged(OSError):
    """An object read at a version other than the one listed (rewritten since the lake was listed)."""


def _changed(path: str, fs: Any = None) -> OSError:
    """The error of a read of an object written since the lake was listed (the listing is dropped: the
    next query lists the lake again and reads the new version)."""
    if fs is not None:
        from lakeql.sources.remote import forget_listing

        forget_listing(fs)
    return ObjectChanged(
        f"s3://{path} changed since the lake was listed (it was rewritten while being read, or within "
        "LAKEQL_S3_LISTING_TTL seconds of the listing): run the query again to read the new version, "
        "'lakeql index LAKE --refresh' to index it"
    )


def _as_os_error(exc: BaseException, path: str, fs: Any = None) -> Exception:
    """A botocore error as the ``OSError`` a file read raises, or the :class:`lakeql.errors.RemoteStoreError`
    of a store that failed (unreachable, throttled or erroring past the retries, timed out, a body cut
    short): never with credentials (botocore's messages name the operation and the error code only)."""
    from lakeql.sources.remote import error_kind, store_error

    kind = error_kind(exc)
    if kind == "changed":
        return _changed(path, fs)
    if kind == "gone":
        return FileNotFoundError(f"s3://{path} is gone (deleted since the lake was listed?)")
    if kind == "denied":
        return PermissionError(f"access denied to s3://{path}: check the credentials' read permission")
    return store_error(exc, f"cannot read s3://{path}")


_ACTIVE: dict[int, Snapshot] = {}


def active(fs: Any) -> Snapshot | None:
    """The snapshot of the build now running on filesystem ``fs``, if any."""
    snap = _ACTIVE.get(id(fs))
    return snap if snap is not None and snap.fs is fs else None


def activate(snap: Snapshot) -> None:
    _ACTIVE[id(snap.fs)] = snap


def store_failure(fs: Any) -> Exception | None:
    """The store failure (:class:`lakeql.errors.RemoteStoreError`) that a read of the build now running on
    ``fs`` met, if any: the build stops with it instead of leaving a table out."""
    snap = active(fs)
    return snap.failure if snap is not None else None


def deactivate(snap: Snapshot) -> None:
    if _ACTIVE.get(id(snap.fs)) is snap:
        del _ACTIVE[id(snap.fs)]
