"""The one interface every binarizer implements: fit on a column, encode rows, scan codes for a query.

A binarizer turns L2-normalized float vectors into 1 bit per dimension, packed little-endian into
``ceil(d / 8)`` bytes (bit ``j % 8`` of byte ``j // 8`` is dimension ``j``), plus optional per-row float
factors (RaBitQ's corrections). Its fitted parameters are JSON (``params()``) plus named arrays
(``arrays()``), both stored with the index so a query is encoded exactly as the rows were.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from lakeql.vectors import kernels


def pack(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean matrix ``(n, d)`` (or vector) into little-endian bytes."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=-1, bitorder="little")


def unpack(codes: np.ndarray, dim: int) -> np.ndarray:
    """The inverse of :func:`pack`: a ``(n, dim)`` uint8 matrix of 0/1."""
    return np.unpackbits(codes, axis=-1, count=dim, bitorder="little")


class Binarizer(ABC):
    """Base class: ``fit`` -> ``encode`` rows; ``topk``/``estimate`` score packed codes for a float query."""

    method: ClassVar[str]
    #: the first-stage scan: 'hamming' (symmetric, query binarized too) or 'asym' (float query)
    scan: ClassVar[str] = "hamming"
    #: whether the estimate has an error bound (``candidates()``, adaptive rescoring); else fixed oversampling
    bounded: ClassVar[bool] = False

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    @property
    def nbytes(self) -> int:
        return -(-self.dim // 8)

    # -------------------------------------------------------------- fitting / encoding
    def fit(self, x: np.ndarray) -> Binarizer:
        """Fit parameters on the column's vectors (a no-op for parameter-free methods)."""
        return self

    @abstractmethod
    def bits(self, x: np.ndarray) -> np.ndarray:
        """The boolean code bits of vectors ``x`` (``(n, d)``)."""

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Packed codes ``(n, nbytes)`` uint8 and per-row float32 factors (none by default)."""
        return pack(self.bits(x)), {}

    def query_code(self, q: np.ndarray) -> np.ndarray:
        """The packed code of one query vector (what ``binarize()`` returns in SQL)."""
        return pack(self.bits(np.asarray(q, np.float32)[None, :]))[0]

    # -------------------------------------------------------------- scanning
    def topk(self, q: np.ndarray, words: np.ndarray, factors: dict[str, np.ndarray], k: int,
             allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive first stage: (row positions, estimated similarity), best first."""
        qw = kernels.as_words(self.query_code(q)[None, :])[0]
        mask = kernels.NO_MASK if allowed is None else allowed
        rows, dist = kernels.hamming_topk(words, qw, int(k), mask)
        keep = rows >= 0
        return rows[keep], self.similarity_from_hamming(dist[keep])

    def estimate(self, q: np.ndarray, words: np.ndarray, factors: dict[str, np.ndarray]) -> np.ndarray:
        """Estimated inner product of ``q`` with every coded row (monotone in the scan's ranking)."""
        qw = kernels.as_words(self.query_code(q)[None, :])[0]
        return self.similarity_from_hamming(kernels.hamming_all(words, qw))

    def similarity_from_hamming(self, dist: np.ndarray) -> np.ndarray:
        """SimHash's angle estimate: cos(pi * h / d)."""
        return np.cos(np.pi * np.asarray(dist, np.float64) / self.dim)

    # -------------------------------------------------------------- persistence
    def params(self) -> dict[str, Any]:
        return {"method": self.method, "dim": self.dim}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Binarizer:
        return cls(int(params["dim"]))
