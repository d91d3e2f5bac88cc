"""``lakeql mcp`` end to end: the SDK's own client drives the server over stdio and over streamable HTTP.

The server runs as a subprocess on an indexed copy of the sample lake. Each transport: list the tools,
search tables, read a schema file, check SQL, run it and get the answer DuckDB gives on the Parquet files
directly; hostile calls (COPY ... TO, reading /etc/passwd, read_schema('../../etc/passwd')) come back as
tool errors, write nothing, and the server keeps serving.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import duckdb
import pytest
from indexed_sample import indexed_sample
from testutil import require

require("mcp")

TOOLS = {"list_domains", "search_tables", "read_schema", "check_sql", "query", "joinable", "semantic_search",
         "ngram_search", "ngram_count", "find_tables", "unionable"}
QUESTION = "which airline flew the most flights?"
ANSWER_SQL = ("SELECT a.name, count(*) AS n FROM flights.flights f JOIN flights.airlines a USING (carrier) "
              "GROUP BY a.name ORDER BY n DESC, a.name LIMIT 1")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return indexed_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def answer(sample):
    """The top airline and its flight count, computed by DuckDB on the Parquet files themselves."""
    lake, _ = sample
    return duckdb.connect().execute(
        f"SELECT a.name, count(*) AS n FROM read_parquet('{lake}/flights/flights.parquet') f "
        f"JOIN read_parquet('{lake}/flights/airlines.parquet') a USING (carrier) "
        "GROUP BY a.name ORDER BY n DESC, a.name LIMIT 1").fetchone()


def server_command(lake: Path, idx: Path, *extra: str) -> list[str]:
    """``lakeql mcp ...`` when the CLI has the command, else the equivalent ``python -m lakeql.mcp``."""
    try:
        from lakeql.cli import COMMAND_MODULES

        wired = "lakeql.mcp" in COMMAND_MODULES
    except ImportError:
        wired = False
    args = ["--lake", str(lake), "--index-dir", str(idx), *extra]
    return [sys.executable, "-m", "lakeql.cli", "mcp", *args] if wired else \
        [sys.executable, "-m", "lakeql.mcp", *args]


def child_env() -> dict[str, str]:
    """The environment of the server process: this checkout of lakeql first on the path."""
    import lakeql

    src = str(Path(lakeql.__file__).resolve().parents[1])
    return {"PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "HF_HUB_OFFLINE": "1"}


def text(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "text", None) is not None)


async def session_checks(client, lake: Path, idx: Path, scratch: Path, answer, semantic: bool) -> None:
    """The agent's path through the tools, and the refusals, on one connected client."""
    before = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*"))

    tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        assert t.description and len(t.description) > 40, t.name
        assert t.input_schema["type"] == "object"
    schema = {t.name: t.input_schema for t in tools}
    assert schema["query"]["required"] == ["sql"] and "max_rows" in schema["query"]["properties"]
    assert set(schema["semantic_search"]["required"]) == {"table", "column", "query"}

    r = await client.call_tool("list_domains", {})
    assert not r.is_error and "| flights | 5 |" in text(r) and "| python | 2 |" in text(r)

    r = await client.call_tool("search_tables", {"question": QUESTION, "k": 3})
    assert not r.is_error
    paths = [line.split("|")[1].strip() for line in text(r).splitlines()[2:] if line.startswith("| ")]
    assert paths and paths[0].startswith("flights/"), text(r)

    r = await client.call_tool("read_schema", {"path": "flights/airlines.yaml"})
    assert not r.is_error and "flights.airlines.carrier" in text(r)
    r = await client.call_tool("read_schema", {"path": paths[0]})
    assert not r.is_error and "flights" in text(r)

    r = await client.call_tool("check_sql", {"sql": ANSWER_SQL.replace("a.name,", "a.nme,", 1)})
    assert not r.is_error and "did you mean" in text(r) and "a.name" in text(r)
    r = await client.call_tool("check_sql", {"sql": ANSWER_SQL})
    assert not r.is_error and text(r).startswith("OK")

    r = await client.call_tool("query", {"sql": ANSWER_SQL})
    assert not r.is_error
    assert f"| {answer[0]} | {answer[1]} |" in text(r), text(r)

    r = await client.call_tool("query", {"sql": "SELECT module FROM python.modules ORDER BY module",
                                         "max_rows": 5})
    assert not r.is_error and "Truncated" in text(r) and text(r).count("\n| ") == 5

    # hostile calls: tool errors, nothing written, nothing outside the lake read
    out = scratch / "pwned.csv"
    inside = lake / "pwned.csv"
    refused = [
        ("query", {"sql": f"COPY (SELECT 42) TO '{out}'"}, "COPY"),
        ("query", {"sql": f"COPY (SELECT 42) TO '{inside}'"}, "COPY"),
        ("query", {"sql": "SELECT 1; COPY (SELECT 42) TO 'x.csv'"}, "one statement"),
        ("query", {"sql": "SELECT * FROM read_text('/etc/passwd')"}, "reads files"),
        ("query", {"sql": "SELECT * FROM '/etc/passwd'"}, "reads files"),
        ("query", {"sql": "SELECT * FROM join_graph(_path := '/etc/passwd')"}, ""),
        ("query", {"sql": f"ATTACH '{scratch / 'x.db'}' AS x"}, "ATTACH"),
        ("query", {"sql": "SET enable_external_access = true"}, "SET"),
        ("read_schema", {"path": "../../etc/passwd"}, "refused"),
        ("read_schema", {"path": "/etc/passwd"}, "refused"),
        ("read_schema", {"path": ".lakeql-files.parquet"}, "refused"),
        ("semantic_search", {"table": "python.modules", "column": "docstring", "query": "email",
                             "filter": f"1=1); COPY (SELECT 1) TO '{out}'; SELECT 0 WHERE (1=1"}, "one SQL"),
    ]
    for name, args, fragment in refused:
        r = await client.call_tool(name, args)
        assert r.is_error, (name, args, text(r))
        assert fragment in text(r) and "root:" not in text(r), (name, args, text(r))
    assert not out.exists() and not (scratch / "x.db").exists() and not inside.exists()
    assert sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*")) == before

    # the lake-specific search tools, and their errors where no index exists
    docs = {"table": "python.modules", "column": "docstring"}
    r = await client.call_tool("ngram_count", {**docs, "phrase": "CSV"})
    assert not r.is_error and text(r).split()[0].isdigit() and int(text(r).split()[0]) > 0
    r = await client.call_tool("ngram_count", {**docs, "table": "python.functions", "phrase": "x"})
    assert r.is_error and "indexed here: python.modules.docstring" in text(r)
    r = await client.call_tool("joinable", {"table": "flights.flights", "column": "carrier", "k": 3})
    assert not r.is_error and "flights.airlines" in text(r)
    r = await client.call_tool("find_tables", {"query": "airline carrier names", "k": 3})
    assert not r.is_error and "flights.airlines" in text(r), text(r)
    r = await client.call_tool("unionable", {"table": "flights.airlines", "k": 3})
    assert not r.is_error, text(r)
    if semantic:
        r = await client.call_tool("semantic_search", {**docs, "query": "send electronic mail", "k": 5})
        assert not r.is_error and ("email" in text(r) or "smtplib" in text(r)), text(r)
        r = await client.call_tool("semantic_search", {**docs, "query": "mail", "k": 3,
                                                       "filter": "module LIKE 'email%'"})
        assert not r.is_error and "| email" in text(r)

    # still serving after all those errors
    r = await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM python.modules"})
    assert not r.is_error and "| 505 |" in text(r)

    resources = (await client.list_resources()).resources
    uris = [str(x.uri) for x in resources]
    assert uris[0] == "lakeql://schemas/INDEX.md" and "lakeql://schemas/flights/airlines.yaml" in uris
    got = await client.read_resource("lakeql://schemas/INDEX.md")
    assert "flights" in got.contents[0].text


