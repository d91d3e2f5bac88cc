"""What an LLM agent hit driving ``lakeql mcp`` through the SDK's own client (agent13).

A small lake built for it: a table whose columns are named by SQL keywords (``Group``, ``desc.``,
``From``), a 300-column table, a 500-row table and 40 one-table domains. The server runs with a small
character cap (3,000) so that every cut shows. Each test is a defect an agent met on a 1,366-table lake:

* a column named by a keyword, written bare, got only 'syntax error at or near ","';
* a wide result's header alone went past the character cap (3x on 6,000 columns) with no row shown;
* a query result cut by characters or rows did not say how to get the next rows;
* ``list_domains`` and INDEX.md were cut at the cap with no way to read the rest;
* the query tool's description did not state the caps.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import duckdb
import pytest
from test_mcp import child_env, server_command, text
from testutil import require

require("mcp")

CAP = 3_000
DOMAINS = 40


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[Path, Path]:
    """(lake, index dir) of the agent13 lake, indexed with the defaults (no model needed)."""
    import lakeql

    root = tmp_path_factory.mktemp("agent13")
    lake, idx = root / "lake", root / "idx"
    con = duckdb.connect()
    (lake / "shows").mkdir(parents=True)
    con.execute(f"""COPY (SELECT * FROM (VALUES ('Acting', 'four games', 'Leeds', 2001),
        ('Media', 'one game', 'York', 2002), ('Acting', 'two games', 'Hull', 2003))
        t("Group", "desc.", "From", "year")) TO '{lake}/shows/guests.parquet' (FORMAT parquet)""")
    cols = ", ".join(f"i * {j} AS a_rather_long_column_name_{j:03d}" for j in range(300))
    con.execute(f"COPY (SELECT {cols} FROM range(5) t(i)) TO '{lake}/shows/wide.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT i AS row_no, 'row ' || i AS note FROM range(500) t(i)) "
                f"TO '{lake}/shows/rows.parquet' (FORMAT parquet)")
    for d in range(DOMAINS):
        (lake / f"region_{d:02d}").mkdir()
        con.execute(f"COPY (SELECT {d} AS region_id, 'name {d}' AS region_name) "
                    f"TO '{lake}/region_{d:02d}/region_table_{d:02d}.parquet' (FORMAT parquet)")
    lakeql.index(lake, index_dir=idx, progress=False)
    return lake, idx


def run(lake: tuple[Path, Path], tmp_path: Path, calls) -> list:
    """Start ``lakeql mcp`` on the lake (cap CAP characters, no warm-up) and make the calls in one session:
    ``calls(client)`` is an async function returning what the test checks."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    cmd = server_command(*lake, "--max-chars", str(CAP), "--no-warm")
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=child_env(), cwd=str(tmp_path))
    out: list = []

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            out.append(await calls(client))

    anyio.run(main)
    return out[0]


def test_a_column_named_by_a_keyword_gets_the_quoted_name(lake, tmp_path):
    """'SELECT Group, ...' failed with DuckDB's bare 'syntax error at or near ","' (the schema files list
    the column as Group): the query and check_sql now name the column to double-quote, and a keyword in
    its own place (FROM after a bare 'group') is not blamed."""
    async def calls(client):
        got = []
        for sql in ('SELECT Group, count(*) AS n FROM shows.guests GROUP BY 1',
                    'SELECT desc., year FROM shows.guests',
                    'SELECT year,\n  group\nFROM shows.guests'):
            got.append(await client.call_tool("query", {"sql": sql}))
            got.append(await client.call_tool("check_sql", {"sql": sql}))
        got.append(await client.call_tool("query", {"sql": 'SELECT "Group", count(*) AS n FROM shows.guests '
                                                           'GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1'}))
        return got

    r = run(lake, tmp_path, calls)
    for i, name in ((0, '"Group"'), (2, '"desc."'), (4, '"Group"')):
        assert r[i].is_error and "keyword" in text(r[i]) and name in text(r[i]), text(r[i])
        assert "keyword" in text(r[i + 1]) and f"| {name} |" in text(r[i + 1]), text(r[i + 1])
        assert "shows.guests" in text(r[i])
    assert '"From"' not in text(r[4])  # the error is at FROM, but the bare 'group' is the fault
    assert not r[6].is_error and "| Acting | 2 |" in text(r[6])


def test_a_wide_result_stays_within_the_cap_and_shows_rows(lake, tmp_path):
    """SELECT * of a 300-column table: the header alone was past the cap and no row was shown; now the
    first columns that fit come with their rows and a note saying how many."""
    async def calls(client):
        return await client.call_tool("query", {"sql": "SELECT * FROM shows.wide ORDER BY 2"})

    r = run(lake, tmp_path, calls)
    out = text(r)
    assert not r.is_error and len(out) <= CAP, len(out)
    m = re.search(r"(\d+) of 300 columns shown", out)
    assert m and 1 <= int(m.group(1)) < 300, out[-400:]
    shown = int(m.group(1))
    header = out.splitlines()[0]
    assert header.count("|") == shown + 1 and "a_rather_long_column_name_000" in header
    assert re.search(r"^\| 0 \| 0 \|", out, re.M)  # the first row (i = 0), not just a header


