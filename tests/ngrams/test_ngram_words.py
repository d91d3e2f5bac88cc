"""Word units, the ∞-gram and AND/OR queries, exact against a Python ``re`` scan of real text.

Texts: the sample lake's python.functions.docstring (4,307 stdlib docstrings) and the stdlib-source
corpus of conftest.py (one row per file, with NULL, empty, invalid-UTF-8 and Unicode rows, several shards).
"""

from __future__ import annotations

import random

import pytest
from ngramutil import brute_count, brute_words, build, row_words, top_next
from testutil import find_all

T, C = "code.files", "text"
DT, DC = "python.functions", "docstring"


def q(con, sql, *params):
    return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def doc_rows():
    import pyarrow.parquet as pq

    from lakeql.demo import SAMPLE_LAKE

    col = pq.read_table(SAMPLE_LAKE / "python" / "functions.parquet", columns=["docstring"]).column(0)
    return [("", None if v is None else v.encode()) for v in col.to_pylist()]


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    import lakeql
    from lakeql.demo import SAMPLE_LAKE

    idx = tmp_path_factory.mktemp("ngdoc")
    build(SAMPLE_LAKE, idx, "python.functions.docstring")
    return lakeql.connect(SAMPLE_LAKE, index_dir=idx)


def phrases_from(words: list[list[str]], n: int, seed: int) -> list[list[str]]:
    """``n`` word sequences cut from random rows (1-4 words), the way users pick them."""
    rng = random.Random(seed)
    out = []
    rows = [ws for ws in words if ws]
    while len(out) < n:
        ws = rng.choice(rows)
        m = rng.randint(1, min(4, len(ws)))
        i = rng.randrange(len(ws) - m + 1)
        out.append(ws[i:i + m])
    return out


def test_word_count_and_rows_equal_re_scan(docs, doc_rows):
    words = row_words(doc_rows)
    for ph in phrases_from(words, 80, seed=1):
        total, per_row, _ = brute_words(words, ph)
        text = " ".join(ph)
        got = q(docs, "SELECT ngram_count(?, ?, ?, unit := 'word'), ngram_rows(?, ?, ?, unit := 'word')",
                DT, DC, text, DT, DC, text)[0]
        assert got == (total, len(per_row)), ph


def test_words_do_not_match_inside_words(docs, doc_rows):
    """A word phrase matches whole words only; separators (any run of non-word characters) are ignored."""
    words = row_words(doc_rows)
    sub, _ = brute_count(doc_rows, b"file desc")  # a substring, but 'desc' is no whole word
    assert sub > 0
    assert q(docs, "SELECT ngram_count(?, ?, 'file desc', unit := 'word')", DT, DC)[0][0] == 0
    # 'file descriptor' written with other separators still counts as the same two words
    want = brute_words(words, ["file", "descriptor"])[0]
    for spelled in ["file descriptor", "file,  descriptor", "(file)\n-descriptor!"]:
        assert q(docs, "SELECT ngram_count(?, ?, ?, unit := 'word')", DT, DC, spelled)[0][0] == want
    assert 0 < want < brute_count(doc_rows, b"file descriptor")[0]  # "file descriptors" is no match


def test_next_word_distribution_is_exact(docs, doc_rows):
    words = row_words(doc_rows)
    prefixes = [["Return", "the"], ["file"], ["If"], ["the", "number", "of"], []]
    prefixes += phrases_from(words, 25, seed=2)
    for ph in prefixes:
        _, _, nxt = brute_words(words, ph) if ph else (0, {}, _unigrams(words))
        got = q(docs, "SELECT next, count, share FROM ngram_next(?, ?, ?, k := 7, unit := 'word')",
                DT, DC, " ".join(ph))
        want = top_next(nxt, 7)
        assert [(w, c) for w, c, _ in got] == want, ph
        total = sum(nxt.values())
        for _, c, share in got:
            assert share == pytest.approx(c / total)


def _unigrams(words):
    from collections import Counter

    return dict(Counter(w for ws in words for w in ws))


