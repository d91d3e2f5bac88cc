"""The adaptive search's rescoring rounds: their bookkeeping in numba, the scoring left to the caller.

:func:`lakeql.vectors.search._adaptive` rescores the best ``first`` candidates by estimate, then the rest
in doubling chunks ranked by their widened upper bound while a chunk's bounds beat the running ``k``-th
score less the tier's margin. Written with numpy, each round cost a dozen array calls (partitions, masks,
concatenations): at 10M rows a default ANN query rescoring ~16,000 rows in ~7 rounds spent ~2.7 ms of its
~7.6 ms in that bookkeeping (benchmarks/results/annratio.md). Here it is two compiled calls, :func:`start`
and one :func:`next_chunk` per round:

* the head: the ``first`` smallest candidates by the key ``(-est, row)`` (NaN last), i.e. the split of
  ``np.argsort(-est, kind="stable")`` at ``first`` (:func:`lakeql.vectors.search._head`);
* the bound order: ``(-bound, -est, row)`` (NaN last), the order of ``np.lexsort((-est, -bound))``
  (:func:`lakeql.vectors.search._order_desc`); each chunk is cut by a selection (no sort of every row),
  and is the same set of rows whatever the selection's pivots, because the key is a total order;
* the running ``k``-th score: a min-heap of the ``k`` best scores (NaN counted highest, as
  ``np.partition`` places it); the line ``kth - margin`` in float64, as numpy computes a float32 score
  less the float64 margin.

The scores themselves stay with the caller's scorer (``CodeIndex.scorer``, called from Python once per
round): the uint8 kernel (:func:`lakeql.vectors.kernels.rescore_signed_u8`) is compiled with fastmath,
and the same kernel inlined into a numba caller was measured to round ~1 score in 4 differently (the
vectorized sum's order depends on where LLVM places it), so only the very same compiled call gives the
same bits. The result (rescored positions and scores in the numpy loop's order: the head by row, then each
chunk's taken rows by row; and their number) is exactly the numpy loop's; tests compare them on
near-duplicate clusters of real MiniLM embeddings (tests/vectors/test_fused_rounds.py).
"""

from __future__ import annotations

import numpy as np

from lakeql.jit import njit


@njit(cache=True, nogil=True, inline="always")
def _before(a1, a2, i, b1, b2, j):
    """Whether ``(a1, a2, i)`` sorts before ``(b1, b2, j)``: ascending, NaN after every number and NaNs
    equal to each other (numpy's sort order: a stable sort keeps NaN keys in the next key's order), the
    row ``i``/``j`` last (stable). (``NaN != NaN``: two NaN keys go on to the next key, not "after".)"""
    if a1 < b1:  # two numbers first (the common case: two comparisons)
        return True
    if a1 > b1:
        return False
    if a1 == a1:  # equal numbers, or a number and a NaN
        if b1 != b1:
            return True
    elif b1 == b1:  # a NaN and a number
        return False
    if a2 < b2:  # equal (or both NaN): the next key
        return True
    if a2 > b2:
        return False
    if a2 == a2:
        if b2 != b2:
            return True
    elif b2 == b2:
        return False
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


@njit(cache=True, nogil=True)
def _select_keys(k1, k2, ids, lo, hi, m):
    """:func:`_select` over keys held beside the rows (``k1[t]``, ``k2[t]``, ``ids[t]`` move together:
    no indirect loads), with a branch-free Lomuto partition (the swap always happens, the boundary moves
    by the comparison's result)."""
    seed = np.uint64(0x9E3779B97F4A7C15)
    while hi - lo > 1 and lo < m < hi:
        seed ^= seed << np.uint64(13)
        seed ^= seed >> np.uint64(7)
        seed ^= seed << np.uint64(17)
        p = lo + int(seed % np.uint64(hi - lo))
        last = hi - 1
        k1[p], k1[last] = k1[last], k1[p]
        k2[p], k2[last] = k2[last], k2[p]
        ids[p], ids[last] = ids[last], ids[p]
        p1, p2, pr = k1[last], k2[last], ids[last]
        a = lo
        for t in range(lo, last):
            x1, x2, xi = k1[t], k2[t], ids[t]
            k1[t], k2[t], ids[t] = k1[a], k2[a], ids[a]
            k1[a], k2[a], ids[a] = x1, x2, xi
            a += _before(x1, x2, xi, p1, p2, pr)
        k1[a], k1[last] = k1[last], k1[a]
        k2[a], k2[last] = k2[last], k2[a]
        ids[a], ids[last] = ids[last], ids[a]
        if m <= a:
            hi = a
        elif m > a + 1:
            lo = a + 1
        else:
            return


