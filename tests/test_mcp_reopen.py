"""``lakeql mcp`` keeps answering right after ``lakeql index --refresh`` (no restart).

The server keeps one connection; its views read the files the lake had when it opened. A Parquet file that
sorts first is added to a table with an embed and an n-gram index (every rowid of the old files shifts) and
the lake is refreshed with the CLI while the server runs. Before, semantic_search answered a clear "open a
new connection ... or restart the server" error (and, before that, other rows' ids); now the server sees
the manifest changed, opens a new connection and answers exactly what a freshly started service answers:
semantic_search, ngram_search, joinable and query all see the new rows, by their ids.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_mcp import child_env, server_command, text
from testutil import require

require("mcp")

TOPICS = ["compress data with zlib", "open a file for reading", "socket connection to a server",
          "parse a date string", "sort a list of numbers", "send an email message",
          "read a csv spreadsheet", "draw a line chart", "hash a password safely", "resize an image"]
NEW = ["volcanic eruption covered the village in ash", "penguins huddle together on the antarctic ice",
       "the violinist tuned her instrument before the concert"]


def notes(ids: list[int], bodies: list[str]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "body": bodies})


def make_lake(root: Path) -> tuple[Path, Path, Path]:
    """(lake, index dir, the notes folder): docs.notes in two files (embed + ngram indexed on body) and
    docs.authors whose note_id joins notes.id."""
    lake, idx = root / "lake", root / "idx"
    folder = lake / "docs" / "notes"
    folder.mkdir(parents=True)
    bodies = [f"{t} (note {i})" for i in range(4) for t in TOPICS]
    pq.write_table(notes(list(range(20)), bodies[:20]), folder / "part-1.parquet")
    pq.write_table(notes(list(range(20, 40)), bodies[20:]), folder / "part-2.parquet")
    authors = pa.table({"note_id": pa.array([0, 5, 21, 1000, 1001, 1002], pa.int64()),
                        "author": ["ann", "bob", "cy", "dee", "eve", "fay"]})
    pq.write_table(authors, lake / "docs" / "authors.parquet")
    run_cli("index", str(lake), "--index-dir", str(idx), "--embed", "docs.notes.body", "--ngram",
            "docs.notes.body", "--no-schemas-embed", "--quiet")
    return lake, idx, folder


def run_cli(*args: str) -> None:
    import os

    got = subprocess.run([sys.executable, "-m", "lakeql.cli", *args], env={**os.environ, **child_env()},
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]


def add_first_file(folder: Path) -> None:
    """A file that sorts before part-1: every rowid of the old rows shifts by len(NEW)."""
    pq.write_table(notes([1000, 1001, 1002], NEW), folder / "a-first.parquet")


CALLS = [("semantic_search", {"table": "docs.notes", "column": "body", "query": NEW[1], "k": 5}),
         ("semantic_search", {"table": "docs.notes", "column": "body", "query": TOPICS[3], "k": 5}),
         ("ngram_search", {"table": "docs.notes", "column": "body", "phrase": "penguins huddle", "k": 5}),
         ("ngram_search", {"table": "docs.notes", "column": "body", "phrase": "(note 3)", "k": 20}),
         ("joinable", {"table": "docs.authors", "column": "note_id", "k": 3}),
         ("query", {"sql": "SELECT count(*) AS n, max(id) AS top FROM docs.notes"})]


def fresh_answers(lake: Path, idx: Path) -> list[str]:
    """What a service opened now answers to CALLS (the reference)."""
    from lakeql.mcp.service import LakeService, Limits

    svc = LakeService(lake, idx, Limits(timeout=600))  # the first call loads the model: a busy machine
    try:
        return [getattr(svc, name)(**args) for name, args in CALLS]
    finally:
        svc.close()


def first_column(table: str) -> list[str]:
    return [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("| ")]


@pytest.fixture(scope="module")
def lake3(tmp_path_factory):
    return make_lake(tmp_path_factory.mktemp("reopen"))


def test_server_answers_right_after_a_refresh_without_a_restart(lake3, tmp_path):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    lake, idx, folder = lake3
    cmd = server_command(lake, idx)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=child_env(), cwd=str(tmp_path))
    before_want = fresh_answers(lake, idx)
    got: dict[str, list[str]] = {}

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            out = []
            for name, args in CALLS:
                r = await client.call_tool(name, args)
                assert not r.is_error, text(r)
                out.append(text(r))
            got["before"] = out
            add_first_file(folder)
            await anyio.to_thread.run_sync(lambda: run_cli("index", "--refresh", str(lake), "--index-dir",
                                                           str(idx), "--quiet"))
            out = []
            for name, args in CALLS:
                r = await client.call_tool(name, args)
                assert not r.is_error, text(r)  # before the fix: "open a new connection ... restart"
                out.append(text(r))
            got["after"] = out

    anyio.run(main)
    assert got["before"] == before_want
    want = fresh_answers(lake, idx)
    assert got["after"] == want
    sem_new, _, ngram_new, ngram_old, join, count = got["after"]
    assert "| 1001 |" in sem_new.splitlines()[2]  # the new row, by its own id, first
    assert "| 1001 |" in ngram_new and "1000" not in ngram_new
    assert first_column(ngram_old) == [str(i) for i in range(30, 40)]
    assert "| 43 | 1002 |" in count
    assert "docs.notes" in join


def test_reopen_swaps_under_running_calls_and_closes_the_old_connection(tmp_path):
    """In-process: calls on several threads while the index is refreshed; every call answers either the
    old lake's rows or the new lake's (never an error, never other rows' ids), the service reopened once,
    the old connection is closed once no call uses it, and the new one is locked down like the first."""
    import duckdb

    from lakeql.mcp.service import LakeService

    lake, idx, folder = make_lake(tmp_path)
    svc = LakeService(lake, idx)
    try:
        sql = "SELECT id, body FROM ngram_search('docs.notes', 'body', '(note 2)', k := 20) ORDER BY id"
        old_rows = svc._rows(sql, [])[1]
        first = svc._conn
        assert [r[0] for r in old_rows] == list(range(20, 30))
        assert svc._rows(sql, [])[1] == old_rows and svc.reopened == 0  # nothing changed: no reopen
        add_first_file(folder)
        errors: list[BaseException] = []
        seen: list[list[tuple]] = []
        stop = threading.Event()

        def caller() -> None:
            while not stop.is_set():
                try:
                    seen.append(svc._rows(sql, [])[1])
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=caller) for _ in range(3)]
        for t in threads:
            t.start()
        run_cli("index", "--refresh", str(lake), "--index-dir", str(idx), "--quiet")
        after = svc._rows(sql, [])[1]
        stop.set()
        for t in threads:
            t.join(60)
        # during the refresh an old connection may rightly refuse the half-refreshed index ("refresh"):
        # never a wrong row
        assert all("refresh" in str(e) for e in errors), errors
        assert after == old_rows  # same ids and bodies: read through the new views
        assert all(rows == old_rows for rows in seen)
        assert svc.reopened >= 1 and svc._conn is not first and first.closed and first.users == 0
        n = svc._rows("SELECT count(*) FROM docs.notes", [])[1][0][0]
        assert n == 43
        # its own spill folder under the service's (the old connection's may still be in use)
        temp = Path(svc._rows("SELECT current_setting('temp_directory')", [])[1][0][0])
        assert temp.parent == svc.temp_dir and temp.name == f"c{svc.reopened + 1}"
        with pytest.raises(duckdb.Error, match="lock_configuration|locked|configuration"):
            svc.con.execute("SET enable_external_access = true")
        from lakeql.errors import LakeqlError

        with pytest.raises(LakeqlError):
            svc.query("SELECT * FROM read_text('/etc/passwd')")
    finally:
        svc.close()
    assert svc._conn.closed
