"""refresh10k4: cheaper bookkeeping of a one-table refresh at 10,000 tables, with the same results.

* :func:`lakeql.lake.join_root` joins plain relative paths without pathlib: the same strings as
  ``str(Path(root) / rel)`` for every root and relative path (plain or not);
* the manifest written is cached without copying the rows that came from the cache (each write copied
  every row); rows a caller gives are still checked and copied;
* checksums of a folder index equal the walk with ``Path`` objects (same files left out).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np
from lakes import three_small_tables

from lakeql import parquet_io
from lakeql import store as store_mod
from lakeql.catalog import Column
from lakeql.lake import join_root
from lakeql.store import VERIFIED, IndexEntry, Store, _files_of, file_checksum


def test_join_root_equals_pathlib_for_every_kind_of_relative_path():
    parts = ["a", ".", "..", "", ".x", "a b", "é", "x.", "\\", "...", "a\x00b", "*[?]"]
    rels = {""}
    for n in range(1, 4):
        for combo in itertools.product(parts, repeat=n):
            rel = "/".join(combo)
            rels.update({rel, "/" + rel, rel + "/", rel + "//"})
    roots = [
        Path("/tmp/lake"),
        Path("/"),
        "/tmp/lake/",
        "rel/x",
        Path("rel"),
        ".",
        "",
        Path("."),
        "./x",
        "//srv/x",
        Path("//srv"),
        "/a/./b/",
        Path("/a//b"),
    ]
    for root in roots:
        for rel in rels:
            assert join_root(root, rel) == str(Path(root) / rel), (root, rel)
    plain = sum(1 for rel in rels if "/" + rel == str(Path("/") / rel))
    assert plain > 100  # the fast path was taken for many of them
    # URLs of a lake on object storage: unchanged
    assert join_root("s3://b/prefix/", "d/t.parquet") == "s3://b/prefix/d/t.parquet"


def test_rows_from_the_cache_are_kept_and_given_rows_are_copied(tmp_path, monkeypatch):
    store = Store(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"abc")
    store.record_many(
        [IndexEntry("column_profile", f"t.n{i}", "", "a.bin", 3, 5, f"fp{i}") for i in range(4)]
    )
    before = {e.table_name: e for e in store.entries()}
    given = IndexEntry("catalog", "", "", "a.bin", 3, 1, "")
    store.record(given)
    reads: list[object] = []
    real = parquet_io.read_table
    monkeypatch.setattr(parquet_io, "read_table", lambda *a, **k: reads.append(a) or real(*a, **k))
    after = store.entries()
    assert reads == []  # kept from the write
    monkeypatch.undo()
    assert after == Store(tmp_path).entries()
    # the rows that were in the cache are the same objects; the one given is a copy
    assert all(e is before[e.table_name] for e in after if e.kind == "column_profile")
    got = store.find("catalog")
    assert got == given and got is not given
    given.bytes = 99
    assert store.find("catalog").bytes == 3 == Store(tmp_path).find("catalog").bytes
    # a cached row given back to record (the integrity pass marks a damaged row this way) is checked
    # again: a numpy integer put in it makes the store read the file back
    row = store.find("column_profile", "t.n1")
    row.bytes = np.int64(3)
    store.record(row)
    got = store.find("column_profile", "t.n1")
    assert type(got.bytes) is int and store.entries() == Store(tmp_path).entries()


def test_folder_checksums_equal_the_walk_with_paths(tmp_path):
    store = Store(tmp_path)
    d = tmp_path / "schemas"
    (d / "dom" / "sub").mkdir(parents=True)
    (d / "a.md").write_bytes(b"a" * 10)
    (d / "dom" / "b.md").write_bytes(b"b" * 20)
    (d / "dom" / "sub" / "c w.md").write_bytes(b"c" * 30)
    (d / ".lakeql-embeddings.npz").write_bytes(b"cache")  # a reader's cache: not recorded
    (d / "dom" / ".b.md.123-abcd.tmp").write_bytes(b"temp")  # a temp file: not recorded
    (d / "dom" / ".b.md.old-123").write_bytes(b"old")  # a kept-aside copy: not recorded
    (d / ".x.abcdefgh.tmp").write_bytes(b"legacy")  # an older lakeql's temp name: recorded, as before
    (d / "link.md").symlink_to(d / "a.md")  # a symlinked file counts
    (d / "loop").symlink_to(d)  # a symlinked folder is not entered
    got = json.loads(store.checksums_of(IndexEntry("schemas", "", "", "schemas", 0, 0, "")))
    want = {rel: file_checksum(p) for rel, p in _files_of(d)}
    assert got == want
    assert sorted(got) == [".x.abcdefgh.tmp", "a.md", "dom/b.md", "dom/sub/c w.md", "link.md"]
    single = json.loads(store.checksums_of(IndexEntry("x", "", "", "schemas/a.md", 0, 0, "")))
    assert single == {"": file_checksum(d / "a.md")}


def test_kept_aside_copies_found_below_a_folder_as_rglob_finds_them(tmp_path):
    from lakeql.store import OLD_RE, _kept_aside_below

    pid = os.getpid()
    root = tmp_path / "schemas"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / f".x.md.old-{pid}").write_text("x")  # a kept-aside file
    (root / "d" / "e" / f".e2.old-{pid}").mkdir()  # a kept-aside folder, with a match inside
    (root / "d" / "e" / f".e2.old-{pid}" / f".y.old-{pid}").write_text("y")
    (root / f".z.md.old-{pid + 1}").write_text("z")  # another process's
    (root / f"plain.old-{pid}").write_text("p")  # not a kept-aside name (no leading dot)
    (root / "d" / "keep.md").write_text("k")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f".o.old-{pid}").write_text("o")
    (root / "link").symlink_to(outside)  # a symlinked folder is not entered
    want = {str(p) for p in root.rglob(f"*.old-{pid}") if OLD_RE.match(p.name)}
    got = set(_kept_aside_below(str(root), f".old-{pid}"))
    # rglob also lists the match inside the kept-aside folder; removing the folder removes it too
    assert got == want - {str(root / "d" / "e" / f".e2.old-{pid}" / f".y.old-{pid}")}
    assert got == {str(root / "d" / f".x.md.old-{pid}"), str(root / "d" / "e" / f".e2.old-{pid}")}


def _build(lake, idx):
    import lakeql

    lakeql.index(lake, index_dir=idx, progress=False, refresh=True, capabilities=["context"])


def test_the_verification_record_is_written_once_per_build_and_equals_two_writes(tmp_path, monkeypatch):
    """A refresh that changed a table writes the record once (at the end) with what the integrity pass
    found plus what the build checksummed: the same record as the integrity pass writing its own first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = three_small_tables(tmp_path)
    _build(lake, tmp_path / "idx")
    _build(lake, tmp_path / "idx")
    shutil.copytree(tmp_path / "idx", tmp_path / "idx2", symlinks=True)
    pq.write_table(pa.table({"id": [1, 2], "v": ["x", "y"]}), lake / "d" / "b.parquet")
    writes: list[str] = []
    real = store_mod.Store._write_verified
    monkeypatch.setattr(
        store_mod.Store, "_write_verified", lambda self, f: writes.append(str(self.root)) or real(self, f)
    )
    store_mod._VERIFIED.clear()
    store_mod._STAMPED.clear()
    _build(lake, tmp_path / "idx")
    assert writes == [str(tmp_path / "idx")]  # once
    # the old way on a copy: the integrity pass writes its record, the end of the build adds to it
    real_pass = store_mod.Store.drop_damaged
    monkeypatch.setattr(
        store_mod.Store,
        "drop_damaged",
        lambda self, verify=False, defer_record=False: real_pass(self, verify),
    )
    store_mod._VERIFIED.clear()
    store_mod._STAMPED.clear()
    writes.clear()
    _build(lake, tmp_path / "idx2")
    assert len(writes) == 2
    one, two = Store(tmp_path / "idx")._load_verified(), Store(tmp_path / "idx2")._load_verified()
    assert one is not None and two is not None
    # the same files, each with its own index dir's stamp and checksum (times, inodes and timestamps
    # inside the files differ between the copies); the same ones current (a views file hard-linked again
    # after the integrity pass has a new ctime in both: read again by the next pass, as before)
    assert sorted(one) == sorted(two)

    def current(idx, rec):
        out = {}
        for label, stamp in rec.items():
            st = os.stat(idx / label)
            assert stamp[4] == file_checksum(idx / label) or stamp[2] != st.st_ctime_ns
            out[label] = stamp[:4] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        return out

    now = current(tmp_path / "idx", one)
    assert now == current(tmp_path / "idx2", two)
    assert now["catalog/tables.parquet"] and now["lake.duckdb"]  # written by the build, recorded at its end


