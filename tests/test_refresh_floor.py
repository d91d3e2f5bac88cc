"""The fixed cost of ``lakeql index --refresh`` (issue 10 item 4): what a refresh skips when the change
cannot reach it, each time checked against a full build of the same files."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from lakes import flights_lake, split_table

import lakeql


@pytest.fixture(scope="module")
def folder_lake(tmp_path_factory):
    """(lake root, held-back file): the sample week with flights in 10 files, the last held back."""
    root = tmp_path_factory.mktemp("floor_lake")
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 10, keep_last=1)
    return root, held[0]


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_composite_hints_not_rechecked_for_a_file_past_the_sample(folder_lake, tmp_path, monkeypatch):
    """A composite join hint is checked on each table's first ``SAMPLE_ROWS`` rows: a file appended
    after them cannot change the check, so a refresh reuses it; the schema files equal a full build's.
    A change inside the sample (the first file rewritten) checks again."""
    from lakeql.context import hints

    root, held = folder_lake
    lake = tmp_path / "lake"
    shutil.copytree(root, lake)
    monkeypatch.setattr(hints, "SAMPLE_ROWS", 2300)  # flights: 4 of 9 files; weather (2,226 rows): all
    caps = ["joins", "context"]
    lakeql.index(lake, index_dir=tmp_path / "idx", progress=False, capabilities=caps)
    calls = []
    real = hints._check
    monkeypatch.setattr(hints, "_check", lambda *a: calls.append(a[2:4]) or real(*a))
    shutil.copy(held, lake / "flights" / "flights" / held.name)
    lakeql.index(lake, index_dir=tmp_path / "idx", refresh=True, progress=False, capabilities=caps)
    assert calls == []
    lakeql.index(lake, index_dir=tmp_path / "full", progress=False, capabilities=caps)
    assert ("flights.flights", "flights.weather") in calls  # the full build checked it
    got, want = _files(tmp_path / "idx" / "schemas"), _files(tmp_path / "full" / "schemas")
    state = ".lakeql-schemas.json.gz"  # holds the check cache (keys name the files), compared below
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if k != state} == {k: v for k, v in want.items() if k != state}
    text = got["flights/flights.yaml"].decode()
    assert "(origin, time_hour) -> flights.weather (origin, time_hour)" in text

    # a file inside the sample changes: the pairs reading it are checked again
    calls.clear()
    first = lake / "flights" / "flights" / "part-00000.parquet"
    first.write_bytes(first.read_bytes())
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    lakeql.index(lake, index_dir=tmp_path / "idx", refresh=True, progress=False, capabilities=caps)
    assert ("flights.flights", "flights.weather") in calls


def test_sample_key(folder_lake, monkeypatch):
    """Which tables key their checks by their first files (plain Parquet folders with more rows than
    the sample before their last file) and which by their whole fingerprint."""
    from lakeql.catalog import Catalog
    from lakeql.context import hints
    from lakeql.lake import discover

    root, _ = folder_lake
    lake = discover(root)
    cat = Catalog.build(lake)
    assert (
        hints.sample_key(lake.tables["flights.flights"], cat, ("origin", "time_hour"))
        == lake.tables["flights.flights"].fingerprint
    )  # 5,489 rows: fewer than the sample, all files read
    monkeypatch.setattr(hints, "SAMPLE_ROWS", 2300)
    flights, weather = lake.tables["flights.flights"], lake.tables["flights.weather"]
    rows = cat.file_rows(flights)
    key = hints.sample_key(flights, cat, ("origin", "time_hour"))
    assert key.startswith("sample:") and key != flights.fingerprint
    assert rows[0] < hints.SAMPLE_ROWS <= sum(rows[:-1])  # a prefix of the files
    assert hints.sample_key(weather, cat, ("origin", "time_hour")) == weather.fingerprint  # one file
    # the key changes with the columns' types and with the files in the prefix, not with the others
    cat2 = Catalog.build(lake)
    assert hints.sample_key(flights, cat2, ("origin", "time_hour")) == key
    assert hints.sample_key(flights, cat, ("origin", "dep_time")) != key
    later = flights.with_files(flights.files[:-1] + [dataclasses.replace(flights.files[-1], size=1)])
    assert hints.sample_key(later, cat, ("origin", "time_hour")) == key
    first = flights.with_files([dataclasses.replace(flights.files[0], size=1)] + flights.files[1:])
    assert hints.sample_key(first, cat, ("origin", "time_hour")) != key
