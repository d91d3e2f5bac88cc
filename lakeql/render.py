"""Render query results as the duckdb shell does: box tables, CSV, JSON, Markdown, line and list modes."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import shutil
from collections.abc import Sequence
from typing import Any, TextIO

MODES = ("box", "csv", "json", "markdown", "line", "list")
MAX_ROWS = 40  # like duckdb's box mode: first and last rows beyond this
MAX_CELL = 60


def cell_text(value: Any) -> str:
    """How a value is shown in a table cell (NULL as 'NULL', newlines escaped)."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes | bytearray):
        return "\\x" + bytes(value[:32]).hex() + ("…" if len(value) > 32 else "")
    text = str(value)
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def render_box(columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]],
               out: TextIO, width: int | None = None) -> None:
    """A box table with a header of names and types; long results show the first and last rows."""
    total = len(rows)
    shown = list(rows)
    elided = False
    if total > MAX_ROWS:
        shown = list(rows[: MAX_ROWS // 2]) + list(rows[-MAX_ROWS // 2:])
        elided = True
    term = width or shutil.get_terminal_size((120, 24)).columns
    cap = max(8, min(MAX_CELL, (term - 1) // max(len(columns), 1) - 3))
    cells = [[_clip(cell_text(v), cap) for v in r] for r in shown]
    heads = [_clip(c, cap) for c in columns]
    tys = [_clip(t.lower(), cap) for t in types]
    widths = [max([len(heads[i]), len(tys[i])] + [len(r[i]) for r in cells]) for i in range(len(columns))]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(vals: Sequence[str], align_right: Sequence[bool] | None = None) -> str:
        parts = []
        for i, v in enumerate(vals):
            parts.append(" " + (v.rjust(widths[i]) if align_right and align_right[i] else v.ljust(widths[i]))
                         + " ")
        return "│" + "│".join(parts) + "│"

    numeric = [t.upper().split("(")[0] in _NUMERIC for t in types]
    print(line("┌", "┬", "┐"), file=out)
    print(row(heads), file=out)
    print(row(tys), file=out)
    print(line("├", "┼", "┤"), file=out)
    half = MAX_ROWS // 2
    for i, r in enumerate(cells):
        if elided and i == half:
            print(row(["·"] * len(columns)), file=out)
        print(row(r, numeric), file=out)
    print(line("└", "┴", "┘"), file=out)
    if elided:
        print(f"{total} rows ({len(shown)} shown)", file=out)
    elif total != 1:
        print(f"{total} rows", file=out) if total else print("0 rows", file=out)


_NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL"}


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, bytes | bytearray):
        return bytes(v).hex()
    return str(v)


def render(columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], mode: str,
           out: TextIO) -> None:
    """Write rows in one of :data:`MODES` (``table`` is an alias of ``box``)."""
    mode = "box" if mode == "table" else mode
    if mode == "box":
        render_box(columns, types, rows, out)
    elif mode == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        w.writerows([["" if v is None else v for v in r] for r in rows])
    elif mode == "json":
        json.dump([dict(zip(columns, r, strict=True)) for r in rows], out, default=_json_default,
                  ensure_ascii=False)
        out.write("\n")
    elif mode == "markdown":
        print("| " + " | ".join(columns) + " |", file=out)
        print("|" + "|".join("---" for _ in columns) + "|", file=out)
        for r in rows:
            print("| " + " | ".join(cell_text(v).replace("|", "\\|") for v in r) + " |", file=out)
    elif mode == "line":
        wid = max((len(c) for c in columns), default=0)
        for i, r in enumerate(rows):
            if i:
                print(file=out)
            for c, v in zip(columns, r, strict=True):
                print(f"{c.rjust(wid)} = {cell_text(v)}", file=out)
    elif mode == "list":
        print("|".join(columns), file=out)
        for r in rows:
            print("|".join(cell_text(v) for v in r), file=out)
    else:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")


def print_result(cur: Any, mode: str, out: TextIO) -> None:
    """Fetch a DuckDB result and render it."""
    columns = [d[0] for d in cur.description]
    types = [str(d[1]) for d in cur.description]
    rows = cur.fetchall()
    render(columns, types, rows, mode, out)