def test_a_record_voided_during_the_build_is_not_written_back(tmp_path, monkeypatch):
    """A reader that finds damage deletes the record so the next build reads every file: a build that
    deferred its record does not write it back over that."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = three_small_tables(tmp_path)
    idx = tmp_path / "idx"
    _build(lake, idx)
    _build(lake, idx)
    pq.write_table(pa.table({"id": [1, 2], "v": ["x", "y"]}), lake / "d" / "b.parquet")
    real = store_mod.Store.drop_damaged

    def then_voided(self, verify=False, defer_record=False):
        got = real(self, verify, defer_record)
        (self.root / VERIFIED).unlink()  # a reader found a damaged file meanwhile
        return got

    monkeypatch.setattr(store_mod.Store, "drop_damaged", then_voided)
    _build(lake, idx)
    assert not (idx / VERIFIED).exists()
    # a no-op refresh after it: the record is made again from a full read
    monkeypatch.undo()
    _build(lake, idx)
    assert (idx / VERIFIED).is_file()


def test_the_index_walk_equals_os_walk(tmp_path):
    from lakeql.store import _walk_index

    root = tmp_path / "idx"
    for d in ("a/b/c", "a/.x.1-ab.tmp/in", "d", ".hidden/e"):
        (root / d).mkdir(parents=True)
    for f in ("f1", "a/f2", "a/b/.f3.old-1", "a/b/c/f4", "d/f5", ".hidden/e/f6"):
        (root / f).write_text("x")
    (root / "d" / "link").symlink_to(root / "a")  # a symlinked folder: listed, not entered
    (root / "d" / "flink").symlink_to(root / "f1")
    (root / "d" / "dangling").symlink_to(root / "nowhere")
    (root / "d" / "loop").symlink_to(root / "d" / "loop")

    def walk(fn, prune):
        out = []
        for here, dirs, files in fn(str(root)):
            out.append((here, sorted(dirs), sorted(files)))
            for name in list(dirs):
                if prune(name):
                    dirs.remove(name)
        return sorted(out)

    for prune in (lambda n: False, lambda n: n.startswith("."), lambda n: n == "a"):
        assert walk(_walk_index, prune) == walk(os.walk, prune)


def test_a_tables_scan_is_kept_while_what_it_is_made_of_is_the_same(tmp_path):
    from lakeql.lake import FileStamp, Table, scan_sql

    files = [FileStamp("d/t/p0.csv", 10, 1), FileStamp("d/t/p1.csv", 20, 2)]
    t = Table("d", "t", tmp_path, "d/t", list(files), format="csv")

    def fresh(t):
        return scan_sql(t.format, t.paths, t.hive, t.csv_header, t.csv_whole_sniff)

    first = t.scan_sql()
    assert first == fresh(t) and t.scan_sql() is first  # kept
    t.csv_header = True
    assert t.scan_sql() == fresh(t) != first
    t.csv_whole_sniff = True
    assert t.scan_sql() == fresh(t)
    t.files = files[:1]
    assert t.scan_sql() == fresh(t) and "p1.csv" not in t.scan_sql()
    t.decoded = {"d/t/p0.csv": ("latin-1", str(tmp_path / "copy.csv"))}
    assert t.scan_sql() == fresh(t) and "copy.csv" in t.scan_sql()
    t.root = tmp_path / "elsewhere"
    t.decoded = {}
    assert t.scan_sql() == fresh(t) and "elsewhere" in t.scan_sql()
    t.hive, t.format = True, "parquet"
    assert t.scan_sql() == fresh(t) and t.scan_sql().startswith("read_parquet(")


def test_a_cold_integrity_pass_leaves_nothing_to_forget(tmp_path, monkeypatch):
    """A fresh process (empty checksum caches) skips the scan that forgets cached files the pass did not
    find intact: after it, the caches hold exactly the files the pass found, each with its stamp now."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = three_small_tables(tmp_path)
    idx = tmp_path / "idx"
    _build(lake, idx)
    pq.write_table(pa.table({"id": [1], "v": ["x"]}), lake / "d" / "c.parquet")
    _build(lake, idx)
    monkeypatch.setattr(store_mod, "_VERIFIED", set())
    monkeypatch.setattr(store_mod, "_STAMPED", {})
    calls: list[str] = []
    real = store_mod._forget_unseen
    monkeypatch.setattr(store_mod, "_forget_unseen", lambda *a: calls.append(a[0]) or real(*a))
    st = Store(idx)
    assert st.drop_damaged() == []
    assert calls == []  # skipped
    prefix = str(st.root) + os.sep
    cached = {c[0]: c[1:] for c in store_mod._VERIFIED}
    assert cached and all(f.startswith(prefix) for f in cached)
    for f, (size, mtime, ctime, ino, _want) in cached.items():
        s = os.stat(f)
        assert (size, mtime, ctime, ino) == (s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino)
    before = (set(store_mod._VERIFIED), dict(store_mod._STAMPED))
    # what the scan would have left: the same
    assert st.drop_damaged() == []  # warm now: the scan runs
    assert calls == [prefix]
    assert (set(store_mod._VERIFIED), dict(store_mod._STAMPED)) == before


