"""The FM-index shard against brute force, on real text and on edge-case alphabets (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ngramutil import stdlib_files
from testutil import find_all

from lakeql.ngrams.fmindex import Shard, build_shard


def make_shard(tmp: Path, rows: list[bytes], **kw) -> tuple[Shard, bytes, np.ndarray]:
    raw = b"".join(r + b"\0" for r in rows)
    starts = np.zeros(len(rows) + 1, np.int64)
    starts[1:] = np.cumsum([len(r) + 1 for r in rows])
    build_shard(np.frombuffer(bytearray(raw), np.uint8), starts, 0, tmp, **kw)
    return Shard(tmp), raw, starts


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    rows = [b for _, b in stdlib_files(400_000)]
    return make_shard(tmp_path_factory.mktemp("shard"), rows)


@pytest.fixture(scope="module")
def real_fast(tmp_path_factory):
    rows = [b for _, b in stdlib_files(400_000)]
    return make_shard(tmp_path_factory.mktemp("shardfast"), rows, fast=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sampled_phrases_match_brute_force(real, real_fast, data):
    shard, raw, _ = real
    start = data.draw(st.integers(0, len(raw) - 1))
    length = data.draw(st.sampled_from([1, 2, 3, 4, 6, 9, 16, 33, 64, 200, 512]))
    pat = raw[start:start + length]
    mutate = data.draw(st.booleans())
    if mutate and len(pat) > 2:  # often absent: flip one byte
        k = data.draw(st.integers(0, len(pat) - 1))
        pat = pat[:k] + bytes([(pat[k] + 1) % 256]) + pat[k + 1:]
    want = find_all(raw, pat)
    arr = np.frombuffer(pat, np.uint8)
    assert shard.count(arr) == len(want)
    if len(want) <= 20000:
        for s in (shard, real_fast[0]):
            sp, ep = s.range(arr)
            assert sorted(s.positions(sp, ep).tolist()) == want


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=30),
       pat=st.binary(min_size=1, max_size=4))
def test_arbitrary_bytes_match_brute_force(tmp_path_factory, rows, pat):
    """Any bytes (invalid UTF-8, NULs, one-symbol alphabets) index and count exactly."""
    shard, raw, _ = make_shard(tmp_path_factory.mktemp("h"), rows, sample_rate=4)
    arr = np.frombuffer(pat, np.uint8)
    want = find_all(raw, pat)
    assert shard.count(arr) == len(want)
    sp, ep = shard.range(arr)
    assert sorted(shard.positions(sp, ep).tolist()) == want


@pytest.mark.parametrize("rows", [[b"a" * 1000], [bytes(range(256)) * 3, b""], [b"", b"", b""],
                                  [b"\xff\xfe" * 500 + b"x"]])
def test_edge_alphabets(tmp_path, rows):
    shard, raw, _ = make_shard(tmp_path, rows)
    for pat in {raw[:1], raw[:2], raw[5:9], b"\x00", b"a" * 999, b"zz"}:
        if not pat:
            continue
        assert shard.count(np.frombuffer(pat, np.uint8)) == len(find_all(raw, pat))


def test_next_counts_are_extensions(real):
    shard, raw, _ = real
    pat = b"self."
    counts = shard.next_counts(np.frombuffer(pat, np.uint8))
    assert counts.sum() == len(find_all(raw, pat))
    for b in np.nonzero(counts)[0][:10]:
        assert counts[b] == len(find_all(raw, pat + bytes([int(b)])))


def test_index_is_smaller_than_half_the_text(real):
    shard, raw, _ = real
    assert shard.nbytes <= 0.5 * len(raw)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_extract_returns_the_text(real, data):
    """Text decoded from the index (for snippets) equals the original bytes, at any range."""
    shard, raw, _ = real
    a = data.draw(st.integers(0, len(raw)))
    b = data.draw(st.integers(a, min(len(raw), a + 300)))
    assert shard.extract(a, b) == raw[a:b]


def test_extract_at_the_ends(real):
    shard, raw, _ = real
    assert shard.extract(0, 50) == raw[:50]
    assert shard.extract(len(raw) - 50, len(raw)) == raw[-50:]
    assert shard.extract(len(raw) - 1, len(raw)) == b"\x00"


def test_scan_kernels_equal_brute_force():
    """The scan-tier kernels (SWAR byte counts, candidate verification) on rows of every alignment."""
    from lakeql.ngrams.kernels import count_byte_rows, verify_candidates

    data = b"".join(b for _, b in stdlib_files(300_000))
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(len(data), 400, replace=False))
    rows = [data[a:b].replace(b"\x00", b" ") for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    rows += [b"", b"e", b"ee", b"e" * 17, b"abcdefgh" * 3]
    buf = np.frombuffer(b"".join(r + b"\x00" for r in rows), dtype=np.uint8)
    starts = np.zeros(len(rows) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(r) + 1 for r in rows])
    for pat in [b"e", b" ", b"h", b"self", b"ee", b"def ", b"\n    "]:
        want = [(_count(r, pat), r.find(pat)) for r in rows]
        p = np.frombuffer(pat, dtype=np.uint8)
        for need in (True, False):
            if len(pat) == 1:
                c, f = count_byte_rows(buf, starts, p[0], need)
            else:
                cand = np.flatnonzero(buf == p[-1])
                c, f = verify_candidates(buf, starts, p, len(pat) - 1, cand, need)
            assert list(f) == [w[1] for w in want]
            assert list(c) == ([w[0] for w in want] if need else [min(1, w[0]) for w in want])


def _count(text: bytes, pat: bytes) -> int:
    c, j = 0, text.find(pat)
    while j >= 0:
        c += 1
        j = text.find(pat, j + 1)
    return c
