"""Replay every logged agent call (log.jsonl, q01-q20 as the agent made them) in one session against a
worktree's server; write per-call bytes/error to out."""

import json
import os
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

wt, src, out = sys.argv[1], sys.argv[2], sys.argv[3]


def text(r):
    return "\n".join(c.text for c in r.content if getattr(c, "text", None) is not None)


calls = [json.loads(line) for line in open(src)]


async def main():
    params = StdioServerParameters(
        command="/work/venv/bin/python",
        args=["-m", "lakeql.cli", "mcp", "--lake", "/tmp/agent13/lake"],
        env={"PYTHONPATH": wt, "HF_HUB_OFFLINE": "1", "PATH": os.environ["PATH"]},
        cwd="/tmp/agent13",
    )
    async with Client(params, read_timeout_seconds=300) as c:
        with open(out, "w") as f:
            for x in calls:
                t0 = time.perf_counter()
                r = await c.call_tool(x["tool"], x["args"])
                t = text(r)
                f.write(
                    json.dumps(
                        {
                            "q": x["q"],
                            "tool": x["tool"],
                            "bytes": len(t.encode()),
                            "error": bool(r.is_error),
                            "s": round(time.perf_counter() - t0, 2),
                            "text": t,
                        }
                    )
                    + "\n"
                )


anyio.run(main)
