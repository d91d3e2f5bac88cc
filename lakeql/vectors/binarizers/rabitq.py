"""``rabitq``: centre, random orthogonal rotation, sign bits, per-row corrections, asymmetric estimator.

Following RaBitQ (Gao & Long, SIGMOD 2024), for a row ``x`` with centroid ``c``::

    r = x - c,  rho = |r|,  o = r / rho,  o' = o R            (R: random orthogonal, stored)
    code = sign bits of o',  xbar = (2 code - 1) / sqrt(d),   alpha = <xbar, o'> = sum|o'| / sqrt(d)

and for a float query ``q`` (never binarized: the asymmetric estimator, as in QJL), centred like the rows,
``q' = (q - c) R``::

    <x, q> = <c, q> + <r, c> + rho <o, q - c>  ~  <c, q> + <r, c> + (rho / alpha) <xbar, q'>

``<r, c>`` is exact and stored per row; ``<xbar, q'> / alpha`` is RaBitQ's estimator of ``<o, q - c>``
(unbiased for a random ``R``), whose error scales with ``|q - c|`` rather than ``|q|``. The scan
quantizes ``q'`` to ``query_bits`` bits per dimension and computes ``<xbar, q'>`` with popcounts over
bit planes
(:func:`lakeql.vectors.kernels.asym_topk`). Stored per row: ``factor = rho / (alpha sqrt(d))`` and
``add = <r, c>``.

The rotation (``rotation='itq'``, the default) starts random and is then refined on the column by
iterative quantization (ITQ, Gong & Lazebnik 2011): alternately take the sign bits and solve the
orthogonal Procrustes problem, which maximizes ``alpha`` (how well each code aligns with its vector).
Larger ``alpha`` means a smaller estimator variance: measured on DBpedia/MS MARCO MiniLM embeddings
(500 held-out documents as queries) it lifts recall@10 at 4x oversampling from 0.975/0.982 (random ``R``)
to 0.991/0.991 with 100 iterations (benchmarks/results/vectors.md).
``rotation='random'`` keeps the plain, provably unbiased RaBitQ rotation; it is also used for columns
of fewer than ``ITQ_MIN_ROWS`` rows, where storing a fitted rotation would cost more than the codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lakeql.vectors import fullscan, kernels
from lakeql.vectors.binarizers.base import Binarizer, pack


def itq_rotation(o: np.ndarray, rotation: np.ndarray, iters: int) -> np.ndarray:
    """Refine ``rotation`` for unit residuals ``o`` by ITQ: R <- Procrustes(o, sign(o R)), ``iters`` times.

    BLAS runs single-threaded here: on a shared 2-core machine the threaded 384 x 384 SVDs were measured
    6x slower than one thread (4.4 s vs 0.7 s for 20 iterations). The products run in float32: 100
    iterations over 20,000 residuals took 41 CPU s in float64 and 25 s in float32 for the same objective
    (mean sum |o R| 17.030 vs 17.028 on real MiniLM vectors).
    """
    import contextlib

    try:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with sentence-transformers' deps
        limit = contextlib.nullcontext()
    with limit:
        v = np.asarray(o, np.float32)
        r = np.asarray(rotation, np.float32)
        for _ in range(iters):
            b = np.where(v @ r >= 0, np.float32(1.0), np.float32(-1.0))
            u, _, wt = np.linalg.svd(v.T @ b)
            r = u @ wt
    return r.astype(np.float32)


def random_rotation(dim: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    import contextlib

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    try:  # one BLAS thread: the same matrix in every process (a build, its refresh, a query) whatever the
        from threadpoolctl import threadpool_limits  # thread count; a 384 x 384 QR takes milliseconds

        limit = threadpool_limits(1)
    except ImportError:
        limit = contextlib.nullcontext()
    with limit:
        qm, rm = np.linalg.qr(a)
    return (qm * np.sign(np.diag(rm))).astype(np.float32)


#: below this many rows the rotation stays random (rebuilt from the seed, nothing stored): a stored
#: 384 x 384 float16 ITQ rotation costs 295 KB, 6 bytes a row at 50,000 rows but 147 at 2,000, and the
#: adaptive rescoring (:mod:`lakeql.vectors.search`) makes up for the random rotation's weaker codes.
ITQ_MIN_ROWS = 50_000


class RaBitQBinarizer(Binarizer):
    method = "rabitq"
    scan = "asym"

    def __init__(
        self,
        dim: int,
        centroid: np.ndarray | None = None,
        rotation: np.ndarray | None = None,
        seed: int = 0,
        query_bits: int = 4,
        rotation_kind: str = "itq",
        itq_iters: int = 100,
        itq_sample: int = 20_000,
        itq_min_rows: int = ITQ_MIN_ROWS,
    ) -> None:
        super().__init__(dim)
        self.seed = int(seed)
        self.query_bits = int(query_bits)
        self.rotation_kind = rotation_kind
        self.itq_iters = int(itq_iters)
        self.itq_sample = int(itq_sample)
        self.itq_min_rows = int(itq_min_rows)
        self.centroid = np.zeros(dim, np.float32) if centroid is None else np.asarray(centroid, np.float32)
        self.rotation = random_rotation(dim, seed) if rotation is None else np.asarray(rotation, np.float32)

    def fit(self, x: np.ndarray) -> RaBitQBinarizer:
        if len(x):
            x = np.asarray(x, np.float32)
            self.centroid = x.mean(axis=0).astype(np.float32)
            if self.rotation_kind == "itq" and len(x) < self.itq_min_rows:
                self.rotation_kind = "random"  # regenerated from the seed: no d x d matrix to store
            if self.rotation_kind == "itq" and self.itq_iters > 0 and len(x) > 1:
                sample = (
                    x
                    if len(x) <= self.itq_sample
                    else x[np.random.default_rng(self.seed).choice(len(x), self.itq_sample, replace=False)]
                )
                r = sample - self.centroid
                o = r / np.maximum(np.linalg.norm(r, axis=1), 1e-12)[:, None]
                rot = itq_rotation(o, random_rotation(self.dim, self.seed), self.itq_iters)
                self.rotation = rot.astype(np.float16).astype(np.float32)  # stored as float16, used as stored
        return self

    def _rotated_residual(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(x, np.float32) - self.centroid
        rho = np.linalg.norm(r, axis=1)
        o = r / np.maximum(rho, 1e-12)[:, None]
        return o @ self.rotation, rho

    def bits(self, x: np.ndarray) -> np.ndarray:
        return self._rotated_residual(x)[0] > 0

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        o_rot, rho = self._rotated_residual(x)
        alpha = np.abs(o_rot).sum(axis=1) / np.sqrt(self.dim)  # <xbar, o'>
        factor = rho / (np.maximum(alpha, 1e-12) * np.sqrt(self.dim))
        add = (np.asarray(x, np.float32) - self.centroid) @ self.centroid
        return pack(o_rot > 0), {"factor": factor.astype(np.float32), "add": add.astype(np.float32)}

    # -------------------------------------------------------------- asymmetric scan
    def rotated(self, q: np.ndarray) -> np.ndarray:
        """The query's rotated residual ``(q - c) R`` (float32): what the scan quantizes and the ANN lists
        are ranked by; computed once per query and passed to both (``rotated=``)."""
        q = np.asarray(q, np.float32).reshape(-1)
        # one-thread product (kernels.vecmat): BLAS woke its threads for this 384 x 384 product per query
        return kernels.vecmat(q - self.centroid, self.rotation)

    def _query(self, q: np.ndarray, rotated: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        q = np.asarray(q, np.float32).reshape(-1)
        r = self.rotated(q) if rotated is None else rotated
        return float(q @ self.centroid), r.astype(np.float64)

    def _planes(self, qr: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Quantize ``q'`` to ``query_bits`` levels and split the levels into packed bit planes."""
        lo, hi = float(qr.min()), float(qr.max())
        levels = (1 << self.query_bits) - 1
        delta = (hi - lo) / levels if hi > lo else 1.0
        u = np.clip(np.rint((qr - lo) / delta), 0, levels).astype(np.int64)
        planes = np.stack([pack(((u >> b) & 1).astype(bool)) for b in range(self.query_bits)])
        return kernels.as_words(planes), lo, delta

    def topk(
        self,
        q: np.ndarray,
        words: np.ndarray,
        factors: dict[str, np.ndarray],
        k: int,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        base, qr = self._query(q)
        planes, lo, delta = self._planes(qr)
        mask = kernels.NO_MASK if allowed is None else allowed
        args = (
            factors["factor"],
            factors["add"],
            base,
            float(qr.sum()),
            lo,
            delta,
            factors["popc"],
            int(k),
            mask,
        )
        if planes.shape[0] == 4:
            rows, est = kernels.asym4_topk(words, planes[0], planes[1], planes[2], planes[3], *args)
        else:
            rows, est = kernels.asym_topk(words, planes, *args)
        keep = rows >= 0
        return rows[keep], est[keep]

    # -------------------------------------------------------------- error bound (adaptive rescoring)
    bounded = True
    #: RaBitQ's confidence factor epsilon_0 (the paper's 1.9: the bound fails with tiny probability)
    EPS0 = 1.9

    def error_coefficients(self, factors: dict[str, np.ndarray]) -> np.ndarray:
        """Per-row ``rho sqrt(1 - alpha^2) / (alpha sqrt(d - 1))`` from the stored factors (nothing stored).

        Rows are unit vectors, so ``rho^2 = |x - c|^2 = 1 - |c|^2 - 2 <r, c>`` (``add = <r, c>``), and
        ``alpha = rho / (factor sqrt(d))``. The RaBitQ estimate of ``<x, q>`` is then within
        ``EPS0 * |q - c| * coefficient`` of the truth with high probability (Gao & Long, Theorem 3.2).
        """
        c2 = float(self.centroid.astype(np.float64) @ self.centroid)
        add = np.asarray(factors["add"], np.float64)
        fac = np.asarray(factors["factor"], np.float64)
        rho = np.sqrt(np.clip(1.0 - c2 - 2.0 * add, 0.0, None))
        alpha = np.clip(rho / np.maximum(fac * np.sqrt(self.dim), 1e-12), 1e-6, 1.0)
        return rho * np.sqrt(1.0 - alpha**2) / alpha / np.sqrt(max(self.dim - 1, 1))

    def candidates(
        self,
        q: np.ndarray,
        words: np.ndarray,
        factors: dict[str, np.ndarray],
        k: int,
        allowed: np.ndarray | None,
        cap: int,
        spans: tuple[np.ndarray, np.ndarray] | None = None,
        mask_ids: np.ndarray | None = None,
        blocked: fullscan.FullLayout | kernels.BlockedCodes | None = None,
        rotated: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, upper bounds, estimates) of every row that may be in the true top ``k``
        (:func:`lakeql.vectors.kernels.asym4_bounded_spans`); needs a 4-bit query. ``spans``: (starts,
        ends) of the only rows scanned (default: all); ``mask_ids``: where row ``i`` reads ``allowed``;
        ``blocked``: the codes' :func:`~lakeql.vectors.fullscan.full_layout` (or the older
        :func:`~lakeql.vectors.kernels.blocked_inputs`) layout, scanned instead
        when every row is (no ``spans``, no ``mask_ids``), or with ``spans`` a
        :func:`~lakeql.vectors.kernels.blocked_codes` layout of ``words`` (the ANN stage's list order,
        :func:`~lakeql.vectors.kernels.asym4_bounded_blocked_spans`): the same result, faster.
        ``rotated``: the query's :meth:`rotated` residual, if already computed."""
        base, qr = self._query(q, rotated)
        planes, lo, delta = self._planes(qr)
        levels = (1 << self.query_bits) - 1
        qerr = qr - (lo + delta * np.clip(np.rint((qr - lo) / delta), 0, levels))
        mask = kernels.NO_MASK if allowed is None else allowed
        spans_all = spans is None
        if spans is None:
            spans = (np.zeros(1, np.int64), np.full(1, len(words), np.int64))
        ids = np.zeros(0, np.int64) if mask_ids is None else mask_ids
        err_a = self.EPS0 * float(np.linalg.norm(qr))
        err_b = self.EPS0 * np.sqrt(2.0) * float(np.linalg.norm(qerr))
        total = float(qr.sum())
        if blocked is not None:
            slack = kernels.bounded_slack(blocked.bound, self.dim, levels, lo, delta, total, err_a, err_b)
        if blocked is not None and mask_ids is None and spans_all:
            n, bs = len(words), blocked.codes.shape[2]
            if blocked.f64.shape[0] != n or blocked.codes.shape[0] != -(-n // bs):
                raise ValueError(
                    f"the exhaustive scan's layout holds {blocked.f64.shape[0]} rows, the codes "
                    f"{n}: a stale copy; rebuild it from these codes (CodeIndex.blocked)"
                )
            full = blocked.f32.shape[1] == len(fullscan.FACTOR_ROWS)  # fullscan.FullLayout: popcounts stored
            return (fullscan.asym4_bounded_full if full else kernels.asym4_bounded_blocked)(
                blocked.codes,
                blocked.f32,
                blocked.f64,
                slack,
                len(words),
                planes[0],
                planes[1],
                planes[2],
                planes[3],
                base,
                total,
                lo,
                delta,
                err_a,
                err_b,
                int(k),
                mask,
                int(cap),
            )
        if blocked is not None and not spans_all:  # the same rows' blocked layout (ANN list order)
            return kernels.asym4_bounded_blocked_spans(
                blocked.codes,
                blocked.f32,
                factors["add"],
                factors["factor"],
                factors["popc"],
                factors["errc"],
                slack,
                len(words),
                planes[0],
                planes[1],
                planes[2],
                planes[3],
                base,
                total,
                lo,
                delta,
                err_a,
                err_b,
                int(k),
                mask,
                int(cap),
                spans[0],
                spans[1],
                ids,
            )
        return kernels.asym4_bounded_spans(
            words,
            planes[0],
            planes[1],
            planes[2],
            planes[3],
            factors["factor"],
            factors["add"],
            base,
            total,
            lo,
            delta,
            factors["popc"],
            factors["errc"],
            err_a,
            err_b,
            int(k),
            mask,
            int(cap),
            spans[0],
            spans[1],
            ids,
        )

    def estimate(self, q: np.ndarray, words: np.ndarray, factors: dict[str, np.ndarray]) -> np.ndarray:
        base, qr = self._query(q)
        planes, lo, delta = self._planes(qr)
        s = kernels.asym_all(words, planes)
        return (
            base + factors["add"] + factors["factor"] * (2.0 * (lo * factors["popc"] + delta * s) - qr.sum())
        )

    def estimate_exact(self, q: np.ndarray, codes: np.ndarray, factors: dict[str, np.ndarray]) -> np.ndarray:
        """The estimator with an unquantized query (reference for tests)."""
        from lakeql.vectors.binarizers.base import unpack

        base, qr = self._query(q)
        xbar = unpack(codes, self.dim).astype(np.float64) * 2 - 1  # times sqrt(d) folded into factor
        return base + factors["add"] + factors["factor"] * (xbar @ qr)

    # -------------------------------------------------------------- persistence
    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "seed": self.seed,
            "query_bits": self.query_bits,
            "rotation": self.rotation_kind,
            "itq_iters": self.itq_iters,
            "itq_sample": self.itq_sample,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        if self.rotation_kind == "random":  # rebuilt from the seed on load
            return {"centroid": self.centroid}
        return {"centroid": self.centroid, "rotation": self.rotation.astype(np.float16)}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> RaBitQBinarizer:
        rotation = arrays.get("rotation")
        dim = int(params["dim"])
        # the query's rotated residual (numba loops, no bounds checks) and the rescoring kernel reading it
        # index by the dimension: a stored array of another shape read past its end
        if rotation is not None and np.shape(rotation) != (dim, dim):
            raise ValueError(f"rabitq rotation of shape {np.shape(rotation)}, dimension {dim}")
        if np.shape(arrays["centroid"]) != (dim,):
            raise ValueError(f"rabitq centroid of shape {np.shape(arrays['centroid'])}, dimension {dim}")
        return cls(
            int(params["dim"]),
            arrays["centroid"],
            None if rotation is None else np.asarray(rotation, np.float32),
            int(params.get("seed", 0)),
            int(params.get("query_bits", 4)),
            str(params.get("rotation", "itq")),
            int(params.get("itq_iters", 100)),
            int(params.get("itq_sample", 20_000)),
        )
