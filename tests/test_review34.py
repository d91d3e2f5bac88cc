"""Review of h/agent13 (the MCP server from an agent's view): the defects found, each through the surface
an agent or operator uses (the SDK's own client, the ``lakeql mcp`` command) where it is one.

* a line of INDEX.md / _DOMAIN.md longer than a page: its start alone was shown, the rest unreachable;
* a long schema-file path pushed a line page past the character cap;
* the query note "wrap the query as SELECT * FROM (...)" did not parse for a query ending in ';' or
  holding a ``--`` comment;
* ``--memory-limit -1`` was DuckDB's "no limit"; ``0GB``/``1KB`` failed at start with DuckDB's
  out-of-memory advice;
* the keyword hint missed its keyword after wide characters ('日本語') and, in check_sql, on a long line;
* the keyword hint's look-up of the lake's columns ran with no time bound before the query's timer.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import anyio
import duckdb
import pytest
from test_mcp import child_env, server_command, text
from testutil import require

require("mcp")

CAP = 3_000
END = "END-OF-THE-LONG-LINE"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[Path, Path]:
    """(lake, index dir): a 5,000-row table, and an INDEX.md with a 10,000-character line appended."""
    import lakeql

    root = tmp_path_factory.mktemp("review34")
    lake, idx = root / "lake", root / "idx"
    (lake / "shows").mkdir(parents=True)
    duckdb.connect().execute(f"COPY (SELECT i AS row_no, 'row ' || i AS note FROM range(5000) t(i)) "
                             f"TO '{lake}/shows/rows.parquet' (FORMAT parquet)")
    duckdb.connect().execute(f"""COPY (SELECT * FROM (VALUES ('Acting', 2001), ('Media', 2002))
        t("Group", "year")) TO '{lake}/shows/guests.parquet' (FORMAT parquet)""")
    lakeql.index(lake, index_dir=idx, progress=False)
    index_md = idx / "schemas" / "INDEX.md"
    assert index_md.is_file()
    with open(index_md, "a", encoding="utf-8") as f:  # one line wider than three pages, then a last line
        f.write("\n" + "é" * 10_000 + END + "\nthe last line\n")
    return lake, idx


def run(lake: tuple[Path, Path], tmp_path: Path, calls, *extra: str) -> list:
    """Start ``lakeql mcp`` (cap CAP characters, no warm-up) and return what ``calls(client)`` returns."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    cmd = server_command(*lake, "--max-chars", str(CAP), "--no-warm", *extra)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=child_env(), cwd=str(tmp_path))
    out: list = []

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            out.append(await calls(client))

    anyio.run(main)
    return out[0]


def test_a_line_longer_than_a_page_is_read_whole_by_following_the_notes(lake, tmp_path):
    """INDEX.md paged by lines: a line longer than the cap showed its start with '…' and the next offset
    skipped the rest of it. Following the notes now gives the file whole, each page within the cap."""
    whole = (lake[1] / "schemas" / "INDEX.md").read_text(encoding="utf-8")

    async def calls(client):
        pages, offset = [], 0
        for _ in range(50):
            r = await client.call_tool("read_schema", {"path": "INDEX.md", "offset": offset})
            assert not r.is_error, text(r)
            pages.append(text(r))
            m = re.search(r"read_schema\('INDEX\.md', offset=(\d+)\)\._$", text(r))
            if not m:
                return pages
            assert int(m[1]) > offset
            offset = int(m[1])
        raise AssertionError("no last page")

    pages = run(lake, tmp_path, calls)
    assert all(len(p) <= CAP for p in pages), [len(p) for p in pages]
    bodies = [re.sub(r"\n_Truncated: lines [^\n]*\._$", "", p) for p in pages]
    assert "".join(bodies) == whole  # nothing skipped, nothing repeated
    assert END in "".join(bodies) and bodies[-1].endswith("the last line\n")


def test_a_long_path_keeps_a_line_page_within_the_cap():
    """The note names the path: 200 characters were kept for it, and a 500-character path made the page
    longer than the cap (3,387 for 3,000)."""
    from lakeql.mcp.service import _line_page

    rel = "d" * 250 + "/" + "t" * 250 + "/_DOMAIN.md"
    page = _line_page("a line of the domain file\n" * 2_000, rel, 0, None, CAP)
    assert len(page) <= CAP and f"read_schema({rel!r}, offset=" in page


