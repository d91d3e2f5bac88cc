"""Docs that cannot drift: every SQL example in README.md and docs/*.md runs on the sample lake.

Two kinds of examples are collected (the datasette habit of testing the docs):

* ```` ```sql ```` blocks, split into statements. A trailing ``-- 24`` comment on a statement's last line
  is its expected single value; ``-- a | b | c`` lines right after a statement are expected rows, whose
  first cell must appear in the first column of the result. A block for another place (the stock duckdb
  CLI, a locked-down server) starts with ``-- not run here: <why>`` and is left out.
* backticked calls in the ``example`` column of Markdown tables (``FROM joinable('flights.flights', ...)``
  or ``ngram_count(...)``); a bare call is run as ``SELECT * FROM call`` when DuckDB knows it as a table
  macro, else as ``SELECT call``.

The sample lake is indexed once for the session with the demo's options (embed and n-gram columns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import lakeql
from lakeql.demo import DEMO_OPTIONS, SAMPLE_LAKE

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SQL_START = re.compile(r"^\s*(SELECT|FROM|WITH)\b", re.IGNORECASE)
CALL = re.compile(r"^([a-z_][a-z0-9_]*)\s*\(.*\)$", re.IGNORECASE | re.DOTALL)
#: statements that only make sense elsewhere: shell dot-commands and the stock CLI's own database
NOT_SQL = re.compile(r"^\s*\.|lake\.duckdb", re.IGNORECASE)


@dataclass
class Example:
    where: str
    sql: str
    value: str | None = None  # expected single value
    first_cells: tuple[str, ...] = ()  # expected first-column values


def sql_blocks(path: Path) -> list[Example]:
    out: list[Example] = []
    text = path.read_text(encoding="utf-8")
    for m in re.finditer(r"```sql\n(.*?)```", text, re.DOTALL):
        line0 = text[:m.start()].count("\n") + 2
        first = m.group(1).lstrip().splitlines()[0] if m.group(1).strip() else ""
        if first.lower().startswith("-- not run here:"):
            assert len(first) > len("-- not run here:") + 3, f"{path.name}:{line0}: say why it is not run"
            continue
        out += split_block(m.group(1), f"{path.name}:{line0}")
    return out


def split_block(block: str, where: str) -> list[Example]:
    """Statements of a block with the outputs written after them as comments."""
    examples: list[Example] = []
    current: list[str] = []
    for line in block.splitlines():
        body, _, comment = line.partition("--")
        if not current and not body.strip():
            if comment.strip() and "|" in comment and examples:
                examples[-1].first_cells += (comment.split("|")[0].strip(),)
            continue
        current.append(body)
        if body.rstrip().endswith(";"):
            sql = "\n".join(current).strip().rstrip(";")
            value = comment.strip().split()[0] if comment.strip() else None
            number = value if value and re.fullmatch(r"-?[\d.]+", value) else None
            examples.append(Example(where, sql, number))
            current = []
    if "".join(current).strip():
        examples.append(Example(where, "\n".join(current).strip()))
    return examples


def table_examples(path: Path) -> list[Example]:
    """Backticked examples in the column headed 'example' of Markdown tables."""
    out: list[Example] = []
    col = None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            col = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        lowered = [c.lower() for c in cells]
        if "example" in lowered:
            col = lowered.index("example")
            continue
        if col is None or col >= len(cells) or set(cells[col]) <= set("-: "):
            continue
        for snippet in re.findall(r"`([^`]+)`", cells[col]):
            if not snippet.startswith("--"):  # a CLI flag named beside the example
                out.append(Example(f"{path.name}:{n}", snippet.replace("\\|", "|")))
    return out


ALL = [e for p in DOCS for e in sql_blocks(p) + table_examples(p) if not NOT_SQL.search(e.sql)]


@pytest.fixture(scope="session")
def con(tmp_path_factory):
    idx = tmp_path_factory.mktemp("docs-index")
    lakeql.index(SAMPLE_LAKE, index_dir=idx, progress=False, **DEMO_OPTIONS)
    return lakeql.connect(SAMPLE_LAKE, index_dir=idx)


def runnable(con, sql: str) -> str:
    if SQL_START.match(sql):
        return sql
    m = CALL.match(sql.strip())
    assert m, f"not a SQL statement or a function call: {sql!r}"
    kinds = {r[0] for r in con.execute("SELECT function_type FROM duckdb_functions() WHERE function_name = ?",
                                       [m.group(1)]).fetchall()}
    assert kinds, f"{m.group(1)} is not a function of a lakeql connection"
    return f"SELECT * FROM {sql}" if "table_macro" in kinds else f"SELECT {sql}"


def test_docs_have_examples() -> None:
    assert len(ALL) >= 40, [e.where for e in ALL]


@pytest.mark.parametrize("example", ALL, ids=[f"{e.where}:{e.sql[:40]}" for e in ALL])
def test_example_runs(con, example: Example) -> None:
    cur = con.cursor()
    for stmt in cur.extract_statements(runnable(cur, example.sql)):
        rows = cur.execute(stmt).fetchall()
    if example.value is not None:
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        assert float(rows[0][0]) == pytest.approx(float(example.value), abs=0.0015), example.sql
    if example.first_cells:
        got = {str(r[0]) for r in rows}
        missing = [c for c in example.first_cells if c not in got and c not in ("...", "…")]
        assert not missing, f"{example.where}: documented rows {missing} are not in the result {sorted(got)}"