def test_infinigram_longest_suffix(docs, doc_rows):
    words = row_words(doc_rows)
    contexts = ["if the file does not exist, raise",                   # a suffix of it occurs
                "qqzx unheard-of wording that surely never occurs zzqq",  # nothing but maybe 'of wording'
                "Return the"]
    contexts += [" ".join(ph + ["zzqqnotaword"] + ph) for ph in phrases_from(words, 10, seed=3)]
    for ctx in contexts:
        cw = row_words([("", ctx.encode())])[0]
        n = len(cw)
        while n > 0 and not brute_words(words, cw[len(cw) - n:])[2]:
            n -= 1  # the longest suffix that is followed by a word somewhere
        suffix = cw[len(cw) - n:] if n else []
        total, _, nxt = brute_words(words, suffix) if suffix else (0, {}, _unigrams(words))
        got = q(docs, "SELECT suffix, suffix_length, suffix_count, next, count FROM "
                      "ngram_longest(?, ?, ?, k := 5)", DT, DC, ctx)
        assert got, ctx
        assert {(g[0], g[1]) for g in got} == {(" ".join(suffix), n)}
        if suffix:
            assert got[0][2] == total
        assert [(g[3], g[4]) for g in got] == top_next(nxt, 5)


def test_infinigram_in_characters(docs, doc_rows):
    from collections import Counter

    texts = [t.decode() for _, t in doc_rows if t]
    for ctx in ["zzzz Return the numb", "qqq the file descriptor", "xyzzy"]:
        n = len(ctx)
        while n > 0:  # the longest suffix that occurs followed by a character
            nxt = Counter(t[j + n] for t in texts for j in find_all(t, ctx[-n:]) if j + n < len(t))
            if nxt:
                break
            n -= 1
        suffix = ctx[len(ctx) - n:]
        got = q(docs, "SELECT suffix, suffix_length, suffix_count, next, count, share FROM "
                      "ngram_longest(?, ?, ?, k := 3, unit := 'char')", DT, DC, ctx)
        assert {(g[0], g[1]) for g in got} == {(suffix, n)}
        assert got[0][2] == sum(len(find_all(t, suffix)) for t in texts)
        want = sorted(nxt.items(), key=lambda t: (-t[1], t[0]))[:3]
        assert [(g[3], g[4]) for g in got] == want
        assert got[0][5] == pytest.approx(want[0][1] / sum(nxt.values()))


def test_words_on_source_code_with_odd_rows(indexed, corpus):
    """Several shards, invalid UTF-8 (a separator), NUL inside a row, NULL and empty rows, Unicode."""
    con, _ = indexed
    words = row_words(corpus)
    for ph in phrases_from(words, 40, seed=4) + [["naïve", "café"], ["日本語テキスト"], ["abc"],
                                                 ["def", "broken"], ["nul", "inside"], ["Ǆ", "ﬁ"]]:
        total, per_row, nxt = brute_words(words, ph)
        text = " ".join(ph)
        assert q(con, "SELECT ngram_count(?, ?, ?, unit := 'word'), ngram_rows(?, ?, ?, unit := 'word')",
                 T, C, text, T, C, text)[0] == (total, len(per_row)), ph
        got = q(con, "SELECT next, count FROM ngram_next(?, ?, ?, k := 4, unit := 'word')", T, C, text)
        assert got == top_next(nxt, 4), ph
        if per_row:
            hits = q(con, "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 1000, "
                          "unit := 'word')", T, C, text)
            assert {h[0]: h[1] for h in hits} == {corpus[r][0]: c for r, c in per_row.items()}
            assert all(text in h[2] for h in hits)


@pytest.mark.parametrize("locate_seconds", [None, 0.0, 10.0])  # cost model / always locate / always scan
def test_rows_all_and_any_equal_brute_force(indexed, corpus, monkeypatch, locate_seconds):
    import lakeql.ngrams.query as Q

    if locate_seconds is not None:
        monkeypatch.setattr(Q, "LOCATE_SECONDS", locate_seconds)
    con, _ = indexed
    sets = [["import os", "sys.argv"], ["def __init__(self", "return None", "raise ValueError"],
            ["zzq-absent", "import"], ["self", "e"], ["🐍", "Grüße"]]
    for phrases in sets:
        per = [brute_count(corpus, p.encode())[1] for p in phrases]
        for fn, rows in (("ngram_rows_all", set.intersection(*per)), ("ngram_rows_any", set.union(*per))):
            got = q(con, f"SELECT rowid, occurrences, total FROM {fn}(?, ?, ?)", T, C, phrases)
            assert [g[0] for g in got] == sorted(rows), (fn, phrases)
            for rowid, occ, total in got:
                want = [_overlapping(corpus[rowid][1], p.encode()) for p in phrases]
                assert occ == want and total == sum(want)


def _overlapping(text: bytes | None, pat: bytes) -> int:
    text, c, j = text or b"", 0, (text or b"").find(pat)
    while j >= 0:
        c += 1
        j = text.find(pat, j + 1)
    return c