def test_stdio_end_to_end(sample, answer, tmp_path):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    lake, idx = sample
    cmd = server_command(lake, idx)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=child_env(), cwd=str(tmp_path))

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            await session_checks(client, lake, idx, tmp_path, answer, semantic=True)

    anyio.run(main)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the server wrote nothing in its cwd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the HTTP server did not start listening")


def test_http_end_to_end(sample, answer, tmp_path):
    from mcp import Client

    lake, idx = sample
    port = free_port()
    cmd = server_command(lake, idx, "--transport", "http", "--port", str(port))
    proc = subprocess.Popen(cmd, env={**os.environ, **child_env()}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)

        async def main() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=300) as client:
                await session_checks(client, lake, idx, tmp_path, answer, semantic=False)

        anyio.run(main)
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the service itself (no model needed)
@pytest.fixture(scope="module")
def service(sample):
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    svc = LakeService(lake, idx, Limits(max_rows=1000, max_chars=2_000, timeout=1.0))
    yield svc
    svc.close()


def test_connection_is_contained_even_without_the_statement_check(service):
    """Bypassing the tool checks, DuckDB itself refuses files outside the lake and config changes."""
    from lakeql.errors import LakeqlError

    with pytest.raises(LakeqlError, match="Permission Error"):
        service._rows("SELECT * FROM read_text('/etc/passwd')", [])
    with pytest.raises(LakeqlError, match="locked"):
        service._rows("SET enable_external_access = true", [])
    assert service._rows("SELECT count(*) FROM flights.airlines", [])[1] == [(16,)]


