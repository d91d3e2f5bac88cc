"""The table document and its four file formats (YAML, Markdown, JSON, TOON): writers and parsers.

A table document is a plain dict (see ``schemas/context_table.schema.json``)::

    {"table": "flights.airlines", "domain": "flights", "source": "flights/airlines.parquet",
     "rows": 16, "sampled": false, "description": null,
     "columns": [{"column": "flights.airlines.carrier", "type": "VARCHAR", "nulls": 0.0,
                  "distinct": 16, "min": "9E", "max": "YV", "min_len": 2, "max_len": 2,
                  "samples": ["9E", "AA", "AS"], "key": "unique",
                  "joins": ["-> flights.flights.carrier"], "description": null}, ...]}

Every format writes ONE LINE PER COLUMN that starts with (or, in Markdown, has as first cell) the
column's full name ``domain.table.column``, so a single grep hit explains itself. Each parser returns
the document that :func:`normalize` gives for the written one, which the tests check for every format.
"""

from __future__ import annotations

import json
import re
from typing import Any

FORMATS = {"yaml": "yaml", "md": "md", "json": "json", "toon": "toon"}  # format -> file extension
HEADER_FIELDS = ("table", "domain", "source", "rows", "sampled", "description", "usage")
COLUMN_FIELDS = ("column", "type", "nulls", "distinct", "min", "max", "min_len", "max_len", "samples",
                 "key", "joins", "indexes", "description")
LIST_FIELDS = ("samples", "joins", "indexes")
HEADER_LISTS = ("usage",)
LIST_SEP = " | "
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*", re.ASCII)
_YAML_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*", re.ASCII)  # safe unquoted in flow and block
_YAML_WORDS = frozenset("y n yes no on off true false null".split())


def normalize(doc: dict[str, Any]) -> dict[str, Any]:
    """Every header and column field present (None / [] / False when absent), in canonical order."""
    out: dict[str, Any] = {k: (list(doc.get(k) or []) if k in HEADER_LISTS else doc.get(k))
                           for k in HEADER_FIELDS}
    out["sampled"] = bool(doc.get("sampled") or False)
    cols = []
    for c in doc.get("columns") or []:
        cols.append({k: (list(c.get(k) or []) if k in LIST_FIELDS else c.get(k)) for k in COLUMN_FIELDS})
    out["columns"] = cols
    return out


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop None, False and empty-list values (they are the defaults)."""
    return {k: v for k, v in d.items() if v is not None and v is not False and v != []}


def _jdump(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if s.isprintable() else json.dumps(v)


# ------------------------------------------------------------------------------------------- YAML
def _yq(v: Any) -> str:
    """A YAML 1.1 scalar: double-quoted string with escapes for anything non-printable, or a number."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_yq(x) for x in v) + "]"
    if _YAML_PLAIN.fullmatch(v) and v.lower() not in _YAML_WORDS:
        return v
    out = ['"']
    for ch in str(v):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\ufeff":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (
                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
    out.append('"')
    return "".join(out)


def write_yaml(doc: dict[str, Any]) -> str:
    d = normalize(doc)
    lines = ["# lakeql schema file (one table). Column lines: <domain>.<table>.<column>: {type, nulls, "
             "distinct, min, max, min_len, max_len, samples, key, joins, indexes, description}"]
    for k in HEADER_FIELDS:
        if d[k] is not None and d[k] is not False and d[k] != []:
            lines.append(f"{k}: {_yq(d[k])}")
    lines.append("columns:")
    for c in d["columns"]:
        name = c["column"]
        key = name if _PLAIN_KEY.fullmatch(name) else _yq(name)
        body = _compact({k: v for k, v in c.items() if k != "column"})
        lines.append(f"  {key}: {{" + ", ".join(f"{k}: {_yq(v)}" for k, v in body.items()) + "}")
    return "\n".join(lines) + "\n"


def parse_yaml(text: str) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load(text)
    cols = [{"column": str(name), **(body or {})} for name, body in (raw.pop("columns", None) or {}).items()]
    return normalize({**raw, "columns": cols})


# ------------------------------------------------------------------------------------------- JSON
def write_json(doc: dict[str, Any]) -> str:
    d = normalize(doc)
    lines = ["{"]
    for k in HEADER_FIELDS:
        if d[k] is not None and d[k] is not False and d[k] != []:
            lines.append(f"  {json.dumps(k)}: {_jdump(d[k])},")
    cols = [_jdump(_compact(c)) for c in d["columns"]]
    lines.append('  "columns": [')
    lines.extend(f"    {c}," for c in cols[:-1])
    if cols:
        lines.append(f"    {cols[-1]}")
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_json(text: str) -> dict[str, Any]:
    return normalize(json.loads(text))


# ----------------------------------------------------------------------------------------- Markdown
_MD_COLS = ("column", "type", "nulls", "distinct", "min", "max", "length", "samples", "key", "joins",
            "indexes", "description")


def _md_value(v: Any) -> str:
    """A header value: raw when unambiguous, else JSON."""
    if (isinstance(v, str) and v and v.isprintable() and v == v.strip() and not v.startswith('"')
            and not _is_json(v)):
        return v
    return _jdump(v)


def _md_escape(s: str) -> str:
    """Escape '\\', '|' and every non-printable character, so a cell stays on its line and in its column."""
    out = []
    for ch in s:
        if ch in "\\|":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):06x}")
    return "".join(out)


def _md_cell(v: Any) -> str:
    if v is None or v == []:
        return ""
    if isinstance(v, list):
        v = LIST_SEP.join(v)
    return _md_escape(str(v))


