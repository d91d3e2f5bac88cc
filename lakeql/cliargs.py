"""Positional arguments shared by the commands of the CLI and the capabilities' own commands.

``lakeql sql|check [LAKE] QUERY`` and ``lakeql shell [LAKE]``: the lake may come first (as in
``lakeql index LAKE``) or as ``--lake``. Core (no front-end imports), so a capability's command can use it.
"""

from __future__ import annotations

import argparse
import shlex

from lakeql.errors import LakeqlError


def lake_and_query(args: argparse.Namespace, command: str) -> tuple[str | None, str]:
    """(lake, query) from ``args.words`` (one or two words) and ``args.lake``."""
    if len(args.words) > 2:
        raise LakeqlError(f"lakeql {command} takes [LAKE] QUERY, got {len(args.words)} arguments: quote "
                          f"the SQL text as one argument, e.g. lakeql {command} LAKE \"SELECT 1\"")
    if len(args.words) == 2:
        return one_lake(args.words[0], args.lake), args.words[1]
    return args.lake, args.words[0]


def one_lake(positional: str | None, option: str | None) -> str | None:
    """The lake given as a positional argument or as --lake; both, when they differ, is an error."""
    if positional and option and positional != option:
        raise LakeqlError(f"two lakes given: {positional!r} and --lake {option!r}: give one")
    return positional or option


def shell_word(text: str) -> str:
    """``text`` as one POSIX shell word (:func:`shlex.quote`), for the commands that error messages tell
    users to run: plain words (``flights.flights.carrier``) stay as they are; anything else (a space, a
    quote, ``$``) is single-quoted, so pasting the hint never runs something else."""
    return shlex.quote(text)


def sql_text(query: str) -> str:
    """The SQL of ``lakeql sql``/``check`` (``-``: read from stdin), refused with one line when it is not
    UTF-8 (Python keeps undecodable bytes of argv as surrogates, which DuckDB cannot take). Stdin is read
    as bytes and decoded here with ``surrogateescape`` whatever the locale: ``sys.stdin`` keeps undecodable
    bytes only under the C/POSIX/C.UTF-8 locales and raises its own decode error otherwise (en_US.UTF-8, or
    any locale with ``PYTHONIOENCODING=utf-8``)."""
    import sys

    text = query
    if query == "-":
        buffer = getattr(sys.stdin, "buffer", None)  # None: a text stream put in its place (tests, embedding)
        text = sys.stdin.read() if buffer is None else buffer.read().decode("utf-8", "surrogateescape")
    return utf8_sql(text)


def utf8_sql(text: str) -> str:
    """``text``, or one line naming the first byte that is not UTF-8 (kept as a surrogate by Python; DuckDB
    answers such a string with pybind's 'incompatible function arguments')."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = text[exc.start].encode("utf-8", "surrogateescape")
        raise LakeqlError(f"the SQL text is not UTF-8 (byte 0x{raw.hex()} at character {exc.start}): "
                          "save it as UTF-8") from None
    return text
