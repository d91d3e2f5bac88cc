"""``lakeql index --refresh`` updates ``lake.duckdb`` in place (issue 10 item 4): only the views of
changed tables are created or dropped, on a copy renamed into place. After each kind of change the file
holds exactly the schemas, views and macros of a full build; a ``kill -9`` at any point of the update
leaves an index that connections and the stock CLI read, and the next refresh repairs it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import duckdb
import pytest
from lakes import flights_lake, split_table
from testutil import SAMPLE_LAKE

import lakeql
from lakeql import lakedb
from lakeql import views as views_mod
from lakeql.indexer import DUCKDB_CLI_STORAGE
from lakeql.store import Store

CAPS = ["context"]


@pytest.fixture
def lake(tmp_path):
    """The sample week (flights in 4 files, the last held back) + the python domain; (lake, held file)."""
    root = tmp_path / "lake"
    root.mkdir()
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 4, keep_last=1)
    shutil.copytree(SAMPLE_LAKE / "python", root / "python")
    return root, held[0]


def objects(db: Path) -> dict[str, list]:
    """The schemas, views (with their SQL) and macros of a database file."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        name = con.execute("SELECT current_database()").fetchone()[0]
        q = {
            "schemas": "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? AND NOT internal",
            "views": "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = ? "
            "AND NOT internal",
            "macros": "SELECT schema_name, function_name, function_type, parameters::VARCHAR, "
            "macro_definition "
            "FROM duckdb_functions() WHERE database_name = ? AND NOT internal",
        }
        return {k: sorted(con.execute(sql, [name]).fetchall()) for k, sql in q.items()}
    finally:
        con.close()


def _norm(sql: str) -> str:
    return re.sub(
        r"EXCLUDE \(([^)]*)\)", lambda m: "EXCLUDE (" + ", ".join(sorted(m[1].split(", "))) + ")", sql
    )


def same_as_full_build(lake: Path, idx: Path, full: Path) -> None:
    shutil.rmtree(full, ignore_errors=True)
    lakeql.index(lake, index_dir=full, progress=False, capabilities=CAPS)
    got, want = objects(idx / "lake.duckdb"), objects(full / "lake.duckdb")
    # macros name their index dir (the full build's is another folder); DuckDB renders an EXCLUDE list
    # in no fixed order
    want["macros"] = sorted(
        tuple(_norm(str(x).replace(str(full), str(idx))) for x in m) for m in want["macros"]
    )
    got["macros"] = sorted(tuple(_norm(str(x)) for x in m) for m in got["macros"])
    assert got == want and len(want["views"]) > 5 and len(want["macros"]) > 5
    # the views files connections attach: the same files, each with the same schemas and views
    mine, theirs = sorted((idx / "views").glob("*.duckdb")), sorted((full / "views").glob("*.duckdb"))
    assert [p.name for p in mine] == [p.name for p in theirs] and mine
    for a, b in zip(mine, theirs, strict=True):
        assert objects(a) == objects(b), a.name
    assert json.loads((idx / "views" / "views.json").read_text()) == json.loads(
        (full / "views" / "views.json").read_text()
    )
    assert not [p.name for p in idx.iterdir() if ".tmp" in p.name or p.name.endswith(".wal")]


def change(lake: Path, held: Path, what: str) -> None:
    if what == "append":
        shutil.copy(held, lake / "flights" / "flights" / held.name)
    elif what == "add":
        shutil.copy(lake / "flights" / "airlines.parquet", lake / "flights" / "carriers.parquet")
    elif what == "delete":
        (lake / "flights" / "planes.parquet").unlink()
    elif what == "column":
        p = lake / "flights" / "weather.parquet"
        tmp = p.with_name("weather.tmp")
        duckdb.sql(f"COPY (SELECT *, temp * 2 AS temp2 FROM '{p}') TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, p)
    elif what == "domain":
        shutil.rmtree(lake / "python")


def test_each_change_updates_in_place_and_equals_a_full_build(lake, tmp_path, monkeypatch):
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    calls: list[object] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: calls.append(r := real(*a, **k)) or r)
    made: list[object] = []
    real_views = views_mod._update_db
    monkeypatch.setattr(views_mod, "_update_db", lambda *a, **k: made.append(r := real_views(*a, **k)) or r)
    before = objects(idx / "lake.duckdb")
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)  # no-op
    assert calls == [] and objects(idx / "lake.duckdb") == before
    for what in ("append", "add", "delete", "column", "domain"):
        calls.clear()
        made.clear()
        change(root, held, what)
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        # updated in place, no view left out; a new column changes no view's text (SELECT *): kept as is
        assert calls == ([] if what == "column" else [[]]), what
        if what not in ("column", "domain"):  # and the views file of the changed domain (or the small ones)
            assert made and all(m == [] for m in made), what
        same_as_full_build(root, idx, tmp_path / f"full_{what}")
    views = {(s, v) for s, v, _ in objects(idx / "lake.duckdb")["views"]}
    assert ("flights", "carriers") in views and ("flights", "planes") not in views
    assert not any(s == "python" for s, _ in views)
    con = lakeql.connect(root, index_dir=idx)
    assert con.execute("SELECT count(*) FROM flights.weather WHERE temp2 = temp * 2").fetchone()[0] > 0
    con.close()


