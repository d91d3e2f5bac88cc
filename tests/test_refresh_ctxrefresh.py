"""A one-table change at lake scale costs what it changes (issue 10 item 4): what the refresh of the schema
step keeps from the previous run instead of recomputing it for the whole lake."""

from __future__ import annotations

import json
import os

from lakeql import store as store_mod
from lakeql.store import IndexEntry, Store, file_checksum


def test_checksums_of_reads_only_files_whose_stamp_changed(tmp_path, monkeypatch):
    store = Store(tmp_path / "idx")
    folder = store.root / "d"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"f{i}.txt").write_bytes(bytes([i]) * 1000)
    reads = []
    real = store_mod.file_checksum
    monkeypatch.setattr(store_mod, "file_checksum", lambda p: reads.append(os.path.basename(p)) or real(p))
    entry = IndexEntry("x", "", "", "d", 0, 0, "")
    first = store.checksums_of(entry)
    assert sorted(reads) == ["f0.txt", "f1.txt", "f2.txt"]
    reads.clear()
    assert store.checksums_of(entry) == first and reads == []  # nothing changed: nothing read
    # same size, mtime put back: the ctime changed, so the file is read again and its new checksum used
    target = folder / "f1.txt"
    st = target.stat()
    target.write_bytes(b"\xff" * 1000)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = store.checksums_of(entry)
    assert reads == ["f1.txt"]
    assert again != first and json.loads(again)["f1.txt"] == file_checksum(target)


def test_the_next_integrity_pass_does_not_read_what_the_build_wrote(tmp_path, monkeypatch):
    import shutil

    from testutil import SAMPLE_LAKE

    import lakeql

    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "python", lake / "python")
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["joins", "context"])
    read: list[str] = []
    real = store_mod._checksum_like
    monkeypatch.setattr(store_mod, "_checksum_like", lambda p, want: read.append(str(p)) or real(p, want))

    def new_process():
        store_mod._VERIFIED.clear()
        store_mod._STAMPED.clear()
        read.clear()

    new_process()
    assert Store(idx).drop_damaged() == [] and read == []  # the build's files are in the record
    first = next(p for p in sorted((lake / "python").iterdir()) if p.suffix == ".parquet")
    shutil.copy(first, lake / "python" / f"copy_of_{first.name}")
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["joins", "context"], refresh=True)
    new_process()
    assert Store(idx).drop_damaged() == [] and read == []  # nor what the refresh rewrote
    # damage through the file system is still read and found (its ctime changed)
    entry = Store(idx).find("database")
    target = idx / entry.path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    st = target.stat()
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    new_process()
    assert [e.kind for e in Store(idx).drop_damaged()] == ["database"] and str(target) in read
