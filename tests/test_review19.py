"""review19: defects found reviewing h/leftovers3 (benchmarks/results/review19.md)."""

from __future__ import annotations

import io
import json

import pytest

# Windows-1252 files a reader meets: the byte after a letter is one Mac Roman reads as a letter of the
# word's case or a sign, and Windows-1252 as a letter the rule thought of the other case or a sign it did
# not list. Each was read as Mac Roman ('Sí' as 'SÌ', '12 M€' as '12 MÄ', „Faust“ as „Faustì').
WINDOWS_1252 = {
    "a survey's Sí / No answers": "id,pregunta,respuesta\n"
    + "".join(f"{i},¿Fuma usted?,{'Sí' if i % 3 else 'No'}\n" for i in range(30)),
    "three Sí": "id,respuesta\n1,Sí\n2,No\n3,Sí\n4,Sí\n",
    "Italian Sì": "id,risposta\n1,Sì\n2,No\n3,Sì\n4,Sì\n5,Sì\n",
    "French Né / Là": "nom,note\nHugo,Né à Besançon\nZola,Né à Paris\nPasteur,Né à Dole\nX,Là\nY,Là\n",
    "amounts in M€": "projet,budget\n" + "".join(f"Projet {i},{i * 1.5} M€\n" for i in range(10)),
    "amounts in K€, numbers only": "ligne,montant\n" + "".join(f"{i},{i * 100} K€\n" for i in range(10)),
    "German quotes „…“": "id,zitat\n1,Er sagte „Hallo“\n2,Das Buch „Faust“\n3,Der Film „Metropolis“\n",
    "German apostrophe ‘": "id,text\n1,Wie geht‘s dir\n2,Gibt‘s das noch\n3,Hat‘s geklappt\n",
    "footnote marks ‡": "name,year\nSmith‡,1990\nJones‡,1991\nBrown‡,1992\n",
    "degrees and micro": "station,temp,dose\nN°1,20°,5µg\nN°2,21°,7µm\nNº3,22°,1µg\n",
    "one accented byte": "name\nJosé\n",
    "French no-break spaces": "id,texte\n1,Prix\xa0: 12\n2,Bonjour\xa0!\n3,Quoi\xa0?\n4,Note\xa0;\n",
    "´ as an apostrophe": "id,text\n1,the students´ work\n2,the players´ fees\n3,our parents´ house\n",
}


@pytest.mark.parametrize("name", sorted(WINDOWS_1252))
def test_windows_1252_text_is_not_read_as_mac_roman(name):
    """A Windows-1252 file read as Mac Roman garbles every non-ASCII letter of it: the worst case of the
    rule. A capital that begins a word ('Sí', 'Né', 'M€') does not make the word upper case, and
    closing German quotes, a ‘ apostrophe, currencies and footnote marks after a letter are signs in
    either reading (so neither encoding gains from them)."""
    from lakeql import csvenc

    data = WINDOWS_1252[name].encode("cp1252")
    assert csvenc.detect(lambda: io.BytesIO(data)) == "cp1252", csvenc.mac_roman_evidence(data)


def test_mac_roman_text_is_still_told_by_its_letters():
    """What the rule is for still works: Mac Roman text of lower-case and upper-case words."""
    from lakeql import csvenc

    text = "name,city\nLauren Vélez,São Paulo\nAlexander Skarsgård,Malmö\nCAFÉ MÜLLER,Köln\nit’s,Zürich\n"
    data = text.encode("mac_roman")
    assert csvenc.detect(lambda: io.BytesIO(data)) == "mac_roman", csvenc.mac_roman_evidence(data)


def _zoned_lake(root, files: int):
    """A table whose ``note`` is VARCHAR in one file and TIMESTAMPTZ in the others (the view reads
    VARCHAR): the TIMESTAMPTZ files' text is the build connection's time zone's."""
    import duckdb

    (root / "w" / "a").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if not (root / "w" / "a" / "a.parquet").exists():  # files written before are left as they are
        con.execute(
            "COPY (SELECT i AS id, 'plain text ' || i AS note FROM range(20) t(i)) TO ?",
            [str(root / "w" / "a" / "a.parquet")],
        )
    for k in range(1, files):
        if (root / "w" / "a" / f"f{k}.parquet").exists():
            continue
        con.execute(
            f"COPY (SELECT {k * 100} + i AS id, TIMESTAMPTZ '2014-07-01 12:00:00+00' "
            f"+ ({k} * 100 + i) * INTERVAL 1 day AS note FROM range(20) t(i)) TO ?",
            [str(root / "w" / "a" / f"f{k}.parquet")],
        )
    con.close()


