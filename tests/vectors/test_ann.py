"""The optional ANN first stage (``--embed-ann``): real MiniLM embeddings of the test lake's docstrings.

The session lake is indexed a second time with IVF lists (16 lists over ~200 rows: small, but the same
code path as millions of rows); ``exact := true`` must equal the exhaustive search, filtered searches
still return ``k`` rows when ``k`` qualify, and a damaged list file is a clear error.
"""

from __future__ import annotations

import dataclasses
import shutil

import duckdb
import numpy as np
import pytest
from vectors_helpers import build, connect

from lakeql.errors import CorruptIndexError

QUERIES = [
    "read a csv file",
    "compress data with zlib",
    "parse command line arguments",
    "send an email message",
    "current date and time",
    "open a network socket",
]


@pytest.fixture(scope="module")
def ann_lake(tmp_path_factory, lake):
    """(lake, index dir) of the session lake indexed with 16 ANN lists."""
    root = tmp_path_factory.mktemp("ann")
    build(lake[0], root / "index", ["functions.docstring"], embed_ann=True, embed_ann_lists=16)
    return lake[0], root / "index"


@pytest.fixture(scope="module")
def acon(ann_lake):
    return connect(*ann_lake)


def searcher_index(ann_lake):
    """(CodeIndex, IVF) of the ANN index, loaded the way a connection loads them."""
    from lakeql.connection import open_lake
    from lakeql.vectors import ann

    con, ctx = open_lake(ann_lake[0], index_dir=ann_lake[1], capabilities=["vectors"])
    _, _, idx = ctx.cache["vectors.searcher"].index("python.functions", "docstring")
    return con, idx, ann.ivf_of(idx, "python.functions.docstring")


def test_lists_are_written_with_the_codes(ann_lake):
    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    assert (folder / ann.FILE).exists()
    con, idx, ivf = searcher_index(ann_lake)
    assert ivf.nlist == 16 and int(ivf.offsets[-1]) == idx.n
    assert sorted(ivf.ids.tolist()) == list(range(idx.n))  # every code in exactly one list
    con.close()


@pytest.mark.parametrize("query", QUERIES)
def test_exact_true_equals_the_exhaustive_search(acon, con, query):
    sql = "SELECT rowid, score FROM semantic_search_rowids('python.functions', 'docstring', ?, k := 10{})"
    exact = acon.execute(sql.format(", exact := true"), [query]).fetchall()
    plain = con.execute(sql.format(""), [query]).fetchall()  # the session index has no ANN lists
    assert [r[0] for r in exact] == [r[0] for r in plain]
    assert np.allclose([r[1] for r in exact], [r[1] for r in plain], atol=1e-4)


def test_ann_recall_against_the_exhaustive_search(acon, ann_lake):
    """Default probe (8 of 16 lists) on real queries: most of the exact top 10."""
    sql = "SELECT rowid FROM semantic_search_rowids('python.functions', 'docstring', ?, k := 10{})"
    rec = []
    for q in QUERIES:
        a = {r[0] for r in acon.execute(sql.format(""), [q]).fetchall()}
        e = {r[0] for r in acon.execute(sql.format(", exact := true"), [q]).fetchall()}
        assert len(a) == 10
        rec.append(len(a & e) / 10)
    assert np.mean(rec) >= 0.8, rec


def test_filtered_ann_search_widens_until_k_rows_qualify(ann_lake, monkeypatch):
    """A filter keeping k + 1 rows, all outside the first probed list: the probe widens to them."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann

    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)  # force the IVF path at this size
    con, idx, ivf = searcher_index(ann_lake)
    q = encode(["read a csv file"])[0]
    order = ivf.probe_order(idx, q)
    far = ivf.positions(order[-4:])  # rows of the 4 least promising lists
    assert len(far) >= 6
    allowed = np.zeros(idx.n, bool)
    allowed[far[:6]] = True
    st: dict = {}
    rowids, scores = ann.search(idx, ivf, q, 5, 4, allowed, nprobe=1, stats=st)
    assert len(rowids) == 5 and set(rowids.tolist()) <= set(idx.rowids[far[:6]].tolist())
    assert st["nprobe"] > 1
    assert list(scores) == sorted(scores, reverse=True)
    con.close()


def test_far_query_widens_the_probe(ann_lake, monkeypatch):
    """A query far from every list centroid (a random direction: best cosine far below WIDEN_BELOW) probes
    WIDEN_FACTOR times more lists, here all 16, so it equals the exhaustive search; a real query whose best
    list is close enough keeps the default probe, and adaptive=False never widens."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann
    from lakeql.vectors.search import search

    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    con, idx, ivf = searcher_index(ann_lake)
    rng = np.random.default_rng(7)
    far = rng.standard_normal(idx.dim).astype(np.float32)
    far /= np.linalg.norm(far)
    order, best = ivf.probe(idx, far)
    assert best < ann.WIDEN_BELOW and list(order) == list(ivf.probe_order(idx, far))
    st: dict = {}
    rowids, _ = ann.search(idx, ivf, far, 10, 4, nprobe=2, stats=st)
    assert st["widened"] and st["nprobe"] == 2 * ann.WIDEN_FACTOR == ivf.nlist
    assert rowids.tolist() == search(idx, far, 10, 4)[0].tolist()
    st = {}
    ann.search(idx, ivf, far, 10, 4, nprobe=2, stats=st, adaptive=False)
    assert not st["widened"] and st["nprobe"] == 2
    q = encode(["read a csv file"])[0]
    _, best_q = ivf.probe(idx, q)
    monkeypatch.setattr(ann, "WIDEN_BELOW", best_q - 0.01)  # this query's best list counts as close
    st = {}
    ann.search(idx, ivf, q, 10, 4, nprobe=2, stats=st)
    assert not st["widened"] and st["nprobe"] == 2
    con.close()


