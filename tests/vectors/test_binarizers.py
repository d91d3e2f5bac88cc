"""Each binarizer on real MiniLM embeddings of stdlib docstrings: codes, estimators, kernels, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from lakeql.vectors import binarizers, kernels
from lakeql.vectors.binarizers.base import pack, unpack
from lakeql.vectors.codes import quantize_tier

_FITTED: dict = {}


def prepared(method: str, x: np.ndarray, **kw):
    """Fit + encode (cached per module: the ITQ fit of rabitq takes seconds on a busy machine)."""
    key = (method, x.shape, float(x[0, 0]), tuple(sorted(kw.items())))
    if key not in _FITTED:
        _FITTED[key] = _prepare(method, x, **kw)
    return _FITTED[key]


def _prepare(method: str, x: np.ndarray, **kw):
    if method == "rabitq":
        kw.setdefault("itq_iters", 20)  # the default 100 costs seconds; 20 shows the same effect
        kw.setdefault("itq_min_rows", 0)  # fit ITQ even on these 160 rows (the default waits for 50,000)
    b = binarizers.get(method, x.shape[1], **kw).fit(x)
    codes, factors = b.encode(x)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    return b, codes, words, factors


@pytest.fixture(scope="module")
def split(real):
    """Real embeddings: the first rows as 'documents', the last 40 held out as 'queries'."""
    x = real[1]
    return x[:-40], x[-40:]


@pytest.mark.parametrize("method", binarizers.METHODS)
def test_codes_are_one_bit_per_dimension_and_roundtrip(method, split):
    docs, queries = split
    b, codes, words, factors = prepared(method, docs)
    assert codes.shape == (len(docs), 48) and codes.dtype == np.uint8  # 384 dims -> 48 bytes = 1/32
    again = binarizers.from_state(b.params(), b.arrays())
    codes2, factors2 = again.encode(docs)
    assert np.array_equal(codes, codes2)
    for k in factors2:
        np.testing.assert_allclose(factors2[k], factors[k], rtol=1e-6)
    est1 = b.estimate(queries[0], words, factors)
    est2 = again.estimate(queries[0], words, factors)
    np.testing.assert_allclose(est1, est2)


def test_pack_unpack_roundtrip_little_endian():
    bits = np.random.default_rng(0).random((5, 384)) > 0.5
    codes = pack(bits)
    assert np.array_equal(unpack(codes, 384).astype(bool), bits)
    assert codes[0, 0] & 1 == bits[0, 0]  # dimension 0 is bit 0 of byte 0


def test_sign_bits_are_positive_coordinates(split):
    docs, _ = split
    b = binarizers.get("sign", 384)
    assert np.array_equal(unpack(b.encode(docs)[0], 384).astype(bool), docs > 0)


def test_median_bits_carry_one_bit_of_entropy(split):
    docs, _ = split

    def entropy(p):
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))

    med = unpack(binarizers.get("median", 384).fit(docs).encode(docs)[0], 384).mean(axis=0)
    sgn = unpack(binarizers.get("sign", 384).encode(docs)[0], 384).mean(axis=0)
    assert np.abs(med - 0.5).max() <= 0.02  # every dimension splits the column in half (ties aside)
    assert entropy(med).mean() > 0.999
    assert entropy(med).mean() > entropy(sgn).mean()  # real embeddings are not zero-centred


def test_hamming_kernel_matches_numpy(split):
    docs, queries = split
    b, codes, words, _ = prepared("sign", docs)
    q = b.query_code(queries[0])
    ref = np.unpackbits(codes ^ q, axis=1).sum(axis=1)
    assert np.array_equal(kernels.hamming_all(words, kernels.as_words(q[None, :])[0]), ref)
    rows, dist = kernels.hamming_topk(words, kernels.as_words(q[None, :])[0], 15, kernels.NO_MASK)
    assert np.array_equal(dist, np.sort(ref)[:15])
    assert np.array_equal(ref[rows], dist)


@pytest.mark.parametrize("rotation_kind", ["random", "itq"])
def test_rabitq_estimator_tracks_true_inner_products(split, rotation_kind):
    docs, queries = split
    b, codes, words, factors = prepared("rabitq", docs, **({"rotation_kind": "random"}
                                                             if rotation_kind == "random" else {}))
    true = queries @ docs.T
    exact = np.stack([b.estimate_exact(q, codes, factors) for q in queries])
    quant = np.stack([b.estimate(q, words, factors) for q in queries])
    err = exact - true
    # Unbiased: the mean error is tiny next to the spread of the true scores; and accurate.
    assert abs(err.mean()) < 0.05 * true.std()
    assert np.corrcoef(exact.ravel(), true.ravel())[0, 1] > 0.9
    assert np.abs(err).mean() < 0.05
    # The 4-bit query quantization barely moves the estimate.
    assert np.abs(quant - exact).mean() < 0.01


def test_itq_rotation_aligns_codes_better_than_random(split):
    docs, _ = split
    alphas = {}
    for kind in ("random", "itq"):
        b = prepared("rabitq", docs, **({"rotation_kind": "random"} if kind == "random" else {}))[0]
        o, _ = b._rotated_residual(docs)
        alphas[kind] = (np.abs(o).sum(axis=1) / np.sqrt(384)).mean()
        assert np.allclose(b.rotation @ b.rotation.T, np.eye(384), atol=3e-3)  # orthogonal (float16 stored)
    assert alphas["itq"] > alphas["random"] + 0.01


def test_asym_topk_matches_estimate_and_respects_mask(split):
    docs, queries = split
    b, codes, words, factors = prepared("rabitq", docs)
    q = queries[3]
    est = b.estimate(q, words, factors)
    rows, scores = b.topk(q, words, factors, 10)
    np.testing.assert_allclose(scores, np.sort(est)[::-1][:10], rtol=1e-9)
    mask = np.zeros(len(docs), bool)
    mask[::3] = True
    rows_m, _ = b.topk(q, words, factors, 10, mask)
    assert mask[rows_m].all() and len(rows_m) == 10
    assert set(rows_m) == set(np.flatnonzero(mask)[np.argsort(-est[mask])[:10]])


@pytest.mark.parametrize("method,floor", [("sign", 0.8), ("median", 0.8), ("rabitq", 0.95)])
def test_recall_after_rescoring(split, method, floor):
    """Recall@10 against exact float search, first stage k*4 then float16 rescoring (real embeddings)."""
    docs, queries = split
    b, _, words, factors = prepared(method, docs)
    tier, _, _ = quantize_tier(docs, "float16")
    tierf = tier.astype(np.float32)
    recalls = []
    for q in queries:
        exact = set(np.argsort(-(docs @ q))[:10])
        pos, _ = b.topk(q, words, factors, 40)
        top = pos[np.argsort(-(tierf[pos] @ q))[:10]]
        recalls.append(len(exact & set(top)) / 10)
    assert np.mean(recalls) >= floor


@pytest.mark.parametrize("tier,tol", [("int8", 0.005), ("float16", 0.002), ("float32", 1e-6)])
@pytest.mark.parametrize("method", ["rabitq", "sign"])
def test_rescoring_tiers(split, tier, tol, method):
    """Tier scores (rotated residual, signs from the code, for rabitq int8) against exact float scores."""
    from pathlib import Path

    from lakeql.vectors.codes import CodeIndex

    docs, queries = split
    b, codes, words, factors = prepared(method, docs)
    values, scales, space = quantize_tier(docs, tier, b)
    assert space == ("rotated" if (tier, method) == ("int8", "rabitq") else "raw")
    assert values.dtype == {"int8": np.uint8 if method == "rabitq" else np.int8, "float16": np.float16,
                            "float32": np.float32}[tier]
    idx = CodeIndex(Path("."), {"dim": docs.shape[1], "tier_space": space}, np.arange(len(docs)), words,
                    factors, values, scales, b)
    pos = np.arange(len(docs))
    for q in queries[:10]:
        assert np.abs(idx.score(pos, q) - docs @ q).max() < tol
    assert np.abs(idx.vectors(pos[:20]) - docs[:20]).max() < 5 * tol


def test_unknown_method_is_a_clear_error():
    from lakeql.errors import LakeqlError

    with pytest.raises(LakeqlError, match="use one of sign, median, rabitq"):
        binarizers.get("pq", 384)


@pytest.mark.parametrize("query_bits", [4, 3, 8])
def test_specialised_and_generic_asym_kernels_agree(split, query_bits):
    docs, queries = split
    b, _, words, factors = prepared("rabitq", docs)
    b.query_bits = query_bits
    try:
        for q in queries[:5]:
            est = b.estimate(q, words, factors)
            rows, scores = b.topk(q, words, factors, 12)
            np.testing.assert_allclose(scores, np.sort(est)[::-1][:12], rtol=1e-9)
            assert np.allclose(est[rows], scores)
    finally:
        b.query_bits = 4


def test_small_columns_store_no_rotation_and_reload_it_from_the_seed(split):
    docs, queries = split
    b = binarizers.get("rabitq", docs.shape[1]).fit(docs)  # 160 rows < ITQ_MIN_ROWS: random rotation
    assert b.params()["rotation"] == "random" and "rotation" not in b.arrays()
    again = binarizers.from_state(b.params(), b.arrays())
    assert np.array_equal(again.encode(docs)[0], b.encode(docs)[0])


def test_error_bound_covers_the_true_scores(split):
    """RaBitQ's bound (EPS0 = 1.9): the true score lies within estimate +- bound for most rows (a per-row
    probabilistic bound: measured 97% here; the search's recall tests check what it is used for)."""
    docs, queries = split
    b, codes, words, factors = prepared("rabitq", docs, rotation_kind="random")
    errc = b.error_coefficients(factors)
    inside = []
    for q in queries:
        qr = b._query(q)[1]
        est = b.estimate(q, words, factors)
        inside.append(np.abs(est - docs @ q) <= b.EPS0 * np.linalg.norm(qr) * errc + 0.01)
    assert np.mean(inside) > 0.95