def test_symlink_out_of_the_schemas_folder_is_refused(service):
    from lakeql.errors import LakeqlError

    link = service.schemas_root / "evil.yaml"
    link.symlink_to("/etc/passwd")
    try:
        with pytest.raises(LakeqlError, match="refused"):
            service.read_schema("evil.yaml")
        assert "evil.yaml" in [p.name for p in service.schemas_root.iterdir()]
    finally:
        link.unlink()


def test_caps_rows_characters_and_time(service):
    from lakeql.errors import LakeqlError

    out = service.query("SELECT module, docstring FROM python.modules ORDER BY module")
    assert len(out) <= 2_000 and "Truncated" in out and "cut at 2,000 characters" in out
    with pytest.raises(LakeqlError, match="interrupted"):
        service.query("SELECT count(*) FROM range(1000000000000) a, range(1000) b WHERE a + b = 7")
    assert service.query("SELECT 1 AS one").startswith("| one |")  # usable after the interrupt
    out = service.query("SELECT INTERVAL '1 month 2 days' AS i, 7 AS n")  # not '32 days'
    assert "| 1 month 2 days | 7 |" in out
    with pytest.raises(LakeqlError, match="max_rows"):
        service.query("SELECT 1", max_rows=0)


def test_server_row_limit_is_the_default_and_the_cap(service):
    old = service.limits.max_rows
    service.limits.max_rows = 10
    try:
        for asked in (None, 5_000):
            out = service.query("SELECT range AS i FROM range(100)", max_rows=asked)
            assert out.count("\n| ") == 10 and "row limit 10" in out
        assert service.query("SELECT range AS i FROM range(100)", max_rows=3).count("\n| ") == 3
    finally:
        service.limits.max_rows = old


def test_scalar_function_called_in_from_gets_a_hint(service):
    """An agent that calls a scalar lakeql function in FROM is told how to call it."""
    from lakeql.errors import LakeqlError

    with pytest.raises(LakeqlError, match="ngram_count is a scalar function: call it in the SELECT list"):
        service.query("SELECT * FROM ngram_count('python.modules', 'docstring', 'email')")


