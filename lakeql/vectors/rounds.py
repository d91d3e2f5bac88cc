"""The adaptive search's rescoring rounds in one numba call (the uint8 rescoring tier of a rabitq index).

:func:`lakeql.vectors.search._adaptive` rescores the best ``first`` candidates by estimate, then the rest
in doubling chunks ranked by their widened upper bound while a chunk's bounds beat the running ``k``-th
score less the tier's margin. Written with numpy, each round costs a dozen array calls (partitions,
masks, concatenations, a scorer call that re-checks and re-sorts its positions): at 10M rows a default
ANN query rescoring ~16,000 rows in ~7 rounds spent ~2.7 ms of its ~7.6 ms in that bookkeeping
(benchmarks/results/annratio.md). :func:`adaptive_u8` runs the same rounds in one compiled call:

* the head: the ``first`` smallest candidates by the key ``(-est, row)`` (NaN last), i.e. the split of
  ``np.argsort(-est, kind="stable")`` at ``first`` (:func:`lakeql.vectors.search._head`);
* the bound order: ``(-bound, -est, row)`` (NaN last), the order of ``np.lexsort((-est, -bound))``
  (:func:`lakeql.vectors.search._order_desc`); each chunk is cut by a selection (no sort of every row);
  a chunk's rows are the same set whatever the selection's pivots, because the key is a total order;
* the running ``k``-th score: a min-heap of the ``k`` best scores (NaN counted highest, as
  ``np.partition`` places it), the line ``kth - margin`` rounded to float32 as numpy does for a float32
  ``kth`` and a Python float margin;
* each chunk's rows scored in row order by the very kernel the numpy loop calls
  (:func:`lakeql.vectors.kernels.rescore_signed_u8`), so the scores are the same bits.

The result (rescored positions and scores, in the numpy loop's order: the head by row, then each
chunk's taken rows by row; and the number rescored) is exactly the numpy loop's; tests compare them on
near-duplicate clusters of real MiniLM embeddings (tests/vectors/test_fused_rounds.py). Candidates must
be in ascending row order (every scan returns them so); :func:`lakeql.vectors.search._adaptive` keeps the
numpy loop for anything else (float tiers, row readers, sub-indexes).
"""

from __future__ import annotations

import numpy as np

from lakeql.jit import njit
from lakeql.vectors.kernels import rescore_signed_u8


@njit(cache=True, nogil=True, inline="always")
def _before(a1, a2, i, b1, b2, j):
    """Whether ``(a1, a2, i)`` sorts before ``(b1, b2, j)``: ascending, NaN after every number (numpy's
    sort order), the row ``i``/``j`` last (stable)."""
    if a1 != b1:
        if a1 != a1:  # a NaN
            return False
        if b1 != b1:
            return True
        return a1 < b1
    if a2 != b2:
        if a2 != a2:
            return False
        if b2 != b2:
            return True
        return a2 < b2
    return i < j


@njit(cache=True, nogil=True)
def _select(perm, lo, hi, m, k1, k2):
    """Rearrange ``perm[lo:hi]`` (row numbers) so that ``perm[lo:m]`` are the ``m - lo`` smallest by the
    key ``(k1[row], k2[row], row)`` (:func:`_before`), in any order: a quickselect with pseudo-random
    pivots (a total order: the set is the same whatever the pivots)."""
    seed = np.uint64(0x9E3779B97F4A7C15)
    while hi - lo > 1 and lo < m < hi:
        seed ^= seed << np.uint64(13)
        seed ^= seed >> np.uint64(7)
        seed ^= seed << np.uint64(17)
        p = lo + int(seed % np.uint64(hi - lo))
        pr = perm[p]
        p1, p2 = k1[pr], k2[pr]
        # three-way split: [lo, a) before the pivot, [a, b) the pivot itself, [b, hi) after
        perm[p], perm[hi - 1] = perm[hi - 1], perm[p]
        a = lo
        for t in range(lo, hi - 1):
            r = perm[t]
            if _before(k1[r], k2[r], r, p1, p2, pr):
                perm[t], perm[a] = perm[a], perm[t]
                a += 1
        perm[a], perm[hi - 1] = perm[hi - 1], perm[a]
        if m <= a:
            hi = a
        elif m > a + 1:
            lo = a + 1
        else:
            return


@njit(cache=True, nogil=True, inline="always")
def _above(a, b):
    """``a > b`` in numpy's sort order (NaN above every number)."""
    if a != a:
        return b == b
    if b != b:
        return False
    return a > b


