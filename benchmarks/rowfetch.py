"""Whole-row fetch of k hits from a table of several Parquet files: the plain join on the rowid view's
``__rowid`` (an expression of the file name: every file is read) vs ``{{join_rows(tbl, rowid)}}`` (hits
mapped to (file, row number) through the table's row-files view: DuckDB's dynamic filters on
``filename`` and ``file_row_number`` skip the files and row groups without hits). Same rows checked.

The lake: ``--source`` (a Parquet file) cut into ``--files`` files of row groups of ``--row-group``
rows, in a lakeql lake under ``--tmp``; no model or index needed (the hits are random rowids, a
constant list as the search functions hand them over). CPU time (process_time) and wall, median of
``--repeat`` runs each, old and new interleaved, on one lakeql connection.

    PYTHONPATH=$PWD python benchmarks/rowfetch.py --source titles.parquet [--files 10] [--k 1 10]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from pathlib import Path

import duckdb

import lakeql
from lakeql.rows import row_columns_sql
from lakeql.sqlfiles import render


def build(source: Path, root: Path, files: int, row_group: int) -> None:
    folder = root / "bench" / "t"
    done = root.parent / f"{root.name}.done"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet(?)", [str(source)]).fetchone()[0]
    for i in range(files):
        lo, hi = n * i // files, n * (i + 1) // files
        con.execute(f"COPY (SELECT * FROM read_parquet(?) LIMIT {hi - lo} OFFSET {lo}) TO "
                    f"'{folder / f'part-{i:03d}.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE {row_group})",
                    [str(source)])
    done.write_text("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/lakeql-rowfetch"))
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--row-group", type=int, default=122_880)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    root = args.tmp / f"f{args.files}_rg{args.row_group}"
    build(args.source, root, args.files, args.row_group)
    con = lakeql.connect(root)
    n = con.execute("SELECT count(*) FROM bench.t").fetchone()[0]
    old = (f"SELECT {row_columns_sql()}, r.__rowid FROM (SELECT unnest(?::BIGINT[]) AS rowid) h "
           "JOIN query_table(lakeql_rows_view('bench.t')) r ON r.__rowid = h.rowid ORDER BY h.rowid")
    new = render("SELECT {{row_columns()}}, r.__rowid FROM (SELECT unnest(?::BIGINT[]) AS rowid) h "
                 "{{join_rows('bench.t', h.rowid)}} ORDER BY h.rowid", None)
    print(f"{n:,} rows in {args.files} files, row groups of {args.row_group:,}; duckdb {duckdb.__version__}")
    rng = random.Random(0)
    for k in args.k:
        hit_lists = [rng.sample(range(n), k) for _ in range(args.repeat)]
        times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        for hits in hit_lists[:2]:  # warm both
            assert con.execute(old, [hits]).fetchall() == con.execute(new, [hits]).fetchall()
        for hits in hit_lists:
            for name, sql in (("old", old), ("new", new)):
                c, w = time.process_time(), time.perf_counter()
                rows = con.execute(sql, [hits]).fetchall()
                times[name].append((time.process_time() - c, time.perf_counter() - w))
                assert len(rows) == k
        groups = {}
        for name, sql in (("old", old), ("new", new)):
            plan = con.execute("EXPLAIN ANALYZE " + sql, [hit_lists[0]]).fetchall()[0][1]
            groups[name] = re.search(r"Row Groups Scanned: (\d+ / \d+)", plan).group(1)
        med = {name: (1000 * statistics.median(t[0] for t in ts), 1000 * statistics.median(t[1] for t in ts))
               for name, ts in times.items()}
        print(f"k={k}: old {med['old'][0]:.1f} ms CPU ({med['old'][1]:.1f} wall), "
              f"row groups {groups['old']}; new {med['new'][0]:.1f} ms CPU ({med['new'][1]:.1f} wall), "
              f"row groups {groups['new']}; "
              f"CPU ratio old/new {med['old'][0] / med['new'][0]:.2f}")


if __name__ == "__main__":
    main()
