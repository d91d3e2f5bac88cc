"""Per-row counts on the Parquet column (pyarrow + numba, :mod:`lakeql.ngrams.pqcount`) == brute force.

The kernel on hand-written rows (overlapping occurrences, NULLs, empty strings, multi-byte UTF-8, phrases
at row starts and ends, non-ASCII word boundaries, characters whose case folding is ASCII), on int32 and
int64 offsets and sliced arrays; then through SQL on a two-file table whose text column is named
``__rowid`` (the rowid view renames it) and on a table with its own ``__rowid`` column: ``ngram_search``
and ``ngram_rows`` of frequent phrases (forced scan) equal the located answer, and the Parquet path
answered.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from ngramutil import (
    brute_count,
    brute_per_row,
    brute_words,
    build,
    row_words,
    stdlib_files,
    write_text_table,
)

ROWS = [
    "aaaa",
    "",
    None,
    "xaax aa",
    "abababab",
    "Self self SELF sElF",
    "élan self_x self ſelf SELF",
    "new york new york; york york york",
    "brand new yorkshire, new\nyork",
    "straße STRASSE Straße strasse ﬁle FILE",
    "Kelvin K k kk",
    "日本語 日本語日本語 naïve café",
    "selfself self",
    "aa",
    "a",
    "ΣΣΣ σσσ ςς",
    "_self self_ self1 1self (self) self\u00e9 \u00e9self self",
    "it's it s its",
]
CHARS = [
    "aa",
    "a",
    "aaa",
    "abab",
    "self",
    "SELF",
    "sElF",
    "new york",
    "日本語",
    "é",
    "ς",
    "σ",
    "ss",
    "k",
    "straße",
    "ﬁle",
    "file",
    "self ",
    " self",
    "yorkshire",
    "x",
]
WORDS = [
    "self",
    "new york",
    "york york",
    "york",
    "aa",
    "straße",
    "strasse",
    "file",
    "k",
    "it s",
    "café",
    "日本語",
    "σσσ",
    "self self",
]


def _arrays():
    data = [r.encode() if r is not None else None for r in ROWS]
    small = pa.array(data, pa.binary()).view(pa.string())
    large = pa.array(data, pa.large_binary()).view(pa.large_string())
    padded = pa.array([b"zz"] * 3 + data, pa.binary()).view(pa.string()).slice(3)
    return [small, large, padded]


def _spec(unit, fold, phrase):
    from lakeql.ngrams.pqcount import Spec
    from lakeql.ngrams.text import word_pattern, words

    if unit == "char":
        raw = (phrase.casefold() if fold == "casefold" else phrase).encode()
    else:
        raw = word_pattern(words(phrase, folded=fold == "casefold"))
    pat = np.frombuffer(raw, np.uint8).copy()
    return Spec(unit, fold, pat, None)


def _want(unit, fold, phrase):
    return brute_per_row(unit, fold, phrase, ROWS)


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("unit", ["char", "word"])
def test_kernel_counts_equal_brute_force(unit, fold):
    from lakeql.ngrams.pqcount import exact_counts

    for phrase in CHARS if unit == "char" else WORDS:
        want = _want(unit, fold, phrase)
        spec = _spec(unit, fold, phrase)
        for arr in _arrays():
            assert exact_counts(spec, arr).tolist() == want, (phrase, unit, fold, arr.type)


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("unit", ["char", "word"])
def test_kernel_stop_at_first_finds_the_same_rows(unit, fold):
    """Row sets (``ngram_rows``) stop each row's scan at its first occurrence: the same rows as brute
    force, on the hand-written rows and on real stdlib text with non-ASCII rows and frequent phrases."""
    from lakeql.ngrams.pqcount import exact_counts

    real = [b.decode("utf-8", "replace") for _, b in stdlib_files(150_000)]
    real += ["x " * 5000 + "self", "naïve self—self ſelf", "日本語" * 3000 + " the"]
    arr_real = pa.array(real, pa.string())
    phrases = (
        (CHARS + ["e", " ", "def ", "return", "self."]) if unit == "char" else WORDS + ["the", "return self"]
    )
    for phrase in phrases:
        spec = _spec(unit, fold, phrase)
        for arr in _arrays():
            want = [n > 0 for n in _want(unit, fold, phrase)]
            got = exact_counts(spec, arr, stop=True)
            assert (got > 0).tolist() == want, (phrase, unit, fold, arr.type)
        want = [n > 0 for n in brute_per_row(unit, fold, phrase, real)]
        assert (exact_counts(spec, arr_real, stop=True) > 0).tolist() == want, (phrase, unit, fold)
    three = pa.array(["self self self"], pa.string())
    assert exact_counts(_spec("word", fold, "self"), three).tolist() == [3]
    assert exact_counts(_spec("word", fold, "self"), three, stop=True).tolist() == [1]  # stopped at the first


def test_kernel_flags_only_what_it_cannot_decide():
    """The kernel decides words itself, non-ASCII characters next to a match included (decoded and looked
    up in re's \\w table); a character folding to ASCII makes the row unsure (recounted in Python)."""
    from lakeql.ngrams.pqcount import exact_counts

    arr = pa.array([b"self x", "élan self".encode(), "selfé".encode(), "ſelf".encode()], pa.binary())
    cnt, unsure = _spec("word", "none", "self").count(*_bufs(arr))
    assert unsure.tolist() == [False, False, False, False] and cnt.tolist() == [1, 1, 0, 0]
    curly = pa.array(["dog’s bone— self—self".encode()], pa.binary())
    cnt, unsure = _spec("word", "none", "self").count(*_bufs(curly))
    assert unsure.tolist() == [False] and cnt.tolist() == [2]
    _, unsure = _spec("char", "casefold", "self").count(*_bufs(arr))
    assert unsure.tolist() == [False, False, False, True]
    # only characters whose folding shares a character with the pattern matter: 'ß' (ss) for 'sse'
    arr = pa.array(["straße the".encode()], pa.binary())
    assert _spec("char", "casefold", "the").count(*_bufs(arr))[1].tolist() == [False]
    assert _spec("char", "casefold", "sse").count(*_bufs(arr))[1].tolist() == [True]
    assert exact_counts(_spec("char", "casefold", "sse"), arr).tolist() == [1]


def _bufs(arr):
    from lakeql.ngrams.pqcount import _buffers

    data, offs, _ = _buffers(arr)
    return data, offs


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """A two-file table whose text column is named ``__rowid``, and a one-file table with its own
    ``__rowid`` column beside ``text``; sensitive and insensitive indexes."""
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("pqlake")
    rows = list(stdlib_files(300_000))
    rows[3:3] = [(f"odd-{i}", r.encode() if r is not None else None) for i, r in enumerate(ROWS)]
    half = len(rows) // 2
    for i, part in enumerate((rows[:half], rows[half:])):
        p = root / "code" / "named" / f"part-{i}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        text = pa.array([r[1] for r in part], pa.binary()).view(pa.string())
        pq.write_table(pa.table({"path": [r[0] for r in part], "__rowid": text}), p, row_group_size=16)
    write_text_table(root / "code" / "own" / "part-0.parquet", rows)
    t = pq.read_table(root / "code" / "own" / "part-0.parquet")
    pq.write_table(
        t.append_column("__rowid", pa.array(np.arange(len(rows))[::-1] * 7)),
        root / "code" / "own" / "part-0.parquet",
        row_group_size=32,
    )
    out = {}
    for case in ("sensitive", "insensitive"):
        idx = tmp_path_factory.mktemp(f"pqidx-{case}")
        build(root, idx, "code.named.__rowid", "code.own.text", ngram_case=case, ngram_jobs=1)
        out[case] = (root, idx)
    return out


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
def test_sql_parquet_path_equals_locate(lake, monkeypatch, case):
    from lakeql.connection import open_lake
    from lakeql.ngrams import colscan
    from lakeql.ngrams import query as Q

    root, idx = lake[case]
    con, ctx = open_lake(root, index_dir=idx)
    used = []
    real = colscan.ColumnScan._pq_top

    def spy(self, *a):
        got = real(self, *a)
        used.append(got is not None)
        return got

    monkeypatch.setattr(colscan.ColumnScan, "_pq_top", spy)
    monkeypatch.setattr(colscan, "RX_DENSITY", -1.0)  # no phrase is sparse: the Parquet kernel ranks all
    for table, column in (("code.named", "__rowid"), ("code.own", "text")):
        search = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := ?, unit := ?)"
        for unit, phrases in (("char", CHARS[:12]), ("word", WORDS[:8])):
            for phrase in phrases:
                for k in (1, 5, 30):
                    args = [table, column, phrase, k, unit]
                    monkeypatch.setattr(Q, "LOCATE_SECONDS", 0.0)  # never scan
                    located = con.execute(search, args).fetchall()
                    n_loc = con.execute(
                        "SELECT ngram_rows(?, ?, ?, unit := ?)", [table, column, phrase, unit]
                    ).fetchone()
                    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)  # always scan
                    scanned = con.execute(search, args).fetchall()
                    n_scan = con.execute(
                        "SELECT ngram_rows(?, ?, ?, unit := ?)", [table, column, phrase, unit]
                    ).fetchone()
                    assert scanned == located, (table, phrase, unit, k)
                    assert n_scan == n_loc, (table, phrase, unit)
        # DuckDB's scan of the column (ngram_rows of case-sensitive characters) named it as the rowid
        # view does: it did not fail over to the slow exact path
        assert not Q.load(ctx, table, column).colscan.failed, table
    assert used and all(used)  # every forced ngram_search was answered on the Parquet column
    con.close()


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("unit", ["char", "word"])
def test_kernel_counts_rows_of_invalid_utf8(unit, fold):
    """pyarrow does not validate UTF-8: rows with invalid bytes are counted as the index holds them
    (the builder decodes them with surrogateescape; invalid bytes separate words)."""
    from lakeql.ngrams.pqcount import exact_counts

    raw = [b"\xffself \xc3 SELF\xe2\x82", b"\xc3\x9f\xff sse", b"self\x80self", b"\xf0\x9f\x90 ss \xff"]
    rows = [("", r) for r in raw]
    arr = pa.array(raw, pa.binary()).view(pa.string())
    for phrase in ["self", "ss", "sse", "\u00df", "s"]:
        spec = _spec(unit, fold, phrase)
        if unit == "char":
            p = (phrase.casefold() if fold == "casefold" else phrase).encode()
            want = [brute_count([row], p, fold=fold == "casefold")[0] for row in rows]
        else:
            ws = row_words([("", phrase.encode())], fold=fold == "casefold")[0]
            per = brute_words(row_words(rows, fold=fold == "casefold"), ws)[1]
            want = [per.get(i, 0) for i in range(len(rows))]
        assert exact_counts(spec, arr).tolist() == want, (phrase, unit, fold)