def test_rows_all_words(docs, doc_rows):
    words = row_words(doc_rows)
    a, b = brute_words(words, ["file"])[1], brute_words(words, ["descriptor"])[1]
    got = q(docs, "SELECT rowid, occurrences FROM ngram_rows_all(?, ?, ['file', 'descriptor'], "
                  "unit := 'word')", DT, DC)
    assert [(r, o) for r, o in got] == [(r, [a[r], b[r]]) for r in sorted(set(a) & set(b))]


@pytest.mark.parametrize("phrase", ["self", "e", "    ", "def __init__(self"])
def test_scan_tier_equals_locate(indexed, corpus, monkeypatch, phrase):
    """The scan tier (frequent phrases) gives the same rows, counts and snippets as locating."""
    import lakeql.ngrams.query as Q

    con, _ = indexed
    sql = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 40)"
    wsql = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 40, unit := 'word')"
    w = phrase.strip() or "self"
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 0.0)
    via_index = q(con, sql, T, C, phrase)
    words_index = q(con, wsql, T, C, w)
    rows_index = q(con, "SELECT ngram_rows(?, ?, ?)", T, C, phrase)[0][0]
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)
    assert q(con, sql, T, C, phrase) == via_index
    assert q(con, wsql, T, C, w) == words_index
    assert q(con, "SELECT ngram_rows(?, ?, ?)", T, C, phrase)[0][0] == rows_index \
        == len(brute_count(corpus, phrase.encode())[1])
    assert q(con, "SELECT ngram_rows(?, ?, ?, unit := 'word')", T, C, w)[0][0] == \
        len(brute_words(row_words(corpus), row_words([("", w.encode())])[0])[1])


def test_word_errors(indexed, text_lake, tmp_path):
    con, _ = indexed
    for sql, pattern in [("SELECT ngram_count(?, ?, '  --  ', unit := 'word')", "has no words"),
                         ("SELECT ngram_count(?, ?, 'x', unit := 'token')", "unit must be 'char' or 'word'")]:
        with pytest.raises(Exception, match=pattern):
            q(con, sql, T, C)
    import lakeql

    build(text_lake, tmp_path / "nw", "code.files.text", ngram_words=False)
    con2 = lakeql.connect(text_lake, index_dir=tmp_path / "nw")
    with pytest.raises(Exception, match="no word index.*--ngram-words"):
        q(con2, "SELECT ngram_count(?, ?, 'import os', unit := 'word')", T, C)


def test_many_cursors_at_once(indexed):
    """UDFs called from several threads (one cursor each) give the same answers as one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    con, _ = indexed
    queries = [("SELECT ngram_count(?, ?, 'self', unit := 'word')", [T, C]),
               ("SELECT ngram_rows(?, ?, 'e')", [T, C]),  # frequent: the scan tier's thread pool
               ("SELECT next, count FROM ngram_next(?, ?, 'return', k := 5, unit := 'word')", [T, C]),
               ("SELECT rowid FROM ngram_rows_all(?, ?, ['import', 'def'])", [T, C]),
               ("SELECT suffix, next FROM ngram_longest(?, ?, 'zzqq return self', k := 3)", [T, C])]
    want = [q(con, s, *p) for s, p in queries]

    def run(i: int):
        cur = con.cursor()
        s, p = queries[i % len(queries)]
        return i % len(queries), cur.execute(s, p).fetchall()

    with ThreadPoolExecutor(6) as pool:
        for i, got in pool.map(run, range(30)):
            assert got == want[i]


def test_word_stream_equals_re_on_every_row(corpus, doc_rows):
    """The numba tokenizer of the build equals ``re.findall(r'\\w+')`` row by row (odd rows included)."""
    import numpy as np

    from lakeql.ngrams.text import word_rows

    extra = [("", "x\ud800y".encode("utf-8", "surrogatepass")), ("", b"\xf4\x90\x80\x80a\xe0\x80\xafb"),
             ("", b"\xed\xa0\x80c\xc0\xafd\xf0\x9f\x90\x8d_e\x00f"), ("", "٣٤ ⅷ ²x ǅ𝔘".encode())]
    for rows in (corpus, doc_rows[:1500] + extra):
        data = [t or b"" for _, t in rows]
        text = np.frombuffer(b"".join(t + b"\x00" for t in data), dtype=np.uint8)
        starts = np.zeros(len(data) + 1, dtype=np.int64)
        starts[1:] = np.cumsum([len(t) + 1 for t in data])
        for folded in (False, True):
            out, new_starts = word_rows(text, starts, folded)
            got = [out[a:b - 1].tobytes().decode().split("\x01") for a, b in
                   zip(new_starts[:-1], new_starts[1:], strict=True)]
            got = [[w for w in g if w] for g in got]
            assert got == row_words(rows, fold=folded)
