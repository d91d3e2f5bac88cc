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


def test_index_command_collects_garbage_less_often(tmp_path, monkeypatch):
    """``lakeql index`` raises the collector's first threshold while it builds (imports alone made ~140
    collections of a refresh) and restores it afterwards, also when the build fails."""
    import gc

    from lakeql import cli, indexer

    seen = []
    monkeypatch.setattr(indexer, "build_index", lambda *a, **k: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    assert cli.main(["index", str(tmp_path), "--index-dir", str(tmp_path / "idx"), "--quiet"]) == 0
    assert seen == [(cli.INDEX_GC_THRESHOLD, *before[1:])] and gc.get_threshold() == before

    def fail(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(indexer, "build_index", fail)
    assert cli.main(["index", str(tmp_path), "--index-dir", str(tmp_path / "idx"), "--quiet"]) == 2
    assert gc.get_threshold() == before


NOOP = """
import json, sys
from lakeql.cli import main
code = main(["index", sys.argv[1], "--index-dir", sys.argv[2], "--refresh", "--quiet"])
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.argv[3:] if m in sys.modules)}))
"""


def test_noop_refresh_imports_and_rewrites_nothing_it_does_not_need(folder_lake, tmp_path):
    """``lakeql index --refresh`` with nothing changed reads the manifest and the states and stops: no
    DuckDB, scipy, pyarrow.compute or pandas import (~0.2 CPU s of a 0.35 CPU s process), and the catalog,
    schema and database files are left as they are (same inode and mtime)."""
    import json
    import subprocess
    import sys

    root, _ = folder_lake
    idx = tmp_path / "idx"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(lakeql.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    mods = [
        "duckdb",
        "scipy",
        "scipy.sparse",
        "pyarrow.compute",
        "pandas",
        "lakeql.profile_shards",
        "importlib.metadata",
    ]

    def refresh() -> dict:
        p = subprocess.run(
            [sys.executable, "-c", NOOP, str(root), str(idx), *mods],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return json.loads(p.stdout.strip().splitlines()[-1])

    assert refresh()["code"] == 0  # the first build (a refresh of nothing is a full build)
    refresh()  # settles what a first build leaves to a later run (none expected; harmless)

    def stamps() -> dict:
        return {
            p.relative_to(idx).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for d in ("catalog", "schemas", "views")
            for p in (idx / d).rglob("*")
            if p.is_file()
        } | {"lake.duckdb": ((idx / "lake.duckdb").stat().st_ino, (idx / "lake.duckdb").stat().st_mtime_ns)}

    before, manifest = stamps(), (idx / "indexes.parquet").read_bytes()
    got = refresh()
    assert got == {"code": 0, "loaded": []}
    assert stamps() == before
    # the schemas row was recorded again on every refresh (a new built_at: the manifest rewritten, every
    # schema file checksummed again, and the report saying schemas were built)
    assert (idx / "indexes.parquet").read_bytes() == manifest
    refresh()
    assert (idx / "indexes.parquet").read_bytes() == manifest


def test_recorded_as_only_when_the_row_describes_the_files(tmp_path):
    """``Store.recorded_as``: the manifest row already says what recording the entry would (the same
    path, params, sizes and files, intact); any difference records it again."""
    import dataclasses

    from lakeql.store import IndexEntry, Store, dir_bytes

    store = Store(tmp_path / "idx")
    folder = store.root / "thing"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")

    def entry(**kw) -> IndexEntry:
        return IndexEntry("thing", "", "", "thing", dir_bytes(folder), 10, "", params='{"p": 1}', **kw)

    assert not store.recorded_as(entry())  # no row yet
    store.record(entry())
    assert store.recorded_as(entry())
    assert not store.recorded_as(entry(format_version=0))
    assert not store.recorded_as(dataclasses.replace(entry(), params='{"p": 2}'))
    assert not store.recorded_as(dataclasses.replace(entry(), source_bytes=11))
    (folder / "a.txt").write_text("omega")  # same size, other bytes: the checksum differs
    assert not store.recorded_as(entry())
    store.record(entry())
    assert store.recorded_as(entry())
    (folder / "b.txt").write_text("")  # a file the row does not list (no bytes: the sizes agree)
    assert not store.recorded_as(entry())


@pytest.mark.parametrize("unique_below", [8, (1 << 20) + 1])
def test_tfidf_over_present_features_equals_the_dense_formula(unique_below, monkeypatch):
    """``tfidf_csr`` counts document frequencies over the features present (np.unique) when the matrix has
    few entries, else with a dense count over all 2**20 features (np.unique sorts: 12x slower at 5M
    entries): both byte-equal to the dense formula on random matrices (unsorted indices, repeated
    counts, empty rows). ``unique_below`` (2**20 + 1: no matrix is small enough) picks the branch."""
    import numpy as np
    import scipy.sparse as sp

    from lakeql.joins import union_index
    from lakeql.joins.union_index import tfidf_csr

    monkeypatch.setattr(union_index, "UNIQUE_BELOW", unique_below)
    calls = []
    real_unique = np.unique
    monkeypatch.setattr(  # scipy calls np.unique too, without return_inverse
        np, "unique", lambda *a, **k: calls.append(k.get("return_inverse")) or real_unique(*a, **k)
    )

    def dense_formula(m):
        n_rows, n_dims = m.shape
        m.data = 1.0 + np.log(np.maximum(m.data, 1e-9), dtype=np.float32)
        m.data = np.maximum(m.data, 0.1).astype(np.float32)
        df = np.bincount(m.indices, minlength=n_dims)
        idf = np.log((n_rows + 1) / (df + 1), dtype=np.float64) + 1.0
        m.data = (m.data * idf[m.indices]).astype(np.float32)
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ m, dtype=np.float32)

    rng = np.random.default_rng(7)
    for trial in range(60):
        rows, dims = int(rng.integers(1, 80)), 1 << 20
        lens = rng.integers(0, 40, rows)
        indptr = np.r_[0, np.cumsum(lens)].astype(np.int64)
        idx = np.concatenate(
            [
                rng.choice(rng.integers(50, 5000), n, replace=False) if n else np.empty(0, np.int64)
                for n in lens
            ]
        ).astype(np.int32)
        idx = np.where(rng.random(len(idx)) < 0.1, idx + (1 << 19), idx).astype(np.int32)
        # per row the same feature at most once (as _csr makes them), in no particular order
        idx = np.concatenate(
            [
                np.unique(idx[a:b])[rng.permutation(len(np.unique(idx[a:b])))]
                for a, b in zip(indptr[:-1], indptr[1:], strict=True)
            ]
            or [idx]
        )
        lens = np.diff(
            np.r_[
                0, np.cumsum([len(np.unique(idx[a:b])) for a, b in zip(indptr[:-1], indptr[1:], strict=True)])
            ]
        )
        indptr = np.r_[0, np.cumsum(lens)].astype(np.int64)
        val = rng.integers(1, 9, len(idx)).astype(np.float32) * rng.choice([1.0, 0.5, 2.0], len(idx))
        m = sp.csr_matrix((val.astype(np.float32), idx, indptr), shape=(rows, dims))
        calls.clear()
        got = tfidf_csr(m.copy())
        assert (True in calls) == (unique_below == 8), trial  # the branch asked for ran
        want = dense_formula(m.copy())
        for name in ("data", "indices", "indptr"):
            assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), (trial, name)


def test_index_command_exits_at_once_with_everything_written(folder_lake, tmp_path):
    """The ``lakeql index`` command ends its process without the interpreter's finalization (0.1 CPU
    s): its output is flushed, its exit code kept, and the index it wrote is complete and usable. Called
    with arguments (a caller's ``main([...])``), it returns as before."""
    import subprocess
    import sys

    root, _ = folder_lake
    idx = tmp_path / "idx"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(lakeql.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "lakeql.cli",
            "index",
            str(root),
            "--index-dir",
            str(idx),
            "--only",
            "joins",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert "indexed 8 tables" in p.stdout + p.stderr  # the last line, flushed before the exit
    con = lakeql.connect(root, index_dir=idx)
    try:
        got = con.execute("SELECT candidate_table FROM joinable('flights.flights', 'carrier', k := 1)")
        assert got.fetchall() == [("flights.airlines",)]
    finally:
        con.close()
    bad = subprocess.run(
        [sys.executable, "-m", "lakeql.cli", "index", str(tmp_path / "nope"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "lakeql: error:" in bad.stderr
    from lakeql.cli import main

    assert main(["index", str(root), "--index-dir", str(idx), "--refresh", "--quiet"]) == 0  # returns


def test_refresh_considers_the_same_composite_pairs_as_a_full_build(folder_lake, tmp_path, monkeypatch):
    """The ``MAX_CHECKS`` strongest candidate pairs are considered, cached or not: with the previous
    results cached, a refresh checks nothing and finds the full build's hints (cached pairs no longer
    free the budget for pairs a full build never checks)."""
    from lakeql.catalog import Catalog
    from lakeql.context import hints
    from lakeql.lake import discover
    from lakeql.store import Store

    root, _ = folder_lake
    lakeql.index(root, index_dir=tmp_path / "idx", progress=False, capabilities=["joins"])
    lake = discover(root)
    store = Store.for_lake(lake, tmp_path / "idx")
    cat = Catalog.build(lake, store)
    assert len(hints._candidates(hints.read_edges(store, lake), lake, cat)) > 3
    monkeypatch.setattr(hints, "MAX_CHECKS", 3)
    calls = []
    real = hints._check
    monkeypatch.setattr(hints, "_check", lambda *a: calls.append(a[2:]) or real(*a))
    found, used = hints.composite_hints(store, lake, cat)
    assert len(calls) == 3 and len(used) == 3
    again, used2 = hints.composite_hints(store, lake, cat, used)
    assert len(calls) == 3 and again == found and used2 == used


def test_write_if_changed(tmp_path, monkeypatch):
    """``lakeql.store.write_if_changed`` (the schemas' state files; views' manifest check through
    ``same_bytes``): writes only when the bytes differ, fsynced, through a temp name clean_stale knows."""
    from lakeql import store as store_mod
    from lakeql.store import TEMP_RE, same_bytes, write_if_changed

    synced = []
    real = os.fsync
    monkeypatch.setattr(store_mod.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    path = tmp_path / "state.bin"
    assert write_if_changed(path, b"one") and path.read_bytes() == b"one" and synced
    st = path.stat()
    synced.clear()
    assert not write_if_changed(path, b"one") and not synced
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert same_bytes(path, b"one") and not same_bytes(path, b"two") and not same_bytes(path, b"on")
    assert not same_bytes(tmp_path / "missing", b"")
    assert write_if_changed(path, b"two") and path.read_bytes() == b"two" and synced
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]

    seen = []
    real_replace = os.replace
    monkeypatch.setattr(store_mod.os, "replace", lambda a, b: seen.append(Path(a).name) or real_replace(a, b))
    write_if_changed(path, b"three")
    assert len(seen) == 1 and TEMP_RE.match(seen[0])  # a killed write leaves what clean_stale removes
