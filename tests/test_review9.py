"""review9: the S3 fault handling of h/s3faults, checked again (benchmarks/results/review9.md)."""

from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq
import pytest
from testutil import SAMPLE_LAKE

from lakeql import profile
from lakeql.catalog import Catalog
from lakeql.errors import RemoteStoreError
from lakeql.lake import discover
from lakeql.store import Store


class _OrderedEngine:
    """An engine (as Ray's, ``name != 'local'``) that runs the tasks here in order, and answers the
    store's failure for the tables of ``failing`` (what a Ray worker's reads of a failing store return)."""

    name = "ordered"
    parallelism = 1

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing

    def map(self, fn, items, *, on_result=None, return_exceptions=False, **kw):
        order = sorted(range(len(items)), key=lambda i: items[i][0].key in self.failing)  # failures last
        for i in order:
            failed = items[i][0].key in self.failing
            got = (
                RemoteStoreError(f"cannot read {items[i][0].key}: the store kept failing") if failed else None
            )
            on_result(i, got if failed else fn(items[i]))


def test_profiles_committed_before_a_workers_store_failure_are_recorded(tmp_path) -> None:
    """``--engine ray``: a worker's store failure stopped the profile stage without recording the profiles
    the driver had written already (each replaces the table's previous profile dir in place): their
    manifest rows kept the previous version's checksums, so the index held damaged entries."""
    root = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE, root)
    lake = discover(root)
    store = Store(tmp_path / "ix", lake)
    keys = sorted(lake.tables)
    done, failed = profile.ensure(store, lake, Catalog.open(lake, None), keys)
    assert set(done) == set(keys) and not failed
    # two tables change (airlines loses a row); the store fails for the other one
    airlines = root / "flights" / "airlines.parquet"
    pq.write_table(pq.read_table(airlines).slice(1), airlines)
    planes = root / "flights" / "planes.parquet"
    os.utime(planes, ns=(planes.stat().st_atime_ns, planes.stat().st_mtime_ns + 10**9))
    lake = discover(root)
    store = Store(tmp_path / "ix", lake)
    with pytest.raises(RemoteStoreError):
        profile.ensure(store, lake, Catalog.open(lake, None), keys, engine=_OrderedEngine({"flights.planes"}))
    entries = {e.table_name: e for e in store.entries(profile.KIND)}
    assert {k: store.damage(e) for k, e in entries.items() if store.damage(e)} == {}
    assert not store.is_stale(entries["flights.airlines"])  # profiled before the failure: recorded
    assert store.is_stale(entries["flights.planes"])  # the failing table keeps its previous profile


def test_local_fingerprints_and_shard_ids_are_unchanged_by_etags() -> None:
    """Local files have no ETag: their fingerprints and shard names must stay the ones written before
    ETags were recorded (another value would rebuild every existing local index whole)."""
    import hashlib

    from lakeql.lake import FileStamp, fingerprint_of
    from lakeql.shards import shard_id

    files = [FileStamp("d/b.parquet", 10, 1_700_000_000_123_456_789), FileStamp("a.parquet", 5, 7)]
    before = hashlib.sha1()
    for f in sorted(files, key=lambda s: s.path):
        before.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode())
    assert fingerprint_of(files) == before.hexdigest()
    assert shard_id(files[0]) == hashlib.sha1(b"d/b.parquet\x0010\x001700000000123456789").hexdigest()[:16]
    # an object's ETag is part of both: a rewrite of the same size and second is a change
    tagged = [FileStamp(f.path, f.size, f.mtime_ns, "9b2cf535f27731c974343645a3985328") for f in files]
    assert fingerprint_of(tagged) != fingerprint_of(files) and shard_id(tagged[0]) != shard_id(files[0])
