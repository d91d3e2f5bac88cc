"""The manifest a store writes is kept as read (no re-read per record), equal to what a read returns."""

from __future__ import annotations

import datetime as dt

import numpy as np

from lakeql import parquet_io
from lakeql.store import IndexEntry, Store


def _fresh(root) -> list[IndexEntry]:
    return Store(root).entries()


def test_rows_written_are_cached_equal_to_a_read(tmp_path, monkeypatch):
    store = Store(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"xy")
    store.record(IndexEntry("joins", "", "", "a.bin", 3, 10, "", params='{"k": 1}'))
    store.record_many([IndexEntry("column_profile", f"t.n{i}", "", "d", 2, 5, f"fp{i}") for i in range(3)])
    reads: list[object] = []
    real = parquet_io.read_table
    monkeypatch.setattr(parquet_io, "read_table", lambda *a, **k: reads.append(a) or real(*a, **k))
    got = store.entries()
    assert reads == []  # kept from the write
    monkeypatch.undo()
    assert got == _fresh(tmp_path)
    assert [e.table_name for e in got] == ["t.n0", "t.n1", "t.n2", ""]  # the file's order (sorted)
    store.drop("column_profile", "t.n1", delete_files=False)
    assert store.entries() == _fresh(tmp_path) and len(store.entries()) == 3
    # the cached rows are copies: changing an entry after recording it changes neither the file nor
    # what the store returns
    e = IndexEntry("catalog", "", "", "a.bin", 3, 1, "")
    store.record(e)
    e.bytes = 99
    assert store.find("catalog").bytes == 3 == Store(tmp_path).find("catalog").bytes


def test_rows_of_other_types_are_read_back(tmp_path, monkeypatch):
    """An entry with a numpy integer or another time zone is stored as a read would return it: the
    manifest is read again rather than cached as given."""
    store = Store(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"abc")
    other_tz = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    store.record(IndexEntry("joins", "", "", "a.bin", np.int64(3), 10, "", built_at=other_tz))
    got = store.find("joins")
    assert type(got.bytes) is int and got.built_at.tzinfo is dt.UTC and got.built_at == other_tz
    assert store.entries() == _fresh(tmp_path)


def _flat_entry(root):
    """A folder index of two files in the folder itself, recorded (the shape of a column profile)."""
    store = Store(root)
    d = root / "prof"
    d.mkdir()
    (d / "columns.parquet").write_bytes(b"c" * 100)
    (d / "hashes.parquet").write_bytes(b"h" * 50)
    store.record(IndexEntry("column_profile", "t.a", "", "prof", 150, 1, "fp"))
    return store, d


def _damage(root) -> str | None:
    store = Store(root)  # a new store: nothing checked in this process is trusted
    return store.damage(store.find("column_profile", "t.a"))


def test_a_flat_folder_is_checked_file_by_file_as_a_walk_would(tmp_path):
    """The files of a folder index that sit in the folder itself are found by name (no listing): each
    damage a walk of the folder found is still found, and what it accepted is still accepted."""
    import os
    import shutil

    cases = {
        "intact": (lambda d: None, None),
        "an extra file": (lambda d: (d / "other.bin").write_bytes(b"x"), None),
        "a deleted file": (lambda d: (d / "hashes.parquet").unlink(), "missing prof/hashes.parquet"),
        "a folder in its place": (
            lambda d: ((d / "hashes.parquet").unlink(), (d / "hashes.parquet").mkdir()),
            "missing prof/hashes.parquet",
        ),
        "a dangling symlink": (
            lambda d: ((d / "hashes.parquet").unlink(), os.symlink(d / "nowhere", d / "hashes.parquet")),
            "missing prof/hashes.parquet",
        ),
        "a symlink to an equal file": (
            lambda d: (
                shutil.move(d / "hashes.parquet", d.parent / "elsewhere"),
                os.symlink(d.parent / "elsewhere", d / "hashes.parquet"),
            ),
            None,
        ),
        "truncated": (
            lambda d: (d / "columns.parquet").write_bytes(b"c" * 99),
            "prof/columns.parquet has 99 bytes, 100 expected (truncated?)",
        ),
        "same size, other bytes": (
            lambda d: (d / "columns.parquet").write_bytes(b"d" * 100),
            "prof/columns.parquet fails its checksum (damaged)",
        ),
    }
    for i, (name, (change, want)) in enumerate(cases.items()):
        root = tmp_path / f"c{i}"
        root.mkdir()
        _, d = _flat_entry(root)
        change(d)
        assert _damage(root) == want, name


def test_the_verification_record_is_read_once_while_unchanged(tmp_path, monkeypatch):
    """A build reads the verification record in the integrity pass and again to add what it wrote: the
    second read is the record as this store read or wrote it, while the file's stamp holds; a record
    replaced by another store, or deleted (a reader that found damage), is read as it is now."""
    from lakeql import store as store_mod

    s = Store(tmp_path)
    s._write_verified({"a": [1, 2, 3, 4, "x"]})
    inflates: list[int] = []
    real = store_mod.inflate
    monkeypatch.setattr(store_mod, "inflate", lambda b: inflates.append(1) or real(b))
    assert s._load_verified() == {"a": [1, 2, 3, 4, "x"]} and inflates == []  # as written
    Store(tmp_path)._write_verified({"b": [5, 6, 7, 8, "y"]})  # another store (a later build)
    assert s._load_verified() == {"b": [5, 6, 7, 8, "y"]} and len(inflates) == 1
    assert s._load_verified() == {"b": [5, 6, 7, 8, "y"]} and len(inflates) == 1  # now kept
    (tmp_path / store_mod.VERIFIED).unlink()
    assert s._load_verified() is None


def test_an_unreadable_index_path_is_missing_as_before(tmp_path):
    """The one ``stat`` of an index's path takes what ``Path.exists()`` took as absent (a file where a
    folder is expected in the path, a symlink loop) as missing files."""
    import os

    store, d = _flat_entry(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    store.record(IndexEntry("joins", "", "", "loop/x", 1, 1, ""))
    store.record(IndexEntry("ngram", "t.a", "c", "prof/columns.parquet/x", 1, 1, ""))
    os.sync()
    fresh = Store(tmp_path)
    assert fresh.damage(fresh.find("joins")) == "missing its files (loop/x)"
    assert fresh.damage(fresh.find("ngram", "t.a", "c")) == "missing its files (prof/columns.parquet/x)"
    assert fresh.damage(fresh.find("column_profile", "t.a")) is None
