"""Bring your own vectors: ``--embed TABLE.COLUMN`` on a FLOAT[n] / DOUBLE[] column of real embeddings.

The vectors are the real MiniLM embeddings of the test lake's docstrings (the ``real`` fixture), stored
in a Parquet table beside a NULL vector, a vector with a NaN and an all-zero vector; results are checked
against exact NumPy search over the same vectors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_helpers import build, connect  # noqa: E402

from lakeql.errors import LakeqlError  # noqa: E402


@pytest.fixture(scope="module")
def byov(tmp_path_factory, real, rows):
    """(lake, index dir, names, vectors): emb.docs with vec FLOAT[384] and lst DOUBLE[], embedded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rowids, vecs = real
    root = tmp_path_factory.mktemp("byov")
    lake = root / "lake"
    (lake / "emb").mkdir(parents=True)
    names = [rows[i]["qualname"] for i in rowids]
    bad = [None, [np.nan] + [0.1] * 383, [0.0] * 384]
    vec_list = [v.tolist() for v in vecs] + bad
    tbl = pa.table({"name": names + ["null_vec", "nan_vec", "zero_vec"],
                    "vec": pa.array(vec_list, pa.list_(pa.float32(), 384)),
                    "lst": pa.array(vec_list, pa.list_(pa.float64()))})
    pq.write_table(tbl, lake / "emb" / "docs.parquet")
    mixed = pa.table({"name": ["a", "b", "c"], "v": pa.array([[1.0, 2.0], [1.0, 2.0, 3.0], [0.5, 1.0]],
                                                          pa.list_(pa.float32()))})
    pq.write_table(mixed, lake / "emb" / "mixed.parquet")
    small = pa.table({"name": ["a", "b"], "n": [1, 2],
                      "v": pa.array([[1.0] * 8, [0.5] * 8], pa.list_(pa.float32(), 8))})
    pq.write_table(small, lake / "emb" / "small.parquet")
    with pytest.warns(UserWarning, match="skipped 2 vectors"):
        build(lake, root / "index", ["emb.docs.vec"])
    return lake, root / "index", names, vecs


@pytest.fixture(scope="module")
def bcon(byov):
    return connect(byov[0], byov[1])


def exact(vecs: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(vecs @ q), kind="stable")[:k])


def test_vector_query_matches_exact_search(bcon, byov):
    _, _, names, vecs = byov
    for i in (0, 17, 99, 150):
        q = vecs[i] + 0.02 * np.random.default_rng(i).standard_normal(vecs.shape[1]).astype(np.float32)
        q /= np.linalg.norm(q)
        got = bcon.execute("SELECT name, score FROM semantic_search_vector('emb.docs', 'vec', ?::FLOAT[], "
                           "k := 10)", [q.tolist()]).fetchall()
        ref = [names[j] for j in exact(vecs, q, 10)]
        assert len(set(ref) & {g[0] for g in got}) >= 9
        assert abs(got[0][1] - float(vecs[exact(vecs, q, 1)[0]] @ q)) < 0.01  # the exact best score
        assert {"null_vec", "nan_vec", "zero_vec"}.isdisjoint(g[0] for g in got)


def test_similar_rows_on_stored_vectors(bcon, byov):
    _, _, names, vecs = byov
    got = bcon.execute("SELECT name FROM similar_rows('emb.docs', 'vec', 'name', ?, k := 5)",
                       [names[3]]).fetchall()
    scores = vecs @ vecs[3]
    scores[3] = -np.inf
    ref = {names[j] for j in np.argsort(-scores)[:5]}
    assert len(ref & {g[0] for g in got}) >= 4 and names[3] not in {g[0] for g in got}


def test_text_query_without_a_model_is_a_clear_error(bcon):
    import duckdb

    with pytest.raises(duckdb.Error, match="holds your own vectors.*semantic_search_vector"):
        bcon.execute("SELECT * FROM semantic_search('emb.docs', 'vec', 'read a csv file')").fetchall()
    with pytest.raises(duckdb.Error, match="query vector has 3 dimensions"):
        bcon.execute("SELECT * FROM semantic_search_vector('emb.docs', 'vec', [1, 2, 3]::FLOAT[])").fetchall()


def test_list_column_with_the_model_named_answers_text_queries(byov, tmp_path, con):
    lake, _, names, _ = byov
    build(lake, tmp_path / "idx", ["emb.docs.lst"], model="all-MiniLM-L6-v2")
    c = connect(lake, tmp_path / "idx")
    got = [r[0] for r in c.execute("SELECT name FROM semantic_search('emb.docs', 'lst', 'read a csv file', "
                                   "k := 5)").fetchall()]
    ref = [r[0] for r in con.execute("SELECT qualname FROM semantic_search('python.functions', 'docstring', "
                                     "'read a csv file', k := 5)").fetchall()]
    assert len(set(got) & set(ref)) >= 4