def test_a_refresh_never_mixes_time_zones_inside_one_ngram_index(tmp_path, monkeypatch):
    """An n-gram index built before every build connection was in UTC (on a machine whose zone is not
    UTC) holds the TIMESTAMPTZ files' text in that zone ('17:30:00+05:30'). A refresh after one file was
    added kept those shards and built the new one in UTC: one index, two zones ('+00' and '+05:30'
    both found), and `lakeql doctor` said all well. Now the index records its build zone, and a refresh
    of an index of another (or no recorded) zone builds the shards of zoned files again."""
    import lakeql
    from lakeql.sources import buildfs

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    _zoned_lake(lake, 2)
    monkeypatch.setattr(buildfs, "BUILD_TIME_ZONE", "Asia/Kolkata")  # a build before the rule
    lakeql.index(lake, index_dir=idx, ngram="w.a.note", capabilities=["ngrams"], progress=False)

    def count(pattern: str) -> int:
        con = lakeql.connect(lake, index_dir=idx)
        try:
            return con.execute("SELECT ngram_count('w.a', 'note', ?)", [pattern]).fetchall()[0][0]
        finally:
            con.close()

    assert count("+05:30") == 20 and count("+00") == 0
    monkeypatch.setattr(buildfs, "BUILD_TIME_ZONE", "UTC")
    _zoned_lake(lake, 3)  # one more TIMESTAMPTZ file
    lakeql.index(lake, index_dir=idx, ngram="w.a.note", capabilities=["ngrams"], refresh=True, progress=False)
    assert (count("+00"), count("+05:30"), count("plain")) == (40, 0, 20)
    # a second refresh after another file keeps every shard: the index is of the build zone now
    _zoned_lake(lake, 4)
    lakeql.index(lake, index_dir=idx, ngram="w.a.note", capabilities=["ngrams"], refresh=True, progress=False)
    assert (count("+00"), count("+05:30")) == (60, 0)


def test_a_refresh_rebuilds_an_unchanged_tables_ngram_index_of_another_zone(tmp_path, monkeypatch):
    """An unchanged table's n-gram index was kept whole by a refresh: built before the rule on a machine
    in another zone, it kept that zone's text for good. Now its zoned files' shards are built again."""
    import lakeql
    from lakeql.sources import buildfs

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    _zoned_lake(lake, 2)
    monkeypatch.setattr(buildfs, "BUILD_TIME_ZONE", "Asia/Kolkata")
    lakeql.index(lake, index_dir=idx, ngram="w.a.note", capabilities=["ngrams"], progress=False)
    monkeypatch.setattr(buildfs, "BUILD_TIME_ZONE", "UTC")
    lakeql.index(lake, index_dir=idx, ngram="w.a.note", capabilities=["ngrams"], refresh=True, progress=False)
    con = lakeql.connect(lake, index_dir=idx)
    try:
        got = [
            con.execute("SELECT ngram_count('w.a', 'note', ?)", [p]).fetchall()[0][0]
            for p in ("+00", "+05:30")
        ]
    finally:
        con.close()
    assert got == [20, 0]


def test_a_refresh_never_mixes_time_zones_inside_one_embed_index(tmp_path, monkeypatch):
    """The same for ``--embed``: a refresh kept the embeddings (and BM25 words) of a zoned file's local
    text beside the new file's UTC text. Now that file is embedded again: its shard's BM25 words equal
    those of a full build in UTC."""
    import lakeql
    from lakeql.sources import buildfs

    lake, idx, fresh = tmp_path / "lake", tmp_path / "idx", tmp_path / "fresh"
    _zoned_lake(lake, 2)
    monkeypatch.setattr(buildfs, "BUILD_TIME_ZONE", "Asia/Kolkata")
    lakeql.index(
        lake, index_dir=idx, embed="w.a.note", capabilities=["vectors"], embed_bm25=True, progress=False
    )
    monkeypatch.setattr(buildfs, "BUILD_TIME_ZONE", "UTC")
    _zoned_lake(lake, 3)
    lakeql.index(
        lake,
        index_dir=idx,
        embed="w.a.note",
        capabilities=["vectors"],
        refresh=True,
        embed_bm25=True,
        progress=False,
    )
    lakeql.index(
        lake, index_dir=fresh, embed="w.a.note", capabilities=["vectors"], embed_bm25=True, progress=False
    )

    def words(root):
        [folder] = [p for p in root.rglob("shards") if p.is_dir()]
        return {s.name: (s / "bm25_terms.parquet").read_bytes() for s in folder.iterdir()}

    got, want = words(idx), words(fresh)
    assert got.keys() == want.keys() and len(got) == 3
    assert got == want
    meta = json.loads(next(idx.rglob("meta.json")).read_text())
    assert meta["time_zone"] == "UTC"


def test_a_build_never_changes_the_time_zone_of_a_callers_connection(tmp_path):
    """Build connections are in UTC; a connection the caller opened (and one it registers the lake on)
    keeps its own zone through an in-process build, and sees the view's TIMESTAMPTZ values in it."""
    import duckdb

    import lakeql

    lake = tmp_path / "lake"
    _zoned_lake(lake, 2)
    user = duckdb.connect()
    user.execute("SET TimeZone = 'America/New_York'")
    lakeql.index(lake, index_dir=tmp_path / "idx", ngram="w.a.note", capabilities=["ngrams"], progress=False)
    assert user.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/New_York"
    lakeql.register(user, lake, index_dir=tmp_path / "idx")
    assert user.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/New_York"
    notes = {r[0] for r in user.execute("SELECT note FROM w.a WHERE id = 100").fetchall()}
    assert notes == {"2014-10-09 08:00:00-04"}, notes
