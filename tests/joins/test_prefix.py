"""The join graph's prefix-filtering search (joins/prefix.py) equals the full search it replaces:
pools (members, containment, uniqueness, bound: bit for bit) and the graph's edges and pools files, on
a real lake through the build and on random indexes with every case the prefix argument must survive
(KMV-capped columns, a hash twice in a column, probes cut at PROBE, excluded tables, copies tying at
the pool's boundary, thresholds 0 to 1)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lakeql.demo import SAMPLE_LAKE


def _fake_index(seed: int, n_cols: int = 260):
    """A JoinIndex (without files) of random columns over a few shared value pools."""
    from lakeql.joins.joinindex import HASH_MAX, JoinIndex

    rng = np.random.default_rng(seed)
    common = np.sort(rng.choice(1 << 32, 40, replace=False)).astype(np.uint32)  # days, years
    wide = np.sort(rng.choice(1 << 32, 3000, replace=False)).astype(np.uint32)  # ids, names
    cols, table_of, uniq, n_dist = [], [], [], []
    table = 0
    while len(cols) < n_cols:
        kind = rng.integers(0, 5)
        if kind == 0:
            h = rng.choice(common, rng.integers(2, len(common) + 1), replace=False)
        elif kind == 1 and cols:  # a copy of an earlier column in a new table (ties in the pool)
            h = cols[rng.integers(0, len(cols))].copy()
        elif kind == 2:  # common and wide values together
            h = np.r_[rng.choice(common, 10, replace=False),
                      rng.choice(wide, rng.integers(5, 200), replace=False)]
        else:
            h = rng.choice(wide, rng.integers(2, 700), replace=False)
        h = np.sort(np.unique(h))
        nd = len(h)
        if rng.random() < 0.08 and len(h) > 3:  # two values with one hash: the hash twice
            h = np.sort(np.r_[h, h[rng.integers(0, len(h))]])
            nd = len(h)
        if rng.random() < 0.1 and len(h) > 40:  # KMV-capped: the bottom hashes of a bigger column
            keep = int(rng.integers(20, len(h) - 5))
            h, nd = h[:keep], nd + int(rng.integers(1, 5000))
        cols.append(h.astype(np.uint32))
        table_of.append(table)
        n_dist.append(nd)
        uniq.append(float(rng.choice([1.0, 1.0, 0.2, 0.5, 0.9, rng.random()])))
        if rng.random() < 0.6:
            table += 1
    ix = object.__new__(JoinIndex)
    n = len(cols)
    ix.table_name = [f"t{t}" for t in table_of]
    ix.column_name = [f"c{i}" for i in range(n)]
    ix.n_hashes = np.array([len(h) for h in cols], np.int64)
    ix.n_distinct = np.array(n_dist, np.int64)
    ix.uniqueness = np.array(uniq)
    ix.indexed = np.ones(n, bool)
    ix.bycol = np.concatenate(cols)
    ix.offset = np.r_[0, np.cumsum(ix.n_hashes)[:-1]].astype(np.int64)
    colrep = np.repeat(np.arange(n, dtype=np.int32), ix.n_hashes)
    order = np.argsort(ix.bycol, kind="stable")
    ix.hh, ix.hc = ix.bycol[order], colrep[order]
    ix.table_id = np.array(table_of, np.int32)
    capped = ix.n_hashes < ix.n_distinct
    ix.tau = np.full(n, HASH_MAX, np.uint32)
    ix.tau[capped] = ix.bycol[ix.offset[capped] + ix.n_hashes[capped] - 1]
    ix.excluded = np.isin(ix.table_id, rng.choice(table + 1, 3, replace=False))
    return ix


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("t", [0.0, 0.35, 0.6, 0.85, 1.0])
@pytest.mark.parametrize("probe", [512, 8, None])
def test_pools_equal_full_search(seed, t, probe):
    from lakeql.joins import prefix
    from lakeql.joins.search import Searcher

    ix = _fake_index(seed)
    s = Searcher(ix, {})
    queries = np.flatnonzero(ix.n_distinct >= 2)
    post = prefix.postings(ix, t)
    got = list(prefix.pools(ix, post, queries, probe, t, 20, 80))
    assert [g[0] for g in got] == list(range(len(queries)))
    members = 0
    for (_, cols, cont, uniq, upper), q in zip(got, queries, strict=True):
        want = s.equi_pool(int(q), 20, probe, min_upper=t)
        for a, b in zip((cols, cont, uniq, upper), want, strict=True):
            assert np.array_equal(a, b), (q, a, b)
        members += len(cols)
    assert members > 0 or t == 1.0
    if t == 0.6 and probe == 512:
        assert members > 200  # the random lake holds real candidates


def test_pools_without_postings():
    from lakeql.joins import prefix

    ix = _fake_index(4, n_cols=5)
    ix.bycol = ix.bycol[:0]
    ix.hh, ix.hc = ix.hh[:0], ix.hc[:0]
    ix.n_hashes[:] = 0
    ix.offset[:] = 0
    got = list(prefix.pools(ix, prefix.postings(ix, 0.6), np.arange(5), 512, 0.6, 20, 80))
    assert [len(g[1]) for g in got] == [0] * 5


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """(lake root, store) of the sample lake plus a copy of its flights table and a row slice of it."""
    import duckdb

    import lakeql

    root = tmp_path_factory.mktemp("prefix_lake")
    shutil.copytree(SAMPLE_LAKE, root, dirs_exist_ok=True)
    (root / "copies").mkdir()
    f = SAMPLE_LAKE / "flights" / "flights.parquet"
    shutil.copyfile(f, root / "copies" / "flights_copy.parquet")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet('{f}') WHERE day <= 3) TO "
                f"'{root / 'copies' / 'flights_early.parquet'}' (FORMAT parquet)")
    idx = tmp_path_factory.mktemp("prefix_idx")
    rep = lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False)
    return root, rep.store


@pytest.mark.parametrize("t", [0.0, 0.6])
def test_graph_kernel_equals_per_column_search(lake, monkeypatch, tmp_path, t):
    """The build's kernel path (many query columns) writes the same edges and pools as the per-column
    path (few query columns, JoinIndex.overlaps)."""
    import pyarrow.parquet as pq

    from lakeql.joins import graph
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.lake import discover

    root, store = lake
    s = Searcher(open_index(store), discover(root).tables)
    out = {}
    for many in (10**9, 0):
        monkeypatch.setattr(graph, "MANY", many)
        n, pools = graph.build_with_pools(s, tmp_path / f"e{many}.parquet", t, {})
        out[many] = (n, pq.read_table(tmp_path / f"e{many}.parquet"), pools)
    (n1, e1, p1), (n0, e0, p0) = out[10**9], out[0]
    assert n1 == n0 and e1.equals(e0) and p1.equals(p0)
    assert n0 > (50 if t == 0.0 else 5)
    assert ("copies.flights_copy", "tailnum") in zip(e0.column("candidate_table").to_pylist(),
                                                     e0.column("candidate_column").to_pylist(), strict=True)
