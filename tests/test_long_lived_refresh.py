"""A plain ``lakeql.connect()`` connection opened before ``lakeql index --refresh``: n-grams, joins, context.

The connection's views read the files the lake had when it opened. A Parquet file that sorts first is added
to an n-gram indexed table (every rowid of the old files shifts by 3) and the lake refreshed. Each function
must then give the answer a new connection gives, or a clear error saying to reconnect (or to refresh,
while the files changed and the index not yet): never other rows' ids. (The embed index's case is
tests/vectors/test_incremental.py; the MCP server reopens its connection: tests/test_mcp_reopen.py.)
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

TOPICS = ["compress data with zlib", "open a file for reading", "socket connection to a server",
          "parse a date string", "sort a list of numbers", "send an email message",
          "read a csv spreadsheet", "draw a line chart", "hash a password safely", "resize an image"]
NEW = ["volcanic eruption covered the village in ash (note 2)", "penguins huddle on the ice (note 2)",
       "the violinist tuned her instrument (note 9)"]


def notes(ids: list[int], bodies: list[str]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "body": bodies})


def build(lake: Path, idx: Path) -> None:
    import lakeql

    lakeql.index(lake, index_dir=idx, ngram=["docs.notes.body"], schemas_embed=False, progress=False)


@pytest.fixture
def lake(tmp_path):
    lake, idx = tmp_path / "lake", tmp_path / "idx"
    folder = lake / "docs" / "notes"
    folder.mkdir(parents=True)
    bodies = [f"{t} (note {i})" for i in range(4) for t in TOPICS]
    pq.write_table(notes(list(range(20)), bodies[:20]), folder / "part-1.parquet")
    pq.write_table(notes(list(range(20, 40)), bodies[20:]), folder / "part-2.parquet")
    pq.write_table(pa.table({"note_id": pa.array([0, 5, 21, 1000, 1001, 1002], pa.int64()),
                             "author": ["ann", "bob", "cy", "dee", "eve", "fay"]}),
                   lake / "docs" / "authors.parquet")
    build(lake, idx)
    return lake, idx, folder


NGRAM = {
    "ngram_rows": "SELECT ngram_rows('docs.notes', 'body', '(note 2)')",
    "ngram_search": "SELECT id, body FROM ngram_search('docs.notes', 'body', '(note 2)', k := 50) "
                    "ORDER BY id",
    "ngram_count": "SELECT ngram_count('docs.notes', 'body', '(note 2)')",
    "ngram_rows_all": "SELECT list(rowid ORDER BY rowid) FROM ngram_rows_all('docs.notes', 'body', "
                      "['(note 2)'])",
}
OTHER = {
    "joinable": "SELECT candidate_table, candidate_column, round(score, 6), round(containment, 6), join_sql "
                "FROM joinable('docs.authors', 'note_id', k := 5, mode := 'equi') ORDER BY ALL",
    "schema_context": "SELECT path, round(score, 6) FROM schema_context('notes about a date string', k := 3) "
                      "ORDER BY ALL",
    "find_tables": "SELECT table_name, round(score, 6) FROM find_tables('note author', k := 5) ORDER BY ALL",
    "unionable": "SELECT candidate_table, round(score, 6) FROM unionable('docs.notes', k := 5) ORDER BY ALL",
}


def answers(con, queries: dict[str, str]) -> dict[str, object]:
    """Each query's rows, or the error it raised (its text)."""
    out: dict[str, object] = {}
    for name, sql in queries.items():
        try:
            out[name] = con.execute(sql).fetchall()
        except duckdb.Error as exc:
            out[name] = exc
    return out


def fresh(lake: Path, idx: Path, queries: dict[str, str]) -> dict[str, object]:
    import lakeql

    con = lakeql.connect(lake, index_dir=idx)
    try:
        got = answers(con, queries)
    finally:
        con.close()
    assert not any(isinstance(v, Exception) for v in got.values()), got
    return got


def test_ngram_functions_on_an_old_connection_refuse_instead_of_naming_other_rows(lake):
    import lakeql

    lake, idx, folder = lake
    con = lakeql.connect(lake, index_dir=idx)
    before = answers(con, NGRAM)
    assert before == fresh(lake, idx, NGRAM)
    assert [i for i, _ in before["ngram_search"]] == list(range(20, 30))
    assert before["ngram_rows"] == [(10,)] and before["ngram_rows_all"] == [(list(range(20, 30)),)]

    pq.write_table(notes([1000, 1001, 1002], NEW), folder / "a-first.parquet")  # sorts first
    mid = answers(con, NGRAM)  # files changed, index not yet refreshed: refused, "refresh"
    for name, got in mid.items():
        assert isinstance(got, duckdb.Error) and "lakeql index --refresh" in str(got), (name, got)

    build(lake, idx)  # the refresh (lakeql.index keeps what is unchanged: the same as --refresh)
    want = fresh(lake, idx, NGRAM)
    assert [i for i, _ in want["ngram_search"]] == [*range(20, 30), 1000, 1001]
    assert want["ngram_rows_all"] == [([0, 1, *range(23, 33)],)]  # the old rows' rowids shifted by 3
    after = answers(con, NGRAM)
    for name, got in after.items():
        # right answers on the old view would be the old rows: ids 20..29 only; a shifted rowid would
        # name ids 17..26 (the rows 3 before them). The guard refuses: reconnect.
        assert isinstance(got, duckdb.Error), (name, got)
        assert "changed after this connection was opened" in str(got) and "new connection" in str(got)
    con.close()
    con = lakeql.connect(lake, index_dir=idx)
    assert answers(con, NGRAM) == want
    con.close()


def test_joinable_and_schema_context_on_an_old_connection_answer_what_a_new_one_does(lake):
    import lakeql

    lake, idx, folder = lake
    con = lakeql.connect(lake, index_dir=idx)
    before = answers(con, OTHER)
    assert before == fresh(lake, idx, OTHER)
    assert any(r[0] == "docs.notes" and r[1] == "id" for r in before["joinable"]), before["joinable"]
    pq.write_table(notes([1000, 1001, 1002], NEW), folder / "a-first.parquet")  # sorts first
    build(lake, idx)
    want = fresh(lake, idx, OTHER)
    # the new rows hold 3 more of authors.note_id's values: the containment the index reports grew
    assert want["joinable"] != before["joinable"]
    after = answers(con, OTHER)
    for name in OTHER:
        got = after[name]
        if isinstance(got, duckdb.Error):
            assert "new connection" in str(got), (name, got)
        else:  # lake-wide indexes name tables, columns and schema files, no rows: the new answer
            assert got == want[name], name
    con.close()
