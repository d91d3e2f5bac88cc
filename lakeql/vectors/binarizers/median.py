"""``median``: bit = (x_j > median_j), per-dimension medians fitted on the column.

Each bit is then 1 for half the rows, so it carries a full bit of entropy: the honest, per-dimension
form of "maximally informative binarization" (sentence-embedding dimensions are often far from
zero-centred, so plain ``sign`` wastes bits that are almost always 0 or 1). Hamming scan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lakeql.vectors.binarizers.base import Binarizer


class MedianBinarizer(Binarizer):
    method = "median"

    def __init__(self, dim: int, thresholds: np.ndarray | None = None) -> None:
        super().__init__(dim)
        self.thresholds = (np.zeros(dim, np.float32) if thresholds is None
                           else np.asarray(thresholds, np.float32))

    def fit(self, x: np.ndarray) -> MedianBinarizer:
        if len(x):
            self.thresholds = np.median(np.asarray(x, np.float32), axis=0).astype(np.float32)
        return self

    def bits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) > self.thresholds

    def arrays(self) -> dict[str, np.ndarray]:
        return {"thresholds": self.thresholds}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> MedianBinarizer:
        return cls(int(params["dim"]), arrays["thresholds"])
