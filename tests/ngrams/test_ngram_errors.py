"""Bad input gives one clear line naming the fix; bad data never crashes the build."""

from __future__ import annotations

import shutil

import pytest
from ngramutil import build

import lakeql
from lakeql.errors import LakeqlError

T, C = "code.files", "text"


def err(con, sql, *params) -> str:
    with pytest.raises(Exception) as info:
        con.execute(sql, list(params)).fetchall()
    from lakeql.cli import format_error

    return format_error(info.value)


@pytest.mark.parametrize(("sql", "params", "pattern"), [
    ("SELECT ngram_count(?, ?, '')", [T, C], "phrase is empty"),
    ("SELECT * FROM ngram_search(?, ?, '', k := 3)", [T, C], "phrase is empty"),
    ("SELECT ngram_count('code.filez', ?, 'x')", [C], "unknown table 'code.filez'.*did you mean code.files"),
    ("SELECT ngram_count(?, 'txt', 'x')", [T], "no column 'txt'.*did you mean text"),
    ("SELECT ngram_count(?, 'n', 'x')", [T], "type BIGINT.*text"),
    ("SELECT ngram_count(?, 'path', 'x')", [T], "no ngram index for code.files.path.*"
     "--ngram code.files.path"),
    ("SELECT * FROM ngram_search(?, ?, 'x', k := 0)", [T, C], "k must be a positive integer"),
    ("SELECT * FROM ngram_next(?, ?, 'x', k := -2)", [T, C], "k must be a positive integer"),
])
def test_bad_arguments(indexed, sql, params, pattern):
    con, _ = indexed
    import re

    msg = err(con, sql, *params)
    assert re.search(pattern, msg), msg
    assert "\n" not in msg


def test_phrases_that_find_nothing(indexed, corpus):
    con, _ = indexed
    longest = max(len(t or b"") for _, t in corpus)
    huge = "x" * (longest + 10)
    assert con.execute("SELECT ngram_count(?, ?, ?), ngram_rows(?, ?, ?)",
                       [T, C, huge, T, C, huge]).fetchone() == (0, 0)
    assert con.execute("SELECT count(*) FROM ngram_search(?, ?, ?)", [T, C, huge]).fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM ngram_next(?, ?, 'qqqzzzxxx')", [T, C]).fetchone() == (0,)
    # a whole row is found, but not across the row separator
    text = corpus[20][1].decode()
    assert con.execute("SELECT ngram_rows(?, ?, ?)", [T, C, text]).fetchone() == (1,)
    joined = corpus[20][1].decode()[-20:] + "\x00" + corpus[21][1].decode()[:20]
    assert con.execute("SELECT ngram_count(?, ?, ?)", [T, C, joined]).fetchone() == (0,)


def test_bad_flags(text_lake, tmp_path):
    for spec, pattern in [("code.files.txt", "no column 'txt'"), ("nope.text", "unknown table"),
                          ("code.files.n", "type BIGINT"), ("files", "TABLE.COLUMN")]:
        with pytest.raises(LakeqlError, match=pattern):
            build(text_lake, tmp_path / "bad", spec)
    with pytest.raises(LakeqlError, match="ngram-shard-mb"):
        build(text_lake, tmp_path / "bad", "code.files.text", ngram_shard_mb=0)


def test_bare_table_name_and_corrupt_index(text_lake, corpus, tmp_path):
    idx = tmp_path / "idx"
    build(text_lake, idx, "files.text")  # bare table name, unique in the lake
    con = lakeql.connect(text_lake, index_dir=idx)
    assert con.execute("SELECT ngram_count('files', 'text', 'import')").fetchone()[0] > 0
    shard = next((idx / "ngram").glob("*/shard-*"))
    # truncate a memory-mapped file: a fresh connection reports it, naming the fix
    (shard / "classes.npy").write_bytes((shard / "classes.npy").read_bytes()[:100])
    con = lakeql.connect(text_lake, index_dir=idx)
    msg = err(con, "SELECT ngram_count('files', 'text', 'import')")
    assert ("n-gram index shard" in msg and "lakeql index LAKE --ngram code.files.text" in msg) or \
        ("is damaged" in msg and "classes.npy" in msg and "--refresh" in msg)  # the store's size check
    shutil.rmtree(shard)
    con = lakeql.connect(text_lake, index_dir=idx)
    msg = err(con, "SELECT ngram_count('files', 'text', 'import')")
    assert ("shard folders" in msg and "--ngram code.files.text" in msg) or \
        ("is damaged (missing" in msg and "--refresh" in msg)  # the store's file check


def test_empty_table_and_all_null_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"t": pa.array([], pa.string())}), lake / "d" / "empty.parquet")
    pq.write_table(pa.table({"t": pa.array([None, None], pa.string())}), lake / "d" / "nulls.parquet")
    build(lake, tmp_path / "i", "d.empty.t", "d.nulls.t")
    con = lakeql.connect(lake, index_dir=tmp_path / "i")
    assert con.execute("SELECT ngram_count('d.empty', 't', 'a'), ngram_count('d.nulls', 't', 'a')"
                       ).fetchone() == (0, 0)
    assert con.execute("SELECT count(*) FROM ngram_search('d.nulls', 't', 'a')").fetchone() == (0,)


def test_index_files_match_their_json_schemas(indexed):
    import json
    from pathlib import Path

    import jsonschema

    _, idx = indexed
    schemas = Path(__file__).resolve().parents[2] / "schemas"
    root = next((idx / "ngram").iterdir())
    jsonschema.validate(json.loads((root / "index.json").read_text()),
                        json.loads((schemas / "ngrams_index.schema.json").read_text()))
    shard_schema = json.loads((schemas / "ngrams_shard.schema.json").read_text())
    shards = sorted(root.glob("shard-*"))
    assert len(shards) >= 3
    for s in shards:
        jsonschema.validate(json.loads((s / "meta.json").read_text()), shard_schema)


def test_negative_jobs_is_an_error(text_lake, tmp_path):
    with pytest.raises(LakeqlError, match="--ngram-jobs"):
        build(text_lake, tmp_path / "j", "code.files.text", ngram_jobs=-1)


def test_stock_duckdb_cli_lists_ngram_indexes(indexed):
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "duckdb"
    if not cli.exists():
        pytest.skip("the duckdb CLI (PyPI duckdb-cli) is not installed in this environment")
    _, idx = indexed
    res = subprocess.run([str(cli), str(idx / "lake.duckdb"), "-csv", "-c",
                          "SELECT table_name, column_name, ratio > 0 FROM ngram_indexes()"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "code.files,text,true" in res.stdout
