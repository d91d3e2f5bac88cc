"""Parts of a wide table's schema file: a page of columns, the columns matching a name filter, or the
columns relevant to a question.

A table file stays complete on disk (the source of truth); an agent reads a 1,500-column table in pages
(``offset``/``limit``) or by column name (``columns``: comma-separated patterns, ``*``/``?`` wildcards,
else a case-insensitive substring), and ``schema_context`` returns the columns that share words with the
question instead of the first ones. Every part is the same format as the file (it parses back with
:func:`lakeql.context.formats.parse`), followed by one note line saying what was shown and how to get
the rest.

Patterns are matched with :func:`fnmatch.fnmatchcase` (no regular expression from the caller; Python's
translation cannot backtrack catastrophically) on lower-cased names of at most 200 characters, and are
capped at :data:`MAX_PATTERNS` patterns of :data:`MAX_PATTERN_CHARS` characters.
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lakeql.context import formats
from lakeql.context.text import tokens
from lakeql.errors import LakeqlError

PAGE_COLUMNS = 200  # columns per page when a table file is too long to show whole
RELEVANT_COLUMNS = 40  # columns schema_context keeps of a table file over the byte budget
MAX_PATTERNS = 20
MAX_PATTERN_CHARS = 200


@dataclass
class Part:
    text: str  # the part, in the file's format, plus a note line when not every column is shown
    total: int  # columns in the file
    shown: int  # columns in the part
    next_offset: int | None  # offset of the next page (None: nothing after it)


def fmt_of(rel: str) -> str | None:
    """The format of a table file by its name (None for INDEX.md, _DOMAIN.md and anything else)."""
    if rel.rsplit("/", 1)[-1] in ("INDEX.md", "_DOMAIN.md"):
        return None
    ext = rel.rsplit(".", 1)[-1] if "." in rel else ""
    return next((f for f, e in formats.FORMATS.items() if e == ext), None)


def short_name(column: str, table: str) -> str:
    """``c`` of the full column name ``domain.table.c``."""
    return column[len(table) + 1 :] if column.startswith(table + ".") else column.rsplit(".", 1)[-1]


def patterns_of(columns: str) -> list[str]:
    pats = [p.strip().lower() for p in columns.split(",") if p.strip()]
    if not pats:
        raise LakeqlError("columns: pass a column name or pattern, e.g. 'price' or 'feat_1*'")
    if len(pats) > MAX_PATTERNS or any(len(p) > MAX_PATTERN_CHARS for p in pats):
        raise LakeqlError(
            f"columns: at most {MAX_PATTERNS} patterns of at most {MAX_PATTERN_CHARS} characters each"
        )
    return pats


def matches(name: str, pats: list[str]) -> bool:
    """``name`` (lower-cased) matches a glob pattern, or contains a pattern without wildcards."""
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p) if any(ch in p for ch in "*?[") else p in low for p in pats)


def _render(doc: dict[str, Any], cols: list[dict[str, Any]], fmt: str, note: str) -> str:
    text = formats.render({**doc, "columns": cols}, fmt)
    return text + ("\n" + note + "\n" if note else "")


def page(
    text: str,
    fmt: str,
    offset: int = 0,
    limit: int | None = None,
    columns: str | None = None,
    path: str = "PATH",
) -> Part:
    """Columns ``offset`` .. ``offset + limit`` of a table file (of those matching ``columns``)."""
    if offset < 0:
        raise LakeqlError("offset must be >= 0")
    if limit is not None and limit < 1:
        raise LakeqlError("limit must be >= 1")
    doc = formats.parse(text, fmt)
    cols = doc["columns"]
    total = len(cols)
    what = "columns"
    if columns is not None:
        pats = patterns_of(columns)
        cols = [c for c in cols if matches(short_name(c["column"], doc["table"]), pats)]
        what = f"columns matching {columns!r}"
    limit = PAGE_COLUMNS if limit is None else limit
    chosen = cols[offset : offset + limit]
    end = offset + len(chosen)
    nxt = end if end < len(cols) else None
    if columns is None and offset == 0 and nxt is None:
        return Part(text, total, total, None)  # the whole file, as it is
    arg = "" if columns is None else f", columns={columns!r}"
    note = (
        f"# lakeql: {what} {offset + 1 if chosen else 0}-{end} of {len(cols)}"
        + (f" (the table has {total})" if columns is not None else "")
        + (f"; next page: read_schema({path!r}, offset={nxt}{arg})" if nxt is not None else "; no more")
        + (", or pass columns='word' (a name part or *glob*)" if columns is None else "")
        + "."
    )
    return Part(_render(doc, chosen, fmt, note), total, len(chosen), nxt)


def relevant(text: str, fmt: str, question: str, k: int = RELEVANT_COLUMNS, path: str = "PATH") -> Part:
    """The ``k`` columns of a table file that share the most (idf-weighted) words with ``question`` in
    their name, description and samples, in table order, then the first ones when fewer match."""
    doc = formats.parse(text, fmt)
    cols = doc["columns"]
    total = len(cols)
    q = set(tokens(question))
    bags = [
        set(
            tokens(
                " ".join(
                    [
                        short_name(c["column"], doc["table"]),
                        c.get("description") or "",
                        " ".join(str(s) for s in c.get("samples") or []),
                    ]
                )
            )
        )
        for c in cols
    ]
    df: Counter[str] = Counter(t for b in bags for t in b & q)
    score = [sum(math.log(1 + total / df[t]) for t in b & q) for b in bags]
    ranked = sorted((i for i in range(total) if score[i] > 0), key=lambda i: -score[i])[:k]
    hits = len(ranked)
    taken = set(ranked)
    fill = [i for i in range(total) if i not in taken][: max(0, k - hits)]
    keep = sorted(ranked + fill)
    note = (
        f"# lakeql: {len(keep)} of {total} columns shown: {hits} sharing words with the question"
        + (f", then the first {len(fill)}" if fill else "")
        + f"; read_schema({path!r}, columns='word') finds others, offset/limit pages through all."
    )
    return Part(_render(doc, [cols[i] for i in keep], fmt, note), total, len(keep), None)
