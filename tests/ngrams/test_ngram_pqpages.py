"""Parquet pages decoded by :mod:`lakeql.ngrams.pqpages` == pyarrow's read == brute force counts.

Files written by pyarrow with every codec, data pages v1 and v2, PLAIN and dictionary encodings (and a
dictionary that falls back to PLAIN mid-chunk), many small pages, NULLs, empty strings, non-ASCII text,
overlapping phrases, required and optional columns; a DELTA encoding the decoder declines (pyarrow's
reader answers instead). ``ParquetColumn.rows`` / ``top`` with the page decoder equal the pyarrow path
and brute force for characters and words, case-sensitive and case-folded.
"""

from __future__ import annotations

import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ngramutil import stdlib_files
from test_ngram_pqcount import _spec

ROWS = [
    "aaaa",
    "",
    None,
    "xaax aa",
    "abababab",
    "Self self SELF sElF",
    "élan self_x self ſelf SELF",
    "new york new york; york york york",
    "straße STRASSE Straße strasse ﬁle FILE",
    "日本語 日本語日本語 naïve café",
    "aa",
    "a",
    "ΣΣΣ σσσ ςς",
    "self",
    "self",  # repeated: one dictionary entry for several rows
    "aaaa",
] * 5 + ["tail aa"]

CODECS = ["none", "snappy", "gzip", "brotli", "zstd", "lz4"]


def _write(path, rows, **kw):
    required = kw.pop("required", False)
    field = pa.field("text", pa.string(), nullable=not required)
    tab = pa.table(
        {"n": pa.array(range(len(rows)), pa.int64()), "text": pa.array(rows, pa.string())},
        schema=pa.schema([pa.field("n", pa.int64()), field]),
    )
    pq.write_table(tab, path, **kw)
    return str(path)


def _decoded(path):
    """Every row of the file through chunk_pieces: (texts, pieces were declined for some group)."""
    from lakeql.ngrams.pqpages import chunk_pieces

    md = pq.ParquetFile(path).metadata
    out = []
    with open(path, "rb") as fh:
        for g in range(md.num_row_groups):
            for n, vals, index in chunk_pieces(fh, md, g, 1):
                if index is None:
                    out += [v.decode() for v in vals.take(np.arange(n)).to_pylist()]
                else:
                    texts = vals.take(np.maximum(index, 0)).to_pylist() if len(vals) else [b""] * n
                    out += [None if i < 0 else t.decode() for i, t in zip(index.tolist(), texts, strict=True)]
    return out


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("dictionary", [True, False, "fallback"])
def test_pages_decode_as_pyarrow_reads(tmp_path, codec, version, dictionary):
    kw = {"compression": codec, "data_page_version": version, "row_group_size": 23, "data_page_size": 64}
    if dictionary == "fallback":  # the dictionary fills after a few values: PLAIN pages follow
        kw.update(use_dictionary=True, dictionary_pagesize_limit=40)
    else:
        kw["use_dictionary"] = dictionary
    path = _write(tmp_path / "t.parquet", ROWS, **kw)
    encodings = {e for g in range(4) for e in pq.ParquetFile(path).metadata.row_group(g).column(1).encodings}
    assert ("RLE_DICTIONARY" in encodings) == bool(dictionary)
    assert _decoded(path) == pq.read_table(path).column("text").to_pylist() == ROWS


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_required_column_and_all_null_groups(tmp_path, version):
    rows = [r for r in ROWS if r is not None]
    path = _write(tmp_path / "r.parquet", rows, required=True, data_page_version=version, row_group_size=7)
    assert _decoded(path) == rows
    nulls = [None] * 9 + ["aa", None]
    path = _write(tmp_path / "n.parquet", nulls, data_page_version=version, row_group_size=3)
    assert _decoded(path) == nulls


