"""review25: defects found reviewing trial11's merge (unknown-token queries, NFC names, left-out tables).

Each test failed before its fix (benchmarks/results/review25.md) and runs on small real data.
"""

from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from testutil import shared_data

import lakeql
from lakeql import embedding
from lakeql.errors import LakeqlError
from lakeql.store import slug

TEXTS = ["Tokyo is the capital of Japan.", "The river floods every spring.",
         "ก่อนหน้านี้ภาษาไทยไม่มีช่องว่างระหว่างคำ", "ሰላም ልዑል", "Invoices are due within thirty days."]


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_the_unknown_token_check_reads_only_the_tokens_the_encoder_sees(backend: str) -> None:
    """Before: the check read the whole query, the encoder only its first 254 word pieces (256 less
    [CLS] and [SEP]): on torch ``'🚀 ' * 300 + 'Tokyo'`` passed the check (one known token, past the
    cut) and was embedded as 254 [UNK] (the vector every unknown-only text gets), and on ONNX the same
    with the known word at piece 255 or 256. Torch also printed transformers' 'Token indices sequence
    length is longer than the specified maximum' for such a query."""
    model = embedding.load_model(None, backend)
    room = model.max_seq_length - 2
    assert embedding.only_unknown_tokens(model, "🚀 " * room + "Tokyo")
    assert embedding.only_unknown_tokens(model, "🚀 " * 300 + "Tokyo")
    assert not embedding.only_unknown_tokens(model, "🚀 " * (room - 1) + "Tokyo")
    # as before: known tokens (punctuation, stopwords) are never refused, unknown-only text is
    for text, unknown in [("🚀", True), ("ሰላም", True), ("🚀 Tokyo", False), ("???", False),
                          ("the of and", False), ("", False), ("x" * 100_000, True)]:
        assert embedding.only_unknown_tokens(model, text) is unknown, (backend, text)


