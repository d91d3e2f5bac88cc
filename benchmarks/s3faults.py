"""Fault scenarios against a moto S3 server (benchmarks/s3faults_server.py): outcome, wall, requests.

Each scenario runs ``lakeql index`` of the sample lake (``capabilities=[]``: catalog and views; or a
refresh of a good index) in a fresh process of the code tree given (``--code``: this tree by default, or
e.g. a ``git archive main`` folder for the "before" column), with the fault rules of the scenario set on
the server. Prints one JSON line per scenario: outcome (``ok N tables`` or the error's first 160
characters), wall seconds, requests counted by the server, fault hits, whether the previous index's
files were left as they were (refresh scenarios).

    python benchmarks/s3faults.py [--code TREE] [--latency-ms 20] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
GET = {"kind": "GET_RANGE", "key": "airlines"}
SCENARIOS: dict[str, dict] = {
    "no fault": {"rules": []},
    "503 SlowDown x2 on LIST": {"rules": [{"kind": "LIST", "status": 503, "code": "SlowDown", "times": 2}]},
    "503 SlowDown x2 on one GET": {"rules": [{**GET, "status": 503, "code": "SlowDown", "times": 2}]},
    "500 on one object, always (refresh)": {
        "rules": [{**GET, "status": 500, "code": "InternalError", "times": -1}],
        "refresh": True,
    },
    "GET hangs once (30 s)": {"rules": [{**GET, "hang": 30, "times": 1}], "env": {"LAKEQL_S3_TIMEOUT": "2"}},
    "GET hangs always (30 s)": {
        "rules": [{**GET, "hang": 30, "times": -1}],
        "env": {"LAKEQL_S3_TIMEOUT": "2"},
    },
    "body cut short once": {"rules": [{**GET, "truncate": 100, "times": 1}]},
    "body cut short always (refresh)": {"rules": [{**GET, "truncate": 100, "times": -1}], "refresh": True},
    "connection refused": {"endpoint": "dead"},
    "bad credentials (403 InvalidAccessKeyId)": {
        "rules": [{"kind": "*", "status": 403, "code": "InvalidAccessKeyId", "times": -1}],
        "refresh": True,
    },
    "missing bucket": {"url": "s3://no-such-bucket/lake"},
    "access denied on one object": {"rules": [{**GET, "status": 403, "code": "AccessDenied", "times": -1}]},
}

CHILD = textwrap.dedent(
    """
    import json, sys, time, warnings
    import lakeql
    url, idx, refresh = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = lakeql.index(url, index_dir=idx, progress=False, capabilities=[], refresh=refresh)
            out = f"ok {r.tables} tables"
        except Exception as e:
            out = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    warned = [str(w.message)[:160] for w in caught if "airlines" in str(w.message)]
    wall = round(time.perf_counter() - t, 2)
    print(json.dumps({"lakeql": lakeql.__file__, "outcome": out[:220], "wall": wall, "warned": warned}))
    """
)


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _post(url: str, data: object = None) -> dict:
    body = json.dumps(data).encode() if data is not None else b""
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")) as r:
        text = r.read()
    return json.loads(text) if text else {}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read())


def _snapshot(idx: Path) -> dict[str, int]:
    skip = {".build.lock", ".verified.json.z"}
    return {
        str(p.relative_to(idx)): p.stat().st_mtime_ns
        for p in idx.rglob("*")
        if p.is_file() and p.name not in skip
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", default=str(HERE.parent))
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    import boto3

    port = _port()
    srv = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "s3faults_server.py"),
            "--port",
            str(port),
            "--latency-ms",
            str(args.latency_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert srv.stdout.readline().startswith("ready")
        ep = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": ep,
            "PYTHONPATH": args.code,
            "LAKEQL_QUIET": "1",
        }
        client = boto3.client(
            "s3",
            endpoint_url=ep,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="x",
        )
        client.create_bucket(Bucket="lake")
        sample = Path(args.code) / "lakeql" / "sample_lake"
        for f in sorted(sample.rglob("*.parquet")):
            client.upload_file(str(f), "lake", f"sample/{f.relative_to(sample).as_posix()}")
        with tempfile.TemporaryDirectory() as tmp:
            good = Path(tmp) / "good"
            _post(ep + "/__faults", [])
            subprocess.run(
                [sys.executable, "-c", CHILD, "s3://lake/sample", str(good), "0"],
                env=env,
                check=True,
                capture_output=True,
                cwd=args.code,
            )
            for i, (name, sc) in enumerate(SCENARIOS.items()):
                if args.only and args.only not in name:
                    continue
                refresh = bool(sc.get("refresh"))
                if refresh:  # a changed object: the refresh reads it again
                    body = client.get_object(Bucket="lake", Key="sample/flights/airlines.parquet")[
                        "Body"
                    ].read()
                    time.sleep(1.0)
                    client.put_object(Bucket="lake", Key="sample/flights/airlines.parquet", Body=body)
                idx = good if refresh else Path(tmp) / f"s{i}"
                before = _snapshot(good) if refresh else None
                _post(ep + "/__faults", sc.get("rules", []))
                _post(ep + "/__reset")
                cenv = {**env, **sc.get("env", {})}
                if sc.get("endpoint") == "dead":
                    cenv["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_port()}"
                t = time.perf_counter()
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        sc.get("url", "s3://lake/sample"),
                        str(idx),
                        "1" if refresh else "0",
                    ],
                    env=cenv,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    cwd=args.code,  # `python -c` puts the working folder first on sys.path
                )
                row = (
                    json.loads(out.stdout.strip().splitlines()[-1])
                    if out.returncode == 0
                    else {"outcome": "process failed: " + out.stderr.strip().splitlines()[-1][:200]}
                )
                row.update(
                    scenario=name,
                    process_wall=round(time.perf_counter() - t, 2),
                    requests={k: v for k, v in _get(ep + "/__counts").items() if k not in ("bytes",)},
                    hits=_get(ep + "/__faults")["hits"],
                )
                if refresh:
                    row["index_files_unchanged"] = _snapshot(good) == before
                    _post(ep + "/__faults", [])
                    subprocess.run(
                        [sys.executable, "-c", CHILD, "s3://lake/sample", str(good), "1"],
                        env=env,
                        check=True,
                        capture_output=True,
                        cwd=args.code,
                    )
                row["load"] = os.getloadavg()[0]
                print(json.dumps(row), flush=True)
    finally:
        srv.terminate()
        srv.wait(timeout=30)


if __name__ == "__main__":
    main()
