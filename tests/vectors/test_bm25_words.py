"""The words of hybrid_search's keyword side (lakeql.vectors.bm25, tokenizer version 2) on scripts other
than English, and indexes made by the previous tokenizer (version 1): kept working as made, rebuilt by a
refresh even when no table changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_helpers import build, connect  # noqa: E402

TEXTS = [
    "東京都に住んでいます",
    "大阪の天気は晴れです",
    "Die Größe der Straße in München",
    "שָׁלוֹם עולם ומלואו",
    "مرحبا بالعالم العربي",
    "हिन्दी भाषा सीखना",
    "ภาษาไทยเขียนติดกัน",
    "서울에서 만나요",
    "plain english words about a harbour",
    "ﬁnancial report ＡＢＣ",
]


@pytest.mark.parametrize(
    "text, query",
    [
        ("東京都に住んでいます", "東京"),
        ("東京都に住んでいます", "京都"),
        ("大阪の天気は晴れです", "天気"),
        ("Die Größe der Straße", "STRASSE"),
        ("Die Größe der Straße", "grösse"),
        ("Die Gro\u0308\u00dfe", "größe"),  # a decomposed umlaut is the composed one
        ("שָׁלוֹם עולם", "עולם"),
        ("مرحبا بالعالم", "بالعالم"),
        ("हिन्दी भाषा", "हिन्दी"),  # virama and vowel signs (combining marks) stay inside the word
        ("ภาษาไทยเขียนติดกัน", "ภาษาไทย"),  # Thai has no spaces: pairs, like CJK
        ("서울에서 만나요", "서울"),
        ("ﬁnancial report", "financial"),
        ("ＡＢＣ", "abc"),
        ("می\u200cخواهم", "میخواهم"),  # a zero-width non-joiner does not cut a word
    ],
)
def test_query_words_are_found_in_the_text(text, query):
    from lakeql.vectors.bm25 import words

    have = set(words(text))
    assert words(query) and set(words(query)) <= have, (words(query), have)


def test_words_of_each_script():
    from lakeql.vectors.bm25 import words

    assert words("東京都") == ["東京", "京都"]
    assert words("東") == ["東"]
    assert words("東京Tower 2024年") == ["東京", "tower", "2024", "年"]
    assert words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert words("Größe STRASSE straße") == ["grösse", "strasse", "strasse"]
    assert words("a\u200bb") == ["a", "b"]  # a zero-width space separates
    assert words("\u0301 x") == ["x"]  # a lone combining mark is no word
    assert words("Read a CSV_file, 3 times!") == ["read", "a", "csv_file", "3", "times"]  # ASCII as before


def test_version_1_is_the_old_tokenizer():
    from lakeql.vectors.bm25 import index_version, words

    assert words("東京都に住む Größe", 1) == ["東京都に住む", "größe"]
    assert index_version({"bm25": True}) == 1 and index_version({"bm25": 2}) == 2


def _lake(root: Path) -> Path:
    import duckdb

    lake = root / "lake"
    (lake / "intl").mkdir(parents=True)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id INTEGER, body VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(TEXTS)))
    con.execute(f"COPY t TO '{lake / 'intl' / 'notes.parquet'}' (FORMAT parquet)")
    con.close()
    return lake


def _bm25_top(lake, index_dir, query):
    """(id, score) of hybrid_search's best row with the BM25 side alone (weight 0)."""
    con = connect(lake, index_dir)
    try:
        return con.execute(
            "SELECT id, score FROM hybrid_search('intl.notes', 'body', ?, k := 3, "
            "fusion := 'weighted', weight := 0.0)",
            [query],
        ).fetchall()[0]
    finally:
        con.close()


def test_hybrid_search_keywords_in_japanese_and_german(tmp_path):
    lake = _lake(tmp_path)
    build(lake, tmp_path / "index", ["notes.body"], embed_bm25=True)
    assert _bm25_top(lake, tmp_path / "index", "東京")[0] == 0
    assert _bm25_top(lake, tmp_path / "index", "天気")[0] == 1
    top = _bm25_top(lake, tmp_path / "index", "STRASSE")
    assert top[0] == 2 and top[1] > 0
    assert _bm25_top(lake, tmp_path / "index", "ภาษาไทย")[0] == 6


