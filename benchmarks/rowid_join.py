"""Whole-row search results: the join of k hits to a table's rowid view, before and after the table's own
``__rowid`` columns kept their names (docs/robustness.md).

Old: ``SELECT r.* EXCLUDE (__rowid), h.score FROM (SELECT unnest(hits, recursive := true)) h JOIN view r
ON r.__rowid = h.rowid``. New: the hits as one struct column named ``__rowid`` and
``{{row_columns()}}`` (a bind-time COLUMNS regex). Same view SQL (lakeql.rows.rowid_scan_sql), same
hits; median of --repeat runs each, interleaved. No model needed: the hits are a constant list.

    PYTHONPATH=$PWD python benchmarks/rowid_join.py [--rows 5000000] [--files 8] [--k 10] [--repeat 15]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb

from lakeql.lake import quote_literal
from lakeql.rows import row_columns_sql, rowid_scan_sql


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rowid_join_"))
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    con = duckdb.connect()
    per = a.rows // a.files
    paths = []
    for f in range(a.files):
        p = tmp / "t" / f"part{f}.parquet"
        p.parent.mkdir(exist_ok=True)
        con.execute(
            f"COPY (SELECT {f * per} + range AS id, 'text ' || (range % 977) AS body, range * 0.5 AS x, "
            f"range % 13 AS cat FROM range({per})) "
            f"TO {quote_literal(str(p))} (FORMAT parquet, ROW_GROUP_SIZE 122880)"
        )
        paths.append(p)
    for own in (False, True):
        cols = ["id", "body", "x", "cat"]
        if own:  # a table with its own __rowid (renamed __rowid~ in the view by the new code)
            for p in paths:
                con.execute(f"COPY (SELECT *, id + 7 AS __rowid FROM {quote_literal(str(p))}) "
                            f"TO {quote_literal(f'{p}.x')} (FORMAT parquet)")
                p.with_suffix(".parquet.x").rename(p)
            cols.append("__rowid")
        table = SimpleNamespace(paths=[str(p) for p in paths], format="parquet", hive=False)  # what it reads
        new_view = rowid_scan_sql(table, [per] * a.files, cols)
        old_view = rowid_scan_sql(table, [per] * a.files, None)  # as before: no renaming
        con.execute(f"CREATE OR REPLACE VIEW v_new AS {new_view}")
        con.execute(f"CREATE OR REPLACE VIEW v_old AS {old_view}")
        rng = random.Random(1)
        hits = [{"rowid": rng.randrange(a.rows), "score": rng.random()} for _ in range(a.k)]
        lit = "[" + ", ".join(f"{{'rowid': {h['rowid']}, 'score': {h['score']}}}" for h in hits) + "]"
        old = (
            f"SELECT r.* EXCLUDE (__rowid), h.score FROM (SELECT unnest({lit}, recursive := true)) h "
            f"JOIN v_old r ON r.__rowid = h.rowid ORDER BY h.score DESC, r.__rowid"
        )
        new = (
            f"SELECT {row_columns_sql()}, h.__rowid.score AS score "
            f"FROM (SELECT unnest({lit}) AS __rowid) h JOIN v_new r ON r.__rowid = h.__rowid.rowid "
            f"ORDER BY h.__rowid.score DESC, r.__rowid"
        )
        o, n = con.execute(old).fetchall(), con.execute(new).fetchall()
        if not own:
            assert o == n, "the same rows"
        times = {"old": [], "new": []}
        for _ in range(a.repeat):
            for name, sql in (("old", old), ("new", new)):
                t = time.perf_counter()
                con.execute(sql).fetchall()
                times[name].append(time.perf_counter() - t)
        mo, mn = statistics.median(times["old"]), statistics.median(times["new"])
        print(
            f"own __rowid={own} rows={a.rows} files={a.files} k={a.k}: old {mo * 1000:.1f} ms, "
            f"new {mn * 1000:.1f} ms, new/old {mn / mo:.3f}"
        )


if __name__ == "__main__":
    main()