def test_filtered_sql_search_returns_k_rows(acon):
    got = acon.execute(
        "SELECT module, score FROM semantic_search('python.functions', 'docstring', "
        "'read a file', k := 5, filter := 'lineno > 100')"
    ).fetchall()
    n = acon.execute(
        "SELECT count(*) FROM python.functions WHERE lineno > 100 AND docstring IS NOT NULL "
        "AND trim(docstring) <> ''"
    ).fetchone()[0]
    assert len(got) == min(5, n) and n >= 5


def test_corrupt_lists_are_a_clear_error(tmp_path, ann_lake):
    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    copy = tmp_path / "store"
    shutil.copytree(folder, copy)
    z = dict(np.load(copy / ann.FILE))
    n = int(z["offsets"][-1])
    with open(copy / ann.FILE, "wb") as fh:  # offsets that do not cover the rows
        np.savez(fh, centroids=z["centroids"], offsets=z["offsets"][:-1], ids=z["ids"])
    with pytest.raises(CorruptIndexError, match=r"ANN lists of t\.c .*corrupt.*exact := true"):
        ann.IVF.load(copy, n, z["centroids"].shape[1], "t.c")
    (copy / ann.FILE).write_bytes(b"not a numpy file")
    with pytest.raises(CorruptIndexError, match="--embed-ann"):
        ann.IVF.load(copy, n, z["centroids"].shape[1], "t.c")
    # through SQL: a damaged file fails the index's checksums before any search, with a clear message
    lk_idx = tmp_path / "index"
    shutil.copytree(ann_lake[1], lk_idx)
    (f,) = list((lk_idx / "embed").iterdir())
    (f / ann.FILE).write_bytes(b"garbage")
    with pytest.raises(duckdb.Error, match="(corrupt|damaged)"):
        connect(ann_lake[0], lk_idx).execute(
            "SELECT * FROM semantic_search('python.functions', 'docstring', 'zip', k := 3)"
        ).fetchall()


def test_small_columns_get_no_lists_unless_asked(tmp_path):
    from lakeql.vectors import ann

    codes = np.random.default_rng(0).integers(0, 256, (500, 48), dtype=np.uint8)
    assert ann.build(tmp_path, codes, 384) is None and not (tmp_path / ann.FILE).exists()
    assert ann.build(tmp_path, codes, 384, nlist=4) == {"lists": 4, "rows": 500}
    assert ann.default_lists(10_000_000) == 4096 and ann.default_lists(1_000_000) == 1024


def test_fused_uint8_rescoring_equals_the_dequantized_rows(ann_lake):
    """The numba rescoring of the uint8 tier (magnitudes + code-bit signs, any position order, repeats)
    equals dequantizing the rows (``vectors``) and taking inner products, on real embeddings."""
    from lakeql.embedding import encode

    con, idx, _ = searcher_index(ann_lake)
    assert idx.space == "rotated" and idx.tier.dtype == np.uint8
    q = encode(["read a csv file"])[0]
    pos = np.random.default_rng(3).permutation(idx.n)[: min(idx.n, 150)]
    pos = np.concatenate([pos, pos[:5]])  # unsorted, with repeats
    want = idx.vectors(pos) @ q
    got = idx.score(pos, q)
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-5)
    assert idx.score(np.zeros(0, np.int64), q).shape == (0,)
    with pytest.raises(IndexError):
        idx.score(np.array([idx.n]), q)
    con.close()


def test_probed_lists_are_scanned_in_place(ann_lake, monkeypatch):
    """The ANN stage scans the probed lists as contiguous spans of the list-order copy: the same rows,
    bounds and results as cutting those lists into a sub-index (the former way), with and without a
    filter."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann
    from lakeql.vectors.search import search

    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    con, idx, ivf = searcher_index(ann_lake)
    binz = idx.binarizer
    for text in QUERIES[:3]:
        q = encode([text])[0]
        order = ivf.probe_order(idx, q)
        ann.search(idx, ivf, q, 10, 4, nprobe=5, adaptive=False)  # makes the list-order copy
        lo = idx._pos["ann_order"]
        lists = order[:5]
        starts, ends = lo.spans(ivf, lists)
        sub = lo.sub(idx, ivf, lists)
        assert int((ends - starts).sum()) == sub.n
        assert sorted(sub.pos.tolist()) == ivf.positions(lists).tolist()
        rows, ub, est = binz.candidates(q, lo.words, lo.factors, 10, None, 20_000, spans=(starts, ends))
        srows, sub_ub, sub_est = binz.candidates(q, sub.words, sub.factors, 10, None, 20_000)
        assert sorted(lo.ids[rows].tolist()) == sorted(sub.pos[srows].tolist())
        assert np.allclose(np.sort(ub), np.sort(sub_ub)) and np.allclose(np.sort(est), np.sort(sub_est))
        got = ann.search(idx, ivf, q, 10, 4, nprobe=5, adaptive=False)
        want = search(sub, q, 10, 4)
        assert got[0].tolist() == want[0].tolist() and np.allclose(got[1], want[1])
        allowed = np.zeros(idx.n, bool)
        allowed[::3] = True
        got = ann.search(idx, ivf, q, 5, 4, allowed, nprobe=5, adaptive=False)
        assert len(got[0]) == 5 and all(allowed[idx.positions_of(got[0])])
        want = search(sub, q, 5, 4, allowed[sub.pos])
        if len(want[0]) == 5:  # the probed lists held >= 5 allowed rows: same lists scanned
            assert got[0].tolist() == want[0].tolist()
    con.close()


def test_list_order_tier_is_written_with_the_lists(ann_lake):
    """``ann_tier.npy`` holds the rescoring tier's rows in list order; the loaded index's list-order view
    scores a list-order position exactly as the table-order index scores its code position."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    assert (folder / ann.TIER_FILE).exists()
    con, idx, ivf = searcher_index(ann_lake)
    assert ivf.tier is not None and ivf.tier.shape == idx.tier.shape and ivf.tier.dtype == idx.tier.dtype
    ids = ivf.ids.astype(np.int64)
    assert np.array_equal(np.asarray(ivf.tier), np.asarray(idx.tier[ids]))
    ann.search(idx, ivf, encode(["zip"])[0], 5, 4, nprobe=2)  # makes the list-order copy
    view = idx._pos["ann_order"].view
    assert view.rowids.tolist() == idx.rowids[ids].tolist()
    q = encode(["read a csv file"])[0]
    t = np.random.default_rng(5).permutation(idx.n)[:60]
    assert np.allclose(view.score(t, q), idx.score(ids[t], q), atol=1e-6)
    con.close()


