"""CSV encodings named by the user (``lakeql index --csv-encoding``), for files detection cannot tell.

:mod:`lakeql.csvenc` detects the encoding of a CSV file DuckDB refuses, among UTF-16/32, Windows-1252 and
Mac Roman; other single-byte encodings (Windows-1251 Cyrillic, Latin-9, ISO-8859-7 Greek, ...) cannot be
told from Windows-1252 by their bytes, and such a file was read as Windows-1252 (its letters wrong) unless
it was converted first (``iconv``). ``--csv-encoding ENC`` names the encoding of every CSV table of the
lake, ``--csv-encoding TABLE=ENC`` of one table (repeatable; a table's own wins over the lake's;
``TABLE=auto``: that table detected). ``ENC``
is any text codec of Python's registry (``cp1251``, ``latin-9``, ``iso8859-7``, ``shift_jis``, ...), checked
when the option is given; ``auto`` drops the named encodings (detection again).

What a named encoding changes: a file that is valid UTF-8 is still read as UTF-8 (as is, by DuckDB), and a
file with a byte order mark as its mark says; every other file of the table is decoded as ``ENC`` (its
UTF-8 copy, :func:`lakeql.csvenc.decode_file`) instead of the guessed encoding; bytes that are not valid
``ENC`` are an error naming the file and the encoding. The build records the names in
``INDEX_DIR/csv_encoding.json``: later builds (``--refresh`` without the flag) and connections keep them,
and a table whose files were decoded otherwise before is read again.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from lakeql.errors import LakeqlError, shown

FILE = "csv_encoding.json"
#: codecs of Python's registry that call themselves text encodings but are no file's character set: they
#: fail on every byte (``undefined``), rewrite backslash escapes in the data (``unicode_escape``), or
#: are host-name transforms (``idna``, ``punycode``); refused when named
NOT_FILE_ENCODINGS = frozenset({"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode"})
FLAG = "--csv-encoding"
AUTO = "auto"


def encoding_name(text: Any) -> str:
    """The canonical name of text codec ``text`` in Python's registry (``windows-1251`` -> ``cp1251``);
    a clear error for an unknown name or a codec that is not a text encoding (``rot13``, ``base64``)."""
    name = str(text or "").strip()
    try:
        info = codecs.lookup(name) if name and len(name) <= 100 else None
    except LookupError:
        info = None
    if (
        info is None
        or not getattr(info, "_is_text_encoding", True)
        or info.name in NOT_FILE_ENCODINGS
        or info.incrementaldecoder is None
    ):
        raise LakeqlError(
            f"{FLAG} {shown(text)} is not a text encoding Python knows: name one such as cp1251, latin-9, "
            "iso8859-7, shift_jis, utf-16 (python -c 'import encodings.aliases as a; print(sorted(set("
            "a.aliases.values())))' lists them), or 'auto' to detect"
        )
    return info.name


def parse(values: Any) -> dict[str, str] | None:
    """``--csv-encoding`` values as ``{"": lake-wide encoding, TABLE: encoding}`` (canonical names), or
    None for ``auto`` (drop the recorded names). A value is ``ENC`` or ``TABLE=ENC``; at most one
    lake-wide one."""
    items = [values] if isinstance(values, str) else list(values or [])
    out: dict[str, str] = {}
    for raw in items:
        text = str(raw).strip()
        table, sep, enc = text.rpartition("=")
        if not sep:
            table, enc = "", text
        if enc.strip().lower() == AUTO and not table:
            if len(items) > 1:
                raise LakeqlError(f"{FLAG} auto drops every named encoding: give it alone")
            return None
        if not sep and "" in out:
            raise LakeqlError(f"{FLAG}: two encodings for the whole lake ({out['']}, {shown(text)}): give "
                              "one, and TABLE=ENC for a table of another")
        if sep and not table.strip():
            raise LakeqlError(f"{FLAG} {shown(text)}: name a table before '=' (TABLE=ENC), or give ENC alone")
        # TABLE=auto: that table detected, whatever the lake-wide encoding says
        out[table.strip()] = AUTO if enc.strip().lower() == AUTO else encoding_name(enc)
    return out


def record(store: Any, named: dict[str, str] | None) -> None:
    """Write (``named``), or remove (None: ``auto``), ``INDEX_DIR/csv_encoding.json`` atomically."""
    path = Path(store.root) / FILE
    if named is None:
        path.unlink(missing_ok=True)
        return
    with store.atomic_file(path) as tmp:
        tmp.write_text(json.dumps(named, sort_keys=True))


def recorded(store: Any) -> dict[str, str]:
    """The names the last build recorded (empty: none, no index, or an unreadable record: detection)."""
    if store is None:
        return {}
    try:
        got = json.loads((Path(store.root) / FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(got, dict):
        return {}
    out = {}
    for k, v in got.items():
        try:
            out[str(k)] = AUTO if (k and v == AUTO) else encoding_name(v)
        except LakeqlError:
            continue  # a damaged entry: that table is detected
    return out


def apply(lake: Any, named: dict[str, str], strict: bool = True) -> None:
    """Set each CSV table's ``csv_encoding`` (its own name, else the lake-wide one, else None). A table
    named that is not in the lake, or not a CSV table, is a clear error (with close matches); not
    ``strict`` (names a build recorded, read by a later one or a connection): left out."""
    from lakeql.lake import UnknownTableError, resolve_table

    own: dict[str, str] = {}
    for name, enc in named.items():
        if not name:
            continue
        try:
            t = resolve_table(lake.tables, name)
        except UnknownTableError:
            if strict:
                raise
            continue
        if t.format != "csv" and not strict:
            continue
        if t.format != "csv":
            raise LakeqlError(f"{FLAG} {shown(name)}={enc}: table {t.key} is not a CSV table ({t.format})")
        own[t.key] = enc
    for t in lake.tables.values():
        enc = own.get(t.key, named.get("")) if t.format == "csv" else None
        t.csv_encoding = None if enc == AUTO else enc
