"""review31: a hard review of h/annfuse (the adaptive rounds' bookkeeping in numba, lakeql/vectors/rounds.py;
the ANN query's rotation once; the IVF lists ranked by a heap, ``ann.Ranking``).

Defects found and fixed here:

* NaN keys: ``rounds._before`` ranked two NaN keys as neither before the other, so the ties among NaN
  estimates, bounds or list scores were not broken by the next key or the row as numpy's stable sort
  breaks them: ``Ranking[:m]`` and the fused rounds' head and chunks took other rows than
  ``FUSED_ROUNDS = False`` (a damaged index's NaN factors or centroids).
* ``rounds._cut`` bucketed keys spread over more than 1.8e308 through ``inf * 0`` cast to an int
  (undefined: arbitrary buckets, wrong chunks) - hostile float64 factors of an ANN rows file.
* ``kernels.matvec``/``vecmat`` (numba, no bounds checks) read past their operands on mismatched shapes
  and a stored RaBitQ rotation or centroid was never checked against the index's dimension: a hostile
  ``binarizer.npz`` made the query rotation, and the rescoring kernel fed by it, read out of bounds.

Real vectors: the vectors tests' lake (200 stdlib docstrings embedded by the default encoder)."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lakeql.vectors import ann, binarizers, kernels, rounds
from lakeql.vectors import search as vsearch
from lakeql.vectors.codes import CodeIndex, encode_tier

_VEC = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(_VEC))
_spec = importlib.util.spec_from_file_location("_review31_vectors_conftest", _VEC / "conftest.py")
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)
model, lake, rows, default_model, real = _conf.model, _conf.lake, _conf.rows, _conf.default_model, _conf.real


def _index(x: np.ndarray, folder: Path = Path(".")) -> CodeIndex:
    b = binarizers.get("rabitq", x.shape[1]).fit(x)
    codes, factors = b.encode(x)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    values, scales, space, _ = encode_tier(x, "int8", b)
    meta = {"dim": x.shape[1], "tier_space": space, "tier": "int8"}
    return CodeIndex(folder, meta, np.arange(len(x)) * 2, words, factors, values, scales, b)


@pytest.fixture(scope="module")
def clusters(real, tmp_path_factory):
    """(index with 32 IVF lists and a list-order tier, queries): 30 noisy copies of each real docstring
    embedding plus exact duplicates of every 5th row; the last 30 docstrings held out as queries."""
    x = real[1]
    docs, queries = x[:-30], x[-30:]
    rng = np.random.default_rng(31)
    xs = np.repeat(docs, 30, axis=0) + rng.normal(0, 0.01, (len(docs) * 30, docs.shape[1]))
    xs = (xs / np.linalg.norm(xs, axis=1, keepdims=True)).astype(np.float32)
    xs = np.concatenate([xs, xs[::5]])
    folder = tmp_path_factory.mktemp("review31")
    idx = _index(xs, folder)
    ann.build(folder, idx.words.view(np.uint8)[:, : (idx.dim + 7) // 8], idx.dim, nlist=32, tier=idx.tier)
    return idx, queries


def _both(fn, monkeypatch):
    out = []
    for fused in (False, True):
        monkeypatch.setattr(vsearch, "FUSED_ROUNDS", fused)
        out.append(fn())
    return out


def _same(a, b):
    (pa, sa, sta), (pb, sb, stb) = a, b
    assert sta == stb
    assert pa.tolist() == pb.tolist()
    assert sa.dtype == sb.dtype and sa.tobytes() == sb.tobytes()


# ------------------------------------------------------------------------------------------- NaN keys
def test_ranking_breaks_ties_among_nan_scores_by_list():
    """Several NaN list scores (a damaged centroid file): ``Ranking[:m]`` is the first ``m`` lists of
    ``np.argsort(-scores, kind="stable")`` as a set, the NaN lists in list order at the end."""
    s = np.array([0.0, -0.0, np.nan, 1.0, -0.0, np.nan, 0.0, -np.inf, np.inf, np.nan], np.float32)
    r = ann.Ranking(s)
    order = np.argsort(-s, kind="stable")
    for m in range(len(s) + 1):
        assert r[:m].tolist() == sorted(order[:m].tolist()), m
    rng = np.random.default_rng(3)
    for n in (5, 64, 4096):
        s = rng.normal(size=n).astype(np.float32)
        s[rng.random(n) < 0.5] = np.nan
        r, order = ann.Ranking(s), np.argsort(-s, kind="stable")
        for m in {1, n // 4, n // 2, n // 2 + 1, (3 * n) // 4, n - 1}:
            assert r[:m].tolist() == sorted(order[:m].tolist()), (n, m)


@pytest.mark.parametrize("where", ["est", "bound", "both"])
def test_fused_rounds_with_many_nan_keys_equal_the_numpy_loop(clusters, monkeypatch, where):
    """Most estimates or bounds NaN (NaN factors of a damaged index), so the head and the chunk cuts fall
    among the NaN keys: the fused rounds take the numpy loop's rows (ties by the next key, then by row)."""
    idx, queries = clusters
    rng = np.random.default_rng(11)
    n = 3_000
    for q in queries[:6]:
        cand = np.sort(rng.choice(idx.n, n, replace=False)).astype(np.int64)
        est = np.round(rng.normal(0.3, 0.1, n), 2)
        ub = est + np.round(rng.random(n) * 0.2, 2)
        if where in ("est", "both"):
            est[rng.random(n) < 0.8] = np.nan
        if where in ("bound", "both"):
            ub[rng.random(n) < 0.8] = np.nan

        def run(q=q, cand=cand, ub=ub, est=est):
            st: dict = {}
            scan = lambda kk, c: (cand, ub, est)  # noqa: E731
            pos, scores = vsearch._adaptive(idx, q, 10, 1_000, None, 20_000, st, scan=scan)
            return pos, scores, st

        _same(*_both(run, monkeypatch))


