"""What the MCP service's reopen-after-refresh costs: the per-call manifest stat, and one reopen.

Indexes a copy of the sample lake (no embed, no model) into a temp dir, opens a :class:`LakeService`, then
times (median of N, with ``uptime`` load printed beside): a small call (``SELECT 1``) with the manifest
check, the check alone (``_refresh_connection`` when nothing changed), and a reopen (``_open``: the lake's
views, lakeql's functions and the lock-down), against opening the first service (the baseline).

    PYTHONPATH=$PWD python benchmarks/mcp_reopen.py [N]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    import lakeql
    from lakeql.mcp.service import MANIFEST, LakeService, _stat_stamp

    sample = Path(lakeql.__file__).parent / "sample_lake"
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    root = Path(tempfile.mkdtemp(prefix="lakeql-mcp-reopen-"))
    try:
        lake, idx = root / "lake", root / "idx"
        shutil.copytree(sample, lake)
        lakeql.index(lake, index_dir=idx, schemas_embed=False, progress=False)
        print("load (uptime):", os.getloadavg())
        t = time.perf_counter()
        svc = LakeService(lake, idx)
        first_open = (time.perf_counter() - t) * 1000
        try:
            svc._rows("SELECT 1", [])
            call = median_ms(lambda: svc._rows("SELECT 1", []), n)
            check = median_ms(svc._refresh_connection, n)
            stat = median_ms(lambda: _stat_stamp(idx / MANIFEST), n)
            reopen = median_ms(lambda: svc._open(None).close(), max(3, n // 40))
        finally:
            svc.close()
        print(f"first LakeService open: {first_open:.1f} ms")
        print(f"SELECT 1 call (with the check): {call:.3f} ms median of {n}")
        print(f"the check alone (nothing changed): {check * 1000:.1f} us; the stat: {stat * 1000:.1f} us "
              f"({check / call:.1%} of the call)")
        print(f"one reopen (open + lock down + close): {reopen:.1f} ms median of {max(3, n // 40)}")
        print("load (uptime):", os.getloadavg())
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
