"""Rows of frequent phrases with the default index (no scan tier): DuckDB scans the column
(:mod:`lakeql.ngrams.colscan`), exact against brute force on real text.

Rows: ~1 MB of stdlib Python source (one row per file) plus hand-written German, Turkish and Greek
sentences and rows of odd characters (quotes, backslashes, ``%``, ``_``, ligatures, Kelvin sign, long s,
emoji), all valid UTF-8. Every phrase is answered by the column scan (forced) and compared with brute
force: row sets, overlapping counts per row, ``ngram_search``'s top k; and the same through SQL with the
cost model choosing. A second lake with an invalid UTF-8 row checks the fallback to the exact path.
"""

from __future__ import annotations

import numpy as np
import pytest
from ngramutil import brute_count, brute_words, build, row_words, stdlib_files, write_text_table

T, C = "code.files", "text"
ODD = [
    "Die Straße in Berlin ist lang. STRASSE steht auf dem Schild, Strasse im Wörterbuch. ẞ GROSS groß.",
    "İstanbul ve Ankara; ISTANBUL büyük bir şehir. Iğdır ile ıslak ve IŞIK kelimeleri. istanbul i̇stanbul",
    "ΟΔΟΣ Αθηνών: η οδός είναι μεγάλη. Ο ΣΟΦΟΣ λόγος, σοφός άνθρωπος, Σοφός δάσκαλος. ΣΊΣΥΦΟΣ Σίσυφος",
    "quotes ' \" '' \\ \\\\ % %% _ __ %s \\n 100% a_b a%b O'Reilly \"\"\" it's",
    "ﬁle FILE file ﬁ ǅemal ǄEMAL ǆemal ſelf SELF self Kelvin K k µ μ Μ",
    "日本語テキスト 🐍 naïve café — new york / brand new yorkshire; NEW-YORK new\nyork",
    "abababab aaaa ABAB AbAb new york new york new york; york york york, New York NEW YORK new",
    "ΣΣΣ σσσ ςςς STRASSESTRASSE straßestraße ﬁﬁﬁ FIFIFI ſſſ SSS",
]
# (phrase, unit): frequent ones, odd characters, Unicode case folding, words
CHAR_PHRASES = [
    "e",
    " ",
    "self",
    "    ",
    "def ",
    "return",
    "'",
    '"',
    "\\",
    "%",
    "_",
    "%s",
    "\\n",
    '"""',
    "a_b",
    "O'Reilly",
    "Straße",
    "STRASSE",
    "strasse",
    "İstanbul",
    "ISTANBUL",
    "ıslak",
    "IŞIK",
    "σοφος",
    "ΣΟΦΌΣ",
    "Σίσυφος",
    "ς",
    "ﬁle",
    "FILE",
    "ſelf",
    "K",
    "µ",
    "日本語",
    "🐍",
    "—",
    "zzq-absent-phrase",
]
WORD_PHRASES = [
    "self",
    "return self",
    "import os",
    "new york",
    "a_b",
    "straße",
    "STRASSE",
    "istanbul",
    "σοφος",
    "ΣΟΦΌΣ",
    "file",
    "ſelf",
    "café",
    "it s",
    "zzqabsent",
]


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = list(stdlib_files(1_000_000))
    for i, t in enumerate(ODD):
        out.insert(5 + 7 * i, (f"odd-{i}", t.encode()))
    out.insert(2, ("null-row", None))
    out.insert(4, ("empty-row", b""))
    return out


@pytest.fixture(scope="module")
def lakes(rows, tmp_path_factory):
    """{case: (connection, index object)} for a sensitive and an insensitive default index."""
    from lakeql.connection import open_lake
    from lakeql.ngrams import query as Q

    lake = tmp_path_factory.mktemp("freqlake")
    half = len(rows) // 2
    write_text_table(lake / "code" / "files" / "part-0.parquet", rows[:half])
    write_text_table(lake / "code" / "files" / "part-1.parquet", rows[half:])
    out = {}
    for case in ("sensitive", "insensitive"):
        idx = tmp_path_factory.mktemp(f"freqidx-{case}")
        build(lake, idx, "code.files.text", ngram_case=case, ngram_shard_mb=0.4, ngram_jobs=2)
        con, ctx = open_lake(lake, index_dir=idx)
        out[case] = (con, Q.load(ctx, T, C))
    return out


