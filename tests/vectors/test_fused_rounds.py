"""The adaptive search's rescoring rounds' bookkeeping in numba (:mod:`lakeql.vectors.rounds`: ``start``
and one ``next_chunk`` per round) returns exactly what the numpy loop returns (``search.FUSED_ROUNDS =
False``): the same rescored rows in the same order, bit-identical scores, the same stats, on
near-duplicate clusters of real MiniLM embeddings (where queries rescore many rounds), through the
exhaustive search and the ANN stage's list order, with filters, exact duplicates (ties everywhere), and
hostile first-stage output (NaN and infinite bounds, equal bounds across every cut, NaN scales)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakeql.vectors import ann, binarizers, kernels, rounds
from lakeql.vectors import search as vsearch
from lakeql.vectors.codes import CodeIndex, encode_tier


def _index(rows: np.ndarray, folder: Path = Path(".")) -> CodeIndex:
    b = binarizers.get("rabitq", rows.shape[1]).fit(rows)
    codes, factors = b.encode(rows)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    values, scales, space, _ = encode_tier(rows, "int8", b)
    assert values.dtype == np.uint8 and space == "rotated"
    meta = {"dim": rows.shape[1], "tier_space": space, "tier": "int8"}
    return CodeIndex(folder, meta, np.arange(len(rows)) * 3 + 1, words, factors, values, scales, b)


@pytest.fixture(scope="module")
def dup(real, tmp_path_factory):
    """(index with 48 IVF lists and their list-order tier, queries): 40 noisy copies of each docstring
    embedding, every 6th row repeated exactly (identical codes and tier rows: ties in estimates, bounds and
    scores); the last 40 docstrings held out as queries."""
    x = real[1]
    docs, queries = x[:-40], x[-40:]
    rng = np.random.default_rng(7)
    rows = np.repeat(docs, 40, axis=0) + rng.normal(0, 0.01, (len(docs) * 40, docs.shape[1]))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    rows = np.concatenate([rows, rows[::6]])
    folder = tmp_path_factory.mktemp("fused")
    idx = _index(rows, folder)
    ann.build(folder, idx.words.view(np.uint8)[:, : (idx.dim + 7) // 8], idx.dim, nlist=48, tier=idx.tier)
    return idx, queries


def _both(fn, monkeypatch):
    """``fn()`` with the numpy loop, then with the fused rounds."""
    out = []
    for fused in (False, True):
        monkeypatch.setattr(vsearch, "FUSED_ROUNDS", fused)
        out.append(fn())
    return out


def _same_rounds(a, b):
    (pa, sa, sta), (pb, sb, stb) = a, b
    assert sta == stb
    assert pa.dtype == pb.dtype and pa.tolist() == pb.tolist()  # the same rows in the same order
    assert sa.dtype == sb.dtype == np.float32 and sa.tobytes() == sb.tobytes()


@pytest.mark.parametrize(
    "k,oversample,cap", [(10, 4, 20_000), (1, 1, 20_000), (10, 4, 300), (25, 2, 20_000), (400, 1, 20_000)]
)
def test_fused_rounds_equal_the_numpy_loop(dup, monkeypatch, k, oversample, cap):
    idx, queries = dup
    mask = np.random.default_rng(1).random(idx.n) < 0.5
    rounds = []
    for i, q in enumerate(queries):
        allowed = mask if i % 3 == 0 else None
        first = min(max(k * oversample, k), idx.n)

        def run(q=q, allowed=allowed, first=first):
            st: dict = {}
            pos, scores = vsearch._adaptive(idx, q, k, first, allowed, max(cap, first), st)
            return pos, scores, st

        a, b = _both(run, monkeypatch)
        _same_rounds(a, b)
        rounds.append(a[2]["rescored"])

        def top_k(q=q, allowed=allowed):
            return vsearch.search(idx, q, k, oversample, allowed, max_rescore=cap)

        top = _both(top_k, monkeypatch)
        assert top[0][0].tolist() == top[1][0].tolist() and top[0][1].tobytes() == top[1][1].tobytes()
    # several doubling rounds (or the cap) on the clusters
    assert max(rounds) >= min(cap, max(k * oversample, 256) + 512)


@pytest.mark.parametrize("nprobe", [None, 2, 48])
def test_fused_rounds_through_the_ann_lists(dup, monkeypatch, nprobe):
    """The ANN stage's list-order view (its tier copy) goes through the fused rounds: the same hits,
    score bytes and stats (candidates, rows rescored, probe) as the numpy loop, with and without a filter."""
    idx, queries = dup
    ivf = ann.ivf_of(idx, "t.c")
    assert ivf is not None and ivf.tier is not None
    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    mask = np.random.default_rng(2).random(idx.n) < 0.3
    for i, q in enumerate(queries):
        allowed = mask if i % 4 == 0 else None

        def run(q=q, allowed=allowed):
            st: dict = {}
            rowids, scores = ann.search(idx, ivf, q, 10, 4, allowed, nprobe=nprobe, stats=st)
            return rowids, scores, st

        _same_rounds(*_both(run, monkeypatch))
    calls = []
    real_start = rounds.start
    monkeypatch.setattr(rounds, "start", lambda *a: calls.append(1) or real_start(*a))
    ann.search(idx, ivf, queries[0], 10, 4, nprobe=nprobe)
    assert calls  # the fused rounds ran on the list order


def _crafted(rng, n: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ascending candidate rows, upper bounds, estimates) as a hostile first stage might return them."""
    cand = np.sort(rng.choice(5_000, n, replace=False)).astype(np.int64)
    est = np.round(rng.normal(0.3, 0.1, n), 2)  # many equal estimates
    ub = est + np.round(rng.random(n) * 0.2, 2)
    if kind == "nan":
        est[rng.random(n) < 0.05] = np.nan
        ub[rng.random(n) < 0.05] = np.nan
    elif kind == "inf":
        ub[rng.random(n) < 0.05] = np.inf
        est[rng.random(n) < 0.02] = -np.inf
    elif kind == "flat":  # every bound and estimate equal: ties across every cut
        est[:] = 0.25
        ub[:] = 0.5
    elif kind == "zeros":  # signed zeros compare equal
        est[:] = np.where(rng.random(n) < 0.5, 0.0, -0.0)
        ub[:] = np.where(rng.random(n) < 0.5, 0.0, -0.0)
    return cand, ub, est