def test_mixed_lengths_and_dimension_mismatch_are_clear_errors(byov, tmp_path):
    lake = byov[0]
    with pytest.raises(LakeqlError, match=r"emb.mixed.v has rows of different lengths \(2, 3\)"):
        build(lake, tmp_path / "a", ["emb.mixed.v"])
    with pytest.raises(LakeqlError, match="in 384 dimensions but the vectors of emb.small.v have 8"):
        build(lake, tmp_path / "b", ["emb.small.v"], model="all-MiniLM-L6-v2")
    build(lake, tmp_path / "c", ["emb.small.v"])  # without a model, 8-dimensional vectors are fine


def test_a_column_that_is_neither_text_nor_vectors(byov, tmp_path):
    from lakeql.vectors.columns import vector_dim

    assert (vector_dim("FLOAT[384]"), vector_dim("DOUBLE[]"), vector_dim("INTEGER[]"),
            vector_dim("VARCHAR")) == (384, 0, None, None)
    with pytest.raises(LakeqlError, match="needs a text .* or a vector column"):
        build(byov[0], tmp_path / "d", ["emb.small.n"])


def test_hybrid_without_bm25_says_how_to_build_it(bcon):
    import duckdb

    msg = "rebuild with 'lakeql index LAKE --embed emb.docs.vec --embed-bm25'"
    with pytest.raises(duckdb.Error, match=msg):
        bcon.execute("SELECT * FROM hybrid_search('emb.docs', 'vec', 'x')").fetchall()


def test_scores_are_cosines_within_one(tmp_path):
    """An exact match scored up to ~1.00001 (the int8 tier's rounding): 28 of 100 self-queries of these
    vectors scored above 1. Scores are clamped to [-1, 1], and a query vector of any length gives the
    cosine (it gave the dot product: 7x the query, 7x the score); an all-zero query is an error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((500, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    lake = tmp_path / "lake"
    (lake / "emb").mkdir(parents=True)
    col = pa.array(vecs.tolist(), pa.list_(pa.float32(), 384))
    pq.write_table(pa.table({"id": np.arange(500), "vec": col}), lake / "emb" / "t.parquet")
    build(lake, tmp_path / "idx", ["emb.t.vec"])
    con = connect(lake, tmp_path / "idx")
    sql = "SELECT id, score FROM semantic_search_vector('emb.t', 'vec', ?::FLOAT[], k := 3, exact := ?)"
    tops = []
    for i in range(0, 500, 5):
        for exact_scan in (False, True):
            got = con.execute(sql, [vecs[i].tolist(), exact_scan]).fetchall()
            assert got[0][0] == i and all(-1.0 <= s <= 1.0 for _, s in got), got
            tops.append(got[0][1])
        scaled = con.execute(sql, [(7.0 * vecs[i]).tolist(), False]).fetchall()
        assert [r for r, _ in scaled] == [r for r, _ in got]
        assert all(abs(a[1] - b[1]) < 1e-3 for a, b in zip(scaled, got, strict=True)), (scaled, got)
    assert min(tops) > 0.999
    got = con.execute("SELECT score FROM similar_rows('emb.t', 'vec', 'id', 3, k := 5)").fetchall()
    assert all(-1.0 <= s <= 1.0 for (s,) in got)
    with pytest.raises(Exception, match="all zeros"):
        con.execute(sql, [[0.0] * 384, False]).fetchall()


def test_query_vectors_of_extreme_length_give_the_unit_query_answer(tmp_path):
    """The query vector's length is normalized away: a finite float32 vector of length ~1e21 (its float32
    squared norm overflows to inf) or ~1e-24 (underflows to 0) is the same direction as the unit one,
    so the same rows and cosines, not a zero query (every score 0, arbitrary rows) or 'all zeros'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((200, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    lake = tmp_path / "lake"
    (lake / "emb").mkdir(parents=True)
    col = pa.array(vecs.tolist(), pa.list_(pa.float32(), 64))
    pq.write_table(pa.table({"id": np.arange(200), "vec": col}), lake / "emb" / "t.parquet")
    build(lake, tmp_path / "idx", ["emb.t.vec"])
    con = connect(lake, tmp_path / "idx")
    sql = "SELECT id, score FROM semantic_search_vector('emb.t', 'vec', ?::FLOAT[], k := 5, exact := ?)"
    for i in (0, 17, 199):
        for exact_scan in (False, True):
            want = con.execute(sql, [vecs[i].tolist(), exact_scan]).fetchall()
            assert want[0][0] == i
            for scale in (1e20, 1e-24):
                q = (vecs[i] * np.float32(scale)).astype(np.float32)
                assert np.all(np.isfinite(q)) and np.any(q != 0)
                got = con.execute(sql, [q.tolist(), exact_scan]).fetchall()
                assert [r for r, _ in got] == [r for r, _ in want], (scale, got, want)
                assert all(abs(a - b) < 1e-3 for (_, a), (_, b) in zip(got, want, strict=True)), (scale, got)
