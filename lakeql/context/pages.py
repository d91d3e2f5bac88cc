"""Parts of a wide table's schema file: a page of columns, the columns matching a name filter, or the
columns relevant to a question.

A table file stays complete on disk (the source of truth); an agent reads a 1,500-column table in pages
(``offset``/``limit``) or by column name (``columns``: comma-separated patterns, ``*``/``?`` wildcards,
else a case-insensitive substring), and ``schema_context`` returns the columns that share words with the
question instead of the first ones. Every part is the same format as the file and parses as it (back
with :func:`lakeql.context.formats.parse` too), with a note saying what was shown and how to get the
rest: a trailing ``# lakeql: ...`` line in YAML (a comment) and Markdown (a heading), a last top-level
field ``"lakeql_page": "..."`` in JSON and TOON (which have no comments), so a page stays a valid
document; :func:`note_of` reads it back in any format.

Patterns are matched with :func:`fnmatch.fnmatchcase` (no regular expression from the caller; Python's
translation cannot backtrack catastrophically) on lower-cased names of at most 200 characters, and are
capped at :data:`MAX_PATTERNS` patterns of :data:`MAX_PATTERN_CHARS` characters.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections import Counter
from dataclasses import dataclass

from lakeql.context import formats
from lakeql.context.text import tokens
from lakeql.errors import LakeqlError

PAGE_COLUMNS = 200  # columns per page when a table file is too long to show whole
RELEVANT_COLUMNS = 40  # columns schema_context keeps of a table file over the byte budget
MAX_PATTERNS = 20
MAX_PATTERN_CHARS = 200
NOTE_PREFIX = "# lakeql: "  # the note line of a YAML or Markdown part
NOTE_FIELD = "lakeql_page"  # the note field of a JSON or TOON part (formats.parse drops it)


@dataclass
class Part:
    text: str  # the part, in the file's format, with a note (with_note) when not every column is shown
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


_YAML_QUOTED_KEY = re.compile(r'  ("(?:[^"\\]|\\.)*"): \{')


class _YamlLines:
    """A YAML table file as its header lines and one line per column (what :func:`formats.write_yaml`
    writes), so a page of a 10,000-column file is a slice of lines: parsing the whole file with PyYAML
    took ~20 s. Only the header and quoted column names go through ``yaml.safe_load``."""

    def __init__(self, text: str) -> None:
        import yaml

        lines = text.split("\n")
        at = lines.index("columns:")
        self.header = lines[: at + 1]
        self.lines = [ln for ln in lines[at + 1 :] if ln]
        if not all(ln.startswith("  ") and ln.endswith("}") for ln in self.lines):
            raise ValueError("not one line per column")
        head = yaml.safe_load("\n".join(self.header[:-1])) or {}
        self.table = str(head.get("table", ""))
        self.names = []
        for ln in self.lines:
            m = _YAML_QUOTED_KEY.match(ln)
            self.names.append(str(yaml.safe_load(m.group(1))) if m else ln[2:].split(": {", 1)[0])

    def text(self, keep: list[int]) -> str:
        return "\n".join(self.header + [self.lines[i] for i in keep]) + "\n"


def _yaml_lines(text: str, fmt: str) -> _YamlLines | None:
    if fmt != "yaml":
        return None
    try:
        return _YamlLines(text)
    except Exception:  # noqa: BLE001 - not the layout write_yaml writes: parse it whole
        return None


def with_note(text: str, fmt: str, note: str) -> str:
    """``text`` (a part in ``fmt``) with the note ``note`` (no ``# lakeql:`` prefix) where the format
    keeps it valid: a comment/heading line in YAML and Markdown, a last top-level field in JSON and TOON."""
    if fmt == "json":
        body = text.rstrip()
        if not body.endswith("}"):
            raise ValueError("not a JSON object")
        return f"{body[:-1].rstrip()},\n  {json.dumps(NOTE_FIELD)}: {json.dumps(note)}\n}}\n"
    if fmt == "toon":
        from toon_format import encode

        return text.rstrip("\n") + "\n" + encode({NOTE_FIELD: note}) + "\n"
    return text + "\n" + NOTE_PREFIX + note + "\n"


def note_of(text: str, fmt: str) -> str | None:
    """The note of a part written by :func:`page` or :func:`relevant` (None when it has none)."""
    if fmt in ("json", "toon"):
        if fmt == "json":
            doc = json.loads(text)
        else:
            from toon_format import decode

            doc = decode(text.rstrip("\n"))
        note = doc.get(NOTE_FIELD) if isinstance(doc, dict) else None
        return note if isinstance(note, str) else None
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    return last[len(NOTE_PREFIX) :] if last.startswith(NOTE_PREFIX) else None


def _columns(text: str, fmt: str):
    """(names, bags-of-text, render) of a table file: the short column names, per column the text its
    relevance is scored on, and ``render(indexes)`` giving a part in the file's format."""
    fast = _yaml_lines(text, fmt)
    if fast is not None:
        names = [short_name(n, fast.table) for n in fast.names]
        # a column line holds its name, description and samples (plus field names every line shares)
        return names, (lambda: fast.lines), fast.text
    doc = formats.parse(text, fmt)
    cols = doc["columns"]
    names = [short_name(c["column"], doc["table"]) for c in cols]

    def texts() -> list[str]:
        return [
            " ".join([n, c.get("description") or "", " ".join(str(v) for v in c.get("samples") or [])])
            for n, c in zip(names, cols, strict=True)
        ]

    return names, texts, lambda keep: formats.render({**doc, "columns": [cols[i] for i in keep]}, fmt)


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
    pats = patterns_of(columns) if columns is not None else None
    names, _, render = _columns(text, fmt)
    total = len(names)
    idx = list(range(total))
    what = "columns"
    if pats is not None:
        idx = [i for i in idx if matches(names[i], pats)]
        what = f"columns matching {columns!r}"
    limit = PAGE_COLUMNS if limit is None else limit
    chosen = idx[offset : offset + limit]
    end = offset + len(chosen)
    nxt = end if end < len(idx) else None
    if columns is None and offset == 0 and nxt is None:
        return Part(text, total, total, None)  # the whole file, as it is
    arg = "" if columns is None else f", columns={columns!r}"
    note = (
        f"{what} {offset + 1 if chosen else 0}-{end} of {len(idx)}"
        + (f" (the table has {total})" if columns is not None else "")
        + (f"; next page: read_schema({path!r}, offset={nxt}{arg})" if nxt is not None else "; no more")
        + (", or pass columns='word' (a name part or *glob*)" if columns is None else "")
        + "."
    )
    return Part(with_note(render(chosen), fmt, note), total, len(chosen), nxt)


def relevant(text: str, fmt: str, question: str, k: int = RELEVANT_COLUMNS, path: str = "PATH") -> Part:
    """The ``k`` columns of a table file that share the most (idf-weighted) words with ``question`` in
    their name, description and samples, in table order, then the first ones when fewer match."""
    names, texts, render = _columns(text, fmt)
    total = len(names)
    q = set(tokens(question))
    bags = [set(tokens(t)) & q for t in texts()]
    df: Counter[str] = Counter(t for b in bags for t in b)
    score = [sum(math.log(1 + total / df[t]) for t in b) for b in bags]
    ranked = sorted((i for i in range(total) if score[i] > 0), key=lambda i: -score[i])[:k]
    hits = len(ranked)
    taken = set(ranked)
    fill = [i for i in range(total) if i not in taken][: max(0, k - hits)]
    keep = sorted(ranked + fill)
    note = (
        f"{len(keep)} of {total} columns shown: {hits} sharing words with the question"
        + (f", then the first {len(fill)}" if fill else "")
        + f"; read_schema({path!r}, columns='word') finds others, offset/limit pages through all."
    )
    return Part(with_note(render(keep), fmt, note), total, len(keep), None)
