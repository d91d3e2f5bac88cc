"""Errors that lakeql raises on bad input.

Every error is a :class:`LakeqlError`: one line that says what is wrong and how to fix it. The CLI prints
it without a traceback (exit code 2); in SQL it surfaces through DuckDB as an ``InvalidInputException``
whose message carries the same text.
"""

from __future__ import annotations

import difflib
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
        score = max(difflib.SequenceMatcher(None, target, low).ratio(),
                    difflib.SequenceMatcher(None, target_tail, tail).ratio())
        if score >= 0.5:
            scored.append((-score, len(cand), cand))
    return [c for _, _, c in sorted(scored)[:n]]


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


def format_error(exc: BaseException) -> str:
    """One line for an exception; strips DuckDB's UDF wrapper around lakeql's own messages."""
    msg, _ = unwrap_udf_message(str(exc).strip())
    return msg.splitlines()[0] if msg else type(exc).__name__
