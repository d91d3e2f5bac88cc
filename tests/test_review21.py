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


def _latin1_lake(root, n):
    for i in range(n):
        d = root / f"d{i}"
        d.mkdir(parents=True)
        (d / "t.csv").write_bytes(f"id,name\n1,Zürich {i}\n2,Côte\n".encode("latin-1"))


def test_connect_reads_the_copy_sizes_once(tmp_path, monkeypatch):
    """A connection checked each UTF-8 copy of a small domain's view against INDEX_DIR/.csv_utf8_sizes.json
    by reading and parsing the whole file again: 2,000 Latin-1 CSV tables in small domains doubled the
    connection's CPU (0.82 -> 1.63 s). It is read once."""
    import pathlib

    from lakeql import csvenc

    lake, ix = tmp_path / "lake", tmp_path / "ix"
    _latin1_lake(lake, 40)
    lakeql.index(lake, index_dir=ix, capabilities=[], progress=False)
    assert (ix / csvenc.SIZES).is_file()
    reads = []
    real = pathlib.Path.read_text

    def counted(self, *a, **k):
        if self.name == csvenc.SIZES:
            reads.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "read_text", counted)
    con = lakeql.connect(lake, index_dir=ix)
    assert con.execute("SELECT name FROM d7.t WHERE id = 1").fetchone()[0] == "Zürich 7"
    assert 1 <= len(reads) <= 2, len(reads)


def test_hostile_copy_sizes_file(tmp_path):
    """.csv_utf8_sizes.json is data: JSON nested too deep to parse (RecursionError, not a ValueError) made
    every connection and build fail; a list or wrong-typed sizes are no record either."""
    import warnings

    lake, ix = tmp_path / "lake", tmp_path / "ix"
    _latin1_lake(lake, 3)
    lakeql.index(lake, index_dir=ix, capabilities=[], progress=False)
    for text in ["[" * 200_000, '{"x": [1, 2]}', "[1, 2]", '{"../../etc/passwd": 1}', "\x00\xff"]:
        (ix / ".csv_utf8_sizes.json").write_text(text)
        con = lakeql.connect(lake, index_dir=ix)
        assert con.execute("SELECT count(*) FROM d1.t").fetchone()[0] == 2
        con.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, index_dir=ix, capabilities=[], progress=False, refresh=True)
    con = lakeql.connect(lake, index_dir=ix)
    assert con.execute("SELECT name FROM d2.t WHERE id = 2").fetchone()[0] == "Côte"


def test_refresh_after_upgrade_remakes_copies_it_cannot_check(tmp_path, monkeypatch):
    """An index from before file_copy_bytes (trial10) has no record of its UTF-8 copies' sizes: the first
    --refresh recorded each copy's size as it found it, so a copy truncated before the upgrade was taken
    as right from then on (count 201 of 2,000 rows, forever). Such copies are made again once."""
    import os

    from lakeql import catalog, csvenc

    lake, ix = tmp_path / "lake", tmp_path / "ix"
    (lake / "d").mkdir(parents=True)
    rows = "".join(f"{i},Zürich {i}\n" for i in range(2000))
    (lake / "d" / "t.csv").write_bytes(("id,name\n" + rows).encode("latin-1"))
    with monkeypatch.context() as m:  # the catalog as written before file_copy_bytes
        m.setattr(catalog, "_copy_bytes", lambda table: None)
        lakeql.index(lake, index_dir=ix, capabilities=[], progress=False)
    (ix / csvenc.SIZES).unlink()
    copy = next((ix / csvenc.DIR).glob("*.csv"))
    os.truncate(copy, 3000)
    lakeql.index(lake, index_dir=ix, capabilities=[], progress=False, refresh=True)
    con = lakeql.connect(lake, index_dir=ix)
    assert con.execute("SELECT count(*), max(id) FROM d.t").fetchone() == (2000, 1999)


def test_ngram_of_a_hive_partition_key_of_a_csv_table(tmp_path):
    """The n-gram text of a hive-partitioned CSV table's partition key (not a column of its files) and of a
    column of its files, as its view has them."""
    lake, ix = tmp_path / "lake", tmp_path / "ix"
    for r in ["eu", "us"]:
        d = lake / "d" / "t" / f"region={r}"
        d.mkdir(parents=True)
        (d / "a.csv").write_text(f"id,name\n1,x{r}\n2,01/02/{r}\n")
    lakeql.index(
        lake, index_dir=ix, ngram=["d.t.region", "d.t.name"], capabilities=["ngrams"], progress=False
    )
    con = lakeql.connect(lake, index_dir=ix)
    got = con.execute(
        "SELECT ngram_rows('d.t', 'region', 'eu'), ngram_rows('d.t', 'name', '01/02/u')"
    ).fetchone()
    assert got == (2, 1)


def test_refresh_rebuilds_a_csv_ngram_index_built_by_the_one_file_sniff(tmp_path, monkeypatch):
    """An n-gram index of a CSV table built before fix 1 holds the text a one-file sniff made (an unchanged
    table kept it through every --refresh); its params lack csv_text, so the next refresh builds it again."""
    import json

    from lakeql.ngrams import builder

    lake, ix = tmp_path / "lake", tmp_path / "ix"
    (lake / "d" / "t").mkdir(parents=True)
    (lake / "d" / "t" / "a.csv").write_text("n,w\n1,01/02/2020\n")
    (lake / "d" / "t" / "b.csv").write_text("n,w\n2,zz\n")
    real = builder.Target.params

    def old_params(self):  # an index as built before: no csv_text, and the file's sniffed DATE indexed
        p = json.loads(real(self))
        p.pop("csv_text", None)
        return json.dumps(p, sort_keys=True)

    with monkeypatch.context() as m:
        m.setattr(builder.Target, "params", old_params)
        m.setattr(builder, "_in_file", lambda con, one, name: False)
        lakeql.index(lake, index_dir=ix, ngram=["d.t.w"], capabilities=["ngrams"], progress=False)
    con = lakeql.connect(lake, index_dir=ix)
    assert con.execute("SELECT ngram_rows('d.t', 'w', '01/02')").fetchone()[0] == 0  # the old index
    con.close()
    lakeql.index(lake, index_dir=ix, capabilities=["ngrams"], progress=False, refresh=True)
    con = lakeql.connect(lake, index_dir=ix)
    assert con.execute("SELECT ngram_rows('d.t', 'w', '01/02')").fetchone()[0] == 1
