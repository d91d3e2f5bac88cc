"""Numba kernels of the first-stage scan: exhaustive Hamming and asymmetric (bit-plane) scans with a
fused top-k, over codes held as ``uint64`` words (one row = ``ceil(d / 64)`` words).

Why numba rather than faiss: the fused scan + top-k runs in one pass without allocating an ``n``-sized
distance array; measured on 1M x 384-bit codes it is faster than faiss ``IndexBinaryFlat`` on one thread
(see benchmarks/results/vectors.md), and the asymmetric RaBitQ estimator has no faiss equivalent.
All kernels release the GIL (``nogil``), so several DuckDB threads can scan at once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import intrinsic

from lakeql.jit import njit


@intrinsic
def _popcnt64(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
    """The CPU's popcount instruction (LLVM ``ctpop``) on one uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _compact(buf_i, buf_u, buf_e, m, floor):
    """Make room in a full candidate buffer: drop the entries whose upper bound no longer beats
    ``floor``; if more than half remain, keep the half with the best estimates. Returns the new count."""
    size = buf_i.shape[0]
    j = 0
    for t in range(m):
        if buf_u[t] >= floor:
            buf_i[j] = buf_i[t]
            buf_u[j] = buf_u[t]
            buf_e[j] = buf_e[t]
            j += 1
    m = j
    if m > size // 2:
        order = np.argsort(-buf_e[:m])[: size // 2]
        ti, tu, te = buf_i[order].copy(), buf_u[order].copy(), buf_e[order].copy()
        m = size // 2
        buf_i[:m] = ti
        buf_u[:m] = tu
        buf_e[:m] = te
    return m


@njit(cache=True, nogil=True)
def _insert(best_s, best_i, s, i):
    """Insert (s, i) into the descending-sorted top arrays (caller checked s > best_s[-1])."""
    j = best_s.shape[0] - 1
    while j > 0 and best_s[j - 1] < s:
        best_s[j] = best_s[j - 1]
        best_i[j] = best_i[j - 1]
        j -= 1
    best_s[j] = s
    best_i[j] = i


@njit(cache=True, nogil=True)
def hamming_topk(codes, q, k, allowed):
    """The ``k`` rows with the smallest Hamming distance to ``q``; returns (rows, distances).

    ``allowed`` is an empty array (all rows) or a boolean mask of rows that may be returned.
    Ties keep the lower row number first.
    """
    n, w_count = codes.shape
    k = min(k, n)
    best_s = np.full(k, -(1 << 40), np.int64)  # negated distances, descending
    best_i = np.full(k, -1, np.int64)
    use_mask = allowed.shape[0] == n
    worst = best_s[k - 1] if k > 0 else 0
    for i in range(n):
        if use_mask and not allowed[i]:
            continue
        d = 0
        for w in range(w_count):
            d += _popcnt64(codes[i, w] ^ q[w])
        s = -d
        if s > worst:
            _insert(best_s, best_i, s, i)
            worst = best_s[k - 1]
    return best_i, -best_s


@njit(cache=True, nogil=True)
def hamming_all(codes, q):
    """Hamming distance of every row to ``q`` (for tests and the estimator API)."""
    n, w_count = codes.shape
    out = np.empty(n, np.int64)
    for i in range(n):
        d = 0
        for w in range(w_count):
            d += _popcnt64(codes[i, w] ^ q[w])
        out[i] = d
    return out


@njit(cache=True, nogil=True)
def asym_topk(codes, planes, scale, add, base, total, lo, delta, popc, k, allowed):
    """Top-``k`` rows by the asymmetric estimate
    ``base + add[i] + scale[i] * (2*(lo*popc[i] + delta*S_i) - total)``.

    ``planes`` are the bit planes of the query quantized to ``B`` bits (``planes[b]`` holds bit ``b`` of
    every dimension's level), so ``S_i = sum_b 2^b popcount(code_i & plane_b)`` is the sum of the
    query's levels over the dimensions whose code bit is 1 (RaBitQ's bitwise inner product), and
    ``lo*popc[i] + delta*S_i`` approximates the sum of the (rotated) query over those dimensions.
    """
    n, w_count = codes.shape
    n_planes = planes.shape[0]
    k = min(k, n)
    best_s = np.full(k, -np.inf, np.float64)
    best_i = np.full(k, -1, np.int64)
    use_mask = allowed.shape[0] == n
    worst = -np.inf
    for i in range(n):
        if use_mask and not allowed[i]:
            continue
        acc = 0
        for b in range(n_planes):
            c = 0
            for w in range(w_count):
                c += _popcnt64(codes[i, w] & planes[b, w])
            acc += c << b
        s = base + add[i] + scale[i] * (2.0 * (lo * popc[i] + delta * acc) - total)
        if s > worst:
            _insert(best_s, best_i, s, i)
            worst = best_s[k - 1]
    return best_i, best_s


@njit(cache=True, nogil=True)
def asym4_topk(codes, p0, p1, p2, p3, scale, add, base, total, lo, delta, popc, k, allowed):
    """:func:`asym_topk` specialised for a 4-bit query (the default): each code word is loaded once and
    its four plane popcounts are combined in registers (measured 2x faster than the generic loop on 1M
    codes: 5.4 ms vs 10.2 ms)."""
    n, w_count = codes.shape
    k = min(k, n)
    best_s = np.full(k, -np.inf, np.float64)
    best_i = np.full(k, -1, np.int64)
    use_mask = allowed.shape[0] == n
    worst = -np.inf
    for i in range(n):
        if use_mask and not allowed[i]:
            continue
        acc = 0
        for w in range(w_count):
            x = codes[i, w]
            acc += (
                _popcnt64(x & p0[w])
                + (_popcnt64(x & p1[w]) << 1)
                + (_popcnt64(x & p2[w]) << 2)
                + (_popcnt64(x & p3[w]) << 3)
            )
        s = base + add[i] + scale[i] * (2.0 * (lo * popc[i] + delta * acc) - total)
        if s > worst:
            _insert(best_s, best_i, s, i)
            worst = best_s[k - 1]
    return best_i, best_s


@njit(cache=True, nogil=True)
def asym_all(codes, planes):
    """``S_i = sum_b 2^b popcount(code_i & plane_b)`` for every row (tests, estimator API)."""
    n, w_count = codes.shape
    out = np.empty(n, np.int64)
    for i in range(n):
        acc = 0
        for b in range(planes.shape[0]):
            c = 0
            for w in range(w_count):
                c += _popcnt64(codes[i, w] & planes[b, w])
            acc += c << b
        out[i] = acc
    return out


@njit(cache=True, nogil=True)
def popcounts(codes):
    """Number of set bits of every row."""
    n, w_count = codes.shape
    out = np.empty(n, np.int64)
    for i in range(n):
        c = 0
        for w in range(w_count):
            c += _popcnt64(codes[i, w])
        out[i] = c
    return out


NO_MASK = np.zeros(0, np.bool_)


def as_words(codes_u8: np.ndarray) -> np.ndarray:
    """View packed codes ``(n, nbytes)`` as ``(n, ceil(nbytes / 8))`` uint64 words (zero padded)."""
    n, nbytes = codes_u8.shape
    words = -(-nbytes // 8)
    if nbytes == words * 8 and codes_u8.flags.c_contiguous:
        return codes_u8.view(np.uint64)
    out = np.zeros((n, words * 8), np.uint8)
    out[:, :nbytes] = codes_u8
    return out.view(np.uint64)


def scan_inputs(
    codes_u8: np.ndarray, factors: dict[str, np.ndarray], scan: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Packed codes as uint64 words, plus what an asymmetric scan needs (per-row popcounts, float64
    correction factors); ``scan`` is the binarizer's ``scan`` attribute ('asym' or 'hamming')."""
    words = as_words(np.ascontiguousarray(codes_u8))
    out = dict(factors)
    if scan == "asym":
        out["popc"] = popcounts(words).astype(np.float64)
        out["factor"] = out["factor"].astype(np.float64)
        out["add"] = out["add"].astype(np.float64)
    return words, out


@njit(cache=True, nogil=True)
def asym4_bounded_spans(
    codes,
    p0,
    p1,
    p2,
    p3,
    scale,
    add,
    base,
    total,
    lo,
    delta,
    popc,
    errc,
    err_a,
    err_b,
    k,
    allowed,
    cap,
    starts,
    ends,
    mask_ids,
):
    """Candidates of an exact top-``k`` under RaBitQ's error bound, in one pass over the codes.

    Row ``i``'s estimate ``est`` (as in :func:`asym4_topk`) is within ``err = err_a * errc[i] +
    err_b * scale[i]`` of its true score with high probability (``errc``: the per-row RaBitQ bound
    coefficient, ``err_a``: the query's residual norm times the confidence factor, ``err_b``: the query
    quantization error's norm times it). The scan keeps the ``k`` best lower bounds ``est - err``; their
    ``k``-th is a floor under the true ``k``-th score, so every row whose upper bound ``est + err`` is
    above it may belong to the top ``k``: those rows are returned as (rows, upper bounds, estimates).
    At most ``4 * cap`` are buffered; when the buffer fills it is compacted against the current floor,
    and if still over half full only the best half by estimate is kept (the caller caps rescoring anyway).

    Only rows ``starts[s] <= i < ends[s]`` are scanned (the probed lists of an ANN stage, stored
    contiguously in list order: no gather per query). ``allowed`` (empty: no filter) is read at
    ``mask_ids[i]`` when ``mask_ids`` is given (the list-order row's position in the mask), else at ``i``.
    """
    n, w_count = codes.shape
    total_rows = 0
    for s in range(starts.shape[0]):
        total_rows += max(0, ends[s] - starts[s])
    k = max(min(k, total_rows), 1)
    lbs = np.full(max(k, 1), -np.inf, np.float64)
    dummy = np.full(max(k, 1), -1, np.int64)
    floor = -np.inf
    size = max(4 * cap, 1024)
    buf_i = np.empty(size, np.int64)
    buf_u = np.empty(size, np.float64)
    buf_e = np.empty(size, np.float64)
    m = 0
    use_ids = mask_ids.shape[0] == n
    use_mask = allowed.shape[0] > 0 and (use_ids or allowed.shape[0] == n)
    for s in range(starts.shape[0]):
        for i in range(starts[s], ends[s]):
            if use_mask and not allowed[mask_ids[i] if use_ids else i]:
                continue
            acc = 0
            for w in range(w_count):
                x = codes[i, w]
                acc += (
                    _popcnt64(x & p0[w])
                    + (_popcnt64(x & p1[w]) << 1)
                    + (_popcnt64(x & p2[w]) << 2)
                    + (_popcnt64(x & p3[w]) << 3)
                )
            est = base + add[i] + scale[i] * (2.0 * (lo * popc[i] + delta * acc) - total)
            err = err_a * errc[i] + err_b * scale[i]
            ub = est + err
            if ub < floor:  # ub == floor: a tie for the k-th place (review33)
                continue
            lb = est - err
            if lb > lbs[k - 1]:
                _insert(lbs, dummy, lb, i)
                floor = lbs[k - 1]
            if m == size:
                m = _compact(buf_i, buf_u, buf_e, m, floor)
            buf_i[m] = i
            buf_u[m] = ub
            buf_e[m] = est
            m += 1
    keep = buf_u[:m] >= floor  # an exact estimate (err 0: a row equal to the centroid) has ub == floor
    return buf_i[:m][keep], buf_u[:m][keep], buf_e[:m][keep]


#: rows per block of the blocked layout (:func:`blocked_inputs`): 64 uint64 lanes per code word
BLOCK = 64
#: rows :func:`blocked_codes` transposes at a time (a whole number of blocks)
BLOCKED_CHUNK = BLOCK * 4096


class BlockedCodes(NamedTuple):
    """The exhaustive bounded scan's copy of an index's codes and factors (:func:`blocked_inputs`)."""

    codes: np.ndarray  # (blocks, words, BLOCK) uint64: word w of row b * BLOCK + r at [b, w, r]
    f32: np.ndarray  # (blocks, 3, BLOCK) float32: add, factor, errc (zero past the last row)
    f64: np.ndarray  # (n, 4) float64: add, factor, popc, errc of each row, one row's values together
    bound: float  # max |add| + max factor + max errc: the scale of the float32 bound's rounding error


class BlockedSpans(NamedTuple):
    """A :func:`blocked_codes` layout: what :func:`asym4_bounded_blocked_spans` reads besides the float64
    factors (the ANN stage's list-order rows, :mod:`lakeql.vectors.ann`)."""

    codes: np.ndarray  # (blocks, words, BLOCK) uint64: word w of row b * BLOCK + r at [b, w, r]
    f32: np.ndarray  # (blocks, 3, BLOCK) float32: add, factor, errc (zero past the last row)
    bound: float  # max |add| + max factor + max errc: the scale of the float32 bound's rounding error


def blocked_codes(words: np.ndarray, factors: dict[str, np.ndarray]) -> BlockedSpans:
    """The codes transposed into blocks of ``BLOCK`` rows (each code word of 64 rows contiguous, so the
    scan's popcounts run 8 rows at a time in vector registers) with float32 copies of the bound's factors
    beside them: 60 bytes a row at 384 dimensions."""
    n, w_count = words.shape
    nb = -(-n // BLOCK)
    codes = np.zeros((nb, w_count, BLOCK), np.uint64)
    f32 = np.zeros((nb, 3, BLOCK), np.float32)
    step = BLOCKED_CHUNK  # rows transposed at a time: no padded copy of every code
    names = ("add", "factor", "errc")
    for s in range(0, n, step):
        e = min(n, s + step)
        b0, b1 = s // BLOCK, -(-e // BLOCK)
        pad = np.zeros(((b1 - b0) * BLOCK, w_count), np.uint64)
        pad[: e - s] = words[s:e]
        codes[b0:b1] = pad.reshape(b1 - b0, BLOCK, w_count).transpose(0, 2, 1)
        part = np.zeros(((b1 - b0) * BLOCK, 3), np.float32)
        for j, name in enumerate(names):
            part[: e - s, j] = factors[name][s:e]
        f32[b0:b1] = part.reshape(b1 - b0, BLOCK, 3).transpose(0, 2, 1)
    bound = sum(float(np.abs(np.asarray(factors[name])).max()) if n else 0.0 for name in names)
    return BlockedSpans(codes, f32, bound)


def blocked_inputs(words: np.ndarray, factors: dict[str, np.ndarray]) -> BlockedCodes:
    """:func:`blocked_codes` plus the float64 factors interleaved by row (one cache line per candidate):
    the exhaustive bounded scan's layout. Memory: 92 bytes a row (codes 48, float32 12, float64 32 at 384
    dimensions), built once per loaded index."""
    n = words.shape[0]
    sp = blocked_codes(words, factors)
    f64 = np.empty((n, 4), np.float64)
    for j, name in enumerate(("add", "factor", "popc", "errc")):
        f64[:, j] = factors[name]
    return BlockedCodes(sp.codes, sp.f32, f64, sp.bound)


@njit(cache=True, nogil=True)
def asym4_bounded_blocked(
    codes, f32, f64, slack, n, p0, p1, p2, p3, base, total, lo, delta, err_a, err_b, k, allowed, cap
):
    """:func:`asym4_bounded_spans` over every row of a :func:`blocked_inputs` layout, with the same result
    (rows, upper bounds, estimates), bit for bit.

    Per block of ``BLOCK`` rows the 4-bit inner products (and popcounts) of all its rows are computed
    first, vectorized across the rows, and each row's upper bound ``est + err`` in float32 from the float32
    factors. Only rows whose float32 bound exceeds the floor by more than ``slack`` (a bound on the float32
    rounding error, :func:`bounded_slack`) are then evaluated exactly as :func:`asym4_bounded_spans` does
    (float64 factors, same expressions, same order of rows): every other row has a true float64 bound at
    or below the floor, which the spans kernel skips too, so both keep the same floor, buffer and result.
    The rounding bound holds only without overflow: a float32 bound of -inf (factors near float32's
    largest value, a damaged index) says nothing about the float64 one, so such a row is never skipped
    (+inf and NaN never compare at or below the floor either).
    """
    nb, w_count, bs = codes.shape
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
    pc = np.zeros(bs, np.int64)
    ub32 = np.zeros(bs, np.float32)
    use_mask = allowed.shape[0] == n and n > 0
    lo32, de32, tot32 = np.float32(lo), np.float32(delta), np.float32(total)
    ea32, eb32, two = np.float32(err_a), np.float32(err_b), np.float32(2.0)
    for b in range(nb):
        for r in range(bs):
            acc[r] = 0
            pc[r] = 0
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
                pc[r] += _popcnt64(x)
        for r in range(bs):
            sc = f32[b, 1, r]
            ub32[r] = (
                f32[b, 0, r]
                + sc * (two * (lo32 * np.float32(pc[r]) + de32 * np.float32(acc[r])) - tot32)
                + ea32 * f32[b, 2, r]
                + eb32 * sc
            )
        lim = floor - base - slack
        o = b * bs
        for r in range(min(bs, n - o)):
            u32 = ub32[r]
            if u32 <= lim and u32 > -np.inf:  # -inf: float32 overflowed, the float64 bound may be finite
                continue
            i = o + r
            if use_mask and not allowed[i]:
                continue
            scale = f64[i, 1]
            est = base + f64[i, 0] + scale * (2.0 * (lo * f64[i, 2] + delta * acc[r]) - total)
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


@njit(cache=True, nogil=True)
def asym4_bounded_blocked_spans(
    codes,
    f32,
    add,
    scale,
    popc,
    errc,
    slack,
    n,
    p0,
    p1,
    p2,
    p3,
    base,
    total,
    lo,
    delta,
    err_a,
    err_b,
    k,
    allowed,
    cap,
    starts,
    ends,
    mask_ids,
):
    """:func:`asym4_bounded_spans` (rows ``starts[s] <= i < ends[s]`` only, ``allowed`` read at
    ``mask_ids[i]`` when given) over a :func:`blocked_codes` layout of the same rows, with the same result
    (rows, upper bounds, estimates), bit for bit: the ANN stage's probed lists scanned 64 rows at a time.

    Each span's blocks are computed whole (the popcounts of all ``BLOCK`` rows vectorized, a float32 upper
    bound per row, as :func:`asym4_bounded_blocked`), then only the span's rows of the block are visited,
    in row order; a row whose float32 bound is more than ``slack`` below the floor is skipped (its float64
    bound is at or below the floor too, so :func:`asym4_bounded_spans` skips it as well), the others are
    evaluated exactly as that kernel does, from the float64 factors ``add``, ``scale``, ``popc``,
    ``errc`` (one value a row). So the floor, the buffer and the result are the spans kernel's. A block
    shared by two spans is computed twice (its rows are visited once each)."""
    nb, w_count, bs = codes.shape
    total_rows = 0
    for s in range(starts.shape[0]):
        total_rows += max(0, ends[s] - starts[s])
    k = max(min(k, total_rows), 1)
    lbs = np.full(max(k, 1), -np.inf, np.float64)
    dummy = np.full(max(k, 1), -1, np.int64)
    floor = -np.inf
    size = max(4 * cap, 1024)
    buf_i = np.empty(size, np.int64)
    buf_u = np.empty(size, np.float64)
    buf_e = np.empty(size, np.float64)
    m = 0
    use_ids = mask_ids.shape[0] == n
    use_mask = allowed.shape[0] > 0 and (use_ids or allowed.shape[0] == n)
    acc = np.zeros(bs, np.int64)
    pc = np.zeros(bs, np.int64)
    ub32 = np.zeros(bs, np.float32)
    lo32, de32, tot32 = np.float32(lo), np.float32(delta), np.float32(total)
    ea32, eb32, two = np.float32(err_a), np.float32(err_b), np.float32(2.0)
    lim = floor - base - slack
    for s in range(starts.shape[0]):
        a, e = max(starts[s], 0), min(ends[s], n)
        if a >= e:
            continue
        for b in range(a // bs, (e - 1) // bs + 1):
            for r in range(bs):
                acc[r] = 0
                pc[r] = 0
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
                    pc[r] += _popcnt64(x)
            for r in range(bs):
                sc = f32[b, 1, r]
                ub32[r] = (
                    f32[b, 0, r]
                    + sc * (two * (lo32 * np.float32(pc[r]) + de32 * np.float32(acc[r])) - tot32)
                    + ea32 * f32[b, 2, r]
                    + eb32 * sc
                )
            o = b * bs
            for i in range(max(a, o), min(e, o + bs)):
                u32 = ub32[i - o]
                if u32 <= lim and u32 > -np.inf:  # -inf: float32 overflowed, the float64 bound may be finite
                    continue
                if use_mask and not allowed[mask_ids[i] if use_ids else i]:
                    continue
                sci = scale[i]
                est = base + add[i] + sci * (2.0 * (lo * popc[i] + delta * acc[i - o]) - total)
                err = err_a * errc[i] + err_b * sci
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


def bounded_slack(
    bound: float, dim: int, levels: int, lo: float, delta: float, total: float, err_a: float, err_b: float
) -> float:
    """How far :func:`asym4_bounded_blocked`'s float32 upper bound may sit below the float64 one: every
    float32 value and operation is within a relative 2^-24 of the exact one, and the bound is a sum of at
    most a dozen such terms, each at most ``M = |add| + factor * (2 (|lo| d + delta levels d) + |total|) +
    err_a errc + err_b factor`` (maxima over the rows); ``2^-18 M`` is 4x the sum of their worst cases."""
    inner = 2.0 * (abs(lo) + abs(delta) * levels) * dim + abs(total) + abs(err_b)
    return 2.0**-18 * (bound * (1.0 + inner + abs(err_a))) + 1e-12


@njit(cache=True, nogil=True)
def count_allowed(allowed, ids, starts, ends):
    """How many rows ``starts[s] <= t < ends[s]`` have ``allowed[ids[t]]`` (the qualifying rows of an ANN
    stage's probed lists, stored in list order): one pass, no gather."""
    c = 0
    for s in range(starts.shape[0]):
        for t in range(starts[s], ends[s]):
            if allowed[ids[t]]:
                c += 1
    return c


@intrinsic
def _prefetch_row(typingctx, arr, row):  # noqa: ARG001 - numba intrinsic signature
    """Prefetch row ``row`` of a C-contiguous 2-D uint8 array (LLVM ``prefetch``, one per 64-byte line):
    unlike a load it never stalls the loop, so the next rows' memory arrives while this one computes."""
    sig = types.void(arr, row)

    def codegen(context, builder, signature, args):  # noqa: ARG001
        from llvmlite import ir
        from numba.core import cgutils

        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = builder.bitcast(
            cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], zero]),
            ir.IntType(8).as_pointer(),
        )
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        width = builder.extract_value(ary.shape, 1)
        for off in range(0, 1024, 64):  # the row's lines, rows up to 1,024 bytes (a prefetch never faults)
            inside = builder.icmp_signed("<", context.get_constant(types.intp, off), width)
            with builder.if_then(inside):
                line = builder.gep(ptr, [ir.Constant(ir.IntType(64), off)])
                builder.call(fn, [line, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


_AHEAD = 8


@njit(cache=True, nogil=True, fastmath=True)
def rescore_signed_u8(tier, tpos, codes, wpos, scales, qr, base):
    """Scores of the uint8 rescoring tier of a rabitq index in one fused pass (no float copy of the rows).

    Row ``r = wpos[t]`` stores its rotated residual's magnitudes in ``tier[tpos[t]]`` (uint8) and their
    signs in its packed code ``codes[r]`` (uint8 bytes, C-contiguous, bit ``j % 8`` of byte ``j // 8`` =
    dimension ``j``, set = positive), so its score is ``base + scales[r] * sum_j tier[., j] * sign_j *
    qr[j]`` (``qr``: the query's rotated residual, float32; ``base = <q, c>``). The code is read 64
    dimensions at a time as little-endian uint64 words and each sign taken by a shift of the word, one
    branch-free loop over the dimensions that LLVM vectorizes (AVX-512: the shift, the conversions and the
    products 8-16 lanes wide); the rows ``_AHEAD`` positions on are prefetched. Callers pass positions
    sorted (fewer TLB and cache misses on a memory-mapped tier). 16,000 rows of a 384-dim tier: 1.3-1.6 ms
    of CPU when cached or contiguous (3.4-3.7 ms with the former per-byte sign table), 4.3 ms scattered
    over 0.77 GB (benchmarks/results/ann10m.md)."""
    n = tpos.shape[0]
    d = tier.shape[1]
    nw = d // 64
    out = np.empty(n, np.float32)
    for t in range(n):
        if t + _AHEAD < n:
            _prefetch_row(tier, tpos[t + _AHEAD])
        i = tpos[t]
        r = wpos[t]
        words = codes[r, : 8 * nw].view(np.uint64)
        acc = np.float32(0.0)
        for b in range(nw):
            w = words[b]
            for jj in range(64):
                j = b * 64 + jj
                bit = np.int32((w >> np.uint64(jj)) & np.uint64(1))
                acc += np.float32(tier[i, j]) * qr[j] * np.float32(2 * bit - 1)
        for j in range(nw * 64, d):  # dimensions past the last whole word
            bit = np.int32((codes[r, j >> 3] >> (j & 7)) & 1)
            acc += np.float32(tier[i, j]) * qr[j] * np.float32(2 * bit - 1)
        out[t] = base + scales[r] * acc
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _matvec(a, x):
    m, n = a.shape
    out = np.empty(m, np.float32)
    for i in range(m):
        acc = np.float32(0.0)
        for j in range(n):
            acc += a[i, j] * x[j]
        out[i] = acc
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _vecmat(x, a):
    m, n = a.shape
    out = np.zeros(n, np.float32)
    for i in range(m):
        xi = x[i]
        for j in range(n):
            out[j] += xi * a[i, j]
    return out


def matvec(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a @ x`` (float32, one thread). Per query the search multiplies small matrices (the 384 x 384
    rotation, the IVF centroids) by one vector; through BLAS such a product woke its worker threads,
    which on a loaded machine cost 8 ms of CPU for 4,096 x 384 against 0.3 ms on one thread."""
    a, x = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(x, np.float32)
    if a.ndim != 2 or x.ndim != 1 or a.shape[1] != x.shape[0]:  # the loop has no bounds checks
        raise ValueError(f"matvec of shapes {a.shape} and {x.shape}")
    return _matvec(a, x)


def vecmat(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``x @ a`` (float32, one thread; see :func:`matvec`)."""
    x, a = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(a, np.float32)
    if a.ndim != 2 or x.ndim != 1 or a.shape[0] != x.shape[0]:  # the loop has no bounds checks
        raise ValueError(f"vecmat of shapes {x.shape} and {a.shape}")
    return _vecmat(x, a)
