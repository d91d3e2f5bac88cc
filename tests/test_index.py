"""The index store: catalog contents, atomic rebuilds, --refresh, staleness, corrupt files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from testutil import SAMPLE_LAKE  # noqa: F401

import lakeql
from lakeql.errors import CorruptIndexError, IndexDirError, StaleIndexError
from lakeql.lake import discover
from lakeql.store import IndexEntry, Store


def build(lake: Path, index_dir: Path, refresh: bool = False) -> Store:
    """``lakeql.index`` with only the foundation's work (the capabilities' default builds off)."""
    return lakeql.index(lake, index_dir=index_dir, refresh=refresh, progress=False, joins=False,
                        schemas=False).store


def test_catalog_matches_parquet_footers(sample_copy: Path, tmp_path: Path) -> None:
    store = build(sample_copy, tmp_path / "idx")
    tables = pq.read_table(store.path("catalog", "tables.parquet")).to_pylist()
    by_key = {t["table_name"]: t for t in tables}
    assert by_key["flights.airlines"]["row_count"] == 16
    assert by_key["python.functions"]["row_count"] == pq.read_metadata(
        sample_copy / "python" / "functions.parquet").num_rows
    cols = pq.read_table(store.path("catalog", "columns.parquet")).to_pylist()
    airline_cols = [(c["column_name"], c["type"]) for c in cols if c["table_name"] == "flights.airlines"]
    assert airline_cols == [("carrier", "VARCHAR"), ("name", "VARCHAR")]
    files = pq.read_table(store.path("catalog", "files.parquet")).to_pylist()
    assert {f["path"] for f in files} >= {"flights/airlines.parquet", "python/modules.parquet"}


def test_connect_gives_views_and_indexes(sample_copy: Path, tmp_path: Path) -> None:
    build(sample_copy, tmp_path / "idx")
    con = lakeql.connect(sample_copy, index_dir=tmp_path / "idx")
    assert isinstance(con, duckdb.DuckDBPyConnection)
    n = con.execute("SELECT count(*) FROM flights.flights f JOIN flights.airlines a USING (carrier)"
                    ).fetchone()[0]
    assert n == con.execute("SELECT count(*) FROM flights.flights").fetchone()[0]
    kinds = {r[0] for r in con.execute("SELECT kind FROM lakeql_indexes()").fetchall()}
    assert {"catalog", "database"} <= kinds
    cur = con.cursor()  # cursors share views and functions
    assert cur.execute("SELECT count(*) FROM lakeql_tables()").fetchone()[0] == 7
    qualnames = [r[0] for r in cur.execute("SELECT qualname FROM python.functions").fetchall()]
    rows = cur.execute("SELECT __rowid, qualname FROM query_table(lakeql_rows_view('functions')) "
                       "ORDER BY __rowid").fetchall()
    assert [r[0] for r in rows] == list(range(len(qualnames)))  # __rowid = position in the table
    assert [r[1] for r in rows] == qualnames


def test_register_on_existing_connection(sample_copy: Path) -> None:
    con = duckdb.connect()
    lakeql.register(con, sample_copy)
    assert con.execute("SELECT count(*) FROM python.modules").fetchone()[0] > 100


def test_rowid_spans_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for i in range(3):
        (lake / "d" / "t").mkdir(parents=True, exist_ok=True)
        duckdb.execute(f"COPY (SELECT {i} AS part, range AS n FROM range(5)) TO "
                       f"'{lake}/d/t/p{i}.parquet' (FORMAT parquet)")
    con = lakeql.connect(lake)
    rows = con.execute("SELECT __rowid, part, n FROM query_table(lakeql_rows_view('d.t')) ORDER BY 1"
                       ).fetchall()
    assert [r[0] for r in rows] == list(range(15))
    assert [(r[1], r[2]) for r in rows] == [(p, n) for p in range(3) for n in range(5)]


def test_refresh_reindexes_changed_and_drops_removed(sample_copy: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    store = build(sample_copy, idx)
    (idx / "probe").mkdir()
    store.record(IndexEntry("probe", "flights.planes", "", "probe", 1, 1,
                            discover(sample_copy).table("flights.planes").fingerprint))
    os.remove(sample_copy / "flights" / "planes.parquet")
    duckdb.execute(f"COPY (SELECT 'ZZ' AS carrier, 'Zed Air' AS name) TO "
                   f"'{sample_copy}/flights/airlines.parquet' (FORMAT parquet)")
    store = build(sample_copy, idx, refresh=True)
    tables = {t["table_name"]: t for t in pq.read_table(store.path("catalog", "tables.parquet")).to_pylist()}
    assert "flights.planes" not in tables
    assert tables["flights.airlines"]["row_count"] == 1
    assert store.find("probe", "flights.planes") is None
    assert not (idx / "probe").exists()


def test_refresh_keeps_database_and_view_files_made_from_the_same_statements(sample_copy: Path,
                                                                             tmp_path: Path) -> None:
    """--refresh writes ``lake.duckdb`` and a domain's views file only when their statements changed
    (else the file is kept / hard-linked: same inode); the kept files answer as new ones."""
    idx = tmp_path / "idx"
    build(sample_copy, idx)
    views = json.loads((idx / "views" / "views.json").read_text())
    files = {d: spec["file"] for d, spec in views["domains"].items() if spec.get("file")}
    assert "flights" in files and views.get("small_file")

    def inodes() -> dict[str, int]:
        names = [*files.values(), views["small_file"]]
        out = {f"views/{f}": (idx / "views" / f).stat().st_ino for f in names}
        return {**out, "lake.duckdb": (idx / "lake.duckdb").stat().st_ino}

    first = inodes()
    build(sample_copy, idx, refresh=True)  # nothing changed: every file kept
    assert inodes() == first
    # a table rewritten in place: its view reads the same path, so every file is kept (the manifest's
    # source bytes follow) and the views see the new rows
    duckdb.execute(f"COPY (SELECT * FROM '{sample_copy}/flights/airlines.parquet' LIMIT 3) TO "
                   f"'{sample_copy}/flights/airlines.new.parquet' (FORMAT parquet)")
    os.replace(sample_copy / "flights" / "airlines.new.parquet", sample_copy / "flights" / "airlines.parquet")
    store = build(sample_copy, idx, refresh=True)
    assert inodes() == first
    now_bytes = sum(t.source_bytes for t in discover(sample_copy).tables.values())
    assert store.find("database").source_bytes == now_bytes
    con = lakeql.connect(sample_copy, index_dir=idx)
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 3
    con.close()
    # a new table in flights changes the flights views: that file (and lake.duckdb) alone is new
    (sample_copy / "flights" / "extra").mkdir()
    duckdb.execute(f"COPY (SELECT 'ZZ' AS carrier, 'Zed Air' AS name) TO "
                   f"'{sample_copy}/flights/extra/part-0.parquet' (FORMAT parquet)")
    build(sample_copy, idx, refresh=True)
    now = inodes()
    changed = {k for k in now if now[k] != first[k]}
    assert changed == {f"views/{files['flights']}", "lake.duckdb"}
    full = tmp_path / "full"
    build(sample_copy, full)
    for d in (idx, full):
        con = lakeql.connect(sample_copy, index_dir=d)
        got = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
               for t in ("flights.extra", "flights.flights", "python.functions")]
        assert got[0] == 1 and got[1] > 0 and got[2] > 0
        con.close()
        cli = duckdb.connect(str(d / "lake.duckdb"), read_only=True)
        assert cli.execute("SELECT name FROM flights.extra").fetchall() == [("Zed Air",)]
        cli.close()


def test_stale_index_names_table_and_refresh(sample_copy: Path, tmp_path: Path) -> None:
    store = build(sample_copy, tmp_path / "idx")
    lake = discover(sample_copy)
    t = lake.table("flights.airlines")
    store = Store(store.root, lake)
    (store.root / "probe.bin").write_bytes(b"x")
    store.record(IndexEntry("probe", t.key, "name", "probe.bin", 1, 1, t.fingerprint))
    assert store.require("probe", t, "name").kind == "probe"
    duckdb.execute(f"COPY (SELECT 'ZZ' AS carrier, 'Zed' AS name) TO '{sample_copy}/flights/airlines.parquet'"
                   " (FORMAT parquet)")
    os.utime(sample_copy / "flights" / "airlines.parquet", ns=(1, 1))
    with pytest.raises(StaleIndexError, match=r"flights\.airlines.*lakeql index --refresh"):
        store.require("probe", t, "name")
    con = lakeql.connect(sample_copy, index_dir=store.root)
    assert con.execute("SELECT stale FROM lakeql_indexes() WHERE kind = 'probe'").fetchone()[0] is True


def test_corrupt_parquet_is_skipped_with_a_warning(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "flights" / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.warns(UserWarning, match="broken.parquet"):
        store = build(sample_copy, tmp_path / "idx")
    tables = {t["table_name"] for t in pq.read_table(store.path("catalog", "tables.parquet")).to_pylist()}
    assert "flights.broken" not in tables and "flights.airlines" in tables


def test_corrupt_manifest_is_a_clear_error(sample_copy: Path, tmp_path: Path) -> None:
    store = build(sample_copy, tmp_path / "idx")
    store.path("indexes.parquet").write_bytes(b"garbage")
    with pytest.raises(CorruptIndexError, match="lakeql index"):
        Store(store.root).entries()


def test_unwritable_index_dir(sample_copy: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IndexDirError, match="--index-dir"):
        build(sample_copy, blocker / "idx")


def test_interrupted_build_keeps_previous_index(sample_copy: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "idx")
    target = store.path("kind", "x")
    with store.atomic_dir(target) as tmp:
        (tmp / "data.bin").write_text("v1")
    with pytest.raises(RuntimeError):
        with store.atomic_dir(target) as tmp:
            (tmp / "data.bin").write_text("v2-partial")
            raise RuntimeError("killed")
    assert (target / "data.bin").read_text() == "v1"
    assert [p.name for p in target.parent.iterdir()] == ["x"]  # no temp leftovers


def test_database_file_opens_in_stock_duckdb_cli(sample_copy: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    cli = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    if cli is None:
        pytest.skip("the duckdb CLI (PyPI duckdb-cli) is not installed")
    store = build(sample_copy, tmp_path / "idx")
    out = subprocess.run([cli, "-csv", "-noheader", str(store.path("lake.duckdb")), "-c",
                          "SELECT count(*) FROM flights.airlines; "
                          "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'python';"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["16", "2"]


def test_hive_partitioned_folder_table(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for year in (2023, 2024):
        d = lake / "sales" / "orders" / f"year={year}"
        d.mkdir(parents=True)
        duckdb.execute(f"COPY (SELECT range AS id FROM range(3)) TO '{d}/part.parquet' (FORMAT parquet)")
    con = lakeql.connect(lake)
    rows = con.execute('SELECT year, count(*) FROM sales.orders GROUP BY year ORDER BY year').fetchall()
    assert rows == [(2023, 3), (2024, 3)]
    cols = con.execute("SELECT column_name FROM lakeql_columns() WHERE table_name = 'sales.orders'"
                       ).fetchall()
    assert [c[0] for c in cols] == ["id", "year"]


def test_odd_names_survive_sql(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "my domain").mkdir(parents=True)
    path = lake / "my domain" / "it's \"odd\" é.parquet"
    duckdb.execute(f"""COPY (SELECT 1 AS "weird col") TO '{str(path).replace("'", "''")}' (FORMAT parquet)""")
    con = lakeql.connect(lake)
    assert con.execute('SELECT "weird col" FROM "my domain"."it\'s ""odd"" é"').fetchone() == (1,)
    assert con.execute("SELECT lakeql_table_key('my domain.it''s \"odd\" é')").fetchone()[0] == \
        "my domain.it's \"odd\" é"


