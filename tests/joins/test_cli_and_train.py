"""The stock duckdb CLI reads the pure-SQL macros; train-joiner fine-tunes and the index uses it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import connect_joins

DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


@pytest.fixture(scope="module")
def lake_db(flights, tmp_path_factory):
    """lake.duckdb as ``lakeql index`` writes it (storage v1.5, views + pure macros), with only the
    foundation's and joins' macros so this test does not depend on the other capabilities."""
    import duckdb

    from lakeql import sqlfiles
    from lakeql.catalog import Catalog
    from lakeql.indexer import DUCKDB_CLI_STORAGE
    from lakeql.lake import discover
    from lakeql.store import Store
    from lakeql.views import views_sql

    root, idx, _ = flights
    lake = discover(root)
    store = Store.for_lake(lake, idx)
    db = tmp_path_factory.mktemp("db") / "lake.duckdb"
    con = duckdb.connect(str(db), config={"storage_compatibility_version": DUCKDB_CLI_STORAGE})
    for stmt in views_sql(Catalog.open(lake, store)):
        con.execute(stmt)
    for name in ("lakeql", "joins"):
        sqlfiles.run(con, name, kinds=("pure",), index_dir=store.root, target="cli")
    con.execute("CHECKPOINT")
    con.close()
    return db


def cli(db: Path, sql: str) -> list[list[str]]:
    if not DUCKDB_CLI.exists():
        pytest.skip("the stock duckdb CLI (PyPI duckdb-cli) is not installed")
    out = subprocess.run([str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(db), "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split(",") for line in out.stdout.strip().splitlines()]


def test_stock_cli_containment_matches_python(lake_db, flights_con):
    got = cli(lake_db, "SELECT candidate_table, candidate_column, containment FROM "
                       "joins_containment('flights.flights', 'dest') LIMIT 3")
    py = {(r[0], r[1]): r[2] for r in flights_con.execute(
        "SELECT candidate_table, candidate_column, containment FROM joinable('flights.flights', 'dest', "
        "k := 50, mode := 'equi')").fetchall()}
    assert got
    for t, c, cont in got:
        assert abs(float(cont) - py[(t, c)]) < 1e-9


def test_stock_cli_lookup_and_graph(lake_db):
    hits = {(r[0], r[1]) for r in cli(lake_db, "SELECT table_name, column_name FROM joins_lookup(' ewr ')")}
    assert {("flights.airports", "faa"), ("flights.flights", "origin")} <= hits
    edges = cli(lake_db, "SELECT table_name, column_name, candidate_table, candidate_column FROM "
                         "join_graph(min_score := 0.6)")
    assert ["flights.flights", "carrier", "flights.airlines", "carrier"] in edges


@pytest.mark.slow
def test_train_joiner_then_joinable(flights, tmp_path, monkeypatch):
    from lakeql.cli import main
    from lakeql.joins import train
    from lakeql.store import Store

    root, idx, _ = flights
    idx2 = tmp_path / "idx"
    shutil.copytree(idx, idx2)
    real_fine_tune, held = train.fine_tune, []

    def fine_tune_under_the_build_lock(*args, **kwargs):  # train-joiner records as a build: under its lock
        held.append(Store(idx2).build_running())
        return real_fine_tune(*args, **kwargs)

    monkeypatch.setattr(train, "fine_tune", fine_tune_under_the_build_lock)
    code = main(["train-joiner", str(root), "--index-dir", str(idx2), "--epochs", "1",
                 "--max-pairs", "8", "--batch-size", "4", "--max-seq-length", "48", "--quiet"])
    assert code == 0
    assert held and held[0] is not None  # the build lock was held while the joiner was swapped in
    assert Store(idx2).build_running() is None  # and released
    assert (idx2 / "joins" / "joiner" / "modules.json").exists()
    con = connect_joins(root, idx2)
    params = con.execute("SELECT params FROM lakeql_indexes() WHERE kind = 'join_semantic'").fetchone()[0]
    assert "joins/joiner" in params
    rows = con.execute("SELECT candidate_table FROM joinable('flights.flights', 'origin', k := 1, "
                       "mode := 'semantic')").fetchall()
    assert rows
