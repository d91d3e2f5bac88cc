"""lake.duckdb size over refreshes that change views (benchmarks/results/leftovers.md).

Usage: PYTHONPATH=TREE python benchmarks/leftovers_dbsize.py WORKDIR N_TABLES N_REFRESHES

A lake of N_TABLES small Parquet tables in 10 domains is indexed (context only); each refresh removes one
table and adds another (two views change, so lake.duckdb is updated in place), then the file's size is
printed next to a fresh full build's, with the seconds of each refresh and of lakedb.update.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import duckdb

import lakeql
from lakeql import lakedb

updates: list[tuple[float, float, bool]] = []
_update = lakedb.update


def _timed(*a, **k):
    t, c = time.perf_counter(), time.process_time()
    got = _update(*a, **k)
    updates.append((round(time.perf_counter() - t, 3), round(time.process_time() - c, 3), got is not None))
    return got


lakedb.update = _timed


def main(root: Path, n_tables: int, n_refresh: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    lake = root / "lake"
    con = duckdb.connect()
    for i in range(n_tables):
        d = lake / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        con.execute(
            "COPY (SELECT range AS id, 'x' || range AS name, range * 1.5 AS v FROM range(20)) TO "
            f"'{d / f't{i}.parquet'}' (FORMAT parquet)"
        )
    idx = root / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"])
    db = idx / "lake.duckdb"
    sizes, secs = [db.stat().st_size], []
    for r in range(n_refresh):
        (lake / f"d{r % 10}" / f"t{r}.parquet").unlink()
        con.execute(
            f"COPY (SELECT range AS id, {r} AS c{r} FROM range(20)) TO '{lake / 'd1' / f'new{r}.parquet'}' "
            "(FORMAT parquet)"
        )
        t = time.perf_counter()
        lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"], refresh=True)
        secs.append(round(time.perf_counter() - t, 2))
        sizes.append(db.stat().st_size)
    full = root / "full"
    lakeql.index(lake, index_dir=full, progress=False, capabilities=["context"])
    print("refresh s", secs)
    print("lakedb.update (wall s, cpu s, updated in place)", updates)
    print("lake.duckdb bytes", sizes, "fresh build", (full / "lake.duckdb").stat().st_size)
    views = sum(p.stat().st_size for p in (idx / "views").glob("*.duckdb"))
    print(
        "views/*.duckdb bytes",
        views,
        "fresh build",
        sum(p.stat().st_size for p in (full / "views").glob("*.duckdb")),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
