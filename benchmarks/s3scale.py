"""Remote lakes at scale: requests per object, wall and CPU of ``lakeql index s3://...`` and a no-op
``--refresh``, and a first ``lakeql sql`` query, against moto in server mode with a per-request latency.

    PYTHONPATH=$PWD python benchmarks/s3scale.py --objects 2600 --latency-ms 30 [--big 3] [--json out.json]

The server (``benchmarks/s3server.py``) runs in its own process and counts requests by kind; each lakeql
command runs in a fresh process (CPU from ``getrusage`` of that child). Counts are split per build stage
by snapshotting the server's counters when the stage's status line appears. The lake: one folder table of
``--parts`` tiny files plus one-file tables in domains of 100 (as in benchmarks/results/hostile4.md), and
``--big`` objects of ~``--big-mb`` MB each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def counts(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(endpoint + "/__counts") as r:
        return json.loads(r.read())


def reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(endpoint + "/__reset", method="POST")).read()


def diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    keys = ("LIST", "HEAD", "GET", "GET_RANGE", "PUT", "OTHER")
    out = {k: b.get(k, 0) - a.get(k, 0) for k in keys if b.get(k, 0) - a.get(k, 0)}
    out["MB"] = round((b.get("bytes", 0) - a.get("bytes", 0)) / 1e6, 2)
    return out


def tiny_parquet(i: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table(
        {
            "id": pa.array([i, i + 1], pa.int64()),
            "code": [f"c{i % 50}", f"c{(i + 1) % 50}"],
            "name": [f"item {i}", f"item {i + 1}"],
        }
    )
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def big_parquet(i: int, mb: float) -> bytes:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = int(mb * 1e6 / 16)
    rng = np.random.default_rng(i)
    t = pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "x": rng.random(n),
            "code": pa.array([f"c{k}" for k in rng.integers(0, 50, n // 50)] * 50),
        }
    )
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=max(1, n // 4))
    return buf.getvalue()


def layout(objects: int, parts: int, big: int) -> list[str]:
    keys = [f"lake/d/parts/part-{i:05d}.parquet" for i in range(parts)]
    for i in range(objects - parts):
        keys.append(f"lake/d{i // 100:03d}/t{i % 100:03d}.parquet")
    keys += [f"lake/big/b{i}.parquet" for i in range(big)]
    return keys


def upload(endpoint: str, bucket: str, keys: list[str], big_mb: float) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)

    def put(ik):
        i, k = ik
        body = big_parquet(i, big_mb) if k.startswith("lake/big/") else tiny_parquet(i)
        client.put_object(Bucket=bucket, Key=k, Body=body)

    with ThreadPoolExecutor(32) as ex:
        list(ex.map(put, enumerate(keys)))


def run(cmd: list[str], env: dict[str, str], endpoint: str, timeout: float) -> dict:
    """Run one lakeql command; wall, CPU, requests (total and per stage line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = counts(endpoint)
    t0 = time.perf_counter()
    # cwd: 'python -m' puts the working directory first on sys.path, before PYTHONPATH
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=env["PYTHONPATH"]
    )
    stages = []
    last = start
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        m = re.match(r"\s*([\w ]+): ([\d.]+) s \(([\d.]+) CPU s\)", line)
        if m:
            now = counts(endpoint)
            stages.append(
                {
                    "stage": m.group(1),
                    "seconds": float(m.group(2)),
                    "cpu": float(m.group(3)),
                    "requests": diff(last, now),
                }
            )
            last = now
    rc = proc.wait(timeout=timeout)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    end = counts(endpoint)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if rc != 0:
        print("\n".join(lines[-30:]), file=sys.stderr)
    return {
        "cmd": " ".join(cmd[2:]),
        "rc": rc,
        "wall": round(wall, 1),
        "cpu": round(cpu, 1),
        "requests": diff(start, end),
        "stages": stages,
        "tail": lines[-3:],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=2600)
    ap.add_argument("--parts", type=int, default=None, help="files of the folder table (default 58%%)")
    ap.add_argument("--big", type=int, default=0)
    ap.add_argument("--big-mb", type=float, default=20.0)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--timeout", type=float, default=3000)
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-sql", action="store_true")
    ap.add_argument("--index-args", default="", help="more 'lakeql index' arguments (one string)")
    ap.add_argument("--code", default=str(ROOT), help="the lakeql source tree to run (default: this one)")
    args = ap.parse_args()
    extra = shlex.split(args.index_args)
    parts = args.parts if args.parts is not None else int(args.objects * 0.58)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "s3server.py"),
            "--port",
            str(port),
            "--latency-ms",
            str(args.latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    work = Path(tempfile.mkdtemp(prefix="s3scale-"))
    try:
        assert server.stdout.readline().startswith("ready")
        keys = layout(args.objects, parts, args.big)
        t0 = time.perf_counter()
        upload(endpoint, "bench", keys, args.big_mb)
        print(f"uploaded {len(keys)} objects in {time.perf_counter() - t0:.1f} s", flush=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "PYTHONPATH": args.code,
        }
        env.pop("AWS_PROFILE", None)
        url = "s3://bench/lake"
        idx = work / "idx"
        lakeql = [sys.executable, "-m", "lakeql.cli"]
        out = {
            "code": args.code,
            "objects": len(keys),
            "parts": parts,
            "big": args.big,
            "latency_ms": args.latency_ms,
            "index_args": extra,
            "load_before": os.getloadavg(),
        }
        out["index"] = run(
            [*lakeql, "index", url, "--index-dir", str(idx), *extra], env, endpoint, args.timeout
        )
        print(json.dumps(out["index"]), flush=True)
        out["refresh"] = run(
            [*lakeql, "index", url, "--index-dir", str(idx), "--refresh", *extra], env, endpoint, args.timeout
        )
        print(json.dumps(out["refresh"]), flush=True)
        if not args.skip_sql:
            out["sql"] = run(
                [
                    *lakeql,
                    "sql",
                    url,
                    "--index-dir",
                    str(idx),
                    "--format",
                    "csv",
                    "SELECT count(*) FROM d.parts",
                ],
                env,
                endpoint,
                args.timeout,
            )
            print(json.dumps(out["sql"]), flush=True)
        out["load_after"] = os.getloadavg()
        for k in ("index", "refresh", "sql"):
            if k in out:
                r = out[k]
                per = {q: round(v / len(keys), 2) for q, v in r["requests"].items() if q != "MB"}
                print(
                    f"{k}: rc={r['rc']} wall {r['wall']} s, CPU {r['cpu']} s, requests {r['requests']}, "
                    f"per object {per}"
                )
        print(f"load before {out['load_before']} after {out['load_after']}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