@pytest.mark.parametrize("nprobe", [1, 5, 16])
def test_list_order_rescoring_equals_the_table_order_one(ann_lake, monkeypatch, nprobe):
    """The search through the list-order tier returns the rows, scores and counts of the same search
    through the table-order tier (an index built before the copy existed), with and without a filter."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann

    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    con, idx, ivf = searcher_index(ann_lake)
    old = ann.IVF(ivf.centroids, ivf.offsets, ivf.ids)  # no tier copy: the former path
    old_idx = dataclasses.replace(idx, _pos={})
    allowed = np.zeros(idx.n, bool)
    allowed[1::4] = True
    for text in QUERIES:
        q = encode([text])[0]
        for mask in (None, allowed):
            st_new, st_old = {}, {}
            got = ann.search(idx, ivf, q, 10, 4, mask, nprobe=nprobe, stats=st_new)
            want = ann.search(old_idx, old, q, 10, 4, mask, nprobe=nprobe, stats=st_old)
            assert old_idx._pos["ann_order"].view is None and idx._pos["ann_order"].view is not None
            assert got[0].tolist() == want[0].tolist(), (text, nprobe)
            assert np.allclose(got[1], want[1], atol=1e-6)
            assert st_new == st_old
            if mask is not None:
                assert all(allowed[idx.positions_of(got[0])])
    con.close()


def test_an_index_without_the_tier_copy_is_still_searched(tmp_path, ann_lake):
    """An index written before ``ann_tier.npy`` existed (lists only) loads and searches through the
    table-order tier; a damaged copy is a clear error naming the fix."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann
    from lakeql.vectors.codes import CodeIndex

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    copy = tmp_path / "store"
    shutil.copytree(folder, copy)
    (copy / ann.TIER_FILE).unlink()
    idx = CodeIndex.load(copy, "t.c")
    ivf = ann.ivf_of(idx, "t.c")
    assert ivf is not None and ivf.tier is None
    q = encode(["read a csv file"])[0]
    rowids, scores = ann.search(idx, ivf, q, 10, 4)
    assert len(rowids) == 10 and list(scores) == sorted(scores, reverse=True)
    assert idx._pos["ann_order"].view is None
    idx2 = CodeIndex.load(folder, "t.c")
    assert ann.search(idx2, ann.ivf_of(idx2, "t.c"), q, 10, 4)[0].tolist() == rowids.tolist()
    np.save(copy / ann.TIER_FILE, np.zeros((idx.n - 1, idx.dim), np.uint8))  # a row short
    with pytest.raises(CorruptIndexError, match=r"list-order rescoring tier of t\.c .*--embed-ann"):
        ann.ivf_of(CodeIndex.load(copy, "t.c"), "t.c")
    (copy / ann.TIER_FILE).write_bytes(b"not a numpy file")
    with pytest.raises(CorruptIndexError, match="exact := true"):
        ann.ivf_of(CodeIndex.load(copy, "t.c"), "t.c")


def test_write_tier_gathers_shards_in_chunks(tmp_path, monkeypatch):
    """``write_tier`` over a sharded tier (several memory-mapped parts), in chunks smaller than the rows:
    row t of the copy is row ids[t] of the tier."""
    from lakeql.vectors import ann
    from lakeql.vectors.codes import ShardedRows

    rng = np.random.default_rng(1)
    parts = [rng.integers(0, 256, (m, 24), dtype=np.uint8) for m in (37, 0, 50, 13)]
    tier = ShardedRows(parts, 24, np.uint8)
    ids = rng.permutation(100).astype(np.int32)
    monkeypatch.setattr(ann, "TIER_CHUNK", 16)
    ann.write_tier(tmp_path, tier, ids)
    got = np.load(tmp_path / ann.TIER_FILE)
    assert got.dtype == np.uint8 and np.array_equal(got, np.concatenate(parts)[ids])
    with pytest.raises(ValueError, match="has 100 rows, the lists 99"):
        ann.write_tier(tmp_path, tier, np.arange(99))