@pytest.mark.filterwarnings("ignore::lakeql.vectors.sql.OldTokenizerWarning")  # (its own test below)
def test_an_index_of_the_old_tokenizer_keeps_working_then_a_refresh_rebuilds_it(tmp_path, monkeypatch):
    from lakeql.vectors import builder

    lake, index_dir = _lake(tmp_path), tmp_path / "index"
    with monkeypatch.context() as m:  # what lakeql wrote before tokenizer 2: 'bm25': true, \w+ words
        m.setattr(builder, "bm25_version", lambda: True)
        build(lake, index_dir, ["notes.body"], embed_bm25=True)
    (folder,) = list((index_dir / "embed").iterdir())
    assert json.loads((folder / "meta.json").read_text())["bm25"] is True
    # queries are cut as its texts were: the whole sentence is one word, a word inside it is not found
    assert _bm25_top(lake, index_dir, "東京")[1] == 0
    assert _bm25_top(lake, index_dir, "東京都に住んでいます")[0] == 0
    build(lake, index_dir, [], refresh=True)  # no table changed: the BM25 words are rebuilt all the same
    (folder,) = list((index_dir / "embed").iterdir())
    assert json.loads((folder / "meta.json").read_text())["bm25"] == 2
    top = _bm25_top(lake, index_dir, "東京")
    assert top[0] == 0 and top[1] > 0


def _two_file_lake(root: Path) -> Path:
    """intl.notes as two Parquet files (two shards of its embed index)."""
    import duckdb

    folder = root / "lake" / "intl" / "notes"
    folder.mkdir(parents=True)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id INTEGER, body VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(TEXTS)))
    con.execute(f"COPY (SELECT * FROM t WHERE id < 5) TO '{folder / 'a.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT * FROM t WHERE id >= 5) TO '{folder / 'b.parquet'}' (FORMAT parquet)")
    con.close()
    return root / "lake"


def _old_tokenizer_build(monkeypatch, lake: Path, index_dir: Path) -> Path:
    from lakeql.vectors import builder

    with monkeypatch.context() as m:  # what lakeql wrote before tokenizer 2: 'bm25': true, \w+ words
        m.setattr(builder, "bm25_version", lambda: True)
        build(lake, index_dir, ["notes.body"], embed_bm25=True)
    (folder,) = list((index_dir / "embed").iterdir())
    return folder


