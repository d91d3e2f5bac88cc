"""Row sets that stop at each row's first match and word first offsets from 64 KB prefixes (h/ngramfreq)
against brute force (Python ``re`` ``\\w+`` words, ``str.casefold``) on adversarial long rows.

Rows put the first match across the 64 KB cut, hold no ASCII separator in their first 64 KB (one 100 KB
word, CJK, emoji, combining marks, NULs), fold to another length (``ß``, ``ﬁ``, ``İ``, ``ŉ``, U+0345) or
hold invalid UTF-8 next to the cut; plus the longest stdlib sources. Kernel, prefixes and SQL
(``ngram_rows``, ``ngram_search`` counts, order and snippets, scanned == located) are all compared.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from ngramutil import build, stdlib_files, write_text_table
from test_ngram_pqcount import _spec

P = 1 << 16
LONG = [
    "a" * (P - 2) + " self x",  # the first match starts before the cut and ends after it
    "x" * (P - 3) + " self self",
    "y" * (P - 1) + " self",  # the last separator is the prefix's last byte
    "z" * P + " self",  # ... just outside it
    "q" * 100_000 + " self self",  # one 100 KB word
    "self" + "q" * 100_000,
    "日本語" * 30_000 + " self 日本語",  # no ASCII separator in the prefix
    "😀" * 20_000 + " self",
    "e\u0301" * 40_000 + " self",
    "ß" * 40_000 + " ss ss",
    "STRASSE " * 9000 + "straße",
    "ﬁ" * 30_000 + " fi file ﬁle",
    "İ" * 30_000 + " i̇stanbul İstanbul istanbul",
    "ŉ" * 30_000 + " ʼn n",
    "\u0345" * 30_000 + "self\u0345 self",
    "x\x00" * 40_000 + "self\x00self",
    "-" * 70_000 + "self-",
    "a " * (P // 2 - 2) + "new york new york",
    "new" + " " * (P - 4) + "york new york",
    "ΣΑΣ " * 20_000 + "σας ΣΑΣ",
    "ſelf " * 20_000,
    "",
    None,
    " ",
    "\x01self\x01",
]
INVALID = [
    b"\xff" * 70_000 + b" self",
    b"\xc3" + b"a" * (P - 2) + b" self",
    b"\xe2\x82" * 40_000 + b"SELF self",
    b"a" * (P - 1) + b"\xc3\x9f self ss",
    b"\x80" * 70_000 + b"self",
    b"q" * (P - 1) + b"\xe2\x82\xac self",
]
WORDS = [
    "self",
    "self self",
    "new york",
    "ss",
    "straße",
    "fi",
    "file",
    "istanbul",
    "i",
    "n",
    "ΣΑΣ σας",
    "日本語",
]
CHARS = WORDS + ["aa", " ", "\x00", "\x01", "e\u0301", "q self", "\x00self", "ss ss"]


def _rows() -> list[bytes | None]:
    real = sorted((b for _, b in stdlib_files(2_000_000)), key=len)[-12:]  # the longest (> 64 KB)
    return [r.encode() if r is not None else None for r in LONG] + INVALID + real


def brute(unit: str, fold: str, phrase: str, row: bytes | None) -> tuple[int, int]:
    """(occurrences, first offset in the row as the index holds it: the folded text, or the word stream
    ``\\x01 w1 .. wn \\x01``) by ``re`` and ``str.casefold``; invalid bytes decoded with surrogateescape."""
    if row is None:
        return 0, -1
    folded = fold == "casefold"
    text = row.decode("utf-8", "surrogateescape")
    if unit == "char":
        t = (text.casefold() if folded else text).encode("utf-8", "surrogateescape")
        p = (phrase.casefold() if folded else phrase).encode()
    else:

        def stream(s):
            ws = [w.casefold() if folded else w for w in re.findall(r"\w+", s)]
            return ("\x01" + "\x01".join(ws) + "\x01").encode("utf-8", "surrogateescape") if ws else b"\x01"

        t, p = stream(text), stream(phrase)
    first = j = t.find(p)
    c = 0
    while j >= 0:
        c += 1
        j = t.find(p, j + 1)
    return c, first


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("unit", ["char", "word"])
def test_stop_counts_and_prefix_offsets_equal_brute_force(monkeypatch, unit, fold):
    from lakeql.ngrams import colscan
    from lakeql.ngrams.pqcount import exact_counts

    rows = _rows()
    arr = pa.array(rows, pa.large_binary()).view(pa.large_string())
    checked = 0
    for phrase in CHARS if unit == "char" else WORDS:
        spec = _spec(unit, fold, phrase)
        want = [brute(unit, fold, phrase, r) for r in rows]
        cnt = [c for c, _ in want]
        assert exact_counts(spec, arr).tolist() == cnt, (phrase, unit, fold)
        assert (exact_counts(spec, arr, stop=True) > 0).tolist() == [c > 0 for c in cnt], (phrase, unit, fold)
        hit = np.flatnonzero(cnt)
        for prefix in (P, 1, 3, 4096):
            monkeypatch.setattr(colscan, "FIRST_PREFIX", prefix)
            got = colscan.first_offsets(
                np.arange(hit.shape[0]), arr.take(pa.array(hit)), unit, fold, spec.pat
            )
            assert got.tolist() == [want[i][1] for i in hit], (phrase, unit, fold, prefix)
            checked += int(hit.shape[0])
    assert checked > 100


@pytest.fixture(scope="module")
def long_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("longlake")
    rows = [(f"r{i}", r) for i, r in enumerate(_rows())]
    write_text_table(root / "d" / "t" / "part-0.parquet", rows)
    out = {}
    for case in ("sensitive", "insensitive"):
        idx = tmp_path_factory.mktemp(f"longidx-{case}")
        build(root, idx, "d.t.text", ngram_case=case, ngram_jobs=1)
        out[case] = (root, idx, [r for _, r in rows])
    return out


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
def test_sql_rows_and_snippets_equal_brute_force(long_lake, monkeypatch, case):
    """``ngram_rows`` and ``ngram_search`` (occurrences, order, snippets) on the Parquet kernel (forced
    scan) == the located answer == brute force; every snippet shows the phrase."""
    from lakeql.connection import open_lake
    from lakeql.ngrams import colscan
    from lakeql.ngrams import query as Q
    from lakeql.ngrams.pqcount import Spec

    stops, tops = [], []
    count, pq_top = Spec.count, colscan.ColumnScan._pq_top
    monkeypatch.setattr(
        Spec, "count", lambda self, d, o, stop=False: stops.append(stop) or count(self, d, o, stop)
    )
    monkeypatch.setattr(colscan.ColumnScan, "_pq_top", lambda *a: tops.append(pq_top(*a)) or tops[-1])
    root, idx, rows = long_lake[case]
    fold = "casefold" if case == "insensitive" else "none"
    con, _ = open_lake(root, index_dir=idx)
    monkeypatch.setattr(colscan, "RX_DENSITY", -1.0)  # the Parquet kernel ranks every phrase
    search = "SELECT path, occurrences, snippet FROM ngram_search('d.t', 'text', ?, k := 100, unit := ?)"
    nrows = "SELECT ngram_rows('d.t', 'text', ?, unit := ?)"
    for unit, phrases in (("char", ["self", "ss", "日本語", "fi", "e\u0301"]), ("word", WORDS)):
        for phrase in phrases:
            want = [brute(unit, fold, phrase, r)[0] for r in rows]
            top = sorted((-c, i) for i, c in enumerate(want) if c)
            answers = []
            for seconds in (0.0, 10.0):  # located, then scanned
                monkeypatch.setattr(Q, "LOCATE_SECONDS", seconds)
                got = con.execute(search, [phrase, unit]).fetchall()
                assert [(p, n) for p, n, _ in got] == [(f"r{i}", -c) for c, i in top], (phrase, unit, seconds)
                assert con.execute(nrows, [phrase, unit]).fetchone()[0] == len(top), (phrase, unit, seconds)
                answers.append(got)
            assert answers[0] == answers[1], (phrase, unit, case)
            for _, _, snip in answers[1]:
                if unit == "word":
                    words = [w.casefold() if fold == "casefold" else w for w in re.findall(r"\w+", snip)]
                    pw = [w.casefold() if fold == "casefold" else w for w in re.findall(r"\w+", phrase)]
                    assert any(words[j : j + len(pw)] == pw for j in range(len(words))), (phrase, snip)
                elif phrase.strip() == phrase:
                    shown = snip.casefold() if fold == "casefold" else snip
                    assert (phrase.casefold() if fold == "casefold" else phrase) in shown, (phrase, snip)
    con.close()
    assert True in stops and False in stops  # row sets stopped at the first match, top k counted all
    assert tops and all(t is not None for t in tops)  # every scanned ngram_search on the Parquet column


SHORT = ["İstanbul", "ŉ", "ᾼ", "և", "ΰ", "ǰ", "İ", "Ankara İstanbul"]


@pytest.mark.parametrize("unit", ["char", "word"])
def test_kernel_counts_rows_that_folding_lengthens(unit):
    """A row shorter (in bytes) than the folded phrase can still hold it once folded: ``'İstanbul'``
    (9 bytes) folds to ``'i̇stanbul'`` (10), ``'ŉ'`` (2) to ``'ʼn'`` (3); the kernel skipped such rows by
    their length (0 occurrences) instead of leaving them to the exact recount."""
    from lakeql.ngrams.pqcount import exact_counts

    rows = [r.encode() for r in SHORT]
    arr = pa.array(rows, pa.large_binary()).view(pa.large_string())
    for phrase in SHORT + ["ʼn", "i̇"]:
        if unit == "word" and not re.search(r"\w", phrase):
            continue
        spec = _spec(unit, "casefold", phrase)
        want = [brute(unit, "casefold", phrase, r)[0] for r in rows]
        assert exact_counts(spec, arr).tolist() == want, (phrase, unit)
        assert (exact_counts(spec, arr, stop=True) > 0).tolist() == [c > 0 for c in want], (phrase, unit)


@pytest.mark.parametrize("pages", [True, False])
def test_sql_rows_that_folding_lengthens(tmp_path, monkeypatch, pages):
    """Through SQL on an insensitive index, page decoder and pyarrow reader, with the short row last in
    its dictionary / page (no zeroed length prefix after it): scanned == located == brute force."""
    import pyarrow.parquet as pq

    from lakeql.connection import open_lake
    from lakeql.ngrams import colscan, pqcount
    from lakeql.ngrams import query as Q

    rows = ["x" * 50, "Ankara İstanbul", "İstanbul"] * 5 + ["ŉ"]
    (tmp_path / "lake" / "d" / "t").mkdir(parents=True)
    pq.write_table(
        pa.table({"path": [f"r{i}" for i in range(len(rows))], "text": rows}),
        tmp_path / "lake" / "d" / "t" / "p.parquet",
        row_group_size=3,
    )
    build(tmp_path / "lake", tmp_path / "idx", "d.t.text", ngram_case="insensitive", ngram_jobs=1)
    monkeypatch.setattr(pqcount.ParquetColumn, "pages", pages)
    monkeypatch.setattr(colscan, "RX_DENSITY", -1.0)
    con, _ = open_lake(tmp_path / "lake", index_dir=tmp_path / "idx")
    for unit, phrase in (("char", "İstanbul"), ("word", "İSTANBUL"), ("char", "ŉ"), ("word", "ŉ")):
        want = [brute(unit, "casefold", phrase, r.encode())[0] for r in rows]
        for seconds in (0.0, 10.0):  # located, then scanned
            monkeypatch.setattr(Q, "LOCATE_SECONDS", seconds)
            n = con.execute("SELECT ngram_rows('d.t', 'text', ?, unit := ?)", [phrase, unit]).fetchone()[0]
            got = con.execute(
                "SELECT path, occurrences FROM ngram_search('d.t', 'text', ?, k := 50, unit := ?)",
                [phrase, unit],
            ).fetchall()
            assert n == sum(c > 0 for c in want), (unit, phrase, seconds)
            assert sorted(got) == sorted((f"r{i}", c) for i, c in enumerate(want) if c), (
                unit,
                phrase,
                seconds,
            )
    con.close()
