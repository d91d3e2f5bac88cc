"""Very wide tables do not flood an agent's context (benchmarks/results/widetables.md).

The lake (built in tmp_path, nothing copied into the project): one 1,500-column feature table whose
columns are the real columns of the fivethirtyeight CSVs side by side (first 30 rows of each, named
``<dataset>__<column>``), and a small real table beside it. The domain overview lists a bounded preview
of the wide table, its schema file stays complete and is read in pages or by column name (Python, MCP
service, official MCP client over stdio), and ``schema_context`` returns the columns a question is
about, also ones far past the first 340.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest
from testutil import require, shared_data

from lakeql.context import formats, pages
from lakeql.context.generate import PREVIEW_CHARS, PREVIEW_COLUMNS

WIDTH = 1_500
ROWS = 30
NOTE = "# lakeql:"


def _real_columns():
    """(name, pyarrow array of ROWS values) of the fivethirtyeight CSVs' columns, in file order."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out, seen = [], set()
    for f in sorted(shared_data("fivethirtyeight").glob("*/*.csv")):
        try:
            tab = pacsv.read_csv(f).slice(0, ROWS)
            tab.column_names  # noqa: B018 - a header that is not UTF-8 fails here
        except (pa.ArrowInvalid, UnicodeDecodeError):
            continue
        ds = re.sub(r"[^a-z0-9]+", "_", f.parent.name.lower()).strip("_")
        for name, col in zip(tab.column_names, tab.columns, strict=True):
            if pa.types.is_null(col.type) or len(col) < ROWS:
                continue
            cname = f"{ds}__{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower() or 'col'}"
            if cname in seen:
                continue
            seen.add(cname)
            out.append((cname, col.combine_chunks()))
            if len(out) == WIDTH:
                return out
    pytest.fail(f"fivethirtyeight has fewer than {WIDTH} usable columns")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """(lake, index dir, column names) of the indexed wide lake."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import lakeql

    root = tmp_path_factory.mktemp("wide")
    lake, idx = root / "lake", root / "idx"
    (lake / "features").mkdir(parents=True)
    cols = _real_columns()
    pq.write_table(pa.table({n: c for n, c in cols}), lake / "features" / "wide.parquet")
    small = pacsv.read_csv(shared_data("fivethirtyeight", "airline-safety", "airline-safety.csv"))
    pq.write_table(small, lake / "features" / "airline_safety.parquet")
    lakeql.index(lake, index_dir=idx, progress=False)
    return lake, idx, [n for n, _ in cols]


def _strip_note(text: str, fmt: str = "yaml") -> str:
    """A part that has a note, as it is: it parses in its format with the note (benchmarks/results/
    leftovers2.md #1)."""
    assert pages.note_of(text, fmt), text[-300:]
    return text


def _note(text: str, fmt: str = "yaml") -> str:
    return pages.note_of(text, fmt) or ""


def test_domain_overview_is_bounded(wide):
    _, idx, names = wide
    overview = (idx / "schemas" / "features" / "_DOMAIN.md").read_bytes()
    assert len(overview) < 8_000  # was 31 KB for such a table (trial8)
    lines = overview.decode().splitlines()
    assert max(len(ln) for ln in lines) < PREVIEW_CHARS + 400
    line = next(ln for ln in lines if "features.wide " in ln)
    assert f"... and {WIDTH - PREVIEW_COLUMNS} more ({WIDTH} columns: see the table file)" in line
    assert names[PREVIEW_COLUMNS - 1] in line and f"{names[PREVIEW_COLUMNS]} " not in line
    small = next(ln for ln in lines if "features.airline_safety " in ln)
    assert "more" not in small and "fatal_accidents_00_14" in small  # a narrow table is listed whole
    assert len((idx / "schemas" / "INDEX.md").read_bytes()) < 8_000
    # the table file stays complete: every column, one line each
    doc = formats.parse((idx / "schemas" / "features" / "wide.yaml").read_text(), "yaml")
    assert [c["column"] for c in doc["columns"]] == [f"features.wide.{n}" for n in names]


@pytest.mark.parametrize("fmt", ["yaml", "md", "json", "toon"])
def test_pages_cover_every_column_exactly_once(wide, fmt):
    _, idx, names = wide
    if fmt == "toon":
        require("toon_format")
    doc = formats.parse((idx / "schemas" / "features" / "wide.yaml").read_text(), "yaml")
    text = formats.render(doc, fmt)
    seen, offset, pages_read = [], 0, 0
    while offset is not None:
        part = pages.page(text, fmt, offset, 170, path="features/wide." + fmt)
        got = formats.parse(_strip_note(part.text, fmt), fmt)
        assert got["table"] == "features.wide" and got["rows"] == ROWS
        seen += [c["column"] for c in got["columns"]]
        assert part.total == WIDTH and part.shown == len(got["columns"])
        if part.next_offset is not None:
            assert f"offset={part.next_offset}" in _note(part.text, fmt)
        offset, pages_read = part.next_offset, pages_read + 1
    assert seen == [c["column"] for c in doc["columns"]] and pages_read == -(-WIDTH // 170)


def test_read_schema_pages_and_filters(wide):
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import LakeService, Limits

    lake, idx, names = wide
    svc = LakeService(lake, idx, Limits(max_chars=50_000))
    try:
        seen, offset = [], 0
        while True:  # default pages (whatever fits 50,000 characters), following the note's offsets
            got = svc.read_schema("features/wide.yaml", offset=offset)
            assert len(got) <= 50_000
            seen += [c["column"] for c in formats.parse(_strip_note(got), "yaml")["columns"]]
            m = re.search(r"offset=(\d+)", _note(got))
            if not m:
                assert "no more" in _note(got)
                break
            offset = int(m.group(1))
        assert seen == [f"features.wide.{n}" for n in names]
        deep = names[1_200]
        part = deep.split("__", 1)[1]
        got = svc.read_schema("features/wide.yaml", columns=part)
        cols = [c["column"] for c in formats.parse(_strip_note(got), "yaml")["columns"]]
        assert f"features.wide.{deep}" in cols and all(part in c.split(".")[-1] for c in cols)
        assert f"(the table has {WIDTH})" in got
        prefix = deep.split("__", 1)[0]
        got = svc.read_schema("features/wide.yaml", columns=f"{prefix}__*", limit=2)
        assert len(formats.parse(_strip_note(got), "yaml")["columns"]) == min(
            2, sum(n.startswith(prefix + "__") for n in names)
        )
        # small files come whole; bad arguments are clear errors
        assert NOTE not in svc.read_schema("features/airline_safety.yaml")
        for kw, msg in [
            ({"columns": "x," * 30}, "at most 20 patterns"),
            ({"columns": " , "}, "column name"),
            ({"offset": -1}, "offset"),
            ({"limit": 0}, "limit"),
        ]:
            with pytest.raises(LakeqlError, match=msg):
                svc.read_schema("features/wide.yaml", **kw)
        # INDEX.md pages by lines since agent13 (row 181); only columns= is for table files alone
        with pytest.raises(LakeqlError, match="table files only"):
            svc.read_schema("INDEX.md", columns="x")
        lines = (svc.schemas_root / "INDEX.md").read_text(encoding="utf-8").splitlines(keepends=True)
        assert svc.read_schema("INDEX.md", offset=2, limit=3).startswith("".join(lines[2:5]))
        # a pathological glob is cheap (no regex backtracking blow-up)
        import time

        t0 = time.process_time()  # CPU time: a loaded machine slows the wall clock, not the work done
        svc.read_schema("features/wide.yaml", columns="*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b")
        assert time.process_time() - t0 < 10
    finally:
        svc.close()


def test_schema_context_returns_the_relevant_deep_columns(wide):
    import lakeql

    lake, idx, names = wide
    deep = "nba_raptor__raptor_total"  # column ~940 of the wide table
    assert names.index(deep) > 340
    question = "which nba player has the highest total raptor rating?"
    con = lakeql.connect(lake, index_dir=idx)
    try:
        for unit in ("table", "auto"):
            rows = con.execute(
                "SELECT path, content FROM schema_context(?, k := 1, unit := ?)", [question, unit]
            ).fetchall()
            path, content = rows[0]
            assert f"features.wide.{deep}" in content, (unit, path)
            assert len(content.encode()) < 32_768, unit  # not the 220 KB file
        table = con.execute(
            "SELECT content FROM schema_context(?, k := 1, unit := 'table')", [question]
        ).fetchone()[0]
        assert f"of {WIDTH} columns shown" in table.splitlines()[-1]
    finally:
        con.close()


def test_mcp_client_reads_a_wide_table_in_pages(wide, tmp_path):
    require("mcp")
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from test_mcp import child_env, server_command, text

    lake, idx, names = wide
    cmd = server_command(lake, idx)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=child_env(), cwd=str(tmp_path))
    deep = names[900]

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"offset", "limit", "columns"} <= set(tools["read_schema"].input_schema["properties"])
            first = text(await client.call_tool("read_schema", {"path": "features/wide.yaml"}))
            note = first.splitlines()[-1]
            assert note.startswith(NOTE + " ") and f"of {WIDTH}" in note and "offset=" in note
            got = text(await client.call_tool("read_schema", {"path": "features/wide.yaml", "columns": deep}))
            assert f"features.wide.{deep}:" in got
            got = text(
                await client.call_tool(
                    "read_schema", {"path": "features/wide.yaml", "offset": 1_490, "limit": 100}
                )
            )
            cols = formats.parse(_strip_note(got), "yaml")["columns"]
            assert [c["column"] for c in cols] == [f"features.wide.{n}" for n in names[1_490:]]
            assert "no more" in _note(got)

    anyio.run(main)


