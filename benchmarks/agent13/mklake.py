"""Build the agent13 lake: the fivethirtyeight + Spider lake of benchmarks/schemas.py (1,364 tables) plus a
1.2M-row and a 600-column table, in /tmp/agent13/lake. Run from the project root."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, "benchmarks")
import duckdb

import schemas

root = Path("/tmp/agent13/lake")
t0 = time.time()
dbs = schemas.spider_tables()
qs, stats = schemas.make_538_lake(root, dbs)
print(stats, len(qs), time.time() - t0)
json.dump(qs, open("/tmp/agent13/questions538.json", "w"), indent=1)
# one big table (1.2M rows: a real table repeated) and one wide table (600 columns)
con = duckdb.connect()
src = next(root.glob("538__*/*.parquet"))
big = root / "big"
big.mkdir(exist_ok=True)
con.execute(f"""COPY (SELECT i AS row_no, i % 50 AS state_no, 'row text number ' || i AS note, random() AS x
  FROM range(1200000) t(i)) TO '{big}/events.parquet' (FORMAT parquet)""")
cols = ", ".join(f"i * {j} AS col_{j:03d}" for j in range(600))
con.execute(f"COPY (SELECT {cols} FROM range(100) t(i)) TO '{big}/wide.parquet' (FORMAT parquet)")
print("done", time.time() - t0)
