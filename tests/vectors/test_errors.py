"""Bad input: each a clear one-line error naming the fix."""

from __future__ import annotations

import os
import shutil

import duckdb
import pytest

from lakeql.errors import LakeqlError, UnknownColumnError, UnknownTableError

S = "semantic_search"
CASES = [
    (f"SELECT * FROM {S}('python.functionz', 'docstring', 'x')", "did you mean python.functions"),
    (f"SELECT * FROM {S}('python.functions', 'docstrng', 'x')", "did you mean docstring"),
    (f"SELECT * FROM {S}('python.functions', 'lineno', 'x')", "needs a text (VARCHAR) column"),
    (f"SELECT * FROM {S}('python.functions', 'module', 'x')",
     "lakeql index LAKE --embed python.functions.module"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', 'x', k := 0)",
     "k must be a positive integer, got 0"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', 'x', k := -3)", "k must be a positive integer"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', 'x', oversample := 0)", "oversample must be"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', '')", "query is empty"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', '   ')", "query is empty"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', NULL)", "query is empty"),
    (f"SELECT * FROM {S}('python.functions', 'docstring', 'x', filter := 'nosuchcol = 1')",
     "filter: unknown column 'nosuchcol'"),
    ("SELECT * FROM semantic_search_vector('python.functions', 'docstring', [1, 2, 3]::FLOAT[])",
     "query vector has 3 dimensions but the embed index of python.functions.docstring has 384"),
    ("SELECT * FROM similar_rows('python.functions', 'docstring', 'qualname', 'no_such_fn')", "has that key"),
    ("SELECT * FROM similar_rows('python.functions', 'docstring', 'qualnme', 'x')",
     "table 'python.functions' has no column 'qualnme' (did you mean qualname?)"),
    ("SELECT * FROM similar_rows('python.functions', 'docstring', NULL, 'x')",
     "a table and a key column are needed, got NULL"),
    ("SELECT * FROM similar_rows('python.functions', 'docstring', 'qualname', 'null_doc')",
     "NULL or empty, so it has no embedding"),
    ("SELECT binarize([1, 2]::FLOAT[], 'median')", "needs fitted parameters"),
    ("SELECT binarize(embed('x'), 'python.functions.module')", "lakeql index LAKE --embed"),
]


@pytest.mark.parametrize("sql,message", CASES)
def test_bad_sql_input_is_one_clear_line(con, sql, message):
    with pytest.raises(duckdb.Error) as exc:
        con.execute(sql).fetchall()
    from lakeql.cli import format_error

    line = format_error(exc.value)
    assert message in line, line
    assert "\n" not in line


@pytest.mark.parametrize("spec,table,column", [
    ("python.functions.docstring", "python.functions", "docstring"),
    ("functions.docstring", "python.functions", "docstring"),
])
def test_spec_split(lake, spec, table, column):
    from lakeql.lake import discover

    t, c = discover(lake[0]).table_column(spec)
    assert (t.key, c) == (table, column)


