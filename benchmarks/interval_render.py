"""``lakeql sql``/shell rendering with and without the INTERVAL path (lakeql.render.result_rows).

Rows are rendered as CSV into a null sink; median of --repeat runs each, interleaved; ``old`` is
fetch_batches (DuckDB's Python values: INTERVAL months counted as 30 days), ``new`` result_rows.

    PYTHONPATH=$PWD python benchmarks/interval_render.py [--rows 300000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import duckdb

from lakeql.render import fetch_batches, render, result_rows


class Null(io.StringIO):
    def write(self, s: str) -> int:
        return len(s)


def timed(con, sql: str, rows_of) -> float:
    t = time.perf_counter()
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    types = [str(d[1]) for d in cur.description]
    render(cols, types, rows_of(cur, types), "csv", Null())
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    con = duckdb.connect()
    plain = (
        f"SELECT range AS id, 'text ' || (range % 977) AS s, range * 0.5 AS x, DATE '2020-01-01' + "
        f"CAST(range % 1000 AS INTEGER) AS d FROM range({a.rows})"
    )
    withiv = (
        f"SELECT range AS id, 'text ' || (range % 977) AS s, range * 0.5 AS x, "
        f"to_months(CAST(range % 30 AS INTEGER)) + to_days(CAST(range % 7 AS INTEGER)) AS iv "
        f"FROM range({a.rows})"
    )
    for name, sql in (("no INTERVAL column", plain), ("one INTERVAL column", withiv)):
        old, new = [], []
        for _ in range(a.repeat):
            old.append(timed(con, sql, lambda cur, _t: fetch_batches(cur)))
            new.append(timed(con, sql, result_rows))
        mo, mn = statistics.median(old), statistics.median(new)
        print(
            f"{name}, {a.rows} rows as CSV: old {mo * 1000:.0f} ms, new {mn * 1000:.0f} ms, "
            f"new/old {mn / mo:.3f}"
        )


if __name__ == "__main__":
    main()