@pytest.fixture(scope="module")
def invalid_lake(tmp_path_factory):
    """A two-file table whose text column holds invalid UTF-8 (DuckDB's Parquet reader refuses it, the
    index and pyarrow read its bytes), sensitive and insensitive indexes."""
    import random

    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("invlake")
    rng = random.Random(5)
    toks = [b"self", b"SELF", b"\xff", b"\xc3", b"\xc3\x9f", b"ss", b" ", "ſ".encode(), b"a", b"new york"]
    rows = [b"".join(rng.choice(toks) for _ in range(rng.randint(0, 20))) for _ in range(1200)]
    (root / "d" / "t").mkdir(parents=True)
    for name, part in (("a", rows[:600]), ("b", rows[600:])):
        text = pa.array(part, pa.binary()).view(pa.string())
        paths = [f"p{i}" for i in range(len(part))]
        pq.write_table(
            pa.table({"path": paths, "text": text}), root / "d" / "t" / f"{name}.parquet", row_group_size=100
        )
    out = {}
    for case in ("sensitive", "insensitive"):
        idx = tmp_path_factory.mktemp(f"invidx-{case}")
        build(root, idx, "d.t.text", ngram_case=case, ngram_jobs=1)
        out[case] = (root, idx)
    return out


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
def test_parquet_path_survives_a_failed_duckdb_scan(invalid_lake, monkeypatch, case):
    """DuckDB cannot read the column (invalid UTF-8): once its scan failed, frequent phrases are still
    ranked and counted by the Parquet kernel (not the slow exact paths), exactly as located."""
    from lakeql.connection import open_lake
    from lakeql.ngrams import colscan
    from lakeql.ngrams import query as Q

    root, idx = invalid_lake[case]
    con, ctx = open_lake(root, index_dir=idx)
    search = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := ?, unit := ?)"
    rows = "SELECT ngram_rows(?, ?, ?, unit := ?)"
    cases = [
        (u, p, k)
        for u, ps in (("char", ["self", "ss", "a", "new york"]), ("word", ["self", "ss", "new york"]))
        for p in ps
        for k in (1, 5, 2000)
    ]
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 0.0)  # never scan: the located answers
    want = [
        (
            con.execute(search, ["d.t", "text", p, k, u]).fetchall(),
            con.execute(rows, ["d.t", "text", p, u]).fetchone(),
        )
        for u, p, k in cases
    ]
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)  # always scan
    scan = Q.load(ctx, "d.t", "text").colscan
    assert scan.unsure_rows(colscan.NON_ASCII.format(c=scan.quoted()), []) is None  # DuckDB's scan fails
    assert scan.failed and not scan.usable and scan.parquet_usable
    slow = []
    monkeypatch.setattr(Q.NgramIndex, "_scan_parquet", lambda *a: slow.append(a) or pytest.fail("slow"))
    monkeypatch.setattr(Q.NgramIndex, "_located", lambda *a: slow.append(a) or pytest.fail("located"))
    for (u, p, k), (s, n) in zip(cases, want, strict=True):
        assert con.execute(search, ["d.t", "text", p, k, u]).fetchall() == s, (u, p, k)
        assert con.execute(rows, ["d.t", "text", p, u]).fetchone() == n, (u, p)
    # rows with first offsets (AND / OR queries) come from the Parquet path too
    for u, p, _ in cases:
        got = scan.rows(u, scan_fold(case), _pattern(u, case, p), need_counts=True)
        assert got is not None
    assert not slow
    # a transient read error does not turn the Parquet path off; repeated ones do
    real = scan._parquet.top
    calls = []

    def flaky(*a):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("transient")
        return real(*a)

    monkeypatch.setattr(scan._parquet, "top", flaky)
    pat = _pattern("char", case, "self")
    assert scan.top("char", scan_fold(case), pat, 3) is None
    assert scan.top("char", scan_fold(case), pat, 3) is not None and scan.parquet_usable
    monkeypatch.setattr(scan._parquet, "top", lambda *a: (_ for _ in ()).throw(OSError("gone")))
    for _ in range(colscan.PARQUET_MAX_FAILURES):
        scan.top("char", scan_fold(case), pat, 3)
    assert not scan.parquet_usable
    con.close()


