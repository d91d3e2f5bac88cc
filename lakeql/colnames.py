"""Column names that differ from what a user typed only in Unicode form (NFC vs NFD).

macOS writes decomposed names (NFD: ``e`` + U+0301 for ``é``), and a Parquet or CSV header made there
keeps them; people and agents type the composed form (NFC). Table and domain names are NFC in lakeql
(:func:`lakeql.lake.nfc`), but a column's name is the file's: the lake's views expose it as stored, since
DuckDB binds names byte for byte and every index records the stored name. So:

* lakeql's own functions (``ngram_search``, ``joinable``, ``semantic_search``, ``--ngram``, ``--embed``
  ...) accept either form: :func:`match_column` resolves a name to the stored one when exactly one column
  has the same NFC form (case-insensitively, as DuckDB compares names);
* in SQL, DuckDB's "not found" error and ``check_sql`` say the column is stored in another Unicode form and
  give the stored spelling to copy (:func:`unicode_hint`, :func:`form_note`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from lakeql.lake import nfc, quote_ident


def folded(name: str) -> str:
    """``name`` in NFC, lower-cased: the key under which two spellings are the same column for a user."""
    return nfc(name).lower()


def match_column(name: str, names: Iterable[str]) -> str | None:
    """The one stored column name that equals ``name`` up to Unicode form and case, or None (no such
    column, or two of them: then only the exact spelling reaches either)."""
    key = folded(str(name))
    hits = [n for n in names if folded(n) == key]
    return hits[0] if len(hits) == 1 else None


def form_of(name: str) -> str:
    """``'NFD'``, ``'NFC'`` or ``'mixed'``: the Unicode form a stored name is in (for messages)."""
    if unicodedata.is_normalized("NFC", name):
        return "NFC"
    if unicodedata.is_normalized("NFD", name):
        return "NFD"
    return "mixed"


def form_note(typed: str, stored: str) -> str:
    """Why ``typed`` does not bind although it looks like ``stored``, and what to write instead."""
    q = quote_ident(stored)
    return (f"the column is stored as {q} in Unicode {form_of(stored)} ({ascii(stored)}), which looks like "
            f"{typed!r} but DuckDB compares names byte for byte: write {q} (copy it), or rename the column "
            "in the file")


#: names longer than this are not spelled out in :func:`stored_form_note` (the schema files cut names at
#: :data:`lakeql.context.safe.NAME_CHARS`, 200, too): the note would hold the name three times
NOTE_NAME_CHARS = 200


def stored_form_note(name: str, names: Iterable[str] = ()) -> str | None:
    """For a column whose stored name is not NFC (a CSV or Parquet header written on macOS), what a reader
    of its schema (``lakeql_columns().note``, the schema files' description) needs before a first failed
    query: the name is stored decomposed, SQL binds only that spelling, and how to write it. None for an
    ordinary (NFC) name: nothing changes for it. ``names``: the table's columns (another column of the
    same NFC form means each spelling reaches only its own column, lakeql's functions included).

    Not an NFC alias in the views: a RENAME changes the name every index and generated SQL binds, an added
    column widens ``SELECT *``, a changed file's live view would fail on it, and a table holding both forms
    would collide (leftovers5, leftovers7)."""
    if unicodedata.is_normalized("NFC", name):
        return None
    twin = [n for n in names if n != name and folded(n) == folded(name)]
    if len(name) > NOTE_NAME_CHARS:  # a hostile or generated name: not repeated three times (review33)
        return (f"its name ({len(name):,} characters) is stored in Unicode {form_of(name)}: SQL binds only "
                "that spelling, so copy it exactly from lakeql_columns().column_name and quote it; "
                + ("another column looks the same: each spelling reaches only its own column" if twin else
                   "lakeql's functions (ngram_search, joinable, semantic_search ...) take either spelling"))
    either = (f"another column, {quote_ident(twin[0])} ({ascii(twin[0])}), looks the same: each spelling "
              "reaches only its own column, in lakeql's functions too") if twin else \
        "lakeql's functions (ngram_search, joinable, semantic_search ...) take either spelling"
    return (f"its name is stored in Unicode {form_of(name)} ({ascii(name)}): SQL binds only that spelling, "
            f"so write it quoted exactly as stored, {quote_ident(name)} (copy it: the composed {nfc(name)!r} "
            f"you would type does not bind); {either}")


_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_MISSING = re.compile(r'(?:Referenced column|does not have a column named) "((?:[^"]|"")*)"')


def unicode_hint(msg: str) -> str:
    """A hint line for DuckDB's binder error ``msg`` when the missing column equals one of its candidate
    bindings up to Unicode form (``Referenced column "café" not found ... Candidate bindings: "café"``);
    ``''`` otherwise."""
    m = _MISSING.search(msg)
    if m is None or "Candidate bindings" not in msg:
        return ""
    typed = m.group(1).replace('""', '"')
    cands = msg.split("Candidate bindings", 1)[1].split("\n", 2)
    listed = " ".join(cands[:2])
    for raw in _QUOTED.findall(listed):
        cand = raw.replace('""', '"')
        column = cand.rsplit(".", 1)[-1] if folded(cand) != folded(typed) else cand
        if column != typed and folded(column) == folded(typed):
            return "\nHint: " + form_note(typed, column)
    return ""