def test_delta_encoding_is_declined(tmp_path):
    from lakeql.ngrams.pqpages import Declined, chunk_pieces

    path = _write(
        tmp_path / "d.parquet",
        ROWS,
        use_dictionary=False,
        column_encoding={"n": "PLAIN", "text": "DELTA_LENGTH_BYTE_ARRAY"},
    )
    md = pq.ParquetFile(path).metadata
    with open(path, "rb") as fh, pytest.raises(Declined):
        chunk_pieces(fh, md, 0, 1)


def _brute(unit, fold, phrase, rows):
    from ngramutil import brute_per_row

    return brute_per_row(unit, fold, phrase, rows)


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("unit", ["char", "word"])
@pytest.mark.parametrize("layout", ["dict-v1-zstd", "plain-v2-snappy", "fallback-v1-none", "delta"])
def test_parquet_column_rows_and_top_equal_pyarrow_and_brute_force(tmp_path, monkeypatch, fold, unit, layout):
    from lakeql.ngrams import pqcount

    kw = {"row_group_size": 13, "data_page_size": 100}
    if layout == "dict-v1-zstd":
        kw.update(compression="zstd", use_dictionary=True)
    elif layout == "plain-v2-snappy":
        kw.update(compression="snappy", use_dictionary=False, data_page_version="2.0")
    elif layout == "fallback-v1-none":
        kw.update(compression="none", use_dictionary=True, dictionary_pagesize_limit=30)
    else:
        kw.update(use_dictionary=False, column_encoding={"n": "PLAIN", "text": "DELTA_LENGTH_BYTE_ARRAY"})
    half = len(ROWS) // 2
    paths = [
        _write(tmp_path / "a.parquet", ROWS[:half], **kw),
        _write(tmp_path / "b.parquet", ROWS[half:], **kw),
    ]
    monkeypatch.setattr(pqcount, "MIN_JOB_BYTES", 1)
    monkeypatch.setattr(pqcount, "JOB_BYTES", 1)
    col = pqcount.ParquetColumn(types.SimpleNamespace(format="parquet", paths=paths), "text", len(ROWS))
    assert col.ok and len(col.jobs) > 3
    read = col._read
    if layout != "delta":  # the page decoder answers every row group: pyarrow's reader is never used

        def no_read(job):
            if col.pages:
                raise AssertionError("a row group was declined")
            return read(job)

        monkeypatch.setattr(col, "_read", no_read)
    phrases = ["aa", "a", "self", "SELF", "york", "new york", "日本語", "ss", "σσσ", "straße", "tail aa"]
    for phrase in phrases:
        spec = _spec(unit, fold, phrase)
        if not spec.ok:
            continue
        want = _brute(unit, fold, phrase, ROWS)
        hit = [i for i, c in enumerate(want) if c]
        answers = []
        for pages in (True, False):
            col.pages = pages
            rid, cnt, _ = col.rows(spec)
            assert rid.tolist() == hit, (phrase, pages)
            assert cnt.tolist() == [want[i] for i in hit], (phrase, pages)
            best = sorted(hit, key=lambda i: (-want[i], i))[:5]
            for lazy in (1000, 0):  # texts kept as buffers until the end, or copied as rows enter
                monkeypatch.setattr(pqcount, "LAZY_K", lazy)
                rid5, texts = col.top(spec, 5)
                assert rid5.tolist() == best, (phrase, pages)
                assert texts.to_pylist() == [ROWS[i] for i in best], (phrase, pages)
            answers.append((rid.tolist(), cnt.tolist(), rid5.tolist()))
        assert answers[0] == answers[1]