def scan_fold(case):
    return "casefold" if case == "insensitive" else "none"


def _pattern(unit, case, phrase):
    from lakeql.ngrams.text import word_pattern, words

    fold = case == "insensitive"
    if unit == "char":
        raw = (phrase.casefold() if fold else phrase).encode()
    else:
        raw = word_pattern(words(phrase, folded=fold))
    return np.frombuffer(raw, np.uint8).copy()


@pytest.mark.parametrize("k", [1, 3, 7, 50, 199, 1000])
def test_parquet_top_equals_brute_force_with_ties(tmp_path, monkeypatch, k):
    """``ParquetColumn.top``: the k rows with the most occurrences, ties by lower row id, with their
    text, over many row groups scanned by several threads (the running top k is cut many times)."""
    import types

    import pyarrow.parquet as pq

    from lakeql.ngrams import pqcount

    rng = np.random.default_rng(3)
    n = 600
    counts = rng.integers(0, 6, n)  # many ties
    texts = [("ab " * int(c) + "x" * int(rng.integers(0, 5)) + f"#{i}") for i, c in enumerate(counts)]
    texts[5] = None
    paths = []
    for f, part in enumerate((texts[:250], texts[250:])):
        p = tmp_path / f"p{f}.parquet"
        pq.write_table(pa.table({"text": pa.array(part, pa.string())}), p, row_group_size=20)
        paths.append(str(p))
    monkeypatch.setattr(pqcount, "MIN_JOB_BYTES", 1)
    monkeypatch.setattr(pqcount, "JOB_BYTES", 1)
    col = pqcount.ParquetColumn(types.SimpleNamespace(format="parquet", paths=paths), "text", n)
    assert col.ok and len(col.jobs) > 10
    spec = _spec("char", "none", "ab")
    rid, got = col.top(spec, k)
    want = sorted(
        (i for i, t in enumerate(texts) if t and t.count("ab")), key=lambda i: (-texts[i].count("ab"), i)
    )
    assert rid.tolist() == want[:k]
    assert got.to_pylist() == [texts[i] for i in want[:k]]


