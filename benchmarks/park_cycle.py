"""CPU cost of one build's use of a pooled builder database, parked between builds or not (leftovers5).

Per cycle, in one process: ``kept`` takes a kept database and gives it back (main's pool: threads kept);
``parked`` does the same inside a build scope that ends (the database is started when taken, parked when
the scope ends: what one refresh adds); ``new`` makes and closes a database (no pool). Each runs a small
query. The modes rotate per round; CPU s per cycle (``time.process_time``, every thread of the process)
and ``uptime`` load beside.

    python benchmarks/park_cycle.py [--rounds 5] [--cycles 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=200)
    a = ap.parse_args()
    from lakeql.sources import buildfs

    park, unpark = buildfs.PARK, buildfs.UNPARK

    def kept() -> None:
        buildfs.PARK, buildfs.UNPARK = (), ()
        with buildfs.build_scope():
            c = buildfs.pooled()
            c.execute("SELECT sum(range) FROM range(1000)").fetchall()
            c.close()

    def parked() -> None:
        buildfs.PARK, buildfs.UNPARK = park, unpark
        with buildfs.build_scope():
            c = buildfs.pooled()
            c.execute("SELECT sum(range) FROM range(1000)").fetchall()
            c.close()

    def new() -> None:
        c = buildfs.connect()
        c.execute("SELECT sum(range) FROM range(1000)").fetchall()
        c.close()

    modes = {"kept": kept, "parked": parked, "new": new}
    for fn in modes.values():
        fn()
    got: dict[str, list[float]] = {k: [] for k in modes}
    order = list(modes)
    for rnd in range(a.rounds):
        line = []
        for name in order:
            for r in list(buildfs._POOL):  # each mode from one database in its own state
                r.close()
            buildfs._POOL.clear()
            buildfs._PARKED.clear()
            modes[name]()
            ld = round(os.getloadavg()[0], 1)
            c0 = time.process_time()
            for _ in range(a.cycles):
                modes[name]()
            per = (time.process_time() - c0) / a.cycles * 1000
            got[name].append(per)
            line.append(f"{name} {per:.2f} ms (load {ld})")
        print(f"round {rnd + 1}: " + ";  ".join(line), flush=True)
        order = order[1:] + order[:1]
    print("MEDIANS " + ";  ".join(f"{k} {statistics.median(v):.2f} CPU ms/cycle" for k, v in got.items()))


if __name__ == "__main__":
    main()
