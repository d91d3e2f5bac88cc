"""The batched build paths equal the per-column ones they replace (issue 10 item 1, build time):
the join graph's posting counts per sparse product, union search's sketch containment for all query
columns at once, and the profile's exact distinct counts of in-memory columns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lakeql.demo import SAMPLE_LAKE


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """(lake root, store) of the sample lake + a copy of its flights table (equal hash sets) and a row
    slice of it, indexed for joins (no model)."""
    import duckdb

    import lakeql

    root = tmp_path_factory.mktemp("bt_lake")
    shutil.copytree(SAMPLE_LAKE, root, dirs_exist_ok=True)
    (root / "copies").mkdir()
    f = SAMPLE_LAKE / "flights" / "flights.parquet"
    shutil.copyfile(f, root / "copies" / "flights_copy.parquet")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet('{f}') WHERE day <= 3) TO "
                f"'{root / 'copies' / 'flights_early.parquet'}' (FORMAT parquet)")
    idx = tmp_path_factory.mktemp("bt_idx")
    rep = lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False)
    return root, rep.store


def _same(a, b) -> bool:
    return (np.array_equal(a.cols, b.cols) and a.cols.dtype == b.cols.dtype and a.n_query == b.n_query
            and np.array_equal(a.overlap, b.overlap) and np.array_equal(a.containment, b.containment))


@pytest.mark.parametrize("probe, cells", [(512, 1 << 22), (8, 1), (None, 1000)])
def test_overlaps_many_equals_overlaps(lake, probe, cells):
    from lakeql.joins.sqlapi import open_index

    ix = open_index(lake[1])
    cols = [c for c in range(len(ix)) if ix.indexed[c]] + [0]  # a column twice: both answered
    got = dict.fromkeys(range(len(cols)))
    for i, ov in ix.overlaps_many(cols, probe, cells=cells):
        assert got[i] is None
        got[i] = ov
    assert all(got[i] is not None for i in range(len(cols)))
    for i, c in enumerate(cols):
        assert _same(got[i], ix.overlaps(c, probe)), ix.column_name[c]
    # the copy's columns hold the same hashes as the original's: the graph found them
    assert sum(len(ov.cols) > 0 for ov in got.values()) > len(cols) // 2


def test_join_graph_equals_one_search_per_column(lake):
    from lakeql.joins import graph
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.lake import discover

    root, store = lake
    s = Searcher(open_index(store), discover(root).tables)
    queries = [q for q in range(len(s.ix)) if s.ix.indexed[q] and s.ix.n_distinct[q] >= 2]
    got = graph.edges_of(s, queries, 0.0)
    want = {n: [] for n in graph.EDGE_COLUMNS}
    for q in queries:
        for c, sc, ct, u in zip(*s.equi_ranked(q, graph.PER_COLUMN, pool=graph.POOL, probe=graph.PROBE),
                                strict=True):
            for n, v in zip(graph.EDGE_COLUMNS, (s.ix.table_name[q], s.ix.column_name[q],
                                                 s.ix.table_name[int(c)], s.ix.column_name[int(c)],
                                                 float(sc), float(ct), float(u), "equi"), strict=True):
                want[n].append(v)
    assert got == want
    assert ("copies.flights_copy", "tailnum") in zip(got["candidate_table"], got["candidate_column"],
                                                     strict=True)


def test_sketch_containment_many_equals_per_column(lake):
    from lakeql.joins import union
    from lakeql.joins.union_store import DiscoveryIndex

    ix = DiscoveryIndex(lake[1].root / "discovery")
    allc = np.arange(len(ix.n_distinct))
    for t in ix.tables:
        r = ix.columns_of(t)
        qa = np.arange(r.start, r.stop)
        many = union.sketch_containment_many(ix, qa, allc)
        one = np.array([union.sketch_containment(ix, int(q), allc) for q in qa]).reshape(len(qa), len(allc))
        assert np.array_equal(many, one, equal_nan=True), t
        ro = np.array([union.range_overlap(ix, int(q), allc) for q in qa]).reshape(len(qa), len(allc))
        assert np.array_equal(union.range_overlap_many(ix, qa, allc), ro, equal_nan=True), t
    # an original and its copy contain each other entirely
    a, b = (_col(ix, t, "tailnum") for t in ("flights.flights", "copies.flights_copy"))
    assert union.sketch_containment_many(ix, [a], [b])[0, 0] == 1.0


def _col(ix, table: str, column: str) -> int:
    r = ix.columns_of(table)
    return r.start + ix.column_name[r.start:r.stop].index(column)


def test_exact_distinct_of_in_memory_columns_equals_count_distinct(tmp_path):
    """list_unique() where it counts as count(DISTINCT) does: NaN, -0.0, infinities, decimals; INTERVAL
    (1 day = 24 hours for count(DISTINCT)) keeps count(DISTINCT)."""
    import duckdb

    from lakeql import profile
    from lakeql.lake import discover

    (tmp_path / "lake" / "d").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT i::DOUBLE / 7 AS f, CASE WHEN i = 1 THEN -0.0 WHEN i = 2 THEN 0.0 WHEN i = 3 "
        "THEN 'nan'::DOUBLE WHEN i = 4 THEN -'nan'::DOUBLE WHEN i = 5 THEN 'inf'::DOUBLE ELSE i END AS g, "
        "(i / 3)::DECIMAL(9, 2) AS d, (i % 50)::FLOAT AS r, "
        "CASE WHEN i = 1 THEN INTERVAL 1 DAY WHEN i = 2 THEN INTERVAL 24 HOUR ELSE to_seconds(i) END AS iv "
        f"FROM range(1, 61) t(i)) TO '{tmp_path / 'lake' / 'd' / 't.parquet'}' (FORMAT parquet)")
    t = discover(tmp_path / "lake").tables["d.t"]
    cols = [tuple(r[:2]) for r in con.execute(f"DESCRIBE SELECT * FROM {t.scan_sql()}").fetchall()]
    rows, _ = profile.profile_table(t, cols, 60)
    want = con.execute("SELECT " + ", ".join(f'count(DISTINCT "{n}")' for n, _ in cols)
                       + f" FROM {t.scan_sql()}").fetchall()[0]
    got = {r["column_name"]: (r["n_distinct"], r["distinct_exact"]) for r in rows}
    for (name, _), n in zip(cols, want, strict=True):
        if got[name][1]:  # counted exactly (every column here is 'maybe unique' but r)
            assert got[name][0] == n, name
    assert got["g"] == (58, True) and got["iv"] == (59, True) and got["f"] == (60, True)
    assert profile._exact_distinct_sql("x", "INTERVAL", True).startswith("count(DISTINCT")
    assert profile._exact_distinct_sql("x", "DOUBLE", False).startswith("count(DISTINCT")
    assert profile._exact_distinct_sql("x", "DECIMAL(9,2)", True).startswith("list_unique")
