"""The ANN lists' memory-mapped list-order rows (``open_mapped``) in a connection's index cache.

A connection holds two ways of opening one build of an embed index: the list-order rows (key kind
``embed:ann``, an unfiltered ANN search's first query) and the whole loaded index (``embed``, a filter,
``exact := true``, hybrid or similar rows). These tests pin what the cache keeps: one build at a time
across both, the mapped rows dropped once the whole index is loaded, and an index built before the rows
files (``open_mapped`` gives None) costing its bytes once, not twice. Vectors are random (no model).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from vectors_helpers import build

from lakeql.errors import CorruptIndexError

N, DIM = 2_000, 384
FN = "semantic_search_vector_rowids('vecs.docs', 'v', ?::FLOAT[384], k := {k}{extra})"
SQL = "SELECT rowid, score FROM " + FN


def make_lake(root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    tbl = pa.table(
        {
            "id": pa.array(np.arange(N), pa.int64()),
            "g": pa.array(np.arange(N) % 3, pa.int64()),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), DIM),
        }
    )
    folder = root / "lake" / "vecs" / "docs"
    folder.mkdir(parents=True)
    pq.write_table(tbl, folder / "part-0.parquet")
    return root / "lake", vecs


def open_con(lake, idx_dir):
    from lakeql.connection import open_lake

    return open_lake(lake, index_dir=idx_dir, capabilities=["vectors"])


def cached(ctx) -> list[tuple[str, str]]:
    return sorted((k[0], k[3]) for k in ctx.indexes._items)


def test_a_rebuild_leaves_no_variant_of_the_old_build_cached(tmp_path):
    """Rebuilt while a connection is open: its next unfiltered search opens the new build's rows and
    nothing of the old build stays cached (the whole old index was held, and counted against the
    budget, until a filtered search happened to reload it)."""
    lake, vecs = make_lake(tmp_path)
    idx_dir = tmp_path / "index"
    build(lake, idx_dir, ["vecs.docs.v"], embed_ann=True, embed_ann_lists=8)
    con, ctx = open_con(lake, idx_dir)
    q = vecs[7].tolist()
    first = con.execute(SQL.format(k=5, extra=""), [q]).fetchall()
    assert con.execute(SQL.format(k=5, extra=", filter := 'g >= 0'"), [q]).fetchall() == first
    (old,) = {b for _, b in cached(ctx)}
    build(lake, idx_dir, ["vecs.docs.v"], embed_ann=True, embed_ann_lists=4)  # another build, same files
    again = con.execute(SQL.format(k=5, extra=""), [q]).fetchall()
    assert again[0][0] == first[0][0] == 7
    builds = {b for _, b in cached(ctx)}
    assert old not in builds and len(builds) == 1
    con.close()


def test_loading_the_whole_index_drops_its_mapped_rows(tmp_path):
    """Once a filtered search loaded the whole index, unfiltered searches use it (``cached_index``): the
    mapped rows of the same build are never read again and are dropped, not kept costing the budget
    beside the index (both were counted at the folder's bytes)."""
    lake, vecs = make_lake(tmp_path)
    idx_dir = tmp_path / "index"
    build(lake, idx_dir, ["vecs.docs.v"], embed_ann=True, embed_ann_lists=8)
    con, ctx = open_con(lake, idx_dir)
    q = vecs[11].tolist()
    first = con.execute(SQL.format(k=10, extra=""), [q]).fetchall()
    assert [k for k, _ in cached(ctx)] == ["embed:ann"]
    con.execute(SQL.format(k=10, extra=", filter := 'g = 1'"), [q]).fetchall()
    assert [k for k, _ in cached(ctx)] == ["embed"]
    (entry,) = ctx.store.entries("embed")
    assert ctx.indexes.total_bytes == entry.bytes
    assert con.execute(SQL.format(k=10, extra=""), [q]).fetchall() == first
    assert [k for k, _ in cached(ctx)] == ["embed"]
    con.close()


@pytest.mark.parametrize("lists", [True, False])
def test_an_index_without_list_order_rows_costs_its_bytes_once(tmp_path, monkeypatch, lists):
    """An index without list-order rows (built before them, or - the default - without ``--embed-ann``):
    ``open_mapped`` gives None (remembered, so the files are not looked at per query) and the whole
    index is loaded. The remembered None holds nothing and must cost nothing: it was counted at the
    folder's bytes, so every such index cost the cache's budget twice and evicted other loaded ones."""
    from lakeql.vectors import ann

    lake, vecs = make_lake(tmp_path)
    idx_dir = tmp_path / "index"
    with monkeypatch.context() as m:
        m.setattr(ann, "write_list_rows", lambda *a, **kw: False)  # as built before the files existed
        opts = {"embed_ann": True, "embed_ann_lists": 8} if lists else {}
        build(lake, idx_dir, ["vecs.docs.v"], **opts)
    (folder,) = list((idx_dir / "embed").iterdir())
    assert not (folder / ann.ROWS_FILE).exists()
    con, ctx = open_con(lake, idx_dir)
    q = vecs[3].tolist()
    got = con.execute(SQL.format(k=4, extra=""), [q]).fetchall()
    assert got[0][0] == 3
    (entry,) = ctx.store.entries("embed")
    assert ctx.indexes.total_bytes == entry.bytes
    calls = []
    monkeypatch.setattr(ann, "open_mapped", lambda *a: calls.append(a))
    assert con.execute(SQL.format(k=4, extra=""), [q]).fetchall() == got
    assert calls == []  # the loaded index answers; the rows files are not looked for again
    con.close()


@pytest.mark.parametrize(
    "change",
    [
        {"factors": ["factor", "add", "popc", "popc"]},  # a factor named twice, one missing
        {"factors": "errc"},  # a string: four one-letter names
        {"scales": False},  # an int8 tier read without its per-row scales
        {"scales": 1},
    ],
)
def test_rows_file_naming_other_factors_is_corrupt(tmp_path, change):
    """``ann_rows.json`` must name the scan factors the loaded index holds, each once, and the int8
    tier's scales when the tier is int8: otherwise the mapped search crashed with a TypeError (no
    bounded scan, and no code positions to cut a sub-index by), read a factor twice, or rescored the
    int8 codes without their scales (wrong scores, no error)."""
    from lakeql.vectors import ann

    lake, vecs = make_lake(tmp_path)
    idx_dir = tmp_path / "index"
    build(lake, idx_dir, ["vecs.docs.v"], embed_ann=True, embed_ann_lists=8)
    (folder,) = list((idx_dir / "embed").iterdir())
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    spec = json.loads((copy / ann.ROWS_FILE).read_text())
    assert spec["factors"] == ["factor", "add", "popc", "errc"]
    spec.update(change)
    (copy / ann.ROWS_FILE).write_text(json.dumps(spec))
    with pytest.raises(CorruptIndexError, match=r"ANN lists of t\.c .*corrupt.*--embed-ann"):
        ann.open_mapped(copy, "t.c")
    good = ann.open_mapped(folder, "t.c")  # the builder's file opens and searches
    rowids, _ = ann.search(good, good._pos["ann"], vecs[5], 3, 4)
    assert rowids[0] == 5


def test_a_connection_refuses_a_rows_file_edited_after_the_build(tmp_path):
    """The factors' order cannot be checked from the files alone (a permutation of the names opens and
    gives wrong scores): a connection verifies the build's checksums first, so an edited rows file is
    the store's damaged-index error naming the refresh, never a search over swapped factors."""
    from lakeql.vectors import ann

    lake, vecs = make_lake(tmp_path)
    idx_dir = tmp_path / "index"
    build(lake, idx_dir, ["vecs.docs.v"], embed_ann=True, embed_ann_lists=8)
    (folder,) = list((idx_dir / "embed").iterdir())
    spec = json.loads((folder / ann.ROWS_FILE).read_text())
    spec["factors"] = spec["factors"][::-1]
    (folder / ann.ROWS_FILE).write_text(json.dumps(spec))
    con, _ = open_con(lake, idx_dir)
    with pytest.raises(Exception, match=r"damaged.*--refresh"):
        con.execute(SQL.format(k=3, extra=""), [vecs[0].tolist()]).fetchall()
    con.close()


def test_a_build_with_refinement_planes_does_not_load_the_index_for_nothing(tmp_path, monkeypatch):
    """Refinement planes (``--embed-refine-bits``) have no list-order rows (``write_list_rows`` refuses
    them): the builder must not load the fresh index whole only to be refused (the load was ~6.5 s at
    10M rows); the loaded index still answers the ANN search."""
    from lakeql.vectors import ann, codes

    lake, vecs = make_lake(tmp_path)
    idx_dir = tmp_path / "index"
    loads = []
    real_load = codes.CodeIndex.load.__func__
    monkeypatch.setattr(
        codes.CodeIndex, "load", classmethod(lambda cls, *a: loads.append(a) or real_load(cls, *a))
    )
    build(lake, idx_dir, ["vecs.docs.v"], embed_ann=True, embed_ann_lists=8, embed_refine_bits=2)
    assert loads == []
    (folder,) = list((idx_dir / "embed").iterdir())
    assert (folder / ann.TIER_FILE).exists() and not (folder / ann.ROWS_FILE).exists()
    con, ctx = open_con(lake, idx_dir)
    assert con.execute(SQL.format(k=3, extra=""), [vecs[9].tolist()]).fetchall()[0][0] == 9
    assert [k for k, _ in cached(ctx)] == ["embed"]
    con.close()
