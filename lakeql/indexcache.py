"""The one index loader of a connection: existence, staleness, and a memory-bounded cache.

Every capability loads its index files through :meth:`lakeql.connection.LakeContext.load_index`, which
asks the store for the fresh manifest entry (or raises the clear "not built" / "stale" / "missing files"
error naming the fix) and keeps the loaded object here, keyed by ``(kind, table, column, built_at)``: a
rebuilt index is reloaded on next use, an older version of the same index is dropped at once, and the
least recently used objects are evicted when the total size passes the budget (``LAKEQL_CACHE_MB``,
default 2048). The size of an object is its ``nbytes`` attribute when it has one, else the bytes of its
files on disk (memory-mapped indexes cost about that much page cache when hot); a loader's None (nothing
to hold, e.g. an index without the files another way of opening it reads) costs nothing.

A *variant* (kind ``"KIND:NAME"``, e.g. ``embed:ann``: the ANN lists' memory-mapped rows) is another way
of opening the same build's files, cached beside the whole index. One build of an index is cached at a
time across all its variants (a rebuild drops them all, including the whole index loaded before), and
loading the whole index drops its variants of that build (it answers everything they did, and callers
look for it first: :meth:`lakeql.connection.LakeContext.cached_index`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_BUDGET_MB = 2048

Key = tuple[str, str, str, str]


def budget_bytes() -> int:
    raw = os.environ.get("LAKEQL_CACHE_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_BUDGET_MB
    except ValueError:
        mb = DEFAULT_BUDGET_MB
    return max(int(mb * 2**20), 0)


def superseded(old: Key, new: Key) -> bool:
    """Whether loading ``new`` makes the cached ``old`` useless: another build of the same index (any
    variant of it), or a variant of the build ``new`` loads whole."""
    base_old, _, variant_old = old[0].partition(":")
    base_new, _, variant_new = new[0].partition(":")
    if old == new or base_old != base_new or old[1:3] != new[1:3]:
        return False
    return old[3] != new[3] or (bool(variant_old) and not variant_new)


class IndexCache:
    """A thread-safe LRU of loaded indexes bounded by total bytes (one eviction rule for every kind)."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget_bytes() if budget is None else budget
        self._items: OrderedDict[Key, tuple[Any, int]] = OrderedDict()
        self._lock = threading.RLock()
        self._loading: dict[Key, threading.Lock] = {}

    @property
    def total_bytes(self) -> int:
        return sum(n for _, n in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key: Key) -> Any:
        """The cached object of ``key`` (None when not loaded), without loading or reordering."""
        with self._lock:
            hit = self._items.get(key)
            return None if hit is None else hit[0]

    def get_or_load(self, key: Key, load: Callable[[], Any], size_hint: int = 0) -> Any:
        """The cached object of ``key``, or ``load()`` once (concurrent callers wait for one load)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    return hit[0]
            obj = load()
            size = 0 if obj is None else int(getattr(obj, "nbytes", 0) or size_hint or 0)
            with self._lock:
                for old in [k for k in self._items if superseded(k, key)]:
                    del self._items[old]  # another build of the same index, or a variant of this one
                self._items[key] = (obj, size)
                self._evict(keep=key)
                self._loading.pop(key, None)
            return obj

    def _evict(self, keep: Key) -> None:
        while self.total_bytes > self.budget and len(self._items) > 1:
            oldest = next(iter(self._items))
            if oldest == keep:
                self._items.move_to_end(keep)
                oldest = next(iter(self._items))
                if oldest == keep:
                    break
            del self._items[oldest]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
