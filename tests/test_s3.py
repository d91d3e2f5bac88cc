"""A lake on object storage: a local S3-compatible server (moto's server mode) started by the test.

The sample lake is uploaded to ``s3://lake/sample``; ``lakeql.index`` and ``lakeql.connect`` read it with
credentials and endpoint from the standard AWS environment variables only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testutil import moto_s3_sample

from lakeql.demo import SAMPLE_LAKE


@pytest.fixture(scope="module")
def s3_lake():
    """The sample lake on a moto S3 server, plus an unsupported and a half-uploaded file; its URL."""
    with moto_s3_sample() as client:
        client.put_object(Bucket="lake", Key="sample/flights/notes.xlsx", Body=b"not a table")
        client.put_object(Bucket="lake", Key="sample/flights/half.parquet", Body=b"PAR1 half uploaded")
        yield "s3://lake/sample", client


@pytest.fixture(scope="module")
def s3_index(s3_lake, tmp_path_factory):
    import lakeql

    url, _ = s3_lake
    idx = tmp_path_factory.mktemp("s3idx")
    with pytest.warns(UserWarning):
        report = lakeql.index(url, index_dir=idx, progress=False, capabilities=["joins", "ngrams"],
                              joins_semantic=False, discovery=False, ngram=["python.modules.docstring"])
    return url, idx, report


def test_discover_lists_the_bucket(s3_lake) -> None:
    from lakeql.lake import discover

    url, _ = s3_lake
    with pytest.warns(UserWarning, match="notes.xlsx"):
        lake = discover(url)
    assert {"flights.flights", "flights.planes", "python.modules", "flights.half"} <= set(lake.tables)
    assert lake.is_remote and lake.tables["flights.flights"].paths[0] == "s3://lake/sample/flights/flights.parquet"


def test_index_and_query_an_s3_lake(s3_index) -> None:
    import lakeql

    url, idx, report = s3_index
    assert report.tables == 7  # the half-uploaded file is left out, the rest indexed
    with pytest.warns(UserWarning):
        con = lakeql.connect(url, index_dir=idx, capabilities=["joins", "ngrams"])
    assert con.execute("SELECT count(*) FROM flights.flights WHERE dep_delay > ?", [60]).fetchone() == (328,)
    rows = dict(con.execute("SELECT table_name, status FROM lakeql_tables() WHERE table_name IS NOT NULL"
                            ).fetchall())
    assert rows["flights.half"] == "error" and rows["flights.flights"] == "ok"
    edges = con.execute("SELECT table_name, column_name, candidate_table, candidate_column "
                        "FROM join_graph(min_score := 0.5)").fetchall()
    assert ("flights.flights", "carrier", "flights.airlines", "carrier") in edges  # built from S3 data
    best = con.execute("SELECT candidate_table, candidate_column FROM joinable('flights.flights', 'carrier', "
                       "k := 1)").fetchone()
    assert best == ("flights.airlines", "carrier")
    assert con.execute("SELECT ngram_count('python.modules', 'docstring', 'the file')").fetchone() == (24,)


def test_s3_staleness_sees_a_changed_object(s3_index, s3_lake) -> None:
    import io

    import pyarrow.parquet as pq

    import lakeql
    from lakeql.store import Store

    url, idx, _ = s3_index
    _, client = s3_lake
    with pytest.warns(UserWarning):
        con, ctx = lakeql.connection.open_lake(url, index_dir=idx, capabilities=[])
    store = Store.for_lake(ctx.lake, idx)
    entry = store.find("column_profile", "flights.airlines")
    assert entry is not None and not store.is_stale(entry)
    buf = io.BytesIO()
    pq.write_table(pq.read_table(Path(SAMPLE_LAKE) / "flights" / "airlines.parquet").slice(0, 10), buf)
    client.put_object(Bucket="lake", Key="sample/flights/airlines.parquet", Body=buf.getvalue())
    try:
        assert store.is_stale(entry)
        with pytest.raises(Exception, match="refresh"):
            store.require("column_profile", ctx.lake.tables["flights.airlines"])
    finally:
        client.upload_file(str(Path(SAMPLE_LAKE) / "flights" / "airlines.parquet"), "lake",
                           "sample/flights/airlines.parquet")
        con.close()


def test_missing_bucket_is_a_clear_error(s3_lake) -> None:
    from lakeql.errors import LakeNotFoundError
    from lakeql.lake import discover

    with pytest.raises(LakeNotFoundError, match="does not exist|cannot list"):
        discover("s3://lake/no-such-prefix")


def test_vectors_and_context_build_from_s3_without_patching(s3_lake, tmp_path) -> None:
    """The vector builder reads an s3:// table through lakeql's own connections (lakeql.sources.buildfs),
    and nothing global is patched while it runs: a connection the caller opens meanwhile stays plain."""
    import duckdb
    import pyarrow.parquet as pq

    import lakeql

    url, _ = s3_lake
    plain_connect, plain_file = duckdb.connect, pq.ParquetFile
    with pytest.warns(UserWarning):
        lakeql.index(url, index_dir=tmp_path, progress=False, capabilities=["vectors", "context"],
                     embed=["python.modules.docstring"])
    assert duckdb.connect is plain_connect and pq.ParquetFile is plain_file
    with pytest.warns(UserWarning):
        con = lakeql.connect(url, index_dir=tmp_path, capabilities=["vectors"])
    got = con.execute("SELECT module FROM semantic_search('python.modules', 'docstring', ?, k := 1)",
                      ["Read and write ZIP files"]).fetchone()
    assert got == ("zipfile",)
    assert (tmp_path / "schemas").exists()
