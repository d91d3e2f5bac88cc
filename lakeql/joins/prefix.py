"""The join graph's candidate pools by exact prefix filtering (a numba kernel), for lakes of any size.

The graph (graph.py) keeps, per query column ``q``, at most ``PER_COLUMN`` edges scoring at least
``t = joins_min_score``. A score never exceeds the name-free bound ``upper = rank.score(containment,
uniqueness, 1) = containment * (0.5 + 0.5 * uniqueness)``, so only the candidates with ``upper >= t`` can
become edges; the graph ranks exactly those (:func:`pools`: the ``POOL`` best by ``upper`` with ties,
as ``Searcher.equi_pool`` selects them). Main's search counted the overlap of ``q``'s probe (its bottom
``PROBE`` hashes) with every column sharing any of them: the postings of common values (years, days,
small integers) are walked by every column that holds them, quadratic in the lake's columns.

Here, per query (m probed hashes; containment = shared / m for a candidate holding all its values):

* **uniqueness filter**: a candidate with ``0.5 + 0.5 * uniqueness < t`` never reaches ``t`` and is not
  in the postings at all (columns that repeat their values: years in fact tables);
* **prefix filter**: a candidate needs ``x = ceil(need * m)`` shared hashes (``need = t / (0.5 + 0.5 *
  uniqueness) >= t``), so it holds one of ANY ``m - x + 1`` probed hashes: only the postings of the
  ``m - ceil(t * m) + 1`` rarest are walked (their lists sorted by column size, largest first, so a walk
  stops at the first column smaller than ``x``: the **size filter**); a column first met at the j-th
  rarest hash holds at most ``m - j`` (the **position filter**);
* **verification**: each remaining candidate is counted exactly by intersecting the two sorted hash
  arrays (binary search or merge, whichever is cheaper; stops once ``x`` is out of reach).

Columns whose containment is not shared / m: KMV-capped columns (their stored hashes stop at their
threshold ``tau``, so the denominator is the probed hashes below it) and columns holding a hash twice
(two values with one 32-bit hash: a column counts twice, as JoinIndex.postings does) break the prefix
argument; they are few, sit in a second posting structure, and are counted over every probed hash.

Columns with the same probe (a table and its copies, the shared columns of partitions) are searched
once, without leaving out a table, for ``POOL`` plus their tables' width candidates: each keeps its own
pool once its table's columns are dropped.

The counts and denominators are exactly those of ``JoinIndex.overlaps``; containment, bound and pool
order are then computed with the same numpy expressions as ``Searcher.equi_pool`` (bit-identical
floats), so the graph's edges equal the full search's (tests/joins/test_prefix.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lakeql.jit import njit
from lakeql.joins.joinindex import HASH_MAX

_SLACK = 1e-6  # the integer thresholds are rounded down by this much: a superset, then the exact filter
EAGER = 2  # columns counted at once per query, times the pool size (the rest after the walk)
_TIE = 1e-12  # the bound thresholds too (a column level with the pool's last member may enter it)


@dataclass
class Postings:
    """The posting lists the kernel walks, for one index and one threshold (see the module docstring)."""

    hid: Any  # int32 per stored hash (JoinIndex.bycol position): its distinct-hash id
    a_ptr: Any  # int64 (distinct hashes + 1): the plain candidates' lists, largest column first
    a_col: Any  # int32
    b_ptr: Any  # int64: the capped or hash-repeating candidates' lists
    b_col: Any  # int32
    factor: Any  # float64 per column: 0.5 + 0.5 * uniqueness (its bound at containment 1)


def postings(ix: Any, t: float) -> Postings:
    """Build :class:`Postings` of ``ix`` for the threshold ``t`` (O(postings), a few numpy passes)."""
    from lakeql.joins import rank

    n = len(ix)
    hh, hc = ix.hh, ix.hc
    if len(hh):
        new = np.r_[True, hh[1:] != hh[:-1]]
        uh = hh[new]
        hid_sorted = (np.cumsum(new) - 1).astype(np.int64)
    else:
        uh = np.empty(0, np.uint32)
        hid_sorted = np.empty(0, np.int64)
    hid = np.searchsorted(uh, ix.bycol).astype(np.int32)
    # the best bound a column can reach (containment 1), with the expression equi_pool uses
    best = rank.score(np.ones(n), ix.uniqueness, np.ones(n)) if n else np.empty(0)
    ok = (ix.n_hashes > 0) & ~np.asarray(ix.excluded, dtype=bool) & (best >= t)
    factor = np.maximum(0.5 + 0.5 * np.clip(ix.uniqueness, 0.0, 1.0), 0.5)
    # capped columns (a KMV sample: containment over the probed hashes below tau) and columns holding a
    # hash twice are counted over every probed hash (structure b); the others by prefix (structure a)
    odd = ix.tau < HASH_MAX
    bc = ix.bycol
    if len(bc) > 1:
        rep = np.flatnonzero(bc[1:] == bc[:-1]) + 1
        start = np.zeros(len(bc), dtype=bool)
        has = ix.n_hashes > 0
        start[ix.offset[has]] = True
        rep = rep[~start[rep]]
        odd[np.searchsorted(ix.offset, rep, "right") - 1] = True  # offsets ascend: the owning column
    n_uh = len(uh)
    a_mask, b_mask = ok & ~odd, ok & odd
    sa, sb = a_mask[hc], b_mask[hc]
    a_ptr = np.r_[0, np.cumsum(np.bincount(hid_sorted[sa], minlength=n_uh))].astype(np.int64)
    b_ptr = np.r_[0, np.cumsum(np.bincount(hid_sorted[sb], minlength=n_uh))].astype(np.int64)
    a_col = hc[sa].astype(np.int32)
    _largest_first(a_ptr, a_col, ix.n_hashes.astype(np.int64))
    return Postings(hid, a_ptr, a_col, b_ptr, hc[sb].astype(np.int32), factor.astype(np.float64))


@njit(cache=True, nogil=True)
def _largest_first(ptr, col, size):  # pragma: no cover - numba
    """Sort each posting list by column size, largest first (ties by column id)."""
    for g in range(ptr.shape[0] - 1):
        lo, hi = ptr[g], ptr[g + 1]
        if hi - lo < 2:
            continue
        seg = col[lo:hi].copy()
        key = np.empty(hi - lo, np.int64)
        for i in range(hi - lo):
            key[i] = -size[seg[i]] * (1 << 31) + seg[i]
        order = np.argsort(key)
        for i in range(hi - lo):
            col[lo + i] = seg[order[i]]


@njit(cache=True, nogil=True, inline="always")
def _ceil_need(need, den):
    """Smallest count that may reach containment ``need`` over ``den`` (rounded down by _SLACK), >= 1."""
    x = np.ceil(need * den - _SLACK)
    return 1 if x < 1 else int(x)


@njit(cache=True, nogil=True)
def _grow(a, n):
    out = np.empty(max(2 * a.shape[0], n), a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def _count(bycol, q0, m, c0, nc, x, mult):
    """Shared hashes of the probe ``bycol[q0:q0+m]`` (sorted; at most ``mult`` copies of a hash) and the
    column ``bycol[c0:c0+nc]`` (sorted, no hash twice), or a number < ``x`` once ``x`` is out of reach."""
    lo_v, hi_v = bycol[q0], bycol[q0 + m - 1]
    # the column's hashes within the probe's range
    a, b = c0, c0 + nc
    while a < b:
        mid = (a + b) >> 1
        if bycol[mid] < lo_v:
            a = mid + 1
        else:
            b = mid
    s = a
    a, b = s, c0 + nc
    while a < b:
        mid = (a + b) >> 1
        if bycol[mid] <= hi_v:
            a = mid + 1
        else:
            b = mid
    e = a
    span = e - s
    if span * mult < x:
        return 0
    k = 0
    logn = 1
    while (1 << logn) < span:
        logn += 1
    if m * logn < span:  # binary search of each probed hash in the column's range
        lo = s
        for i in range(m):
            if k + (m - i) < x:
                return k
            v = bycol[q0 + i]
            a, b = lo, e
            while a < b:
                mid = (a + b) >> 1
                if bycol[mid] < v:
                    a = mid + 1
                else:
                    b = mid
            lo = a
            if a < e and bycol[a] == v:
                k += 1
        return k
    i, j = 0, s  # merge
    while i < m and j < e:
        if k + (m - i) < x:
            return k
        u, v = bycol[q0 + i], bycol[j]
        if u < v:
            i += 1
        elif u > v:
            j += 1
        else:
            k += 1
            i += 1  # a probe hash twice matches the column's one copy twice (JoinIndex.postings)
    return k


@njit(cache=True, nogil=True)
def _push(best, size, nb, u):
    """Keep the ``size`` largest bounds seen in ``best`` (unordered); returns the new count."""
    if nb < size:
        best[nb] = u
        return nb + 1
    lo = 0
    for i in range(1, nb):
        if best[i] < best[lo]:
            lo = i
    if u > best[lo]:
        best[lo] = u
    return nb


@njit(cache=True, nogil=True)
def _floor(best, size, nb, t):
    """The pruning threshold: ``t``, or the ``size``-th best bound once that many are known, lowered by
    ``_TIE`` (a candidate level with the pool's last member may still enter it)."""
    th = t
    if nb == size:
        lo = best[0]
        for i in range(1, nb):
            if best[i] < lo:
                lo = best[i]
        if lo > th:
            th = lo
    return th - _TIE


@njit(cache=True, nogil=True)
def _emit(o_q, o_c, o_k, o_d, n_out, qi, c, k, d):
    if n_out >= o_q.shape[0]:
        o_q, o_c, o_k, o_d = _grow(o_q, n_out + 1), _grow(o_c, n_out + 1), _grow(o_k, n_out + 1), \
            _grow(o_d, n_out + 1)
    o_q[n_out], o_c[n_out], o_k[n_out], o_d[n_out] = qi, c, k, d
    return o_q, o_c, o_k, o_d, n_out + 1


@njit(cache=True, nogil=True)
def _search(queries, skip, n_pool, probe, t, bycol, offset, n_hashes, tau, table_id, hid, a_ptr, a_col,
            b_ptr, b_col, factor):  # pragma: no cover - numba
    """(query position, candidate, shared hashes, denominator) of every candidate that may be in its
    query's pool: a superset of the pool, with exact counts (see the module docstring). The pruning
    threshold starts at ``t`` and rises to the ``n_pool[i]``-th best bound found so far; columns of the
    table ``skip[i]`` are left out (-1: none)."""
    n = n_hashes.shape[0]
    mark = np.zeros(n, np.int64)
    bcnt = np.zeros(n, np.int64)
    cand = np.empty(n, np.int32)
    best = np.empty(max(n_pool.max(), 1) if n_pool.shape[0] else 1, np.float64)
    cap = 1 << 16
    o_q = np.empty(cap, np.int32)
    o_c = np.empty(cap, np.int32)
    o_k = np.empty(cap, np.int64)
    o_d = np.empty(cap, np.int64)
    n_out = 0
    for qi in range(queries.shape[0]):
        q = queries[qi]
        stamp = qi + 1
        m = min(n_hashes[q], probe) if probe > 0 else n_hashes[q]
        if m == 0:
            continue
        q0 = offset[q]
        tq = np.int64(bycol[q0 + m - 1]) if n_hashes[q] > m else np.int64(HASH_MAX)
        tab = skip[qi]
        size = n_pool[qi]
        eager = EAGER * size
        nb = 0
        th = _floor(best, size, nb, t)
        mult = 1  # most copies of one hash in the probe (bounds a candidate's count by its size)
        run = 1
        for i in range(1, m):
            if bycol[q0 + i] == bycol[q0 + i - 1]:
                run += 1
                if run > mult:
                    mult = run
            else:
                run = 1
        # capped / hash-repeating candidates: counted over every probed hash
        n_b = 0
        for i in range(m):
            g = hid[q0 + i]
            for p in range(b_ptr[g], b_ptr[g + 1]):
                c = b_col[p]
                if table_id[c] == tab:
                    continue
                if mark[c] != -stamp:
                    mark[c] = -stamp
                    bcnt[c] = 0
                    cand[n_b] = c
                    n_b += 1
                bcnt[c] += 1
        for r in range(n_b):
            c = cand[r]
            lim = min(np.int64(tau[c]), tq)
            a, b = 0, m  # probed hashes <= min(tau_c, tq)
            while a < b:
                mid = (a + b) >> 1
                if np.int64(bycol[q0 + mid]) <= lim:
                    a = mid + 1
                else:
                    b = mid
            if a == 0:
                continue
            u = min(bcnt[c] / a, 1.0) * factor[c]
            if u >= th:
                o_q, o_c, o_k, o_d, n_out = _emit(o_q, o_c, o_k, o_d, n_out, qi, c, bcnt[c], a)
                nb = _push(best, size, nb, u)
                th = _floor(best, size, nb, t)
        # the others by prefix: walk the rarest probed hashes first, while an unseen column can reach th;
        # the first ``eager`` columns met are counted at once (their bounds raise th early), the rest
        # collect hits on the walk and are counted after it, best bound first, if still within reach
        lens = np.empty(m, np.int64)
        for i in range(m):
            g = hid[q0 + i]
            lens[i] = a_ptr[g + 1] - a_ptr[g]
        order = np.argsort(lens, kind="mergesort")
        n_now = 0
        n_d = 0
        walked = m
        for j in range(m):
            if (m - j) / m < th:
                walked = j
                break  # a column first met here holds at most m - j of the probed hashes
            g = hid[q0 + order[j]]
            for p in range(a_ptr[g], a_ptr[g + 1]):
                c = a_col[p]
                x_min = _ceil_need(th, m)
                if n_hashes[c] * mult < x_min:
                    break  # the rest of the list is smaller still
                if mark[c] == stamp:
                    if bcnt[c] > 0:
                        bcnt[c] += 1  # a deferred column: one more probed hash it holds
                    continue
                mark[c] = stamp
                bcnt[c] = 0
                if table_id[c] == tab:
                    continue
                x = _ceil_need(th / factor[c], m)
                if m - j < x or n_hashes[c] * mult < x:
                    continue
                if n_now >= eager:
                    bcnt[c] = 1
                    cand[n_d] = c
                    n_d += 1
                    continue
                n_now += 1
                k = _count(bycol, q0, m, offset[c], n_hashes[c], x, mult)
                if k < x:
                    continue
                u = min(k / m, 1.0) * factor[c]
                if u >= th:
                    o_q, o_c, o_k, o_d, n_out = _emit(o_q, o_c, o_k, o_d, n_out, qi, c, k, m)
                    nb = _push(best, size, nb, u)
                    th = _floor(best, size, nb, t)
        if n_d == 0:
            continue
        # deferred columns: at most their hits plus the positions not walked (or their size)
        ub = np.empty(n_d, np.float64)
        for r in range(n_d):
            c = cand[r]
            ub[r] = -min(bcnt[c] + m - walked, n_hashes[c] * mult) * factor[c]
        for r in np.argsort(ub, kind="mergesort"):
            c = cand[r]
            x = _ceil_need(th / factor[c], m)
            if min(bcnt[c] + m - walked, n_hashes[c] * mult) < x:
                continue
            k = _count(bycol, q0, m, offset[c], n_hashes[c], x, mult)
            if k < x:
                continue
            u = min(k / m, 1.0) * factor[c]
            if u >= th:
                o_q, o_c, o_k, o_d, n_out = _emit(o_q, o_c, o_k, o_d, n_out, qi, c, k, m)
                nb = _push(best, size, nb, u)
                th = _floor(best, size, nb, t)
    return o_q[:n_out], o_c[:n_out], o_k[:n_out], o_d[:n_out]


def pools(ix: Any, post: Postings, queries: Any, probe: int, t: float, n_pool: int, max_pool: int):
    """Yield ``(i, cols, containment, uniqueness, upper)`` for each position ``i`` of ``queries`` (in that
    order): the query's candidates of other tables with ``upper >= t``, the ``n_pool`` best by ``upper``
    and every one level with the ``n_pool``-th (at most ``max_pool``), ordered (-upper, column id):
    ``Searcher.equi_pool`` restricted to ``upper >= t``, bit for bit."""
    from lakeql.joins import rank

    queries = np.asarray(queries, dtype=np.int64)
    # columns with the same probe (a table and its copies, partitions' shared columns) are searched once,
    # without leaving out a table, for enough candidates that each keeps its pool once its own table's
    # columns are dropped (its n_pool-th best is at least the group's (n_pool + its table's width)-th)
    groups: dict[bytes, int] = {}
    grp = np.empty(len(queries), np.int64)
    reps: list[int] = []
    for i, q in enumerate(queries.tolist()):
        m = min(int(ix.n_hashes[q]), probe) if probe else int(ix.n_hashes[q])
        o = int(ix.offset[q])
        grp[i] = groups.setdefault(ix.bycol[o:o + m].tobytes(), len(reps))
        if grp[i] == len(reps):
            reps.append(q)
    reps_a = np.asarray(reps, dtype=np.int64)
    n_members = np.bincount(grp, minlength=len(reps))
    width = np.bincount(ix.table_id, minlength=int(ix.table_id.max()) + 1 if len(ix.table_id) else 1)
    extra = np.zeros(len(reps), np.int64)
    np.maximum.at(extra, grp, width[ix.table_id[queries]])
    shared = n_members > 1
    skip = np.where(shared, -1, ix.table_id[reps_a]).astype(np.int64)
    sizes = np.where(shared, n_pool + extra, n_pool).astype(np.int64)
    oq, oc, ok, od = _search(reps_a, skip, sizes, int(probe or 0), float(t), ix.bycol, ix.offset, ix.n_hashes,
                             ix.tau, ix.table_id, post.hid, post.a_ptr, post.a_col, post.b_ptr, post.b_col,
                             post.factor)
    # the containment and bound as JoinIndex._overlaps_of and Searcher.equi_pool compute them
    den = od.astype(np.float64)
    cont = np.minimum(np.where(den > 0, ok / np.maximum(den, 1), 0.0), 1.0)
    uniq = ix.uniqueness[oc]
    upper = rank.score(cont, uniq, np.ones(len(oc)))
    keep = (cont > 0) & (upper >= t)
    oq, oc, cont, uniq, upper = oq[keep], oc[keep], cont[keep], uniq[keep], upper[keep]
    order = np.lexsort((oc, -upper, oq))
    oq, oc, cont, uniq, upper = oq[order], oc[order], cont[order], uniq[order], upper[order]
    starts = np.searchsorted(oq, np.arange(len(reps) + 1))
    empty_i, empty_f = np.empty(0, np.int32), np.empty(0)
    for i, q in enumerate(queries.tolist()):
        g = int(grp[i])
        s, e = int(starts[g]), int(starts[g + 1])
        cols, c_cont, c_uniq, c_upper = oc[s:e], cont[s:e], uniq[s:e], upper[s:e]
        if shared[g]:  # the group's candidates without this column's table
            own = ix.table_id[cols] == ix.table_id[q]
            if own.any():
                keep = ~own
                cols, c_cont, c_uniq, c_upper = cols[keep], c_cont[keep], c_uniq[keep], c_upper[keep]
        if len(cols) == 0:
            yield i, empty_i, empty_f, empty_f, empty_f
            continue
        e = len(cols)
        if e > n_pool:  # the n_pool-th best and every candidate level with it, at most max_pool
            cut = c_upper[n_pool - 1]
            e = min(int(np.searchsorted(-c_upper, -cut, "right")), max_pool)
        yield i, cols[:e], c_cont[:e], c_uniq[:e], c_upper[:e]