def _write_tier_through_memmap(folder, tier, ids):
    """The former ``ann.write_tier`` (stores through a writable memory map): the reference for the bytes."""
    n = len(ids)
    out = np.lib.format.open_memmap(folder / "ref.npy", "w+", np.dtype(tier.dtype), (n, int(tier.shape[1])))
    for s in range(0, n, 16):
        part = np.asarray(ids[s : s + 16], np.int64)
        order = np.argsort(part, kind="stable")
        out[s + order] = np.asarray(tier[part[order]])
    out.flush()
    del out
    return folder / "ref.npy"


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
def test_write_tier_writes_the_bytes_of_the_memory_mapped_writer(tmp_path, real, monkeypatch, dtype):
    """``write_tier`` appends the list-order rows with plain writes: the file is byte for byte the one the
    former memory-mapped writer made (and ``np.save`` of the gathered array), on real embeddings (uint8
    tier levels, float16, float32), sharded, in chunks that do not divide the rows."""
    from lakeql.vectors import ann
    from lakeql.vectors.codes import ShardedRows

    vecs = real[1][:300]
    if dtype == np.uint8:
        vecs = np.round(np.abs(vecs) / np.abs(vecs).max() * 255)
    full = vecs.astype(dtype)
    tier = ShardedRows([full[:120], full[120:120], full[120:]], full.shape[1], dtype)
    ids = np.random.default_rng(3).permutation(len(full)).astype(np.int32)
    monkeypatch.setattr(ann, "TIER_CHUNK", 16)
    path = ann.write_tier(tmp_path, tier, ids)
    ref = _write_tier_through_memmap(tmp_path, tier, ids)
    assert path.read_bytes() == ref.read_bytes()
    np.save(tmp_path / "saved.npy", full[ids])
    assert path.read_bytes() == (tmp_path / "saved.npy").read_bytes()
    assert np.array_equal(np.load(path, mmap_mode="r"), full[ids])


def test_write_rows_checks_the_rows_announced(tmp_path):
    from lakeql.vectors import ann

    blocks = [np.ones((3, 4), np.uint8), np.zeros((0, 4), np.uint8), np.full((2, 4), 7, np.uint8)]
    ann.write_rows(tmp_path / "a.npy", np.uint8, (5, 4), iter(blocks))
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.concatenate(blocks))
    with pytest.raises(ValueError, match="5 rows written, 6 announced"):
        ann.write_rows(tmp_path / "b.npy", np.uint8, (6, 4), iter(blocks))
    with pytest.raises(ValueError, match="more than the 4 rows"):
        ann.write_rows(tmp_path / "c.npy", np.uint8, (4, 4), iter(blocks))
    with pytest.raises(ValueError, match="for rows of 3"):
        ann.write_rows(tmp_path / "d.npy", np.uint8, (5, 3), iter(blocks))


@pytest.mark.parametrize("rescore", ["int8", "float16"])
def test_refresh_rewrites_the_tier_copy_over_every_shard(tmp_path, real, rescore):
    """A table of several files (one shard each) indexed with ANN lists, then refreshed after a file is
    appended: the list-order tier covers every shard's rows, kept and new, and the search through it
    equals the one through the table-order tier (int8 and float16 tiers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.vectors import ann
    from lakeql.vectors.codes import CodeIndex

    rowids, vecs = real
    tbl = pa.table(
        {
            "id": pa.array(rowids, pa.int64()),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), 384),
        }
    )
    folder = tmp_path / "lake" / "vecs" / "docs"
    folder.mkdir(parents=True)
    bounds = np.linspace(0, tbl.num_rows, 4).astype(int)
    for i in range(2):
        pq.write_table(tbl.slice(bounds[i], bounds[i + 1] - bounds[i]), folder / f"part-{i}.parquet")
    idx_dir = tmp_path / "index"
    opts = {"embed_ann": True, "embed_ann_lists": 4, "embed_rescore": rescore}
    build(tmp_path / "lake", idx_dir, ["vecs.docs.v"], **opts)
    pq.write_table(tbl.slice(bounds[2], bounds[3] - bounds[2]), folder / "part-2.parquet")
    build(tmp_path / "lake", idx_dir, ["vecs.docs.v"], refresh=True, **opts)
    (store,) = list((idx_dir / "embed").iterdir())
    assert len(list((store / "shards").iterdir())) == 3
    idx = CodeIndex.load(store, "vecs.docs.v")
    ivf = ann.ivf_of(idx, "vecs.docs.v")
    assert idx.n == len(rowids) and ivf.tier is not None
    assert np.array_equal(np.asarray(ivf.tier), idx.tier[ivf.ids.astype(np.int64)])
    assert ivf.tier.dtype == (np.uint8 if rescore == "int8" else np.float16)
    old_idx, old = dataclasses.replace(idx, _pos={}), ann.IVF(ivf.centroids, ivf.offsets, ivf.ids)
    mapped = ann.open_mapped(store, "vecs.docs.v")  # the list-order rows, rewritten over every shard
    assert np.array_equal(mapped.rowids, idx.rowids[ivf.ids.astype(np.int64)])
    for i in (0, 77, 150):
        got = ann.search(idx, ivf, vecs[i], 5, 4, nprobe=2)
        assert got[0].tolist() == ann.search(old_idx, old, vecs[i], 5, 4, nprobe=2)[0].tolist()
        from_rows = ann.search(mapped, mapped._pos["ann"], vecs[i], 5, 4, nprobe=2)
        assert from_rows[0].tolist() == got[0].tolist() and from_rows[1].tobytes() == got[1].tobytes()
    con = connect(tmp_path / "lake", idx_dir)  # and through SQL (checksums of the new file verified)
    hits = con.execute(
        "SELECT id FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := 3)", [vecs[150].tolist()]
    ).fetchall()
    assert hits[0][0] == rowids[150]
    con.close()


def test_unbounded_binarizers_get_no_tier_copy(tmp_path, real):
    """``sign`` codes have no error bound: their ANN search cuts a sub-index and never reads the
    list-order tier, so none is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rowids, vecs = real
    folder = tmp_path / "lake" / "vecs" / "docs"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"v": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), 384)}),
        folder / "part-0.parquet",
    )
    build(
        tmp_path / "lake",
        tmp_path / "index",
        ["vecs.docs.v"],
        embed_method="sign",
        embed_ann=True,
        embed_ann_lists=4,
    )
    from lakeql.vectors import ann

    (store,) = list((tmp_path / "index" / "embed").iterdir())
    assert (store / ann.FILE).exists() and not (store / ann.TIER_FILE).exists()
    con = connect(tmp_path / "lake", tmp_path / "index")
    got = con.execute(
        "SELECT score FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := 5)",
        [vecs[3].tolist()],
    ).fetchall()
    assert len(got) == 5 and got[0][0] == max(g[0] for g in got)
    con.close()