@pytest.mark.parametrize("fold", ["none", "casefold"])
def test_kernel_counts_repetitive_rows_exactly_in_linear_time(fold):
    """Runs of one byte / a short period make every position a candidate: past a budget of compares
    the rest of the row is counted by KMP (overlapping occurrences, as the index counts them)."""
    import time

    from lakeql.ngrams.pqcount import exact_counts

    rows = [
        "a" * 3000,
        "xy " + "Aa" * 2000 + " tail aaaa",
        "ab" * 1500 + "abc" + "ab" * 10,
        "self " * 50 + "a" * 700 + "b" + "a" * 700,
        " " * 4000,
        "",
        "aaa",
    ]
    arr = pa.array(rows, pa.string())
    for phrase in ["a" * 16, "aa", "aaa", "abab", "ab" * 40, "abaab", "aab", "a" * 700, " " * 64, "Aa" * 9]:
        spec = _spec("char", fold, phrase)
        p = phrase.casefold() if fold == "casefold" else phrase
        want = []
        for r in rows:
            t = r.casefold() if fold == "casefold" else r
            want.append(sum(t.startswith(p, i) for i in range(len(t))))
        assert exact_counts(spec, arr).tolist() == want, (phrase, fold)
    big = pa.array([" " * 2000] * 2500, pa.string())  # 5 MB of spaces
    spec = _spec("char", fold, " " * 512)
    exact_counts(spec, big[:2])
    t0 = time.process_time()  # CPU time: a loaded machine slows the wall clock, not the work done
    assert exact_counts(spec, big).tolist() == [1489] * 2500
    assert time.process_time() - t0 < 2.0  # was ~5 s (512 compares per position); now ~0.03 s


