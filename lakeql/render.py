"""Render query results as the duckdb shell does: box tables, CSV, JSON, NDJSON, Markdown, line and list.

Results are fetched in batches, so CSV/JSON/NDJSON of a large result stream in constant memory and a box
table keeps only the rows it shows. Cells are clipped to the terminal only when the output *is* a
terminal: piped or redirected output is never cut. JSON output is always valid JSON: NaN and infinities
become ``null``, dates and times ISO 8601 strings, blobs hex strings, exact decimals numbers.
An INTERVAL (a column, or inside a LIST/STRUCT/MAP) is shown as DuckDB writes it (``1 month 2 days``;
DuckDB's Python values would count a month as 30 days) and is an exact ISO 8601 duration in JSON
(``P1M2D``): see :class:`Interval` and :func:`result_rows`. A TIMESTAMP_NS or TIME_NS column is shown as
DuckDB writes it (``2023-11-14 22:13:20.123456789``: Python's datetime would drop the nanoseconds).
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
import unicodedata
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
    if isinstance(value, decimal.Decimal):  # DuckDB's digits: 0.0000000000, not Python's 0E-10
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if compact and len(raw) > 32:
            return "\\x" + raw[:32].hex() + "…"
        return "\\x" + raw.hex()
    text = str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return escape_controls(text)


class Interval:
    """An INTERVAL value as DuckDB keeps it: ``months``, ``days`` and ``micros``, each with its own sign.

    ``str()`` is DuckDB's own text (``CAST(... AS VARCHAR)``: ``1 year 2 months -3 days 04:05:06.5``);
    :meth:`iso` an exact ISO 8601 duration, PostgreSQL's ``iso_8601`` style (each part signed:
    ``P1Y2M-3DT4H5M6.5S``, zero ``PT0S``)."""

    __slots__ = ("months", "days", "micros")

    def __init__(self, months: int, days: int, micros: int) -> None:
        self.months, self.days, self.micros = months, days, micros

    @classmethod
    def from_arrow(cls, value: Any) -> Interval | None:
        """From pyarrow's ``MonthDayNano`` (DuckDB exports micros * 1000: exact)."""
        if value is None:
            return None
        months, days, nanos = value
        return cls(int(months), int(days), int(nanos) // 1000 if nanos >= 0 else -(-int(nanos) // 1000))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Interval) and (self.months, self.days, self.micros) == (
            other.months, other.days, other.micros)

    def __hash__(self) -> int:
        return hash((self.months, self.days, self.micros))

    def __repr__(self) -> str:  # inside a nested value's text: ``[1 month, None]``
        return str(self)

    def _parts(self) -> tuple[int, int, int, int, int, int, int]:
        """(years, months, days, hours, minutes, seconds, micros): years and months truncated toward
        zero as DuckDB does (-14 months: -1 year -2 months); the time parts share the micros' sign."""
        sign = -1 if self.months < 0 else 1
        years, months = divmod(abs(self.months), 12)
        tsign = -1 if self.micros < 0 else 1
        rest = abs(self.micros)
        hours, rest = divmod(rest, 3_600_000_000)
        minutes, rest = divmod(rest, 60_000_000)
        seconds, micros = divmod(rest, 1_000_000)
        return (sign * years, sign * months, self.days, tsign * hours, tsign * minutes, tsign * seconds,
                tsign * micros)

    def __str__(self) -> str:
        years, months, days, *_ = self._parts()
        out = [f"{n} {unit}" + ("" if abs(n) == 1 else "s")
               for n, unit in ((years, "year"), (months, "month"), (days, "day")) if n]
        if self.micros:
            rest = abs(self.micros)
            hours, rest = divmod(rest, 3_600_000_000)
            minutes, rest = divmod(rest, 60_000_000)
            seconds, micros = divmod(rest, 1_000_000)
            text = f"{'-' if self.micros < 0 else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
            out.append(text + (f".{micros:06d}".rstrip("0") if micros else ""))
        return " ".join(out) or "00:00:00"

    def iso(self) -> str:
        years, months, days, hours, minutes, seconds, micros = self._parts()
        date = "".join(f"{n}{u}" for n, u in ((years, "Y"), (months, "M"), (days, "D")) if n)
        time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M")) if n)
        if seconds or micros:
            secs = f"{'-' if self.micros < 0 else ''}{abs(seconds)}"
            time += secs + (f".{abs(micros):06d}".rstrip("0") if micros else "") + "S"
        if not date and not time:
            return "PT0S"
        return "P" + date + ("T" + time if time else "")