def test_a_record_the_manifest_does_not_vouch_for_is_not_used(lake, tmp_path, monkeypatch):
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    # another build's statements (here: of a lake without the table 'planes') in the record
    (root / "flights" / "planes.parquet").rename(tmp_path / "planes.parquet")
    other = tmp_path / "other"
    lakeql.index(root, index_dir=other, progress=False, capabilities=CAPS)
    (tmp_path / "planes.parquet").rename(root / "flights" / "planes.parquet")
    shutil.copy(other / lakedb.SIDECAR, idx / lakedb.SIDECAR)
    calls: list[object] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: calls.append(r := real(*a, **k)) or r)
    change(root, held, "add")
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
    assert calls == []  # written whole
    same_as_full_build(root, idx, tmp_path / "full")


KILL = {
    # after the statements ran on the copy, before its checkpoint: the copy is half made (a new file the
    # catalog is copied into, or a byte copy updated in place: both are hooked)
    "update": """
import contextlib
def killing(real):
    @contextlib.contextmanager
    def boom(*args):
        with real(*args) as con:
            yield con
            os.kill(os.getpid(), signal.SIGKILL)
    return boom
L.new_database_file = killing(L.new_database_file)
L.database_file = killing(L.database_file)
""",
    # the new file renamed into place, its manifest row not yet recorded
    "record": """
def boom(store, data):
    os.kill(os.getpid(), signal.SIGKILL)
L.save = boom
""",
}


