"""Frequent phrases, default index: this branch's two changes switched on and off in ONE process,
interleaved with DuckDB's ``contains`` count (issue 14 item 5, ``results/ngramfreq.md``).

* ``stop``: row sets (``ngram_rows`` of words / case-insensitive phrases) stop each row's kernel scan at
  its first occurrence; "off" = the row is counted whole (the code before);
* ``prefix``: first offsets of word top rows from 64 KB prefixes cut after an ASCII separator; "off" =
  whole rows (the code before).

Usage: ``python benchmarks/ngramfreq.py WORKDIR [--repeat 5]`` where WORKDIR was made by
``benchmarks/ngrams.py --frequent-only --insensitive --workdir WORKDIR`` (lake + both indexes).
Prints a Markdown table: best-of-N CPU (process, all threads) and wall per query, ratios to the
DuckDB count of the same run, ``uptime`` load per row. Asserts on and off give identical answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENSITIVE = [("char", p) for p in ["e", " ", "self", "return", "import", "def __init__(self"]]
SENSITIVE += [("word", p) for p in ["self", "the", "return self"]]
INSENSITIVE = [("char", "SELF"), ("char", "Return"), ("word", "SELF"), ("word", "The")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    import duckdb

    import lakeql.plugins as plugins

    plugins.CAPABILITIES = ("lakeql.ngrams",)
    from lakeql.connection import register
    from lakeql.ngrams import colscan, pqcount

    work = Path(a.workdir)
    parquet = work / "lake" / "bench" / "files.parquet"
    lit = "'" + str(parquet).replace("'", "''") + "'"
    rows_fn = pqcount.ParquetColumn.rows
    prefix_rows = colscan.FIRST_PREFIX_ROWS

    def switch(on: bool, unit: str) -> None:
        if on:
            pqcount.ParquetColumn.rows = rows_fn
            colscan.FIRST_PREFIX_ROWS = prefix_rows
        else:  # the code before: rows counted whole, word first offsets from whole rows
            pqcount.ParquetColumn.rows = lambda self, spec, need_first=False, need_counts=True: rows_fn(
                self, spec, need_first, True
            )
            colscan.FIRST_PREFIX_ROWS = 0 if unit == "word" else prefix_rows

    T, C = "bench.files", "text"
    print(
        "| index | unit | phrase | DuckDB `contains` CPU | `ngram_rows` CPU new / before "
        "| rows ratio new / before "
        "| `ngram_search` CPU new / before | search ratio new / before | rows wall ratio new | "
        "search wall ratio new | load (1/5/15 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case, todo in (("sensitive", SENSITIVE), ("insensitive", INSENSITIVE)):
        con = duckdb.connect()
        register(con, work / "lake", index_dir=work / f"idx_{case}")
        base = (
            f"SELECT count(*) FROM read_parquet({lit}) WHERE contains(text, ?)"
            if case == "sensitive"
            else f"SELECT count(*) FROM read_parquet({lit}) WHERE contains(lower(text), lower(?))"
        )
        rows_sql = "SELECT ngram_rows(?, ?, ?, unit := ?)"
        search_sql = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 10, unit := ?)"
        con.execute(search_sql, [T, C, "def", "word"]).fetchall()
        for unit, ph in todo:
            cpu: dict[str, list[float]] = {}
            wall: dict[str, list[float]] = {}
            got: dict[str, object] = {}

            def run(name, sql, params, cpu=cpu, wall=wall, got=got, con=con):
                t0, c0 = time.perf_counter(), time.process_time()
                got[name] = con.execute(sql, params).fetchall()
                wall.setdefault(name, []).append(time.perf_counter() - t0)
                cpu.setdefault(name, []).append(time.process_time() - c0)

            for _ in range(a.repeat):
                run("duck", base, [ph])
                for on in (True, False):
                    switch(on, unit)
                    tag = "new" if on else "old"
                    run("rows_" + tag, rows_sql, [T, C, ph, unit])
                    run("search_" + tag, search_sql, [T, C, ph, unit])
                switch(True, unit)
                assert got["rows_new"] == got["rows_old"] and got["search_new"] == got["search_old"], (
                    ph,
                    unit,
                )
            c = {k: min(v) for k, v in cpu.items()}
            w = {k: min(v) for k, v in wall.items()}
            d = c["duck"]
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(
                f"| {case} | {unit} | `{ph!r}` | {d * 1e3:.0f} ms | {c['rows_new'] * 1e3:.0f} / "
                f"{c['rows_old'] * 1e3:.0f} ms | **{c['rows_new'] / d:.2f}x** / {c['rows_old'] / d:.2f}x | "
                f"{c['search_new'] * 1e3:.0f} / {c['search_old'] * 1e3:.0f} ms | "
                f"**{c['search_new'] / d:.2f}x** / "
                f"{c['search_old'] / d:.2f}x | {w['rows_new'] / w['duck']:.2f}x | "
                f"{w['search_new'] / w['duck']:.2f}x | {load} |",
                flush=True,
            )
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
