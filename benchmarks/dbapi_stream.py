"""DB-API figures of a ``lakeql.connect()`` connection against plain ``duckdb.connect()`` (dbapi2 trial).

``python benchmarks/dbapi_stream.py stream MODE WHICH``: peak RSS and CPU of reading a 10M-row result
(``MODE``: fetchone, iter, fetchmany, arrow; ``WHICH``: lakeql, duckdb); one process per run, since peak
RSS (VmHWM) only grows. ``python benchmarks/dbapi_stream.py insert N``: ``executemany`` of N rows against
one ``INSERT ... SELECT`` from an Arrow table.
"""

from __future__ import annotations

import sys
import time


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(fh.read().split(field + ":")[1].split()[0]) // 1024  # MB


def stream(mode: str, which: str, rows: int = 10_000_000) -> None:
    import duckdb

    import lakeql

    con = lakeql.connect() if which == "lakeql" else duckdb.connect()
    base = _status("VmRSS")
    t0 = time.process_time()
    cur = con.execute(f"SELECT i, i * 2 AS j, 'row' || i AS s FROM range({rows}) t(i)")
    n = 0
    if mode == "fetchone":
        while cur.fetchone() is not None:
            n += 1
    elif mode == "iter":
        for _ in cur:
            n += 1
    elif mode == "fetchmany":
        while batch := cur.fetchmany(10_000):
            n += len(batch)
    elif mode == "arrow":
        for b in cur.to_arrow_reader(100_000):
            n += b.num_rows
    assert n == rows, n
    print(f"{mode:9} {which:6} rows {n:,} base {base} MB peak {_status('VmHWM')} MB "
          f"(+{_status('VmHWM') - base}) cpu {time.process_time() - t0:.1f} s")


def insert(n: int) -> None:
    import pyarrow as pa

    import lakeql

    rows = [(i, f"s{i}", i * 0.5) for i in range(n)]
    con = lakeql.connect()
    con.execute("CREATE TABLE t(a BIGINT, b VARCHAR, c DOUBLE)")
    t0 = time.process_time()
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    many = time.process_time() - t0
    t0 = time.process_time()
    con.register("batch", pa.Table.from_pylist([dict(zip("abc", r, strict=True)) for r in rows]))
    con.execute("INSERT INTO t SELECT * FROM batch")
    arrow = time.process_time() - t0
    assert con.execute("SELECT count(*) FROM t").fetchone() == (2 * n,)
    print(f"{n:,} rows: executemany {many:.2f} CPU s ({many / n * 1e6:.0f} us a row), "
          f"Arrow INSERT ... SELECT {arrow:.3f} CPU s ({arrow / n * 1e6:.1f} us a row)")


if __name__ == "__main__":
    if sys.argv[1] == "stream":
        stream(sys.argv[2], sys.argv[3])
    else:
        insert(int(sys.argv[2]))
