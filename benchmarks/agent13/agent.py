"""Drive lakeql mcp via the official SDK client: run a JSON list of tool calls in one session, print each
result, log (question, tool, args, bytes, is_error, seconds) to /tmp/agent13/log.jsonl."""

import json
import os
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

WT = os.environ.get("AGWT", "/work/wt/agent13")
LAKE = "/tmp/agent13/lake"
LOG = os.environ.get("AGLOG", "/tmp/agent13/log.jsonl")


def text(r):
    return "\n".join(c.text for c in r.content if getattr(c, "text", None) is not None)


async def main(qid, calls, show):
    params = StdioServerParameters(
        command="/work/venv/bin/python",
        args=["-m", "lakeql.cli", "mcp", "--lake", LAKE],
        env={"PYTHONPATH": WT, "HF_HUB_OFFLINE": "1", "PATH": os.environ["PATH"]},
        cwd="/tmp/agent13",
    )
    async with Client(params, read_timeout_seconds=300) as client:
        for name, args in calls:
            t0 = time.perf_counter()
            if name == "_list_tools":
                out = json.dumps(
                    [t.model_dump(mode="json") for t in (await client.list_tools()).tools], indent=1
                )
                err = False
            else:
                try:
                    r = await client.call_tool(name, args)
                    out, err = text(r), bool(r.is_error)
                except Exception as exc:
                    out, err = f"CLIENT EXCEPTION {type(exc).__name__}: {exc}", True
            dt = time.perf_counter() - t0
            with open(LOG, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "q": qid,
                            "tool": name,
                            "args": args,
                            "bytes": len(out.encode()),
                            "error": err,
                            "s": round(dt, 2),
                        }
                    )
                    + "\n"
                )
            print(f"=== {name} {json.dumps(args)[:300]} -> {len(out.encode())} B, error={err}, {dt:.2f}s")
            print(out[:show] + (f"\n[... shown {show} of {len(out)} chars]" if len(out) > show else ""))


qid = sys.argv[1]
calls = json.loads(sys.argv[2])
show = int(sys.argv[3]) if len(sys.argv) > 3 else 6000
anyio.run(main, qid, calls, show)
