"""hybrid_search: BM25 over the embedded column fused with the vector score, checked on the real test lake.

BM25 scores are compared with a brute-force Okapi BM25 written here; the fused ranking's two extremes
(weight 1: vectors only, weight 0: BM25 only) with the two searches alone.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import duckdb
import numpy as np
import pytest

Q = "compress data with zlib"


def brute_bm25(texts: list[str], query: str, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    docs = [Counter(re.findall(r"\w+", t.lower())) for t in texts]
    lens = np.array([sum(d.values()) for d in docs], float)
    avg = lens.mean()
    out = np.zeros(len(docs))
    for w in re.findall(r"\w+", query.lower()):
        df = sum(1 for d in docs if w in d)
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.get(w, 0)
            if tf:
                out[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens[i] / avg))
    return out


def test_bm25_scores_equal_brute_force(lake, rows, real):
    from lakeql.vectors.bm25 import BM25Index

    (folder,) = list((lake[1] / "embed").iterdir())
    idx = BM25Index.load(folder / "bm25", "python.functions.docstring")
    texts = [rows[i]["docstring"][:25_600] for i in real[0]]
    for query in (Q, "read a CSV file", "Zeichenkette \u00fcn\u00efc\u00f6d\u00e9", "no_such_word_xyz"):
        ref = brute_bm25(texts, query)
        got = idx.scores(query)
        np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3)


def names(con, sql, params=()):
    return [r[0] for r in con.execute(sql, list(params)).fetchall()]


def test_hybrid_extremes_are_each_search_alone(con, lake, rows, real):
    from lakeql.vectors.bm25 import BM25Index

    k = 8
    vec = names(con, f"SELECT qualname FROM semantic_search('python.functions', 'docstring', ?, k := {k})",
                [Q])
    only_vec = names(con, f"SELECT qualname FROM hybrid_search('python.functions', 'docstring', ?, k := {k}, "
                          "fusion := 'weighted', weight := 1.0)", [Q])
    assert only_vec == vec
    (folder,) = list((lake[1] / "embed").iterdir())
    s = BM25Index.load(folder / "bm25", "x").scores(Q)
    order = np.lexsort((np.arange(len(s)), -s))[:k]
    ref_kw = [rows[real[0][i]]["qualname"] for i in order if s[i] > 0]
    only_kw = names(con, f"SELECT qualname FROM hybrid_search('python.functions', 'docstring', ?, k := {k}, "
                         "fusion := 'weighted', weight := 0.0)", [Q])
    assert only_kw[:len(ref_kw)] == ref_kw


def test_rrf_ranks_rows_found_by_both_first(con):
    vec = names(con, "SELECT qualname FROM semantic_search('python.functions', 'docstring', ?, k := 20)",
                [Q])
    got = con.execute("SELECT qualname, score FROM hybrid_search('python.functions', 'docstring', ?)",
                      [Q]).fetchall()
    assert len(got) == 10 and [g[1] for g in got] == sorted((g[1] for g in got), reverse=True)
    assert got[0][0] in vec  # zlib's compress functions match in words and in meaning


def test_hybrid_filter_and_bad_arguments(con, lake):
    got = con.execute("SELECT kind FROM hybrid_search('python.functions', 'docstring', 'open a file', "
                      "k := 5, filter := 'kind = ''method''')").fetchall()
    assert len(got) == 5 and {g[0] for g in got} == {"method"}
    for sql, msg in [("fusion := 'max'", "fusion must be 'rrf' or 'weighted'"),
                     ("weight := 2", "weight (the vector score's share) must be between 0 and 1"),
                     ("k := 0", "k must be a positive integer")]:
        with pytest.raises(duckdb.Error, match=re.escape(msg)):
            con.execute(f"SELECT * FROM hybrid_search('python.functions', 'docstring', 'x', {sql})"
                        ).fetchall()


def test_bm25_covers_every_row_of_a_table_larger_than_one_batch(tmp_path, monkeypatch, rows, real):
    """Texts stream in batches of STREAM_ROWS: BM25 must index the rows of every batch, not the last."""
    import sys
    from pathlib import Path

    from lakeql.vectors import builder
    from lakeql.vectors.bm25 import BM25Index
    from lakeql.vectors.codes import CodeIndex

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vectors_helpers import build, make_lake

    monkeypatch.setattr(builder, "STREAM_ROWS", 32)  # the 204 texts of the test table: 7 batches
    lk = make_lake(tmp_path)
    build(lk, tmp_path / "index", ["functions.docstring"], embed_bm25=True)
    (folder,) = list((tmp_path / "index" / "embed").iterdir())
    label = "python.functions.docstring"
    codes = CodeIndex.load(folder, label)
    idx = BM25Index.load(folder / "bm25", label)
    texts = [r["docstring"][:25_600] for r in rows if r["docstring"] is not None and r["docstring"].strip()]
    assert idx.n == codes.n == len(texts) == len(real[0])
    word = max(re.findall(r"\w+", texts[0].lower()), key=len)  # in the first batch, which the bug left out
    want = brute_bm25(texts, word)
    got = idx.scores(word)
    assert got[0] > 0
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
