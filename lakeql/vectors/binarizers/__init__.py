"""Binarizers: one module each (``sign``, ``median``, ``rabitq``), one interface (:class:`Binarizer`)."""

from __future__ import annotations

from typing import Any

METHODS = ("sign", "median", "rabitq")
DEFAULT_METHOD = "rabitq"


def get(method: str, dim: int, **kwargs: Any):
    """A new, unfitted binarizer of ``method`` for ``dim``-dimensional vectors."""
    return binarizer_class(method)(dim, **kwargs)


def binarizer_class(method: str):
    from lakeql.errors import LakeqlError

    if method == "sign":
        from lakeql.vectors.binarizers.sign import SignBinarizer as cls
    elif method == "median":
        from lakeql.vectors.binarizers.median import MedianBinarizer as cls
    elif method == "rabitq":
        from lakeql.vectors.binarizers.rabitq import RaBitQBinarizer as cls
    else:
        raise LakeqlError(f"unknown binarization method {method!r}: use one of {', '.join(METHODS)}")
    return cls


def from_state(params: dict[str, Any], arrays: dict[str, Any]):
    """Rebuild a fitted binarizer from what the index stored."""
    return binarizer_class(str(params["method"])).from_state(params, arrays)
