"""The adaptive rescoring loop's bookkeeping (partitions instead of sorts, a running top k, the query's
rotation once, chunks read in row order) returns exactly what the former loop returned: the same rows
rescored with the same scores, on near-duplicate clusters of real MiniLM embeddings (where a query
rescores many rounds), with and without a filter, and with exact duplicates (ties everywhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakeql.vectors import binarizers, kernels
from lakeql.vectors import search as vsearch
from lakeql.vectors.codes import CodeIndex, encode_tier


def _former_adaptive(index, q, k, first, allowed, cap):
    """The loop as it was before (main at 269d6bf): full stable sorts, a concatenation and a partition of
    every score each round, the query's rotation per rescoring call."""
    cand, ub, est = index.binarizer.candidates(q, index.words, index.factors, k, allowed, cap)
    by_est = np.argsort(-est, kind="stable")
    head = by_est[:first]
    pos_parts = [cand[head]]
    score_parts = [index.score(cand[head], q)]
    margin = vsearch.tier_margin(index, cand[head], q)
    done = len(head)
    ub = est + vsearch.BOUND_SLACK * (ub - est)
    rest = by_est[first:]
    rest = rest[np.argsort(-ub[rest], kind="stable")]
    chunk = max(vsearch.FIRST_CHUNK, first)
    while len(rest) and done < cap:
        scores = np.concatenate(score_parts)
        kth = np.partition(scores, len(scores) - k)[len(scores) - k] if len(scores) >= k else -np.inf
        rest = rest[ub[rest] > kth - margin]
        if not len(rest):
            break
        take, rest = rest[: min(chunk, cap - done)], rest[min(chunk, cap - done) :]
        pos_parts.append(cand[take])
        score_parts.append(index.score(cand[take], q))
        done += len(take)
        chunk *= 2
    return np.concatenate(pos_parts), np.concatenate(score_parts), len(cand), done


@pytest.fixture(scope="module")
def dup_index(real):
    """(uint8-tier index, queries) over 30 noisy copies of each docstring, every 7th row duplicated
    exactly (identical codes, factors and tier rows: ties in estimates, bounds and scores)."""
    x = real[1]
    docs, queries = x[:-40], x[-40:]
    rng = np.random.default_rng(0)
    rows = np.repeat(docs, 30, axis=0) + rng.normal(0, 0.01, (len(docs) * 30, docs.shape[1]))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    rows = np.concatenate([rows, rows[::7]])
    b = binarizers.get("rabitq", rows.shape[1]).fit(rows)
    codes, factors = b.encode(rows)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    values, scales, space, _ = encode_tier(rows, "int8", b)
    assert values.dtype == np.uint8 and space == "rotated"
    meta = {"dim": rows.shape[1], "tier_space": space, "tier": "int8"}
    idx = CodeIndex(Path("."), meta, np.arange(len(rows)), words, factors, values, scales, b)
    return idx, queries


@pytest.mark.parametrize("k,oversample,cap", [(10, 4, 20_000), (3, 1, 20_000), (10, 4, 300), (25, 2, 20_000)])
def test_adaptive_rounds_equal_the_former_loop(dup_index, k, oversample, cap):
    idx, queries = dup_index
    mask = np.random.default_rng(1).random(idx.n) < 0.5
    rounds = []
    for i, q in enumerate(queries):
        allowed = mask if i % 3 == 0 else None
        first = min(max(k * oversample, k), idx.n)
        st: dict = {}
        pos, scores = vsearch._adaptive(idx, q, k, first, allowed, max(cap, first), st)
        want_pos, want_scores, cands, done = _former_adaptive(idx, q, k, first, allowed, max(cap, first))
        assert st == {"candidates": cands, "rescored": done}
        got, want = np.argsort(pos, kind="stable"), np.argsort(want_pos, kind="stable")
        assert pos[got].tolist() == want_pos[want].tolist()
        assert np.array_equal(scores[got], want_scores[want])  # the same kernel: bit-identical scores
        top = vsearch.search(idx, q, k, oversample, allowed, max_rescore=cap)
        order = np.lexsort((want_pos, -want_scores))[:k]
        assert top[0].tolist() == want_pos[order].tolist()
        rounds.append(done)
    assert max(rounds) > 4 * 40  # the clusters make some queries rescore several rounds


def test_best_first_is_the_lexsort_order():
    rng = np.random.default_rng(2)
    for n, k in [(0, 10), (5, 10), (10, 10), (1000, 10), (1000, 1), (50, 49)]:
        scores = np.round(rng.random(n), 2).astype(np.float32)  # many ties
        pos = rng.permutation(n * 3)[:n]
        want = np.lexsort((pos, -scores))[:k]
        got_pos, got_scores = vsearch.best_first(pos, scores, k)
        assert got_pos.tolist() == pos[want].tolist() and got_scores.tolist() == scores[want].tolist()
    scores = np.array([0.5, np.nan, 0.9, 0.1, np.nan, 0.7], np.float32)
    pos = np.arange(6)
    got_pos, _ = vsearch.best_first(pos, scores, 3)
    assert got_pos.tolist() == np.lexsort((pos, -scores))[:3].tolist() == [2, 5, 0]


def test_head_and_bound_order_match_the_stable_sorts():
    rng = np.random.default_rng(3)
    for n, first in [(0, 40), (30, 40), (40, 40), (1000, 40), (1000, 1)]:
        est = np.round(rng.random(n), 2)  # ties at the line
        by = np.argsort(-est, kind="stable")
        head, rest = vsearch._head(est, first)
        assert sorted(head.tolist()) == sorted(by[:first].tolist())
        assert sorted(rest.tolist()) == sorted(by[first:].tolist())
        ub = np.round(rng.random(n), 2)
        assert vsearch._order_desc(ub, est).tolist() == np.lexsort((-est, -ub)).tolist()
        ub = rng.random(n)  # no ties: the vectorized sort
        assert vsearch._order_desc(ub, est).tolist() == np.argsort(-ub, kind="stable").tolist()


def test_count_allowed_over_spans():
    rng = np.random.default_rng(4)
    allowed = rng.random(500) < 0.3
    ids = rng.permutation(500)
    starts, ends = np.array([0, 100, 480], np.int64), np.array([40, 250, 500], np.int64)
    want = sum(int(np.count_nonzero(allowed[ids[a:b]])) for a, b in zip(starts, ends, strict=True))
    assert kernels.count_allowed(allowed, ids, starts, ends) == want
    assert kernels.count_allowed(allowed, ids, starts[:0], ends[:0]) == 0


def test_scorer_and_row_reader_tiers_score_like_score(dup_index):
    from lakeql.vectors.ann import ListOrderRows

    idx, queries = dup_index
    q = queries[0]
    pos = np.random.default_rng(5).permutation(idx.n)[:300]
    want = idx.score(pos, q)
    assert np.array_equal(idx.scorer(q)(pos), want)
    ids = np.arange(idx.n)  # the identity order: a row reader over the same tier
    import dataclasses

    reader = dataclasses.replace(idx, tier=ListOrderRows(idx.tier, ids), _pos={})
    assert np.array_equal(reader.score(pos, q), want)