def test_close_during_the_warm_up_interrupts_it_and_waits(sample):
    """A client that disconnects while the warm-up runs (minutes on a 10,000-table lake: it embeds every
    schema file): close() interrupts the running query and waits for the thread. Closing the connection
    under the running cursor raised DuckDB's "connection is busy" and the process died with a fatal
    error at exit."""
    import threading
    import time

    from lakeql.mcp.service import LakeService

    lake, idx = sample
    service = LakeService(lake, idx)
    real = service._rows

    def long_first_query(sql, params, *args, **kwargs):  # the warm-up's first query, made long
        if threading.current_thread().name == "lakeql-mcp-warm":
            sql, params = "SELECT count(*) FROM range(1000000000000) a WHERE a.range % 7 = 3", []
        return real(sql, params, *args, **kwargs)

    errors = []
    hook, threading.excepthook = threading.excepthook, errors.append
    service._rows = long_first_query
    service.warm(background=True)
    deadline = time.monotonic() + 60
    while not service._running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service._running, "the warm-up query never started"
    t0 = time.monotonic()
    try:
        service.close()
    finally:
        threading.excepthook = hook
    assert not service._warm_thread.is_alive() and not service.warm_running()
    assert time.monotonic() - t0 < 20
    assert errors == []  # the stopped warm-up reports nothing (its next query is refused quietly)


def test_resources_are_listed_in_pages_with_a_validated_cursor(service):
    """resources/list answers a page at a time with the spec's nextCursor (a 9,763-table lake answered
    every schema file at once: 3.3 MB); a cursor that is not one the server gave is an invalid-params
    error (-32602) naming the fix, and the server keeps serving."""
    import base64

    from mcp import Client
    from mcp.shared.exceptions import MCPError

    from lakeql.mcp.server import RESOURCE_PAGE, build_server, encode_cursor

    assert 100 <= RESOURCE_PAGE <= 500
    files = service.schema_files()
    assert len(files) > 7
    server = build_server(service, page_size=3)

    async def main() -> None:
        async with Client(server) as client:
            uris, cursor, pages = [], None, 0
            while True:
                page = await client.list_resources(cursor=cursor)
                pages += 1
                assert 1 <= len(page.resources) <= 3
                uris += [str(r.uri) for r in page.resources]
                cursor = page.next_cursor
                if cursor is None:
                    break
                assert "lakeql" not in cursor  # opaque
            assert uris == [f"lakeql://schemas/{f}" for f in files]
            assert pages == -(-len(files) // 3)

            total = len(files)
            forged = base64.urlsafe_b64encode(b"lakeql-resources:1:99999:7").decode()
            hostile = ["", "x", "=" * 10, "\x00", "é" * 10, "a" * 100_000, forged,
                       encode_cursor(0, total), encode_cursor(total, total), encode_cursor(-1, total),
                       "' OR 1=1 --", base64.urlsafe_b64encode(b"\xff\xfe").decode()]
            for bad in hostile:
                with pytest.raises(MCPError) as err:
                    await client.list_resources(cursor=bad)
                assert err.value.code == -32602, (bad, err.value.message)
                assert "without a cursor" in err.value.message or "no cursor" in err.value.message
            with pytest.raises(MCPError, match="another listing") as err:
                await client.list_resources(cursor=encode_cursor(3, total + 1))
            assert err.value.code == -32602
            page = await client.list_resources(cursor=encode_cursor(3, total))
            assert [str(r.uri) for r in page.resources] == uris[3:6]
            got = await client.read_resource(uris[-1])
            assert got.contents[0].text

    anyio.run(main)


def test_query_of_an_unreadable_table_names_it(tmp_path):
    """The query tool on a table the catalog left out as unreadable: lakeql's reason and fix, not
    DuckDB's 'does not exist, did you mean'."""
    import shutil
    import warnings

    from testutil import SAMPLE_LAKE

    import lakeql
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import LakeService

    lake = tmp_path / "lake"
    (lake / "flights").mkdir(parents=True)
    shutil.copy(SAMPLE_LAKE / "flights" / "airlines.parquet", lake / "flights")
    (lake / "flights" / "broken.parquet").write_bytes(b"PAR1 not really")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, index_dir=tmp_path / "idx", progress=False)
        svc = LakeService(lake, tmp_path / "idx")
    try:
        with pytest.raises(LakeqlError, match="'flights.broken' is in the lake but none of its files could "
                                              "be read") as err:
            svc.query("SELECT * FROM flights.broken")
        assert "fix or replace 'flights/broken.parquet'" in str(err.value)
        assert "| 16 |" in svc.query("SELECT count(*) AS n FROM flights.airlines")
    finally:
        svc.close()