#: buckets of the bound's range the chunk cuts are first located in (:func:`_cut`)
_BUCKETS = 1024


@njit(cache=True, nogil=True)
def _cut(k1, k2, ids, cuts):
    """Rearrange the rows (``k1``, ``k2``, ``ids`` together) so that for every cut ``c`` the first ``c``
    are the ``c`` smallest by :func:`_before`'s key. A counting sort into ``_BUCKETS`` buckets of the
    ``k1`` range first (the bucket is a non-decreasing function of ``k1``, NaN last, so a lower bucket
    holds only smaller keys), then a selection inside the one bucket each cut falls in: a few passes over
    the rows instead of a selection over all of them per cut."""
    n = k1.shape[0]
    lo_v, hi_v = np.inf, -np.inf
    for t in range(n):
        x = k1[t]
        if x - x == 0.0:  # finite
            lo_v = min(lo_v, x)
            hi_v = max(hi_v, x)
    nbk = _BUCKETS
    # halves: ``hi - lo`` overflows to inf for keys spread over more than 1.8e308 (then ``x - lo`` did
    # too, and ``inf * 0`` cast to an int put rows in arbitrary buckets: chunks that were not the
    # smallest keys); halving, a difference and a positive scale keep the bucket non-decreasing in ``x``
    half = 0.5 * hi_v - 0.5 * lo_v
    scale = nbk / half if half > 0.0 else 0.0
    if not (hi_v > lo_v and scale > 0.0 and scale < np.inf):  # no spread (or nothing finite): one bucket
        nbk = 1
    which = np.empty(n, np.int64)
    counts = np.zeros(nbk + 2, np.int64)
    for t in range(n):
        x = k1[t]
        if x != x:
            b = nbk  # NaN last
        elif nbk == 1 or x <= lo_v:
            b = 0
        elif x >= hi_v:
            b = nbk - 1
        else:
            b = min(max(int((0.5 * x - 0.5 * lo_v) * scale), 0), nbk - 1)
        which[t] = b
        counts[b + 1] += 1
    for b in range(nbk + 1):
        counts[b + 1] += counts[b]
    off = counts.copy()  # off[b]: first row of bucket b
    s1, s2, si = np.empty(n, np.float64), np.empty(n, np.float64), np.empty(n, np.int64)
    for t in range(n):
        b = which[t]
        j = counts[b]
        counts[b] += 1
        s1[j], s2[j], si[j] = k1[t], k2[t], ids[t]
    k1[:], k2[:], ids[:] = s1, s2, si
    hi = n
    for c in cuts[::-1]:
        if c >= hi:
            continue
        b = np.searchsorted(off, c, side="right") - 1  # the bucket holding position c
        _select_keys(k1, k2, ids, off[b], min(hi, off[b + 1]), c)
        hi = c


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


#: fields of the rounds' state vector (:func:`start`, :func:`next_chunk`)
_LO, _END, _CHUNK, _HSIZE, _ROOM, _NREST, _STOP = range(7)


@njit(cache=True, nogil=True)
def smallest(m, k1):
    """Rows ``0 <= r < len(k1)`` of the ``m`` smallest keys ``(k1[r], r)`` (NaN last), ascending by row
    (the first ``m`` of ``np.argsort(k1, kind="stable")``, as a set):
    one pass with a max-heap of ``m`` rows (a row rarely enters it: predictable branches, unlike a
    quickselect's)."""
    n = k1.shape[0]
    if m <= 0:
        return np.zeros(0, np.int64)
    heap = np.empty(m, np.int64)
    size = 0
    for r in range(n):
        if size < m:
            j = size
            heap[j] = r
            size += 1
            while j > 0:  # sift up: the parent must not sort before the child (max-heap)
                up = (j - 1) // 2
                if _before(k1[heap[up]], 0.0, heap[up], k1[heap[j]], 0.0, heap[j]):
                    heap[up], heap[j] = heap[j], heap[up]
                    j = up
                else:
                    break
        elif _before(k1[r], 0.0, r, k1[heap[0]], 0.0, heap[0]):
            heap[0] = r
            j = 0
            while True:
                c = 2 * j + 1
                if c >= size:
                    break
                if c + 1 < size and _before(k1[heap[c]], 0.0, heap[c], k1[heap[c + 1]], 0.0, heap[c + 1]):
                    c += 1
                if _before(k1[heap[j]], 0.0, heap[j], k1[heap[c]], 0.0, heap[c]):
                    heap[j], heap[c] = heap[c], heap[j]
                    j = c
                else:
                    break
    return np.sort(heap[:size])


