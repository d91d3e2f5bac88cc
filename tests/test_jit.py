"""lakeql's numba kernels work when numba cannot write a cache (read-only package dir and no writable
user cache dir): compiled in memory instead of failing at import (lakeql/jit.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import numpy as np
from numba.core import caching
caching.CacheImpl._locator_classes = []  # as with no writable __pycache__, NUMBA_CACHE_DIR or HOME
from lakeql.joins import prefix
from lakeql.vectors import kernels
from lakeql.ngrams import countkernel, kernels as nk, pqpages
ptr, col = np.array([0, 3], np.int64), np.array([2, 0, 1], np.int32)
prefix._largest_first(ptr, col, np.array([1, 5, 5], np.int64))
print(col.tolist())
"""


def test_kernels_compile_without_a_writable_cache():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    got = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]
    # sizes 5, 5, 1: largest first, ties by column id
    assert got.stdout.strip().splitlines()[-1] == "[1, 2, 0]"
