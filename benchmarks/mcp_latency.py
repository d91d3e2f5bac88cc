"""Latency of each ``lakeql mcp`` tool as an agent sees it: SDK client -> stdio -> server -> reply.

    python benchmarks/mcp_latency.py LAKE [--index-dir DIR] [--calls 30]

The calls fit the sample lake indexed as the demo does (``lakeql.index(SAMPLE_LAKE, **DEMO_OPTIONS)``:
python.modules.docstring embedded, python.functions.docstring n-gram indexed).

Starts the server as a subprocess, makes one warm-up call per tool (the model loads at start), then
times ``--calls`` calls of each tool and prints p50 / p95 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

CALLS = {
    "list_domains": {},
    "search_tables": {"question": "which airline flew the most flights?", "k": 3},
    "read_schema": {"path": "flights/flights.yaml"},
    "check_sql": {"sql": "SELECT carrier, count(*) FROM flights.flights GROUP BY carrier"},
    "query": {"sql": "SELECT a.name, count(*) AS n FROM flights.flights f JOIN flights.airlines a "
                     "USING (carrier) GROUP BY a.name ORDER BY n DESC LIMIT 5"},
    "joinable": {"table": "flights.flights", "column": "carrier", "k": 5},
    "semantic_search": {"table": "python.modules", "column": "docstring", "query": "send an email", "k": 5},
    "ngram_search": {"table": "python.functions", "column": "docstring", "phrase": "file descriptor",
                     "k": 10},
    "ngram_count": {"table": "python.functions", "column": "docstring", "phrase": "file descriptor"},
    "find_tables": {"query": "airline carrier names", "k": 5},
    "unionable": {"table": "flights.airports", "k": 5},
}


def main() -> int:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("--index-dir")
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    extra = ["--index-dir", args.index_dir] if args.index_dir else []
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else None
    params = StdioServerParameters(command=sys.executable, env=env,
                                   args=["-m", "lakeql.mcp", "--lake", args.lake, *extra])

    async def run() -> None:
        async with Client(params, read_timeout_seconds=600) as client:
            for name, kwargs in CALLS.items():  # warm-up: the first call waits for the model
                r = await client.call_tool(name, kwargs)
                if r.is_error:
                    print(f"{name}: error {r.content[0].text[:200]}")
            print(f"{'tool':16} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for name, kwargs in CALLS.items():
                times = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    await client.call_tool(name, kwargs)
                    times.append((time.perf_counter() - t0) * 1000)
                times.sort()
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                print(f"{name:16} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")

    anyio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
