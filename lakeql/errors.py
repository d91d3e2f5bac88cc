"""Errors that lakeql raises on bad input.

Every error is a :class:`LakeqlError`: one line that says what is wrong and how to fix it. The CLI prints
it without a traceback (exit code 2); in SQL it surfaces through DuckDB as an ``InvalidInputException``
whose message carries the same text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class LakeqlError(Exception):
    """Base class: a user-facing error with a one-line message naming the fix."""


class LakeNotFoundError(LakeqlError):
    """The lake path does not exist or holds no Parquet files."""


class RemoteStoreError(LakeqlError):
    """The object store failed (unreachable, credentials refused, throttled or erroring past the retries,
    a request timed out, a body cut short): the build stops before writing, the previous index is kept."""


class UnknownTableError(LakeqlError):
    """A table name that the lake does not have."""


class UnknownColumnError(LakeqlError):
    """A column name that the table does not have."""


class NotIndexedError(LakeqlError):
    """A function needs an index that was never built for this table/column."""


class StaleIndexError(LakeqlError):
    """An index is older than the Parquet files it was built from."""


class ChangedDuringBuildError(StaleIndexError):
    """A table's files changed while ``lakeql index`` read them (a writer is at work): its index is left as
    it was, stale, and the next ``--refresh`` builds it from the files as they are then."""


class CorruptIndexError(LakeqlError):
    """An index file cannot be read or fails its consistency check."""


class IndexDirError(LakeqlError):
    """The index directory cannot be created or written."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates closest to ``name`` (case-insensitive), best first.

    A dotted candidate ('domain.table') is compared whole and by its last part, so 'flihgts' finds
    'flights.flights' before 'flights.planes'.
    """
    pool = list(dict.fromkeys(candidates))
    target = name.lower()
    target_tail = target.rsplit(".", 1)[-1]
    scored = []
    for cand in pool:
        low = cand.lower()
        tail = low.rsplit(".", 1)[-1]
        score = max(_ratio(target, low), _ratio(target_tail, tail))
        if score >= 0.5:
            scored.append((-score, len(cand), cand))
    return [c for _, _, c in sorted(scored)[:n]]


def _ratio(a: str, b: str) -> float:
    """difflib's ratio, 0 without running it when the lengths alone keep it under 0.5 (it is quadratic:
    a 1 MB name against a table list took 30 s)."""
    if 4 * min(len(a), len(b)) < len(a) + len(b):
        return 0.0
    return difflib.SequenceMatcher(None, a, b).ratio()


def shown(text: object, limit: int = 200) -> str:
    """``repr(text)`` for a message, cut to ``limit`` characters with the full length said: a hostile
    1 MB name must not make a 1 MB error line."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean X, Y?)' suffix, or an empty string when nothing is close."""
    hits = closest(name, candidates)
    return f" (did you mean {', '.join(hits)}?)" if hits else ""


UDF_MARKER = "Python exception occurred while executing the UDF: "


def unwrap_udf_message(msg: str) -> tuple[str, bool]:
    """``(message, True)`` without DuckDB's wrapper when ``msg`` is an exception raised inside a Python
    UDF ("Python exception occurred while executing the UDF: LakeqlError: ..."); else ``(msg, False)``."""
    if UDF_MARKER not in msg:
        return msg, False
    msg = msg.split(UDF_MARKER, 1)[1]
    head, _, rest = msg.partition(": ")
    return (rest if head.endswith("Error") and rest else msg), True


def undecodable_duckdb_message(exc: BaseException) -> str | None:
    """DuckDB's error text when ``exc`` is the ``UnicodeDecodeError`` DuckDB's Python client raises instead
    of the error itself: a message that quotes one byte of a multi-byte character ("Invalid character
    encountered in string -> bit conversion: '\\xe2'") cannot be decoded. The text with U+FFFD for the
    broken bytes; None for any other exception."""
    if isinstance(exc, UnicodeDecodeError) and isinstance(exc.object, bytes) and \
            re.match(rb"[A-Z][A-Za-z ]{0,40} Error: ", exc.object):
        return exc.object.decode("utf-8", "replace")
    return None


def format_error(exc: BaseException) -> str:
    """One line for an exception; strips DuckDB's UDF wrapper around lakeql's own messages."""
    msg, _ = unwrap_udf_message((undecodable_duckdb_message(exc) or str(exc)).strip())
    return msg.splitlines()[0] if msg else type(exc).__name__
