"""A CSV value past DuckDB's sniffing sample (20,480 rows) that does not fit the type sniffed from it
(``NA`` in a DOUBLE column, a word in a BIGINT one): the table is read with ``sample_size = -1``
everywhere (catalog, views, profiles, refresh), recorded as ``csv_whole_sniff`` in the catalog.

The real fivethirtyeight table is read from ../shared/data/fivethirtyeight (the path tests/test_csvenc.py
uses); the test fails, never skips, when it is missing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import duckdb
import pytest

import lakeql
from lakeql.catalog import Catalog, profile_table
from lakeql.lake import discover
from lakeql.store import Store

F538 = next(
    (
        p / "shared" / "data" / "fivethirtyeight"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "fivethirtyeight").is_dir()
    ),
    None,
)
ROWS = 25_000  # > DuckDB's 20,480-row sample


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _write(path: Path, header: str, row: str, late: str) -> None:
    lines = [header] + [row.format(i=i) for i in range(ROWS)] + [late]
    path.write_text("\n".join(lines) + "\n")


def _index(lake: Path, idx: Path, refresh: bool = False) -> list[str]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        lakeql.index(str(lake), index_dir=str(idx), refresh=refresh)
    return [str(w.message) for w in got]


def _stored(idx: Path) -> dict[str, tuple]:
    rows = duckdb.sql(
        f"SELECT table_name, csv_whole_sniff, row_count FROM read_parquet('{idx}/catalog/tables.parquet')"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _types(idx: Path, table: str) -> dict[str, str]:
    return dict(
        duckdb.execute(
            f"SELECT column_name, type FROM read_parquet('{idx}/catalog/columns.parquet') "
            "WHERE table_name = ?",
            [table],
        ).fetchall()
    )


def test_late_values_are_read_with_types_from_every_row(tmp_path):
    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "d").mkdir(parents=True)
    _write(lake / "d" / "na.csv", "p,kind,q", "{i}.5,cancer,{i}", 'NA,"cancer",NA')
    _write(lake / "d" / "word.csv", "id,n", "{i},{i}", "x,abc")
    _write(lake / "d" / "ok.csv", "id,n", "{i},{i}", "7,8")
    said = _index(lake, idx)
    assert not [m for m in said if "d.na" in m or "d.word" in m], said
    assert _stored(idx) == {
        "d.na": (True, ROWS + 1),
        "d.word": (True, ROWS + 1),
        "d.ok": (False, ROWS + 1),  # a file whose full read works: sniffed as DuckDB does, never wholly
    }
    assert _types(idx, "d.na") == {"p": "VARCHAR", "kind": "VARCHAR", "q": "VARCHAR"}
    assert _types(idx, "d.word") == {"id": "VARCHAR", "n": "VARCHAR"}
    assert _types(idx, "d.ok") == {"id": "BIGINT", "n": "BIGINT"}

    con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.sql("SELECT count(p), count(*) FILTER (p = 'NA') FROM d.na").fetchall() == [(ROWS + 1, 1)]
    assert con.sql("SELECT n FROM d.word WHERE id = 'x'").fetchall() == [("abc",)]
    assert con.sql("SELECT typeof(n), sum(n) FROM d.ok GROUP BY 1").fetchall() == [
        ("BIGINT", sum(range(ROWS)) + 8)
    ]
    # the profile was made (the table's columns are described, not warned about)
    got = dict(con.sql("SELECT table_name, status FROM lakeql_tables()").fetchall())
    assert got == {"d.na": "ok", "d.word": "ok", "d.ok": "ok"}
    con.close()

    # the small domain's prebuilt views read the file the same way (sample_size = -1 is in the manifest)
    from lakeql.connection import open_lake

    con, ctx = open_lake(str(lake), index_dir=str(idx))
    assert "d" in ctx.views.small and ctx._catalog is None
    assert con.execute("SELECT count(q) FROM d.na").fetchall() == [(ROWS + 1,)]
    con.close()

    # a no-op refresh keeps it; a fixed file is sniffed as DuckDB does again
    assert not [m for m in _index(lake, idx, refresh=True) if "d.na" in m]
    assert _stored(idx)["d.na"] == (True, ROWS + 1)
    _write(lake / "d" / "na.csv", "p,kind,q", "{i}.5,cancer,{i}", "1.5,cancer,2")
    os.utime(lake / "d" / "na.csv", ns=(1, 2_000_000_000))
    _index(lake, idx, refresh=True)
    assert _stored(idx)["d.na"] == (False, ROWS + 1)
    assert _types(idx, "d.na") == {"p": "DOUBLE", "kind": "VARCHAR", "q": "BIGINT"}
    con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.sql("SELECT typeof(p), count(q) FROM d.na GROUP BY 1").fetchall() == [("DOUBLE", ROWS + 1)]
    con.close()


def test_catalog_without_the_column_reads_csv_tables_again(tmp_path):
    """A catalog written before ``csv_whole_sniff`` (no such column; same CATALOG_FORMAT): its CSV
    tables are read again once, so a table it typed from the sample alone is fixed by a refresh."""
    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "d").mkdir(parents=True)
    _write(lake / "d" / "na.csv", "p,q", "{i}.5,{i}", "NA,NA")
    _index(lake, idx)
    stored = Catalog.load(discover(lake), Store(idx))
    row = stored.table_rows["d.na"]
    assert row["csv_whole_sniff"] is True
    del row["csv_whole_sniff"]  # as an older build stored it
    cat = Catalog._resolve(discover(lake), stored, Store(idx))
    assert cat.lake.tables["d.na"].csv_whole_sniff
    assert [c.type for c in cat.columns_by_table["d.na"]] == ["VARCHAR", "VARCHAR"]


def test_whole_file_read_failing_too_names_the_file_line_and_fix(tmp_path, monkeypatch):
    """When even ``sample_size = -1`` cannot read the file, the table stays as today (counted, warned),
    and the warning names the file, DuckDB's line and value, and the fix."""
    from lakeql import lake as lake_mod

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    _write(lake / "d" / "na.csv", "p,q", "{i}.5,{i}", "NA,NA")
    real = lake_mod.scan_sql

    def no_whole(fmt, paths, hive=False, header=False, whole_sniff=False):
        return real(fmt, paths, hive, header)  # the whole-file sniff "fails" the same way

    monkeypatch.setattr(lake_mod, "scan_sql", no_whole)
    t = discover(lake).tables["d.na"]
    with pytest.warns(UserWarning) as got:
        kept, cols, n, _, problems = profile_table(t)
    msg = " ".join(str(w.message) for w in got)
    assert "'d/na.csv'" in msg and "Line: 25002" in msg and '"NA"' in msg and "--refresh" in msg
    assert "sample_size = -1" in msg
    assert n == ROWS + 1 and not kept.csv_whole_sniff and not problems


def test_f538_nutrition_p_values(tmp_path):
    assert F538 is not None, "../shared/data/fivethirtyeight is missing (CI has it)"
    lake, idx = tmp_path / "lake", tmp_path / "idx"
    lake.mkdir()
    (lake / "nutrition-studies").symlink_to(F538 / "nutrition-studies", target_is_directory=True)
    said = _index(lake, idx)
    assert not [m for m in said if "p_values_analysis" in m], said
    assert _stored(idx)["nutrition-studies.p_values_analysis"][0] is True
    con = lakeql.connect(str(lake), index_dir=str(idx))
    got = con.sql(
        "SELECT count(p_values), count(*) FILTER (p_values = 'NA') > 0 "
        'FROM "nutrition-studies".p_values_analysis'
    ).fetchall()
    assert got[0][0] == 27716 and got[0][1]
    con.close()
