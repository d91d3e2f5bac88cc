"""trial11: a fresh-eyes trial on lakes shaped like real ones and text nobody tuned for.

Each test failed before its fix (benchmarks/results/trial11.md) and runs on small real data.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import duckdb
import pytest
from testutil import shared_data

import lakeql
from lakeql.errors import LakeqlError
from lakeql.lake import discover


def _drinks_lake(root: Path) -> Path:
    """``d/drinks.csv`` and ``d/drinks.parquet`` (one export in two formats: a common lake shape) and
    ``d/airlines.parquet``, from fivethirtyeight."""
    src = shared_data("fivethirtyeight")
    (root / "d").mkdir(parents=True)
    shutil.copy(src / "alcohol-consumption" / "drinks.csv", root / "d" / "drinks.csv")
    con = duckdb.connect()
    con.execute(f"COPY (FROM read_csv('{root}/d/drinks.csv')) TO '{root}/d/drinks.parquet'")
    con.execute(f"COPY (FROM read_csv('{src}/airline-safety/airline-safety.csv')) "
                f"TO '{root}/d/airlines.parquet'")
    return root


def test_two_sources_of_one_table_name_leave_that_name_out_not_the_lake(tmp_path: Path) -> None:
    """Before: ``two sources map to table 'd.drinks' ...`` refused the whole lake (index, sql, connect),
    so one pair of files made every other table of a lake of thousands unusable."""
    lake = _drinks_lake(tmp_path / "lake")
    with pytest.warns(lakeql.lake.UnsupportedFileWarning, match="d/drinks.csv.*d/drinks.parquet"):
        found = discover(lake)
    assert set(found.tables) == {"d.airlines"}
    left = [p for p in found.problems if p.table_name == "d.drinks"]
    assert {(p.kind, p.path) for p in left} == {("table", "d/drinks.csv"), ("table", "d/drinks.parquet")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=[])
        con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM d.airlines").fetchone()[0] == 56
    status = con.execute("SELECT source, status FROM lakeql_tables() WHERE table_name = 'd.drinks' "
                         "ORDER BY source").fetchall()
    assert status == [("d/drinks.csv", "error"), ("d/drinks.parquet", "error")]
    with pytest.raises(LakeqlError, match="rename or move one of them"):
        con.execute("SELECT * FROM joinable('d.drinks', 'country')").fetchall()
