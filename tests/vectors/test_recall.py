"""Adaptive rescoring on near-duplicate clusters of real MiniLM embeddings (issue 14, item 8).

Each docstring embedding is re-sampled with small noise into a cluster of near-duplicates (as lakes full
of boilerplate have, and as benchmarks/compare_vectors.py grows 1M rows): neighbours' scores then differ
in the fourth decimal, where the RaBitQ estimate cannot rank them and the int8 tier's rounding matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakeql.vectors import binarizers, kernels
from lakeql.vectors import search as vsearch
from lakeql.vectors.codes import CodeIndex, quantize_tier


@pytest.fixture(scope="module")
def clusters(real):
    """(rows, queries): 30 noisy copies of each of the first docstrings; the last 40 held out as queries."""
    x = real[1]
    docs, queries = x[:-40], x[-40:]
    rng = np.random.default_rng(0)
    rows = np.repeat(docs, 30, axis=0) + rng.normal(0, 0.01, (len(docs) * 30, docs.shape[1]))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return rows, queries


def _index(rows: np.ndarray, tier: str) -> CodeIndex:
    b = binarizers.get("rabitq", rows.shape[1]).fit(rows)
    codes, factors = b.encode(rows)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    values, scales, space = quantize_tier(rows, tier, b)
    return CodeIndex(
        Path("."),
        {"dim": rows.shape[1], "tier_space": space},
        np.arange(len(rows)),
        words,
        factors,
        values,
        scales,
        b,
    )


def test_int8_tier_keeps_each_rows_length(clusters):
    """The stored scale makes each dequantized rotated residual as long as the row's (same levels and
    bytes as the plain largest/255 step, whose rows come out too long); scores are no further from exact."""
    rows, queries = clusters
    idx = _index(rows, "int8")
    b = idx.binarizer
    r = (rows - b.centroid) @ b.rotation
    deq = idx.tier.astype(np.float32) * idx.scales[:, None]
    np.testing.assert_allclose(np.linalg.norm(deq, axis=1), np.linalg.norm(r, axis=1), rtol=1e-4)
    step = np.abs(r).max(axis=1) / 255.0  # the levels are those of the largest/255 step
    assert np.array_equal(idx.tier, np.clip(np.rint(np.abs(r) / step[:, None]), 0, 255).astype(np.uint8))
    pos = np.arange(len(rows))
    err_new, err_step = [], []
    for q in queries:
        exact = rows @ q
        tier = idx.score(pos, q)
        err_new.append(np.abs(tier - exact).mean())
        plain = float(q @ b.centroid) + ((idx.tier * idx.signs(pos)) @ (q @ b.rotation)) * step
        err_step.append(np.abs(plain - exact).mean())
    assert np.mean(err_new) <= np.mean(err_step)
    assert np.mean(err_new) < 2e-4


def test_adaptive_rescoring_reaches_every_true_top10_row_on_near_duplicates(clusters):
    """With an exact tier, adaptive rescoring returns the exact top 10 of every query: every row that
    belongs there was rescored, including those the first stage's per-row bound misses."""
    rows, queries = clusters
    idx = _index(rows, "float32")
    rescored = []
    for q in queries:
        st: dict = {}
        ids, scores = vsearch.search(idx, q, 10, stats=st)
        exact = np.argsort(-(rows @ q), kind="stable")[:10]
        assert set(ids.tolist()) == set(exact.tolist())
        np.testing.assert_allclose(scores, np.sort(rows @ q)[::-1][:10], rtol=1e-5)
        assert min(40, st["candidates"]) <= st["rescored"] <= st["candidates"]
        rescored.append(st["rescored"])
    assert np.median(rescored) > 40  # clusters of 30 near-duplicates need more than k * oversample


def test_int8_recall_on_near_duplicates(clusters):
    """The default int8 tier: recall@10 vs exact float on clusters of near-duplicates."""
    rows, queries = clusters
    idx = _index(rows, "int8")
    rec = [
        len(set(vsearch.search(idx, q, 10)[0].tolist()) & set(np.argsort(-(rows @ q))[:10].tolist())) / 10
        for q in queries
    ]
    assert np.mean(rec) >= 0.97