@pytest.mark.parametrize("kind", ["ties", "nan", "inf", "flat", "zeros"])
@pytest.mark.parametrize("n,k,first,cap", [(3_000, 10, 40, 20_000), (3_000, 10, 40, 700), (30, 10, 40, 40)])
def test_fused_rounds_on_hostile_candidates(dup, monkeypatch, kind, n, k, first, cap):
    idx, queries = dup
    rng = np.random.default_rng(abs(hash((kind, n, cap))) % 2**32)
    for q in queries[:4]:
        cand, ub, est = _crafted(rng, n, kind)

        def run(q=q, cand=cand, ub=ub, est=est):
            st: dict = {}
            scan = lambda kk, c: (cand, ub, est)  # noqa: E731
            pos, scores = vsearch._adaptive(idx, q, k, first, None, cap, st, scan=scan)
            return pos, scores, st

        _same_rounds(*_both(run, monkeypatch))


def test_nan_scales_stop_after_the_head(dup, monkeypatch):
    """A NaN scale (a damaged tier) makes the margin NaN: both paths rescore the head only."""
    import dataclasses

    idx, queries = dup
    scales = idx.scales.copy()
    scales[::2] = np.nan
    bad = dataclasses.replace(idx, scales=scales, _pos={})
    for q in queries[:5]:

        def run(q=q):
            st: dict = {}
            pos, scores = vsearch._adaptive(bad, q, 10, 40, None, 20_000, st)
            return pos, scores, st

        a, b = _both(run, monkeypatch)
        _same_rounds(a, b)
        assert a[2]["rescored"] <= 40


def test_unsorted_candidates_take_the_numpy_loop(dup, monkeypatch):
    """Candidates out of row order (a scan through list ids) are not fused: the numpy loop, same answer."""
    idx, queries = dup
    rng = np.random.default_rng(4)
    cand = rng.permutation(idx.n)[:2_000].astype(np.int64)
    est = rng.normal(0.3, 0.1, 2_000)
    ub = est + rng.random(2_000) * 0.3
    score = idx.scorer(queries[0])
    assert vsearch._fused(idx, queries[0], 10, 40, 20_000, cand, ub, est, score) is None
    assert vsearch._fused(idx, queries[0], 10, 40, 20_000, np.sort(cand), ub, est, score) is not None
    with pytest.raises(IndexError):
        vsearch._fused(idx, queries[0], 10, 40, 20_000, np.array([0, idx.n]), ub[:2], est[:2], score)

    def run():
        st: dict = {}
        scan = lambda kk, c: (cand, ub, est)  # noqa: E731
        pos, scores = vsearch._adaptive(idx, queries[0], 10, 40, None, 20_000, st, scan=scan)
        return pos, scores, st

    _same_rounds(*_both(run, monkeypatch))


def test_ranking_prefixes_are_the_sorted_prefixes():
    """``Ranking[:m]`` (the ANN probe's lists cut by a heap) is the set of the first ``m`` lists of
    ``np.argsort(-scores, kind="stable")`` (ties by list), at every cut, with ties and infinities."""
    rng = np.random.default_rng(9)
    for n in (1, 16, 4096):
        for scores in (
            rng.normal(size=n).astype(np.float32),
            np.round(rng.normal(size=n), 1).astype(np.float32),  # many ties
            np.where(rng.random(n) < 0.1, np.inf, rng.normal(size=n)).astype(np.float32),
        ):
            r = ann.Ranking(scores)
            order = np.argsort(-scores, kind="stable")
            for m in {0, 1, 2, 7, n // 3, n - 1, n, n + 5}:
                assert r[:m].tolist() == sorted(order[: max(m, 0)].tolist())
            assert r[: n + 5].tolist() == list(range(n))


def test_rank_and_probe_agree(dup):
    idx, queries = dup
    ivf = ann.ivf_of(idx, "t.c")
    for q in queries[:10]:
        order, best = ivf.probe(idx, q)
        ranking, best_r = ivf.rank(idx, q, idx.binarizer.rotated(q))
        assert best == best_r
        for m in (1, 3, 12, 48):
            assert ranking[:m].tolist() == sorted(order[:m].tolist())
