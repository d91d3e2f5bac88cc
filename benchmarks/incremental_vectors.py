"""Benchmark of incremental embed builds (issue 10 item 4): append 1% of a table's rows, ``--refresh``.

The table is the 5,000 MS MARCO passages of ../shared/data/ir/msmarco (``corpus.jsonl``: ``_id``,
``title``, ``text``), cut in corpus order into ``--files`` Parquet files of equal size (100 files: one
file = 1% of the rows) in a temporary lake (never copied into the project). Each step is a fresh process
(``lakeql.index`` through the Python API, vectors capability only, ``--embed ir.msmarco.text
--embed-bm25``), timed from outside, so the wall time includes interpreter start, catalog and model load:

1. full build of the first ``files - 1`` files (99% of the rows);
2. append the last file, ``--refresh``: embeds that file's rows only;
3. ``--refresh`` with nothing changed (up to date);
4. remove a file from the middle, ``--refresh`` (no text embedded, every later rowid shifts);
5. (``--full-again``) full rebuild of the lake as it is then, for the same result as (4) from scratch.

Reports wall and CPU seconds (user + system of the step's process: on a shared machine CPU time is the
steadier measure), rows embedded, the load average before each step, and the ratios refresh / full build
(target: appending 1% of the rows costs <= 5% of the full build).

    python benchmarks/incremental_vectors.py [--files 100] [--out benchmarks/results/shardsv.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent.parent / "shared" / "data" / "ir" / "msmarco" / "corpus.jsonl"
SPEC = "ir.msmarco.text"


def corpus_path() -> Path:
    for cand in (CORPUS, Path("/work/shared/data/ir/msmarco/corpus.jsonl")):
        if cand.exists():
            return cand
    raise SystemExit(f"MS MARCO corpus not found at {CORPUS}")


def load() -> str:
    return os.getloadavg().__repr__()


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_index(lake: Path, index_dir: Path, refresh: bool) -> tuple[float, float, str]:
    code = ("import lakeql, sys; lakeql.index(sys.argv[1], index_dir=sys.argv[2], embed=[sys.argv[3]], "
            "embed_bm25=True, capabilities=['vectors'], progress=True, refresh=sys.argv[4] == '1')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0, c0 = time.perf_counter(), children_cpu()
    argv = [sys.executable, "-c", code, str(lake), str(index_dir), SPEC, "1" if refresh else "0"]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, children_cpu() - c0, (out.stdout + out.stderr).strip()


def embed_line(log: str) -> str:
    lines = [x.strip() for x in log.replace("\r", "\n").splitlines()
             if x.startswith("embed ") and "|" not in x]  # the summary lines, not the progress bars
    return " / ".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--rows", type=int, default=5000, help="use the first ROWS passages")
    ap.add_argument("--out", default=None, help="append a markdown table to this file")
    ap.add_argument("--full-again", action="store_true", help="also time step 5 (a second full build)")
    args = ap.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [json.loads(x) for x in corpus_path().read_text().split("\n") if x.strip()]
    table = pa.table({"_id": [d["_id"] for d in docs], "title": [d["title"] for d in docs],
                      "text": [d["text"] for d in docs]})
    table = table.slice(0, min(args.rows, table.num_rows))
    per = table.num_rows // args.files
    tmp = Path(tempfile.mkdtemp(prefix="lakeql-incr-"))
    try:
        parts = tmp / "parts"
        parts.mkdir()
        for i in range(args.files):
            pq.write_table(table.slice(i * per, per), parts / f"part-{i:04d}.parquet")
        folder = tmp / "lake" / "ir" / "msmarco"
        folder.mkdir(parents=True)
        names = sorted(p.name for p in parts.iterdir())
        for n in names[:-1]:
            shutil.copy(parts / n, folder / n)
        idx = tmp / "index"
        rows = []

        def step(name: str, index_dir: Path, refresh: bool) -> tuple[float, float]:
            before = load()
            secs, cpu, log = run_index(tmp / "lake", index_dir, refresh)
            rows.append((name, secs, cpu, before, embed_line(log)))
            print(f"{name}: {secs:.1f} s wall, {cpu:.1f} s CPU (load before {before}) {embed_line(log)}",
                  flush=True)
            return secs, cpu

        full = step(f"full build, {args.files - 1} files ({(args.files - 1) * per} rows)", idx, False)
        shutil.copy(parts / names[-1], folder / names[-1])
        incr = step(f"append 1 file ({per} rows = {100 / args.files:.0f}%), --refresh", idx, True)
        step("--refresh, nothing changed", idx, True)
        (folder / names[len(names) // 2]).unlink()
        removed = step("remove 1 file from the middle, --refresh", idx, True)
        pct = f"{100 / args.files:.0f}%"
        lines = [f"append {pct} refresh / full build: wall {incr[0]:.1f} / {full[0]:.1f} s = "
                 f"{incr[0] / full[0]:.3f}, CPU {incr[1]:.1f} / {full[1]:.1f} s = {incr[1] / full[1]:.3f} "
                 f"(target <= 0.05: wall {'met' if incr[0] / full[0] <= 0.05 else 'NOT met'}, CPU "
                 f"{'met' if incr[1] / full[1] <= 0.05 else 'NOT met'})",
                 f"remove-a-file refresh / full build: wall {removed[0] / full[0]:.3f}, CPU "
                 f"{removed[1] / full[1]:.3f}"]
        if args.full_again:
            full2 = step(f"full build of the same {args.files - 1} files, from scratch", tmp / "index2",
                         False)
            lines.append(f"remove-a-file refresh / its full build: wall {removed[0] / full2[0]:.3f}")
        print("\n".join(lines))
        if args.out:
            with open(args.out, "a") as fh:
                fh.write("\n| step | wall s | CPU s (user+sys) | load (1/5/15 min) before | build lines |\n"
                         "|---|---|---|---|---|\n")
                for name, secs, cpu, before, line in rows:
                    fh.write(f"| {name} | {secs:.1f} | {cpu:.1f} | {before} | {line} |\n")
                fh.write("\n" + "\n".join(f"- {x}" for x in lines) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
