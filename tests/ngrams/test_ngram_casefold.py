"""Case-insensitive indexes fold with Unicode rules (``str.casefold``), tested on non-ASCII real text.

Rows: German, Turkish and Greek sentences (Wikipedia-style prose written for this test, with the letters
whose folding is special: ß -> ss, İ -> i + U+0307, dotless ı, final sigma ς) plus the sample lake's
stdlib docstrings, so folded and unfolded rows share one index.
"""

from __future__ import annotations

import pytest
from ngramutil import brute_count, brute_words, build, row_words, write_text_table

T, C = "intl.texts", "text"
ROWS = [
    "Die Straße in Berlin ist lang. STRASSE steht auf dem Schild, Strasse im Wörterbuch.",
    "Größe und GRÖSSE: Maßstab, MASSSTAB. Der Fluß heißt heute Fluss.",
    "İstanbul ve Ankara; ISTANBUL büyük bir şehir. Iğdır ile ıslak ve IŞIK kelimeleri.",
    "ΟΔΟΣ Αθηνών: η οδός είναι μεγάλη. Ο ΣΟΦΟΣ λόγος, σοφός άνθρωπος, Σοφός δάσκαλος.",
    "Mixed: straße ὈΔΥΣΣΕΎΣ Ὀδυσσεύς ǅemal ǄEMAL ǆemal ﬁnal FINAL",
    "ASCII only: Return The File Descriptor, return the file descriptor.",
]


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    import pyarrow.parquet as pq

    import lakeql
    from lakeql.demo import SAMPLE_LAKE

    docs = pq.read_table(SAMPLE_LAKE / "python" / "functions.parquet", columns=["docstring"]).column(0)
    rows = [(f"r{i}", t.encode()) for i, t in enumerate(ROWS)]
    rows += [(f"d{i}", None if v is None else v.encode()) for i, v in enumerate(docs.to_pylist()[:800])]
    lake = tmp_path_factory.mktemp("cflake")
    write_text_table(lake / "intl" / "texts.parquet", rows)
    idx = tmp_path_factory.mktemp("cfidx")
    build(lake, idx, "intl.texts.text", ngram_case="insensitive", ngram_shard_mb=0.2)
    return lakeql.connect(lake, index_dir=idx), rows


@pytest.mark.parametrize("phrase", ["straße", "STRASSE", "Strasse", "größe", "MASSSTAB", "fluss",
                                    "İSTANBUL", "istanbul", "i̇stanbul", "ıslak", "ISLAK", "IŞIK",
                                    "οδος", "ΟΔΌΣ", "σοφος", "ΣΟΦΌΣ", "ὀδυσσεύς", "ǅEMAL", "final",
                                    "FILE DESCRIPTOR", "Return the"])
def test_counts_rows_equal_casefold_brute_force(folded, phrase):
    con, rows = folded
    want, hit = brute_count(rows, phrase.casefold().encode(), fold=True)
    got = con.execute("SELECT ngram_count(?, ?, ?), ngram_rows(?, ?, ?)", [T, C, phrase] * 2).fetchone()
    assert got == (want, len(hit)), phrase


def test_the_rules_that_change_length_or_differ_from_lower(folded):
    con, _ = folded

    def count(p: str) -> int:
        return con.execute("SELECT ngram_count(?, ?, ?)", [T, C, p]).fetchone()[0]

    assert count("strasse") == count("STRASSE") == count("Straße") == 4  # ß folds to ss
    assert count("σοφοσ") == 1 and count("οδοσ") == 1  # final ς and capital Σ fold to σ
    assert count("σοφός") == count("ΣΟΦΌΣ") == 2  # 'σοφός' and 'Σοφός' (accents are not folded)
    assert count("istanbul") == 1  # only 'ISTANBUL'; 'İstanbul' folds to 'i̇stanbul' (dot kept)
    assert count("İstanbul") == 1 and count("ılak") == 0 and count("ıslak") == 1  # ı is not i
    assert count("ﬁnal") == count("FINAL") > 2  # the ligature folds to 'fi' (docstrings say 'final' too)


def test_snippets_are_folded_text_with_right_positions(folded):
    """Positions are in the folded text (ß -> ss shifts everything after it): snippets stay centred."""
    con, rows = folded
    got = con.execute("SELECT path, occurrences, snippet FROM ngram_search(?, ?, 'FLUSS', k := 5)",
                      [T, C]).fetchall()
    row = ROWS[1].casefold()  # 'größe und grösse: massstab, massstab. der fluss heisst heute fluss.'
    assert [g[:2] for g in got] == [("r1", 2)]
    snip = got[0][2]  # ~80 bytes around the first match, cut at the left
    assert snip.startswith("…") and snip[1:] in row and snip.endswith("der fluss heisst heute fluss.")
    hit = con.execute("SELECT snippet FROM ngram_search(?, ?, 'heute fluss', k := 1)", [T, C]).fetchone()
    assert "heute fluss" in hit[0]


def test_words_fold_after_cutting(folded):
    """Word units fold each \\w+ word (İ's combining dot stays inside its word)."""
    con, rows = folded
    words = row_words(rows, fold=True)
    for phrase in ["STRASSE steht", "İstanbul ve", "Ὀδυσσεύς ǅEMAL", "Return the FILE", "σοφός"]:
        ph = row_words([("", phrase.encode())], fold=True)[0]
        total, per_row, _ = brute_words(words, ph)
        got = con.execute("SELECT ngram_count(?, ?, ?, unit := 'word'), ngram_rows(?, ?, ?, unit := 'word')",
                          [T, C, phrase] * 2).fetchone()
        assert got == (total, len(per_row)) and total > 0, phrase
    nxt = con.execute("SELECT next, count FROM ngram_next(?, ?, 'STRASSE', unit := 'word')",
                      [T, C]).fetchall()
    assert nxt == [("im", 1), ("in", 1), ("steht", 1), ("ὀδυσσεύσ", 1)]  # "straße ὈΔΥΣΣΕΎΣ" folded
