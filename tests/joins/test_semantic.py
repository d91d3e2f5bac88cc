"""Semantic joins on real Auto-Join web tables (values written differently on each side), value-level
matching, and the DeepJoin text."""

from __future__ import annotations

import pytest

from lakeql.joins import valuematch
from lakeql.joins.lakeindex import deepjoin_text

from .conftest import connect_joins

MATCHES = [
    ("Gov. Gray Davis", "Gray Davis", True),
    ("Albuquerque N.M.", "Albuquerque", True),
    ("George Washington; February 22 1732 – December 14 1799", "George Washington", True),
    ("de-Jesus-Espinosa", "adejesus", True),
    ("Zürich", "ZÜRICH", True),
    ("December 30 1873", "30", False),  # a bare number inside a text is no match
    ("New York", "New Mexico", False),
    ("John Adams", "Samuel Adams Brewery", False),
]


@pytest.mark.parametrize(("q", "c", "expected"), MATCHES)
def test_value_matching(q, c, expected):
    m = valuematch.match([q], [c, "unrelated filler value"])
    assert bool(m.matched[0]) is expected, (q, c, float(m.score[0]))


def test_deepjoin_text_shape():
    r = {"n_distinct": 3, "len_min": 3, "len_max": 3, "len_avg": 3.0}
    text = deepjoin_text("flights.airports", "faa", r, ["EWR", "JFK", "LGA"])
    assert text == "flights airports. faa. 3 distinct values, length 3-3 average 3. EWR, JFK, LGA"
    long = deepjoin_text("t.t", "c", r, ["x" * 300] * 10)
    assert len(long) <= 1000


@pytest.fixture(scope="module")
def aj_con(autojoin):
    root, idx, _ = autojoin
    return connect_joins(root, idx)


def test_semantic_recall_at_10(autojoin, aj_con):
    _, _, truth = autojoin
    found = 0
    for qt, qcols, tt, tcols in truth:
        rows = aj_con.execute("SELECT candidate_table, candidate_column FROM "
                              "joinable(?, ?, k := 10, mode := 'semantic')", [qt, qcols[0]]).fetchall()
        found += (tt, tcols[0]) in rows
    assert found / len(truth) >= 0.85, f"{found}/{len(truth)}"


def test_semantic_containment_is_measured(aj_con):
    rows = aj_con.execute(
        "SELECT candidate_table, candidate_column, containment, sample_matches, method, join_sql FROM "
        "joinable('autojoin.california_govs_1_source', 'Governor''s Name', k := 5, mode := 'semantic')"
    ).fetchall()
    hit = [r for r in rows if r[:2] == ("autojoin.california_govs_1_target", "Name")]
    assert hit, rows
    _, _, cont, matches, method, sql = hit[0]
    assert method == "semantic" and 0.3 < cont <= 1.0
    pairs = {(m["query_value"], m["candidate_value"]) for m in matches}
    # 'Gov. Earl Warren' ~ 'Earl Warren', 'Gov. James Rolph' ~ 'James Rolph Jr': a shared surname
    assert pairs and all({w for w in c.split() if len(w) >= 4} & set(q.split()) for q, c in pairs)
    assert aj_con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0] > 0
    # the exact overlap is (close to) nothing: equi mode cannot find this join
    eq = aj_con.execute("SELECT candidate_table, containment FROM joinable("
                        "'autojoin.california_govs_1_source', 'Governor''s Name', mode := 'equi')").fetchall()
    assert all(not (t == "autojoin.california_govs_1_target" and c > 0.2) for t, c in eq)


def test_auto_mode_falls_back_to_semantic(aj_con):
    rows = aj_con.execute("SELECT candidate_table, candidate_column, method FROM joinable("
                          "'autojoin.us_cities_source', 'United States Cities', k := 5)").fetchall()
    assert ("autojoin.us_cities_target", "City", "semantic") in rows
