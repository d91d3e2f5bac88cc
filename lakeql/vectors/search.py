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
#: standard deviations of an int8 tier score's rounding error kept as margin by adaptive rescoring
TIER_SIGMAS = 3.0
#: the most rows the final refinement step rescores per query (the best by tier score)
MAX_REFINE = 2_048


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
    if getattr(binz, "bounded", False) and "errc" in index.factors and binz.query_bits == 4:
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
    order = np.lexsort((pos, -scores))[:k]
    return index.rowids[pos[order]], scores[order].astype(np.float32)


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
    """(rescored positions, their tier scores) under RaBitQ's error bound (see the module docstring)."""
    if scan is None:
        cand, ub, est = index.binarizer.candidates(q, index.words, index.factors, k, allowed, cap)
    else:
        cand, ub, est = scan(k, cap)
    by_est = np.argsort(-est, kind="stable")
    head = by_est[:first]
    pos_parts = [cand[head]]
    score_parts = [index.score(cand[head], q)]
    margin = tier_margin(index, cand[head], q)
    done = len(head)
    ub = est + BOUND_SLACK * (ub - est)  # a wider bound for the stopping rule (see BOUND_SLACK)
    rest = by_est[first:]
    rest = rest[np.argsort(-ub[rest], kind="stable")]  # most promising first
    chunk = max(FIRST_CHUNK, first)
    while len(rest) and done < cap:
        scores = np.concatenate(score_parts)
        kth = np.partition(scores, len(scores) - k)[len(scores) - k] if len(scores) >= k else -np.inf
        rest = rest[ub[rest] > kth - margin]
        if not len(rest):
            break
        take, rest = rest[: min(chunk, cap - done)], rest[min(chunk, cap - done) :]
        pos_parts.append(cand[take])
        score_parts.append(index.score(cand[take], q))
        done += len(take)
        chunk *= 2
    if stats is not None:
        stats.update(candidates=int(len(cand)), rescored=int(done))
    return np.concatenate(pos_parts), np.concatenate(score_parts)
