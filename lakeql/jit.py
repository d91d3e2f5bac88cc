"""``njit`` for lakeql's numba kernels: compiled code cached on disk when numba can write a cache, and
still compiled (in memory) when it cannot.

numba's ``cache=True`` raises ``RuntimeError("cannot cache function ...: no locator available")`` at
import when neither the package's ``__pycache__`` nor a user cache dir (``NUMBA_CACHE_DIR``, else
``~/.cache/numba``) is writable: a read-only site-packages with a read-only or missing HOME (containers,
serverless, shared installs). That must cost compile time (a few CPU seconds per process), never the
feature, so such a kernel falls back to ``cache=False``.
"""

from __future__ import annotations

from typing import Any

import numba


def njit(fn: Any = None, **options: Any) -> Any:
    """``numba.njit(**options)``; with ``cache=True`` and no writable cache location, without caching."""

    def wrap(f: Any) -> Any:
        try:
            return numba.njit(**options)(f)
        except RuntimeError as e:
            if not options.get("cache") or "cannot cache" not in str(e):
                raise
            return numba.njit(**{**options, "cache": False})(f)

    return wrap if fn is None else wrap(fn)