@pytest.mark.parametrize("spec,err,message", [
    ("docstring", LakeqlError, "expects TABLE.COLUMN"),
    ("nope.functions.docstring", UnknownTableError, "unknown table 'nope.functions'"),
    ("python.functions.docstrings", UnknownColumnError, "did you mean docstring"),
    ("python.functions.lineno", UnknownColumnError, "needs a text (VARCHAR) column"),
])
def test_wrong_embed_option_fails_the_build(tmp_path, lake, spec, err, message):
    from vectors_helpers import build

    with pytest.raises(err, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(lake[0], tmp_path / "idx", [spec])


def test_model_that_does_not_load(tmp_path):
    from lakeql.embedding import load_model

    with pytest.raises(LakeqlError, match="cannot load embedding model .* pass a local"):
        load_model(str(tmp_path / "no-such-model"))


def test_stale_and_corrupt_index(tmp_path, lake):
    from vectors_helpers import connect

    lk = tmp_path / "lake"
    shutil.copytree(lake[0], lk)
    idx = tmp_path / "index"
    shutil.copytree(lake[1], idx)
    con = connect(lk, idx)
    sql = "SELECT count(*) FROM semantic_search('python.functions', 'docstring', 'zip', k := 3)"
    assert con.execute(sql).fetchone()[0] == 3
    # Corrupt code file: a clear error naming the rebuild (a fresh connection: nothing cached yet).
    (folder,) = list((idx / "embed").iterdir())
    codes = next(folder.glob("shards/*/codes.parquet"))
    data = codes.read_bytes()
    codes.write_bytes(data[: len(data) // 2])
    with pytest.raises(duckdb.Error, match="embed index of python.functions.docstring is (corrupt|damaged)"):
        connect(lk, idx).execute(sql).fetchall()
    # Stale: the table's Parquet file changed after the index was built.
    f = lk / "python" / "functions.parquet"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    with pytest.raises(duckdb.Error, match=r"older than the Parquet files .*lakeql index --refresh LAKE"):
        con.execute(sql).fetchall()


def test_refresh_skips_an_up_to_date_index(tmp_path, lake):
    from vectors_helpers import build

    from lakeql.lake import discover
    from lakeql.store import Store

    idx = tmp_path / "index"
    shutil.copytree(lake[1], idx)
    before = Store.for_lake(discover(lake[0]), idx).find("embed", "python.functions", "docstring")
    build(lake[0], idx, ["python.functions.docstring"], refresh=True, embed_bm25=True)  # as conftest built it
    after = Store.for_lake(discover(lake[0]), idx).find("embed", "python.functions", "docstring")
    assert before.built_at == after.built_at


def test_empty_code_store_searches_to_nothing(tmp_path):
    """A column whose texts are all NULL/blank builds an empty index; searches return no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from vectors_helpers import build, connect

    lk = tmp_path / "lake" / "d"
    lk.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2, 3], "t": [None, "", " "]}), lk / "blank.parquet")
    build(lk.parent, tmp_path / "idx", ["d.blank.t"])
    con = connect(lk.parent, tmp_path / "idx")
    assert con.execute("SELECT * FROM semantic_search('d.blank', 't', 'anything')").fetchall() == []
    assert con.execute("SELECT count(*) FROM embed_codes('d.blank', 't')").fetchone()[0] == 0


def test_index_flags_reach_the_builder():
    """Each vectors flag of ``lakeql index`` lands in the typed options the builder reads."""
    from lakeql.cli import build_parser, index_options

    args = build_parser().parse_args(["index", "LAKE", "--embed", "a.b.c", "--embed", "a.b.d",
                                      "--model", "/m", "--embed-method", "sign", "--embed-backend",
                                      "torch-int8", "--embed-batch-size", "7", "--embed-rescore", "int8"])
    opts = index_options(args)["vectors"]
    assert (opts.embed, opts.model, opts.embed_method, opts.embed_backend, opts.embed_batch_size,
            opts.embed_rescore) == (["a.b.c", "a.b.d"], "/m", "sign", "torch-int8", 7, "int8")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["index", "LAKE", "--embed-method", "nope"])


BLANK_QUERIES = ["\x00", "\u200b", "\t\n", "\x01\x1b\x7f\x85", "\u2028\u00a0\ufeff \u3000",
                 "\u200d\u200c\u2060", "\u00ad\u202e"]


@pytest.mark.parametrize("query", BLANK_QUERIES)
@pytest.mark.parametrize("fn", ["semantic_search", "hybrid_search"])
def test_a_query_of_control_or_invisible_characters_is_refused_as_empty(con, fn, query):
    with pytest.raises(duckdb.Error) as exc:
        con.execute(f"SELECT * FROM {fn}('python.functions', 'docstring', ?)", [query]).fetchall()
    assert "the search query is empty: pass some text" in str(exc.value)


def test_is_blank_keeps_text_among_invisible_characters(con):
    from lakeql.udf import is_blank

    assert all(is_blank(q) for q in [*BLANK_QUERIES, None, "", " "])
    assert not any(is_blank(q) for q in ["x", "\x00x", "\u200bzip", "東京", "\u0301", "\ue000", "👍"])
    got = con.execute("SELECT count(*) FROM semantic_search('python.functions', 'docstring', ?, k := 3)",
                      ["\u200bzlib\x00"]).fetchone()[0]
    assert got == 3
    nulls = con.execute("SELECT embed(t) IS NULL FROM (SELECT unnest(?) AS t)",
                        [["\x00", "\u200b", "x"]]).fetchall()
    assert [n[0] for n in nulls] == [True, True, False]