def test_clean_stale_removes_dead_builds_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "idx")
    store.root.mkdir()
    dead, live = 2 ** 22 + 12345, os.getpid()  # above pid_max: never a running process
    (store.root / f".ngram.{dead}-ab12.tmp").mkdir()
    (store.root / f".edges.parquet.{live}-cd34.tmp").write_text("mine")
    (store.root / f".lake.old-{dead}").mkdir()  # the folder was swapped out and its new one never arrived
    (store.root / f".lake.old-{dead}" / "f").write_text("old")
    done = store.clean_stale()
    assert sorted(done) == sorted([f".ngram.{dead}-ab12.tmp", f"restored .lake.old-{dead}"])
    assert (store.root / f".edges.parquet.{live}-cd34.tmp").exists()
    assert (store.root / "lake" / "f").read_text() == "old"


def test_manifest_records_checksums_and_verify_detects_damage(tmp_path: Path) -> None:
    store = Store(tmp_path / "idx")
    with store.atomic_dir(store.root / "k" / "x") as tmp:
        (tmp / "a.bin").write_bytes(b"\x01" * 1000)
    store.record(IndexEntry("k", "", "", "k/x", 1000, 0, ""))
    entry = store.find("k")
    assert '"a.bin": "1000:' in entry.checksums
    store.verify(entry)
    (store.root / "k" / "x" / "a.bin").write_bytes(b"\x00" * 1000)
    with pytest.raises(CorruptIndexError, match=r"a.bin fails its checksum.*lakeql index --refresh"):
        store.verify(entry)
    assert [e.kind for e in store.drop_damaged()] == ["k"] and store.find("k") is None


