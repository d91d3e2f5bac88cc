"""Making names, values and descriptions from the lake safe to show to an agent, in every file we write.

Every string that comes from the lake (table, column, domain and file names, types, sample values,
descriptions from Parquet metadata) is hostile: it may hold newlines that start a Markdown heading or a
YAML key, backticks that close a code span, bidi overrides that reorder what a reader sees, invalid
UTF-8, or megabytes of text. The table files (YAML, JSON, TOON, Markdown table) quote and escape with
their own writers (:mod:`lakeql.context.formats`); the Markdown overviews (``INDEX.md``, ``_DOMAIN.md``)
use the helpers here:

* :func:`visible`: one printable line; every control, format (bidi, zero-width) or unpaired surrogate
  character becomes a visible ``\\n`` / ``\\uXXXX`` escape (and ``\\`` becomes ``\\\\``), so the exact
  name can still be read back; cut to ``limit`` characters with ``…``.
* :func:`one_line`: prose (descriptions): whitespace runs become one space, control and format
  characters are dropped, cut to ``limit`` with ``…``.
* :func:`md_name` / :func:`md_text`: a name or a text inside a Markdown code span, whose backtick fence is
  longer than any backtick run inside, so nothing in it is interpreted (no heading, list, link, HTML or
  emphasis can come out of it). Plain names (letters, digits, ``_ . -``) are written bare.

The limits are :data:`NAME_CHARS` for names and :data:`LINE_CHARS` for one-line descriptions.
"""

from __future__ import annotations

import re
import unicodedata

NAME_CHARS = 200  # names longer than this are cut (with '…') wherever they are shown
LINE_CHARS = 160  # one-line descriptions in INDEX.md / _DOMAIN.md
_PLAIN = re.compile(r"[^\W][\w.\-]*", re.UNICODE)
_ESC = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _bad(ch: str) -> bool:
    """Control (Cc), format (Cf: bidi overrides, zero-width), surrogate (Cs), private/unassigned, or a
    line/paragraph separator: never shown raw."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def cut(s: str, limit: int) -> str:
    """``s`` cut to ``limit`` characters, marked with a trailing '…' when cut."""
    return s if len(s) <= limit else s[:max(limit - 1, 0)] + "…"


def visible(value: object, limit: int = NAME_CHARS) -> str:
    """One printable line with visible escapes for anything invisible or line-breaking (see module)."""
    s = value if isinstance(value, str) else str(value)
    s = cut(s, limit)
    if s.isprintable() and "\\" not in s and not any(_bad(ch) for ch in s):
        return s
    out = []
    for ch in s:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif _bad(ch) or not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (
                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
        else:
            out.append(ch)
    return "".join(out)


def one_line(value: object, limit: int = LINE_CHARS) -> str:
    """Prose on one line: whitespace collapsed, invisible characters dropped, cut to ``limit``."""
    s = value if isinstance(value, str) else str(value)
    s = s.encode("utf-8", "replace").decode("utf-8", "replace")  # lone surrogates -> '?'
    s = "".join(" " if ch.isspace() else ("" if _bad(ch) else ch) for ch in s[: limit * 4 + 16])
    return cut(" ".join(s.split()), limit)


def md_code(text: str) -> str:
    """``text`` (already one printable line) as a Markdown code span that nothing inside can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if (text.startswith("`") or text.endswith("`") or text.startswith(" ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def is_plain(name: str) -> bool:
    """Letters, digits, '_', '.', '-' only (Unicode letters too), not starting with punctuation."""
    return bool(_PLAIN.fullmatch(name)) and len(name) <= NAME_CHARS


def md_name(name: object) -> str:
    """A name for Markdown prose: bare when plain, else a code span of its :func:`visible` form."""
    s = name if isinstance(name, str) else str(name)
    return s if is_plain(s) else md_code(visible(s))


_TYPE = re.compile(r"[A-Za-z0-9_ (),\[\]]+", re.ASCII)


def md_type(type_name: object) -> str:
    """A DuckDB type for Markdown prose: bare when made of letters, digits, spaces, ``_ ( ) , [ ]``."""
    s = type_name if isinstance(type_name, str) else str(type_name)
    return s if _TYPE.fullmatch(s) and len(s) <= NAME_CHARS else md_code(visible(s))


def md_text(value: object, limit: int = LINE_CHARS) -> str:
    """A description for Markdown prose: one line, cut, inside a code span (empty string stays empty)."""
    s = one_line(value, limit)
    return md_code(s) if s else ""


def cut_name(name: str) -> str:
    """A name cut to :data:`NAME_CHARS` characters, ending in '…' and 8 hex digits of the hash of the
    whole name (so two long names that share a prefix stay distinct); short names unchanged."""
    if len(name) <= NAME_CHARS:
        return name
    import hashlib

    h = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return name[:NAME_CHARS - 9] + "…" + h


def sql_literal(value: str) -> str:
    """A SQL string literal: ``'...'`` with single quotes doubled (bound nowhere: shown to agents)."""
    return "'" + value.replace("'", "''") + "'"
