"""Small numpy helpers for hot paths.

``np.unique(a)`` without ``return_*`` takes a hash-table path in numpy 2.3+ that is 10-20x slower than
sorting when most values are distinct (500,000 random int64: ~1 s vs ~60 ms measured here): exactly the
case of value hashes, row ids and n-gram codes. :func:`unique` sorts instead.
"""

from __future__ import annotations

from typing import Any


def unique(a: Any) -> Any:
    """The sorted distinct values of a 1-D array (``np.unique(a)`` for integer, boolean and other
    non-float arrays; floats go to ``np.unique``, whose NaN handling this does not repeat)."""
    import numpy as np

    arr = np.asarray(a).ravel()
    if arr.dtype.kind == "f" or arr.dtype == object or len(arr) < 2:
        return np.unique(arr)
    s = np.sort(arr)
    keep = np.empty(len(s), bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]
