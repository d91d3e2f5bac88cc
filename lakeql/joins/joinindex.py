"""Load the lake-wide join index once (the per-table hashes read into memory and sorted once; shared
read-only by every thread) and answer overlap queries.

:meth:`JoinIndex.overlaps` is the hot path: the query column's stored hashes are looked up in the
hash-sorted posting array with two vectorized ``searchsorted`` calls, the matching column ids are
gathered and counted with ``bincount``: overlap with every column of the lake, no Python loop per value
or per column. Columns with more than ``HASH_CAP`` distinct values store their bottom ``HASH_CAP``
hashes only (a KMV sample, threshold ``tau`` = their largest stored hash); for a pair of columns, the
hashes both store below ``min(tau_q, tau_c)`` are a uniform sample of the query's values in the shared
hash space, so ``containment = |sampled shared| / |sampled query|`` is unbiased (Beyer et al., "On
synopses for distinct-value estimation", 2007) and exact when neither column is capped.

Nothing here holds a connection or mutable state after loading: safe for any number of threads.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeql import parquet_io
from lakeql.errors import CorruptIndexError

HASH_MAX = (1 << 32) - 1


@dataclass
class Overlaps:
    cols: Any  # int32 candidate col ids
    overlap: Any  # float64 overlap in distinct values (exact, or KMV-estimated for capped columns)
    n_query: int  # distinct values of the query
    containment: Any = None  # float64 share of the query's distinct values found in each candidate


class SemanticIndex:
    """The DeepJoin vectors and their faiss index (``joins/semantic``)."""

    def __init__(self, root: Path, n_columns: int) -> None:
        import faiss
        import numpy as np

        try:
            self.vectors = np.load(root / "vectors.npy", mmap_mode="r")
            self.faiss = faiss.read_index(str(root / "index.faiss"))
        except Exception as exc:  # noqa: BLE001
            raise CorruptIndexError(f"the semantic join index in {str(root)!r} is unreadable "
                                    f"({type(exc).__name__}): run 'lakeql index LAKE' again") from None
        if self.vectors.shape[0] != n_columns:
            raise CorruptIndexError("the semantic join index does not match the join index: "
                                    "run 'lakeql index LAKE' again")
        self.nbytes = int(self.vectors.nbytes) * 2


class JoinIndex:
    """The loaded ``joins/lake`` (plus, through :meth:`with_semantic`, ``joins/semantic``)."""

    def __init__(self, root: Path, semantic_dir: Path | None = None) -> None:
        import numpy as np

        try:
            t = parquet_io.read_table(root / "columns.parquet")
            state = json.loads((root / "tables.json").read_text())
        except Exception as exc:  # noqa: BLE001
            raise CorruptIndexError(f"the join index in {str(root)!r} is unreadable "
                                    f"({type(exc).__name__}): run 'lakeql index LAKE' again") from None
        self.built: dict[str, str] = dict(state.get("tables", {}))  # table -> fingerprint when built
        self.failed: dict[str, dict[str, str]] = dict(state.get("failed", {}))
        self.columns = t
        d = t.select(["table_name", "column_name", "type", "type_class", "note", "case_class", "pattern"]
                     ).to_pydict()
        self.table_name: list[str] = d["table_name"]
        self.column_name: list[str] = d["column_name"]
        self.type: list[str] = d["type"]
        self.type_class: list[str | None] = d["type_class"]
        self.note: list[str | None] = d["note"]
        self.case_class: list[str | None] = d["case_class"]
        self.pattern: list[str | None] = d["pattern"]

        def arr(name: str, dtype: Any) -> Any:
            col = t.column(name).to_numpy(zero_copy_only=False)
            if col.dtype == object:
                col = np.array([0 if v is None else v for v in col])
            return np.nan_to_num(col.astype(dtype))

        self.indexed = arr("indexed", bool)
        self.surrogate = arr("surrogate", bool)
        self.sequence = arr("sequence", bool)
        self.n_distinct = arr("n_distinct", np.int64)
        self.nonnull = arr("nonnull", np.int64)
        self.row_count = arr("row_count", np.int64)
        self.uniqueness = arr("uniqueness", np.float64)
        self.offset = arr("offset", np.int64)
        self.n_hashes = arr("n_hashes", np.int64)
        self.damaged: set[str] = set()  # tables whose profile files no longer match (left out)
        self.bycol = self._read_hashes(root.parents[1], state.get("profiles", {}))
        self.offset = np.r_[0, np.cumsum(self.n_hashes)[:-1]].astype(np.int64) if len(self.n_hashes) \
            else np.zeros(0, np.int64)
        colrep = np.repeat(np.arange(len(self.n_hashes), dtype=np.int32), self.n_hashes)
        order = np.argsort(self.bycol, kind="stable")  # by hash; equal hashes stay in column order
        self.hh = self.bycol[order]
        self.hc = colrep[order]
        del order, colrep
        self.int_min = t.column("int_min").to_numpy(zero_copy_only=False).astype(np.float64)
        self.int_max = t.column("int_max").to_numpy(zero_copy_only=False).astype(np.float64)
        tables = sorted(set(self.table_name))
        tid = {n: i for i, n in enumerate(tables)}
        self.table_id = np.array([tid[n] for n in self.table_name], dtype=np.int32)
        self.by_name = {(tn, cn): i for i, (tn, cn) in enumerate(zip(self.table_name, self.column_name,
                                                                    strict=True))}
        capped = self.indexed & (self.n_hashes < self.n_distinct) & (self.n_hashes > 0)
        self.tau = np.full(len(self.table_name), HASH_MAX, dtype=np.uint32)
        last = self.offset[capped] + self.n_hashes[capped] - 1
        if len(last):
            self.tau[capped] = self.bycol[last]
        self.excluded = np.array([tn in self.damaged for tn in self.table_name], dtype=bool)
        self.nbytes = int(self.bycol.nbytes + self.hh.nbytes + self.hc.nbytes + t.nbytes)
        self.vectors = None
        self.faiss = None
        if semantic_dir is not None:
            sem = SemanticIndex(semantic_dir, len(self.table_name))
            self.vectors, self.faiss = sem.vectors, sem.faiss

    def _read_hashes(self, index_root: Path, profiles: dict[str, str]):
        """Concatenate every table's stored hashes (indexed columns only) in column order. A table whose
        profile no longer matches this index (re-profiled or damaged since) is left out, not fatal."""
        import numpy as np

        from lakeql.joins.lakeindex import READ_THREADS, read_hashes

        spans: list[tuple[str, int, int]] = []
        start = 0
        names = self.table_name
        for i in range(1, len(names) + 1):
            if i == len(names) or names[i] != names[start]:
                spans.append((names[start], start, i))
                start = i

        def one(span: tuple[str, int, int]):
            key, lo, hi = span
            want = self.n_hashes[lo:hi]
            if int(want.sum()) == 0:
                return key, np.empty(0, np.uint32)
            rel = profiles.get(key)
            try:
                if rel is None:
                    raise FileNotFoundError(key)
                ords, hs = read_hashes(index_root / rel)
                keep = self.indexed[lo:hi][ords]
                ords, hs = ords[keep], hs[keep]
                got = np.bincount(ords, minlength=hi - lo)
                if len(got) != hi - lo or not np.array_equal(got, want):
                    raise ValueError("counts differ")
                return key, hs.astype(np.uint32, copy=False)
            except Exception:  # noqa: BLE001 - this table is left out of every answer
                return key, None

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            got = list(pool.map(one, spans))
        parts = []
        for (key, lo, hi), (_, hs) in zip(spans, got, strict=True):
            if hs is None:
                self.damaged.add(key)
                self.n_hashes[lo:hi] = 0
                continue
            parts.append(hs)
        return np.concatenate(parts) if parts else np.empty(0, np.uint32)

    def with_semantic(self, sem: SemanticIndex | None) -> JoinIndex:
        """A shallow view of this index with the semantic vectors attached (the loaded arrays are shared)."""
        if sem is None:
            return self
        view = copy.copy(self)
        view.vectors, view.faiss = sem.vectors, sem.faiss
        return view

    def excluding(self, tables: set[str]) -> JoinIndex:
        """A shallow view whose searches never return columns of ``tables`` (stale since the build)."""
        if not tables:
            return self
        import numpy as np

        view = copy.copy(self)
        view.excluded = np.array([t in tables for t in self.table_name], dtype=bool)
        return view

    def __len__(self) -> int:
        return len(self.table_name)

    def hashes(self, col: int):
        """The sorted distinct hashes of column ``col`` (its bottom ``HASH_CAP`` when capped)."""
        o = int(self.offset[col])
        return self.bycol[o:o + int(self.n_hashes[col])]

    def top(self, col: int) -> tuple[list[str], list[int]]:
        """The column's most frequent raw values and their hashes."""
        return (self.columns.column("top_values")[col].as_py() or [],
                self.columns.column("top_hashes")[col].as_py() or [])

    def overlaps(self, col: int, probe: int | None = None) -> Overlaps:
        """Containment of column ``col`` in every other indexed column (KMV-estimated when capped).

        ``probe``: use only the query's bottom ``probe`` hashes (a smaller KMV sample: cheaper, noisier;
        the join graph uses it to bound the work per column)."""

        q = self.hashes(col)
        n = int(self.n_distinct[col])
        tq = HASH_MAX
        if probe is not None and len(q) > probe:
            q = q[:probe]
            tq = int(q[-1])
        cols, counts = self.postings(q)
        return self._overlaps_of(col, q, tq, n, cols, counts)

    def _overlaps_of(self, col: int, q: Any, tq: int, n: int, cols: Any, counts: Any) -> Overlaps:
        """:meth:`overlaps` from the posting counts (``cols`` sorted) of the probed hashes ``q``."""
        import numpy as np

        keep = (cols != col) & ~self.excluded[cols]
        cols, counts = cols[keep], counts[keep]
        if len(q) == 0 or len(cols) == 0:
            return Overlaps(cols, counts.astype(np.float64), n, np.zeros(len(cols)))
        # sampled query hashes below each candidate's threshold (all of them when neither is capped)
        den = np.searchsorted(q, np.minimum(self.tau[cols], tq), "right").astype(np.float64)
        cont = np.where(den > 0, counts / np.maximum(den, 1), 0.0)
        return Overlaps(cols, cont * n, n, cont)

    def overlaps_many(self, cols: list[int], probe: int | None = None, cells: int = 1 << 22):
        """Yield ``(i, overlaps(cols[i], probe))`` for every position ``i`` of ``cols`` (equal results),
        columns probing the same hashes one after another (not in the order of ``cols``).

        The posting counts of each distinct probe (columns with equal stored hashes, e.g. a table and
        its copy, share one) come from one sparse product per batch, (probes x hashes) @ (hashes x
        columns): the postings are walked in C. The join graph of a 2,427-table lake walks ~3.9 billion
        postings, which :meth:`postings` does in about eight numpy passes per query column. ``cells``
        bounds the dense (probes x columns) count block of a batch (32 MB).
        """
        import numpy as np

        n_cols = len(self.table_id)
        post = self._posting_matrix()
        groups: dict[bytes, list[int]] = {}
        probes: list[tuple[Any, int]] = []
        for i, col in enumerate(cols):
            q = self.hashes(col)
            tq = HASH_MAX
            if probe is not None and len(q) > probe:
                q = q[:probe]
                tq = int(q[-1])
            probes.append((q, tq))
            groups.setdefault(np.asarray(q).tobytes(), []).append(i)
        members = list(groups.values())
        batch = max(1, min(1024, cells // max(n_cols, 1)))
        for b0 in range(0, len(members), batch):
            part = members[b0:b0 + batch]
            qs = [probes[m[0]][0] for m in part]
            dense = self._count_block(post, qs, n_cols)
            for r, idx in enumerate(part):
                row = dense[r] if dense is not None else None
                c = np.flatnonzero(row).astype(np.int32) if row is not None else np.empty(0, np.int32)
                k = row[c].astype(np.int64) if row is not None else np.empty(0, np.int64)
                for i in idx:
                    q, tq = probes[i]
                    yield i, self._overlaps_of(cols[i], q, tq, int(self.n_distinct[cols[i]]), c, k)

    def _count_block(self, post: Any, qs: list[Any], n_cols: int) -> Any:
        """Dense (len(qs) x columns) posting counts of the probes ``qs``, or None without postings."""
        import numpy as np
        import scipy.sparse as sp

        lens = np.array([len(q) for q in qs], dtype=np.int64)
        if post is None or int(lens.sum()) == 0:
            return None
        flat = np.concatenate(qs)
        ids = np.minimum(np.searchsorted(self._uh, flat), len(self._uh) - 1)
        found = self._uh[ids] == flat  # every stored hash is in the postings; kept exact anyway
        qm = sp.csr_matrix((found.astype(np.int64), ids, np.r_[0, np.cumsum(lens)]),
                           shape=(len(qs), post.shape[0]))
        return (qm @ post).toarray()

    def _posting_matrix(self):
        """(distinct hashes x columns) int64 CSR of the postings (a column twice where two of its values
        share a hash, as :meth:`postings` counts them); built once, None when there are no hashes."""
        import numpy as np
        import scipy.sparse as sp

        if getattr(self, "_post", None) is None:
            if len(self.hh) == 0:
                return None
            new = np.r_[True, self.hh[1:] != self.hh[:-1]]
            self._uh = self.hh[new]
            indptr = np.r_[np.flatnonzero(new), len(self.hh)].astype(np.int64)
            self._post = sp.csr_matrix((np.ones(len(self.hh), np.int64), self.hc.astype(np.int32), indptr),
                                       shape=(len(self._uh), len(self.table_id)))
        return self._post

    def postings(self, probe: Any) -> tuple[Any, Any]:
        """(col ids, counts) of every column holding any of the sorted hashes ``probe``; a hash counts for
        a capped column only when it lies below that column's threshold (its stored sample)."""
        import numpy as np

        if len(probe) == 0 or len(self.hh) == 0:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        probe = np.asarray(probe)
        lo = np.searchsorted(self.hh, probe, "left")
        hi = np.searchsorted(self.hh, probe, "right")
        lens = hi - lo
        hit = lens > 0
        lo, lens, hv = lo[hit], lens[hit], probe[hit]
        total = int(lens.sum())
        if total == 0:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        pos = starts + np.arange(total)
        hit_cols = np.asarray(self.hc[pos])
        hit_hash = np.repeat(hv, lens)
        hit_cols = hit_cols[hit_hash <= self.tau[hit_cols]]
        if len(hit_cols) * 8 >= len(self.table_id):
            # many postings: counting into a dense array (O(postings + columns)) beats sorting them
            counts = np.bincount(hit_cols, minlength=len(self.table_id))
            cols = np.flatnonzero(counts)
            return cols.astype(np.int32), counts[cols].astype(np.int64)
        cols, counts = np.unique(hit_cols, return_counts=True)
        return cols.astype(np.int32), counts.astype(np.int64)


def intersect_count(a: Any, b: Any) -> int:
    """Size of the intersection of two sorted unique hash arrays."""
    import numpy as np

    if len(a) == 0 or len(b) == 0:
        return 0
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    small = np.asarray(small)
    pos = np.searchsorted(big, small)
    pos[pos >= len(big)] = len(big) - 1
    return int((np.asarray(big[pos]) == small).sum())