def test_resources_are_read_through_lakeql_without_registering_each_file(service):
    """resources/read goes through lakeql's templates and its own file listing (startup registered every
    schema file with the SDK one by one: 8.9 s on a 9,763-table lake): each listed URI reads the file's
    text and MIME type as before; unknown and hostile URIs are clear invalid-params errors (-32602) and
    never read a file outside the schemas folder; the server keeps serving."""
    from urllib.parse import quote

    from mcp import Client
    from mcp.shared.exceptions import MCPError

    from lakeql.mcp.server import MIME, TEMPLATES, build_server

    files = service.schema_files()
    server = build_server(service, page_size=4)
    assert server._resource_manager.list_resources() == []  # nothing registered one by one
    outside = service.index_root / "outside.md"  # a real file next to the schemas folder
    outside.write_text("SECRET outside the schemas folder")
    try:

        async def main() -> None:
            async with Client(server) as client:
                templates = (await client.list_resource_templates()).resource_templates
                assert [t.uri_template for t in templates] == [f"lakeql://schemas/{{+path}}{e}" for e, _ in
                                                               TEMPLATES]
                listed, cursor = [], None
                while True:
                    page = await client.list_resources(cursor=cursor)
                    listed += page.resources
                    if (cursor := page.next_cursor) is None:
                        break
                assert [str(r.uri) for r in listed] == [f"lakeql://schemas/{f}" for f in files]
                for res, rel in zip(listed, files, strict=True):
                    got = (await client.read_resource(str(res.uri))).contents
                    assert len(got) == 1 and got[0].text == service.read_schema(rel)
                    assert got[0].mime_type == res.mime_type == MIME.get(Path(rel).suffix, "text/plain"), rel
                    assert str(got[0].uri) == str(res.uri)
                yaml = next(f for f in files if f.endswith(".yaml"))
                got = await client.read_resource(f"lakeql://schemas/{quote(yaml, safe='')}")
                assert got.contents[0].text == service.read_schema(yaml)  # an encoded '/': the same file

                etc = "../" * 30 + "etc/passwd"
                hostile = [
                    "lakeql://schemas/nope.yaml", "lakeql://schemas/", "lakeql://schemas", "lakeql://schemas/.",
                    "lakeql://schemas/../outside.md", "lakeql://schemas/flights/../../outside.md",
                    f"lakeql://schemas/{etc}", "lakeql://schemas/%2e%2e/outside.md",
                    "lakeql://schemas/%2E%2E%2Foutside.md", "lakeql://schemas/..%2foutside.md",
                    "lakeql://schemas/%2e%2e%5coutside.md", "lakeql://schemas//etc/passwd",
                    "lakeql://schemas/%2Fetc%2Fpasswd", f"lakeql://schemas/{service.index_root}/outside.md",
                    "lakeql://schemas/INDEX.md%00.yaml", "lakeql://schemas/.hidden.md",
                    "file:///etc/passwd", f"file://{outside}", "http://127.0.0.1/INDEX.md",
                    "lakeql://other/INDEX.md", "LAKEQL://schemas/INDEX.md",
                    "lakeql://schemas/" + "a/" * 50_000 + "x.md", "lakeql://schemas/" + "é" * 10_000,
                ]
                for bad in hostile:
                    with pytest.raises(MCPError) as err:
                        await client.read_resource(bad)
                    assert err.value.code == -32602, (bad[:80], err.value.message[:200])
                    msg = err.value.message
                    assert "SECRET" not in msg and "root:" not in msg
                    assert "Unknown resource" in msg or "resources/list" in msg, (bad[:80], msg[:200])
                with pytest.raises(MCPError, match="list them with resources/list"):
                    await client.read_resource("lakeql://schemas/flights/nope.yaml")
                got = await client.read_resource("lakeql://schemas/INDEX.md")  # still serving
                assert got.contents[0].text == service.read_schema("INDEX.md")

        anyio.run(main)
    finally:
        outside.unlink()


