"""Render query results as the duckdb shell does: box tables, CSV, JSON, NDJSON, Markdown, line and list.

Results are fetched in batches, so CSV/JSON/NDJSON of a large result stream in constant memory and a box
table keeps only the rows it shows. Cells are clipped to the terminal only when the output *is* a
terminal: piped or redirected output is never cut. JSON output is always valid JSON: NaN and infinities
become ``null``, dates and times ISO 8601 strings, blobs hex strings, exact decimals numbers.
Control characters in values are escaped so a hostile cell cannot drive the terminal.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import decimal
import json
import math
import re
import shutil
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

MODES = ("box", "csv", "json", "ndjson", "markdown", "line", "list")
ALIASES = {"table": "box", "duckbox": "box", "jsonlines": "ndjson"}
MAX_ROWS = 40  # like duckdb's box mode: first and last rows beyond this
MAX_CELL = 60  # widest cell on a terminal
BATCH = 2048
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL"}


def mode_name(name: str) -> str | None:
    """The canonical mode for ``name`` (``table``/``duckbox`` -> ``box``), or None if unknown."""
    low = name.strip().lower()
    low = ALIASES.get(low, low)
    return low if low in MODES else None


@dataclass
class Options:
    """How to render: ``headers`` (column names in csv/list/box), ``max_rows`` shown in a box (0 = all),
    ``is_tty`` (clip cells to the terminal; None = ask the output stream)."""

    headers: bool = True
    max_rows: int = MAX_ROWS
    is_tty: bool | None = None


def escape_controls(text: str) -> str:
    """``text`` with control characters (escape sequences, carriage returns, ...) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def cell_text(value: Any, compact: bool = True) -> str:
    """How a value is shown in a table cell (NULL as 'NULL', newlines and control characters escaped).

    ``compact`` (a box on a terminal): floats to 6 significant digits, blobs cut at 32 bytes; otherwise
    floats are exact (shortest round-trip) and blobs whole."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}" if compact else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if compact and len(raw) > 32:
            return "\\x" + raw[:32].hex() + "…"
        return "\\x" + raw.hex()
    text = str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return escape_controls(text)


def csv_value(value: Any) -> Any:
    """A value as csv.writer should see it: NULL empty, blobs as ``\\x`` hex, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(json_value(value), ensure_ascii=False, allow_nan=False)
    return value


def _iso_duration(td: dt.timedelta) -> str:
    sign = "-" if td < dt.timedelta(0) else ""
    td = abs(td)
    secs = td.seconds + td.microseconds / 1e6
    return f"{sign}P{td.days}DT{secs:g}S"


