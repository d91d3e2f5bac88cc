"""Time from starting ``lakeql mcp`` (stdio) to its first answered list_tools and list_resources.

The official SDK client spawns ``python -m lakeql.mcp --lake LAKE --index-dir IDX``; the wall clock runs
from the spawn to each answer, and the server's own CPU seconds (user + system, from /proc) are read
right after the first list_resources answer. Optionally reads one resource and prints a digest of it.

    PYTHONPATH=$PWD python benchmarks/mcp_startup.py --lake LAKE --index-dir IDX [--reps 2] [--no-warm]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio


def children_cpu(parent: int) -> float:
    """User + system CPU seconds of the direct children of ``parent`` (the server process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def one(lake: str, idx: str, warm: bool) -> dict:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    args = ["-m", "lakeql.mcp", "--lake", lake, "--index-dir", idx] + ([] if warm else ["--no-warm"])
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "PYTHONPATH", "HF_HOME", "TRANSFORMERS_OFFLINE", "HF_HUB_OFFLINE")
    }
    # cwd outside any source tree: `python -m` puts the cwd first on sys.path, before PYTHONPATH
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=tempfile.gettempdir())
    t0 = time.perf_counter()
    async with Client(params, read_timeout_seconds=600) as client:
        tools = (await client.list_tools()).tools
        t_tools = time.perf_counter() - t0
        page = await client.list_resources()
        t_res = time.perf_counter() - t0
        cpu = children_cpu(os.getpid())
        first = str(page.resources[0].uri)
        got = await client.read_resource(first)
        t_read = time.perf_counter() - t0
        digest = hashlib.sha256(got.contents[0].text.encode()).hexdigest()[:12]
    return {
        "tools": len(tools),
        "page": len(page.resources),
        "next": page.next_cursor is not None,
        "list_tools_s": t_tools,
        "list_resources_s": t_res,
        "read_s": t_read,
        "server_cpu_s": cpu,
        "first": first,
        "sha": digest,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--index-dir", required=True)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--no-warm", action="store_true")
    a = ap.parse_args()
    for _ in range(a.reps):
        load = os.getloadavg()[0]
        r = anyio.run(one, a.lake, a.index_dir, not a.no_warm)
        print(
            f"load1={load:.1f} list_tools={r['list_tools_s']:.2f}s "
            f"list_resources={r['list_resources_s']:.2f}s "
            f"read={r['read_s']:.2f}s server_cpu={r['server_cpu_s']:.2f}s tools={r['tools']} "
            f"page={r['page']} more={r['next']} first={r['first']} sha={r['sha']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