def test_spider_tables_fit_the_preview():
    """The preview cap leaves every Spider table whole, so the Spider benchmark's files do not change."""
    import json

    dbs = json.loads(Path(shared_data("spider", "tables.json")).read_text())
    widest = max(
        sum(1 for t, _ in db["column_names_original"] if t == i)
        for db in dbs
        for i in range(len(db["table_names_original"]))
    )
    assert widest <= PREVIEW_COLUMNS


@pytest.mark.parametrize("fmt", ["yaml", "md", "json", "toon"])
def test_pages_of_hostile_column_names(fmt):
    """Quoted names (``:``, braces, quotes, a newline, bidi) page and filter like plain ones, and the
    YAML fast path (lines, not a parse of the whole file) gives what a parse would."""
    if fmt == "toon":
        require("toon_format")
    odd = ['we:ird {x} "q"', "line\nbreak # SYSTEM", "\u202eevil", "a\\b", "yes"]
    cols = [{"column": f"d.t.{n}", "type": "VARCHAR", "samples": ["x: y", "z"]} for n in odd]
    cols += [{"column": f"d.t.f{i}", "type": "BIGINT", "min": "1", "max": "9"} for i in range(300)]
    doc = formats.normalize(
        {"table": "d.t", "domain": "d", "source": "d/t.parquet", "rows": 3, "columns": cols}
    )
    text = formats.render(doc, fmt)
    seen, offset = [], 0
    while offset is not None:
        part = pages.page(text, fmt, offset, 7)
        seen += formats.parse(_strip_note(part.text, fmt), fmt)["columns"]
        offset = part.next_offset
    assert seen == formats.parse(text, fmt)["columns"]
    for pat, want in [("WE:IRD", odd[0]), ("*break*", odd[1]), ("\u202e", odd[2]), ("a\\b", odd[3])]:
        part = pages.page(text, fmt, columns=pat)
        got = [c["column"] for c in formats.parse(_strip_note(part.text, fmt), fmt)["columns"]]
        assert got == [f"d.t.{want}"], (pat, got)
    for question, want in [("where is the line break?", odd[1]), ("what is in column f250?", "f250")]:
        rel = pages.relevant(text, fmt, question, k=3)
        got = [c["column"] for c in formats.parse(_strip_note(rel.text, fmt), fmt)["columns"]]
        assert f"d.t.{want}" in got and len(got) == 3 and rel.total == len(cols), (question, got)
        assert "1 sharing words with the question" in _note(rel.text, fmt)