def _brute_chars(rows, phrase: str, fold: bool) -> dict[int, int]:
    pat = (phrase.casefold() if fold else phrase).encode()
    out = {}
    for r, (_, text) in enumerate(rows):
        c = brute_count([("", text)], pat, fold=fold)[0]
        if c:
            out[r] = c
    return out


def _brute_words(rows, phrase: str, fold: bool) -> dict[int, int]:
    ws = row_words([("", phrase.encode())], fold=fold)[0]
    return brute_words(row_words(rows, fold=fold), ws)[1]


def _scan(idx, phrase: str, unit: str, need_counts: bool):
    lay, pat = idx.encode_unit(phrase, unit)
    got = idx.colscan.rows(lay.unit, idx.fold, pat, need_counts)
    assert got is not None, "the column scan answered (valid UTF-8 lake)"
    return got


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
@pytest.mark.parametrize("unit", ["char", "word"])
def test_column_scan_equals_brute_force(lakes, rows, case, unit):
    _, idx = lakes[case]
    fold = case == "insensitive"
    for phrase in CHAR_PHRASES if unit == "char" else WORD_PHRASES:
        want = _brute_chars(rows, phrase, fold) if unit == "char" else _brute_words(rows, phrase, fold)
        rid, cnt, _ = _scan(idx, phrase, unit, need_counts=True)
        assert dict(zip(rid.tolist(), cnt.tolist(), strict=True)) == want, (phrase, unit, case)
        rid, _, _ = _scan(idx, phrase, unit, need_counts=False)
        assert rid.tolist() == sorted(want), (phrase, unit, case)


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
def test_first_offsets_equal_the_index(lakes, case):
    """The first offset of each row (snippets start there) is the one locating through the index gives."""
    _, idx = lakes[case]
    for phrase, unit in [
        ("self", "char"),
        ("Straße", "char"),
        ("σοφος", "char"),
        ("'", "char"),
        ("return self", "word"),
        ("istanbul", "word"),
    ]:
        lay, pat = idx.encode_unit(phrase, unit)
        want = idx._located(pat, lay)
        got = _scan(idx, phrase, unit, need_counts=True)
        for a, b in zip(got, want, strict=True):
            assert np.array_equal(a, b), (phrase, unit, case)


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
def test_sql_forced_scan_equals_locate(lakes, rows, monkeypatch, case):
    """ngram_rows / ngram_search / AND-OR through SQL: forced column scan == forced locate == brute."""
    import lakeql.ngrams.query as Q

    con, _ = lakes[case]
    fold = case == "insensitive"
    search = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 15, unit := ?)"
    cases = [(p, "char") for p in CHAR_PHRASES[::3]] + [(p, "word") for p in WORD_PHRASES[::2]]
    for phrase, unit in cases:
        monkeypatch.setattr(Q, "LOCATE_SECONDS", 0.0)  # never scan
        located = con.execute(search, [T, C, phrase, unit]).fetchall()
        monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)  # always scan
        scanned = con.execute(search, [T, C, phrase, unit]).fetchall()
        n = con.execute("SELECT ngram_rows(?, ?, ?, unit := ?)", [T, C, phrase, unit]).fetchone()[0]
        want = _brute_chars(rows, phrase, fold) if unit == "char" else _brute_words(rows, phrase, fold)
        assert scanned == located, (phrase, unit)
        assert n == len(want), (phrase, unit)
        top = sorted(want.items(), key=lambda t: (-t[1], t[0]))[:15]
        assert [(p, o) for p, o, _ in scanned] == [(rows[r][0], c) for r, c in top], (phrase, unit)
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)
    got = con.execute(
        "SELECT rowid, occurrences FROM ngram_rows_all(?, ?, ['self', 'return'])", [T, C]
    ).fetchall()
    a, b = _brute_chars(rows, "self", fold), _brute_chars(rows, "return", fold)
    assert got == [(r, [a[r], b[r]]) for r in sorted(set(a) & set(b))]