def write_md(doc: dict[str, Any]) -> str:
    d = normalize(doc)
    out = [f"# Table {_md_escape(d['table'])}", ""]
    for k in HEADER_FIELDS:
        if d[k] is not None and d[k] is not False and d[k] != []:
            out.append(f"- {k}: {_md_value(d[k])}")
    out += ["", "| " + " | ".join(_MD_COLS) + " |", "|" + "---|" * len(_MD_COLS)]
    for c in d["columns"]:
        length = None if c["min_len"] is None else f"{c['min_len']}..{c['max_len']}"
        cells = [c["column"], c["type"], c["nulls"], c["distinct"], c["min"], c["max"], length,
                 c["samples"], c["key"], c["joins"], c["indexes"], c["description"]]
        out.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    return "\n".join(out) + "\n"


def _split_row(line: str) -> list[str]:
    """Cells of a Markdown table row, undoing the '\\|' and '\\\\' escapes."""
    cells, buf, i = [], [], 0
    body = line.strip()[1:]
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            if body[i + 1] == "u" and i + 7 < len(body):
                buf.append(chr(int(body[i + 2:i + 8], 16)))
                i += 8
                continue
            buf.append(body[i + 1])
            i += 2
            continue
        if ch == "|":
            cells.append("".join(buf)[1:-1] if len(buf) >= 2 else "".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    return cells


def parse_md(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"columns": []}
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    for ln in text.splitlines():
        m = re.match(r"^- ([a-z_]+): (.*)$", ln)
        if m and m.group(1) in HEADER_FIELDS:
            v = m.group(2)
            doc[m.group(1)] = json.loads(v) if _is_json(v) else v
    for ln in rows[1:]:  # rows[0] is the header row
        cells = dict(zip(_MD_COLS, _split_row(ln), strict=True))
        lo, _, hi = cells["length"].partition("..")
        doc["columns"].append({
            "column": cells["column"], "type": cells["type"] or None,
            "nulls": float(cells["nulls"]) if cells["nulls"] else None,
            "distinct": int(cells["distinct"]) if cells["distinct"] else None,
            "min": cells["min"] or None, "max": cells["max"] or None,
            "min_len": int(lo) if lo else None, "max_len": int(hi) if hi else None,
            "samples": cells["samples"].split(LIST_SEP) if cells["samples"] else [],
            "key": cells["key"] or None,
            "joins": cells["joins"].split(LIST_SEP) if cells["joins"] else [],
            "indexes": cells["indexes"].split(LIST_SEP) if cells["indexes"] else [],
            "description": cells["description"] or None})
    return normalize(doc)


def _is_json(v: str) -> bool:
    try:
        json.loads(v)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------- TOON
def _toon_doc(doc: dict[str, Any]) -> dict[str, Any]:
    d = normalize(doc)
    flat = {k: d[k] for k in HEADER_FIELDS}
    flat["columns"] = [{k: (LIST_SEP.join(c[k]) if k in LIST_FIELDS else c[k]) for k in COLUMN_FIELDS}
                       for c in d["columns"]]
    return flat


_TOON_MARK = "\ue000"  # private use (never kept raw: see _toon_hide); marks a hidden character
_TOON_HIDDEN = re.compile(r'\\"\ue000([0-9a-f]{6})')


def _toon_escaped(ch: str) -> bool:
    """Non-printable; above the BMP only format characters (tags U+E0000...: invisible text) are, since
    TOON can show those only lossily (private use and not-yet-known characters are kept raw)."""
    if ch.isprintable():
        return False
    import unicodedata

    return ord(ch) <= 0xFFFF or unicodedata.category(ch) in ("Cf", "Cs")


def _toon_hide(v: Any) -> Any:
    """Replace each invisible character (control, bidi, zero-width, separator, private use, surrogate)
    with ``"`` + a private-use mark + its hex code: the ``"`` makes the encoder quote the string, and
    :func:`write_toon` turns the (escaped) sequence into a ``\\uXXXX`` escape inside those quotes."""
    if isinstance(v, str):
        if v.isprintable():
            return v
        return "".join(f'"{_TOON_MARK}{ord(ch):06x}' if _toon_escaped(ch) else ch for ch in v)
    if isinstance(v, list):
        return [_toon_hide(x) for x in v]
    if isinstance(v, dict):
        return {k: _toon_hide(x) for k, x in v.items()}
    return v


def _toon_escape(m: re.Match[str]) -> str:
    code = int(m.group(1), 16)
    if code < 0x10000 and not 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    # TOON has no escape for these (no surrogate pairs): shown as the text '\\U000XXXXX' (lossy)
    return f"\\\\U{code:08x}"


def write_toon(doc: dict[str, Any]) -> str:
    """TOON via ``toon-format``; no invisible character is written raw (they become ``\\uXXXX``)."""
    from toon_format import encode

    return _TOON_HIDDEN.sub(_toon_escape, encode(_toon_hide(_toon_doc(doc)))) + "\n"


def parse_toon(text: str) -> dict[str, Any]:
    from toon_format import decode

    raw = decode(text.rstrip("\n"))
    cols = []
    for c in raw.get("columns") or []:
        c = dict(c)
        for k in LIST_FIELDS:
            c[k] = c[k].split(LIST_SEP) if c.get(k) else []
        cols.append(c)
    return normalize({**raw, "columns": cols})


WRITERS = {"yaml": write_yaml, "md": write_md, "json": write_json, "toon": write_toon}
PARSERS = {"yaml": parse_yaml, "md": parse_md, "json": parse_json, "toon": parse_toon}


def render(doc: dict[str, Any], fmt: str) -> str:
    """The file text of ``doc`` in ``fmt`` (one of :data:`FORMATS`)."""
    return WRITERS[fmt](doc)


def parse(text: str, fmt: str) -> dict[str, Any]:
    """Parse a table file written by :func:`render` back into its (normalized) document."""
    return PARSERS[fmt](text)