def test_resource_paging_needs_the_sdk_internals_it_patches(service, monkeypatch):
    """resources/list paging replaces a handler of MCPServer's private low-level server (mcp 2.3 has no
    public hook): with the SDK installed here it is there; an SDK without it fails at startup with the
    fix, not on the first call."""
    from mcp.server.mcpserver import MCPServer

    from lakeql.mcp.server import build_server

    server = build_server(service)
    entry = server._lowlevel_server.get_request_handler("resources/list")
    assert entry is not None and entry.handler.__qualname__.startswith("_paginate_resources")
    original = MCPServer.__init__

    def without_lowlevel(self, *args, **kwargs):
        original(self, *args, **kwargs)
        del self._lowlevel_server

    monkeypatch.setattr(MCPServer, "__init__", without_lowlevel)
    with pytest.raises(RuntimeError, match=r"pip install 'mcp>=2.3,<2.4'"):
        build_server(service)


def test_table_cells_escape_control_characters():
    """A cell holding NUL, a terminal escape sequence or U+2028 reaches the agent escaped (``\\x00``,
    ``\\x1b``, ``\\u2028``) as the CLI shows it: raw, a NUL cuts strings in C clients and ESC drives the
    terminal an agent's tool output is shown in. Pipes and line breaks stay escaped; text round-trips."""
    import re

    from lakeql.mcp.tables import markdown_table

    hostile = "nul\x00ansi\x1b[2J\x1b[31mred\x07bell\x7fdel\x9fc1|pipe\r\nline\u2028ls\u2029ps\\x00 literal"
    out = markdown_table(["c\x1bol", "n"], [(hostile, 1), ("plain é 東京 👨\u200d👩", 2)], max_chars=10_000)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]", out), repr(out)
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0] == "| c\\x1bol | n |"
    assert lines[2] == ("| nul\\x00ansi\\x1b[2J\\x1b[31mred\\x07bell\\x7fdel\\x9fc1\\|pipe\\r\\nline\\u2028ls"
                        "\\u2029ps\\\\x00 literal | 1 |")
    assert lines[3] == "| plain é 東京 👨\u200d👩 | 2 |"  # printable Unicode (ZWJ included) is kept


def test_tool_errors_escape_control_characters(tmp_path):
    """A DuckDB error quotes the lake's data ('Could not convert string ...'): its NUL, ESC and BEL reach
    the agent as ``\\xNN`` like the table cells, from the service and from every tool of the server."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq
    from mcp.server.mcpserver.exceptions import ToolError

    import lakeql
    from lakeql.errors import LakeqlError
    from lakeql.mcp.server import _safe
    from lakeql.mcp.service import LakeService

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"s": ["x\x1b[2J\x1b]0;pwned\x07y", "ok"]}), lake / "d" / "t.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, index_dir=tmp_path / "idx", progress=False)
        svc = LakeService(lake, tmp_path / "idx")
    try:
        with pytest.raises(LakeqlError, match="Could not convert string") as err:
            svc.query("SELECT CAST(s AS INTEGER) FROM d.t")
        assert "\x1b" not in str(err.value) and "\x07" not in str(err.value)
        assert "x\\x1b[2J\\x1b]0;pwned\\x07y" in str(err.value) and "\nLINE 1:" in str(err.value)

        def tool() -> str:
            raise ValueError("bad \x00 value \x1b[31m")

        with pytest.raises(ToolError) as err:
            _safe(tool)()
        assert str(err.value) == "bad \\x00 value \\x1b[31m"
    finally:
        svc.close()