def test_read_schema_of_a_file_that_does_not_parse(wide, tmp_path):
    """A hand-edited table file: read whole (cut at max_chars) as before; asked for pages, a clear error."""
    import shutil

    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import LakeService, Limits

    lake, idx, _ = wide
    copy = tmp_path / "idx"
    shutil.copytree(idx, copy)
    (copy / "schemas" / "features" / "airline_safety.yaml").write_text("table: [unclosed\ncolumns: {\n")
    svc = LakeService(lake, copy, Limits(max_chars=50_000))
    try:
        assert svc.read_schema("features/airline_safety.yaml").startswith("table: [unclosed")
        with pytest.raises(LakeqlError, match="does not parse as a lakeql table file"):
            svc.read_schema("features/airline_safety.yaml", offset=1)
    finally:
        svc.close()


def _parse_generic(text: str, fmt: str):
    """``text`` parsed by the format's own parser (not lakeql's), as any client of the format would."""
    import json

    import yaml

    if fmt == "json":
        return json.loads(text)
    if fmt == "yaml":
        return yaml.safe_load(text)
    from toon_format import decode

    return decode(text.rstrip("\n"))


@pytest.mark.parametrize("fmt", ["yaml", "json", "toon"])
def test_every_page_is_a_valid_document_of_its_format(wide, fmt):
    """A page (and a relevant-columns part) parses whole with json / yaml / toon, note included: the
    note is a comment in YAML and a ``lakeql_page`` field in JSON and TOON, not a trailing line that made
    a JSON page invalid (benchmarks/results/leftovers2.md #1). Also through the MCP service, on a JSON
    table file of the index, following the next-page calls the notes name."""
    from lakeql.mcp.service import LakeService, Limits

    if fmt == "toon":
        require("toon_format")
    lake, idx, names = wide
    doc = formats.parse((idx / "schemas" / "features" / "wide.yaml").read_text(), "yaml")
    text = formats.render(doc, fmt)
    offset, seen = 0, []
    while offset is not None:
        part = pages.page(text, fmt, offset, 400, path="features/wide." + fmt)
        raw = _parse_generic(part.text, fmt)
        assert isinstance(raw, dict) and raw["table"] == "features.wide"
        seen += [c["column"] for c in formats.parse(part.text, fmt)["columns"]]
        note = pages.note_of(part.text, fmt)
        assert note and (f"offset={part.next_offset}" in note if part.next_offset else "no more" in note)
        if fmt != "yaml":
            assert raw[pages.NOTE_FIELD] == note
        offset = part.next_offset
    assert seen == [c["column"] for c in doc["columns"]]
    rel = pages.relevant(text, fmt, "airline fatalities")
    assert _parse_generic(rel.text, fmt)["table"] == "features.wide"
    assert "sharing words with the question" in pages.note_of(rel.text, fmt)

    extra = idx / "schemas" / "features" / f"wide_copy.{fmt}"
    extra.write_text(text, encoding="utf-8")
    svc = LakeService(lake, idx, Limits(max_chars=50_000))
    try:
        offset, seen = 0, []
        while True:
            got = svc.read_schema(f"features/wide_copy.{fmt}", offset=offset)
            assert _parse_generic(got, fmt)["table"] == "features.wide"
            seen += [c["column"] for c in formats.parse(got, fmt)["columns"]]
            m = re.search(r"offset=(\d+)", pages.note_of(got, fmt))
            if not m:
                break
            offset = int(m.group(1))
        assert seen == [c["column"] for c in doc["columns"]]
        got = svc.read_schema(f"features/wide_copy.{fmt}", columns="*airline*", limit=3)
        assert len(_parse_generic(got, fmt)["columns"]) == 3
    finally:
        svc.close()
        extra.unlink()
