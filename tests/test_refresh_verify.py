"""The pre-build integrity check reads only index files that may have changed since its last check
(issue 10 item 4): a verification record of ``[size, mtime_ns, ctime_ns, inode, checksum]`` per file.
Damage made through the file system is still found (ctime changes), ``verify=True`` reads every file,
and a reader that finds a damaged file makes the next build read every file."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from testutil import SAMPLE_LAKE

import lakeql
from lakeql import store as store_mod
from lakeql.errors import CorruptIndexError
from lakeql.store import VERIFIED, Store


@pytest.fixture
def indexed(tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "python", lake / "python")
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["joins", "context"])
    return lake, idx


def _reads(monkeypatch) -> list[str]:
    """Paths whose checksum the store reads from now on (and a cold in-process cache)."""
    read: list[str] = []
    real = store_mod._checksum_like
    monkeypatch.setattr(store_mod, "_checksum_like", lambda p, want: read.append(str(p)) or real(p, want))
    store_mod._VERIFIED.clear()
    return read


def _files(store: Store) -> int:
    return sum(len(json.loads(e.checksums)) for e in store.entries() if e.checksums)


def test_second_check_reads_nothing_and_a_changed_file_is_read(indexed, monkeypatch):
    _, idx = indexed
    read = _reads(monkeypatch)
    assert Store(idx).drop_damaged() == []
    n = _files(Store(idx))
    assert n > 5 and read == [] and (idx / VERIFIED).is_file()  # the build recorded the files it wrote
    (idx / VERIFIED).unlink()
    store_mod._VERIFIED.clear()
    assert Store(idx).drop_damaged() == []
    assert len(read) == n and (idx / VERIFIED).is_file()  # no record: every file read
    read.clear()
    store_mod._VERIFIED.clear()  # as a new process
    assert Store(idx).drop_damaged() == [] and read == []
    # rewrite one file with the same bytes and its old mtime: its ctime changed, so it is read again
    target = next(p for p in (idx / "column_profile").rglob("*") if p.is_file())
    st = target.stat()
    target.write_bytes(target.read_bytes())
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    store_mod._VERIFIED.clear()
    assert Store(idx).drop_damaged() == [] and read == [str(target)]


def test_damage_with_size_and_mtime_kept_is_found(indexed, monkeypatch):
    _, idx = indexed
    Store(idx).drop_damaged()  # writes the record
    store_mod._VERIFIED.clear()
    target = idx / "lake.duckdb"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime tells
    bad = Store(idx).drop_damaged()
    assert [e.kind for e in bad] == ["database"]


def test_verify_reads_every_file_and_a_reader_voids_the_record(indexed, monkeypatch):
    lake, idx = indexed
    Store(idx).drop_damaged()
    store = Store(idx)
    # damage that bypassed the file system: the record says what stat says now (as a failing disk would)
    entry = store.find("database")
    target = idx / entry.path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    store_mod._VERIFIED.clear()
    rec = store._load_verified()
    st = target.stat()
    rec[entry.path][:4] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    store._write_verified(rec)
    read = _reads(monkeypatch)
    assert Store(idx).drop_damaged() == [] and read == []  # trusted: not read
    store_mod._VERIFIED.clear()
    bad = Store(idx).drop_damaged(verify=True)  # --verify reads every file
    assert [e.kind for e in bad] == ["database"] and len(read) == _files(Store(idx)) + 1
    # a rebuild repairs it; then the same damage found by a reader deletes the record
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["joins", "context"], refresh=True)
    Store(idx).drop_damaged()
    store = Store(idx)
    entry = store.find("database")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    rec = store._load_verified()
    st = target.stat()
    rec[entry.path][:4] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    store._write_verified(rec)
    store_mod._VERIFIED.clear()
    with pytest.raises(CorruptIndexError, match="fails its checksum"):
        store.verify(entry)
    assert not (idx / VERIFIED).exists()
    assert [e.kind for e in Store(idx).drop_damaged()] == ["database"]  # no record: every file read
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["joins", "context"], refresh=True)
    assert Store(idx).drop_damaged() == []


def test_verify_option_on_the_command_line(indexed):
    from lakeql.cli import build_parser, index_options

    lake, idx = indexed
    args = build_parser().parse_args(["index", str(lake), "--index-dir", str(idx), "--refresh", "--verify"])
    assert index_options(args).core.verify is True
    args = build_parser().parse_args(["index", str(lake), "--refresh"])
    assert index_options(args).core.verify is False


def test_damage_in_place_keeping_size_and_mtime_is_found_in_the_same_process(indexed):
    """A file rewritten in place with its size and mtime kept (``cp -p`` onto it, a restored mtime): in
    the process that checked it before too. The in-process cache must not vouch for it (its key had no
    ctime), else the verification record written next vouched for the damaged file in every process."""
    _, idx = indexed
    store = Store(idx)
    store.drop_damaged()  # checks every file: all in the in-process cache
    entry = next(e for e in store.entries() if e.checksums and (idx / e.path).is_file())
    target = idx / entry.path
    st = os.stat(target)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(target).st_size == st.st_size and os.stat(target).st_mtime_ns == st.st_mtime_ns
    bad = Store(idx).drop_damaged()
    assert [(e.kind, e.table_name, e.column_name) for e in bad] == [
        (entry.kind, entry.table_name, entry.column_name)
    ]
