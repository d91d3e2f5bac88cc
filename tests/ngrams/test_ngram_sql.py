"""The SQL functions over a multi-shard, multi-file index of real Python source, against brute force."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ngramutil import brute_count, build

T, C = "code.files", "text"


def q(con, sql, *params):
    return con.execute(sql, list(params)).fetchall()


def test_index_is_sharded_and_listed(indexed):
    con, _ = indexed
    rows = q(con, "SELECT kind, table_name, column_name, bytes, source_bytes, params FROM lakeql_indexes() "
                  "WHERE kind = 'ngram'")
    assert len(rows) == 1
    kind, table, col, size, src, params = rows[0]
    assert (kind, table, col) == ("ngram", T, C)
    p = json.loads(params)
    assert p["shards"] >= 3 and p["case"] == "sensitive" and p["mode"] == "compressed"
    assert p["words"] and not p["scan"] and p["fold"] == "casefold" and p["format"] == 2
    # by default (character and word FM-indexes, no scan tier) the index is smaller than the text
    assert size < src


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_count_and_rows_equal_brute_force(indexed, corpus, data):
    con, _ = indexed
    i = data.draw(st.integers(0, len(corpus) - 1))
    text = corpus[i][1] or b"x"
    start = data.draw(st.integers(0, max(0, len(text) - 1)))
    length = data.draw(st.sampled_from([1, 2, 3, 5, 8, 13, 32, 64, 300]))
    phrase = text[start:start + length].decode("utf-8", "ignore") or "x"
    want, rows = brute_count(corpus, phrase.encode())
    got = q(con, "SELECT ngram_count(?, ?, ?), ngram_rows(?, ?, ?)", T, C, phrase, T, C, phrase)[0]
    assert got == (want, len(rows))


@pytest.mark.parametrize("phrase", ["def __init__(self", "import os\n", "return None", "zzzq-absent-qzzz",
                                    "日本語", "🐍", "ﬁ", "Grüße"])
def test_search_rows_and_snippets(indexed, corpus, phrase):
    con, _ = indexed
    want, rows = brute_count(corpus, phrase.encode())
    got = q(con, "SELECT path, n, occurrences, snippet FROM ngram_search(?, ?, ?, k := 1000)", T, C, phrase)
    assert {r[0] for r in got} == {corpus[i][0] for i in rows}
    assert sum(r[2] for r in got) == want
    by_path = {p: t for p, t in corpus}
    for path, n, occ, snip in got:
        assert occ == by_path[path].count(phrase.encode()) or phrase == "import os\n"
        assert n == len(by_path[path])
        assert phrase.replace("\n", " ") in snip and len(snip.encode()) <= 80 + len(phrase.encode()) + 12
    occs = [r[2] for r in got]
    assert occs == sorted(occs, reverse=True)


def test_search_k_limits_and_orders(indexed, corpus):
    con, _ = indexed
    got = q(con, "SELECT path, occurrences FROM ngram_search(?, ?, 'self', k := 5)", T, C)
    counts = sorted(((t or b"").count(b"self"), p) for p, t in corpus)[::-1]
    assert len(got) == 5
    assert [g[1] for g in got] == sorted([c for c, _ in counts], reverse=True)[:5]


def test_overlapping_occurrences(indexed, corpus):
    con, _ = indexed
    want, _ = brute_count(corpus, b"    ")  # indentation overlaps itself
    assert q(con, "SELECT ngram_count(?, ?, '    ')", T, C)[0][0] == want
    assert want > sum((t or b"").count(b"    ") for _, t in corpus)  # more than non-overlapping


def test_sliding_windows_vectorised(indexed, corpus):
    """ngram_count over a column of phrases (one Arrow call per chunk) equals per-phrase brute force."""
    con, _ = indexed
    text = corpus[20][1].decode()
    phrases = [text[i:i + 12] for i in range(0, 3000, 7)]
    got = q(con, "SELECT p, ngram_count(?, ?, p) FROM unnest(?::VARCHAR[]) t(p)", T, C, phrases)
    for p, c in got:
        assert c == brute_count(corpus, p.encode())[0]


def test_next_characters(indexed, corpus):
    con, _ = indexed
    prefix = "return self."
    got = q(con, "SELECT next, count, share FROM ngram_next(?, ?, ?, k := 8)", T, C, prefix)
    assert 0 < len(got) <= 8
    total = brute_count(corpus, prefix.encode())[0]
    for ch, n, share in got:
        assert n == brute_count(corpus, (prefix + ch).encode())[0]
        assert share == pytest.approx(n / total)
    assert [g[1] for g in got] == sorted([g[1] for g in got], reverse=True)
    # multi-byte characters come back whole
    uni = q(con, "SELECT next FROM ngram_next(?, ?, 'Grüße, naïve caf', k := 3)", T, C)
    assert uni == [("é",)]


def test_null_and_empty_rows_keep_row_ids(indexed, corpus):
    con, _ = indexed
    got = q(con, "SELECT path, snippet FROM ngram_search(?, ?, 'broken ' || chr(0) || ' nul', k := 5)", T, C)
    assert got == [("bad-utf8", "abc\ufffd\ufffd def \ufffd broken \x00 nul inside")]
    # a NUL in the phrase counts NULs inside rows only, never the row separators
    want = sum((t or b"").count(b"\x00") for _, t in corpus)
    assert q(con, "SELECT ngram_count(?, ?, chr(0))", T, C)[0][0] == want == 1
    assert q(con, "SELECT ngram_count(?, ?, 'inside' || chr(0))", T, C)[0][0] == 0
    assert q(con, "SELECT ngram_count(?, ?, NULL), ngram_count(NULL, ?, 'x')", T, C, C)[0] == (None, None)


def test_case_insensitive_and_fast_modes(text_lake, corpus, tmp_path):
    import lakeql

    build(text_lake, tmp_path / "ci", "code.files.text", ngram_case="insensitive", ngram_mode="fast")
    con = lakeql.connect(text_lake, index_dir=tmp_path / "ci")
    for phrase in ["IMPORT OS", "Def __Init__", "naÏve"]:
        want, rows = brute_count(corpus, phrase.casefold().encode(), fold=True)  # Unicode folding
        assert q(con, "SELECT ngram_count(?, ?, ?), ngram_rows(?, ?, ?)", T, C, phrase, T, C, phrase)[0] \
            == (want, len(rows))
    size, src = q(con, "SELECT bytes, source_bytes FROM lakeql_indexes() WHERE kind = 'ngram'")[0]
    assert size > 2 * src  # fast mode keeps the whole suffix array


def test_refresh_skips_up_to_date_and_rebuilds_changed(text_lake, tmp_path):
    import lakeql

    idx = tmp_path / "r"
    build(text_lake, idx, "code.files.text")
    con = lakeql.connect(text_lake, index_dir=idx)
    first = q(con, "SELECT built_at FROM lakeql_indexes() WHERE kind = 'ngram'")[0][0]
    build(text_lake, idx, refresh=True)  # no --ngram flag: the existing index is kept fresh
    con = lakeql.connect(text_lake, index_dir=idx)
    assert q(con, "SELECT built_at FROM lakeql_indexes() WHERE kind = 'ngram'")[0][0] == first
    # a changed Parquet file makes the index stale; --refresh rebuilds just that
    import os
    import time

    part = text_lake / "code" / "files" / "part-0.parquet"
    st = part.stat()
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        with pytest.raises(Exception, match="older than the Parquet files.*--refresh"):
            q(lakeql.connect(text_lake, index_dir=idx), "SELECT ngram_count(?, ?, 'def')", T, C)
        time.sleep(0.01)
        build(text_lake, idx, refresh=True)
        con = lakeql.connect(text_lake, index_dir=idx)
        assert q(con, "SELECT built_at FROM lakeql_indexes() WHERE kind = 'ngram'")[0][0] > first
        assert q(con, "SELECT ngram_count(?, ?, 'def')", T, C)[0][0] > 0
    finally:
        os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("phrase", ["self", "e", "def __init__(self", "abc"])
def test_scan_fallback_equals_index(indexed, corpus, monkeypatch, phrase):
    """Frequent phrases use a column scan for row sets: same rows, counts and snippets as the index."""
    import lakeql.ngrams.query as Q

    con, _ = indexed
    sql = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 50)"
    via_index = q(con, sql, T, C, phrase)
    rows_index = q(con, "SELECT ngram_rows(?, ?, ?)", T, C, phrase)[0][0]
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)
    assert q(con, sql, T, C, phrase) == via_index
    assert q(con, "SELECT ngram_rows(?, ?, ?)", T, C, phrase)[0][0] == rows_index \
        == len(brute_count(corpus, phrase.encode())[1])
