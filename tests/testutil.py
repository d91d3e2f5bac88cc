"""Helpers for tests: where the shared data and the sample lake are (importable as ``testutil``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_LAKE = ROOT / "lakeql" / "sample_lake"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; a missing data set fails the test (CI has it: nothing is skipped)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared data set {path} is missing: tests read ../shared/data beside the project")
    return path


def duckdb_cli() -> str:
    """The stock ``duckdb`` binary of the PyPI package duckdb-cli (a test dependency) in this venv."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "duckdb"
    found = str(beside) if beside.exists() else shutil.which("duckdb")
    if not found:
        pytest.fail("the stock duckdb CLI is missing: pip install '.[test]' installs duckdb-cli")
    return found


def require(module: str):
    """Import a test dependency (the '.[test]' extra installs it): missing, the test fails, never skips."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"test dependency {module!r} is missing ({exc}): pip install '.[test]'")


def find_all(haystack, needle) -> list[int]:
    """Every start of ``needle`` in ``haystack`` (str or bytes), overlapping ones included: the brute
    force that n-gram counts are checked against."""
    out, i = [], haystack.find(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


def python_last_line(code: str, timeout: float = 300) -> str:
    """Run ``code`` in a fresh Python process (status lines off) and return its last output line; a
    failing process fails the test with its stderr. For checks of what a new process imports."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "LAKEQL_QUIET": "1"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def moto_s3_sample():
    """A moto S3 server (server mode) on 127.0.0.1 with bucket ``lake`` holding the sample lake's Parquet
    files under ``sample/``; the AWS environment points at it while the block runs. Yields the boto3
    client (to add or break objects)."""
    import socket

    from lakeql import demo

    boto3 = require("boto3")
    server = require("moto.server")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        sample = Path(demo.SAMPLE_LAKE)
        for f in sorted(sample.rglob("*.parquet")):
            client.upload_file(str(f), "lake", f"sample/{f.relative_to(sample).as_posix()}")
        yield client
    finally:
        srv.stop()
        mp.undo()