def test_the_next_rows_note_says_what_to_change_for_a_semicolon_or_a_comment(lake, tmp_path):
    """'wrap the query as SELECT * FROM (...)' did not parse for 'SELECT ...;' (the ';' inside) or for a
    query with a -- comment (it swallowed the ')'). The note names the change, and the query so changed
    gives the next page."""
    base = "SELECT row_no, note FROM shows.rows ORDER BY row_no"

    async def calls(client):
        got = []
        for sql, wrapped in ((base + " ;  ", base), (base + " -- every row", base + " -- every row\n"),
                             (base + "; -- all", base + " -- all\n")):
            first = await client.call_tool("query", {"sql": sql})
            m = re.search(r"LIMIT (\d+) OFFSET (\d+)", text(first))
            assert m, text(first)[-400:]
            nxt = await client.call_tool("query", {"sql": f"SELECT * FROM ({wrapped}) LIMIT {m[1]} "
                                                          f"OFFSET {m[2]}"})
            got.append((sql, text(first), int(m[2]), nxt))
        return got

    for sql, first, offset, nxt in run(lake, tmp_path, calls):
        note = first[first.index("_Truncated"):]
        assert ("trailing ';'" in note) == (";" in sql), note
        assert ("line break before the ')'" in note) == ("--" in sql), note
        assert not nxt.is_error, text(nxt)
        assert re.findall(r"^\| (\d+) \|", text(nxt), re.M)[0] == str(offset)


def test_the_plain_next_rows_note_is_unchanged():
    """A query with neither gets the note as before (no fix named)."""
    from lakeql.mcp.service import _next_query_rows

    note = _next_query_rows("SELECT ';' AS s, '--' AS c FROM t")(7)
    assert note.startswith("the next rows: wrap the query as SELECT * FROM (...) LIMIT 7 OFFSET 7"), note


@pytest.mark.parametrize("size", ["-1", "0GB", "1KB", "1%", "4", "lots", "4GB; SET x=1"])
def test_a_memory_limit_that_is_not_a_usable_size_is_refused_at_start(lake, tmp_path, size):
    """'-1' was DuckDB's 'no limit' (16383.9 PiB) and the server started unbounded; '0GB' and '1KB' failed
    at start with DuckDB's out-of-memory advice ('SET threads'). The command now refuses each, naming
    the flag and the form."""
    cmd = server_command(*lake, f"--memory-limit={size}", "--no-warm")
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                       env=child_env(), cwd=tmp_path)
    assert p.returncode != 0
    assert "--memory-limit" in p.stderr and ("4GB" in p.stderr or "64MB" in p.stderr), p.stderr[-600:]
    assert "Out of Memory" not in p.stderr


def test_memory_sizes_in_bytes():
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import Limits, memory_bytes

    assert memory_bytes("4GB") == 4 * 1000**3 and memory_bytes(" 512 MiB ") == 512 * 1024**2
    assert memory_bytes("0.5gb") == 500 * 1000**2
    assert Limits(memory_limit="200MB").memory_limit == "200MB"
    for bad in ("-1", "63MB", "1e3GB", "٤GB", "", None):
        with pytest.raises(LakeqlError, match="--memory-limit"):
            memory_bytes(bad)


def test_the_keyword_hint_lookup_is_bounded_in_time():
    """The query tool checks the SQL before its timer starts, and the hint's look-up of the lake's columns
    had no bound: a look-up that never ends held the agent's error forever. It is now interrupted."""
    from lakeql import sqlerrors
    from lakeql.sqlerrors import error_offset, keyword_column

    HINT_SECONDS = getattr(sqlerrors, "HINT_SECONDS", 2.0)  # noqa: N806 - the bound the module sets

    parser = duckdb.connect()

    class Cursor:
        def __init__(self) -> None:
            self.stop = threading.Event()

        def execute(self, *_a):
            if not self.stop.wait(60):
                raise AssertionError("never interrupted")
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

        def interrupt(self) -> None:
            self.stop.set()

    class Con:
        def extract_statements(self, sql):
            return parser.extract_statements(sql)

        def cursor(self):
            return Cursor()

    sql = "SELECT Group, count(*) FROM t GROUP BY 1"
    try:
        parser.extract_statements(sql)
        raise AssertionError("expected a syntax error")
    except duckdb.ParserException as exc:
        offset = error_offset(str(exc), sql)
    got: list = []
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: got.append(keyword_column(sql, offset, Con())), daemon=True)
    th.start()
    th.join(HINT_SECONDS + 10)
    assert not th.is_alive() and got == [None]
    assert time.monotonic() - t0 < HINT_SECONDS + 5


def test_the_keyword_hint_after_wide_characters_and_on_a_long_line(lake, tmp_path):
    """DuckDB places its caret by display width: after '日本語日本語' (12 columns, 6 characters) the caret was
    read 6 characters too far and neither query nor check_sql named the keyword column; check_sql had no
    column for a long line (DuckDB shows a window of it) and missed it there too."""
    cols = ", ".join(f"{i} AS a_column_{i}" for i in range(30))
    sqls = ("SELECT '日本語日本語' AS x, Group, year FROM shows.guests",
            "SELECT '😀😀' AS x, Group, year FROM shows.guests",
            f"SELECT {cols}, Group FROM shows.guests")

    async def calls(client):
        return [(await client.call_tool("query", {"sql": sql}),
                 await client.call_tool("check_sql", {"sql": sql})) for sql in sqls]

    for query, check in run(lake, tmp_path, calls):
        assert query.is_error and 'write the column "Group" in double quotes' in text(query), text(query)
        assert 'write the column "Group" in double quotes' in text(check), text(check)
        assert '| "Group" |' in text(check)  # the suggestion
