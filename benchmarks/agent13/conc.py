"""Several MCP calls in flight on one session: a slow query and 7 fast calls (agent13). Arg: worktree."""

import os
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def text(r):
    return "\n".join(c.text for c in r.content if getattr(c, "text", None) is not None)


async def main():
    params = StdioServerParameters(
        command="/work/venv/bin/python",
        args=["-m", "lakeql.cli", "mcp", "--lake", "/tmp/agent13/lake", "--timeout", "8"],
        env={"PYTHONPATH": sys.argv[1], "HF_HUB_OFFLINE": "1", "PATH": os.environ["PATH"]},
        cwd="/tmp/agent13",
    )
    async with Client(params, read_timeout_seconds=300) as c:
        await c.call_tool("query", {"sql": "SELECT 1"})
        t0 = time.perf_counter()
        res = {}

        async def call(name, tool, args):
            r = await c.call_tool(tool, args)
            res[name] = (round(time.perf_counter() - t0, 2), r.is_error, text(r)[:90].replace("\n", " "))

        async with anyio.create_task_group() as tg:
            tg.start_soon(
                call,
                "slow",
                "query",
                {"sql": "SELECT count(*) FROM big.events a, big.events b WHERE a.x + b.x = 0.5"},
            )
            await anyio.sleep(0.5)
            for i in range(6):
                tg.start_soon(
                    call,
                    f"fast{i}",
                    "query",
                    {"sql": f'SELECT count(*) + {i} AS n FROM "538__hate_crimes".hate_crimes'},
                )
            tg.start_soon(call, "read", "read_schema", {"path": "INDEX.md"})
        for k, v in sorted(res.items(), key=lambda kv: kv[1][0]):
            print(k, v)


anyio.run(main)