@pytest.mark.parametrize("point", sorted(KILL))
def test_kill_9_during_the_update_leaves_a_usable_index(lake, tmp_path, point):
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    before = objects(idx / "lake.duckdb")
    change(root, held, "add")
    code = (
        "import os, signal, sys\nimport lakeql\nimport lakeql.lakedb as L\n"
        + KILL[point]
        + "lakeql.index(sys.argv[1], index_dir=sys.argv[2], progress=False, capabilities=['context'], "
        "refresh=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(lakeql.__file__).parents[1]), *sys.path]))
    proc = subprocess.run([sys.executable, "-c", code, str(root), str(idx)], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    # the stock CLI's file opens and is the old one or the new one, whole
    got = objects(idx / "lake.duckdb")
    views = {(s, v) for s, v, _ in got["views"]}
    assert got == before or ("flights", "carriers") in views
    # connections read the lake (the previous index, or views made from the lake)
    con = lakeql.connect(root, index_dir=idx)
    assert con.execute("SELECT count(*) FROM flights.carriers").fetchone()[0] > 0
    con.close()
    # the next refresh repairs (a killed build's kept-aside file restored, or the new one recorded)
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
    assert Store(idx).intact(Store(idx).find("database"))
    same_as_full_build(root, idx, tmp_path / "full")


def test_a_moved_index_dir_is_updated_in_place_with_its_macros_made_again(lake, tmp_path, monkeypatch):
    root, held = lake
    first = tmp_path / "first"
    lakeql.index(root, index_dir=first, progress=False, capabilities=CAPS)
    idx = tmp_path / "moved"
    shutil.copytree(first, idx)  # the macros name the index dir: 'first' in the copied file
    calls: list[object] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: calls.append(r := real(*a, **k)) or r)
    change(root, held, "add")
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
    assert calls == [[]]
    assert not any(str(first) in str(m) for m in objects(idx / "lake.duckdb")["macros"])
    same_as_full_build(root, idx, tmp_path / "full")


def test_a_views_record_the_manifest_does_not_list_is_never_executed(lake, tmp_path):
    """``views/.statements.json.z`` is SQL run on a connection: one that the ``views`` row's checksums do
    not cover (an index made by an older lakeql has none; a file put there later is not vouched for) must
    not be read, and a record's undo statements are only ever ``DROP VIEW/SCHEMA IF EXISTS name``."""
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    store = Store(idx)
    # an index made before the record existed: the views row lists no record
    (idx / "views" / views_mod.STATEMENTS).unlink()
    entry = store.find("views")
    entry.checksums = ""
    store.record(entry)
    assert views_mod.STATEMENTS not in json.loads(Store(idx).find("views").checksums)
    # then a record appears beside it, whose undo statements are not DROPs
    pwned = tmp_path / "pwned.csv"
    old = json.loads((idx / "views" / "views.json").read_text())
    digests = [s["sql"] for s in old["domains"].values() if s.get("sql")] + [old.get("small_sql")]
    hostile = f"COPY (SELECT 42 AS x) TO '{pwned}' (FORMAT csv)"
    record = {
        "version": 1,
        "storage": DUCKDB_CLI_STORAGE,
        "files": {d: [[hostile, "CREATE VIEW main.gone AS SELECT 1"]] for d in digests if d},
    }
    (idx / "views" / views_mod.STATEMENTS).write_bytes(zlib.compress(json.dumps(record).encode()))
    for what in ("append", "domain"):
        change(root, held, what)
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        assert not pwned.exists(), what
        same_as_full_build(root, idx, tmp_path / f"full_{what}")


def test_undo_statements_are_only_drops(tmp_path):
    """Even a record the manifest vouches for runs no statement but ``DROP ... IF EXISTS name``."""
    from lakeql.views import _update_db

    db = tmp_path / "a.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE VIEW main.v AS SELECT 1 AS x")
    con.close()
    pwned = tmp_path / "pwned.csv"
    old = [[f"COPY (SELECT 42 AS x) TO '{pwned}' (FORMAT csv)", "CREATE VIEW main.v AS SELECT 1 AS x"]]
    before = {"dir": tmp_path, "by_key": {"k": "d1"}, "paths": {"d1": db}, "record": {"d1": old}}
    got = _update_db(before, "k", tmp_path / "b.duckdb", ["CREATE VIEW main.w AS SELECT 2 AS y"], {}, "x")
    assert not pwned.exists()
    assert got is None  # not updated in place: written whole
    assert lakedb.diff([[f"COPY (SELECT 1) TO '{pwned}'", "CREATE SCHEMA IF NOT EXISTS a"]], []) is None


def _sizes_over_refreshes(root: Path, idx: Path, n: int, monkeypatch) -> tuple[list[int], list[bool]]:
    """``lake.duckdb``'s size after a build and ``n`` refreshes that each add a view and drop one, and per
    refresh whether the update was made in place (a byte copy) rather than compacted."""
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    sizes = [(idx / "lake.duckdb").stat().st_size]
    modes: list[bool] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: modes.append(k["in_place"]) or real(*a, **k))
    for i in range(n):
        shutil.copy(root / "flights" / "airlines.parquet", root / "flights" / f"extra{i}.parquet")
        if i:
            (root / "flights" / f"extra{i - 1}.parquet").unlink()
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        sizes.append((idx / "lake.duckdb").stat().st_size)
    assert ("flights", f"extra{n - 1}") in {(s, v) for s, v, _ in objects(idx / "lake.duckdb")["views"]}
    return sizes, modes


def test_refreshes_update_in_place_and_the_database_files_stay_bounded(lake, tmp_path, monkeypatch):
    """An update in place (a byte copy of ``lake.duckdb``, checkpointed) grows the file (a checkpoint writes
    the whole catalog before it frees the old one); it is made while the file is at most
    ``lakedb.GROW_MAX`` times its size when last written whole, so eight refreshes stay under that bound,
    each equal to a full build. The views files are made by copying the catalog: a full build's size."""
    root, held = lake
    idx = tmp_path / "idx"
    sizes, modes = _sizes_over_refreshes(root, idx, 8, monkeypatch)
    assert modes == [True] * 8  # each update in place (the cheap way)
    full = tmp_path / "full"
    same_as_full_build(root, idx, full)  # (writes the full build)
    fresh = (full / "lake.duckdb").stat().st_size
    assert max(sizes) <= lakedb.GROW_MAX * fresh, (sizes, fresh)
    assert json.loads(Store(idx).find("database").params)["compact_bytes"] == sizes[0]
    for mine in sorted((idx / "views").glob("*.duckdb")):
        theirs = (full / "views" / mine.name).stat().st_size
        assert mine.stat().st_size <= 1.15 * theirs, (mine.name, mine.stat().st_size, theirs)


