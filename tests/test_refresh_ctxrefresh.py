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
