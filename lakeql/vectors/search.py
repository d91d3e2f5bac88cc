"""Two-stage search over a :class:`~lakeql.vectors.codes.CodeIndex`.

1. an exhaustive first stage over every code (Hamming for ``sign``/``median``, RaBitQ's asymmetric
   estimator for ``rabitq``) keeps the best ``k * oversample`` candidates;
2. those are rescored with the float query against the rescoring tier, and the best ``k`` returned.
"""

from __future__ import annotations

import numpy as np

from lakeql.errors import LakeqlError
from lakeql.vectors.codes import CodeIndex


def check_query_vector(index: CodeIndex, q: np.ndarray, label: str) -> np.ndarray:
    """A float32 query vector of the index's dimension, or a clear error."""
    q = np.asarray(q, np.float32).reshape(-1)
    if q.shape[0] != index.dim:
        raise LakeqlError(f"query vector has {q.shape[0]} dimensions but the embed index of {label} has "
                          f"{index.dim} (model {index.meta.get('model')}): embed the query with the same "
                          "model")
    if not np.all(np.isfinite(q)):
        raise LakeqlError("query vector contains NaN or infinite values")
    return q


def search(index: CodeIndex, q: np.ndarray, k: int, oversample: int = 4,
           allowed: np.ndarray | None = None, exclude: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (table rowids, scores) for query vector ``q``, best first.

    ``allowed``: optional boolean mask over code positions (a pre-filter); ``exclude``: code positions
    never returned (e.g. the query row of ``similar_rows``).
    """
    if index.n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    extra = 0 if exclude is None else len(exclude)
    cand = min(max(k * max(int(oversample), 1), k) + extra, index.n)
    pos, _est = index.binarizer.topk(q, index.words, index.factors, cand, allowed)
    if exclude is not None and len(exclude):
        pos = pos[~np.isin(pos, exclude)]
    if len(pos) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = index.vectors(pos) @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return index.rowids[pos[order]], scores[order].astype(np.float32)
