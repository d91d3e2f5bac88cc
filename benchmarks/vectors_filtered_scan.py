"""The exhaustive first stage under filters: the full-scan kernel (:mod:`lakeql.vectors.fullscan`) vs the
row scan (:func:`lakeql.vectors.kernels.asym4_bounded_spans`), CPU per query, interleaved query by query
(benchmarks/results/review29.md: where ``search.ROW_SCAN_BELOW`` comes from); ``--align`` instead times
the layout with its float64 rows 64-byte aligned against the same rows 16-byte aligned.

    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_filtered_scan.py --shares none,0.1,0.01,0.001
    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_filtered_scan.py --rows 1000000 --align

Data: the sample lake's first non-blank docstrings (python.functions) embedded by the default encoder,
the last 100 held out as queries, the rest re-sampled with noise (sd 0.02, re-normalized) to ``--rows``
rows and encoded by rabitq in chunks of 100k. Every timed pair is checked to return the same result.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _data(n: int):
    """(binarizer, words, factors, queries) of ``n`` re-sampled rows."""
    import duckdb
    from testutil import SAMPLE_LAKE

    from lakeql.embedding import encode, load_model
    from lakeql.vectors import binarizers, kernels

    con = duckdb.connect()
    docs = [r[0] for r in con.execute(
        "SELECT left(docstring, 200) FROM read_parquet(?) WHERE docstring IS NOT NULL "
        "AND length(trim(docstring)) > 0 ORDER BY module, qualname",
        [str(SAMPLE_LAKE / "python" / "functions.parquet")]).fetchall()]
    con.close()
    x = encode(docs, load_model(None, "auto")).astype(np.float32)
    base, qs = x[:-100], x[-100:]
    rng = np.random.default_rng(0)
    b = binarizers.get("rabitq", x.shape[1]).fit(base)
    cparts, fparts = [], []
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        rows = base[rng.integers(0, len(base), m)] + rng.normal(0, 0.02, (m, x.shape[1])).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        c, f = b.encode(rows)
        cparts.append(c)
        fparts.append(f)
    codes = np.concatenate(cparts)
    factors = {k: np.concatenate([f[k] for f in fparts]) for k in fparts[0]}
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    return b, words, factors, qs


def _pair(b, words, factors, qs, allowed, a, z, nq: int) -> tuple[float, float]:
    """CPU ms a query of layouts ``a`` and ``z`` (None: the row scan), alternating which runs first."""
    t = [0.0, 0.0]
    for i, q in enumerate(qs[:nq]):
        out = [None, None]
        for j in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.process_time()
            out[j] = b.candidates(q, words, factors, 10, allowed, 20_000, blocked=(a, z)[j])
            t[j] += time.process_time() - t0
        assert all(np.array_equal(u, v) for u, v in zip(out[0], out[1], strict=True))
    return 1e3 * t[0] / nq, 1e3 * t[1] / nq


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shares", default="none,0.1,0.01,0.001", help="allowed shares ('none': no filter)")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--align", action="store_true")
    args = ap.parse_args(argv)
    from lakeql.vectors import fullscan

    b, words, factors, qs = _data(args.rows)
    layout = fullscan.full_layout(words, factors)
    _pair(b, words, factors, qs, None, layout, None, 2)  # compile
    if args.align:
        off = np.empty((len(words), 4))  # NumPy's own alignment (16 bytes)
        off[:] = layout.f64
        shifted = layout._replace(f64=off)
        a, z = _pair(b, words, factors, qs, None, layout, shifted, args.queries)
        print(f"f64 at {layout.f64.ctypes.data % 64} vs {off.ctypes.data % 64} mod 64: {a:.2f} vs {z:.2f} ms "
              f"({a / z:.3f}x); {os.getloadavg()[0]:.1f} load")
        return 0
    rng = np.random.default_rng(1)
    for share in args.shares.split(","):
        allowed = None if share == "none" else rng.random(len(words)) < float(share)
        a, z = _pair(b, words, factors, qs, allowed, layout, None, args.queries)
        print(f"allowed {share}: full-scan {a:.2f} ms, row scan {z:.2f} ms, {a / z:.2f}x; "
              f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