@pytest.mark.parametrize("dim", [384, 130, 64, 8])
def test_rescoring_kernel_reads_signs_by_words(dim):
    """``kernels.rescore_signed_u8`` (signs shifted out of 64-bit words, a byte-wise tail past the last
    whole word) equals magnitudes x unpacked signs x query, for any dimension count and position order."""
    from lakeql.vectors import kernels

    rng = np.random.default_rng(dim)
    n = 300
    tier = rng.integers(0, 256, (n, dim), dtype=np.uint8)
    codes = rng.integers(0, 256, (n, -(-dim // 8)), dtype=np.uint8)
    scales = rng.random(n, dtype=np.float32)
    qr = rng.standard_normal(dim).astype(np.float32)
    signs = np.unpackbits(codes, axis=1, count=dim, bitorder="little").astype(np.float64) * 2 - 1
    want = 0.25 + scales * ((tier * signs) @ qr)
    pos = rng.permutation(n)[:200]
    got = kernels.rescore_signed_u8(tier, pos, codes, pos, scales, qr, np.float32(0.25))
    assert got.dtype == np.float32 and np.allclose(got, want[pos], rtol=1e-5, atol=1e-4)


def test_list_order_view_reorders_every_per_row_array(ann_lake):
    """The list-order view puts every per-code array of the index in list order (here the int8 scales and
    a per-row array a future index might add), and leaves other arrays alone."""
    from lakeql.vectors import ann
    from lakeql.vectors.codes import CodeIndex

    @dataclasses.dataclass
    class Extended(CodeIndex):
        norms: np.ndarray | None = None
        per_dim: np.ndarray | None = None

    con, idx, ivf = searcher_index(ann_lake)
    fields = {f.name: getattr(idx, f.name) for f in dataclasses.fields(CodeIndex)}
    fields["_pos"] = {}
    ext = Extended(**fields, norms=np.arange(idx.n, dtype=np.float32), per_dim=np.ones(idx.dim))
    view = ann.ListOrder(ext, ivf).view
    ids = ivf.ids.astype(np.int64)
    assert isinstance(view, Extended) and view.tier is ivf.tier
    assert np.array_equal(view.norms, ids.astype(np.float32)) and view.per_dim is ext.per_dim
    assert np.array_equal(view.scales, idx.scales[ids]) and np.array_equal(view.rowids, idx.rowids[ids])
    assert np.array_equal(view.words, idx.words[ids]) and view.n == idx.n
    con.close()


def test_list_order_view_reads_refinement_planes_in_list_order(tmp_path, lake, monkeypatch):
    """With refinement planes (``--embed-refine-bits``, memory-mapped per shard) the list-order view reads
    plane row ``ids[t]`` for list-order row ``t`` without gathering the planes, so refined scores and the
    whole ANN search (refinement step included) equal the table-order ones."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann
    from lakeql.vectors.codes import CodeIndex
    from lakeql.vectors.search import search

    build(
        lake[0],
        tmp_path / "index",
        ["functions.docstring"],
        embed_ann=True,
        embed_ann_lists=8,
        embed_refine_bits=2,
    )
    (store,) = list((tmp_path / "index" / "embed").iterdir())
    idx = CodeIndex.load(store, "t.c")
    ivf = ann.ivf_of(idx, "t.c")
    assert idx.refine_bits == 2 and ivf.tier is not None
    view = ann.ListOrder(idx, ivf).view
    assert isinstance(view.refine, ann.ListOrderRows) and view.refine_bits == 2
    ids = ivf.ids.astype(np.int64)
    t = np.random.default_rng(2).permutation(idx.n)[:50]
    assert np.array_equal(view.refine[t], np.asarray(idx.refine[ids[t]]))
    with pytest.raises(IndexError):
        view.refine[np.array([idx.n])]
    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    old_idx, old = dataclasses.replace(idx, _pos={}), ann.IVF(ivf.centroids, ivf.offsets, ivf.ids)
    for text in QUERIES:
        q = encode([text])[0]
        assert np.allclose(view.refined_score(t, q), idx.refined_score(ids[t], q), atol=1e-6)
        st_new, st_old = {}, {}
        got = ann.search(idx, ivf, q, 10, 4, nprobe=8, stats=st_new)
        want = ann.search(old_idx, old, q, 10, 4, nprobe=8, stats=st_old)
        assert got[0].tolist() == want[0].tolist() and np.allclose(got[1], want[1], atol=1e-6)
        assert st_new == st_old
        assert got[0].tolist() == search(idx, q, 10, 4)[0].tolist()  # every list probed: exhaustive


def test_list_order_view_does_not_inherit_the_blocked_layout(ann_lake, real):
    """An index whose exhaustive search already built its blocked copy of the codes (table order), then
    its first ANN search: the list-order view (a ``dataclasses.replace`` of the index) must not keep that
    copy, or an exhaustive search over the view scans table-order codes as list-order rows (other rows)."""
    from lakeql.vectors import ann
    from lakeql.vectors.search import search

    con, idx, _ = searcher_index(ann_lake)
    ivf = ann.ivf_of(idx, "python.functions.docstring")
    assert idx.blocked() is not None
    view = ann.ListOrder(idx, ivf).view
    assert view is not None and view.blocked() is not idx.blocked()
    for q in real[1][:6]:
        got, got_scores = search(view, q, 10)
        want, want_scores = search(idx, q, 10)
        assert sorted(got.tolist()) == sorted(want.tolist())
        assert np.allclose(np.sort(got_scores), np.sort(want_scores), atol=1e-6)
    con.close()


# ------------------------------------------------ a new connection: the list-order rows, memory-mapped


def test_list_order_rows_are_written_with_the_lists(ann_lake):
    """The words, scan factors, rowids and int8 scales the bounded search reads, in list order (row ``t``
    = code position ``ids[t]``), beside the list-order tier; opened without loading the codes."""
    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    con, idx, ivf = searcher_index(ann_lake)
    m = ann.open_mapped(folder, "python.functions.docstring")
    ids = ivf.ids.astype(np.int64)
    assert m.n == idx.n and m._pos["ann"].ids is None  # the 4-8 bytes a row of ids are not read
    assert np.array_equal(m.words, idx.words[ids]) and np.array_equal(m.rowids, idx.rowids[ids])
    assert np.array_equal(m.scales, idx.scales[ids])
    assert set(m.factors) == set(idx.factors)
    for k, v in idx.factors.items():
        assert np.array_equal(m.factors[k], v[ids]) and m.factors[k].dtype == v.dtype
    assert np.array_equal(np.asarray(m.tier), np.asarray(idx.tier)[ids])
    assert np.array_equal(m._pos["ann"].offsets, ivf.offsets)
    assert isinstance(m.words.base, np.memmap) or isinstance(m.words.base.base, np.memmap)
    con.close()


@pytest.mark.parametrize("nprobe", [None, 1, 3, 16])
def test_mapped_search_equals_the_loaded_one(ann_lake, monkeypatch, nprobe):
    """The same rows, bit-identical scores and the same stats (candidates, rows rescored, probe) from the
    memory-mapped list-order rows as from the loaded index, adaptive and fixed probes; a filter needs
    the loaded index (a clear error, never a wrong answer)."""
    from lakeql.embedding import encode
    from lakeql.errors import LakeqlError
    from lakeql.vectors import ann

    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    (folder,) = list((ann_lake[1] / "embed").iterdir())
    con, idx, ivf = searcher_index(ann_lake)
    m = ann.open_mapped(folder, "python.functions.docstring")
    rng = np.random.default_rng(3)
    far = rng.standard_normal(idx.dim).astype(np.float32)  # a widened query too
    for q in [*encode(QUERIES), far / np.linalg.norm(far)]:
        for adaptive in (True, False):
            st_l: dict = {}
            st_m: dict = {}
            a = ann.search(idx, ivf, q, 10, 4, nprobe=nprobe, stats=st_l, adaptive=adaptive)
            b = ann.search(m, m._pos["ann"], q, 10, 4, nprobe=nprobe, stats=st_m, adaptive=adaptive)
            assert a[0].tolist() == b[0].tolist()
            assert a[1].tobytes() == b[1].tobytes()
            assert st_l == st_m
    with pytest.raises(LakeqlError, match="filtered search needs the loaded index"):
        ann.search(m, m._pos["ann"], q, 5, 4, np.ones(m.n, bool))
    con.close()


def test_a_new_connection_searches_through_the_mapped_rows(ann_lake):
    """An unfiltered ANN search opens the list-order rows only (the codes are not loaded); a filtered or
    exact search loads the index, and later ANN searches use the loaded one: same answers throughout."""
    from lakeql.connection import open_lake

    con, ctx = open_lake(ann_lake[0], index_dir=ann_lake[1], capabilities=["vectors"])
    sql = "SELECT rowid, score FROM semantic_search_rowids('python.functions', 'docstring', ?, k := 10{})"
    keys = lambda: sorted(k[0] for k in ctx.indexes._items)  # noqa: E731
    first = [con.execute(sql.format(""), [q]).fetchall() for q in QUERIES]
    assert keys() == ["embed:ann"]  # the codes were never loaded
    assert all(len(r) == 10 for r in first)
    con.execute(sql.format(", filter := 'lineno > 0'"), [QUERIES[0]]).fetchall()
    assert keys() == ["embed"]  # the mapped rows of the same build are dropped (never read again)
    again = [con.execute(sql.format(""), [q]).fetchall() for q in QUERIES]  # through the loaded index
    assert again == first
    con.close()


def test_an_index_without_list_order_rows_is_loaded_whole(tmp_path, ann_lake):
    """An index built before the list-order rows (no ``ann_rows.json``): ``open_mapped`` gives None and
    the connection loads the codes as before; a damaged rows file is a clear error naming the rebuild."""
    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    copy = tmp_path / "store"
    shutil.copytree(folder, copy)
    (copy / ann.ROWS_FILE).unlink()
    assert ann.open_mapped(copy, "t.c") is None
    shutil.copy(folder / ann.ROWS_FILE, copy / ann.ROWS_FILE)
    words = np.load(copy / ann.WORDS_FILE)
    np.save(copy / ann.WORDS_FILE, words[:-1])  # one row short
    with pytest.raises(CorruptIndexError, match=r"ANN lists of t\.c .*corrupt.*--embed-ann.*exact := true"):
        ann.open_mapped(copy, "t.c")


# ------------------------------------------------ the probed spans scanned through a blocked layout


def test_list_order_blocked_layout_is_written_and_loaded(ann_lake):
    """The build writes the list-order codes' blocked layout beside the rows (``ann_blocks.npy``,
    ``ann_blockf.npy``, its rounding bound in ``ann_rows.json``); the mapped layout equals the one a
    loaded index's list order builds in memory, and both equal ``blocked_codes`` of the list-order rows."""
    import json

    from lakeql.vectors import ann, kernels

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    assert "blocked" in json.loads((folder / ann.ROWS_FILE).read_text())
    con, idx, ivf = searcher_index(ann_lake)
    ann.search(idx, ivf, np.ones(idx.dim, np.float32) / np.sqrt(idx.dim), 10)  # makes the list order
    lo = idx._pos["ann_order"]
    m = ann.open_mapped(folder, "python.functions.docstring")
    mb = m._pos["ann_order"].blocked
    ids = ivf.ids.astype(np.int64)
    want = kernels.blocked_codes(idx.words[ids], {k: v[ids] for k, v in idx.factors.items()})
    for got in (lo.blocked, mb):
        assert np.array_equal(got.codes, want.codes) and np.array_equal(got.f32, want.f32)
        assert got.bound == want.bound
    assert isinstance(mb.codes.base, np.memmap) or isinstance(mb.codes.base.base, np.memmap)
    con.close()


@pytest.mark.parametrize("nprobe", [None, 1, 3])
def test_blocked_spans_search_equals_the_row_scan(ann_lake, monkeypatch, nprobe):
    """ANN searches through the blocked layout return what the row-by-row span scan returns: the same
    rows, bit-identical scores and stats, adaptive and fixed probes, with and without a filter."""
    from lakeql.embedding import encode
    from lakeql.vectors import ann

    monkeypatch.setattr(ann, "EXHAUSTIVE_BELOW", 0)
    con, idx, ivf = searcher_index(ann_lake)
    rng = np.random.default_rng(4)
    far = rng.standard_normal(idx.dim).astype(np.float32)
    queries = [*encode(QUERIES), far / np.linalg.norm(far)]
    allowed = np.zeros(idx.n, bool)
    allowed[::3] = True

    def run():
        out = []
        for q in queries:
            for adaptive in (True, False):
                for mask in (None, allowed):
                    st: dict = {}
                    r, s = ann.search(idx, ivf, q, 10, 4, mask, nprobe=nprobe, stats=st, adaptive=adaptive)
                    out.append((r.tolist(), s.tobytes(), st))
        return out

    ann.search(idx, ivf, queries[0], 10)
    lo = idx._pos["ann_order"]
    assert lo.blocked is not None
    got = run()
    lo.blocked = None  # the row-by-row spans kernel
    assert run() == got
    con.close()


def test_an_index_without_the_blocked_layout_is_scanned_row_by_row(tmp_path, ann_lake):
    """Rows files written before the blocked layout (no ``blocked`` entry, no files): mapped and searched
    row by row with the same answers; a damaged layout is a clear error naming the rebuild."""
    import json

    from lakeql.embedding import encode
    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    copy = tmp_path / "store"
    shutil.copytree(folder, copy)
    m = ann.open_mapped(copy, "t.c")
    spec = json.loads((copy / ann.ROWS_FILE).read_text())
    old = {k: v for k, v in spec.items() if k != "blocked"}
    (copy / ann.ROWS_FILE).write_text(json.dumps(old))
    (copy / ann.BLOCKS_FILE).unlink()
    (copy / ann.BLOCKF_FILE).unlink()
    o = ann.open_mapped(copy, "t.c")
    assert o._pos["ann_order"].blocked is None and m._pos["ann_order"].blocked is not None
    for q in encode(QUERIES):
        a = ann.search(m, m._pos["ann"], q, 10)
        b = ann.search(o, o._pos["ann"], q, 10)
        assert a[0].tolist() == b[0].tolist() and a[1].tobytes() == b[1].tobytes()
    shutil.copy(folder / ann.BLOCKS_FILE, copy / ann.BLOCKS_FILE)
    shutil.copy(folder / ann.BLOCKF_FILE, copy / ann.BLOCKF_FILE)
    for bad in (
        {**spec, "blocked": {"bound": float("nan"), "block": 64}},
        {**spec, "blocked": {"block": 32}},
    ):
        (copy / ann.ROWS_FILE).write_text(json.dumps(bad))
        with pytest.raises(CorruptIndexError, match=r"ANN lists of t\.c .*corrupt.*--embed-ann"):
            ann.open_mapped(copy, "t.c")
    (copy / ann.ROWS_FILE).write_text(json.dumps(spec))
    np.save(copy / ann.BLOCKF_FILE, np.load(copy / ann.BLOCKF_FILE)[:-1])  # one line short
    with pytest.raises(CorruptIndexError, match=r"ANN lists of t\.c .*corrupt.*--embed-ann"):
        ann.open_mapped(copy, "t.c")


def test_concurrent_first_ann_searches_build_one_list_order(ann_lake, monkeypatch):
    """ANN searches from several threads (DuckDB calls the UDF from its own threads; DB-API cursors, MCP)
    on a loaded index whose list order is not built yet: the list order and its blocked layout (1.5 GB
    together at 10M rows) are built once and shared, and every thread gets the single-thread hits."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from lakeql.embedding import encode
    from lakeql.vectors import ann
    from lakeql.vectors.codes import CodeIndex

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    queries = encode(QUERIES)

    def fresh():
        idx = CodeIndex.load(folder, "t.c")
        return idx, ann.ivf_of(idx, "t.c")

    idx, ivf = fresh()
    want = [ann.search(idx, ivf, q, 10)[0].tolist() for q in queries]
    idx, ivf = fresh()
    built, real_layout = [], ann.blocked_layout
    start = threading.Barrier(len(queries))

    def slow(*a):
        built.append(1)
        time.sleep(0.3)  # a 10M-row build takes seconds: the other threads arrive meanwhile
        return real_layout(*a)

    monkeypatch.setattr(ann, "blocked_layout", slow)

    def one(q):
        start.wait()
        return ann.search(idx, ivf, q, 10)[0].tolist()

    with ThreadPoolExecutor(len(queries)) as pool:
        got = list(pool.map(one, queries))
    assert got == want
    assert len(built) == 1 and idx._pos["ann_order"].blocked is not None


def _hostile_blocked(copy, spec, case):
    """Damage ``copy``'s blocked layout (or its ``ann_rows.json`` entry) the way ``case`` names."""
    import json

    from lakeql.vectors import ann

    codes = np.load(copy / ann.BLOCKS_FILE)
    f32 = np.load(copy / ann.BLOCKF_FILE)
    if case == "codes int64":
        np.save(copy / ann.BLOCKS_FILE, codes.view(np.int64))
    elif case == "codes big-endian":
        np.save(copy / ann.BLOCKS_FILE, codes.astype(">u8"))
    elif case == "codes 3-d":
        np.save(copy / ann.BLOCKS_FILE, codes.reshape(-1, codes.shape[0], 64)[None])
    elif case == "codes one block short":
        np.save(copy / ann.BLOCKS_FILE, codes[: -(codes.shape[0] // (len(f32) // 3))])  # one block of words
    elif case == "codes extra words":
        np.save(copy / ann.BLOCKS_FILE, np.concatenate([codes, codes[:1]]))
    elif case == "codes lanes 32":
        np.save(copy / ann.BLOCKS_FILE, codes.reshape(-1, 32))
    elif case == "f32 float64":
        np.save(copy / ann.BLOCKF_FILE, f32.astype(np.float64))
    elif case == "f32 two factors":
        np.save(copy / ann.BLOCKF_FILE, f32[: len(f32) // 3 * 2])
    elif case == "file truncated":
        raw = (copy / ann.BLOCKS_FILE).read_bytes()
        (copy / ann.BLOCKS_FILE).write_bytes(raw[: len(raw) // 2])
    elif case == "file missing":
        (copy / ann.BLOCKF_FILE).unlink()
    else:
        blocked = {
            "entry a list": [1, 2],
            "entry a string": "yes",
            "bound missing": {"block": 64},
            "bound a string": {"block": 64, "bound": "x"},
            "bound negative": {"block": 64, "bound": -1.0},
            "bound infinite": {"block": 64, "bound": 1e400},
            "block huge": {"block": 1e400, "bound": 1.0},
            "block a string": {"block": "sixty-four", "bound": 1.0},
        }[case]
        (copy / ann.ROWS_FILE).write_text(json.dumps({**spec, "blocked": blocked}))


@pytest.mark.parametrize(
    "case",
    [
        "codes int64",
        "codes big-endian",
        "codes 3-d",
        "codes one block short",
        "codes extra words",
        "codes lanes 32",
        "f32 float64",
        "f32 two factors",
        "file truncated",
        "file missing",
        "entry a list",
        "entry a string",
        "bound missing",
        "bound a string",
        "bound negative",
        "bound infinite",
        "block huge",
        "block a string",
    ],
)
def test_a_hostile_blocked_layout_is_refused_before_the_kernel(tmp_path, ann_lake, case):
    """Blocked files of the wrong shape, dtype, byte order or length, and ``ann_rows.json`` entries of
    the wrong type, are a CorruptIndexError naming the rebuild when the rows are opened: the numba kernel,
    which does not check bounds, never sees them."""
    import json

    from lakeql.vectors import ann

    (folder,) = list((ann_lake[1] / "embed").iterdir())
    copy = tmp_path / "store"
    shutil.copytree(folder, copy)
    spec = json.loads((copy / ann.ROWS_FILE).read_text())
    _hostile_blocked(copy, spec, case)
    with pytest.raises(CorruptIndexError, match=r"ANN lists of t\.c .*corrupt.*--embed-ann"):
        ann.open_mapped(copy, "t.c")