def test_a_file_grown_past_the_bound_is_compacted(lake, tmp_path, monkeypatch):
    """With a bound the first update in place exceeds, the next refresh compacts (a new file, the catalog
    copied into it: a full build's size), records that size, and the one after is in place again."""
    root, held = lake
    idx = tmp_path / "idx"
    monkeypatch.setattr(lakedb, "GROW_MAX", 1.1)
    sizes, modes = _sizes_over_refreshes(root, idx, 4, monkeypatch)
    assert sizes[1] > 1.1 * sizes[0], sizes  # the premise: an update in place grew it past the bound
    assert modes == [True, False, True, False], (modes, sizes)
    assert sizes[2] <= 1.15 * sizes[0] and sizes[4] <= 1.15 * sizes[0], sizes
    assert json.loads(Store(idx).find("database").params)["compact_bytes"] == sizes[4]
    same_as_full_build(root, idx, tmp_path / "full")


def test_a_record_without_a_compacted_size_compacts(lake, tmp_path, monkeypatch):
    """An index whose manifest row has no ``compact_bytes`` (an older lakeql; or a hostile value) is not
    updated in place: copied into a new file, and the size recorded."""
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    store = Store(idx)
    row = store.find("database")
    params = json.loads(row.params)
    for bad in (None, "9" * 30, True, -1):
        if bad is None:
            params.pop("compact_bytes")
        else:
            params["compact_bytes"] = bad
        assert not lakedb.in_place_ok(idx / "lake.duckdb", params.get("compact_bytes"))
    store.record(dataclasses.replace(row, params=json.dumps(params)))
    modes: list[bool] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: modes.append(k["in_place"]) or real(*a, **k))
    change(root, held, "add")
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
    assert modes == [False]
    size = (idx / "lake.duckdb").stat().st_size
    assert json.loads(Store(idx).find("database").params)["compact_bytes"] == size
    same_as_full_build(root, idx, tmp_path / "full")


def test_an_update_while_a_duckdb_cli_holds_the_file_open(lake, tmp_path, monkeypatch):
    """A stock duckdb CLI session on ``lake.duckdb`` (read-write: DuckDB's lock on the file) does not stop
    a refresh from updating it: the previous catalog is read from a private byte copy."""
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('ready', "
            "flush=True)\ntime.sleep(600)",
            str(idx / "lake.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        calls: list[object] = []
        real = lakedb.update
        monkeypatch.setattr(lakedb, "update", lambda *a, **k: calls.append(r := real(*a, **k)) or r)
        change(root, held, "add")
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        assert calls == [[]]  # updated in place
    finally:
        holder.kill()
        holder.wait()
    same_as_full_build(root, idx, tmp_path / "full")
    assert not [p.name for p in idx.iterdir() if p.name.endswith((".tmp", ".wal"))]


@pytest.mark.parametrize("seed", [0, 1])
def test_random_refreshes_in_place_or_compacted_equal_a_full_build(lake, tmp_path, monkeypatch, seed):
    """A random sequence of changes (tables added and deleted, a file appended and removed) under a
    random growth bound, so that updates in place and compactions alternate in no fixed order: after each
    refresh ``lake.duckdb`` and the views files hold what a full build's do, and ``lake.duckdb`` stays
    within 2.5x a full build's size."""
    import random

    rng = random.Random(seed)
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    monkeypatch.setattr(lakedb, "GROW_MAX", rng.choice([1.05, 1.5, 2.5]))
    modes: list[bool] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: modes.append(k["in_place"]) or real(*a, **k))
    extra: list[Path] = []
    appended = False
    for step in range(6):
        what = rng.choice(["add", "add", "delete", "append"])
        if what == "delete" and extra:
            extra.pop(rng.randrange(len(extra))).unlink()
        elif what == "append":
            target = root / "flights" / "flights" / held.name
            target.unlink() if appended else shutil.copy(held, target)
            appended = not appended
        else:
            src = rng.choice(["airlines", "weather", "airports"])
            extra.append(root / "flights" / f"x{step}_{src}.parquet")
            shutil.copy(root / "flights" / f"{src}.parquet", extra[-1])
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        full = tmp_path / "full"
        same_as_full_build(root, idx, full)
        assert (idx / "lake.duckdb").stat().st_size <= 2.5 * (full / "lake.duckdb").stat().st_size, step
    assert modes  # some refresh changed a view
