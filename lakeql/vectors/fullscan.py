"""The exhaustive bounded scan's own blocked layout and kernel (every row of a code index, no lists).

:func:`lakeql.vectors.kernels.asym4_bounded_blocked` computes, per block of 64 rows, the query's 4-bit
inner products and each row's popcount (five ``POPCNT`` a code word) and then a float32 upper bound per
row, and visits every row of every block in a scalar loop to compare that bound with the floor. Two
things in that pass are per-row constants or almost always idle, and this module removes them:

* the codes' popcounts never change, so the layout stores them (as float32, exact up to 2^24 bits)
  beside the other float32 factors: four ``POPCNT`` a word instead of five, +4 bytes a row;
* at 1M rows only ~0.2% of rows pass the float32 test (~2,000 of 1M on near-duplicates), yet the
  blocked kernel visits all 64 rows of every block in a scalar loop to find them and then stalls on
  each one's float64 factors (a cache miss at a scattered row); here the vectorized loop that computes
  the bounds also sets one bit a row that passes, a chunk's passing rows are listed first, and their
  float64 step runs over the list with the factors prefetched ahead (measured: the pass alone 0.88x
  faiss' binary scan, the row step on ~2,000 rows 0.3x before, ~0.15x after; benchmarks/results/
  sqlscan.md).

The float32 bound is the same expression on the same float32 values as ``asym4_bounded_blocked`` (the
popcount converted from the stored float32 instead of the computed integer: the same value), so it is
the same bit for bit, and every row that reaches the float64 step is evaluated exactly as there: the
result (rows, upper bounds, estimates) is identical (tests/vectors/test_fullscan.py). The ANN stage's
list-order layout (:func:`kernels.blocked_codes`, written to disk) is not changed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import intrinsic

from lakeql.jit import njit
from lakeql.vectors.kernels import (
    BLOCK,
    BLOCKED_CHUNK,
    _compact,
    _insert,
    _popcnt64,
    _prefetch_row,
    popcounts,
)

#: float32 factor rows of the layout: add, factor, errc, popc
FACTOR_ROWS = ("add", "factor", "errc", "popc")
#: blocks whose kept rows are gathered before their float64 step (16,384 rows at 64 a block)
CHUNK_BLOCKS = 256
#: kept rows ahead whose float64 factors are prefetched
PREFETCH_AHEAD = 8


@intrinsic
def _cttz64(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
    """The index of the lowest set bit of a nonzero uint64 (LLVM ``cttz``: one ``TZCNT``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.cttz(args[0], context.get_constant(types.boolean, True))

    return sig, codegen


class FullLayout(NamedTuple):
    """The exhaustive scan's copy of an index's codes and factors (:func:`full_layout`)."""

    codes: np.ndarray  # (blocks, words, BLOCK) uint64: word w of row b * BLOCK + r at [b, w, r]
    f32: np.ndarray  # (blocks, 4, BLOCK) float32: add, factor, errc, popc (zero past the last row)
    f64: np.ndarray  # (n, 4) float64: add, factor, popc, errc of each row, one row's values together
    bound: float  # max |add| + max factor + max errc: the scale of the float32 bound's rounding error


def layout_bytes(n: int, words: int) -> int:
    """Bytes :func:`full_layout` takes for ``n`` rows of ``words`` code words: codes padded to whole
    blocks, 4 float32 factors a row (padded too), 4 float64 a row (96 bytes a row at 384 dimensions)."""
    return -(-n // BLOCK) * BLOCK * (8 * words + 16) + 32 * n


def _aligned_rows(n: int) -> np.ndarray:
    """An uninitialized C-contiguous (n, 4) float64 array starting on a 64-byte boundary, so each row
    (32 bytes) lies inside one cache line: the one line :func:`asym4_bounded_full` prefetches ahead of a
    kept row is all its float64 step reads (NumPy aligns to 16 bytes: every other row straddled two
    lines, the second one never prefetched)."""
    raw = np.empty(4 * n + 8, np.float64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip : skip + 4 * n].reshape(n, 4)


def full_layout(words: np.ndarray, factors: dict[str, np.ndarray]) -> FullLayout:
    """The codes transposed into blocks of ``BLOCK`` rows (each code word of 64 rows contiguous, so the
    popcounts run 8 rows at a time in vector registers), float32 copies of (add, factor, errc, popc) in
    the same blocks, and the float64 (add, factor, popc, errc) interleaved by row (one cache line per row
    that reaches the float64 step). Transposed ``BLOCKED_CHUNK`` rows at a time (no padded copy of every
    code)."""
    n, w_count = words.shape
    nb = -(-n // BLOCK)
    codes = np.zeros((nb, w_count, BLOCK), np.uint64)
    f32 = np.zeros((nb, len(FACTOR_ROWS), BLOCK), np.float32)
    for s in range(0, n, BLOCKED_CHUNK):
        e = min(n, s + BLOCKED_CHUNK)
        b0, b1 = s // BLOCK, -(-e // BLOCK)
        pad = np.zeros(((b1 - b0) * BLOCK, w_count), np.uint64)
        pad[: e - s] = words[s:e]
        codes[b0:b1] = pad.reshape(b1 - b0, BLOCK, w_count).transpose(0, 2, 1)
        part = np.zeros(((b1 - b0) * BLOCK, len(FACTOR_ROWS)), np.float32)
        for j, name in enumerate(FACTOR_ROWS[:3]):
            part[: e - s, j] = factors[name][s:e]
        part[: e - s, 3] = popcounts(words[s:e])  # the codes' own popcounts: what the blocked kernel computes
        f32[b0:b1] = part.reshape(b1 - b0, BLOCK, len(FACTOR_ROWS)).transpose(0, 2, 1)
    f64 = _aligned_rows(n)
    for j, name in enumerate(("add", "factor", "popc", "errc")):
        f64[:, j] = factors[name]
    names = ("add", "factor", "errc")
    bound = sum(float(np.abs(np.asarray(factors[name])).max()) if n else 0.0 for name in names)
    return FullLayout(codes, f32, f64, bound)


@njit(cache=True, nogil=True)
def asym4_bounded_full(
    codes, f32, f64, slack, n, p0, p1, p2, p3, base, total, lo, delta, err_a, err_b, k, allowed, cap
):
    """:func:`lakeql.vectors.kernels.asym4_bounded_blocked` over a :func:`full_layout`: the same result
    (rows, upper bounds, estimates), bit for bit (see the module docstring).

    In chunks of ``CHUNK_BLOCKS`` blocks. Per block: the 4-bit inner products of its 64 rows (four
    ``AND`` + ``POPCNT`` a word, vectorized across rows); each row's float32 upper bound ``est + err``
    from the float32 factors (the stored popcount), and in the same loop a 64-bit mask of the rows the
    float32 test cannot rule out (bound above the floor at the chunk's start less ``slack``, or -inf:
    overflow); those rows (position, product, float32 bound) are appended to the chunk's list. Then
    the list's rows, in row order, go through the blocked kernel's row step exactly (the float32 test
    again against the current floor, the filter, float64 factors, same expressions, same buffer and
    compaction), their float64 factors prefetched ``PREFETCH_AHEAD`` rows ahead (so their cache
    misses overlap instead of stalling one by one). The floor only rises, so a row the chunk's test
    rules out is ruled out at its turn in the blocked kernel too, which then skips it without changing
    its state: both kernels see the same rows in the same order with the same state."""
    nb, w_count, bs = codes.shape
    if bs > 64:
        raise ValueError("a full-scan layout has blocks of at most 64 rows (one bit each in a uint64)")
    if f64.shape[0] != n or nb != -(-n // bs) or f32.shape[0] != nb:
        # a layout of other rows (a stale copy): its last block's row mask and the float64 factors and
        # filter read at a kept row would run past their ends
        raise ValueError("the full-scan layout holds other rows than the codes scanned: rebuild it")
    k = max(min(k, n), 1)
    lbs = np.full(k, -np.inf, np.float64)
    dummy = np.full(k, -1, np.int64)
    floor = -np.inf
    size = max(4 * cap, 1024)
    buf_i = np.empty(size, np.int64)
    buf_u = np.empty(size, np.float64)
    buf_e = np.empty(size, np.float64)
    m = 0
    acc = np.zeros(bs, np.int64)
    ub32 = np.zeros(bs, np.float32)
    kept_i = np.empty(CHUNK_BLOCKS * bs, np.int64)  # one chunk's rows the float32 test kept
    kept_a = np.empty(CHUNK_BLOCKS * bs, np.int64)
    kept_u = np.empty(CHUNK_BLOCKS * bs, np.float32)
    use_mask = allowed.shape[0] == n and n > 0
    lo32, de32, tot32 = np.float32(lo), np.float32(delta), np.float32(total)
    ea32, eb32, two = np.float32(err_a), np.float32(err_b), np.float32(2.0)
    ninf = np.float32(-np.inf)
    lim = floor - base - slack
    for c0 in range(0, nb, CHUNK_BLOCKS):
        nk = 0
        lim_c = lim  # the chunk's test: the floor only rises, so a row it rules out stays ruled out
        for b in range(c0, min(nb, c0 + CHUNK_BLOCKS)):
            for r in range(bs):
                acc[r] = 0
            for w in range(w_count):
                q0, q1, q2, q3 = p0[w], p1[w], p2[w], p3[w]
                for r in range(bs):
                    x = codes[b, w, r]
                    acc[r] += (
                        _popcnt64(x & q0)
                        + (_popcnt64(x & q1) << 1)
                        + (_popcnt64(x & q2) << 2)
                        + (_popcnt64(x & q3) << 3)
                    )
            alive = np.uint64(0)
            for r in range(bs):
                sc = f32[b, 1, r]
                u = (
                    f32[b, 0, r]
                    + sc * (two * (lo32 * f32[b, 3, r] + de32 * np.float32(acc[r])) - tot32)
                    + ea32 * f32[b, 2, r]
                    + eb32 * sc
                )
                ub32[r] = u
                out = (u <= lim_c) & (u > ninf)  # -inf: float32 overflowed, the float64 bound may be finite
                alive |= np.uint64(0 if out else 1) << np.uint64(r)
            o = b * bs
            if o + bs > n:  # the last block: no padding row
                alive &= (np.uint64(1) << np.uint64(n - o)) - np.uint64(1)
            while alive != np.uint64(0):  # the kept rows, in order (lowest bit first)
                r = np.int64(_cttz64(alive))
                alive &= alive - np.uint64(1)
                kept_i[nk] = o + r
                kept_a[nk] = acc[r]
                kept_u[nk] = ub32[r]
                nk += 1
        for t in range(nk):  # the blocked kernel's row step, on the kept rows in order
            if t + PREFETCH_AHEAD < nk:
                _prefetch_row(f64, kept_i[t + PREFETCH_AHEAD])
            u32 = kept_u[t]
            if u32 <= lim and u32 > -np.inf:  # the floor rose since the chunk's test
                continue
            i = kept_i[t]
            if use_mask and not allowed[i]:
                continue
            scale = f64[i, 1]
            est = base + f64[i, 0] + scale * (2.0 * (lo * f64[i, 2] + delta * kept_a[t]) - total)
            err = err_a * f64[i, 3] + err_b * scale
            ub = est + err
            if ub < floor:  # ub == floor: a tie for the k-th place (review33)
                continue
            lb = est - err
            if lb > lbs[k - 1]:
                _insert(lbs, dummy, lb, i)
                floor = lbs[k - 1]
                lim = floor - base - slack
            if m == size:
                m = _compact(buf_i, buf_u, buf_e, m, floor)
            buf_i[m] = i
            buf_u[m] = ub
            buf_e[m] = est
            m += 1
    keep = buf_u[:m] >= floor  # an exact estimate (err 0: a row equal to the centroid) has ub == floor
    return buf_i[:m][keep], buf_u[:m][keep], buf_e[:m][keep]
