"""Optional ANN first stage (``--embed-ann``): a binary IVF over the codes, for tables of millions of rows.

Build (:func:`build`, inside the code store's atomic temp folder, so the file appears with the codes or
not at all): the codes' bits as +-1 floats are clustered by k-means (faiss, on a sample of
``TRAIN_PER_LIST`` rows a list, ``NITER`` iterations); every code is assigned to the list whose
binarized centroid is nearest in Hamming distance (faiss ``IndexBinaryFlat``, in chunks). Stored in
``ann.npz``: ``centroids`` (lists, d) float16, ``offsets`` (lists + 1) int64 and ``ids`` (rows) int32 or
int64 code positions grouped by list.

Search (:func:`search`): the lists are ranked by the inner product of their centroid with the query's
rotated residual ``(q - c) R`` (the space the code bits live in; the query stays float, as in the
asymmetric scan), and the rows of the best ``nprobe`` lists go through the usual adaptive search
(:func:`lakeql.vectors.search.search` over a sub-index view). With a pre-filter the probe widens
(doubling ``nprobe``) until at least ``k`` qualifying rows are inside the probed lists, or every list is
probed; a filter leaving few rows (<= ``EXHAUSTIVE_BELOW``) scans exhaustively. So a filtered search
still returns ``k`` rows when ``k`` rows qualify.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeql.errors import CorruptIndexError, LakeqlError

FILE = "ann.npz"
TRAIN_PER_LIST = 32
NITER = 12
ASSIGN_CHUNK = 262_144
MIN_ROWS = 4_096  # below this an ANN stage buys nothing: build() writes no file and search stays exact
DEFAULT_PROBE_FRACTION = 1 / 32  # share of the lists probed by default
EXHAUSTIVE_BELOW = 50_000  # a filter keeping fewer rows is scanned exhaustively (cheaper than probing)
# Out-of-distribution queries: when the best list's centroid is this far from the query (cosine with the
# query's rotated residual below WIDEN_BELOW), its neighbours sit in lists ranked far down, so the probe is
# WIDEN_FACTOR times wider. Chosen on 100 real MiniLM queries over 500k re-sampled rows (recall@10 vs the
# exhaustive search 0.953 -> 0.982 at 2x the mean probe); see benchmarks/results/ann10m.md.
WIDEN_BELOW = 0.40
WIDEN_FACTOR = 8


def default_lists(n: int) -> int:
    """Lists of the IVF for ``n`` rows: about ``sqrt(n)``, a power of two, 16 to 4,096."""
    target = np.sqrt(max(n, 1))
    return int(min(4096, max(16, 2 ** int(round(np.log2(target))))))


def default_nprobe(nlist: int) -> int:
    return max(8, int(round(nlist * DEFAULT_PROBE_FRACTION)))


def _pm1(codes_u8: np.ndarray, dim: int) -> np.ndarray:
    """Packed codes (little-endian bit order, as the binarizers pack) as +-1 float32 rows."""
    bits = np.unpackbits(codes_u8, axis=1, count=dim, bitorder="little")
    return bits.astype(np.float32) * 2 - 1


def build(
    folder: Path, codes_u8: np.ndarray, dim: int, nlist: int | None = None, seed: int = 0
) -> dict[str, Any] | None:
    """Cluster ``codes_u8`` ((n, nbytes) packed codes) and write ``folder/ann.npz``; returns its meta
    (lists, rows) or None when the column is too small for an ANN stage to help."""
    import faiss

    n = int(codes_u8.shape[0])
    if n < MIN_ROWS and not nlist:  # lists named explicitly: built at any size (tests, small columns)
        return None
    nl = int(nlist) if nlist else default_lists(n)
    nl = max(1, min(nl, n // 8))
    rng = np.random.default_rng(seed)
    m = min(n, nl * TRAIN_PER_LIST)
    sample = codes_u8[np.sort(rng.choice(n, m, replace=False))] if m < n else codes_u8
    km = faiss.Kmeans(
        dim,
        nl,
        niter=NITER,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=TRAIN_PER_LIST,
        min_points_per_centroid=1,
    )
    km.train(_pm1(np.ascontiguousarray(sample), dim))
    cent = np.asarray(km.centroids, np.float32)
    binary = faiss.IndexBinaryFlat(codes_u8.shape[1] * 8)
    cbits = np.packbits(cent > 0, axis=1, bitorder="little")
    if cbits.shape[1] != codes_u8.shape[1]:  # dims not a multiple of 8 bits: pad like the codes
        pad = np.zeros((nl, codes_u8.shape[1]), np.uint8)
        pad[:, : cbits.shape[1]] = cbits[:, : codes_u8.shape[1]]
        cbits = pad
    binary.add(cbits)
    assign = np.empty(n, np.int64)
    # One faiss thread: on a loaded machine OpenMP's spinning threads made this 9x slower in wall time
    # (50,000 codes x 4,096 lists: 17.8 s with 2 threads vs 1.9 s with 1, load 7 on 2 cores).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for s in range(0, n, ASSIGN_CHUNK):
            _, a = binary.search(np.ascontiguousarray(codes_u8[s : s + ASSIGN_CHUNK]), 1)
            assign[s : s + ASSIGN_CHUNK] = a[:, 0]
    finally:
        faiss.omp_set_num_threads(threads)
    order = np.argsort(assign, kind="stable")
    counts = np.bincount(assign, minlength=nl)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids = order.astype(np.int32 if n < 2**31 else np.int64)
    with open(folder / FILE, "wb") as fh:
        np.savez(fh, centroids=cent.astype(np.float16), offsets=offsets, ids=ids)
    return {"lists": nl, "rows": n}


@dataclass
class IVF:
    centroids: np.ndarray  # (lists, d) float32
    offsets: np.ndarray  # (lists + 1,) int64
    ids: np.ndarray  # (rows,) code positions grouped by list

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def load(cls, folder: Path, n: int, dim: int, label: str) -> IVF | None:
        """The IVF of a code store (None when it has none); a damaged file is a CorruptIndexError."""
        path = folder / FILE
        if not path.exists():
            return None
        try:
            with np.load(path) as z:
                cent = np.asarray(z["centroids"], np.float32)
                offsets = np.asarray(z["offsets"], np.int64)
                ids = np.asarray(z["ids"])
            nl = cent.shape[0]
            if cent.ndim != 2 or cent.shape[1] != dim or nl < 1:
                raise ValueError(f"centroids have shape {cent.shape}, expected (lists, {dim})")
            if (
                offsets.shape != (nl + 1,)
                or offsets[0] != 0
                or offsets[-1] != n
                or np.any(np.diff(offsets) < 0)
            ):
                raise ValueError("list offsets do not cover the rows")
            if ids.shape != (n,) or ids.dtype.kind != "i" or (n and (ids.min() < 0 or ids.max() >= n)):
                raise ValueError("list ids are not code positions")
            if not np.all(np.isfinite(cent)):
                raise ValueError("centroids hold NaN or infinite values")
        except Exception as exc:  # noqa: BLE001 - any read/shape failure means a corrupt file
            raise CorruptIndexError(
                f"the ANN lists of {label} ({FILE}) are corrupt ({type(exc).__name__}: {exc}): rebuild with "
                f"'lakeql index LAKE --embed {label} --embed-ann', or search with exact := true"
            ) from None
        return cls(cent, offsets, ids)

    def probe_order(self, index, q: np.ndarray) -> np.ndarray:
        """Lists best first for query ``q`` (inner product with the query's rotated residual)."""
        return self.probe(index, q)[0]

    def probe(self, index, q: np.ndarray) -> tuple[np.ndarray, float]:
        """(lists best first, cosine of the best list's centroid with the query's rotated residual)."""
        b = index.binarizer
        c, rot = getattr(b, "centroid", None), getattr(b, "rotation", None)
        from lakeql.vectors import kernels

        q = np.asarray(q, np.float32)
        qr = kernels.vecmat(q - c, rot) if c is not None and rot is not None else q
        sc = kernels.matvec(self.centroids, qr)  # not BLAS: see kernels.matvec
        order = np.argsort(-sc, kind="stable")
        top = int(order[0])
        norm = float(np.linalg.norm(self.centroids[top])) * float(np.linalg.norm(qr))
        return order, float(sc[top]) / norm if norm > 0 else 0.0

    def positions(self, lists: np.ndarray) -> np.ndarray:
        """Sorted code positions of the rows in ``lists``."""
        parts = [self.ids[self.offsets[i] : self.offsets[i + 1]] for i in lists]
        out = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        out.sort()
        return out


class SubIndex:
    """A view of a :class:`~lakeql.vectors.codes.CodeIndex` restricted to some rows: what
    :func:`lakeql.vectors.search.search` reads (words, factors, rowids, score, binarizer). ``pos`` are
    the rows' code positions in the parent; ``words``/``factors`` may be passed already gathered."""

    def __init__(
        self,
        index,
        pos: np.ndarray,
        words: np.ndarray | None = None,
        factors: dict[str, np.ndarray] | None = None,
        rowids: np.ndarray | None = None,
    ) -> None:
        self.parent, self.pos = index, pos
        self.binarizer = index.binarizer
        self.words = index.words[pos] if words is None else words
        self.factors = {k: v[pos] for k, v in index.factors.items()} if factors is None else factors
        self.rowids = index.rowids[pos] if rowids is None else rowids
        self.meta = index.meta

    @property
    def n(self) -> int:
        return int(self.pos.shape[0])

    @property
    def dim(self) -> int:
        return self.parent.dim

    def score(self, positions: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.parent.score(self.pos[np.asarray(positions, np.int64)], q)


class ListOrder:
    """The codes and scan factors of an index copied into list order, once per loaded index: probing a
    list is then a contiguous slice (a random gather of 32,000 rows out of 1M cost 4.6 ms of CPU,
    cache misses; slices cost a copy). Memory: the codes, factors and rowids twice (about 90 bytes a
    row)."""

    def __init__(self, index, ivf: IVF) -> None:
        ids = ivf.ids.astype(np.int64)
        self.ids = ids
        self.words = np.ascontiguousarray(index.words[ids])
        self.factors = {k: np.ascontiguousarray(v[ids]) for k, v in index.factors.items()}
        self.rowids = np.ascontiguousarray(index.rowids[ids])

    @staticmethod
    def spans(ivf: IVF, lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of ``lists`` in list order, adjacent lists merged into one span."""
        lists = np.sort(np.asarray(lists, np.int64))
        if not len(lists):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        brk = np.flatnonzero(np.diff(lists) != 1) + 1
        starts, ends = lists[np.r_[0, brk]], lists[np.r_[brk - 1, len(lists) - 1]] + 1
        return ivf.offsets[starts], ivf.offsets[ends]

    def sub(self, index, ivf: IVF, lists: np.ndarray) -> SubIndex:
        lists = np.sort(np.asarray(lists, np.int64))
        if not len(lists):
            return SubIndex(
                index,
                self.ids[:0],
                self.words[:0],
                {k: v[:0] for k, v in self.factors.items()},
                self.rowids[:0],
            )
        # adjacent lists are one span: fewer, longer copies
        brk = np.flatnonzero(np.diff(lists) != 1) + 1
        starts, ends = lists[np.r_[0, brk]], lists[np.r_[brk - 1, len(lists) - 1]] + 1
        spans = list(zip(ivf.offsets[starts].tolist(), ivf.offsets[ends].tolist(), strict=True))

        def cut(v: np.ndarray) -> np.ndarray:
            return np.concatenate([v[a:b] for a, b in spans])

        factors = {k: cut(v) for k, v in self.factors.items()}
        return SubIndex(index, cut(self.ids), cut(self.words), factors, cut(self.rowids))


def ivf_of(index, label: str) -> IVF | None:
    """The loaded IVF of ``index`` (cached on it), or None when it was built without ``--embed-ann``."""
    if "ann" not in index._pos:
        index._pos["ann"] = IVF.load(index.path, index.n, index.dim, label)
    return index._pos["ann"]


def search(
    index,
    ivf: IVF,
    q: np.ndarray,
    k: int,
    oversample: int = 4,
    allowed: np.ndarray | None = None,
    nprobe: int | None = None,
    stats: dict[str, Any] | None = None,
    adaptive: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (rowids, scores) through the IVF: probe the best ``nprobe`` lists (widened for a filter,
    see the module docstring, and with ``adaptive`` ``WIDEN_FACTOR`` times for a query whose best list
    centroid has cosine below ``WIDEN_BELOW``), then the adaptive two-stage search over their rows."""
    from lakeql.vectors.search import search as exhaustive

    npr = default_nprobe(ivf.nlist) if nprobe is None else int(nprobe)
    if npr <= 0:
        raise LakeqlError(f"nprobe must be a positive integer, got {nprobe}")
    npr = min(npr, ivf.nlist)
    if allowed is not None:
        total = int(np.count_nonzero(allowed))
        if total <= max(EXHAUSTIVE_BELOW, k):
            if stats is not None:
                stats.update(nprobe=0, probed_rows=index.n)
            return exhaustive(index, q, k, oversample, allowed, stats=stats)
    order, best = ivf.probe(index, q)
    widened = adaptive and best < WIDEN_BELOW
    if widened:
        npr = min(ivf.nlist, npr * WIDEN_FACTOR)
    if "ann_order" not in index._pos:
        index._pos["ann_order"] = ListOrder(index, ivf)
    lo = index._pos["ann_order"]
    while True:
        starts, ends = lo.spans(ivf, order[:npr])
        if allowed is None:
            found = int((ends - starts).sum())
        else:
            found = sum(
                int(np.count_nonzero(allowed[lo.ids[a:b]])) for a, b in zip(starts, ends, strict=True)
            )
        if found >= k or npr >= ivf.nlist:
            break
        npr = min(ivf.nlist, npr * 2)
    if stats is not None:
        stats.update(
            nprobe=int(npr), probed_rows=int((ends - starts).sum()), best_list_cos=best, widened=widened
        )
    binz = index.binarizer
    if getattr(binz, "bounded", False) and "errc" in lo.factors and binz.query_bits == 4:
        # the probed lists are contiguous spans of the list-order copy: scanned in place, no sub-index cut
        def scan(kk: int, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows, ub, est = binz.candidates(
                q,
                lo.words,
                lo.factors,
                kk,
                allowed,
                cap,
                spans=(starts, ends),
                mask_ids=None if allowed is None else lo.ids,
            )
            return lo.ids[rows], ub, est

        return exhaustive(index, q, k, oversample, allowed, stats=stats, scan=scan)
    sub = lo.sub(index, ivf, order[:npr])
    return exhaustive(sub, q, k, oversample, None if allowed is None else allowed[sub.pos], stats=stats)