# --------------------------------------------------------------------------- keys spread past float64
def test_chunk_cuts_hold_for_keys_spread_over_the_float64_range():
    """Keys from -1.7e308 to 1.7e308 (``hi - lo`` overflows): every cut is still the smallest keys."""
    rng = np.random.default_rng(0)
    n = 4_000
    k1 = rng.normal(size=n)
    k1[0], k1[1] = -1.7e308, 1.7e308
    k1[2:400] = rng.uniform(-1, 1, 398) * 1e308
    k2 = rng.normal(size=n)
    ids = np.arange(n, dtype=np.int64)
    a, b, c = k1.copy(), k2.copy(), ids.copy()
    cuts = np.array([100, 300, 700, 1_500], np.int64)
    rounds._cut(a, b, c, cuts)
    order = np.lexsort((ids, k2, k1))
    for cc in cuts:
        assert sorted(c[:cc].tolist()) == sorted(order[:cc].tolist()), cc
    assert sorted(c.tolist()) == ids.tolist()  # a permutation: nothing lost or written twice


def test_fused_rounds_with_huge_finite_bounds_equal_the_numpy_loop(clusters, monkeypatch):
    idx, queries = clusters
    rng = np.random.default_rng(5)
    n = 3_000
    for q in queries[:4]:
        cand = np.sort(rng.choice(idx.n, n, replace=False)).astype(np.int64)
        est = rng.normal(0.3, 0.1, n)
        ub = est + rng.random(n) * 0.2
        wild = rng.random(n) < 0.3
        ub[wild] = rng.uniform(-1, 1, int(wild.sum())) * 1.1e308  # widened: -(est + 1.5 (ub - est))
        ub[:2], est[:2] = [1.1e308, -1.1e308], 0.0  # spread over 3.3e308: past the float64 range

        def run(q=q, cand=cand, ub=ub, est=est):
            st: dict = {}
            scan = lambda kk, c: (cand, ub, est)  # noqa: E731
            pos, scores = vsearch._adaptive(idx, q, 10, 40, None, 20_000, st, scan=scan)
            return pos, scores, st

        _same(*_both(run, monkeypatch))


# ---------------------------------------------------------------------- shapes the kernels trust
def test_matvec_and_vecmat_refuse_mismatched_shapes():
    """The one-thread products are numba loops without bounds checks: a mismatched operand is an error,
    not a read past the end of the vector."""
    a = np.ones((8, 5), np.float32)
    with pytest.raises(ValueError, match="shape"):
        kernels.vecmat(np.ones(6, np.float32), a)  # 8 rows, a 6-vector
    with pytest.raises(ValueError, match="shape"):
        kernels.matvec(a, np.ones(4, np.float32))  # 5 columns, a 4-vector
    assert kernels.vecmat(np.ones(8, np.float32), a).tolist() == [8.0] * 5
    assert kernels.matvec(a, np.ones(5, np.float32)).tolist() == [5.0] * 8


@pytest.mark.parametrize(
    "rotation,centroid",
    [((384, 376), (384,)), ((392, 384), (384,)), ((384, 384), (376,)), ((384,), (384,))],
)
def test_a_stored_rotation_or_centroid_of_another_shape_is_refused(rotation, centroid):
    params = {"method": "rabitq", "dim": 384, "rotation": "itq"}
    arrays = {"rotation": np.zeros(rotation, np.float32), "centroid": np.zeros(centroid, np.float32)}
    with pytest.raises(ValueError, match="dimension"):
        binarizers.from_state(params, arrays)


