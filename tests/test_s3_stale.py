"""A connection answers sizes from a listing kept ``LAKEQL_S3_LISTING_TTL`` seconds and holds the footers
of objects it read: an object rewritten in that window must never be read as the old footer over the new
bytes (silently wrong rows: the old statistics prune the new row groups). It reads the old version (held
whole) or fails naming the object and the fix, never a mix."""

from __future__ import annotations

import io
import time

import pytest
from testutil import moto_s3_sample

N = 1_000_000  # 8 MB: DuckDB reads the footer and the row groups separately


def _parquet(start: int, n: int = N) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    # plain, uncompressed int64 with statistics: two versions of the same size, other values
    pq.write_table(
        pa.table({"x": pa.array(range(start, start + n), pa.int64())}),
        buf,
        compression="none",
        use_dictionary=False,
        row_group_size=N // 10,
    )
    return buf.getvalue()


def test_an_object_rewritten_within_the_listing_ttl_is_never_read_half_old(tmp_path, monkeypatch) -> None:
    import lakeql

    old, new = _parquet(0), _parquet(1_000_000)
    assert len(old) == len(new)
    monkeypatch.setenv("LAKEQL_S3_LISTING_TTL", "600")
    monkeypatch.setenv("LAKEQL_S3_WHOLE_MB", "0.01")  # footers only held (as for objects over 1 MB)
    with moto_s3_sample() as client:
        client.put_object(Bucket="lake", Key="stale/t/big.parquet", Body=old)
        url = "s3://lake/stale"
        lakeql.index(url, index_dir=tmp_path / "idx", progress=False, capabilities=[])
        con = lakeql.connect(url, index_dir=tmp_path / "idx", capabilities=[])
        q = "SELECT count(*), sum(x) FROM t.big WHERE x >= 1000000"
        assert con.execute(q).fetchone() == (0, None)
        time.sleep(1.1)  # S3 times are in seconds
        client.put_object(Bucket="lake", Key="stale/t/big.parquet", Body=new)
        want_new = (N, sum(range(1_000_000, 1_000_000 + N)))
        try:
            got = con.execute(q).fetchone()
            total = con.execute("SELECT count(*), sum(x), min(x) FROM t.big").fetchone()
        except Exception as exc:  # noqa: BLE001 - the accepted outcome: an error naming the object
            text = str(exc)
            assert "s3://lake/stale/t/big.parquet changed" in text and "run the query again" in text, text
            assert "testing" not in text
        else:  # the old version or the new one, never a mix (old statistics over new pages)
            assert (got, total) in (
                ((0, None), (N, sum(range(N)), 0)),
                (want_new, (*want_new, 1_000_000)),
            ), (got, total)
        # the next query reads the new version, whole and filtered
        assert con.execute(q).fetchone() == want_new
        assert con.execute("SELECT min(x) FROM t.big").fetchone() == (1_000_000,)
        con.close()


if __name__ == "__main__":
    pytest.main([__file__, "-q"])


def test_reads_without_a_listing_are_safe_under_duckdbs_threads(tmp_path, monkeypatch) -> None:
    """``LAKEQL_S3_LISTING_TTL=0`` (ask the store for each object): DuckDB's threads read one Python file
    concurrently (a seek and a read each); a file whose position is shared state (pyarrow's stream)
    then answers another thread's range: 'TProtocolException: Invalid data', short reads, or pages
    of the wrong place. Every query on a fresh connection must give the right answer."""
    import lakeql

    monkeypatch.setenv("LAKEQL_S3_LISTING_TTL", "0")
    with moto_s3_sample() as client:
        client.put_object(Bucket="lake", Key="big/t/big.parquet", Body=_parquet(0))
        url = "s3://lake/big"
        lakeql.index(url, index_dir=tmp_path / "idx", progress=False, capabilities=[])
        got = []
        for _ in range(8):
            con = lakeql.connect(url, index_dir=tmp_path / "idx", capabilities=[])
            try:
                got.append(con.execute("SELECT count(*), sum(x) FROM t.big").fetchone())
            except Exception as exc:  # noqa: BLE001 - recorded: every query must succeed
                got.append(str(exc).splitlines()[0][:120])
            finally:
                con.close()
        assert got == [(N, sum(range(N)))] * 8, got


def test_the_snapshot_holds_at_most_its_budget_footers_included(tmp_path) -> None:
    """``LAKEQL_S3_CACHE_MB`` (a build; a connection: 64 MB) bounds every byte held: footers of objects
    too big to hold whole count too (10,000 objects over the whole-object limit held 64 KiB each: 655 MB
    beside a 64 MB budget)."""
    import pyarrow.fs as pafs

    from lakeql.lake import FileStamp
    from lakeql.sources.snapshot import FOOTER_BYTES, Snapshot

    size = 3 * FOOTER_BYTES
    for i in range(40):
        (tmp_path / f"o{i:02d}.bin").write_bytes(bytes([i]) * size)
    listing = [FileStamp(f"o{i:02d}.bin", size, 0) for i in range(40)]
    fs = pafs.SubTreeFileSystem("/", pafs.LocalFileSystem())  # keys as the snapshot names them
    budget = 10 * FOOTER_BYTES
    snap = Snapshot(fs, str(tmp_path), listing, whole=FOOTER_BYTES, budget=budget)
    paths = list(snap.stamps)
    assert len(paths) == 40
    snap.prefetch(paths, workers=4)
    held = sum(map(len, snap.blobs.values())) + sum(map(len, snap.tails.values()))
    assert snap.held == held and 0 < held <= budget, (held, budget)
    # what is not held is read from the store, correctly
    f = snap.open(paths[-1])
    f.seek(size - 3)
    assert f.read(3) == bytes([int(paths[-1][-6:-4])]) * 3
