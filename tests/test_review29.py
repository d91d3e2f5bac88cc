"""review29: a hard review of the exhaustive scan's own layout (:mod:`lakeql.vectors.fullscan`, merged
from h/sqlscan). The full-scan kernel must return what the blocked kernel it replaced
(:func:`kernels.asym4_bounded_blocked`) and the row scan (:func:`kernels.asym4_bounded_spans`) return,
bit for bit, in the cases the merge's own tests left out: dimensions that are not a multiple of 64 (the
code words' padding bits), filters that allow one row, ``k`` above the rows the filter allows, NaN and
infinite factors (a damaged index), and a layout whose rows do not match the codes (it must refuse, not
read past its arrays); and its float64 factors must sit one row to a cache line (what its prefetch and
its docstring assume). Real MiniLM embeddings of the test lake's docstrings (tests/vectors/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from lakeql.vectors import binarizers, fullscan, kernels


@pytest.fixture(scope="module")
def real() -> tuple[None, np.ndarray]:
    """(None, float32 embeddings) of the sample lake's first 200 non-blank docstrings (cut to 200
    characters), by the default index's encoder: the vectors tests' ``real`` fixture, without a lake."""
    import duckdb
    from testutil import SAMPLE_LAKE

    from lakeql.embedding import encode, load_model

    path = str(SAMPLE_LAKE / "python" / "functions.parquet")
    con = duckdb.connect()
    try:
        docs = [r[0] for r in con.execute(
            "SELECT left(docstring, 200) FROM read_parquet(?) WHERE docstring IS NOT NULL "
            "AND length(trim(docstring)) > 0 ORDER BY module, qualname LIMIT 200", [path]).fetchall()]
    finally:
        con.close()
    assert len(docs) == 200
    return None, encode(docs, load_model(None, "auto"))


def _codes(x: np.ndarray, d: int, copies: int = 20, seed: int = 3):
    """(binarizer, words, factors, queries) of near-duplicate clusters of the first ``d`` dimensions of
    the real embeddings (renormalized), every 5th row repeated exactly (ties at the cut-off)."""
    x = x[:, :d].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs, queries = x[:-40], x[-40:].astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = np.repeat(docs, copies, axis=0) + rng.normal(0, 0.01, (len(docs) * copies, d))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    rows = np.concatenate([rows, rows[::5]])
    b = binarizers.get("rabitq", d).fit(rows)
    codes, factors = b.encode(rows)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    return b, words, factors, queries


def _same(a, b):
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)


def _check(b, words, factors, queries, ks, masks, caps):
    """Every query under every (k, mask, cap): full-scan == blocked == row scan; returns result sizes."""
    full, old = fullscan.full_layout(words, factors), kernels.blocked_inputs(words, factors)
    sizes = []
    for i, q in enumerate(queries):
        for k in ks:
            for cap in caps:
                allowed = masks[(i + k) % len(masks)]
                want = b.candidates(q, words, factors, k, allowed, cap)
                _same(b.candidates(q, words, factors, k, allowed, cap, blocked=old), want)
                _same(b.candidates(q, words, factors, k, allowed, cap, blocked=full), want)
                sizes.append(len(want[0]))
    return sizes


@pytest.mark.parametrize("d", [100, 200, 383])
def test_dims_not_a_multiple_of_64(real, d):
    """384-dimensional codes fill six words exactly; 100, 200 and 383 dimensions leave padding bits."""
    b, words, factors, queries = _codes(real[1], d)
    n = len(words) - 7
    words, factors = np.ascontiguousarray(words[:n]), {k: v[:n] for k, v in factors.items()}
    assert words.shape[1] == -(-d // 64)
    one = np.zeros(n, bool)
    one[n // 2] = True
    masks = [None, np.zeros(n, bool), one, np.ones(n, bool), np.random.default_rng(5).random(n) < 0.2]
    sizes = _check(b, words, factors, queries[:12], (1, 10, n + 5), masks, (50, 20_000))
    assert max(sizes) > 10 and min(sizes) == 0


def test_filters_of_one_row_and_k_above_the_allowed(real):
    """A filter allowing 1 row (first, last, middle) or 3 rows, with ``k`` 1, 3, 50 and above ``n``: the
    one allowed row alone, or the allowed rows, whatever ``k``."""
    b, words, factors, queries = _codes(real[1], 384, copies=8)
    n = len(words)
    masks = []
    for picks in ([0], [n - 1], [n // 2], [0, 64, n - 1]):
        m = np.zeros(n, bool)
        m[picks] = True
        masks.append(m)
    full = fullscan.full_layout(words, factors)
    for q in queries[:8]:
        for m in masks:
            for k in (1, 3, 50, n + 1):
                got = b.candidates(q, words, factors, k, m, 100, blocked=full)
                _same(got, b.candidates(q, words, factors, k, m, 100))
                if k >= m.sum():
                    assert sorted(got[0].tolist()) == np.flatnonzero(m).tolist()


@pytest.mark.parametrize("damage", ["nan_add", "inf_add", "ninf_add", "inf_factor", "nan_errc", "huge_errc"])
def test_damaged_factors(real, damage):
    """NaN, +-inf and 1e38 factors on some rows (a damaged or hand-made index): the three kernels still
    agree (such rows are never skipped on their float32 bound)."""
    b, words, factors, queries = _codes(real[1], 384, copies=8)
    factors = {k: v.copy() for k, v in factors.items()}
    name, value = {
        "nan_add": ("add", np.nan),
        "inf_add": ("add", np.inf),
        "ninf_add": ("add", -np.inf),
        "inf_factor": ("factor", np.inf),
        "nan_errc": ("errc", np.nan),
        "huge_errc": ("errc", 1e38),
    }[damage]
    factors[name][::97] = value
    n = len(words)
    with np.errstate(all="ignore"):
        masks = [None, np.random.default_rng(1).random(n) < 0.5]
        _check(b, words, factors, queries[:8], (1, 10), masks, (50,))


@pytest.mark.parametrize("delta", [-100, -64, 1, 64, 100])
def test_layout_of_other_rows_is_refused(real, delta):
    """A layout built for more or fewer rows than the codes scanned (a stale copy) is refused with a
    clear error: the kernel would read its float64 factors and the filter past their ends."""
    b, words, factors, queries = _codes(real[1], 384, copies=4)
    n = len(words) - 200
    other = fullscan.full_layout(words[: n + delta], {k: v[: n + delta] for k, v in factors.items()})
    words, factors = words[:n], {k: v[:n] for k, v in factors.items()}
    with pytest.raises(ValueError, match="rows"):
        b.candidates(queries[0], words, factors, 10, np.ones(n, bool), 100, blocked=other)


def test_float64_rows_on_one_cache_line(real):
    """Each row's four float64 factors (32 bytes) sit inside one 64-byte line, so the one line
    prefetched ahead of a kept row is all the float64 step reads (NumPy aligns only to 16 bytes:
    every other row straddled two lines)."""
    b, words, factors, queries = _codes(real[1], 384, copies=2)
    for n in (1, 2, 3, 130, len(words)):
        f64 = fullscan.full_layout(words[:n], {k: v[:n] for k, v in factors.items()}).f64
        assert f64.shape == (n, 4) and f64.dtype == np.float64 and f64.flags.c_contiguous
        assert f64.ctypes.data % 64 == 0
        assert np.array_equal(f64[:, 2], factors["popc"][:n])


def test_kernel_refuses_rows_past_its_layout(real):
    """Called directly with ``n`` other than its layout's rows, the kernel raises instead of shifting a
    uint64 by a negative count and reading the factors and filter past their ends."""
    b, words, factors, queries = _codes(real[1], 384, copies=2)
    full = fullscan.full_layout(words, factors)
    planes = [np.zeros(words.shape[1], np.uint64)] * 4
    n = len(words)
    for bad in (n - 64, n - 1, n + 1, n + 64):
        with pytest.raises(ValueError, match="other rows"):
            fullscan.asym4_bounded_full(
                full.codes, full.f32, full.f64, 0.0, bad, *planes, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 10,
                np.ones(bad, bool), 100,
            )
    got = fullscan.asym4_bounded_full(
        full.codes, full.f32, full.f64, 0.0, n, *planes, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 10,
        np.ones(n, bool), 100,
    )
    assert len(got) == 3


def test_layout_follows_appends(tmp_path, real, monkeypatch):
    """A table of Parquet parts (one shard each), searched on one connection (the layout built once, of
    its rows), then a part appended and the index refreshed: that connection refuses (its views read the
    old files), a new one builds a layout of all the rows (never the old copy) and answers what the row
    scan answers (a connection with ``LAKEQL_BLOCKED_MAX_MB=0``), filtered and not."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql

    vecs = real[1]
    n = len(vecs)
    tbl = pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "kind": pa.array(["a" if i % 3 else "b" for i in range(n)]),
        "v": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), vecs.shape[1]),
    })
    folder = tmp_path / "lake" / "vecs" / "docs"
    folder.mkdir(parents=True)
    cuts = [0, 70, 130, 150, n]
    parts = []
    for i in range(4):
        parts.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(tbl.slice(cuts[i], cuts[i + 1] - cuts[i]), parts[-1])
    for p in parts[:3]:
        shutil.copy(p, folder)
    lake, idx = tmp_path / "lake", tmp_path / "index"
    opts = {"index_dir": idx, "capabilities": ["vectors"], "progress": False}
    lakeql.index(lake, embed=["vecs.docs.v"], **opts)

    built: list[int] = []
    real_build = fullscan.full_layout

    def counting(words, factors):
        built.append(len(words))
        return real_build(words, factors)

    monkeypatch.setattr(fullscan, "full_layout", counting)
    sql = "SELECT id, score FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := {})"
    queries = [vecs[i].tolist() for i in (3, 140, 160, 199)]

    def answers(con) -> list:
        out = []
        for q in queries:
            out.append(con.execute(sql.format(8), [q]).fetchall())
            out.append(con.execute(sql.format("5, filter := 'kind = ''b'''"), [q]).fetchall())
        return out

    def row_scan() -> list:
        monkeypatch.setenv("LAKEQL_BLOCKED_MAX_MB", "0")
        con = lakeql.connect(lake, index_dir=idx, capabilities=["vectors"])
        try:
            return answers(con)
        finally:
            con.close()
            monkeypatch.delenv("LAKEQL_BLOCKED_MAX_MB")

    con = lakeql.connect(lake, index_dir=idx, capabilities=["vectors"])
    try:
        first = answers(con)
        assert built == [150] and first == row_scan() and built == [150]
        assert max(r[0] for a in first for r in a) < 150
        shutil.copy(parts[3], folder)
        lakeql.index(lake, embed=["vecs.docs.v"], refresh=True, **opts)
        with pytest.raises(lakeql.errors.StaleIndexError):  # this connection's views read the old files
            answers(con)
    finally:
        con.close()
    con = lakeql.connect(lake, index_dir=idx, capabilities=["vectors"])
    try:
        second = answers(con)
        assert built == [150, n] and second == row_scan()
        assert max(r[0] for a in second for r in a) >= 150  # the appended rows are found
    finally:
        con.close()