def csv_value(value: Any) -> Any:
    """A value as csv.writer should see it: NULL empty, blobs as ``\\x`` hex, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
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
    if isinstance(value, NanoText):
        return value.iso()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        as_float = float(value)
        # a number when the float says exactly the same, else the exact digits as a string
        return as_float if decimal.Decimal(repr(as_float)) == value else format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Interval):
        return value.iso()
    if isinstance(value, dt.timedelta):  # DuckDB's Python value of an INTERVAL (months as 30 days)
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


def _char_width(ch: str) -> int:
    """Terminal columns of one character: 0 for combining marks and format characters (ZWJ, variation
    selectors), 2 for East Asian wide and fullwidth ones (CJK, most emoji), 1 otherwise."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """The columns ``text`` takes on a terminal (``len`` for ASCII): what box tables pad and clip to. An
    emoji ZWJ sequence (``👨\u200d👩\u200d👧``) is one glyph: an emoji after a ZWJ, or a skin tone after an
    emoji, takes no column; a variation selector 16 makes the symbol before it an emoji, two columns
    wide. (Terminals differ on these; this is what current ones show.)"""
    if text.isascii():
        return len(text)
    return sum(_columns(text))


def _columns(text: str) -> Iterator[int]:
    """The columns each character of ``text`` adds (:func:`text_width` is their sum; :func:`_clip` stops
    where they pass its room)."""
    last, joined = 0, False
    for ch in text:
        if joined:
            joined = False
            if _char_width(ch) == 2 and last == 2:  # the next emoji of the sequence
                yield 0
                continue
        if "\U0001f3fb" <= ch <= "\U0001f3ff" and last == 2:  # a skin tone on the emoji before it
            yield 0
            continue
        if ch == "\u200d":
            joined = True
        elif ch == "\ufe0f" and last == 1:
            last = 2
            yield 1
            continue
        w = _char_width(ch)
        if w:
            last = w
        yield w


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(width - text_width(text), 0)
    return fill + text if right else text + fill


def _clip(text: str, width: int | None) -> str:
    if width is None or text_width(text) <= width:
        return text
    room, used, kept = max(width - 1, 1), 0, 0
    for w in _columns(text):  # as text_width counts: a VS16 symbol is 2 columns, a joined emoji 0 more
        used += w
        if used > room:
            break
        kept += 1
    return text[:kept] + "…"


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
    widths = [max(([text_width(heads[i]), text_width(tys[i])] if headers else [1])
                  + [text_width(r[i]) for r in cells]) for i in range(len(columns))]
    numeric = [t.upper().split("(")[0] in _NUMERIC for t in types]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(vals: Sequence[str], align_right: Sequence[bool] | None = None) -> str:
        parts = [" " + _pad(v, widths[i], bool(align_right and align_right[i])) + " "
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
        wid = max((text_width(escape_controls(c)) for c in columns), default=0)
        for i, r in enumerate(rows):
            if i:
                print(file=out)
            for c, v in zip(columns, r, strict=True):
                print(f"{_pad(escape_controls(c), wid, right=True)} = {cell_text(v, False)}", file=out)
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


def result_rows(cur: Any, types: Sequence[str] | None = None, size: int = BATCH) -> Iterator[tuple]:
    """Every row of a DuckDB result (``types``: its column types, default from ``cur.description``), as
    :func:`fetch_batches` gives them, except that INTERVAL values (columns, or inside LIST/STRUCT/MAP
    values) are :class:`Interval` (DuckDB's Python conversion would count a month as 30 days).

    Such a result is read once, as Arrow batches (intervals exact there); its columns without intervals
    are given back to DuckDB (an in-memory connection, the session's time zone) so they are the same
    Python values as ever. A result without INTERVAL columns costs one look at its types."""
    if types is None:
        types = [str(d[1]) for d in cur.description or []]
    if not any("INTERVAL" in t.upper() or t.upper() in _NANOS for t in types):
        yield from fetch_batches(cur, size)
        return
    yield from _rows_through_arrow(cur, types, size)


# nanosecond types: DuckDB's Python values (datetime, time) drop the nanoseconds, so three distinct values
# 1, 2 and 3 ns past a second all showed as '00:00:00'; shown as DuckDB writes them (its VARCHAR cast)
_NANOS = frozenset({"TIMESTAMP_NS", "TIME_NS"})


class NanoText(str):
    """A TIMESTAMP_NS / TIME_NS value as DuckDB writes it; ISO 8601 (``T`` between date and time) in JSON."""

    __slots__ = ()

    def iso(self) -> str:
        return self.replace(" ", "T", 1)


def _type_find(typ: Any, pick: Any) -> Any:
    """The first non-None ``pick(t)`` over the Arrow type ``typ`` and every type inside it (map keys and
    items, list values, struct and union fields), depth first; None when there is none."""
    import pyarrow as pa

    got = pick(typ)
    if got is not None:
        return got
    if pa.types.is_map(typ):
        inner = [typ.key_type, typ.item_type]
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        inner = [typ.value_type]
    elif pa.types.is_struct(typ) or pa.types.is_union(typ):
        inner = [typ.field(i).type for i in range(typ.num_fields)]
    else:
        inner = []
    return next((z for t in inner if (z := _type_find(t, pick)) is not None), None)


def _has_interval(typ: Any) -> bool:
    """Whether the Arrow type ``typ`` is or holds an interval."""
    import pyarrow as pa

    return _type_find(typ, lambda t: True if pa.types.is_interval(t) else None) is not None


def _has_union(typ: Any) -> bool:
    """Whether the Arrow type ``typ`` is or holds a union (pyarrow's Python values of a union do not say
    which member a value is: such values are converted from pyarrow's scalars, :func:`_from_scalar`)."""
    import pyarrow as pa

    return _type_find(typ, lambda t: True if pa.types.is_union(t) else None) is not None


def _zone_of(typ: Any) -> str | None:
    """The time zone of a TIMESTAMPTZ in the Arrow type ``typ`` (a column, or a value in a LIST, ARRAY,
    STRUCT, MAP or UNION), else None."""
    import pyarrow as pa

    return _type_find(typ, lambda t: (t.tz or None) if pa.types.is_timestamp(t) else None)


def _pairs_value(pairs: list[tuple[Any, Any]]) -> Any:
    """A MAP's Python value from its (key, value) pairs: a dict, or DuckDB's own shape for unhashable keys."""
    try:
        return dict(pairs)
    except TypeError:  # unhashable keys (a LIST): DuckDB's own shape for such a MAP
        return {"key": [k for k, _ in pairs], "value": [v for _, v in pairs]}


def _from_scalar(scalar: Any, typ: Any, leaf: Any = None) -> Any:
    """:func:`_nested` for a pyarrow scalar (used for values that hold a UNION: its member's type is
    known only from the scalar's type code)."""
    import pyarrow as pa

    if scalar is None or not scalar.is_valid:
        return None
    if pa.types.is_union(typ):
        member = typ.field(typ.type_codes.index(scalar.type_code)).type
        return _from_scalar(scalar.value, member, leaf)
    if pa.types.is_interval(typ):
        return Interval.from_arrow(scalar.as_py())
    if pa.types.is_map(typ):
        entries = scalar.values
        if entries is None:
            return {}
        keys, items = entries.field(0), entries.field(1)
        return _pairs_value([(_from_scalar(k, typ.key_type, leaf), _from_scalar(v, typ.item_type, leaf))
                             for k, v in zip(keys, items, strict=True)])
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        values = [_from_scalar(v, typ.value_type, leaf) for v in scalar.values]
        return tuple(values) if pa.types.is_fixed_size_list(typ) else values
    if pa.types.is_struct(typ):
        return {typ.field(i).name: _from_scalar(scalar[i], typ.field(i).type, leaf)
                for i in range(typ.num_fields)}
    value = scalar.as_py()
    if leaf is not None and isinstance(typ, pa.BaseExtensionType) and isinstance(value, bytes):
        return leaf(value, typ)
    return value


def _nested(value: Any, typ: Any, leaf: Any = None) -> Any:
    """pyarrow's Python value of a nested type holding intervals, with :class:`Interval` leaves and MAPs
    as dicts (as DuckDB's own Python values have them). ``leaf(value, typ)`` gives a DuckDB extension
    type's value (TIMETZ, HUGEINT, BIT, ... under ``arrow_lossless_conversion``: pyarrow has its bytes)."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_interval(typ):
        return Interval.from_arrow(value)
    if pa.types.is_map(typ):
        pairs = [(_nested(k, typ.key_type, leaf), _nested(v, typ.item_type, leaf)) for k, v in value]
        return _pairs_value(pairs)
    if pa.types.is_fixed_size_list(typ):  # an ARRAY: a tuple, as DuckDB's own Python value
        return tuple(_nested(v, typ.value_type, leaf) for v in value)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return [_nested(v, typ.value_type, leaf) for v in value]
    if pa.types.is_struct(typ):
        fields = [typ.field(i) for i in range(typ.num_fields)]
        return {f.name: _nested(value.get(f.name), f.type, leaf) for f in fields}
    # an extension type pyarrow does not know (DuckDB's arrow.opaque: HUGEINT, TIMETZ, BIT, ...) gives its
    # storage bytes; one it knows gives its value (arrow.uuid a UUID, arrow.bool8 a bool: not read back)
    if leaf is not None and isinstance(typ, pa.BaseExtensionType) and isinstance(value, bytes):
        return leaf(value, typ)
    return value


class _Leaf:
    """A DuckDB extension-type leaf of a nested value (TIMETZ, HUGEINT, BIT, ... under
    ``arrow_lossless_conversion``: pyarrow has its bytes), filled in when DuckDB read back every leaf of
    its type in the batch at once (:class:`_Leaves`)."""

    __slots__ = ("value",)


class _Leaves:
    """The extension-type leaves of one Arrow batch's nested values: collected by :func:`_nested`, then
    read back by DuckDB with one query per leaf type (not one per value: 20,000 rows of a STRUCT of a
    HUGEINT and an INTERVAL cost 37 CPU s that way)."""

    def __init__(self) -> None:
        self.by_type: dict[Any, tuple[list[Any], list[_Leaf]]] = {}

    def __call__(self, value: Any, typ: Any) -> _Leaf:
        raw, slots = self.by_type.setdefault(typ, ([], []))
        slot = _Leaf()
        raw.append(value)
        slots.append(slot)
        return slot

    def fill(self, conv: Any) -> bool:
        """Read every collected leaf back with DuckDB (``conv``); False when there was none."""
        import pyarrow as pa

        if not self.by_type:
            return False
        for typ, (raw, slots) in self.by_type.items():
            arr = pa.ExtensionArray.from_storage(typ, pa.array(raw, typ.storage_type))
            conv.register("__lakeql_leaf", pa.table({"v": arr}))
            try:
                got = conv.execute("SELECT v FROM __lakeql_leaf").fetchall()
            finally:
                conv.unregister("__lakeql_leaf")
            for slot, (v,) in zip(slots, got, strict=True):
                slot.value = v
        self.by_type.clear()
        return True


def _filled(value: Any) -> Any:
    """``value`` (a nested value from :func:`_nested`) with its :class:`_Leaf` slots replaced by values."""
    if isinstance(value, _Leaf):
        return value.value
    if isinstance(value, dict):
        return {_filled(k): _filled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_filled(v) for v in value)
    return value


def keep_arrow_exact(con: Any) -> None:
    """Have ``con``'s Arrow exports keep TIME WITH TIME ZONE (and HUGEINT, UUID, BIT) exact, as DuckDB
    extension types, for the front ends that render results (``lakeql sql``, the shell, MCP): a result
    with an INTERVAL or nanosecond column is read as Arrow (:func:`result_rows`), where a TIMETZ lost its
    offset (``12:00:00+02`` shown ``12:00:00``). A database-wide setting, costing nothing to other
    results (fetched as DuckDB's Python values)."""
    con.execute("SET arrow_lossless_conversion = true")


def _bit_text(raw: Any) -> str | None:
    """DuckDB's BIT as Arrow exports it (a padding byte, then the bits) -> its ``'0101'`` text."""
    if raw is None:
        return None
    raw = bytes(raw)
    return "".join(f"{b:08b}" for b in raw[1:])[raw[0]:] if raw else ""


def _rows_through_arrow(cur: Any, types: Sequence[str], size: int) -> Iterator[tuple]:
    import warnings

    import duckdb
    import pyarrow as pa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Arrow output on a DB-API result makes an extra copy": fine here
        reader = cur.to_arrow_reader(size)
    back = {"UUID", "HUGEINT", "UHUGEINT"}  # Arrow has no such type: DuckDB casts them back
    conv = None
    try:
        for batch in reader:
            cols: list[list[Any]] = [[]] * batch.num_columns
            intervals = [i for i, f in enumerate(batch.schema) if _has_interval(f.type)]
            others = [i for i in range(batch.num_columns) if i not in intervals]
            if conv is None:
                conv = duckdb.connect()
                tz = next((z for f in batch.schema if (z := _zone_of(f.type))), None)
                if tz:  # TIMESTAMPTZ values in the session's zone, as its own fetch gives them
                    conv.execute("SET TimeZone = ?", [tz])
            leaves = _Leaves()
            for i in intervals:  # intervals, and values that hold some (their other leaves as pyarrow's)
                typ = batch.schema.field(i).type
                if _has_union(typ):  # which member a value is: known only from its scalar
                    cols[i] = [_from_scalar(v, typ, leaves) for v in batch.column(i)]
                else:
                    cols[i] = [_nested(v, typ, leaves) for v in batch.column(i).to_pylist()]
            if leaves.fill(conv):  # DuckDB extension types inside them: read back, one query per type
                for i in intervals:
                    cols[i] = [_filled(v) for v in cols[i]]
            # BIT: its raw bytes, unless exported as DuckDB's extension type (which reads back as text)
            bits = {i for i in others if types[i].upper() == "BIT"
                    and not isinstance(batch.schema.field(i).type, pa.BaseExtensionType)}
            for i in bits:
                cols[i] = [_bit_text(v) for v in batch.column(i).to_pylist()]
            rest = [i for i in others if i not in bits]
            if rest:
                part = pa.RecordBatch.from_arrays([batch.column(i) for i in rest],
                                                  names=[f"c{j}" for j in range(len(rest))])
                sel = ", ".join(f"CAST(c{j} AS {types[i].upper()})" if types[i].upper() in back
                                else f"CAST(c{j} AS VARCHAR)" if types[i].upper() in _NANOS else f"c{j}"
                                for j, i in enumerate(rest))
                conv.register("__lakeql_batch", part)
                try:
                    got = conv.execute(f"SELECT {sel} FROM __lakeql_batch").fetchall()
                finally:
                    conv.unregister("__lakeql_batch")
                for j, i in enumerate(rest):
                    if types[i].upper() in _NANOS:
                        cols[i] = [None if r[j] is None else NanoText(r[j]) for r in got]
                    else:
                        cols[i] = [r[j] for r in got]
            yield from zip(*cols, strict=True)
    finally:
        if conv is not None:
            conv.close()


def float32_value(value: Any) -> Any:
    """A FLOAT (single precision) value as the shortest decimal that reads back as the same float32,
    as DuckDB's CLI prints it (Python widens it to a double: ``0.634`` would show as
    ``0.6340000033378601``)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    import numpy as np

    return float(str(np.float32(value)))  # numpy prints a float32's shortest round-trip digits


def _with_float32(rows: Iterable[Sequence[Any]], types: Sequence[str]) -> Iterable[Sequence[Any]]:
    singles = {i for i, t in enumerate(types) if t.upper() in ("FLOAT", "FLOAT4", "REAL")}
    if not singles:
        return rows
    return (tuple(float32_value(v) if i in singles else v for i, v in enumerate(r)) for r in rows)


def print_result(cur: Any, mode: str, out: TextIO, options: Options | None = None) -> None:
    """Fetch a DuckDB result (in batches) and render it."""
    columns = [d[0] for d in cur.description]
    types = [str(d[1]) for d in cur.description]
    render(columns, types, _with_float32(result_rows(cur, types), types), mode, out, options)


def show(con, sql: str, out: TextIO, title: str = "") -> None:
    """Print a titled SQL statement and its result as a box table."""
    if title:
        print(f"\n== {title}", file=out)
    print(f"lakeql> {sql}", file=out)
    print_result(con.execute(sql), "box", out)