def test_bytes_and_checksums_from_one_walk_equal_the_two_walks(tmp_path):
    from lakeql.store import dir_bytes

    store = Store(tmp_path)
    d = tmp_path / "schemas"
    (d / "dom" / ".legacy.abcdefgh.tmp").mkdir(parents=True)  # an older lakeql's temp folder
    (d / ".hid").mkdir()
    (d / "a.md").write_bytes(b"a" * 10)
    (d / "dom" / "b.md").write_bytes(b"b" * 20)
    (d / "dom" / ".legacy.abcdefgh.tmp" / "in.md").write_bytes(b"l" * 30)
    (d / ".x.abcdefgh.tmp").write_bytes(b"legacy" * 7)  # checksummed, not counted
    (d / ".lakeql-embeddings.npz").write_bytes(b"cache" * 11)  # counted, not checksummed
    (d / ".hid" / ".lakeql-embeddings.npz").write_bytes(b"c" * 13)
    (d / ".hid" / "h.md").write_bytes(b"h" * 17)
    (d / "dom" / ".b.md.123-abcd.tmp").write_bytes(b"temp")  # neither
    (d / "dom" / ".b.md.old-123").write_bytes(b"old")  # neither
    (d / "link.md").symlink_to(d / "a.md")
    (d / "loop").symlink_to(d)
    entry = IndexEntry("schemas", "", "", "schemas", 0, 0, "")
    assert store.bytes_and_checksums("schemas") == (dir_bytes(d), store.checksums_of(entry))
    one = IndexEntry("schemas", "", "", "schemas/a.md", 0, 0, "")
    assert store.bytes_and_checksums("schemas/a.md") == (dir_bytes(d / "a.md"), store.checksums_of(one))
    assert store.bytes_and_checksums("schemas")[0] == 10 + 20 + 55 + 13 + 17 + 10


