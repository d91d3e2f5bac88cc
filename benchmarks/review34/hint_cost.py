"""The keyword hint's cost on the lake of mk10k.py: query and check_sql with a hint, with a plain syntax
error, and with a keyword that names no column (CPU and wall seconds per call)."""

import time
from pathlib import Path

from lakeql.mcp.service import LakeService, Limits

ROOT = Path("/tmp/review34/l10k")
SQLS = ("SELECT Group, col_01 FROM dom_001.t_001", "SELECT col_01,, col_02 FROM dom_001.t_001",
        "SELECT order, col_01 FROM dom_001.t_001")


def timed(fn, sql: str) -> tuple[float, float, str]:
    c0, w0 = time.process_time(), time.time()
    try:
        out = fn(sql)
    except Exception as exc:  # noqa: BLE001 - the error text is what is measured
        out = f"ERR {exc}"
    return time.process_time() - c0, time.time() - w0, out[-110:].replace("\n", " ")


def main() -> None:
    s = LakeService(ROOT / "lake", ROOT / "idx", limits=Limits())
    print(timed(s.query, "SELECT count(*) AS n FROM lakeql_columns()"))
    for i in range(2):
        for sql in SQLS:
            for fn in (s.query, s.check_sql):
                cpu, wall, out = timed(fn, sql)
                print(i, fn.__name__, sql[:30], f"cpu {cpu:.2f} wall {wall:.2f}", out)


if __name__ == "__main__":
    main()