@pytest.mark.parametrize("how", ["rotation", "binarizer dim"])
def test_a_hostile_binarizer_file_is_a_corrupt_index_not_a_crash(lake, real, tmp_path, how):
    """``binarizer.npz`` rewritten with a 384 x 376 rotation, or with a 376-dim binarizer (meta.json and
    its arrays agreeing) over the 384-dim tier: loading the index names the rebuild (before, the query's
    rotated residual was 376 long and the rescoring kernel read 8 floats past it)."""
    import json
    import shutil

    from lakeql.errors import CorruptIndexError

    src = next(p.parent for p in (lake[1]).rglob("binarizer.npz"))
    dst = tmp_path / "emb"
    shutil.copytree(src, dst)
    with np.load(dst / "binarizer.npz") as z:
        arrays = {k: z[k] for k in z.files}
    d = arrays["centroid"].shape[0]
    if how == "rotation":
        arrays["rotation"] = np.eye(d, dtype=np.float32)[:, : d - 8]
    else:
        arrays["rotation"] = np.eye(d - 8, dtype=np.float32)
        arrays["centroid"] = arrays["centroid"][: d - 8]
        meta = json.loads((dst / "meta.json").read_text())
        meta["binarizer"]["dim"] = d - 8
        (dst / "meta.json").write_text(json.dumps(meta))
    with open(dst / "binarizer.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(CorruptIndexError, match="rebuild"):
        CodeIndex.load(dst, "t.c")


# ------------------------------------------------------------------------------- concurrency
def test_many_threads_on_one_index_get_the_serial_answers(clusters):
    """8 threads searching one index (shared list order, shared blocked layout, the numba rounds) return
    the very hits and score bytes of the same queries run one by one, through the ANN lists and the
    exhaustive search."""
    idx, queries = clusters
    ivf = ann.ivf_of(idx, "t.c")
    qs = [queries[i % len(queries)] for i in range(48)]

    def one(i: int):
        q = qs[i]
        if i % 2:
            r, s = ann.search(idx, ivf, q, 10, 4, nprobe=4)
        else:
            r, s = vsearch.search(idx, q, 25, 4)
        return r.tolist(), s.tobytes()

    serial = [one(i) for i in range(len(qs))]
    got: list = [None] * len(qs)
    errors: list = []

    def worker(t: int):
        try:
            for i in range(t, len(qs), 8):
                got[i] = one(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert got == serial


# ------------------------------------------------------------------ hostile k and filters
@pytest.mark.parametrize("allow", ["none", "one", "all"])
@pytest.mark.parametrize("k", [1, 10**8])
def test_huge_k_and_empty_filters_through_the_ann_lists(clusters, monkeypatch, allow, k):
    """``k := 100000000`` (clamped to the rows) and filters allowing no row, one row or every row: the
    fused rounds return what the numpy loop returns, never a row the filter refuses, no crash."""
    idx, queries = clusters
    ivf = ann.ivf_of(idx, "t.c")
    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    allowed = {"none": np.zeros(idx.n, bool), "one": np.arange(idx.n) == 777, "all": None}[allow]
    for q in queries[:3]:

        def run(q=q):
            st: dict = {}
            rowids, scores = ann.search(idx, ivf, q, k, 4, allowed, nprobe=2, stats=st)
            return rowids, scores, st

        a, b = _both(run, monkeypatch)
        _same(a, b)
        want = {"none": 0, "one": 1, "all": min(k, idx.n)}[allow]
        assert len(a[0]) == want
        if allow == "one":
            assert a[0].tolist() == [idx.rowids[777]]


# ------------------------------------------------------------------------- tiers, refine, shards
@pytest.mark.parametrize("tier", ["float16", "float32", "int8+refine", "int8 sharded"])
def test_every_tier_gives_the_numpy_loops_answer(clusters, real, monkeypatch, tier):
    """The float tiers (no kernel scorer: the fused bookkeeping around ``CodeIndex.scorer``), the int8
    tier with 3 refinement planes (``--embed-refine-bits``) and an int8 tier split over two shards (an
    appended index: ``ShardedRows``, read through the checked scorer): the fused rounds' hits and score
    bytes are the numpy loop's, with and without a filter."""
    from lakeql.vectors.codes import ShardedRows

    idx, queries = clusters
    x = idx.vectors(np.arange(idx.n))  # the int8 tier's vectors back in the rows' space
    b = idx.binarizer
    if tier in ("float16", "float32"):
        values, scales, space, _ = encode_tier(x, tier, b)
        meta = {"dim": idx.dim, "tier_space": space, "tier": tier}
        other = CodeIndex(idx.path, meta, idx.rowids, idx.words, idx.factors, values, scales, b)
    elif tier == "int8+refine":
        values, scales, space, planes = encode_tier(x, "int8", b, refine_bits=3)
        meta = {"dim": idx.dim, "tier_space": space, "tier": "int8", "refine_bits": 3}
        other = CodeIndex(
            idx.path, meta, idx.rowids, idx.words, idx.factors, values, scales, b, refine=planes
        )
    else:
        cut = idx.n // 3
        tiers = ShardedRows([idx.tier[:cut], idx.tier[cut:]], idx.dim, idx.tier.dtype)
        other = CodeIndex(idx.path, idx.meta, idx.rowids, idx.words, idx.factors, tiers, idx.scales, b)
        assert other.kernel_scorer(queries[0]) is None
    mask = np.random.default_rng(8).random(idx.n) < 0.4
    for i, q in enumerate(queries[:8]):
        allowed = mask if i % 2 else None

        def run(q=q, allowed=allowed):
            st: dict = {}
            rowids, scores = vsearch.search(other, q, 10, 4, allowed, stats=st)
            return rowids, scores, st

        _same(*_both(run, monkeypatch))