def test_frequent_phrases_take_the_column_scan(lakes, rows):
    """With the cost model as shipped, very frequent phrases are answered by DuckDB's scan."""
    con, idx = lakes["sensitive"]
    for phrase in ["e", " ", "self"]:
        lay, pat = idx.encode_unit(phrase, "char")
        assert idx.use_scan(pat, lay, need_counts=False), phrase
        n = con.execute("SELECT ngram_rows(?, ?, ?)", [T, C, phrase]).fetchone()[0]
        assert n == len(_brute_chars(rows, phrase, False))
    assert not idx.colscan.failed


def test_empty_and_too_long_phrases(lakes, rows, monkeypatch):
    import lakeql.ngrams.query as Q

    con, _ = lakes["sensitive"]
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)
    with pytest.raises(Exception, match="the phrase is empty"):
        con.execute("SELECT ngram_rows(?, ?, '')", [T, C]).fetchone()
    longest = max(len(t or b"") for _, t in rows)
    phrase = "x" * (longest + 1)
    assert con.execute("SELECT ngram_rows(?, ?, ?)", [T, C, phrase]).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM ngram_search(?, ?, ?)", [T, C, phrase]).fetchone()[0] == 0


def test_invalid_utf8_falls_back_to_the_exact_path(indexed, corpus, monkeypatch):
    """DuckDB cannot read a column with invalid UTF-8: the rows come from the exact path instead."""
    import lakeql.ngrams.query as Q

    con, _ = indexed
    monkeypatch.setattr(Q, "LOCATE_SECONDS", 10.0)
    for phrase in ["self", "e", "def ", "abc"]:
        n = con.execute("SELECT ngram_rows(?, ?, ?)", ["code.files", "text", phrase]).fetchone()[0]
        assert n == len(brute_count(corpus, phrase.encode())[1]), phrase


# phrases for the top-k: borders (overlapping occurrences: the native count cannot be used), both native
# counts (RE2 literal and replace), one byte, non-ASCII folding, words with and without word borders
TOP_CHAR = [
    "e",
    " ",
    "    ",
    '"""',
    "==",
    "ss",
    "abab",
    "aa",
    "self",
    "return",
    "def __init__(self",
    "import",
    "Straße",
    "STRASSE",
    "ΣΣ",
    "σσ",
    "ﬁ",
    "FI",
    "K",
    "日本語",
    "'",
    "zzq-absent-phrase",
]
TOP_WORD = [
    "self",
    "return self",
    "import os",
    "new york",
    "new york new",
    "york york",
    "a_b",
    "straße",
    "STRASSE",
    "σοφος",
    "ſelf",
    "file",
    "it s",
    "zzqabsent",
]