def _shard_files(folder: Path) -> dict[str, tuple[int, bytes]]:
    """(inode, bytes) of every file of the index's shards but their BM25 word counts."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, p.read_bytes())
        for p in sorted((folder / "shards").rglob("*"))
        if p.is_file() and not p.name.startswith("bm25")
    }


def _postings(folder: Path):
    from lakeql.vectors.bm25 import BM25Index

    b = BM25Index.load(folder / "bm25", "intl.notes.body")
    return b.vocab, b.indptr.tolist(), b.rows.tolist(), b.weights.tobytes(), b.n


def _encode_spy(monkeypatch) -> list[str]:
    from lakeql import embedding

    encoded: list[str] = []
    orig = embedding.encode

    def spy(texts, *a, **kw):
        encoded.extend(texts)
        return orig(texts, *a, **kw)

    monkeypatch.setattr(embedding, "encode", spy)
    return encoded


def test_refresh_of_an_old_tokenizer_index_rebuilds_only_its_words(tmp_path, monkeypatch):
    lake, index_dir = _two_file_lake(tmp_path), tmp_path / "index"
    folder = _old_tokenizer_build(monkeypatch, lake, index_dir)
    codes_before = _shard_files(folder)
    encoded = _encode_spy(monkeypatch)
    build(lake, index_dir, [], refresh=True)  # no table changed: only the words are made again
    assert encoded == []  # nothing embedded
    (folder,) = list((index_dir / "embed").iterdir())
    assert json.loads((folder / "meta.json").read_text())["bm25"] == 2
    after = _shard_files(folder)
    assert after == codes_before  # the codes are the same files (hard links), byte for byte
    full = tmp_path / "full"
    build(lake, full, ["notes.body"], embed_bm25=True)
    (full_folder,) = list((full / "embed").iterdir())
    assert _postings(folder) == _postings(full_folder)  # the words of a fresh build
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in _shard_files(full_folder).items()}
    for name in ("bm25.npz", "bm25_terms.parquet"):
        for shard in (folder / "shards").iterdir():
            assert (shard / name).read_bytes() == (full_folder / "shards" / shard.name / name).read_bytes()
    top = _bm25_top(lake, index_dir, "東京")
    assert top[0] == 0 and top[1] > 0
    from lakeql.store import Store

    store = Store(index_dir)  # the manifest vouches for the new word counts (their own checksums)
    assert store.damage(store.find("embed", "intl.notes", "body")) is None
    encoded.clear()  # (the fresh build above embedded its texts)
    build(lake, index_dir, [], refresh=True)  # up to date now
    assert encoded == []


def test_refresh_of_an_old_tokenizer_index_embeds_only_a_new_file(tmp_path, monkeypatch):
    lake, index_dir = _two_file_lake(tmp_path), tmp_path / "index"
    b = lake / "intl" / "notes" / "b.parquet"
    kept_aside = b.read_bytes()
    b.unlink()
    folder = _old_tokenizer_build(monkeypatch, lake, index_dir)
    codes_before = _shard_files(folder)
    b.write_bytes(kept_aside)
    encoded = _encode_spy(monkeypatch)
    build(lake, index_dir, [], refresh=True)
    assert sorted(encoded) == sorted(TEXTS[5:])  # the new file's texts only
    (folder,) = list((index_dir / "embed").iterdir())
    after = _shard_files(folder)
    assert all(after[k] == v for k, v in codes_before.items())
    full = tmp_path / "full"
    build(lake, full, ["notes.body"], embed_bm25=True)
    (full_folder,) = list((full / "embed").iterdir())
    assert _postings(folder) == _postings(full_folder)


def test_a_query_on_an_old_tokenizer_index_says_once_how_to_upgrade_it(tmp_path, monkeypatch):
    import warnings

    from lakeql.vectors.sql import OldTokenizerWarning

    lake, index_dir = _lake(tmp_path), tmp_path / "index"
    _old_tokenizer_build(monkeypatch, lake, index_dir)
    sql = "SELECT id FROM hybrid_search('intl.notes', 'body', ?, k := 3)"
    con = connect(lake, index_dir)
    try:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            for q in ("東京", "harbour", "report"):
                assert con.execute(sql, [q]).fetchall()  # answers, not an error
    finally:
        con.close()
    said = [str(w.message) for w in got if issubclass(w.category, OldTokenizerWarning)]
    assert len(said) == 1 and "--refresh" in said[0] and "intl.notes.body" in said[0], said
    build(lake, index_dir, [], refresh=True)
    con = connect(lake, index_dir)
    try:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            con.execute(sql, ["東京"]).fetchall()
    finally:
        con.close()
    assert not [w for w in got if issubclass(w.category, OldTokenizerWarning)]


def test_refresh_of_an_old_tokenizer_index_does_not_load_the_model(tmp_path, monkeypatch):
    """Counting the kept texts' words again embeds nothing, yet the refresh loaded the encoder to learn
    where the texts were cut (its max_seq_length): a refresh failed where the model is not available
    (benchmarks/results/leftovers2.md #6). The cut is read from the model folder's config now."""
    from lakeql import embedding

    lake, index_dir = _two_file_lake(tmp_path), tmp_path / "index"
    folder = _old_tokenizer_build(monkeypatch, lake, index_dir)

    def refuse(*a, **kw):
        raise AssertionError("the embedding model was loaded")

    with monkeypatch.context() as m:
        m.setattr(embedding, "load_model", refuse)
        m.setattr(embedding, "_load_model", refuse)
        build(lake, index_dir, [], refresh=True)
    # the cut read from the config is the loaded encoder's (what a fresh build cuts at)
    assert embedding.config_max_seq_length(None) == embedding.load_model(None, "auto").max_seq_length
    (folder,) = list((index_dir / "embed").iterdir())
    assert json.loads((folder / "meta.json").read_text())["bm25"] == 2
    full = tmp_path / "full"
    build(lake, full, ["notes.body"], embed_bm25=True)
    (full_folder,) = list((full / "embed").iterdir())
    assert _postings(folder) == _postings(full_folder)
