"""The exhaustive scan's own layout (:mod:`lakeql.vectors.fullscan`: the codes' popcounts stored, the
float32 test counted per block before any row is visited) returns exactly what the blocked kernel it
replaces (:func:`kernels.asym4_bounded_blocked`) and the row-by-row scan (:func:`kernels.asym4_bounded_spans`)
return: the same rows, bounds and estimates in the same order, on near-duplicate clusters of real MiniLM
embeddings (tests/vectors/conftest.py), with filters, a buffer small enough to be compacted, sizes that
are not a multiple of the block, factors large enough that float32 rounding matters, and float32
overflow; and ``search`` through it gives the same hits, scores and stats."""

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


def _three(b, q, words, factors, k, allowed, cap):
    """(row scan, blocked kernel, full-scan kernel) results of one query."""
    return (
        b.candidates(q, words, factors, k, allowed, cap),
        b.candidates(q, words, factors, k, allowed, cap, blocked=kernels.blocked_inputs(words, factors)),
        b.candidates(q, words, factors, k, allowed, cap, blocked=fullscan.full_layout(words, factors)),
    )


def test_layout(dup):
    """Codes and the first three float32 rows are the blocked layout's; the fourth is the popcounts."""
    b, words, factors, rows, queries = dup
    n = len(words) - 13
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    full, old = fullscan.full_layout(words, factors), kernels.blocked_inputs(words, factors)
    assert np.array_equal(full.codes, old.codes) and np.array_equal(full.f32[:, :3], old.f32)
    assert np.array_equal(full.f64, old.f64) and full.bound == old.bound
    pc = full.f32[:, 3].reshape(-1)
    assert np.array_equal(pc[:n], kernels.popcounts(words)) and not pc[n:].any()
    assert full.codes.nbytes + full.f32.nbytes + full.f64.nbytes == fullscan.layout_bytes(*words.shape)


@pytest.mark.parametrize("k,cap", [(10, 20_000), (1, 20_000), (100, 20_000), (10, 50)])
def test_full_equals_blocked_and_row_scan(dup, k, cap):
    b, words, factors, rows, queries = dup
    n = len(words) - 13  # not a multiple of the block
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    full, old = fullscan.full_layout(words, factors), kernels.blocked_inputs(words, factors)
    masks = [None, np.random.default_rng(1).random(n) < 0.3, np.zeros(n, bool), np.ones(n, bool)]
    sizes = []
    for i, q in enumerate(queries):
        allowed = masks[i % len(masks)]
        want = b.candidates(q, words, factors, k, allowed, cap)
        _same(b.candidates(q, words, factors, k, allowed, cap, blocked=old), want)
        _same(b.candidates(q, words, factors, k, allowed, cap, blocked=full), want)
        sizes.append(len(want[0]))
    assert max(sizes) > k  # the bound keeps more than k rows on near-duplicates: the floor is exercised


@pytest.mark.parametrize("shift", [1e3, 1e6])
def test_full_with_large_factors(dup, shift):
    """``add`` shifted by ``shift``: float32 keeps few or no decimals of it; the slack still holds."""
    b, words, factors, rows, queries = dup
    factors = dict(factors, add=factors["add"] + shift)
    for q in queries:
        want, old, full = _three(b, q, words, factors, 10, None, 20_000)
        _same(old, want)
        _same(full, want)


@pytest.mark.parametrize("n", [0, 1, 5, 64, 65, 129])
def test_full_small(dup, n):
    b, words, factors, rows, queries = dup
    words, factors = words[:n], {name: v[:n] for name, v in factors.items()}
    for q in queries[:3]:
        for k in (1, 10):
            want, _old, full = _three(b, q, words, factors, k, None, 100)
            _same(full, want)


@pytest.mark.parametrize("k", [10, 10_000_000])
def test_full_float32_overflow(dup, k):
    """``factor`` 3e38 (finite in float32, the float32 bound -inf, the float64 one finite): such rows are
    never skipped on their float32 bound, so the result is the row scan's."""
    b, words, factors, rows, queries = dup
    n = 500
    words = words[:n]
    factors = {name: v[:n].copy() for name, v in factors.items()}
    factors["factor"][::7] = 3e38
    with np.errstate(all="ignore"):
        factors["errc"] = b.error_coefficients(factors)
        for q in queries[:10]:
            want, _old, full = _three(b, q, words, factors, k, None, 20_000)
            _same(full, want)


def test_popcounts_from_the_codes(dup):
    """The stored popcounts are the codes' own, whatever ``factors['popc']`` says (a damaged or
    hand-made factor changes the float64 step for every kernel alike, never the float32 filter)."""
    b, words, factors, rows, queries = dup
    bad = dict(factors, popc=np.zeros_like(factors["popc"]))
    full = fullscan.full_layout(words, bad)
    assert np.array_equal(full.f32[:, 3].reshape(-1)[: len(words)], kernels.popcounts(words))
    for q in queries[:5]:
        _same(
            b.candidates(q, words, bad, 10, None, 20_000, blocked=full),
            b.candidates(q, words, bad, 10, None, 20_000, blocked=kernels.blocked_inputs(words, bad)),
        )


def test_search_same_hits_scores_stats(dup, monkeypatch):
    """``search`` builds the full-scan layout (once) and returns the hits, scores and stats of the blocked
    kernel and of the row scan."""
    b, words, factors, rows, queries = dup
    values, scales, space, _ = encode_tier(rows, "int8", b)
    meta = {"dim": rows.shape[1], "tier_space": space, "tier": "int8"}
    idx = CodeIndex(Path("."), meta, np.arange(len(rows)), words, factors, values, scales, b)
    got = []
    for q in queries:
        st: dict = {}
        got.append((*vsearch.search(idx, q, 10, stats=st), st))
    layout = idx.blocked()
    assert isinstance(layout, fullscan.FullLayout) and idx.blocked() is layout
    old = kernels.blocked_inputs(words, factors)
    for replacement in (lambda self: old, lambda self: None):  # the blocked kernel, then the row scan
        monkeypatch.setattr(CodeIndex, "blocked", replacement)
        for q, (pos, scores, st) in zip(queries, got, strict=True):
            st2: dict = {}
            pos2, scores2 = vsearch.search(idx, q, 10, stats=st2)
            assert pos.tolist() == pos2.tolist() and np.array_equal(scores, scores2) and st == st2


@pytest.mark.parametrize("k,cap", [(10, 20_000), (100, 20_000), (10, 50)])
def test_full_across_chunks(dup, k, cap):
    """More rows than one chunk (``CHUNK_BLOCKS`` blocks): the rows kept under a chunk's starting floor
    go through the row step with the floor as it is then; 3 copies of the clusters (ties across
    chunks) and a length that ends inside a block: still the row scan's result."""
    b, words, factors, rows, queries = dup
    n = 2 * fullscan.CHUNK_BLOCKS * kernels.BLOCK + 1_000 + 13
    reps = -(-n // len(words))
    words = np.ascontiguousarray(np.tile(words, (reps, 1))[:n])
    factors = {name: np.tile(v, reps)[:n] for name, v in factors.items()}
    full = fullscan.full_layout(words, factors)
    assert full.codes.shape[0] > 2 * fullscan.CHUNK_BLOCKS
    masks = [None, np.random.default_rng(2).random(n) < 0.5]
    for i, q in enumerate(queries[:8]):
        allowed = masks[i % 2]
        want = b.candidates(q, words, factors, k, allowed, cap)
        _same(b.candidates(q, words, factors, k, allowed, cap, blocked=full), want)
