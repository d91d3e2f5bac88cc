"""A one-table change at lake scale costs what it changes (issue 10 item 4): what the refresh of the schema
step keeps from the previous run instead of recomputing it for the whole lake."""

from __future__ import annotations

import json
import os

import pytest

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


def _render_full(lake, idx, out):
    """The schema files a full render makes from the same index (same join graph) into ``out``."""
    from lakeql.catalog import Catalog
    from lakeql.context import generate as gen
    from lakeql.lake import discover

    lk = discover(lake)
    store = Store(idx, lk)
    gen.generate(lk, Catalog.load(lk, store), out, store=store, reuse_profiles=False)


def _schema_files(d) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _state(d) -> dict:
    import gzip

    from lakeql.context import generate as gen

    st = json.loads(gzip.decompress((d / gen.STATE).read_bytes()))
    st.pop("composite")  # the join-check cache (same results, keys name files)
    return st


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_context_refresh_on_the_same_join_graph_equals_a_full_render(seed, tmp_path, monkeypatch):
    """``--refresh --only context`` after random changes (the join graph not rebuilt, so the schema step
    reads the hints of the tables a change reaches only) equals a full render from the same index: files
    byte for byte and the state (its per-table hint digests too). A table in another domain that the
    others point at is deleted, so hints change in domains whose tables did not."""
    import random
    import shutil

    from testutil import SAMPLE_LAKE

    import lakeql
    from lakeql.context import generate as gen

    rnd = random.Random(seed)
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "python", lake / "python")
    (lake / "other").mkdir()
    for p in sorted((lake / "python").glob("*.parquet"))[:2]:
        shutil.copy(p, lake / "other" / f"copy_{p.name}")
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["joins", "context"])
    reads: list[object] = []
    real = gen.read_join_hints
    monkeypatch.setattr(
        gen, "read_join_hints", lambda *a, **k: reads.append(k.get("tables")) or real(*a, **k)
    )
    changes = ["delete_other", "add", "append", "column", "delete"]
    rnd.shuffle(changes)
    for step, change in enumerate(changes):
        tables = sorted(lake.glob("*/*.parquet"))  # single-file tables
        if change == "delete_other":
            victims = sorted((lake / "other").glob("*.parquet"))
            if not victims:
                continue
            victims[0].unlink()
        elif change == "add":
            src = rnd.choice(tables)
            shutil.copy(src, src.with_name(f"added{step}_{src.name}"))
        elif change == "append":  # a table becomes a folder of two files
            src = rnd.choice(tables)
            folder = src.with_suffix("")
            folder.mkdir()
            shutil.copy(src, folder / "part-0.parquet")
            shutil.copy(src, folder / "part-1.parquet")
            src.unlink()
        elif change == "column":
            import duckdb

            src = rnd.choice(tables)
            tmp = src.with_name("new.tmp")
            sql = f"SELECT *, 1 AS extra_col FROM read_parquet({str(src)!r})"
            duckdb.sql(f"COPY ({sql}) TO {str(tmp)!r} (FORMAT parquet)")
            os.replace(tmp, src)
        else:
            rnd.choice(tables).unlink()
        reads.clear()
        lakeql.index(lake, index_dir=idx, refresh=True, progress=False, capabilities=["context"])
        assert reads and all(r is not None for r in reads)  # no read of every table's hints
        full = tmp_path / f"full{step}"
        _render_full(lake, idx, full)
        got, want = _schema_files(idx / "schemas"), _schema_files(full)
        assert got.keys() == want.keys(), change
        for k in want:
            if k != gen.STATE:
                assert got[k] == want[k], (change, k)
        assert _state(idx / "schemas") == _state(full), change
