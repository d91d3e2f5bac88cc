"""``sign``: bit = (x_j > 0). Parameter-free; the first stage is a Hamming scan (SimHash-style)."""

from __future__ import annotations

import numpy as np

from lakeql.vectors.binarizers.base import Binarizer


class SignBinarizer(Binarizer):
    method = "sign"

    def bits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) > 0
