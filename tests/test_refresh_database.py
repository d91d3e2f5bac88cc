"""``lakeql index --refresh`` updates ``lake.duckdb`` in place (issue 10 item 4): only the views of
changed tables are created or dropped, on a copy renamed into place. After each kind of change the file
holds exactly the schemas, views and macros of a full build; a ``kill -9`` at any point of the update
leaves an index that connections and the stock CLI read, and the next refresh repairs it."""

from __future__ import annotations

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
    # after the statements ran on the copy, before its checkpoint: the copy is half made
    "update": """
import contextlib
real = L.new_database_file
@contextlib.contextmanager
def boom(path, storage):
    with real(path, storage) as con:
        yield con
        os.kill(os.getpid(), signal.SIGKILL)
L.new_database_file = boom
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


def test_refreshes_keep_the_database_files_the_size_of_a_full_build(lake, tmp_path):
    """A checkpoint writes the whole catalog before it frees the old one: a byte copy of ``lake.duckdb``
    updated in place doubled at its first update and stayed so. Updates copy the catalog into a new file
    (``COPY FROM DATABASE``), so five refreshes that each add and drop a view leave ``lake.duckdb`` and
    the views files the size of a full build's."""
    root, held = lake
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    sizes = [(idx / "lake.duckdb").stat().st_size]
    for i in range(5):
        shutil.copy(root / "flights" / "airlines.parquet", root / "flights" / f"extra{i}.parquet")
        if i:
            (root / "flights" / f"extra{i - 1}.parquet").unlink()
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        sizes.append((idx / "lake.duckdb").stat().st_size)
    assert ("flights", "extra4") in {(s, v) for s, v, _ in objects(idx / "lake.duckdb")["views"]}
    full = tmp_path / "full"
    same_as_full_build(root, idx, full)  # (writes the full build)
    fresh = (full / "lake.duckdb").stat().st_size
    assert max(sizes) <= 1.15 * fresh, (sizes, fresh)
    for mine in sorted((idx / "views").glob("*.duckdb")):
        theirs = (full / "views" / mine.name).stat().st_size
        assert mine.stat().st_size <= 1.15 * theirs, (mine.name, mine.stat().st_size, theirs)


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