def json_value(value: Any) -> Any:
    """``value`` as plain JSON data (recursively): NaN/Inf -> None, dates -> ISO strings, blobs -> hex."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        as_float = float(value)
        # a number when the float says exactly the same, else the exact digits as a string
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _iso_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {_json_key(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_value(value.tolist())
    return str(value)


def _json_key(key: Any) -> str:
    key = json_value(key)
    return key if isinstance(key, str) else json.dumps(key)


def dumps(value: Any) -> str:
    """One line of valid JSON (``allow_nan=False``: anything not converted fails loudly)."""
    return json.dumps(json_value(value), ensure_ascii=False, allow_nan=False)


def _clip(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 1)] + "…"


def render_box(columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]],
               out: TextIO, width: int | None = None, *, max_rows: int = MAX_ROWS,
               headers: bool = True) -> None:
    """A box table with a header of names and types; beyond ``max_rows`` rows the first and last
    halves are shown. ``width``: the terminal width to fit (None: no clipping, for pipes and files)."""
    head: list[Sequence[Any]] = []
    half = max_rows // 2 if max_rows > 0 else 0
    tail: collections.deque = collections.deque(maxlen=max(max_rows - half, 1))
    total = 0
    for r in rows:
        if max_rows <= 0 or total < half:
            head.append(r)
        else:
            tail.append(r)
        total += 1
    elided = max_rows > 0 and total > max_rows
    shown = head + list(tail)
    cap = None
    if width is not None:
        cap = max(8, min(MAX_CELL, (width - 1) // max(len(columns), 1) - 3))
    cells = [[_clip(cell_text(v, compact=width is not None), cap) for v in r] for r in shown]
    heads = [_clip(escape_controls(c), cap) for c in columns]
    tys = [_clip(t.lower(), cap) for t in types]
    widths = [max(([len(heads[i]), len(tys[i])] if headers else [1]) + [len(r[i]) for r in cells])
              for i in range(len(columns))]
    numeric = [t.upper().split("(")[0] in _NUMERIC for t in types]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(vals: Sequence[str], align_right: Sequence[bool] | None = None) -> str:
        parts = [" " + (v.rjust(widths[i]) if align_right and align_right[i] else v.ljust(widths[i])) + " "
                 for i, v in enumerate(vals)]
        return "│" + "│".join(parts) + "│"

    print(line("┌", "┬", "┐"), file=out)
    if headers:
        print(row(heads), file=out)
        print(row(tys), file=out)
        print(line("├", "┼", "┤"), file=out)
    for i, r in enumerate(cells):
        if elided and i == half:
            print(row(["·"] * len(columns)), file=out)
        print(row(r, numeric), file=out)
    print(line("└", "┴", "┘"), file=out)
    if elided:
        print(f"{total} rows ({len(shown)} shown)", file=out)
    elif total != 1:
        print(f"{total} rows", file=out)


def _stream(rows: Iterable[Sequence[Any]], columns: Sequence[str], mode: str, out: TextIO,
            headers: bool) -> None:
    if mode == "csv":
        w = csv.writer(out, lineterminator="\n")
        if headers:
            w.writerow(columns)
        for r in rows:
            w.writerow([csv_value(v) for v in r])
    elif mode == "json":
        out.write("[")
        for i, r in enumerate(rows):
            out.write(("," if i else "") + dumps(dict(zip(columns, r, strict=True))))
        out.write("]\n")
    elif mode == "ndjson":
        for r in rows:
            out.write(dumps(dict(zip(columns, r, strict=True))) + "\n")
    elif mode == "markdown":
        print("| " + " | ".join(escape_controls(c).replace("|", "\\|") for c in columns) + " |", file=out)
        print("|" + "|".join("---" for _ in columns) + "|", file=out)
        for r in rows:
            print("| " + " | ".join(cell_text(v, False).replace("|", "\\|") for v in r) + " |", file=out)
    elif mode == "line":
        wid = max((len(c) for c in columns), default=0)
        for i, r in enumerate(rows):
            if i:
                print(file=out)
            for c, v in zip(columns, r, strict=True):
                print(f"{escape_controls(c).rjust(wid)} = {cell_text(v, False)}", file=out)
    elif mode == "list":
        if headers:
            print("|".join(escape_controls(c) for c in columns), file=out)
        for r in rows:
            print("|".join(cell_text(v, False) for v in r), file=out)


def _is_tty(out: TextIO) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def render(columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]], mode: str,
           out: TextIO, options: Options | None = None) -> None:
    """Write rows in one of :data:`MODES` (or an alias of one: ``table``, ``duckbox``, ``jsonlines``)."""
    opts = options or Options()
    canonical = mode_name(mode)
    if canonical is None:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if canonical == "box":
        tty = _is_tty(out) if opts.is_tty is None else opts.is_tty
        width = shutil.get_terminal_size((120, 24)).columns if tty else None
        render_box(columns, types, rows, out, width, max_rows=opts.max_rows, headers=opts.headers)
    else:
        _stream(rows, columns, canonical, out, opts.headers)


def fetch_batches(cur: Any, size: int = BATCH) -> Iterator[tuple]:
    """Every row of a DuckDB result, fetched ``size`` at a time."""
    while True:
        batch = cur.fetchmany(size)
        if not batch:
            return
        yield from batch


def float32_value(value: Any) -> Any:
    """A FLOAT (single precision) value as the shortest decimal that reads back as the same float32,
    as DuckDB's CLI prints it (Python widens it to a double: ``0.634`` would show as
    ``0.6340000033378601``)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        short = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", short))[0] == value:
            return short
    return value


def _with_float32(rows: Iterable[Sequence[Any]], types: Sequence[str]) -> Iterable[Sequence[Any]]:
    singles = [i for i, t in enumerate(types) if t.upper() in ("FLOAT", "FLOAT4", "REAL")]
    if not singles:
        return rows
    return (tuple(float32_value(v) if i in singles else v for i, v in enumerate(r)) for r in rows)


def print_result(cur: Any, mode: str, out: TextIO, options: Options | None = None) -> None:
    """Fetch a DuckDB result (in batches) and render it."""
    columns = [d[0] for d in cur.description]
    types = [str(d[1]) for d in cur.description]
    render(columns, types, _with_float32(fetch_batches(cur), types), mode, out, options)


def show(con, sql: str, out: TextIO, title: str = "") -> None:
    """Print a titled SQL statement and its result as a box table."""
    if title:
        print(f"\n== {title}", file=out)
    print(f"lakeql> {sql}", file=out)
    print_result(con.execute(sql), "box", out)
