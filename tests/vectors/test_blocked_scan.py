"""The exhaustive bounded scan over the blocked layout (:func:`kernels.asym4_bounded_blocked`: 4-bit inner
products vectorized across 64 rows, a float32 bound first, the float64 bound only for rows the float32 one
cannot rule out) returns exactly what the row-by-row scan (:func:`kernels.asym4_bounded_spans`) returns:
the same rows, bounds and estimates in the same order, on near-duplicate clusters of real MiniLM
embeddings, with filters, a buffer small enough to be compacted, sizes that are not a multiple of the
block, and factors large enough that float32 rounding matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakeql.vectors import binarizers, fullscan, kernels
from lakeql.vectors import search as vsearch
from lakeql.vectors.codes import CodeIndex, encode_tier


@pytest.fixture(scope="module")
def dup(real):
    """(binarizer, words, factors, rows, queries): 30 noisy copies of each docstring embedding, every 5th
    row repeated exactly (ties); the last 40 docstrings held out as queries."""
    x = real[1]
    docs, queries = x[:-40], x[-40:]
    rng = np.random.default_rng(3)
    rows = np.repeat(docs, 30, axis=0) + rng.normal(0, 0.01, (len(docs) * 30, docs.shape[1]))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    rows = np.concatenate([rows, rows[::5]])
    b = binarizers.get("rabitq", rows.shape[1]).fit(rows)
    codes, factors = b.encode(rows)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    return b, words, factors, rows, queries


def _same(a, b):
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.mark.parametrize("k,cap", [(10, 20_000), (1, 20_000), (100, 20_000), (10, 50)])
def test_blocked_equals_row_scan(dup, k, cap):
    b, words, factors, rows, queries = dup
    n = len(words) - 13  # not a multiple of the block
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    blocked = kernels.blocked_inputs(words, factors)
    assert blocked.codes.shape == (-(-n // kernels.BLOCK), words.shape[1], kernels.BLOCK)
    masks = [None, np.random.default_rng(1).random(n) < 0.3, np.zeros(n, bool), np.ones(n, bool)]
    sizes = []
    for i, q in enumerate(queries):
        allowed = masks[i % len(masks)]
        want = b.candidates(q, words, factors, k, allowed, cap)
        _same(b.candidates(q, words, factors, k, allowed, cap, blocked=blocked), want)
        sizes.append(len(want[0]))
    assert max(sizes) > k  # the bound keeps more than k rows on near-duplicates: the floor is exercised


@pytest.mark.parametrize("shift", [1e3, 1e6])
def test_blocked_with_large_factors(dup, shift):
    """``add`` shifted by ``shift`` (float32 then keeps 3 decimals of it, or none: without the slack
    the 1e6 case loses rows): still the same rows,
    because the float32 bound's slack grows with the factors."""
    b, words, factors, rows, queries = dup
    factors = dict(factors, add=factors["add"] + shift)
    blocked = kernels.blocked_inputs(words, factors)
    for q in queries:
        want = b.candidates(q, words, factors, 10, None, 20_000)
        _same(b.candidates(q, words, factors, 10, None, 20_000, blocked=blocked), want)


@pytest.mark.parametrize("n", [0, 1, 5, 64, 65])
def test_blocked_small(dup, n):
    b, words, factors, rows, queries = dup
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    blocked = kernels.blocked_inputs(words, factors)
    for q in queries[:3]:
        for k in (1, 10):
            want = b.candidates(q, words, factors, k, None, 100)
            _same(b.candidates(q, words, factors, k, None, 100, blocked=blocked), want)


def test_search_uses_blocked_layout_same_hits(dup, monkeypatch):
    """``search`` builds the layout once per index and returns the same hits and stats as without it."""
    b, words, factors, rows, queries = dup
    values, scales, space, _ = encode_tier(rows, "int8", b)
    meta = {"dim": rows.shape[1], "tier_space": space, "tier": "int8"}
    idx = CodeIndex(Path("."), meta, np.arange(len(rows)), words, factors, values, scales, b)
    got = []
    for q in queries:
        st: dict = {}
        got.append((*vsearch.search(idx, q, 10, stats=st), st))
    layout = idx.blocked()
    assert layout is not None and idx.blocked() is layout
    monkeypatch.setattr(CodeIndex, "blocked", lambda self: None)
    for q, (pos, scores, st) in zip(queries, got, strict=True):
        st2: dict = {}
        pos2, scores2 = vsearch.search(idx, q, 10, stats=st2)
        assert pos.tolist() == pos2.tolist() and np.array_equal(scores, scores2) and st == st2