def _assert_first_offsets_equal_whole_rows(monkeypatch, rows, phrases, unit, fold, prefix):
    """``colscan.first_offsets`` with ``FIRST_PREFIX = prefix`` == the first offsets ``verify_batch``
    finds in whole rows, for each phrase that occurs in ``rows``."""
    from lakeql.ngrams import colscan

    texts = pa.array([r.encode() for r in rows], pa.large_binary()).view(pa.large_string())
    batch = pa.RecordBatch.from_arrays([pa.array(np.arange(len(rows))), texts], ["i", "t"])
    monkeypatch.setattr(colscan, "FIRST_PREFIX", prefix)  # read by first_offsets only
    for phrase in phrases:
        pat = _spec(unit, fold, phrase).pat
        rid, _, want = colscan.verify_batch(batch, unit, fold, pat, True)
        if rid.shape[0]:
            got = colscan.first_offsets(rid, texts.take(pa.array(rid)), unit, fold, pat)
            assert got.tolist() == want.tolist(), (phrase, fold, prefix)


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("prefix", [1, 2, 3, 5, 8, 1 << 16])
def test_first_offsets_from_prefixes_equal_whole_rows(monkeypatch, fold, prefix):
    """``colscan.first_offsets`` (rows searched in a prefix cut at a character start first) == the
    first offsets of whole rows, as the index holds them (folded text for casefold)."""
    rows = [r for r in ROWS if r] + ["ééé aa", "ß" * 5 + "ss", "x" * 9 + "日本語", "ſelf" * 3, "aaaaaaaaaa"]
    phrases = ["aa", "a", "self", "ss", "日本語", "é", "σσ", "ſ", "york"]
    _assert_first_offsets_equal_whole_rows(monkeypatch, rows, phrases, "char", fold, prefix)


@pytest.mark.parametrize("fold", ["none", "casefold"])
@pytest.mark.parametrize("prefix", [1, 2, 3, 4, 5, 6, 7, 8, 11, 1 << 16])
def test_word_first_offsets_from_prefixes_equal_whole_rows(monkeypatch, fold, prefix):
    """Words: the prefix is cut after its last ASCII separator; first offsets (in the word stream the
    index holds) == whole rows', with Unicode word characters next to the cut (é, ß, 日本語, ſ, curly
    quotes, which separate words) and on real stdlib text."""
    rows = [r for r in ROWS if r] + [
        "ééé aa self",
        "ßelf self",
        "x日本語 self self",
        "ſelf self’self",
        "aa\u2019aa aa",
        "selfé self",
        "new\u00a0york new york",
        "Self SELF self",
        "a" * 9 + " new york",
    ]
    rows += [b.decode("utf-8", "replace") for _, b in stdlib_files(60_000)][:12]
    phrases = ["self", "aa", "new york", "york", "日本語", "é", "def", "return self", "the"]
    _assert_first_offsets_equal_whole_rows(monkeypatch, rows, phrases, "word", fold, prefix)


@pytest.mark.parametrize("unit", ["char", "word"])
def test_first_offsets_of_long_rows_read_only_their_prefix(monkeypatch, unit):
    """The top rows of a frequent phrase are MBs long: with a match in the first FIRST_PREFIX bytes,
    no text longer than that is searched (words too: they were searched whole)."""
    from lakeql.ngrams import colscan

    long_rows = ["x = self.y\n" + "é " * 300_000 + " self", "def f(self):\n" + "self " * 200_000]
    texts = pa.array([r.encode() for r in long_rows], pa.large_binary()).view(pa.large_string())
    seen = []
    real = colscan.verify_batch

    def spy(batch, *a):
        seen.append(max(len(b) for b in batch.column(1).view(pa.large_binary()).to_pylist()))
        return real(batch, *a)

    monkeypatch.setattr(colscan, "verify_batch", spy)
    for fold in ("none", "casefold"):
        pat = _spec(unit, fold, "self").pat
        seen.clear()
        got = colscan.first_offsets(np.arange(2), texts, unit, fold, pat)
        monkeypatch.setattr(colscan, "verify_batch", real)
        want = real(
            pa.RecordBatch.from_arrays([pa.array(np.arange(2)), texts], ["i", "t"]), unit, fold, pat, True
        )
        monkeypatch.setattr(colscan, "verify_batch", spy)
        assert got.tolist() == want[2].tolist()
        assert max(seen) <= colscan.FIRST_PREFIX, (unit, fold, seen)