@njit(cache=True, nogil=True)
def _heap_push(heap, size, k, s):
    """Keep the ``k`` highest scores seen in the min-heap ``heap[:size]``; returns the new size."""
    if size < k:
        j = size
        heap[j] = s
        while j > 0:
            up = (j - 1) // 2
            if _above(heap[up], heap[j]):
                heap[up], heap[j] = heap[j], heap[up]
                j = up
            else:
                break
        return size + 1
    if not _above(s, heap[0]):
        return size
    heap[0] = s
    j = 0
    while True:
        c = 2 * j + 1
        if c >= size:
            break
        if c + 1 < size and _above(heap[c], heap[c + 1]):
            c += 1
        if _above(heap[j], heap[c]):
            heap[j], heap[c] = heap[c], heap[j]
            j = c
        else:
            break
    return size


@njit(cache=True, nogil=True)
def adaptive_u8(
    cand,
    ub,
    est,
    first,
    k,
    cap,
    slack,
    first_chunk,
    sigmas,
    qnorm,
    sqrt12,
    tier,
    codes,
    scales,
    qr,
    base,
):
    """(positions, scores, rescored) of the adaptive rounds (module docstring) over candidates ``cand``
    (ascending code positions) with upper bounds ``ub`` and estimates ``est`` (float64): the best
    ``first`` by estimate, then chunks of ``first_chunk`` (at least ``first``) rows doubling, ranked by
    ``est + slack * (ub - est)``, while that bound beats the ``k``-th score less the tier margin
    ``sigmas * max(scales of the head) * qnorm / sqrt12``, at most ``cap`` rows in all. Scores:
    :func:`~lakeql.vectors.kernels.rescore_signed_u8` (``tier``, ``codes``, ``scales``, ``qr``,
    ``base``)."""
    n = cand.shape[0]
    out_p = np.empty(max(min(n, max(cap, first)), 1), np.int64)
    out_s = np.empty(out_p.shape[0], np.float32)
    heap = np.empty(max(k, 1), np.float32)
    hsize = 0
    # the head: the `first` smallest by (-est, row)
    neg = np.empty(n, np.float64)
    for i in range(n):
        neg[i] = -est[i]
    zero = np.zeros(n, np.float64)  # the head's key has no second part
    perm = np.arange(n)
    nhead = min(max(first, 0), n)
    if 0 < nhead < n:
        _select(perm, 0, n, nhead, neg, zero)
    head = np.sort(perm[:nhead])
    hp = cand[head]
    hs = rescore_signed_u8(tier, hp, codes, hp, scales, qr, base)
    out_p[:nhead] = hp
    out_s[:nhead] = hs
    for t in range(nhead):
        hsize = _heap_push(heap, hsize, k, hs[t])
    margin = 0.0
    if nhead:
        top = scales[hp[0]]
        for t in range(1, nhead):  # np.max: a NaN wins
            x = scales[hp[t]]
            if x != x or (top == top and x > top):
                top = x
        margin = sigmas * np.float64(top) * qnorm / sqrt12
    done = nhead
    nrest = n - nhead
    if nrest <= 0:
        return out_p[:done], out_s[:done], done
    # the rest ranked by (-bound, -est, row); rest rows keep their candidate numbers
    rest = perm[nhead:].copy()
    nb = np.empty(n, np.float64)
    ne = np.empty(n, np.float64)
    for t in range(nrest):
        r = rest[t]
        nb[r] = -(est[r] + slack * (ub[r] - est[r]))
        ne[r] = -est[r]
    room = cap - done
    chunk = max(first_chunk, first)
    lo = 0
    end = 0
    limit = min(nrest, room)
    take = np.empty(nrest, np.int64)
    while end < limit:
        end = min(end + chunk, nrest, room)
        chunk *= 2
        if end < nrest:
            _select(rest, lo, nrest, end, nb, ne)
        if hsize >= k and k > 0:
            line = np.float64(np.float32(heap[0]) - np.float32(margin))
        else:
            line = -np.inf - margin
        m = 0
        for t in range(lo, end):
            r = rest[t]
            if -nb[r] > line:  # the widened bound (negated back: the same float64)
                take[m] = r
                m += 1
        if m == 0:
            break
        rows = np.sort(take[:m])
        pos = cand[rows]
        sc = rescore_signed_u8(tier, pos, codes, pos, scales, qr, base)
        out_p[done : done + m] = pos
        out_s[done : done + m] = sc
        for t in range(m):
            hsize = _heap_push(heap, hsize, k, sc[t])
        done += m
        if m < end - lo:
            break
        lo = end
    return out_p[:done], out_s[:done], done
