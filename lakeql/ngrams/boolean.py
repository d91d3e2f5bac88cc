"""AND / OR of phrases over rows (infini-gram's CNF queries over documents), exact.

Rare phrases are located through the suffix array (:meth:`NgramIndex.row_counts`), rarest first; the
frequent ones are found together in ONE pass over the scan tier (:meth:`NgramIndex.scan_many`). AND
passes the surviving rows on, so frequent phrases in an AND with a rare one are checked only in the
scan blocks that hold the candidate rows; when every phrase is rare nothing is scanned.
"""

from __future__ import annotations

import numpy as np

from lakeql import arrays
from lakeql.errors import LakeqlError, shown
from lakeql.ngrams.query import NgramIndex

MAX_PHRASES = 1_000  # distinct phrases of one ngram_rows_all / ngram_rows_any call


def _positions(distinct: list[str], phrases: list[str]) -> list[int]:
    at = {p: i for i, p in enumerate(distinct)}
    return [at[p] for p in phrases]


def rows_bool(idx: NgramIndex, phrases: list[str], mode: str, unit: str | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(row ids ascending, occurrences int64 [rows, phrases]) of rows with all / any of the phrases."""
    if not phrases:
        raise LakeqlError("pass at least one phrase, e.g. ['import os', 'sys.argv']")
    if any(p is None for p in phrases):
        raise LakeqlError("a phrase in the list is NULL: remove it")
    distinct = list(dict.fromkeys(phrases))
    if len(distinct) < len(phrases):  # each distinct phrase is looked up once (a list may repeat one)
        rows, occ = rows_bool(idx, distinct, mode, unit)
        return rows, occ[:, _positions(distinct, phrases)]
    if len(phrases) > MAX_PHRASES:
        raise LakeqlError(f"{len(phrases):,} distinct phrases: at most {MAX_PHRASES:,} per call "
                          "(each costs an index lookup); split the list or use several calls")
    encoded = [idx.encode_unit(p, unit) for p in phrases]
    lay = encoded[0][0]
    pats = [p for _, p in encoded]
    n = len(pats)
    if mode not in ("all", "any"):
        raise LakeqlError(f"mode must be 'all' or 'any', got {shown(mode)}")
    counts = [idx.count(p, lay) for p in pats]
    can_scan = all(t is not None for t in lay.tiers)
    frequent = [i for i in range(n) if can_scan and idx.use_scan(pats[i], lay)]
    scanned = set(frequent)
    rare = sorted((i for i in range(n) if i not in scanned), key=lambda i: counts[i])
    found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * n
    cand: np.ndarray | None = None
    for i in rare:  # located through the index, rarest first
        uniq, cnt, _ = idx.row_counts(pats[i], lay, only=cand if mode == "all" else None)
        found[i] = (uniq, cnt)
        if mode == "all":
            cand = uniq
            if cand.shape[0] == 0:
                break
    if frequent and not (mode == "all" and cand is not None and cand.shape[0] == 0):
        # every frequent phrase in one pass over the scan tier (AND: only the candidates' blocks)
        for i, (uniq, cnt, _) in zip(frequent, idx.scan_many([pats[i] for i in frequent], lay,
                                                            cand if mode == "all" else None), strict=True):
            found[i] = (uniq, cnt)
    if mode == "all":
        rows = None
        for f in found:
            if f is None:
                rows = np.empty(0, np.int64)
                break
            rows = f[0] if rows is None else np.intersect1d(rows, f[0], assume_unique=True)
        rows = rows if rows is not None else np.empty(0, np.int64)
    else:
        rows = arrays.unique(np.concatenate([f[0] for f in found if f is not None]))
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