def test_corrupt_pages_are_declined_not_misread(tmp_path):
    """Bytes of the column chunk flipped one at a time: the decoder either declines the row group or
    returns exactly pyarrow's rows (it never returns other rows, never crashes)."""
    import shutil

    from lakeql.ngrams.pqpages import Declined

    src = _write(tmp_path / "c.parquet", ROWS, compression="none", row_group_size=len(ROWS))
    md = pq.ParquetFile(src).metadata
    cc = md.row_group(0).column(1)
    start = min(o for o in (cc.dictionary_page_offset, cc.data_page_offset) if o)
    good = pq.read_table(src).column("text").to_pylist()
    raw = bytearray(open(src, "rb").read())
    outcomes = set()
    for at in range(start, start + cc.total_compressed_size, 7):
        bad = tmp_path / "bad.parquet"
        shutil.copy(src, bad)
        data = bytearray(raw)
        data[at] ^= 0xFF
        bad.write_bytes(bytes(data))
        try:
            got = _decoded(str(bad))
        except Declined:
            outcomes.add("declined")
            continue
        except UnicodeDecodeError:  # a flipped text byte (the test helper decodes UTF-8)
            outcomes.add("decoded")
            continue
        outcomes.add("decoded")
        if got != good:  # a flipped text byte: same rows but that value differs; never a different row count
            assert len(got) == len(good)
    assert "declined" in outcomes


def _chunk_bytes(tmp_path, **kw):
    """A small file's bytes, its metadata and where its text column chunk starts."""
    src = _write(tmp_path / "h.parquet", ROWS, compression="none", use_dictionary=False, **kw)
    md = pq.ParquetFile(src).metadata
    return bytearray(open(src, "rb").read()), md, md.row_group(0).column(1).data_page_offset


def test_page_header_field_of_another_type_is_declined(tmp_path):
    """The data page header's struct field (5) typed as a bool or an int: declined (was an
    AttributeError out of the ngram query: ``'bool' object has no attribute 'get'``)."""
    from lakeql.ngrams.pqpages import Declined, _varint, chunk_pieces

    raw, md, at = _chunk_bytes(tmp_path)
    i = at
    for _ in range(3):  # fields 1-3: page type, sizes (i32 varints)
        assert raw[i] & 15 == 5
        i = _varint(raw, i + 1)[1]
    assert raw[i] == 0x2C  # field 5 (delta 2), a struct
    for typ in (1, 2, 5):  # bool true, bool false, i32
        bad = bytearray(raw)
        bad[i] = 0x20 | typ
        path = tmp_path / f"bad{typ}.parquet"
        path.write_bytes(bytes(bad))
        with open(path, "rb") as fh, pytest.raises(Declined):
            chunk_pieces(fh, md, 0, 1)


@pytest.mark.parametrize("kind", ["list", "map"])
def test_hostile_thrift_container_length_is_declined_at_once(kind):
    """A list (of bools) / map of ~2**64 elements in a page header: declined at once (the skip loop
    spun for ever: elements of a fixed size were skipped without reading the buffer)."""
    import threading

    from lakeql.ngrams.pqpages import _HEADER, Declined, _struct

    huge = b"\xff" * 9 + b"\x01"
    header = bytes([0x19, 0xF1]) + huge if kind == "list" else bytes([0x1B]) + huge + bytes([0x11])
    out = []

    def run():
        try:
            _struct(header + b"\x00" * 8, 0, _HEADER)
            out.append("parsed")
        except Declined:
            out.append("declined")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert out == ["declined"]