def test_concurrent_first_searches_build_one_layout(dup, monkeypatch):
    """Searches from several threads (DuckDB calls the UDF from its own threads) on an index whose
    layout is not built yet: one layout is built and kept, every thread gets the single-thread hits."""
    from concurrent.futures import ThreadPoolExecutor

    b, words, factors, rows, queries = dup
    values, scales, space, _ = encode_tier(rows, "int8", b)
    meta = {"dim": rows.shape[1], "tier_space": space, "tier": "int8"}

    def fresh() -> CodeIndex:
        return CodeIndex(Path("."), meta, np.arange(len(rows)), words, factors, values, scales, b)

    want = [vsearch.search(fresh(), q, 10)[0].tolist() for q in queries[:8]]
    idx = fresh()
    built = []
    real_build = fullscan.full_layout

    def counting(*a):
        built.append(1)
        return real_build(*a)

    monkeypatch.setattr(fullscan, "full_layout", counting)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: vsearch.search(idx, q, 10)[0].tolist(), queries[:8]))
    assert got == want and len(built) == 1 and idx.blocked() is not None


@pytest.mark.parametrize("k", [10, 10_000_000])
def test_blocked_float32_overflow(dup, k):
    """Factors finite in float32 whose float32 bound overflows to -inf (a hand-made or damaged index:
    ``factor`` 3e38) while the float64 bound is finite: the row scan keeps such a row while fewer than
    ``k`` lower bounds are in (floor -inf), so the blocked scan must not rule it out on its float32 bound."""
    b, words, factors, rows, queries = dup
    n = 500
    words = words[:n]
    factors = {name: v[:n].copy() for name, v in factors.items()}
    factors["factor"][::7] = 3e38
    with np.errstate(all="ignore"):
        factors["errc"] = b.error_coefficients(factors)
        blocked = kernels.blocked_inputs(words, factors)
    for q in queries[:10]:
        want = b.candidates(q, words, factors, k, None, 20_000)
        _same(b.candidates(q, words, factors, k, None, 20_000, blocked=blocked), want)


@pytest.mark.parametrize(
    "limit,built", [("0", False), ("0.5", False), ("64", True), ("oops", True), ("inf", True), ("nan", True)]
)
def test_blocked_layout_size_cap(dup, monkeypatch, limit, built):
    """``LAKEQL_BLOCKED_MAX_MB`` caps the layout (the search falls back to the row scan, same hits):
    ~0.58 MB here (6,090 rows x 96 bytes), so 0.5 MB leaves it unbuilt; a bad value is the default."""
    b, words, factors, rows, queries = dup
    monkeypatch.setenv("LAKEQL_BLOCKED_MAX_MB", limit)
    values, scales, space, _ = encode_tier(rows, "int8", b)
    meta = {"dim": rows.shape[1], "tier_space": space, "tier": "int8"}
    idx = CodeIndex(Path("."), meta, np.arange(len(rows)), words, factors, values, scales, b)
    ref = CodeIndex(Path("."), meta, np.arange(len(rows)), words, factors, values, scales, b)
    assert 0.5 * 2**20 < idx.blocked_bytes() < 64 * 2**20
    monkeypatch.setattr(ref, "blocked", lambda: None)  # the row scan
    for q in queries[:5]:
        got, want = vsearch.search(idx, q, 10), vsearch.search(ref, q, 10)
        assert got[0].tolist() == want[0].tolist() and np.array_equal(got[1], want[1])
    assert (idx._blocked is not None) == built
    if built:
        layout = idx._blocked
        assert layout.codes.nbytes + layout.f32.nbytes + layout.f64.nbytes == idx.blocked_bytes()


# ------------------------------------------- the ANN stage's probed spans over a blocked list order