def test_failed_write_poisons_the_build(tmp_path: Path) -> None:
    import errno

    store = Store(tmp_path / "idx")
    with pytest.raises(IndexDirError, match="no space left on the device"):
        with store.atomic_file(store.root / "a.parquet"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(IndexDirError, match="an earlier write of this build failed"):
        store.record(IndexEntry("k", "", "", "a.parquet", 0, 0, ""))
    assert not list(store.root.glob(".*.tmp"))


def test_duckdb_json_map_column_is_indexed_not_skipped(tmp_path: Path) -> None:
    """DuckDB writes a JSON object column read from JSON lines as MAP(VARCHAR, JSON); pyarrow cannot make
    an empty array of that type (schema.empty_table() raised ArrowNotImplementedError: extension), which
    made the catalog skip the whole table. The 10,000-table benchmark lake lost its MS MARCO slices so."""
    lake = tmp_path / "lake"
    (lake / "ir").mkdir(parents=True)
    duckdb.execute("COPY (SELECT _id, text, CAST(m AS MAP(VARCHAR, JSON)) AS metadata FROM (VALUES "
                   "('a', 'one', MAP {}), ('b', 'two', MAP {'k': '[1]'})) v(_id, text, m)) "
                   f"TO '{lake / 'ir' / 'docs.parquet'}' (FORMAT parquet)")
    assert "extension<arrow.json>" in str(pq.ParquetFile(lake / "ir" / "docs.parquet").schema_arrow)
    idx = tmp_path / "idx"
    build(lake, idx)
    con = lakeql.connect(lake, index_dir=idx)
    assert con.execute("SELECT name, row_count FROM lakeql_tables()").fetchall() == [("docs", 2)]
    types = dict(con.execute("SELECT column_name, type FROM lakeql_columns()").fetchall())
    assert types["metadata"] == "MAP(VARCHAR, JSON)"
    assert con.execute("SELECT _id FROM ir.docs ORDER BY _id").fetchall() == [("a",), ("b",)]


def test_invalid_utf8_text_leaves_one_table_out_not_the_build(tmp_path: Path) -> None:
    """A Parquet text column holding invalid UTF-8 (writers that do not validate, e.g. a binary column
    labelled as string): pyarrow reads it as is and decoding a value raised UnicodeDecodeError, which
    aborted the whole default build (the discovery index decoded its text statistics, the schema
    profile its values; found by fuzzing). Now the table's profile is left out with a warning naming
    the file, and every other table is indexed."""
    import numpy as np
    import pyarrow as pa

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    offsets = pa.py_buffer(np.array([0, 5, 9, 14], dtype=np.int32).tobytes())
    bad = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"abc\xff\xfeok\xc3(zzzzz")])
    pq.write_table(pa.table({"t": bad, "n": [1, 2, 3]}), lake / "d" / "bad.parquet")
    good = pa.table({"t": ["hello world", "café", "plain"], "n": [1, 2, 3]})
    pq.write_table(good, lake / "d" / "good.parquet")
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False)  # the default build: joins and schema files too
    con = lakeql.connect(lake, index_dir=idx)
    assert sorted(con.execute("SELECT name FROM lakeql_tables()").fetchall()) == [("bad",), ("good",)]
    assert con.execute("SELECT count(*) FROM d.good").fetchone() == (3,)
    assert (idx / "schemas" / "d").is_dir()