def test_torch_semantic_search_refuses_a_query_unknown_within_the_encoders_window(tmp_path: Path) -> None:
    """Before: an index embedded on torch answered ``'🚀 ' * 300 + 'Tokyo'`` (254 [UNK] as the encoder
    reads it) with the Amharic and Thai rows (cosine 0.17, 0.15): a ranking by the one vector all such
    queries get (a row of 254 unknown tokens would score 1.0), not by the query's word."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "lake" / "t").mkdir(parents=True)
    pq.write_table(pa.table({"id": list(range(len(TEXTS))), "text": TEXTS}),
                   tmp_path / "lake" / "t" / "s.parquet")
    lake = tmp_path / "lake"
    lakeql.index(lake, capabilities=["vectors"], embed=["t.s.text"], embed_backend="torch")
    con = lakeql.connect(lake)
    with pytest.raises(LakeqlError, match="no token of the query"):
        con.execute("SELECT * FROM semantic_search('t.s', 'text', ?, k := 1)",
                    ["🚀 " * 300 + "Tokyo"]).fetchall()
    top = con.execute("SELECT id FROM semantic_search('t.s', 'text', ?, k := 1)", ["🚀 Tokyo"]).fetchall()
    assert top == [(0,)]


def _tokenizer(kind: str):
    """A small tokenizer of ``kind``, made here (no download): a SentencePiece-style Unigram with
    ``<unk>`` at id 0, a byte-level BPE (no unknown token), a WordLevel whose ``<unk>`` is id 3."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    if kind == "unigram":
        tok = Tokenizer(models.Unigram([("<unk>", 0.0), ("\u2581", -1.0), ("\u2581tokyo", -2.0),
                                        ("\u2581sales", -2.0)], 0, False))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
    elif kind == "bytes":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel()
        tok.add_tokens(["tokyo"])
    else:
        tok = Tokenizer(models.WordLevel({"a": 0, "tokyo": 1, "sales": 2, "<unk>": 3}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_the_unknown_token_check_on_other_tokenizers() -> None:
    """Before: a SentencePiece model (XLM-R, T5: the multilingual sentence-transformers) reads a character
    it has no piece for as ``▁`` + ``<unk>``: the word-start piece counted as a known token, so such a
    query was never refused, though every such text is the same two pieces. A byte-level BPE knows every
    text; a tokenizer whose unknown token has another id than BERT's is read by its own id."""
    from transformers import PreTrainedTokenizerFast

    uni = PreTrainedTokenizerFast(tokenizer_object=_tokenizer("unigram"), unk_token="<unk>")
    hf = SimpleNamespace(tokenizer=uni, max_seq_length=128)
    assert embedding.only_unknown_tokens(hf, "🚀")
    assert embedding.only_unknown_tokens(hf, "🚀 ሰላም")
    assert not embedding.only_unknown_tokens(hf, "🚀 tokyo")
    assert not embedding.only_unknown_tokens(hf, " ")
    words = SimpleNamespace(tokenizer=_tokenizer("words"), max_seq_length=16)  # tokenizers.Tokenizer (ONNX)
    assert embedding.only_unknown_tokens(words, "🚀 ሰላም")
    assert not embedding.only_unknown_tokens(words, "🚀 sales")
    assert not embedding.only_unknown_tokens(words, "a")  # id 0 is a known word here, not [UNK]
    assert embedding.only_unknown_tokens(words, "🚀 " * 20 + "sales")  # past its 16-token window
    byte_bpe = SimpleNamespace(tokenizer=_tokenizer("bytes"), max_seq_length=16)
    assert not embedding.only_unknown_tokens(byte_bpe, "🚀")
    assert not embedding.only_unknown_tokens(SimpleNamespace(tokenizer=None), "🚀")


def test_refresh_of_an_index_recorded_under_nfd_names_keeps_its_embed_and_ngram_indexes(tmp_path: Path
                                                                                        ) -> None:
    """Before: an index built before trial11 on a lake of NFD folder names records its embed and n-gram
    indexes under the NFD table name; names are NFC now, so ``lakeql index --refresh`` took that table
    for removed and silently dropped both indexes (``vectors: 0.0 s``): ``semantic_search`` and
    ``ngram_search`` then said ``no embed index ... build it with --embed`` for indexes nobody removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    nfc = "ürün.satış_özeti"
    dom, name = (unicodedata.normalize("NFD", x) for x in nfc.split("."))
    src = shared_data("fivethirtyeight", "alcohol-consumption", "drinks.csv")
    (tmp_path / "lake" / dom).mkdir(parents=True)
    duckdb.connect().execute(f"COPY (FROM read_csv('{src}')) TO '{tmp_path}/lake/{dom}/{name}.parquet'")
    lake = tmp_path / "lake"
    lakeql.index(lake, capabilities=["ngrams", "vectors"], embed=[f"{nfc}.country"], ngram=[f"{nfc}.country"])
    # the manifest and folders as a build before trial11 wrote them: the table's NFD name, its slug
    manifest = lake / ".lakeql" / "indexes.parquet"
    rows = pq.read_table(manifest).to_pylist()
    for r in rows:
        if r["kind"] in ("embed", "ngram"):
            r["table_name"] = f"{dom}.{name}"
            moved = f"{r['kind']}/{slug(r['table_name'], r['column_name'])}"
            (lake / ".lakeql" / r["path"]).rename(lake / ".lakeql" / moved)
            r["path"] = moved
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(manifest)), manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, refresh=True, capabilities=["ngrams", "vectors"])
    con = lakeql.connect(lake)
    assert con.execute("SELECT country FROM semantic_search(?, 'country', 'France', k := 1)", [nfc]
                       ).fetchall() == [("France",)]
    assert con.execute("SELECT ngram_rows(?, 'country', 'land')", [nfc]).fetchone()[0] == 12
    kept = pq.read_table(manifest).to_pylist()
    assert sorted((r["kind"], r["table_name"]) for r in kept if r["kind"] in ("embed", "ngram")) == [
        ("embed", nfc), ("ngram", nfc)]
    # the old folders went with their rows
    assert len(list((lake / ".lakeql" / "embed").iterdir())) == 1
    assert len(list((lake / ".lakeql" / "ngram").iterdir())) == 1


def test_check_sql_names_why_a_left_out_table_whose_name_holds_a_dot_is_left_out(tmp_path: Path) -> None:
    """Before: with ``d/x.y.parquet`` beside ``d/X.y.csv`` (both left out), ``check_sql('SELECT * FROM
    "x.y"')`` said ``unknown table 'x.y' (did you mean d.y?)``: the bare name was found by splitting the key
    'd.X.y' at its last dot ('y'), so the reason was missed and another table suggested, the case trial11
    #4 fixed for names without a dot."""
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    (lake / "v1.2").mkdir()
    con = duckdb.connect()
    for path in ("d/x.y.parquet", "d/X.y.csv", "d/y.parquet", "v1.2/t.parquet", "v1.2/T.csv", "top.parquet"):
        con.execute(f"COPY (SELECT 1 AS a) TO '{lake / path}'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=[], progress=False)
        lq = lakeql.connect(lake)
    for sql, table in [('SELECT * FROM "x.y"', "d.X.y"), ('SELECT * FROM d."x.y"', "d.X.y"),
                       ("SELECT * FROM t", "v1.2.T"), ('SELECT * FROM "v1.2".t', "v1.2.T")]:
        (msg, sugg), = lq.execute("SELECT message, suggestion FROM check_sql(?)", [sql]).fetchall()
        assert f"table '{table}' is in the lake but left out" in msg and sugg is None, (sql, msg)
    # a live table's bare name stays itself: 'y' is d.y, not the left-out 'x.y'
    (msg, sugg), = lq.execute("SELECT message, suggestion FROM check_sql('SELECT * FROM y')").fetchall()
    assert "left out" not in msg and sugg == "d.y"


def test_refresh_keeps_a_schema_file_whose_old_name_is_the_same_file_on_macos(tmp_path: Path) -> None:
    """Before: on a file system that ignores Unicode form (macOS) the schema file of an NFD-named table,
    recorded by a run before trial11 as ``ürün/satış_özeti.yaml`` in NFD, is the very file the next run
    writes under the NFC name; the run then removed the old name as a gone file, deleting the new one
    (``lakeql schemas LAKE --out DIR``; the same with case on a case-insensitive file system:
    ``d/Orders.yaml`` renamed ``d/orders.yaml``): it stays broken, as the next --refresh finds nothing
    changed. Two names of one file are made here with symlinks (the old name leads to the new file, as on
    such a file system): before, the run removed the old name."""
    import gzip
    import json
    import os

    from lakeql.catalog import Catalog
    from lakeql.context.generate import generate
    from lakeql.lake import discover

    nfc = "ürün.satış_özeti"
    dom, name = (unicodedata.normalize("NFD", x) for x in nfc.split("."))
    src = shared_data("fivethirtyeight", "alcohol-consumption", "drinks.csv")
    (tmp_path / "lake" / dom).mkdir(parents=True)
    duckdb.connect().execute(f"COPY (FROM read_csv('{src}')) TO '{tmp_path}/lake/{dom}/{name}.parquet'")
    lake = discover(tmp_path / "lake")
    out = tmp_path / "schemas"
    generate(lake, Catalog.open(lake, None), out)
    new = out / "ürün" / "satış_özeti.yaml"
    assert new.is_file()
    # the state and files as a run before trial11 left them, on a file system where both names are one
    state_path = out / ".lakeql-schemas.json.gz"
    state = json.loads(gzip.decompress(state_path.read_bytes()))
    state_path.write_bytes(gzip.compress(unicodedata.normalize("NFD", json.dumps(state, ensure_ascii=False))
                                         .encode()))
    (out / dom).mkdir()
    for f in ("satış_özeti.yaml", "_DOMAIN.md"):
        os.symlink(out / "ürün" / f, out / dom / unicodedata.normalize("NFD", f))
    res = generate(lake, Catalog.open(lake, None), out)
    assert new.is_file() and (out / "ürün" / "_DOMAIN.md").is_file()
    assert res.removed == 0 and (out / dom / unicodedata.normalize("NFD", "_DOMAIN.md")).is_symlink()
