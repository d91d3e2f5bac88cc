"""The SQL surface (schema_context, check_sql, schema_files) and the CLI (lakeql schemas / check)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from lakeql.cli import main

from .conftest import SAMPLE, build_context, connect

REPO = Path(__file__).resolve().parents[2]


def rows(con, sql, *params):
    return con.execute(sql, list(params)).fetchall()


@pytest.mark.slow
def test_schema_context_picks_the_right_files(sample_con, sample_index):
    _, idx = sample_index
    got = rows(sample_con, "SELECT path, score, content FROM schema_context('which airline flew the most "
                           "flights?')")
    assert len(got) == 2  # the sample lake has two domains, both overviews are small
    assert got[0][0] == str(idx / "schemas" / "flights" / "_DOMAIN.md")
    assert got[0][1] > got[1][1] and "flights.airlines" in got[0][2]
    tables = rows(sample_con, "SELECT path FROM schema_context('docstring of a python function', k := 2, "
                              "unit := 'table')")
    assert tables[0][0].endswith("python/functions.yaml") and len(tables) == 2
    one = rows(sample_con, "SELECT count(*) FROM schema_context('tail number of planes', k := 1)")
    assert one == [(1,)]


@pytest.mark.parametrize(("sql", "fragment"), [
    ("SELECT * FROM schema_context('x', k := 0)", "k must be a positive integer"),
    ("SELECT * FROM schema_context('x', k := NULL)", "k must be a positive integer"),
    ("SELECT * FROM schema_context('')", "needs a question"),
    ("SELECT * FROM schema_context(NULL)", "needs a question"),
    ("SELECT * FROM schema_context(chr(0))", "needs a question"),
    ("SELECT * FROM schema_context('\u200b\t')", "needs a question"),
    ("SELECT * FROM schema_context('x', unit := 'rows')", "unknown unit"),
    ("SELECT * FROM schema_context(repeat('flights ', 12501))", "100,008 characters; at most 100,000"),
    ("SELECT * FROM check_sql(repeat('SELECT 1;', 111112))", "1,000,008 characters; at most 1,000,000"),
])
def test_schema_context_bad_arguments(sample_con, sql, fragment):
    with pytest.raises(duckdb.Error, match=fragment):
        sample_con.execute(sql).fetchall()


def test_check_sql_macro(sample_con):
    assert rows(sample_con, "SELECT * FROM check_sql('SELECT carrier FROM flights.airlines')") == []
    got = rows(sample_con, "SELECT severity, suggestion, line, col FROM check_sql('SELECT carier FROM "
                           "flights.airlines')")
    assert got == [("error", "carrier", 1, 8)]
    assert rows(sample_con, "SELECT count(*) FROM check_sql('SELECT name FROM airlines', "
                            "search_path := 'flights')") == [(0,)]
    assert rows(sample_con, "SELECT count(*) FROM check_sql(?)", "SELECT 'ü😀' AS x") == [(0,)]
    got = rows(sample_con, "SELECT message FROM check_sql(NULL)")
    assert "empty SQL" in got[0][0]


def test_not_indexed_stale_and_corrupt(tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE, lake)
    con, _ = connect(lake, tmp_path / "none")
    with pytest.raises(duckdb.Error, match="no schema files for this lake: build them with 'lakeql index"):
        con.execute("SELECT * FROM schema_context('x')").fetchall()
    build_context(lake, tmp_path / "idx", schemas_embed=False)
    con, _ = connect(lake, tmp_path / "idx")
    got = con.execute("SELECT * FROM schema_context('airports', k := 1, unit := 'table')").fetchall()
    assert len(got) == 1
    # corrupt listing: a clear error naming the fix
    listing = tmp_path / "idx" / "schemas" / ".lakeql-files.parquet"
    listing.write_bytes(b"garbage")
    con, _ = connect(lake, tmp_path / "idx")
    with pytest.raises(duckdb.Error, match="(unreadable|damaged) .*lakeql index --refresh"):
        con.execute("SELECT * FROM schema_context('x')").fetchall()
    # stale: a Parquet file changed after the build
    build_context(lake, tmp_path / "idx", schemas_embed=False)
    later = time.time_ns() + 5_000_000_000
    os.utime(lake / "flights" / "airlines.parquet", ns=(later, later))
    con, _ = connect(lake, tmp_path / "idx")
    with pytest.raises(duckdb.Error, match="older than the lake's Parquet files: run 'lakeql index "
                                           "--refresh"):  # the sample lake: Parquet only
        con.execute("SELECT * FROM schema_context('x')").fetchall()


def test_deleted_listing_names_the_fix(tmp_path):
    """schema_files() after schemas/.lakeql-files.parquet was deleted: DuckDB said only "No files found
    that match the pattern"; now the error names 'lakeql index --refresh', which writes it again. Another
    path is passed through as given (no existence test of files outside the index)."""
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE, lake)
    con, _ = connect(lake, tmp_path / "none")
    with pytest.raises(duckdb.Error, match="no schema files for this lake: build them with 'lakeql index"):
        con.execute("SELECT * FROM schema_files()").fetchall()
    build_context(lake, tmp_path / "idx", schemas_embed=False)
    con, _ = connect(lake, tmp_path / "idx")
    want = rows(con, "SELECT * FROM schema_files()")
    assert len(want) == 10
    listing = tmp_path / "idx" / "schemas" / ".lakeql-files.parquet"
    listing.unlink()
    with pytest.raises(duckdb.Error, match=r"the schema file listing .* is missing: run 'lakeql index "
                                           "--refresh LAKE'"):
        con.execute("SELECT * FROM schema_files()").fetchall()
    with pytest.raises(duckdb.Error, match="No files found"):
        con.execute("SELECT * FROM schema_files(_path := ?)", [str(tmp_path / "x.parquet")]).fetchall()
    build_context(lake, tmp_path / "idx", schemas_embed=False)  # what --refresh runs
    assert listing.is_file() and rows(con, "SELECT * FROM schema_files()") == want


def test_schema_files_macro_in_the_stock_duckdb_cli(tmp_path, sample_index):
    from lakeql.catalog import Catalog
    from lakeql.indexer import write_database
    from lakeql.lake import discover
    from lakeql.store import Store

    lake_root, idx = sample_index
    lake = discover(lake_root)
    store = Store.for_lake(lake, idx)
    db = write_database(store, Catalog.open(lake, store))
    from testutil import duckdb_cli

    cli = duckdb_cli()
    out = subprocess.run([str(cli), str(db), "-csv", "-c",
                          "SELECT kind, count(*) FROM schema_files() GROUP BY kind ORDER BY kind"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["kind,count_star()", "domain,2", "index,1", "table,7"]


def test_cli_schemas_and_check(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["schemas", str(SAMPLE), "--out", str(out), "--format", "toon", "-q"]) == 0
    assert (out / "flights" / "airlines.toon").exists() and (out / "INDEX.md").exists()
    assert main(["check", "--lake", str(SAMPLE), "SELECT carrier FROM flights.airlines"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["check", "--lake", str(SAMPLE), "SELECT carier FROM flights.airlines"]) == 1
    text = capsys.readouterr().out
    assert text.startswith("error: 1:8: unknown column 'carier'") and "carrier" in text
    assert main(["check", "--lake", str(tmp_path / "missing"), "SELECT 1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["schemas", str(SAMPLE), "--out", str(out), "--domain-size", "1"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["schemas", str(SAMPLE), "--out", str(out), "--format", "xml"])
    assert exc.value.code == 2
