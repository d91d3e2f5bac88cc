"""``lakeql index s3://... --engine ray``: Ray workers read the objects of the tables they profile.

A local Ray (``ray.init(num_cpus=2)``) and the fault-injecting moto server of ``tests/test_s3_faults.py``
(it counts requests). Workers get a table description (root URL, files' sizes, times and ETags) and open the
lake with their own AWS environment (inherited from the driver here; on a cluster, the environment of
``ray start``): no credentials are pickled, logged or written into the index. They do not share the driver's
object cache: each object is fetched once by the driver (catalog) and once by the worker that profiles it.
"""

from __future__ import annotations

import json
import urllib.request
import warnings

import pytest
from test_s3_faults import SECRET, URL, _files, faults, hits, store  # noqa: F401 - the module's server fixture
from testutil import SAMPLE_LAKE, require

import lakeql
from lakeql.errors import RemoteStoreError

ray = require("ray")
OPTS = {"progress": False, "capabilities": ["joins"], "joins_semantic": False, "discovery": False}


@pytest.fixture(scope="module")
def ray_local(store):  # noqa: F811 - after the AWS environment is set: workers inherit it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _counts(endpoint: str, reset: bool = False) -> dict[str, int]:
    if reset:
        urllib.request.urlopen(urllib.request.Request(endpoint + "/__reset", method="POST")).read()
        return {}
    with urllib.request.urlopen(endpoint + "/__counts") as r:
        return json.loads(r.read())


def _profiles(idx) -> list[tuple]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(URL, index_dir=idx, capabilities=["joins"])
    edges = con.execute(
        "SELECT table_name, column_name, candidate_table, candidate_column, round(score, 6) "
        "FROM join_graph(min_score := 0.0) ORDER BY ALL"
    ).fetchall()
    con.close()
    return edges


def test_a_ray_build_of_an_s3_lake_equals_the_local_one(store, ray_local, tmp_path, capfd) -> None:  # noqa: F811
    endpoint, _ = store
    faults(endpoint, [])
    lakeql.index(URL, index_dir=tmp_path / "local", **OPTS)
    _counts(endpoint, reset=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = lakeql.index(URL, index_dir=tmp_path / "ray", engine="ray", **OPTS)
    got = _counts(endpoint)
    assert report.tables == 7
    # the driver's catalog and each worker fetch an object once each; no HEAD, one listing
    assert got.get("HEAD", 0) == 0 and got.get("LIST", 0) == 1, got
    assert got.get("GET_RANGE", 0) + got.get("GET", 0) == 2 * 7, got
    edges = _profiles(tmp_path / "ray")
    assert edges and edges == _profiles(tmp_path / "local")
    assert ("flights.flights", "carrier", "flights.airlines", "carrier") in {e[:4] for e in edges}
    out = capfd.readouterr()
    assert SECRET not in out.out + out.err + "".join(str(w.message) for w in caught)
    for f in (tmp_path / "ray").rglob("*"):
        assert not f.is_file() or SECRET.encode() not in f.read_bytes(), f


def test_a_store_failing_under_a_ray_worker_stops_the_build(store, ray_local, tmp_path) -> None:  # noqa: F811
    import io

    import pyarrow.parquet as pq

    endpoint, client = store
    faults(endpoint, [])
    lakeql.index(URL, index_dir=tmp_path, **OPTS)
    before = _files(tmp_path)
    # the table changed: a refresh profiles it again, on a worker whose reads of it keep failing
    buf = io.BytesIO()
    pq.write_table(pq.read_table(SAMPLE_LAKE / "flights" / "airlines.parquet"), buf, compression="none")
    client.put_object(Bucket="lake", Key="sample/flights/airlines.parquet", Body=buf.getvalue())
    rule = {"kind": "GET_RANGE", "key": "airlines", "status": 500, "code": "InternalError", "times": -1}
    faults(endpoint, [{**rule, "skip": 1}])  # the driver's catalog fetch passes, the worker's reads fail
    try:
        with pytest.raises(
            RemoteStoreError,
            match=r"cannot read s3://lake/sample/flights/airlines.parquet.*"
            r"LAKEQL_S3_RETRIES",
        ):
            lakeql.index(URL, index_dir=tmp_path, engine="ray", refresh=True, **OPTS)
        assert hits(endpoint)[0] == 3  # the worker's LAKEQL_S3_RETRIES attempts
        # stages commit one by one: the catalog of the new listing is in; no profile or join index of
        # the failed stage is written, and the changed table's stay those of its previous version
        after = _files(tmp_path)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert changed and all(k.startswith("catalog/") or k == "indexes.parquet" for k in changed), changed
        faults(endpoint, [])
        assert _profiles(tmp_path)  # the index answers; the next refresh completes it
        lakeql.index(URL, index_dir=tmp_path, engine="ray", refresh=True, **OPTS)
        edges = {e[:4] for e in _profiles(tmp_path)}
        assert ("flights.flights", "carrier", "flights.airlines", "carrier") in edges
    finally:
        faults(endpoint, [])
        client.upload_file(
            str(SAMPLE_LAKE / "flights" / "airlines.parquet"), "lake", "sample/flights/airlines.parquet"
        )