@pytest.mark.parametrize("share,layout", [(0.002, False), (0.009, False), (0.05, True), (None, True)])
def test_selective_filter_scans_row_by_row(real, share, layout):
    """A filter allowing under 1% of the rows (the ANN stage sends filters of up to 50,000 rows to the
    exhaustive search) is scanned row by row: the row scan skips a disallowed row before its popcounts,
    the full-scan kernel computes every row's (measured at 1M rows: 0.1% allowed 3.0x, 1% 1.2x the row
    scan's CPU; 2% 0.8x) and the layout (96 bytes a row) is not built for it. Same hits and scores."""
    from pathlib import Path

    from lakeql.vectors import search as vsearch
    from lakeql.vectors.codes import CodeIndex, encode_tier

    b, words, factors, queries = _codes(real[1], 384, copies=40)
    n = len(words)
    rng = np.random.default_rng(7)
    rows = np.zeros((n, 384), np.float32)  # the tier: any vectors (the same ones for both searches)
    rows[:, 0] = 1.0
    rows += rng.normal(0, 0.1, rows.shape).astype(np.float32)
    values, scales, space, _ = encode_tier(rows, "int8", b)
    meta = {"dim": 384, "tier_space": space, "tier": "int8"}
    allowed = None if share is None else rng.random(n) < share
    if allowed is not None:
        allowed[:5] = True

    def fresh():
        return CodeIndex(Path("."), meta, np.arange(n), words, factors, values, scales, b)

    idx = fresh()
    got = [vsearch.search(idx, q, 10, allowed=allowed) for q in queries[:6]]
    assert (idx._blocked is not None) == layout
    old = fresh()
    old._blocked = kernels.blocked_inputs(words, factors)  # what main ran: the blocked layout, always
    ref = fresh()
    ref.blocked = lambda: None  # the row scan
    for q, (pos, scores) in zip(queries[:6], got, strict=True):
        for other in (old, ref):
            pos2, scores2 = vsearch.search(other, q, 10, allowed=allowed)
            assert pos.tolist() == pos2.tolist() and np.array_equal(scores, scores2)


def test_chunk_edges(real):
    """Row counts at the edges of a chunk of ``CHUNK_BLOCKS`` blocks (16,384 rows: one row short, exact,
    one over, two chunks exact): identical to the blocked kernel and the row scan, filtered or not."""
    b, words, factors, queries = _codes(real[1], 384, copies=220)
    chunk = fullscan.CHUNK_BLOCKS * kernels.BLOCK
    assert len(words) >= 2 * chunk
    for n in (chunk - 1, chunk, chunk + 1, 2 * chunk):
        w, f = np.ascontiguousarray(words[:n]), {k: v[:n] for k, v in factors.items()}
        masks = [None, np.random.default_rng(n).random(n) < 0.5]
        _check(b, w, f, queries[:4], (1, 10), masks, (50, 20_000))