def _columns_rows(idx):
    return parquet_io.read_table(idx / "catalog" / "columns.parquet").to_pylist()


def test_stored_columns_are_written_back_as_a_full_build_writes_them(tmp_path):
    """The catalog keeps unchanged tables' stored column rows without making a Column of each; after a
    table changes its columns, one is added and one removed, the refreshed catalog's files and columns
    equal a full build's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.catalog import Catalog, StoredColumns
    from lakeql.lake import discover

    lake = three_small_tables(tmp_path)
    idx = tmp_path / "idx"
    _build(lake, idx)
    stored = Catalog.load(discover(lake), Store(idx))
    assert isinstance(stored.columns_by_table, StoredColumns) and not stored.columns_by_table._made
    assert dict(stored.columns_by_table) == {
        f"d.{n}": [Column(f"d.{n}", "id", 0, "BIGINT"), Column(f"d.{n}", "v", 1, "VARCHAR")] for n in "abc"
    }
    pq.write_table(pa.table({"k": [1.5], "id": [1], "w": ["x"]}), lake / "d" / "b.parquet")  # new columns
    pq.write_table(pa.table({"z": [True]}), lake / "d" / "aa.parquet")  # a new table, sorted in between
    (lake / "d" / "c.parquet").unlink()
    for _ in range(2):  # the change, then a no-op
        _build(lake, idx)
        full = tmp_path / f"full{_}"
        import lakeql

        lakeql.index(lake, index_dir=full, progress=False, capabilities=["context"])
        assert _columns_rows(idx) == _columns_rows(full)
        got = Catalog.load(discover(lake), Store(idx))
        want = Catalog.load(discover(lake), Store(full))
        assert got.columns_by_table == want.columns_by_table  # another file: compared row by row
        assert [c.column_name for c in got.columns_by_table["d.b"]] == ["k", "id", "w"]
        assert "d.c" not in got.columns_by_table and len(got.columns_by_table) == 3


def test_stored_columns_mapping(tmp_path):
    from lakeql.catalog import StoredColumns

    names = ["a", "a", "b", "c", "c", "c"]
    m = StoredColumns.from_lists(names, ["x", "y", "z", "p", "q", "r"], [0, 1, 0, 0, 1, 2], ["T"] * 6)
    assert list(m) == ["a", "b", "c"] and len(m) == 3 and "b" in m and "d" not in m
    assert m["b"] == [Column("b", "z", 0, "T")] and m.get("d", []) == []
    assert m["b"] is m["b"]  # made once
    kept = m.keep(["a", "c", "e"], {"n": [Column("n", "u", 0, "T")], "c": [Column("c", "new", 0, "T")]})
    assert dict(kept) == {
        "a": m["a"],
        "c": [Column("c", "new", 0, "T")],
        "e": [],
        "n": [Column("n", "u", 0, "T")],
    }
    assert kept.rows_sorted() == (["a", "a", "c", "n"], ["x", "y", "new", "u"], [0, 1, 0, 0], ["T"] * 4)
    same = m.keep(["a", "b", "c"], {})
    assert same == m and m == dict(m) and same != kept
    assert StoredColumns.from_lists(["a", "b", "a"], ["x", "y", "z"], [0, 0, 1], ["T"] * 3) is None
