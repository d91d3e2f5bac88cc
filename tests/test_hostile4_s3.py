"""Hostile object storage (benchmarks/results/hostile4.md): a lake on a local moto S3 server with odd
keys, objects that change under the index, a missing bucket, an endpoint that never answers."""

from __future__ import annotations

import io
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from testutil import moto_s3_sample

import lakeql


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def moto_s3():
    """A moto S3 server on 127.0.0.1 with bucket ``lake`` holding the sample lake under ``sample/``."""
    with moto_s3_sample() as client:
        yield client


@pytest.fixture(scope="module")
def sample_index(moto_s3, tmp_path_factory):
    idx = tmp_path_factory.mktemp("s3idx")
    lakeql.index(
        "s3://lake/sample",
        index_dir=idx,
        progress=False,
        capabilities=["joins"],
        joins_semantic=False,
        discovery=False,
    )
    return idx


def test_joinable_reads_values_of_an_s3_lake(sample_index):
    """joinable() of a column with more distinct values than the stored top values reads them from the
    lake on a private connection: that connection had no s3:// filesystem, so DuckDB tried to download
    its httpfs extension ('Failed to download extension "httpfs"'); registering the filesystem on the
    SQL call's thread-local connection crashed the process (double free) when the connection was dropped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect("s3://lake/sample", index_dir=sample_index, capabilities=["joins"])
    got = {
        col: con.execute(
            f"SELECT candidate_table, candidate_column FROM joinable('flights.flights', '{col}', k := 1)"
        ).fetchone()
        for _ in range(3)  # the crash came at random, after one call or several
        for col in ("tailnum", "origin", "dest")
    }
    assert got == {
        "tailnum": ("flights.planes", "tailnum"),
        "origin": ("flights.airports", "faa"),
        "dest": ("flights.airports", "faa"),
    }
    composite = con.execute(
        "SELECT candidate_table, candidate_column FROM joinable('flights.flights', ['origin', 'time_hour'], "
        "k := 1)"
    ).fetchone()
    assert composite == ("flights.weather", "origin, time_hour")


def test_keys_with_glob_and_odd_characters(moto_s3, tmp_path):
    keys = [
        "odd/d/brack[1].parquet",
        "odd/d/brack1.parquet",
        "odd/d/star*.parquet",
        "odd/d/starbig.parquet",
        "odd/dom é/tab le.parquet",
        'odd/d/it\'s "q".parquet',
        "odd/d/100%.parquet",
        "odd/d/a%20b.parquet",
        "odd/d/x?y#z.parquet",
        "odd/d/emoji🚀.parquet",
        "odd/d/semi;drop.parquet",
    ]
    for i, key in enumerate(keys):
        moto_s3.put_object(Bucket="lake", Key=key, Body=_parquet(pa.table({"id": list(range(i + 1))})))
    lakeql.index("s3://lake/odd", index_dir=tmp_path, progress=False, capabilities=[])
    con = lakeql.connect("s3://lake/odd", index_dir=tmp_path, capabilities=[])
    tables = {r[0]: r[1] for r in con.execute("SELECT table_name, row_count FROM lakeql_tables()").fetchall()}
    for i, key in enumerate(keys):
        domain, name = key.removeprefix("odd/").removesuffix(".parquet").split("/")
        assert tables[f"{domain}.{name}"] == i + 1
        sql_name = '"' + domain + '"."' + name.replace('"', '""') + '"'
        assert con.execute(f"SELECT count(*) FROM {sql_name}").fetchone()[0] == i + 1, key


def test_filesystem_follows_a_changed_aws_environment(monkeypatch):
    """The filesystem of a lake URL was cached per process: after the endpoint changed (a second server,
    new credentials) every read still went to the old one ('Failed to connect to 127.0.0.1:<old port>')."""
    from lakeql.sources.remote import cached_filesystem

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    first = cached_filesystem("s3://lake/env-test")
    assert cached_filesystem("s3://lake/env-test") is first
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    assert cached_filesystem("s3://lake/env-test") is not first


def test_a_key_with_an_empty_path_component_is_skipped_by_name(moto_s3):
    """'d//dbl.parquet' became a table named 'd.' (no SQL name can reach it) whose only file Arrow refused
    ('Empty path component'); now it is skipped with a warning naming the fix."""
    from lakeql.lake import UnsupportedFileWarning, discover

    body = _parquet(pa.table({"id": [1, 2]}))
    moto_s3.put_object(Bucket="lake", Key="dbl/d//dbl.parquet", Body=body)
    moto_s3.put_object(Bucket="lake", Key="dbl/d/ok.parquet", Body=body)
    with pytest.warns(
        UnsupportedFileWarning, match=r"'d//dbl.parquet'.*empty path component.*rename the object"
    ):
        lake = discover("s3://lake/dbl")
    assert set(lake.tables) == {"d.ok"}