@pytest.mark.parametrize("size", [-1, 2**40, 2**62, 2**70])
def test_footer_chunk_size_outside_the_file_is_declined(tmp_path, size):
    """A footer claiming a column chunk larger than the file (or negative): declined before reading
    (``os.pread`` allocated the claimed size first: MemoryError / OverflowError / ValueError escaped)."""
    from lakeql.ngrams.pqpages import Declined, chunk_pieces

    src = _write(tmp_path / "f.parquet", ROWS, compression="none")
    md = pq.ParquetFile(src).metadata
    cc = md.row_group(0).column(1)
    fake_cc = types.SimpleNamespace(
        **{
            k: getattr(cc, k)
            for k in (
                "compression",
                "data_page_offset",
                "has_dictionary_page",
                "dictionary_page_offset",
                "total_uncompressed_size",
            )
        },
        total_compressed_size=size,
    )
    rg = md.row_group(0)
    fake_rg = types.SimpleNamespace(num_rows=rg.num_rows, column=lambda leaf: fake_cc)
    fake = types.SimpleNamespace(row_group=lambda g: fake_rg, schema=md.schema)
    with open(src, "rb") as fh, pytest.raises(Declined):
        chunk_pieces(fh, fake, 0, 1)


@pytest.mark.parametrize(
    "codec,version,dictionary",
    [("snappy", "1.0", True), ("zstd", "2.0", False), ("none", "2.0", True), ("gzip", "1.0", False)],
)
def test_seeded_fuzz_declines_or_equals_pyarrow(tmp_path, codec, version, dictionary):
    """Random bytes of the column chunk (page headers mostly) flipped / set / zeroed, seeded: every row
    group is declined, or its rows' bytes AND the kernel's counts on the decoder's buffer equal pyarrow's
    read of the same mutant (when pyarrow reads it); never another exception, never a hang."""
    import random

    from lakeql.ngrams.pqcount import exact_counts
    from lakeql.ngrams.pqpages import Declined, chunk_pieces

    src = _write(
        tmp_path / "s.parquet",
        ROWS,
        compression=codec,
        data_page_version=version,
        use_dictionary=dictionary,
        row_group_size=30,
        data_page_size=128,
    )
    md = pq.ParquetFile(src).metadata
    spans = []
    for g in range(md.num_row_groups):
        cc = md.row_group(g).column(1)
        s = min(o for o in (cc.dictionary_page_offset, cc.data_page_offset) if o)
        spans.append((s, s + cc.total_compressed_size))
    raw = open(src, "rb").read()
    spec, pat = _spec("char", "none", "aa"), b"aa"
    rnd = random.Random(1234)
    outcomes = {"declined": 0, "equal": 0}
    bad = tmp_path / "m.parquet"
    for _ in range(150):
        data = bytearray(raw)
        s, e = rnd.choice(spans)
        for _ in range(rnd.randint(1, 3)):
            p = rnd.randrange(s, min(e, s + 40)) if rnd.random() < 0.6 else rnd.randrange(s, e)
            data[p] = rnd.choice([data[p] ^ (1 << rnd.randrange(8)), 0, 0xFF, rnd.randrange(256)])
        bad.write_bytes(bytes(data))
        for g in range(md.num_row_groups):
            try:
                with open(bad, "rb") as fh:
                    pieces = chunk_pieces(fh, md, g, 1)
            except Declined:
                outcomes["declined"] += 1
                continue
            texts, counts = [], []
            for n, vals, index in pieces:
                cv = exact_counts(spec, vals.arr, vals.take) if len(vals) else np.zeros(0, np.int64)
                rows = np.arange(n) if index is None else np.maximum(index, 0)
                got = vals.take(rows).to_pylist() if len(vals) else [b""] * n
                texts += (
                    got if index is None else [None if i < 0 else t for i, t in zip(index, got, strict=True)]
                )
                counts += [0 if index is not None and index[r] < 0 else int(cv[rows[r]]) for r in range(n)]
            try:
                want = pq.ParquetFile(bad).read_row_group(g, columns=["text"]).column(0)
                want = want.cast(pa.large_binary()).to_pylist()
            except (OSError, pa.ArrowException):
                continue  # pyarrow rejects the mutant: nothing to compare with
            assert texts == want
            assert counts == [
                0 if t is None else sum(t.startswith(pat, j) for j in range(len(t))) for t in want
            ]
            outcomes["equal"] += 1
    assert outcomes["declined"] and outcomes["equal"], outcomes
