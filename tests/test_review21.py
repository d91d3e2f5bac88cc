"""Faults found by review21 of trial10's CSV paths (benchmarks/results/review21.md)."""

from __future__ import annotations

import lakeql


def test_ngram_of_a_csv_table_reads_text_as_its_view_does(tmp_path):
    """A CSV folder table whose text column looks like dates in one file and not in another: the view reads
    it as text in both ('01/02/2020'), the n-gram reader sniffed each file alone and indexed the DATE it
    made of it ('2020-02-01'): ngram_rows('01/02') was 0 where the view has 1."""
    lake, ix = tmp_path / "lake", tmp_path / "ix"
    (lake / "d" / "t").mkdir(parents=True)
    (lake / "d" / "t" / "a.csv").write_text("n,w'x\n1,01/02/2020\n2,03/04/2020\n3,\n")
    (lake / "d" / "t" / "b.csv").write_text('n,w\'x\n4,zz\n5,"q\n01/02"\n')
    lakeql.index(lake, index_dir=ix, ngram=["d.t.w'x"], capabilities=["ngrams"], progress=False)
    con = lakeql.connect(lake, index_dir=ix)
    for phrase in ["01/02", "/20", "2020-", "zz", "q\n0"]:
        texts = [r[0] or "" for r in con.execute('SELECT "w\'x" FROM d.t').fetchall()]
        want = sum(phrase in t for t in texts)
        got = con.execute("SELECT ngram_rows('d.t', ?, ?)", ["w'x", phrase]).fetchone()[0]
        assert got == want, (phrase, got, want)
    sql = "SELECT n FROM ngram_search('d.t', ?, '01/02', k := 10) ORDER BY n"
    rows = con.execute(sql, ["w'x"]).fetchall()
    assert rows == [(1,), (5,)]
