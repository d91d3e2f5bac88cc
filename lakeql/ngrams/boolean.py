"""AND / OR of phrases over rows (infini-gram's CNF queries over documents), exact.

Each phrase's rows come from the index (:meth:`NgramIndex.row_counts`): located through the suffix
array when the phrase is rare, scanned from the scan tier when it is frequent. AND starts from the
rarest phrase and passes the surviving rows on, so a frequent phrase in an AND with a rare one is
checked only in the scan blocks that hold the candidate rows, never over the whole column.
"""

from __future__ import annotations

import numpy as np

from lakeql.errors import LakeqlError
from lakeql.ngrams.query import NgramIndex


def rows_bool(idx: NgramIndex, phrases: list[str], mode: str, unit: str | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(row ids ascending, occurrences int64 [rows, phrases]) of rows with all / any of the phrases."""
    if not phrases:
        raise LakeqlError("pass at least one phrase, e.g. ['import os', 'sys.argv']")
    if any(p is None for p in phrases):
        raise LakeqlError("a phrase in the list is NULL: remove it")
    encoded = [idx.encode_unit(p, unit) for p in phrases]
    lay = encoded[0][0]
    n = len(encoded)
    found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * n
    if mode == "all":
        order = sorted(range(n), key=lambda i: idx.count(encoded[i][1], lay))
        cand: np.ndarray | None = None
        for i in order:
            uniq, counts, _ = idx.row_counts(encoded[i][1], lay, only=cand)
            found[i] = (uniq, counts)
            cand = uniq
            if cand.shape[0] == 0:
                break
        rows = cand if cand is not None else np.empty(0, np.int64)
    elif mode == "any":
        for i in range(n):
            uniq, counts, _ = idx.row_counts(encoded[i][1], lay)
            found[i] = (uniq, counts)
        rows = np.unique(np.concatenate([f[0] for f in found if f is not None]))
    else:
        raise LakeqlError(f"mode must be 'all' or 'any', got {mode!r}")
    occ = np.zeros((rows.shape[0], n), dtype=np.int64)
    for i, f in enumerate(found):
        if f is None or rows.shape[0] == 0:
            continue
        uniq, counts = f
        at = np.searchsorted(uniq, rows)
        ok = at < uniq.shape[0]
        ok[ok] = uniq[at[ok]] == rows[ok]
        occ[ok, i] = counts[at[ok]]
    return rows, occ