def test_a_cut_query_result_says_how_to_get_the_next_rows(lake, tmp_path):
    """A result cut at the character cap said only 'cut at 3,000 characters'; the note now gives the
    LIMIT/OFFSET that continues it, and running that continues where the first page stopped."""
    async def calls(client):
        sql = "SELECT row_no, note FROM shows.rows ORDER BY row_no"
        first = await client.call_tool("query", {"sql": sql})
        m = re.search(r"LIMIT (\d+) OFFSET (\d+)", text(first))
        assert m, text(first)[-400:]
        nxt = await client.call_tool("query", {"sql": "SELECT * FROM (SELECT row_no, note FROM shows.rows "
                                                      f"ORDER BY row_no) LIMIT {m[1]} OFFSET {m[2]}"})
        capped = await client.call_tool("query", {"sql": "SELECT row_no FROM shows.rows ORDER BY row_no",
                                                  "max_rows": 5})
        return first, int(m[2]), nxt, capped

    first, offset, nxt, capped = run(lake, tmp_path, calls)
    rows = re.findall(r"^\| (\d+) \| row \d+ \|$", text(first), re.M)
    assert len(rows) == offset and rows[-1] == str(offset - 1)
    assert re.findall(r"^\| (\d+) \|", text(nxt), re.M)[0] == str(offset)  # the page goes on from there
    assert "LIMIT 5 OFFSET 5" in text(capped)  # cut by max_rows: the same note


def test_list_domains_comes_in_pages(lake, tmp_path):
    """40 domains did not fit 3,000 characters: list_domains was cut with no way to the rest. Following
    the notes' offsets lists every domain exactly once."""
    async def calls(client):
        pages, offset = [], 0
        for _ in range(20):
            r = await client.call_tool("list_domains", {"offset": offset})
            assert not r.is_error, text(r)
            pages.append(text(r))
            m = re.search(r"list_domains\(offset=(\d+)\)", text(r))
            if not m:
                break
            offset = int(m[1])
        past = await client.call_tool("list_domains", {"offset": 10_000})
        return pages, past

    pages, past = run(lake, tmp_path, calls)
    assert len(pages) > 1 and all(len(p) <= CAP for p in pages)
    listed = [d for p in pages for d in re.findall(r"^\| (\w+) \| \d+ \|", p, re.M)]
    assert sorted(listed) == sorted([f"region_{d:02d}" for d in range(DOMAINS)] + ["shows"])
    assert past.is_error and "past the last domain" in text(past)


def test_index_md_is_read_in_pages_of_lines(lake, tmp_path):
    """INDEX.md longer than the cap was cut ('shown 3,000') and offset was refused for it: its function
    list at the end could not be read. Pages of lines now join back into the whole file."""
    whole = (lake[1] / "schemas" / "INDEX.md").read_text(encoding="utf-8")
    assert len(whole) > CAP

    async def calls(client):
        pages, offset = [], 0
        for _ in range(50):
            r = await client.call_tool("read_schema", {"path": "INDEX.md", "offset": offset})
            assert not r.is_error, text(r)
            body, _, note = text(r).partition("\n_Truncated: lines ")
            pages.append(body)
            m = re.search(r"read_schema\('INDEX\.md', offset=(\d+)\)", note)
            if not m:
                break
            offset = int(m[1])
        return pages

    pages = run(lake, tmp_path, calls)
    assert len(pages) > 1 and all(len(p) <= CAP for p in pages)
    assert "".join(pages) == whole


def test_the_query_tool_states_its_caps(lake, tmp_path):
    """'capped in rows, characters and time' gave no numbers: the description now states this server's."""
    async def calls(client):
        return {t.name: t for t in (await client.list_tools()).tools}

    tools = run(lake, tmp_path, calls)
    desc = tools["query"].description
    assert "1,000 rows" in desc and f"{CAP:,} characters" in desc and "30 s" in desc, desc
    assert "offset" in tools["list_domains"].input_schema["properties"]


def test_joinable_without_a_semantic_index_names_the_mode_that_works(lake, tmp_path):
    """mode='semantic' on a lake indexed without --joins-semantic said only 'build it with lakeql index
    ... --joins-semantic', which an agent cannot run: the error now names mode='equi', which answers."""
    async def calls(client):
        args = {"table": "shows.guests", "column": "year"}
        bad = await client.call_tool("joinable", {**args, "mode": "semantic"})
        good = await client.call_tool("joinable", {**args, "mode": "equi"})
        return bad, good

    bad, good = run(lake, tmp_path, calls)
    assert bad.is_error and "mode='equi'" in text(bad), text(bad)
    assert not good.is_error and "candidate_table" in text(good)


def test_memory_limit_caps_an_agents_query_with_a_fix_it_can_apply(lake, tmp_path):
    """The server's connection had DuckDB's default memory limit (80% of RAM) with no flag to lower it, and
    DuckDB's out-of-memory error suggests SET statements the locked connection refuses. With
    --memory-limit the query fails as a tool error naming fixes an agent can apply; the limit cannot be
    raised from SQL, and the server keeps answering."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    cmd = server_command(*lake, "--memory-limit", "200MB", "--no-warm")
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=child_env(), cwd=str(tmp_path))
    got: list = []

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            for sql in ("SELECT current_setting('memory_limit') AS m",
                        "SELECT length(list(range)) AS n FROM range(100000000)",
                        "SET memory_limit = '10GB'",
                        "SELECT count(*) AS n FROM shows.rows"):
                got.append(await client.call_tool("query", {"sql": sql}))

    anyio.run(main)
    assert "MiB" in text(got[0]) and "GiB" not in text(got[0]), text(got[0])
    assert got[1].is_error and "memory" in text(got[1]) and "SET is not available" in text(got[1])
    assert got[2].is_error
    assert not got[3].is_error and "| 500 |" in text(got[3])
