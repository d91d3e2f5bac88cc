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
from lakeql.vectors.codes import CodeIndex, encode_tier, quantize_tier


@pytest.fixture(scope="module")
def clusters(real):
    """(rows, queries): 30 noisy copies of each of the first docstrings; the last 40 held out as queries."""
    x = real[1]
    docs, queries = x[:-40], x[-40:]
    rng = np.random.default_rng(0)
    rows = np.repeat(docs, 30, axis=0) + rng.normal(0, 0.01, (len(docs) * 30, docs.shape[1]))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return rows, queries


def _index(rows: np.ndarray, tier: str, refine_bits: int = 0) -> CodeIndex:
    b = binarizers.get("rabitq", rows.shape[1]).fit(rows)
    codes, factors = b.encode(rows)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    values, scales, space, planes = encode_tier(rows, tier, b, refine_bits)
    assert (values, scales, space)[2] == quantize_tier(rows[:5], tier, b)[2]
    return CodeIndex(
        Path("."),
        {"dim": rows.shape[1], "tier_space": space, "tier": tier, "refine_bits": refine_bits},
        np.arange(len(rows)),
        words,
        factors,
        values,
        scales,
        b,
        refine=planes,
    )


def _recall(idx: CodeIndex, rows: np.ndarray, queries: np.ndarray, stats: list | None = None) -> float:
    hits = 0
    for q in queries:
        st: dict = {}
        ids = vsearch.search(idx, q, 10, stats=st)[0]
        hits += len(set(ids.tolist()) & set(np.argsort(-(rows @ q))[:10].tolist()))
        if stats is not None:
            stats.append(st)
    return hits / (10 * len(queries))


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


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_refinement_planes_bound_the_tier_error(clusters, bits):
    """With ``bits`` refinement planes each magnitude is within step / 2**(bits + 1) of the row's (the int8
    tier alone: step / 2), and the refined scores' error against exact float shrinks accordingly; the
    int8 tier's margin (3 sigma of its rounding) covers the int8 error of nearly every row."""
    rows, queries = clusters
    idx = _index(rows, "int8", bits)
    b = idx.binarizer
    r = (rows - b.centroid) @ b.rotation
    step = np.abs(r).max(axis=1) / 255.0
    planes = idx.refine.reshape(len(rows), bits, -1)
    cell = np.zeros(r.shape)
    for i in range(bits):
        cell = cell * 2 + np.unpackbits(planes[:, i], axis=1, count=r.shape[1], bitorder="little")
    fine = idx.tier + (cell + 0.5) / 2**bits - 0.5
    assert np.all(np.abs(fine * step[:, None] - np.abs(r)) <= step[:, None] * (0.5 ** (bits + 1) + 1e-5))
    pos = np.arange(len(rows))
    err8, errf, within = [], [], []
    for q in queries:
        exact = rows @ q
        tier = idx.score(pos, q)
        refined = idx.refined_score(pos, q)
        err8.append(np.abs(tier - exact).mean())
        errf.append(np.abs(refined - exact).mean())
        # the worst case of the refined score: every dimension off by its bound, in the query's direction
        worst = np.abs(q @ b.rotation) @ (step[:, None] * np.ones_like(r)).T * 0.5 ** (bits + 1)
        assert np.all(np.abs(refined - exact) <= worst * 1.01 + 1e-5)
        within.append(np.mean(np.abs(tier - exact) <= vsearch.tier_margin(idx, pos, q)))
    assert np.mean(errf) <= np.mean(err8) * 1.5 / 2**bits
    assert np.mean(within) > 0.99


def test_refinement_ranks_near_duplicates_like_exact(clusters):
    """int8 + 2 refinement planes: recall@10 vs exact float on near-duplicate clusters is at least the int8
    tier's and >= 0.99; the final step rescores a few rows near the 10th score, not the candidates."""
    rows, queries = clusters
    base = _recall(_index(rows, "int8"), rows, queries)
    stats: list = []
    refined = _recall(_index(rows, "int8", 2), rows, queries, stats)
    assert refined >= base
    assert refined >= 0.99
    n_refined = np.array([st["refined"] for st in stats])
    assert np.mean(n_refined >= 10) >= 0.5  # refined: at least the top 10 and the rows near the 10th
    assert np.all((n_refined == 0) | (n_refined >= 10))
    assert np.median(n_refined) < np.median([st["rescored"] for st in stats])


def test_index_without_planes_searches_as_before(clusters):
    """An index without refinement planes (built before them, or with 0 bits) scores and searches exactly
    as the tier alone: the final step leaves it untouched."""
    rows, queries = clusters
    idx = _index(rows, "int8")
    assert idx.refine is None and idx.refine_bits == 0
    pos = np.arange(len(rows))
    for q in queries[:5]:
        np.testing.assert_array_equal(idx.refined_score(pos, q), idx.score(pos, q))
        st: dict = {}
        vsearch.search(idx, q, 10, stats=st)
        assert "refined" not in st


def test_ann_path_refines_like_the_exhaustive_one(clusters, tmp_path, monkeypatch):
    """The ANN first stage (IVF lists over the codes) feeds the same final step: probing every list, it
    returns the exhaustive search's rows and scores, refined rows included."""
    from lakeql.vectors import ann

    rows, queries = clusters
    idx = _index(rows, "int8", 2)
    codes_u8 = np.ascontiguousarray(idx.words.view(np.uint8)[:, : -(-idx.dim // 8)])
    assert ann.build(tmp_path, codes_u8, idx.dim, nlist=8) is not None
    ivf = ann.IVF.load(tmp_path, idx.n, idx.dim, "t.c")
    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    refined = 0
    for q in queries[:10]:
        st_a: dict = {}
        st_e: dict = {}
        got = ann.search(idx, ivf, q, 10, 4, nprobe=ivf.nlist, stats=st_a)
        want = vsearch.search(idx, q, 10, stats=st_e)
        assert got[0].tolist() == want[0].tolist()
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
        assert st_a.get("refined", 0) == st_e.get("refined", 0)
        refined += st_a.get("refined", 0)
    assert refined > 0