@pytest.mark.parametrize("pages", [True, False])
@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
@pytest.mark.parametrize("unit", ["char", "word"])
def test_top_equals_brute_force(lakes, rows, case, unit, pages, monkeypatch):
    """ColumnScan.top (DuckDB counts natively where exact, verifies the rest) == brute force: the k rows
    with the most overlapping occurrences, ties by row id, exact counts and the index's first offsets;
    with the RE2 count (density 0) and the replace count (density 1). ``pages`` False: pyarrow's reader
    (sparse case-sensitive phrases then go to DuckDB's RE2 count); True: the page decoder answers."""
    from lakeql.ngrams.colscan import native_count
    from lakeql.ngrams.pqcount import ParquetColumn

    monkeypatch.setattr(ParquetColumn, "pages", pages)

    _, idx = lakes[case]
    fold = case == "insensitive"
    natives = 0
    for phrase in TOP_CHAR if unit == "char" else TOP_WORD:
        want = _brute_chars(rows, phrase, fold) if unit == "char" else _brute_words(rows, phrase, fold)
        lay, pat = idx.encode_unit(phrase, unit)
        located = idx._located(pat, lay)
        first = dict(zip(located[0].tolist(), located[2].tolist(), strict=True))
        natives += native_count(lay.unit, idx.fold, pat.tobytes(), '"text"', 0.0) is not None
        for k in (1, 7, 40):
            top = sorted(want.items(), key=lambda t: (-t[1], t[0]))[:k]
            for density in (0.0, 1.0):
                got = idx.colscan.top(lay.unit, idx.fold, pat, k, density)
                if got is None:
                    assert unit == "word" or case == "insensitive", phrase  # case-sensitive chars always
                    continue
                rid, cnt, off = got
                assert list(zip(rid.tolist(), cnt.tolist(), strict=True)) == top, (phrase, k, density)
                assert off.tolist() == [first[r] for r in rid.tolist()], (phrase, k, density)
    if unit == "word" or case == "sensitive":
        assert natives >= 5  # the native counts were exercised
    else:
        assert natives == 0  # case-insensitive characters: always the verified scan


def test_border_and_native_choice():
    from lakeql.ngrams.colscan import has_border, native_count
    from lakeql.ngrams.text import word_pattern

    assert has_border(b"aa") and has_border(b"abab") and has_border(b'"""') and has_border(b"abcab")
    assert not has_border(b"ab") and not has_border(b"self") and not has_border(b"e")
    assert has_border(["new", "york", "new"]) and not has_border(["new", "york"])
    col = '"text"'
    assert native_count("char", "none", b"abab", col, 0.0) is None  # overlapping: the count UDF
    assert native_count("char", "none", b"e", col, 0.0) is None
    assert "regexp_extract_all" in native_count("char", "none", b"self", col, 0.0).sql
    assert "replace" in native_count("char", "none", b"self", col, 1.0).sql
    # case-insensitive characters: the verified scan (a native count over lower() measured slower)
    assert native_count("char", "casefold", b"self", col, 0.0) is None
    assert native_count("word", "none", word_pattern(["new", "york", "new"]), col, 1.0) is None
    assert native_count("word", "none", word_pattern(["return", "self"]), col, 1.0) is None  # dense
    nat = native_count("word", "none", word_pattern(["return", "self"]), col, 0.0)
    assert nat.scope == "ascii" and nat.params == ["\\breturn[^0-9A-Za-z_]+self\\b"]


@pytest.mark.parametrize("how", ["duckdb", "stream"])
def test_column_scan_of_invalid_utf8_falls_back_instead_of_raising(tmp_path, monkeypatch, how) -> None:
    """DuckDB cannot read a Parquet string column holding invalid UTF-8 (the index reads its bytes):
    the scan says None (the caller's exact path answers) whether DuckDB raises the error itself or the
    Arrow batch stream re-raises it as an ``OSError`` (seen in a full test run: it escaped the scan)."""
    import types

    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.ngrams.colscan import ColumnScan

    good = "import os and more"
    bad = b"abc\xff\xfe def import os"
    data = pa.array([good.encode()] * 3000 + [bad if how == "duckdb" else good.encode()], pa.binary())
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"t": data.cast(pa.string(), safe=False)}), path)
    scan = ColumnScan(types.SimpleNamespace(con=duckdb.connect()), None, "t")
    scan._source = f"SELECT row_number() OVER () - 1 AS __rowid, * FROM read_parquet('{path}')"
    if how == "stream":
        def broken(*_a, **_k):
            raise OSError(f'Invalid Input Error: Invalid string encoding found in Parquet file "{path}"')

        monkeypatch.setattr(scan, "_verify", broken)
    assert scan.rows("char", "none", np.frombuffer(b"import os", np.uint8), need_counts=True) is None
    assert scan.failed and not scan.usable
