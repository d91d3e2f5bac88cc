"""Remote lakes at scale (issue 10): requests per object, results equal to a local copy, object errors.

A moto S3 server in server mode, in its own process, that sleeps per request and counts requests by kind
(``benchmarks/s3server.py``): an index must LIST the prefix once (paginated), never HEAD per object, GET
each object once (shared by every builder), keep at most ``LAKEQL_S3_CONCURRENCY`` requests in flight,
and a no-op ``--refresh`` must read no object.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import warnings

import pytest
from testutil import ROOT, require

from lakeql.demo import SAMPLE_LAKE

SECRET = "lakeql-test-secret-do-not-log-7c1e"
PARTS = 30


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def counting_server(latency_ms: float):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "s3server.py"),
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def counts(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(endpoint + "/__counts") as r:
        return json.loads(r.read())


def reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(endpoint + "/__reset", method="POST")).read()


def _part(i: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"carrier": ["AA", "UA", "DL"][i % 3 : i % 3 + 1], "n": [i]}), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    """The sample lake plus a folder table of PARTS tiny files, locally and on a slow counting S3."""
    boto3 = require("boto3")
    local = tmp_path_factory.mktemp("s3scale") / "lake"
    shutil.copytree(SAMPLE_LAKE, local, ignore=shutil.ignore_patterns(".*", "_*", "*.md"))
    (local / "flights" / "parts").mkdir()
    for i in range(PARTS):
        (local / "flights" / "parts" / f"p{i:03d}.parquet").write_bytes(_part(i))
    with counting_server(latency_ms=20) as endpoint:
        mp = pytest.MonkeyPatch()
        for k, v in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "LAKEQL_S3_CONCURRENCY": "4",
        }.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        files = sorted(f for f in local.rglob("*") if f.is_file())
        for f in files:
            client.upload_file(str(f), "lake", f"copy/{f.relative_to(local).as_posix()}")
        try:
            yield local, "s3://lake/copy", endpoint, client, len(files)
        finally:
            mp.undo()


def _summary(con) -> dict:
    tables = con.execute(
        "SELECT table_name, status, row_count FROM lakeql_tables() WHERE table_name IS NOT NULL ORDER BY 1"
    ).fetchall()
    edges = con.execute(
        "SELECT table_name, column_name, candidate_table, candidate_column, round(score, 6) "
        "FROM join_graph(min_score := 0.0) ORDER BY ALL"
    ).fetchall()
    joinable = con.execute(
        "SELECT candidate_table, candidate_column, round(score, 6) FROM "
        "joinable('flights.parts', 'carrier', k := 3) ORDER BY ALL"
    ).fetchall()
    return {
        "tables": tables,
        "edges": edges,
        "joinable": joinable,
        "parts": con.execute("SELECT count(*), sum(n) FROM flights.parts").fetchone(),
        "delayed": con.execute("SELECT count(*) FROM flights.flights WHERE dep_delay > 60").fetchone(),
    }


def test_s3_index_reads_each_object_once_and_equals_a_local_copy(lakes, tmp_path, capfd) -> None:
    import lakeql

    local, url, endpoint, _, n_objects = lakes
    reset(endpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lakeql.index(url, index_dir=tmp_path / "remote", progress=False)
    got = counts(endpoint)
    # one LIST (a page per 1,000 keys) plus the root probe; one GET per object; no HEAD per object
    assert got.get("LIST", 0) <= 3 and got.get("HEAD", 0) <= 2, got
    assert got.get("GET_RANGE", 0) + got.get("GET", 0) == n_objects, got
    assert 2 <= got["max_inflight"] <= 4, got  # concurrent, and bounded by LAKEQL_S3_CONCURRENCY

    reset(endpoint)
    lakeql.index(url, index_dir=tmp_path / "remote", progress=False, refresh=True)
    got = counts(endpoint)
    assert got.get("GET_RANGE", 0) + got.get("GET", 0) == 0 and got.get("HEAD", 0) <= 2, (
        got
    )  # no-op: no reads

    # one object of the folder table changed: only that table's objects are read again
    _, _, _, client, _ = lakes
    client.put_object(Bucket="lake", Key="copy/flights/parts/p000.parquet", Body=_part(0))
    reset(endpoint)
    lakeql.index(url, index_dir=tmp_path / "remote", progress=False, refresh=True)
    got = counts(endpoint)
    assert got.get("GET_RANGE", 0) + got.get("GET", 0) == PARTS and got.get("HEAD", 0) <= 2, got

    lakeql.index(local, index_dir=tmp_path / "local", progress=False)
    reset(endpoint)
    remote = _summary(lakeql.connect(url, index_dir=tmp_path / "remote"))
    got = counts(endpoint)
    assert got.get("HEAD", 0) <= 2, got  # sizes come from the connection's listing
    assert remote == _summary(lakeql.connect(local, index_dir=tmp_path / "local"))
    assert remote["parts"] == (PARTS, sum(range(PARTS)))
    assert ("flights.parts", "carrier", "flights.airlines", "carrier") in {e[:4] for e in remote["edges"]}
    out = capfd.readouterr()
    assert SECRET not in out.out + out.err + "".join(str(w.message) for w in caught)


def test_s3_object_errors_leave_their_table_out(lakes, tmp_path, monkeypatch) -> None:
    """A garbage object and one that vanishes after the listing: their tables are left out, each named
    with the fix; the rest of the lake is indexed; the secret is in no message."""
    import lakeql
    from lakeql.sources import snapshot

    _, url, endpoint, client, _ = lakes
    client.put_object(Bucket="lake", Key="copy/bad/garbage.parquet", Body=b"PAR1 not really parquet")
    client.put_object(Bucket="lake", Key="copy/bad/gone.parquet", Body=_part(1))
    original = snapshot.Snapshot.prefetch

    def vanish_first(self, paths, workers=None):  # the object is deleted between listing and reading
        client.delete_object(Bucket="lake", Key="copy/bad/gone.parquet")
        return original(self, paths, workers)

    monkeypatch.setattr(snapshot.Snapshot, "prefetch", vanish_first)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = lakeql.index(url, index_dir=tmp_path / "idx", progress=False)
        text = "\n".join(str(w.message) for w in caught)
        assert "bad/garbage.parquet" in text and "bad/gone.parquet" in text, text
        assert SECRET not in text
        con = lakeql.connect(url, index_dir=tmp_path / "idx")
        rows = dict(
            con.execute(
                "SELECT table_name, status FROM lakeql_tables() WHERE table_name IS NOT NULL"
            ).fetchall()
        )
        # the garbage object is a table in error; the vanished one is no table of a new listing at all
        assert rows["bad.garbage"] == "error" and "bad.gone" not in rows, rows
        assert rows["flights.parts"] == "ok" and report.tables >= 8
        bad = [str(w.message) for w in caught if "bad/garbage.parquet" in str(w.message)]
        assert any("lakeql index LAKE --refresh" in m for m in bad), bad  # names the object and the fix
        assert con.execute("SELECT count(*) FROM flights.parts").fetchone() == (PARTS,)
    finally:
        for key in ("copy/bad/garbage.parquet", "copy/bad/gone.parquet"):
            client.delete_object(Bucket="lake", Key=key)


def test_s3_concurrency_setting_is_checked(monkeypatch) -> None:
    from lakeql.errors import LakeqlError
    from lakeql.sources import snapshot

    monkeypatch.setenv("LAKEQL_S3_CONCURRENCY", "lots")
    with pytest.raises(LakeqlError, match="LAKEQL_S3_CONCURRENCY='lots' is not a number"):
        snapshot.concurrency()
    monkeypatch.setenv("LAKEQL_S3_CONCURRENCY", "0")
    assert snapshot.concurrency() == 1
    for bad in ("nan", "inf", "-3"):  # int(nan) / int(inf) used to raise Python's own error
        monkeypatch.setenv("LAKEQL_S3_CONCURRENCY", bad)
        with pytest.raises(LakeqlError, match="is not a finite number >= 0"):
            snapshot.concurrency()
    monkeypatch.setenv("LAKEQL_S3_CONCURRENCY", "1e9")
    assert snapshot.concurrency() == snapshot.MAX_CONCURRENCY  # a thread per request in flight: capped
    monkeypatch.delenv("LAKEQL_S3_CONCURRENCY")
    assert snapshot.concurrency() == 16
    assert os.environ.get("LAKEQL_S3_CONCURRENCY") is None


def test_s3_connection_relisting_keeps_fetched_objects(lakes, tmp_path, monkeypatch) -> None:
    """A connection's first scan of a folder table fetches its objects once, concurrently; when its
    listing expires (LAKEQL_S3_LISTING_TTL) the lake is listed again and unchanged objects are not
    fetched again."""
    import time

    import lakeql

    _, url, endpoint, _, _ = lakes
    lakeql.index(url, index_dir=tmp_path / "idx", progress=False, capabilities=[])
    con = lakeql.connect(url, index_dir=tmp_path / "idx", capabilities=[])
    reset(endpoint)
    assert con.execute("SELECT count(*), sum(n) FROM flights.parts").fetchone() == (PARTS, sum(range(PARTS)))
    first = counts(endpoint)
    assert first.get("HEAD", 0) == 0 and first.get("GET_RANGE", 0) + first.get("GET", 0) <= PARTS, first
    monkeypatch.setenv("LAKEQL_S3_LISTING_TTL", "0.2")
    time.sleep(0.3)
    reset(endpoint)
    assert con.execute("SELECT count(*), sum(n) FROM flights.parts").fetchone() == (PARTS, sum(range(PARTS)))
    again = counts(endpoint)
    assert again.get("LIST", 0) >= 1 and again.get("GET_RANGE", 0) + again.get("GET", 0) == 0, again
    assert again.get("HEAD", 0) <= 1, again  # the listing's probe of the prefix, no HEAD per object


def test_s3_access_denied_object_is_left_out_by_name(lakes, tmp_path, monkeypatch) -> None:
    """An object the credentials may list but not read (botocore's AccessDenied, injected: moto's server
    does not enforce policies): its table is left out with a warning naming it and the fix."""
    import botocore.exceptions

    import lakeql
    from lakeql.sources import remote

    _, url, _, _, _ = lakes
    original = remote.direct_get

    def deny(fs, path, start, end, *rest):
        if path.endswith("flights/airlines.parquet"):
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject"
            )
        return original(fs, path, start, end, *rest)

    monkeypatch.setattr(remote, "direct_get", deny)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = lakeql.index(url, index_dir=tmp_path / "idx", progress=False, capabilities=[])
    text = [str(w.message) for w in caught if "airlines.parquet" in str(w.message)]
    assert text and "access denied to s3://lake/copy/flights/airlines.parquet" in text[0], text
    assert "lakeql index LAKE --refresh" in text[0] and SECRET not in text[0]
    monkeypatch.setattr(remote, "direct_get", original)
    con = lakeql.connect(url, index_dir=tmp_path / "idx", capabilities=[])
    rows = dict(
        con.execute("SELECT table_name, status FROM lakeql_tables() WHERE table_name IS NOT NULL").fetchall()
    )
    assert rows["flights.airlines"] == "error" and rows["flights.parts"] == "ok", rows
    assert report.tables == len(rows) - 1  # every other table indexed
