"""unitext: the n-gram functions on real multilingual text they were not tuned for.

The text is CPython's own CJK test data (``test/cjkencodings/*-utf8.txt``: Chinese, Japanese, Korean
sample texts, the UTF-8 twins of the legacy-encoding files) plus a few rows of real words whose case
folding is special (Turkish, German, Greek, Cherokee). Each test failed before its fix
(benchmarks/results/unitext.md); expected answers come from a brute-force Python reference.
"""

from __future__ import annotations

import sys
import sysconfig
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql

sys.path.insert(0, str(Path(__file__).resolve().parent / "ngrams"))
from ngramutil import build  # noqa: E402

CJK = Path(sysconfig.get_path("stdlib")) / "test" / "cjkencodings"
FOLD_ROWS = ["İstanbul ISPARTA ıspanak Iğdır", "Straße STRASSE strasse ẞ", "ΣΊΣΥΦΟΣ σίσυφος Σίσυφος",
             "ᏣᎳᎩ ꮳꮃꭹ Cherokee", "ﬁle ﬂow Kelvin \u212a"]


def _rows() -> list[str]:
    files = sorted(CJK.glob("*-utf8.txt"))
    assert files, f"CPython's CJK test texts are missing from {CJK}"  # fail, never skip
    rows = [line for p in files for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows + FOLD_ROWS


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory):
    """One lake, a case-sensitive and a case-insensitive n-gram index of ``t.cjk.text``."""
    root = tmp_path_factory.mktemp("unitext")
    lake = root / "lake"
    (lake / "t").mkdir(parents=True)
    rows = _rows()
    pq.write_table(pa.table({"text": rows}), lake / "t" / "cjk.parquet")
    cons = {}
    for case in ("sensitive", "insensitive"):
        build(lake, root / case, "t.cjk.text", ngram_case=case, capabilities=["ngrams"])
        cons[case] = lakeql.connect(lake, index_dir=root / case)
    return cons, rows


def _char_frequencies(rows: list[str], fold: bool) -> Counter:
    return Counter(ch for r in rows for ch in (r.casefold() if fold else r))


@pytest.mark.parametrize("case", ["sensitive", "insensitive"])
def test_infinigram_with_no_matching_character_lists_characters_not_utf8_bytes(lakes, case: str) -> None:
    """Before: a context none of whose characters occurs (empty suffix) listed the UTF-8 continuation
    bytes of CJK text as 'next characters' (``\\x81`` first, 762 of 11,010) with shares over bytes, and
    ``suffix_count`` was the column's bytes (11,010), not its characters (4,585)."""
    cons, rows = lakes
    want = _char_frequencies(rows, case == "insensitive")
    sql = ("SELECT suffix, suffix_length, suffix_count, next, count, share "
           "FROM ngram_longest('t.cjk', 'text', '\U0001f999', k := 1000000, unit := 'char')")
    got = cons[case].execute(sql).fetchall()
    assert {(g[0], g[1]) for g in got} == {("", 0)}
    assert {g[3]: g[4] for g in got} == dict(want)
    total = sum(want.values())
    assert {g[2] for g in got} == {total}
    top = sorted(want.items(), key=lambda t: (-t[1], t[0]))[0]
    assert (got[0][3], got[0][4]) == top and got[0][5] == pytest.approx(top[1] / total)


@pytest.mark.parametrize(("context", "suffix"), [
    ("qq STRAẞE", " strasse"),      # ẞ folds to ss: the suffix is shown as the index holds it
    ("zz İSTANBUL", "i̇stanbul"),    # İ folds to i + U+0307
    ("xx ΣΊΣΥΦΟΣ", " σίσυφοσ"),
    ("xx ꮳꮃꭹ", " ᏣᎳᎩ"),             # Cherokee lower case folds to upper case
])
def test_infinigram_suffix_in_characters_is_case_folded_on_an_insensitive_index(lakes, context: str,
                                                                               suffix: str) -> None:
    """Before: ``unit := 'char'`` returned the suffix as written in the context (``' STRAẞE'``, length 7)
    although docs/ngrams.md says it is case-folded on an insensitive index, as ``unit := 'word'`` and
    ``next`` are (``' strasse'``)."""
    cons, rows = lakes
    sql = ("SELECT DISTINCT suffix, suffix_length, suffix_count "
           "FROM ngram_longest('t.cjk', 'text', ?, k := 3, unit := 'char')")
    got = cons["insensitive"].execute(sql, [context]).fetchall()
    folded = [r.casefold() for r in rows]
    assert got == [(suffix, len(suffix), sum(r.count(suffix) for r in folded))]


BLANK_ROWS = ["\u3000\u3000", "\u00a0", "\u200b", "\ufeff", "\x00", "\u2028\u2029", " \t\r\n", "\u202e\u00ad"]


