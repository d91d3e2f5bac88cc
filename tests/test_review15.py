"""Review of the in-place update of ``lake.duckdb`` (h/refresh10k3): after renames, moves between domains,
a removed or renamed domain and hostile names, a file updated in place holds exactly what a full build's
does, and the stock duckdb CLI reads it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_refresh_database import CAPS, objects, same_as_full_build
from testutil import duckdb_cli

import lakeql
from lakeql import lakedb

HOSTILE = 'we"ird; DROP SCHEMA x CASCADE--'


def _step(root: Path, what: str) -> None:
    py = root / "python"
    if what == "rename_table":
        src = sorted(py.iterdir())[0]
        src.rename(src.with_name("renamed_" + src.name))
    elif what == "move_table":  # into a domain that does not exist yet
        src = sorted(py.iterdir())[0]
        (root / "moved").mkdir()
        shutil.move(str(src), root / "moved" / src.name)
    elif what == "hostile_table":
        src = sorted(py.iterdir())[0]
        shutil.copy(src, py / f"{HOSTILE}{src.suffix}")
    elif what == "hostile_domain":
        (root / HOSTILE).mkdir()
        shutil.copy(root / "flights" / "airlines.parquet", root / HOSTILE / f"{HOSTILE}.parquet")
    elif what == "rename_domain":
        (root / "moved").rename(root / "moved2")
    elif what == "remove_domain":
        shutil.rmtree(root / HOSTILE)
    elif what == "empty_domain":  # the last table of a domain moves out: its schema goes
        for p in sorted((root / "moved2").iterdir()):
            shutil.move(str(p), py / p.name)
        (root / "moved2").rmdir()


def _cli_counts(db: Path) -> dict[str, int]:
    """Views per schema as the stock duckdb CLI reads the file, each view queried."""
    sql = "SELECT schema_name, count(*) FROM duckdb_views() WHERE NOT internal GROUP BY ALL ORDER BY 1"
    out = subprocess.run(
        [duckdb_cli(), "-readonly", "-json", str(db), "-c", sql], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return {r["schema_name"]: r["count_star()"] for r in json.loads(out.stdout or "[]")}


def test_in_place_updates_after_renames_moves_and_hostile_names_equal_a_full_build(tmp_path, monkeypatch):
    from lakes import flights_lake
    from testutil import SAMPLE_LAKE

    root = tmp_path / "lake"
    root.mkdir()
    flights_lake(root, full=False)
    shutil.copytree(SAMPLE_LAKE / "python", root / "python")
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    modes: list[bool] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: modes.append(k["in_place"]) or real(*a, **k))
    steps = [
        "rename_table",
        "move_table",
        "hostile_table",
        "hostile_domain",
        "rename_domain",
        "remove_domain",
        "empty_domain",
    ]
    for n, what in enumerate(steps):
        _step(root, what)
        lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
        assert modes[-1:] == [True] and len(modes) == n + 1, (what, modes)  # each an update in place
        same_as_full_build(root, idx, tmp_path / f"full{n}")
        views = objects(idx / "lake.duckdb")["views"]
        want: dict[str, int] = {}
        for s, _, _ in views:
            want[s] = want.get(s, 0) + 1
        assert _cli_counts(idx / "lake.duckdb") == want, what
    assert "moved2" not in want and HOSTILE not in want and "moved" not in want


def test_a_manifest_rewritten_by_another_store_within_one_timestamp_tick_is_read_again(tmp_path):
    """The rows a store wrote are kept as its manifest while the file is unchanged: another store's
    write (``lakeql train-joiner`` records without the build lock; two stores in one process) must be
    read even when its mtime equals the one kept (a filesystem or kernel with coarse timestamps: 1-2 s
    on HFS+/FAT, a jiffy on Linux before 6.13). Simulated with ``os.utime``."""
    import os

    from lakeql.store import MANIFEST, IndexEntry, Store

    (tmp_path / "a.bin").write_bytes(b"abc")
    mine, other = Store(tmp_path), Store(tmp_path)
    mine.record(IndexEntry("joins", "", "", "a.bin", 3, 1, ""))
    stamp = os.stat(tmp_path / MANIFEST)
    other.record(IndexEntry("catalog", "", "", "a.bin", 3, 2, ""))
    os.utime(tmp_path / MANIFEST, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the same tick
    assert mine.find("catalog") is not None  # the other store's row, not the rows mine wrote
    mine.record(IndexEntry("ngram", "t.a", "c", "a.bin", 3, 3, ""))
    assert {e.kind for e in Store(tmp_path).entries()} == {"joins", "catalog", "ngram"}  # none lost


def test_a_nul_in_a_recorded_name_is_damage_not_a_crash(tmp_path):
    """A manifest row whose path or checksums name holds a NUL (a damaged manifest) is an index missing
    its files, as ``Path.exists()`` and the folder listing took it: ``os.stat`` raises ValueError."""
    from lakeql.store import IndexEntry, Store

    store = Store(tmp_path)
    d = tmp_path / "prof"
    d.mkdir()
    (d / "columns.parquet").write_bytes(b"c" * 10)
    store.record(IndexEntry("column_profile", "t.a", "", "prof", 10, 1, "fp"))
    row = store.find("column_profile", "t.a")
    bad = IndexEntry(
        "column_profile",
        "t.b",
        "",
        "prof",
        10,
        1,
        "fp",
        checksums=row.checksums.replace("columns.parquet", "col\\u0000umns.parquet"),
    )
    assert store.damage(bad) == "missing prof/col\x00umns.parquet"
    assert store.damage(IndexEntry("joins", "", "", "pr\x00of", 1, 1, "")) == "missing its files (pr\x00of)"


def _cli_session_killed_with_a_wal(db: Path) -> None:
    """A stock duckdb CLI session on ``db`` (read-write, its default) that created a view and was killed
    before it checkpointed: ``db.wal`` is left beside the file."""
    import os
    import time

    p = subprocess.Popen([duckdb_cli(), str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        p.stdin.write(
            "PRAGMA disable_checkpoint_on_shutdown; SET checkpoint_threshold = '10GB'; "
            "CREATE VIEW flights.mine AS SELECT 42 AS x; SELECT 'made';\n"
        )
        p.stdin.flush()
        deadline = time.monotonic() + 60
        while "made" not in p.stdout.readline() and time.monotonic() < deadline:
            pass
    finally:
        p.kill()
        p.wait()
    assert os.path.getsize(f"{db}.wal") > 0


@pytest.mark.parametrize("grow_max", [2.5, 0.5])  # an update in place; a compaction
def test_a_wal_a_killed_cli_session_left_does_not_break_the_refreshed_file(tmp_path, monkeypatch, grow_max):
    """The WAL a killed stock CLI session left belongs to the file it had open: once a refresh renames
    another ``lake.duckdb`` into place, the stock CLI refused to open it ('the WAL checkpoint iteration
    does not match the database file' after an update in place, 'WAL does not match database file' after
    a new file). The refresh removes that WAL with the file it belonged to."""
    from lakes import flights_lake

    root = tmp_path / "lake"
    root.mkdir()
    flights_lake(root, full=False)
    idx = tmp_path / "idx"
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    db = idx / "lake.duckdb"
    _cli_session_killed_with_a_wal(db)
    monkeypatch.setattr(lakedb, "GROW_MAX", grow_max)
    modes: list[bool] = []
    real = lakedb.update
    monkeypatch.setattr(lakedb, "update", lambda *a, **k: modes.append(k["in_place"]) or real(*a, **k))
    shutil.copy(root / "flights" / "airlines.parquet", root / "flights" / "carriers.parquet")
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
    assert modes == [grow_max > 1]
    assert not Path(f"{db}.wal").exists()
    counts = _cli_counts(db)  # the stock CLI opens the refreshed file
    assert counts == {"flights": len([v for v in objects(db)["views"] if v[0] == "flights"])}
    assert ("flights", "carriers") in {(s, v) for s, v, _ in objects(db)["views"]}


def test_a_domain_named_like_the_build_connections_alias_gets_its_view(tmp_path, recwarn):
    """The files are written on a connection that attached them as ``lakeql_out``: a domain folder of
    that name holding a table of that name made ``CREATE VIEW "lakeql_out"."lakeql_out"`` ambiguous
    (catalog.schema or schema.view), so its view was left out of ``lake.duckdb`` with a warning telling
    to fix the table's files, and with no digest recorded every refresh wrote the file whole. The alias
    now holds a '/', which no folder name can."""
    import warnings

    from lakes import flights_lake

    from lakeql.dbutil import SkippedViewWarning
    from lakeql.store import Store

    root = tmp_path / "lake"
    root.mkdir()
    flights_lake(root, full=False)
    for name in ("lakeql_out", "lakeql_prev"):
        (root / name).mkdir()
        for table in (name, "main"):
            shutil.copy(root / "flights" / "airlines.parquet", root / name / f"{table}.parquet")
    idx = tmp_path / "idx"
    warnings.simplefilter("always", SkippedViewWarning)
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS)
    shutil.copy(root / "flights" / "airlines.parquet", root / "lakeql_out" / "more.parquet")
    lakeql.index(root, index_dir=idx, progress=False, capabilities=CAPS, refresh=True)
    assert not [w for w in recwarn if issubclass(w.category, SkippedViewWarning)]
    views = {(s, v) for s, v, _ in objects(idx / "lake.duckdb")["views"]}
    for name in ("lakeql_out", "lakeql_prev"):
        assert {(name, name), (name, "main")} <= views
    assert ("lakeql_out", "more") in views
    assert json.loads(Store(idx).find("database").params)["digest"]
    same_as_full_build(root, idx, tmp_path / "full")
