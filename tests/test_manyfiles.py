"""Fixes of the manyfiles pass (benchmarks/results/manyfiles.md): named index targets checked up front,
MCP tables that tell the string 'NULL' from a NULL, the first n-gram query over many per-file shards."""

from __future__ import annotations

from pathlib import Path

import pytest

import lakeql
from lakeql.errors import LakeqlError, UnknownColumnError, UnknownTableError


def built_kinds(idx: Path) -> set[str]:
    """The kinds of index the manifest lists (nothing when no manifest was written)."""
    from lakeql.store import Store

    if not idx.exists():
        return set()
    return {e.kind for e in Store(idx).entries()}


@pytest.mark.parametrize(
    "flag, spec, error, named",
    [
        ("embed", "python.functions.docstrng", UnknownColumnError, "did you mean docstring"),
        ("embed", "python.functons.docstring", UnknownTableError, "did you mean python.functions"),
        ("embed", "python.functions.lineno", UnknownColumnError, "needs a text"),
        ("ngram", "python.modules.docstrin", UnknownColumnError, "did you mean docstring"),
        ("ngram", "python.functions.lineno", UnknownColumnError, "needs a text"),
    ],
)
def test_bad_target_fails_before_any_index_is_built(sample_copy, tmp_path, flag, spec, error, named):
    idx = tmp_path / "idx"
    with pytest.raises(error) as info:
        lakeql.index(sample_copy, index_dir=idx, progress=False, **{flag: [spec]})
    msg = str(info.value)
    assert f"--{flag}" in msg and named in msg, msg
    # the catalog is read (the check needs it); no capability index and no database were written
    assert built_kinds(idx) <= {"catalog"}, built_kinds(idx)
    assert not list(idx.glob("*.duckdb")) if idx.exists() else True


def test_every_bad_target_is_named_in_one_error(sample_copy, tmp_path):
    idx = tmp_path / "idx"
    with pytest.raises(LakeqlError) as info:
        lakeql.index(
            sample_copy,
            index_dir=idx,
            progress=False,
            embed=["python.modules.docstring", "python.modules.pakage"],
            ngram=["python.functions.qualnam"],
        )
    msg = str(info.value)
    assert "'python.modules.pakage'" in msg and "did you mean package" in msg, msg
    assert "'python.functions.qualnam'" in msg and "did you mean qualname" in msg, msg
    assert built_kinds(idx) <= {"catalog"}


