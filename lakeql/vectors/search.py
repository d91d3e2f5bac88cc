"""Two-stage search over a :class:`~lakeql.vectors.codes.CodeIndex`.

1. an exhaustive first stage over every code (Hamming for ``sign``/``median``, RaBitQ's asymmetric
   estimator for ``rabitq``) picks candidates;
2. candidates are rescored with the float query against the rescoring tier, and the best ``k`` returned.

How many candidates are rescored:

* ``rabitq`` (the default) is **adaptive**: the first stage returns every row whose estimate's error
  bound (RaBitQ, Gao & Long 2024) could still reach the true top ``k``. The best ``k * oversample`` by
  estimate are rescored first; then, in chunks in order of their upper bounds, every remaining candidate
  whose upper bound beats the current ``k``-th rescored score (less the int8 tier's own error margin,
  :func:`tier_margin`: the ``k``-th tier score may sit above the true one), until none does or
  ``max_rescore`` rows were rescored. On natural text that is little more than ``k * oversample``; on
  clusters of near-duplicates (whose estimates cannot tell them apart) it grows to what the bound requires.
* ``sign``/``median`` (no bound) rescore a fixed ``k * oversample``.

3. with refinement planes beside the int8 tier (``--embed-refine-bits``), a final step rescores the rows
   whose tier score is within twice the tier's error margin of the ``k``-th (:func:`refine`: ~10-25 rows,
   none when the ``k``-th row is alone in that band) at ``8 + b`` bits a dimension: on clusters of
   near-duplicates whose 10th and 11th rows are closer than the int8 tier's rounding, that ranking
   decides recall@10.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lakeql.errors import LakeqlError
from lakeql.vectors.codes import CodeIndex

#: the most rows one query rescores (adaptive mode): 20,000 int8 rows are 7.7 MB read, ~5 ms
MAX_RESCORE = 20_000
FIRST_CHUNK = 256
#: the bound's width used to stop rescoring, as a multiple of the first stage's (RaBitQ's epsilon_0 1.9):
#: the bound is per row and probabilistic, and at 1M near-duplicate rows it missed true top-10 rows by up
#: to 1.3x its width (benchmarks/results/recall1m.md)
BOUND_SLACK = 1.5
#: a filter allowing fewer than this share of the rows is scanned row by row
#: (:func:`~lakeql.vectors.kernels.asym4_bounded_spans` skips a disallowed row before its popcounts; the
#: full-scan layout's kernel computes every row's, and its layout, 96 bytes a row, is not built for it):
#: the same result, at 1M rows 0.1% allowed 3.0x and 1% 1.2x less CPU, 2% 0.8x (review29.md). The ANN
#: stage sends filters of up to ``ann.EXHAUSTIVE_BELOW`` rows here.
ROW_SCAN_BELOW = 0.01
#: standard deviations of an int8 tier score's rounding error kept as margin by adaptive rescoring
TIER_SIGMAS = 3.0
#: the most rows the final refinement step rescores per query (the best by tier score)
MAX_REFINE = 2_048
#: the adaptive rounds' bookkeeping in numba where it applies (:func:`_fused`) and the ANN stage's query
#: rotation computed once (:func:`lakeql.vectors.ann.search`); False: the numpy loop and a rotation per
#: step, the code before them (the reference they are tested and benchmarked against: same results)
FUSED_ROUNDS = True


def tier_margin(index: CodeIndex, pos: np.ndarray, q: np.ndarray) -> float:
    """How far a per-row-scaled int8 tier score may sit from the true score: ``TIER_SIGMAS`` standard
    deviations of the rounding error (uniform, half a step per dimension: ``scale * |q| / sqrt(12)``) at
    the largest scale among rows ``pos``; 0 for float tiers and format-1 per-dimension scales. ``index``
    may be an ANN :class:`~lakeql.vectors.ann.SubIndex` (positions into its parent's rows)."""
    parent = getattr(index, "parent", None)
    if parent is not None:
        index, pos = parent, index.pos[np.asarray(pos, np.int64)]
    if index.scales is None or index.space == "dims" or not len(pos):
        return 0.0
    return TIER_SIGMAS * float(index.scales[pos].max()) * float(np.linalg.norm(q)) / np.sqrt(12.0)


def refine(
    index: CodeIndex,
    q: np.ndarray,
    k: int,
    pos: np.ndarray,
    scores: np.ndarray,
    stats: dict[str, Any] | None = None,
) -> np.ndarray:
    """``scores`` of rescored positions ``pos`` with the rows that could still be in or out of the top
    ``k`` (tier score at least the ``k``-th less twice :func:`tier_margin`, at most ``MAX_REFINE``, best
    first) rescored from the tier plus its refinement planes (:meth:`CodeIndex.refined_score`). A row
    below that line cannot reach the top ``k`` (``k`` rows score above it by more than both their tier
    errors); unchanged without planes or when no other row is within the band around the ``k``-th (then
    the top ``k`` is already certain). ``stats`` receives ``refined``."""
    parent = getattr(index, "parent", None)
    base, bpos = (index, pos) if parent is None else (parent, index.pos[np.asarray(pos, np.int64)])
    if not getattr(base, "refine_bits", 0):
        return scores
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        band = 2.0 * tier_margin(base, bpos, q)
        if np.count_nonzero(np.abs(scores - kth) <= band) <= 1:
            if stats is not None:
                stats["refined"] = 0
            return scores  # only the k-th row itself near the line: the top k is certain (natural text)
        near = np.flatnonzero(scores >= kth - band)
    else:
        near = np.arange(len(scores))
    if len(near) > MAX_REFINE:
        near = near[np.argsort(-scores[near], kind="stable")[:MAX_REFINE]]
    out = np.array(scores, np.float32, copy=True)
    out[near] = base.refined_score(bpos[near], q)
    if stats is not None:
        stats["refined"] = int(len(near))
    return out


def check_query_vector(index: CodeIndex, q: np.ndarray, label: str) -> np.ndarray:
    """A float32 query vector of the index's dimension, or a clear error."""
    q = np.asarray(q, np.float32).reshape(-1)
    if q.shape[0] != index.dim:
        raise LakeqlError(
            f"query vector has {q.shape[0]} dimensions but the embed index of {label} has "
            f"{index.dim} (model {index.meta.get('model')}): embed the query with the same "
            "model"
        )
    if not np.all(np.isfinite(q)):
        raise LakeqlError("query vector contains NaN or infinite values")
    return q


def search(
    index: CodeIndex,
    q: np.ndarray,
    k: int,
    oversample: int = 4,
    allowed: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    max_rescore: int = MAX_RESCORE,
    stats: dict[str, Any] | None = None,
    scan: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (table rowids, scores) for query vector ``q``, best first.

    ``allowed``: optional boolean mask over code positions (a pre-filter); ``exclude``: code positions
    never returned (e.g. the query row of ``similar_rows``); ``stats`` (optional) receives
    ``candidates`` (first-stage survivors) and ``rescored`` (rows scored against the tier); ``scan``
    (optional, bounded binarizers only): ``scan(k, cap)`` returns the first stage's (code positions, upper
    bounds, estimates) instead of the exhaustive scan (the ANN stage's probed lists, :mod:`.ann`).
    """
    if index.n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    extra = 0 if exclude is None else len(exclude)
    kk = min(k + extra, index.n)
    first = min(max(kk * max(int(oversample), 1), kk), index.n)
    binz = index.binarizer
    if bounded_scan(binz, index.factors):
        pos, scores = _adaptive(index, q, kk, first, allowed, max(int(max_rescore), first), stats, scan)
    else:
        if scan is not None:
            raise LakeqlError("a first-stage scan needs a bounded binarizer with a 4-bit query (rabitq)")
        pos, _est = binz.topk(q, index.words, index.factors, first, allowed)
        scores = index.score(pos, q) if len(pos) else np.zeros(0, np.float32)
        if stats is not None:
            stats.update(candidates=int(len(pos)), rescored=int(len(pos)))
    if len(pos):
        scores = refine(index, q, kk, pos, scores, stats)
    if exclude is not None and len(exclude):
        keep = ~np.isin(pos, exclude)
        pos, scores = pos[keep], scores[keep]
    if len(pos) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    pos, scores = best_first(pos, scores, k)
    return index.rowids[pos], scores.astype(np.float32)


def bounded_scan(binarizer: Any, factors: dict[str, np.ndarray]) -> bool:
    """Whether the first stage is RaBitQ's bounded 4-bit scan (:func:`_adaptive`; the ANN stage's probed
    lists go through the same scan): a bounded binarizer, per-row bound coefficients, a 4-bit query."""
    return (
        bool(getattr(binarizer, "bounded", False))
        and "errc" in factors
        and getattr(binarizer, "query_bits", 0) == 4
    )


def best_first(pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` (positions, scores), by score descending then position: the order of
    ``np.lexsort((pos, -scores))[:k]``, sorting only the rows at or above the ``k``-th score (a partition
    first: a query may rescore 16,000 rows for 10 results)."""
    if len(scores) > k > 0 and not np.isnan(scores).any():  # NaN scores: the full sort places them
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        sel = np.flatnonzero(scores >= kth)
        pos, scores = pos[sel], scores[sel]
    order = np.lexsort((pos, -scores))[:k]
    return pos[order], scores[order]


def _order_desc(values: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Rows by ``values`` descending, ties by ``then`` descending, then by row (``np.lexsort((-then,
    -values))``): numpy's vectorized unstable sort when no two values are equal (then any sort gives
    that order), else the lexsort."""
    order = np.argsort(-values)
    v = values[order]
    if len(v) > 1 and not np.all(v[1:] < v[:-1]):  # a tie (or NaN): the stable sort decides
        order = np.lexsort((-then, -values))
    return order


def _chunk_cuts(n: int, chunk: int, room: int) -> list[int]:
    """Ends (in rank order) of the rescoring rounds' chunks over ``n`` rows: ``chunk``, then doubling,
    at most ``room`` rows in all."""
    cuts, end = [], 0
    while end < min(n, room):
        end = min(end + chunk, n, room)
        cuts.append(end)
        chunk *= 2
    return cuts


def _bound_segments(
    rows: np.ndarray, ub: np.ndarray, est: np.ndarray, cuts: list[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, bounds) of each chunk ``[cuts[i-1], cuts[i])`` of ``rows`` ranked by bound ``ub`` descending
    (ties by ``est`` descending, then by position: the order of :func:`_order_desc`); rows inside a chunk
    in any order. One ``argpartition`` at the cuts instead of a sort of every row; the sort when a cut
    falls between equal bounds (or a bound is NaN)."""
    if not cuts:
        return []
    n = len(ub)
    neg = -ub
    kths = sorted({c - 1 for c in cuts} | {c for c in cuts if c < n})
    order = None
    if len(kths) < n and not np.isnan(neg).any():
        order = np.argpartition(neg, kths)
        v = neg[order]
        if any(c < n and v[c - 1] == v[c] for c in cuts):  # equal bounds across a cut: rank them exactly
            order = None
    if order is None:
        order = _order_desc(ub, est)
    starts = [0, *cuts[:-1]]
    return [(rows[order[a:b]], ub[order[a:b]]) for a, b in zip(starts, cuts, strict=True)]


def _head(est: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """(the ``first`` best rows by estimate, the others): the split of ``np.argsort(-est,
    kind="stable")`` at ``first`` (ties at the line go to the lower row) without sorting every row."""
    n = len(est)
    if n <= first or first <= 0:
        return (np.arange(n), np.zeros(0, np.int64)) if first > 0 else (np.zeros(0, np.int64), np.arange(n))
    neg = -est
    line = np.partition(neg, first - 1)[first - 1]
    if np.isnan(line):  # (both sets in row order, as below: the head is rescored and returned so)
        by = np.argsort(neg, kind="stable")
        return np.sort(by[:first]), np.sort(by[first:])
    inside = neg < line
    ties = np.flatnonzero(neg == line)
    inside[ties[: first - int(np.count_nonzero(inside))]] = True
    return np.flatnonzero(inside), np.flatnonzero(~inside)


def _fused(
    index: Any,
    q: np.ndarray,
    k: int,
    first: int,
    cap: int,
    cand: np.ndarray,
    ub: np.ndarray,
    est: np.ndarray,
    score: Any,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """:func:`_adaptive`'s rounds with their bookkeeping in numba (:mod:`lakeql.vectors.rounds`: the head,
    the bound order, the running ``k``-th score, each chunk's rows above the line) and only the scoring
    call per round left in Python: the same rows, scores and count as the numpy loop. ``score``: the
    index's scorer, or its :meth:`CodeIndex.kernel_scorer` (positions here are ascending and checked in
    range). None (the numpy loop runs) unless the candidates are in ascending row order (the scans return
    them so)."""
    if not FUSED_ROUNDS or not len(cand) or ub.dtype != np.float64 or est.dtype != np.float64:
        return None
    cand = np.ascontiguousarray(cand, np.int64)
    if len(cand) > 1 and not bool(np.all(cand[1:] > cand[:-1])):
        return None
    if cand[0] < 0 or cand[-1] >= index.n:  # (ascending: the ends bound them all) the kernel reads rows
        raise IndexError("code position out of range")
    from lakeql.vectors import rounds

    ub, est = np.ascontiguousarray(ub), np.ascontiguousarray(est)
    head, state, rest, nb = rounds.start(cand, ub, est, int(first), int(cap), BOUND_SLACK, FIRST_CHUNK)
    scores = score(head)
    pos_parts, score_parts = [head], [scores]
    margin = np.float64(tier_margin(index, head, q))
    heap = np.empty(max(int(k), 1), scores.dtype)
    while True:  # one iteration per round (a handful), never per row
        take = rounds.next_chunk(cand, state, rest, nb, heap, int(k), scores, margin)
        if not len(take):
            break
        scores = score(take)
        pos_parts.append(take)
        score_parts.append(scores)
    pos = np.concatenate(pos_parts) if len(pos_parts) > 1 else head
    return pos, np.concatenate(score_parts) if len(score_parts) > 1 else score_parts[0], int(len(pos))


def _selective(allowed: np.ndarray | None, n: int) -> bool:
    """Whether filter ``allowed`` keeps fewer than ``ROW_SCAN_BELOW`` of the ``n`` rows."""
    return allowed is not None and int(np.count_nonzero(allowed)) < ROW_SCAN_BELOW * n


def _adaptive(
    index: CodeIndex,
    q: np.ndarray,
    k: int,
    first: int,
    allowed: np.ndarray | None,
    cap: int,
    stats: dict[str, Any] | None,
    scan: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(rescored positions, their tier scores) under RaBitQ's error bound (see the module docstring).

    The best ``first`` candidates by estimate are rescored first, then the others in chunks (doubling) in
    order of their widened upper bounds while that bound beats the ``k``-th score so far less the tier's
    margin. Per query: one partition for the head, one sort of the other candidates by bound (a prefix of
    it is what each round may take), a running top ``k`` of the scores, and the query's rotation once
    (:meth:`CodeIndex.scorer`)."""
    if scan is None:
        blocked = None  # (an ANN SubIndex has no layout; a selective filter is cheaper row by row)
        if hasattr(index, "blocked") and not _selective(allowed, index.n):
            blocked = index.blocked()
        cand, ub, est = index.binarizer.candidates(
            q, index.words, index.factors, k, allowed, cap, blocked=blocked
        )
    else:
        cand, ub, est = scan(k, cap)
    raw = index.kernel_scorer(q) if FUSED_ROUNDS and hasattr(index, "kernel_scorer") else None
    if raw is None:
        score = index.scorer(q) if hasattr(index, "scorer") else (lambda p: index.score(p, q))
    fused = _fused(index, q, k, first, cap, cand, ub, est, raw or score)
    if fused is not None:
        pos, scores, done = fused
        if stats is not None:
            stats.update(candidates=int(len(cand)), rescored=int(done))
        return pos, scores
    if raw is not None:
        score = index.scorer(q)
    head, rest = _head(est, first)
    pos_parts = [cand[head]]
    score_parts = [score(pos_parts[0])]
    margin = tier_margin(index, pos_parts[0], q)
    done = len(head)
    segments: list[tuple[np.ndarray, np.ndarray]] = []
    if len(rest):
        ub = est[rest] + BOUND_SLACK * (ub[rest] - est[rest])  # a wider bound for the stopping rule
        cuts = _chunk_cuts(len(rest), max(FIRST_CHUNK, first), cap - done)
        segments = _bound_segments(rest, ub, est[rest], cuts)
    best = score_parts[0]
    ascending = len(segments) > 0 and bool(np.all(cand[1:] > cand[:-1]))  # the scans return rows in order
    mark = np.zeros(len(cand), bool) if ascending else None
    for rows, bounds in segments:  # round i rescores the i-th chunk of the rows by bound, best first
        kth = -np.inf
        if len(best) >= k > 0:
            best = np.partition(best, len(best) - k)[len(best) - k :]  # the top k so far
            kth = best[0]
        take = rows[bounds > kth - margin]  # the chunk's rows whose bound is above the line
        if not len(take):
            break  # (and no later chunk's: their bounds are lower, the line only rises)
        if ascending:  # the chunk in row order (a mask, not a sort): the tier is read front to back
            mark[take] = True
            take = np.flatnonzero(mark)
            mark[take] = False
        pos_parts.append(cand[take])
        score_parts.append(score(pos_parts[-1]))
        best = np.concatenate([best, score_parts[-1]])
        done += len(take)
        if len(take) < len(rows):
            break  # the line cut this chunk: every later row is below it
    if stats is not None:
        stats.update(candidates=int(len(cand)), rescored=int(done))
    return np.concatenate(pos_parts), np.concatenate(score_parts)