@njit(cache=True, nogil=True)
def start(cand, ub, est, first, cap, slack, first_chunk):
    """Set up the rounds over candidates ``cand`` (ascending code positions) with upper bounds ``ub`` and
    estimates ``est`` (float64): returns (the head's code positions, ascending: the best ``first`` by
    estimate; state vector; the other candidates' numbers, each chunk's together and in row order (chunk
    ``i`` is ``rest[cut[i-1]:cut[i]]``); their keys ``-bound``). The bound is
    ``est + slack * (ub - est)``; chunks hold ``first_chunk`` (at least ``first``) rows, doubling, at most
    ``cap`` rows rescored in all. The chunks are all cut here (:func:`_cut`: a few passes over the rows),
    not one selection per round."""
    n = cand.shape[0]
    neg = np.empty(n, np.float64)
    for i in range(n):
        neg[i] = -est[i]
    nhead = min(max(first, 0), n)
    head = smallest(nhead, neg) if nhead < n else np.arange(n)
    mark = np.zeros(n, np.bool_)
    for t in range(head.shape[0]):
        mark[head[t]] = True
    nrest = n - head.shape[0]
    rest = np.empty(nrest, np.int64)
    j = 0
    for r in range(n):
        if not mark[r]:
            rest[j] = r
            j += 1
    nb = np.empty(n, np.float64)
    for t in range(nrest):
        r = rest[t]
        nb[r] = -(est[r] + slack * (ub[r] - est[r]))
    room = cap - head.shape[0]
    cuts = []
    end, chunk = 0, max(first_chunk, first)
    while end < min(nrest, room):
        end = min(end + chunk, nrest, room)
        cuts.append(end)
        chunk *= 2
    if len(cuts) and cuts[-1] > 0:
        k1 = np.empty(nrest, np.float64)
        k2 = np.empty(nrest, np.float64)
        for t in range(nrest):
            k1[t] = nb[rest[t]]
            k2[t] = neg[rest[t]]
        cut = np.array(cuts, np.int64)
        _cut(k1, k2, rest, cut)
        # each chunk's rows in row order: a counting sort by chunk over the rows in order (one pass, not a
        # sort or a scan per round); rows past the last cut keep their place after it
        chunk_of = np.full(n, -1, np.int64)
        c = 0
        for t in range(cut[-1]):
            while t >= cut[c]:
                c += 1
            chunk_of[rest[t]] = c
        fill = np.empty(len(cuts), np.int64)
        fill[0] = 0
        fill[1:] = cut[:-1]
        for r in range(n):
            c = chunk_of[r]
            if c >= 0:
                rest[fill[c]] = r
                fill[c] += 1
    state = np.zeros(7, np.int64)
    state[_CHUNK] = max(first_chunk, first)
    state[_ROOM] = room
    state[_NREST] = nrest
    return cand[head], state, rest, nb


@njit(cache=True, nogil=True)
def next_chunk(cand, state, rest, nb, heap, k, scores, margin):
    """The next round: ``scores`` (the last round's, or the head's) enter the running top ``k``, then the
    next chunk of the other candidates by bound is taken and its rows whose bound beats ``kth - margin``
    returned as ascending code positions; empty when the rounds are over (no row above the line, the
    last chunk cut by it, the cap or the candidates used up)."""
    hsize = state[_HSIZE]
    for t in range(scores.shape[0]):
        hsize = _heap_push(heap, hsize, k, scores[t])
    state[_HSIZE] = hsize
    lo, end, nrest = state[_LO], state[_END], state[_NREST]
    if state[_STOP] or end >= min(nrest, state[_ROOM]):
        return cand[:0]
    end = min(end + state[_CHUNK], nrest, state[_ROOM])
    state[_CHUNK] *= 2
    state[_END] = end
    if hsize >= k and k > 0:  # numpy: a float32 k-th score less a float64 margin is a float64
        line = np.float64(heap[0]) - margin
    else:
        line = -np.inf - margin
    out = np.empty(end - lo, np.int64)
    m = 0
    for t in range(lo, end):  # the chunk's rows are in row order (start)
        r = rest[t]
        if -nb[r] > line:  # the widened bound (negated back: the same float64)
            out[m] = cand[r]
            m += 1
    state[_LO] = end
    if m < end - lo:
        state[_STOP] = 1  # the line cut this chunk: every later row is below it
    return out[:m]