def test_rows_of_unicode_blanks_get_no_vector(tmp_path: Path) -> None:
    """Before: the embedding build skipped rows without RE2's ASCII ``\\S`` only, so rows of ideographic
    spaces (common placeholders in CJK data), no-break or zero-width spaces, BOMs or control characters
    were embedded (7 of these 8 rows) and came back from ``semantic_search`` (a U+3000 row ranked 3rd of
    24 for 'fullwidth'), while the same text as a query is refused as blank."""
    from lakeql.udf import is_blank

    rows = [x for pair in zip(_rows()[:40], BLANK_ROWS * 5, strict=True) for x in pair]
    (tmp_path / "lake" / "t").mkdir(parents=True)
    pq.write_table(pa.table({"id": list(range(len(rows))), "text": rows}), tmp_path / "lake/t/b.parquet")
    lakeql.index(tmp_path / "lake", embed=["t.b.text"], capabilities=["vectors"], progress=False)
    con = lakeql.connect(tmp_path / "lake")
    coded = {r for (r,) in con.execute("SELECT __rowid FROM embed_codes('t.b', 'text')").fetchall()}
    assert coded == {i for i, r in enumerate(rows) if not is_blank(r)}
    hits = con.execute("SELECT id FROM semantic_search('t.b', 'text', 'language', k := 40)").fetchall()
    assert hits and all(not is_blank(rows[i]) for (i,) in hits)


@pytest.mark.parametrize(("column", "flag", "extra"), [
    ("blob", "ngram", "read as BLOB"),
    ("blob", "embed", "read as BLOB"),
    ("n", "ngram", ""),
])
def test_a_non_text_column_is_refused_with_a_fix_that_works(tmp_path: Path, column: str, flag: str,
                                                             extra: str) -> None:
    """Before: ``... needs a text (VARCHAR) column: pick a text column or cast it in a view``; lakeql
    indexes the lake's files, so no view can be indexed. Real text stored as Parquet BYTE_ARRAY without
    the STRING annotation (invalid UTF-8 included) is read by DuckDB as BLOB."""
    from lakeql.errors import LakeqlError

    rows = _rows()[:5]
    (tmp_path / "lake" / "t").mkdir(parents=True)
    blob = pa.array([r.encode() for r in rows[:4]] + [b"\xff\xfe invalid \xc3\x28"], pa.binary())
    pq.write_table(pa.table({"n": list(range(5)), "blob": blob}), tmp_path / "lake/t/b.parquet")
    with pytest.raises(LakeqlError, match=f"write its files with this column as a string .*{extra}") as err:
        lakeql.index(tmp_path / "lake", **{flag: [f"t.b.{column}"]}, progress=False)
    assert "view" not in str(err.value)


# (the file of CPython's test data, the encoding lakeql reads it as): the supersets of each family
LEGACY_CJK = [("shift_jis", "cp932"), ("shift_jisx0213", "shift_jisx0213"), ("euc_jp", "euc_jp"),
              ("euc_jisx0213", "euc_jisx0213"), ("gb2312", "gb18030"), ("gbk", "gb18030"),
              ("gb18030", "gb18030"), ("big5", "cp950"), ("cp949", "cp949")]


@pytest.mark.parametrize(("name", "label"), LEGACY_CJK)
def test_a_csv_file_in_a_legacy_cjk_encoding_is_read_as_its_text(tmp_path: Path, name: str,
                                                                 label: str) -> None:
    """Before: a Shift-JIS, EUC-JP, GBK, Big5 or CP949 CSV file (what Japanese, Chinese and Korean
    systems export) was read as Windows-1252 or Mac Roman, silently: ``Python の開発は`` came out as
    ``Python ÇÃäJî≠ÇÕ``, and every n-gram of its text counted 0 (92 of 105 probes wrong on 7 files)."""
    import csv
    import io

    from lakeql import csvenc

    lines = [x for x in (CJK / f"{name}-utf8.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["n", "line"])
    w.writerows(enumerate(lines))
    data = buf.getvalue().encode(name)
    assert csvenc.detect(lambda: io.BytesIO(data)) == label
    (tmp_path / "lake" / "t").mkdir(parents=True)
    (tmp_path / "lake" / "t" / "x.csv").write_bytes(data)
    lakeql.index(tmp_path / "lake", ngram=["t.x.line"], capabilities=["ngrams"], progress=False)
    con = lakeql.connect(tmp_path / "lake")
    assert [r for (r,) in con.execute("SELECT line FROM t.x ORDER BY n").fetchall()] == lines
    word = max((w for x in lines for w in x.split() if not w.isascii()), key=len)[:4]
    assert con.execute("SELECT ngram_count('t.x', 'line', ?)", [word]).fetchone()[0] == \
        sum(x.count(word) for x in lines)


@pytest.mark.parametrize("path", ["tenth-circuit/tenth-circuit.csv", "ahca-polls/ahca_polls.csv",
                                  "biopics/biopics.csv"])
def test_latin_text_whose_byte_pairs_a_cjk_codec_decodes_stays_single_byte(path: str) -> None:
    """fivethirtyeight files of UTF-8 saved through Mac Roman (``Pen\\xcc\\xa9lope``): their high bytes
    come in pairs that GB18030 and CP932 decode; they must not be read as Chinese or Japanese."""
    import io

    from testutil import shared_data

    from lakeql import csvenc

    data = shared_data("fivethirtyeight", *path.split("/")).read_bytes()
    assert csvenc.detect(lambda: io.BytesIO(data)) in ("cp1252", "mac_roman")
