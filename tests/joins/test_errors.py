"""Bad input and index states: each a one-line error naming the fix (no embeddings: fast)."""

from __future__ import annotations

import os
import re

import duckdb
import pytest
from lakes import index_joins

from lakeql.errors import LakeqlError

from .conftest import connect_joins, small_lake

TABLES = {
    "people": "SELECT i AS person_id, 'name ' || i AS name, NULL::VARCHAR AS nothing, "
              "'\\x00'::BLOB AS raw, [i, i] AS pair, (i * 1.5)::DOUBLE AS weight FROM range(50) t(i)",
    "visits": "SELECT i % 50 AS person_id, i AS visit_id FROM range(500) t(i)",
    "one": "SELECT 7 AS person_id, 'Zürich 🚀' AS city",
    "odd": "SELECT * FROM (VALUES ('Zürich 🚀'), (''), ('   '), (NULL), (repeat('x', 100000)), "
           "('ÅNGSTRÖM')) t(city)",
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = small_lake(tmp_path_factory.mktemp("err_lake"), TABLES)
    idx = tmp_path_factory.mktemp("err_idx")
    index_joins(root, idx, joins_semantic=False)
    return root, idx


@pytest.fixture(scope="module")
def con(lake):
    return connect_joins(*lake)


def err(con, sql: str, params=None) -> str:
    with pytest.raises(duckdb.Error) as exc:
        con.execute(sql, params or []).fetchall()
    msg = str(exc.value)
    return msg


BAD = [
    ("SELECT * FROM joinable('d.peple', 'person_id')", r"unknown table 'd.peple' \(did you mean d.people"),
    ("SELECT * FROM joinable('d.people', 'person_idd')", r"no column 'person_idd' \(did you mean person_id"),
    ("SELECT * FROM joinable('d.people', 'nothing')", r"no non-empty values .*nothing to join on"),
    ("SELECT * FROM joinable('d.people', 'raw')", r"binary column.*pick a string, integer or date"),
    ("SELECT * FROM joinable('d.people', 'pair')", r"nested column"),
    ("SELECT * FROM joinable('d.people', 'weight')", r"type DOUBLE is not a join key type"),
    ("SELECT * FROM joinable('d.people', 'person_id', k := 0)", r"k must be a positive integer, got 0"),
    ("SELECT * FROM joinable('d.people', 'person_id', k := -3)", r"k must be a positive integer, got -3"),
    ("SELECT * FROM joinable('d.people', 'person_id', mode := 'fuzzy')", r"mode must be one of auto, equi"),
    ("SELECT * FROM joinable('d.people', 'person_id', mode := 'semantic')",
     r"no semantic join index .*--joins-semantic"),
    ("SELECT * FROM joinable('d.people', NULL)", r"needs a column name"),
    ("SELECT * FROM joinable('d.people', ['person_id', 'person_id'])", r"column is repeated"),
    ("SELECT * FROM joinable('d.people', ['person_id', 'name'], mode := 'semantic')",
     r"composite keys are searched with mode 'equi' or 'auto'"),
]


@pytest.mark.parametrize(("sql", "pattern"), BAD)
def test_bad_input_is_one_clear_line(con, sql, pattern):
    msg = err(con, sql)
    assert re.search(pattern, msg), msg


def test_works_on_one_row_table_and_odd_values(con):
    rows = con.execute("SELECT candidate_table, containment FROM joinable('d.one', 'person_id', "
                       "mode := 'equi')").fetchall()
    assert ("d.people", 1.0) in rows
    odd = con.execute("SELECT candidate_table, candidate_column, containment, sample_matches FROM "
                      "joinable('d.one', 'city')").fetchall()
    assert odd[0][:3] == ("d.odd", "city", 1.0)
    assert odd[0][3][0]["candidate_value"] == "Zürich 🚀"
    prof = con.execute("SELECT n_distinct, len_max, note FROM join_columns() WHERE table_name = 'd.odd'"
                       ).fetchone()
    assert prof[0] == 3 and prof[1] == 100000  # '', '   ' and NULL are not values; the huge one is


def test_parent_beats_child_on_integers(con):
    rows = con.execute("SELECT candidate_table, candidate_column FROM "
                       "joinable('d.visits', 'person_id', mode := 'equi')").fetchall()
    assert rows[0] == ("d.people", "person_id")


def test_stale_then_refresh(lake, tmp_path):
    """A changed table makes only answers that touch it stale: joinable on it fails naming --refresh,
    other tables' joinable answers without it; --refresh re-profiles that table only."""
    import shutil

    root = tmp_path / "lake"
    shutil.copytree(lake[0], root)
    idx = tmp_path / "idx"
    store = index_joins(root, idx, joins_semantic=False)
    before = {e.table_name: e.built_at for e in store.entries("column_profile")}
    con = connect_joins(root, idx)
    assert con.execute("SELECT count(*) FROM joinable('d.visits', 'person_id')").fetchone()[0] > 0
    target = root / "d" / "people.parquet"
    duckdb.connect().execute(f"COPY (SELECT 1 AS person_id) TO '{target}' (FORMAT parquet)").fetchall()
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    con2 = connect_joins(root, idx)
    msg = err(con2, "SELECT * FROM joinable('d.people', 'person_id')")
    assert "older than the Parquet files of table d.people" in msg and "--refresh" in msg
    rows = con2.execute("SELECT candidate_table FROM joinable('d.visits', 'person_id', mode := 'equi')"
                        ).fetchall()
    assert rows and ("d.people",) not in rows  # the stale table is left out, the rest answers
    graph = con2.execute("SELECT count(*) FROM join_graph() WHERE 'd.people' IN (table_name, candidate_table)"
                         ).fetchone()[0]
    assert graph == 0
    store = index_joins(root, idx, refresh=True, joins_semantic=False)
    after = {e.table_name: e.built_at for e in store.entries("column_profile")}
    assert after["d.people"] != before["d.people"]
    assert after["d.visits"] == before["d.visits"]  # unchanged table not re-profiled
    con3 = connect_joins(root, idx)
    rows = con3.execute("SELECT candidate_table, containment FROM joinable('d.visits', 'person_id', "
                        "mode := 'equi')").fetchall()
    assert ("d.people", 1 / 50) in rows


def test_corrupt_index_file(lake, tmp_path):
    import shutil

    idx = tmp_path / "idx"
    shutil.copytree(lake[1], idx)
    (idx / "joins" / "lake" / "columns.parquet").write_bytes(b"not a parquet file")
    con = connect_joins(lake[0], idx)
    msg = err(con, "SELECT * FROM joinable('d.visits', 'person_id')")
    assert ("join index" in msg or "join_index" in msg) and "lakeql index" in msg


def test_not_indexed(lake, tmp_path):
    con = connect_joins(lake[0], tmp_path / "empty_idx")
    msg = err(con, "SELECT * FROM joinable('d.visits', 'person_id')")
    assert "lakeql index" in msg
    msg = err(con, "SELECT * FROM join_graph()")
    assert "no join_graph index" in msg


def test_cli_error_is_one_line(lake, capsys):
    from lakeql.cli import main

    code = main(["train-joiner", str(lake[0]), "--index-dir", str(lake[1]), "--epochs", "0"])
    assert code == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "--epochs must be >= 1" in line


def test_errors_are_lakeql_errors():
    from lakeql.joins.sqlapi import parse_columns

    with pytest.raises(LakeqlError):
        parse_columns("[]")


def test_no_joins_flag(lake, tmp_path):
    store = index_joins(lake[0], tmp_path / "idx", joins=False)
    assert not [e for e in store.entries() if e.kind.startswith("join")]
    con = connect_joins(lake[0], tmp_path / "idx")
    msg = err(con, "SELECT * FROM joinable('d.visits', 'person_id')")
    assert ("no join index" in msg or "no join_index index" in msg) and "lakeql index" in msg


def test_refresh_without_changes_rebuilds_nothing(lake, tmp_path):
    import shutil

    idx = tmp_path / "idx"
    shutil.copytree(lake[1], idx)
    before = {(e.kind, e.table_name): e.built_at for e in index_joins(lake[0], idx, refresh=True,
                                                                      joins_semantic=False).entries()
              if e.kind.startswith(("join", "column_profile"))}
    after = {(e.kind, e.table_name): e.built_at for e in index_joins(lake[0], idx, refresh=True,
                                                                     joins_semantic=False).entries()
             if e.kind.startswith(("join", "column_profile"))}
    assert before == after and ("join_graph", "") in after
