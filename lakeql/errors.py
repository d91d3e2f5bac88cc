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
    """Return up to ``n`` candidates closest to ``name`` (case-insensitive), best first."""
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    # Also accept a candidate whose last dotted part matches exactly (e.g. 'flights' -> 'nyc.flights').
    tail = [c for c in pool if c.lower().rsplit(".", 1)[-1] == name.lower().rsplit(".", 1)[-1]]
    out = list(dict.fromkeys(tail + [lowered[h] for h in hits]))
    return out[:n]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean X, Y?)' suffix, or an empty string when nothing is close."""
    hits = closest(name, candidates)
    return f" (did you mean {', '.join(hits)}?)" if hits else ""
