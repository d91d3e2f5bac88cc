"""Load the SQL surface: the ``udfs/*.sql`` macro files shipped with the package.

Each file belongs to one capability and has two kinds of sections, marked by a line of their own:

``-- @python``  statements that call Python UDFs (run by :func:`lakeql.connect` after the UDFs exist)
``-- @pure``    pure-SQL statements (also persisted into ``lake.duckdb`` for the stock duckdb CLI)

Text before the first marker is ``@python``. ``{{index_dir}}`` in a statement is replaced by the index
dir as a quoted SQL string literal (absolute path), so pure macros can read index Parquet files.
"""

from __future__ import annotations

import re
from pathlib import Path

from lakeql.lake import quote_literal

_MARKER = re.compile(r"^--\s*@(pure|python)\s*$", re.MULTILINE)


def udfs_dir() -> Path:
    """The folder of the .sql files: inside the installed package, or the source checkout's ``udfs/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "udfs", here.parent / "udfs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("lakeql's udfs/*.sql files are missing: reinstall lakeql")


def sections(name: str) -> dict[str, str]:
    """The ``pure`` and ``python`` SQL text of ``udfs/<name>.sql`` (empty strings when absent)."""
    path = udfs_dir() / f"{name}.sql"
    out = {"pure": "", "python": ""}
    if not path.exists():
        return out
    text = path.read_text(encoding="utf-8")
    kind = "python"
    pos = 0
    for m in _MARKER.finditer(text):
        out[kind] += text[pos:m.start()]
        kind, pos = m.group(1), m.end()
    out[kind] += text[pos:]
    return out


def render(sql: str, index_dir: str | Path | None) -> str:
    path = str(index_dir) if index_dir is not None else ""
    return sql.replace("{{index_dir}}", quote_literal(path))


def run(con, name: str, kinds: tuple[str, ...] = ("pure", "python"), index_dir: str | Path | None = None
        ) -> None:
    """Execute the chosen sections of ``udfs/<name>.sql`` on ``con``."""
    secs = sections(name)
    for kind in kinds:
        sql = render(secs[kind], index_dir).strip()
        if _has_statement(sql):
            con.execute(sql)


def _has_statement(sql: str) -> bool:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return bool(body.strip().strip(";").strip())