NEIGHBOURS = [
    "",
    " ",
    "\u2019",
    "\u2014",
    "é",
    "\u0301",
    "日",
    "\u0663",
    "\xa0",
    "ſ",
    "K",
    "\u00df",
    "\U0001f600",
    "_",
    "x",
]


@pytest.mark.parametrize("fold", ["none", "casefold"])
def test_kernel_words_next_to_non_ascii_equal_brute_force(fold):
    """Word matches next to every kind of non-ASCII character (punctuation, letters, combining marks,
    digits of other scripts, no-break space, characters folding to ASCII, 4-byte characters) and invalid
    bytes: the kernel's counts equal re's \\w words (brute force), and only folding makes rows unsure."""
    from lakeql.ngrams.pqcount import exact_counts

    raw = []
    for left in NEIGHBOURS:
        for right in NEIGHBOURS:
            raw.append(f"{left}self{right}self {left}new{right}york{left}".encode())
    raw += [b"\xffself\xe2\x80self\xc3", b"self\xe2\x80\x99s self\xf0\x9f\x98 self", b"\x80self\xbf"]
    rows = [("", r) for r in raw]
    arr = pa.array(raw, pa.binary()).view(pa.string())
    for phrase in ["self", "self self", "new york", "s"]:
        spec = _spec("word", fold, phrase)
        ws = row_words([("", phrase.encode())], fold=fold == "casefold")[0]
        per = brute_words(row_words(rows, fold=fold == "casefold"), ws)[1]
        want = [per.get(i, 0) for i in range(len(rows))]
        assert exact_counts(spec, arr).tolist() == want, (phrase, fold)
        _, unsure = spec.count(*_bufs(arr))
        if fold == "none":
            assert not unsure.any(), phrase