def test_mcp_table_tells_the_text_null_from_sql_null(tmp_path):
    """A hive folder ``region=NULL`` reads as the text 'NULL', ``__HIVE_DEFAULT_PARTITION__`` as SQL NULL:
    the MCP query table showed both as NULL. Now the text is a quoted literal and a note says so."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.mcp.service import LakeService

    lake = tmp_path / "lake"
    for folder, zone in [
        ("NULL", "Europe/Paris"),
        ("__HIVE_DEFAULT_PARTITION__", "Asia/Tokyo"),
        ("Europe", "Europe/Rome"),
    ]:
        (lake / "geo" / "zones" / f"region={folder}").mkdir(parents=True)
        pq.write_table(
            pa.table({"tz": [zone], "note": ["null" if zone == "Europe/Rome" else "'NULL'"]}),
            lake / "geo" / "zones" / f"region={folder}" / "part-0.parquet",
        )
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"])
    svc = LakeService(lake, idx)
    try:
        out = svc.query("SELECT tz, region, note FROM geo.zones ORDER BY tz")
    finally:
        svc.close()
    rows = [line for line in out.splitlines() if line.startswith("| ") and "tz" not in line]
    assert rows[1] == "| Europe/Paris | 'NULL' | '''NULL''' |", out
    assert rows[2] == "| Europe/Rome | Europe | 'null' |", out
    assert rows[0] == "| Asia/Tokyo | NULL | '''NULL''' |", out
    assert "NULL is SQL NULL" in out, out
    # no quoting and no note where no text looks like NULL
    svc = LakeService(lake, idx)
    try:
        plain = svc.query(
            "SELECT tz, region FROM geo.zones WHERE region IS NULL OR region = 'Europe' ORDER BY tz"
        )
    finally:
        svc.close()
    assert "| Asia/Tokyo | NULL |" in plain and "'" not in plain and "SQL NULL" not in plain, plain


# ----------------------------------------------------------------- the first n-gram query over many shards
def zone_texts() -> list[str]:
    """Zone names and comments of the tz database (zone1970.tab): short real text, one row per zone."""
    from test_trial9 import zone_rows

    return [f"{z['tz']} {z['comment'] or ''}".strip() for z in zone_rows()]


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """The same 80 rows as 40 two-row Parquet files (40 per-file shards) and as one file (one shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("many_files")
    texts = zone_texts()[:80]
    (root / "many" / "tz" / "zones").mkdir(parents=True)
    for i in range(40):
        pq.write_table(
            pa.table({"t": texts[2 * i : 2 * i + 2]}), root / "many" / "tz" / "zones" / f"p{i:03d}.parquet"
        )
    (root / "one" / "tz").mkdir(parents=True)
    pq.write_table(pa.table({"t": texts}), root / "one" / "tz" / "zones.parquet")
    for lake in ("many", "one"):
        lakeql.index(
            root / lake,
            index_dir=root / f"{lake}.idx",
            progress=False,
            capabilities=["ngrams"],
            ngram=["tz.zones.t"],
            ngram_words=True,
        )
    return root, texts


def test_first_char_query_opens_no_word_shards(many_files, monkeypatch):
    """A character query opened every shard twice (characters and words: ~14 arrays per file); the word
    layer now opens on the first unit := 'word' query. Answers equal brute force and the one-shard index."""
    from lakeql.ngrams import fmindex

    root, texts = many_files
    opened: list[str] = []
    real = fmindex.Shard.__init__

    def counting(self, folder):
        opened.append(folder.name)
        real(self, folder)

    monkeypatch.setattr(fmindex.Shard, "__init__", counting)
    con = lakeql.connect(root / "many", index_dir=root / "many.idx")
    one = lakeql.connect(root / "one", index_dir=root / "one.idx")
    sql = "SELECT ngram_count('tz.zones', 't', ?, unit := ?), ngram_rows('tz.zones', 't', ?, unit := ?)"
    for phrase in ("America/", "Islands", "a", "ia ", "zzqx", "/Ar"):
        want = (
            sum(t.count(phrase[0]) if len(phrase) == 1 else overlapping(t, phrase) for t in texts),
            sum(phrase in t for t in texts),
        )
        assert con.execute(sql, [phrase, "char", phrase, "char"]).fetchone() == want, phrase
    assert len(opened) == 40 and "words" not in opened, opened  # 40 shards, characters only
    for phrase in ("Islands", "America", "north east", "zzqx"):
        got = con.execute(sql, [phrase, "word", phrase, "word"]).fetchone()
        assert got == one.execute(sql, [phrase, "word", phrase, "word"]).fetchone(), phrase
    assert opened.count("words") == 41, opened  # opened once, on the first word query


def overlapping(text: str, phrase: str) -> int:
    return sum(text.startswith(phrase, i) for i in range(len(text)))


def test_small_shard_arrays_read_in_one_pass_match_numpy_and_refuse_damage(tmp_path):
    """Small shard arrays are read whole and their header parsed without ast.literal_eval (most of the
    time of opening 2,000 shards); arrays equal np.load's, writable and aligned; damage is refused."""
    import io

    import numpy as np

    from lakeql.errors import CorruptIndexError
    from lakeql.ngrams import fmindex

    arrays = [
        np.arange(5, dtype=np.int64),
        np.zeros((3, 4), np.uint8),
        np.array(7, np.int32),
        np.zeros(0, np.uint64),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.zeros(2, dtype=[("a", "<i4")]),
    ]
    for a in arrays:
        buf = io.BytesIO()
        np.save(buf, a)
        got = fmindex.npy_from_bytes(bytearray(buf.getvalue()), "x.npy")
        assert got.dtype == a.dtype and got.shape == a.shape and (got == a).all(), a
        assert got.flags.writeable and got.flags.aligned
    buf = io.BytesIO()
    np.save(buf, np.arange(9, dtype=np.uint64))
    with pytest.raises(ValueError, match="truncated"):
        fmindex.npy_from_bytes(bytearray(buf.getvalue()[:-5]), "x.npy")
    with pytest.raises(ValueError, match="not a .npy"):
        fmindex.npy_from_bytes(bytearray(b"PK\x03\x04" + bytes(20)), "x.npy")
    # a shard whose small array was cut, or whose tree.npz is not a zip: a CorruptIndexError (rebuild)
    import shutil

    rows = [t.encode() for t in zone_texts()[:30]]
    raw = b"".join(r + b"\0" for r in rows)
    starts = np.zeros(len(rows) + 1, np.int64)
    starts[1:] = np.cumsum([len(r) + 1 for r in rows])
    good = tmp_path / "good"
    fmindex.build_shard(np.frombuffer(bytearray(raw), np.uint8), starts, 0, good)
    assert fmindex.Shard(good).n_rows == len(rows)
    for name, cut in (("rows.npy", 4), ("tree.npz", 30)):
        bad = tmp_path / f"bad-{name}"
        shutil.copytree(good, bad)
        raw = (bad / name).read_bytes()
        (bad / name).write_bytes(raw[:-cut] if name.endswith(".npy") else b"not a zip" + raw[40:])
        with pytest.raises(CorruptIndexError, match="unreadable"):
            fmindex.Shard(bad)


CHECKSUMS_OF_FIRST_QUERY = """
import sys
import lakeql, lakeql.store as S
read = []
real = S._checksum_like
S._checksum_like = lambda p, want: (read.append(str(p)), real(p, want))[1]
con = lakeql.connect(sys.argv[1], index_dir=sys.argv[2])
try:
    print("RESULT", con.execute("SELECT ngram_count('tz.zones', 't', 'America')").fetchone()[0])
except Exception as exc:
    print("RESULT", type(exc).__name__, exc)
print("RESULT", sum("/ngram/" in f for f in read))
"""


def test_first_query_trusts_the_stamps_the_build_recorded(tmp_path):
    """The first query of a process read and checksummed every file of the n-gram index (32,000 for
    2,000 small Parquet files): the build now records each shard file's stat stamp with its checksum
    and a reader trusts a file whose stamp is unchanged. A byte changed in place is still found."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = zone_texts()[:20]
    (tmp_path / "lake" / "tz" / "zones").mkdir(parents=True)
    for i in range(10):
        pq.write_table(
            pa.table({"t": texts[2 * i : 2 * i + 2]}), tmp_path / "lake" / "tz" / "zones" / f"p{i}.parquet"
        )
    idx = tmp_path / "idx"
    lakeql.index(
        tmp_path / "lake", index_dir=idx, progress=False, capabilities=["ngrams"], ngram=["tz.zones.t"]
    )

    def first_query() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", CHECKSUMS_OF_FIRST_QUERY, str(tmp_path / "lake"), str(idx)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return [line[7:] for line in out.stdout.split("\n") if line.startswith("RESULT ")]

    want = sum(overlapping(t, "America") for t in texts)
    assert first_query()[:2] == [str(want), "0"]  # answered, no n-gram file read for its checksum
    shard = sorted((idx / "ngram").glob("*/shard-*"))[3]
    f = shard / "rows.npy"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0x01  # the same size, another byte: a write (new ctime)
    f.write_bytes(bytes(raw))
    got = first_query()
    assert got[0].startswith("CorruptIndexError") and "fails its checksum" in got[0], got
