"""Whole-row fetches by rowid (``{{join_rows(tbl, rowid)}}``): the same rows as the plain ``__rowid``
join, and on a table of several Parquet files only the files and row groups holding hits are read."""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.rows import row_columns_sql
from lakeql.sqlfiles import render


def _old(key: str) -> str:
    """The fetch as it was: a join on the rowid view's ``__rowid`` (an expression of the file name)."""
    return (f"SELECT {row_columns_sql()}, r.__rowid FROM (SELECT unnest(?::BIGINT[]) AS rowid) h "
            f"JOIN query_table(lakeql_rows_view('{key}')) r ON r.__rowid = h.rowid ORDER BY h.rowid")


def _new(key: str) -> str:
    return render(f"SELECT {{{{row_columns()}}}}, r.__rowid FROM (SELECT unnest(?::BIGINT[]) AS rowid) h "
                  f"{{{{join_rows('{key}', h.rowid)}}}} ORDER BY h.rowid", None)


def _same(con, key: str, hits: list[int]) -> list[tuple]:
    a = con.execute(_old(key), [hits])
    cols_a, rows_a = [d[0] for d in a.description], a.fetchall()
    b = con.execute(_new(key), [hits])
    cols_b, rows_b = [d[0] for d in b.description], b.fetchall()
    assert cols_b == cols_a
    assert rows_b == rows_a
    return rows_b


def _files_read(con, sql: str, hits: list[int]) -> tuple[int, int, int]:
    """(files read, row groups scanned, of row groups in the files read) of the one Parquet scan."""
    plan = con.execute("EXPLAIN ANALYZE " + sql, [hits]).fetchall()[0][1]
    files = int(re.search(r"Total Files Read: (\d+)", plan).group(1))
    groups = re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    return files, int(groups.group(1)), int(groups.group(2))


@pytest.fixture(scope="module")
def flights(tmp_path_factory):
    """The sample flights lake with ``flights.flights`` cut into 10 Parquet files (a real table)."""
    from lakes import flights_lake, split_table

    root = tmp_path_factory.mktemp("rowfetch") / "lake"
    flights_lake(root, full=False)
    split_table(root, "flights", "flights", 10)
    con = lakeql.connect(root)
    yield con
    con.close()


def test_multi_file_rows_are_the_same_as_the_rowid_join(flights):
    n = flights.execute("SELECT count(*) FROM flights.flights").fetchone()[0]
    rng = random.Random(7)
    for hits in ([0], [n - 1], rng.sample(range(n), 10), rng.sample(range(n), 50), [n, -1, 5]):
        rows = _same(flights, "flights.flights", hits)
        assert [r[-1] for r in rows] == sorted(h for h in hits if 0 <= h < n)  # rowids unchanged
    # every row, in rowid order: the rowid view's own order and values
    everything = _same(flights, "flights.flights", list(range(n)))
    assert [r[-1] for r in everything] == list(range(n))
    plain = flights.execute("SELECT * FROM flights.flights").fetchall()
    assert [r[1:-1] for r in everything] == plain


def test_multi_file_fetch_reads_only_the_files_with_hits(flights):
    n = flights.execute("SELECT count(*) FROM flights.flights").fetchone()[0]
    # (each file is one row group; with union_by_name DuckDB opens every file's footer at bind time, so
    # "Total Files Read" counts 10 as soon as the file filter is an IN list: row groups tell)
    files, groups, _ = _files_read(flights, _new("flights.flights"), [n // 2])
    assert (files, groups) == (1, 1)
    _, groups, _ = _files_read(flights, _new("flights.flights"), [0, n - 1])
    assert groups == 2
    _, groups, _ = _files_read(flights, _new("flights.flights"), [0, n // 3, n // 2, n - 1])
    assert groups == 4
    _, old_groups, _ = _files_read(flights, _old("flights.flights"), [n // 2])
    assert old_groups == 10  # what the plain join costs: every file


def test_hidden_columns_stay_hidden(flights):
    cols = [d[0] for d in flights.execute("SELECT * FROM flights.flights LIMIT 0").description]
    assert not any(c.startswith("__rowid") for c in cols)
    # the macros' row columns: the table's own (the hits' rowid aside)
    got = [d[0] for d in flights.execute(_new("flights.flights"), [[0]]).description]
    assert got == ["rowid", *cols, "__rowid"]


@pytest.mark.parametrize("names", [["a'b.parquet", 'q"x.parquet', "c*d?.parquet"],
                                   ["é[x].parquet", "日本.parquet", "sp ace {1,2}.parquet"]])
def test_hostile_file_and_column_names(tmp_path, names):
    """File names with quotes, globs and Unicode; the table's own columns named like lakeql's hidden
    ones come back under their own names, with their own values."""
    folder = tmp_path / "lake" / "dom" / "t"
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        ids = list(range(i * 7, i * 7 + 7))
        pq.write_table(pa.table({"id": ids, "__rowid": [f"own{j}" for j in ids],
                                 "__ROWID_FILE": ["mine"] * 7, "__rowid_row~": ids}),
                       folder / name, row_group_size=3)
    con = lakeql.connect(tmp_path / "lake")
    n = con.execute("SELECT count(*) FROM dom.t").fetchone()[0]
    assert n == 7 * len(names)
    rows = _same(con, "dom.t", list(range(n)))
    assert [d[0] for d in con.execute(_new("dom.t"), [[0]]).description] == [
        "rowid", "id", "__rowid", "__ROWID_FILE", "__rowid_row~", "__rowid"]
    assert [(r[2], r[3]) for r in rows] == [(f"own{r[1]}", "mine") for r in rows]
    for hit in (0, n - 1, n // 2):
        _same(con, "dom.t", [hit])
        files, groups, _ = _files_read(con, _new("dom.t"), [hit])
        assert (files, groups) == (1, 1)
    con.close()


def test_csv_tables_fetch_by_position(tmp_path):
    """CSV rows have no row numbers: one row-files entry covers them all (same rows as before)."""
    folder = tmp_path / "lake" / "dom" / "c"
    folder.mkdir(parents=True)
    (folder / "1.csv").write_text("a,b\n1,x\n2,y\n")
    (folder / "2.csv").write_text("a,b\n3,z\n")
    con = lakeql.connect(tmp_path / "lake")
    rows = _same(con, "dom.c", [2, 0, 1, 9])
    assert [r[-1] for r in rows] == [0, 1, 2]
    con.close()