@pytest.mark.parametrize("fold", ["none", "casefold"])
def test_kernel_words_of_repetitive_rows_linear(fold):
    """Word sequences over rows of one repeated word: past a budget of compares the rest of the row is
    counted by KMP over the word stream (overlapping sequences, as the index counts them) — exact, and
    linear (was ~40 s for 512 words over 10 MB)."""
    import time

    from lakeql.ngrams.pqcount import exact_counts

    raw = [
        ("a " * 1500).encode(),
        ("x " + "A, a; " * 700 + "b a a\u2019a").encode(),
        ("a a é a a_a a " * 200).encode(),
        ("ab " * 300 + "\u2014a a\xa0a").encode(),
        b"a \xff a a \xc3a a",
    ]
    rows = [("", r) for r in raw]
    arr = pa.array(raw, pa.binary()).view(pa.string())
    for phrase in ["a a", "a a a", " ".join(["a"] * 40), "ab ab", "a b a"]:
        spec = _spec("word", fold, phrase)
        ws = row_words([("", phrase.encode())], fold=fold == "casefold")[0]
        per = brute_words(row_words(rows, fold=fold == "casefold"), ws)[1]
        want = [per.get(i, 0) for i in range(len(rows))]
        assert exact_counts(spec, arr).tolist() == want, (phrase, fold)
    big = pa.array(["a " * 1000] * 2500, pa.string())  # 5 MB
    spec = _spec("word", fold, " ".join(["a"] * 512))
    exact_counts(spec, big[:2])
    # CPU time of this process, not wall time: a machine loaded by other jobs (a parallel test run) made
    # the wall clock pass 2 s (2.08 s, 2.17 s at load 18); the CPU time there is ~0.3 s, the quadratic
    # kernel this guards against took ~40 s
    t0 = time.process_time()
    assert exact_counts(spec, big).tolist() == [489] * 2500
    assert time.process_time() - t0 < 2.0


def test_parquet_column_declines_duplicate_names_and_rewritten_files(tmp_path):
    """A file repeating the column's name is left to DuckDB (no KeyError); a file rewritten in place
    after its footer was read is never decoded with the old footer (OSError: the other path answers)."""
    import os
    import types

    import pyarrow.parquet as pq

    from lakeql.ngrams.pqcount import ParquetColumn

    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["a b"]), pa.array(["c"])], names=["text", "text"]), dup)
    col = ParquetColumn(types.SimpleNamespace(format="parquet", paths=[str(dup)]), "text", 1)
    assert not col.ok

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["self self", "x", "self"] * 50}), path, row_group_size=30)
    col = ParquetColumn(types.SimpleNamespace(format="parquet", paths=[str(path)]), "text", 150)
    assert col.ok
    spec = _spec("char", "none", "self")
    rid, cnt, _ = col.rows(spec)
    assert rid.shape[0] == 100 and int(cnt.sum()) == 150
    st = os.stat(path)
    pq.write_table(pa.table({"text": ["other", "self", "yy"] * 50}), path, row_group_size=70)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(OSError, match="changed"):
        col.rows(spec)
    with pytest.raises(OSError, match="changed"):
        col.top(spec, 3)


def test_numpy_count_rows_of_repetitive_text_is_exact_and_linear():
    """``colscan.count_rows`` (DuckDB's verify path, ``ngram_occ_impl``) on runs of one byte: KMP once the
    candidates would cost text x pattern — same counts and first offsets as brute force."""
    import time

    from lakeql.ngrams.colscan import count_rows

    rows = [b" " * 3000, b"x" + b" " * 700 + b"y" + b" " * 20, b"", b"ab" * 900, b" ab  ", b"  "]
    data = np.frombuffer(b"".join(rows), np.uint8)
    offs = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    for p in [b" " * 512, b" " * 16, b"  ", b"abab" * 40, b"ba" * 100 + b"b"]:
        counts, first = count_rows(data, offs, np.frombuffer(p, np.uint8))
        want = [sum(r.startswith(p, i) for i in range(len(r))) for r in rows]
        assert counts.tolist() == want, p[:8]
        assert first.tolist() == [r.find(p) if c else -1 for r, c in zip(rows, want, strict=True)]
    big = np.full(5_000_000, 32, np.uint8)
    offs = np.arange(0, 5_000_001, 2000, dtype=np.int64)
    count_rows(big[:4000], offs[:3], np.full(512, 32, np.uint8))
    t0 = time.process_time()  # CPU time: a loaded machine slows the wall clock, not the work done
    assert count_rows(big, offs, np.full(512, 32, np.uint8))[0].tolist() == [1489] * 2500
    assert time.process_time() - t0 < 2.0  # candidates x pattern: ~5 s of compares