def _spans(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint spans of ``[0, n)``: some starting or ending inside a block, some sharing one
    (a gap shorter than a block), one empty."""
    cuts = np.sort(rng.choice(np.arange(1, n), 24, replace=False))
    starts, ends = cuts[0::2].astype(np.int64), cuts[1::2].astype(np.int64)
    starts = np.concatenate([[0], starts, [n]])
    ends = np.concatenate([[3], ends, [n]])  # [0, 3) shares a block with the next span; [n, n) is empty
    keep = np.r_[True, starts[1:] >= ends[:-1]]
    return starts[keep], ends[keep]


@pytest.mark.parametrize("k,cap", [(10, 20_000), (1, 20_000), (100, 20_000), (10, 50)])
def test_blocked_spans_equal_row_scan(dup, k, cap):
    """:func:`kernels.asym4_bounded_blocked_spans` over a :func:`kernels.blocked_codes` layout returns
    what the row-by-row spans kernel returns, bit for bit (rows, bounds, estimates, in order), with and
    without a filter read through ``mask_ids`` (list order -> table order positions)."""
    b, words, factors, rows, queries = dup
    n = len(words) - 13
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    layout = kernels.blocked_codes(words, factors)
    assert layout.codes.shape == (-(-n // kernels.BLOCK), words.shape[1], kernels.BLOCK)
    rng = np.random.default_rng(5)
    ids = rng.permutation(n)  # where list-order row t reads the table-order mask
    masks = [None, rng.random(n) < 0.3, np.zeros(n, bool), np.ones(n, bool)]
    sizes = []
    for i, q in enumerate(queries):
        spans = _spans(rng, n)
        allowed = masks[i % len(masks)]
        mask_ids = None if allowed is None or i % 2 else ids
        want = b.candidates(q, words, factors, k, allowed, cap, spans=spans, mask_ids=mask_ids)
        got = b.candidates(q, words, factors, k, allowed, cap, spans=spans, mask_ids=mask_ids, blocked=layout)
        _same(got, want)
        sizes.append(len(want[0]))
    assert max(sizes) > k


@pytest.mark.parametrize("shift", [1e3, 1e6])
def test_blocked_spans_with_large_factors(dup, shift):
    b, words, factors, rows, queries = dup
    factors = dict(factors, add=factors["add"] + shift)
    layout = kernels.blocked_codes(words, factors)
    rng = np.random.default_rng(6)
    for q in queries:
        spans = _spans(rng, len(words))
        want = b.candidates(q, words, factors, 10, None, 20_000, spans=spans)
        _same(b.candidates(q, words, factors, 10, None, 20_000, spans=spans, blocked=layout), want)


def test_blocked_spans_float32_overflow(dup):
    b, words, factors, rows, queries = dup
    n = 500
    words = words[:n]
    factors = {name: v[:n].copy() for name, v in factors.items()}
    factors["factor"][::7] = 3e38
    spans = (np.array([0, 130, 300], np.int64), np.array([70, 290, 500], np.int64))
    with np.errstate(all="ignore"):
        factors["errc"] = b.error_coefficients(factors)
        layout = kernels.blocked_codes(words, factors)
    for q in queries[:10]:
        for k in (10, 10_000_000):
            want = b.candidates(q, words, factors, k, None, 20_000, spans=spans)
            _same(b.candidates(q, words, factors, k, None, 20_000, spans=spans, blocked=layout), want)


def test_blocked_codes_is_the_exhaustive_layout(dup):
    """The spans layout is the exhaustive layout's codes and float32 factors (built in chunks)."""
    b, words, factors, rows, queries = dup
    full = kernels.blocked_inputs(words, factors)
    part = kernels.blocked_codes(words, factors)
    assert np.array_equal(full.codes, part.codes) and np.array_equal(full.f32, part.f32)
    assert full.bound == part.bound


def test_blocked_codes_in_chunks(dup, monkeypatch):
    """Built a few blocks at a time (chunks that end inside the last block too): the same layout."""
    b, words, factors, rows, queries = dup
    n = len(words) - 13
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    whole = kernels.blocked_codes(words, factors)
    monkeypatch.setattr(kernels, "BLOCKED_CHUNK", 3 * kernels.BLOCK)
    part = kernels.blocked_codes(words, factors)
    assert np.array_equal(whole.codes, part.codes) and np.array_equal(whole.f32, part.f32)
    assert whole.bound == part.bound
