"""The 10,000-table lake of review34 (100 domains x 100 tables x 11 columns, one named "Group"), for
the cost of the keyword-column hint on a lake of 110,000 columns. Writes /tmp/review34/l10k."""

import time
from pathlib import Path

import duckdb

import lakeql

ROOT = Path("/tmp/review34/l10k")


def main() -> None:
    lake, idx = ROOT / "lake", ROOT / "idx"
    con = duckdb.connect()
    cols = ", ".join(f"i * {j} AS col_{j:02d}" for j in range(10))
    for d in range(100):
        (lake / f"dom_{d:03d}").mkdir(parents=True, exist_ok=True)
        for t in range(100):
            con.execute(f"COPY (SELECT {cols}, 'v' AS \"Group\" FROM range(3) t(i)) "
                        f"TO '{lake}/dom_{d:03d}/t_{t:03d}.parquet'")
    t0, c0 = time.time(), time.process_time()
    lakeql.index(lake, index_dir=idx, progress=False)
    print("index wall", time.time() - t0, "cpu", time.process_time() - c0)


if __name__ == "__main__":
    main()
