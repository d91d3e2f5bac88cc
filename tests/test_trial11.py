"""trial11: a fresh-eyes trial on lakes shaped like real ones and text nobody tuned for.

Each test failed before its fix (benchmarks/results/trial11.md) and runs on small real data.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import duckdb
import pytest
from testutil import shared_data

import lakeql
from lakeql.errors import LakeqlError
from lakeql.lake import discover


def _drinks_lake(root: Path) -> Path:
    """``d/drinks.csv`` and ``d/drinks.parquet`` (one export in two formats: a common lake shape) and
    ``d/airlines.parquet``, from fivethirtyeight."""
    src = shared_data("fivethirtyeight")
    (root / "d").mkdir(parents=True)
    shutil.copy(src / "alcohol-consumption" / "drinks.csv", root / "d" / "drinks.csv")
    con = duckdb.connect()
    con.execute(f"COPY (FROM read_csv('{root}/d/drinks.csv')) TO '{root}/d/drinks.parquet'")
    con.execute(f"COPY (FROM read_csv('{src}/airline-safety/airline-safety.csv')) "
                f"TO '{root}/d/airlines.parquet'")
    return root


def test_two_sources_of_one_table_name_leave_that_name_out_not_the_lake(tmp_path: Path) -> None:
    """Before: ``two sources map to table 'd.drinks' ...`` refused the whole lake (index, sql, connect),
    so one pair of files made every other table of a lake of thousands unusable."""
    lake = _drinks_lake(tmp_path / "lake")
    with pytest.warns(lakeql.lake.UnsupportedFileWarning, match="d/drinks.csv.*d/drinks.parquet"):
        found = discover(lake)
    assert set(found.tables) == {"d.airlines"}
    left = [p for p in found.problems if p.table_name == "d.drinks"]
    assert {(p.kind, p.path) for p in left} == {("table", "d/drinks.csv"), ("table", "d/drinks.parquet")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=[])
        con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM d.airlines").fetchone()[0] == 56
    status = con.execute("SELECT source, status FROM lakeql_tables() WHERE table_name = 'd.drinks' "
                         "ORDER BY source").fetchall()
    assert status == [("d/drinks.csv", "error"), ("d/drinks.parquet", "error")]
    with pytest.raises(LakeqlError, match="rename or move one of them") as err:
        con.execute("SELECT * FROM joinable('d.drinks', 'country')").fetchall()
    assert "none of its files could be read" not in str(err.value)  # they can: the name is the problem


def test_check_sql_names_the_quotes_a_keyword_table_or_a_dotted_column_needs(tmp_path: Path) -> None:
    """Before: ``SELECT country FROM select.from`` got only DuckDB's ``syntax error at or near "select"``
    (the quoting hint covered names with non-identifier characters, not keywords), and a column named
    ``a.b`` written unquoted got ``unknown table or alias 'a' in a.b`` with no suggestion."""
    src = shared_data("fivethirtyeight", "alcohol-consumption", "drinks.csv")
    for folder in ("select", "bar"):
        (tmp_path / "lake" / folder).mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT country, beer_servings AS \"order\" FROM read_csv('{src}')) "
                f"TO '{tmp_path}/lake/select/from.parquet'")
    con.execute(f"COPY (SELECT country, wine_servings AS \"a.b\" FROM read_csv('{src}')) "
                f"TO '{tmp_path}/lake/bar/pub.parquet'")
    lake = tmp_path / "lake"
    lakeql.index(lake, capabilities=[])
    lq = lakeql.connect(lake)

    def check(sql: str) -> list[tuple]:
        return lq.execute("SELECT message, suggestion FROM check_sql(?)", [sql]).fetchall()

    msg, sugg = check("SELECT country FROM select.from")[0]
    assert "select.from is a table whose name must be quoted" in msg and sugg == '"select"."from"'
    msg, sugg = check("SELECT a.b FROM bar.pub")[0]
    assert "'a.b' is a column of bar.pub" in msg and sugg == '"a.b"'
    assert check('SELECT "a.b", country FROM bar.pub') == []
    assert check('SELECT country FROM "select"."from" ORDER BY 1') == []
    # a plain table is never hinted, and a keyword that is no lake name stays DuckDB's message alone
    assert "must be quoted" not in check("SELECT country FROM bar.pub ORDER BY BY")[0][0]


def test_check_sql_on_a_left_out_table_says_why_not_did_you_mean_another(tmp_path: Path) -> None:
    """Before: ``check_sql('SELECT * FROM d.drinks')`` on a lake where d.drinks was left out (two sources
    of the name; the same for a table whose every file is unreadable) said ``unknown table d.drinks (did
    you mean d.airlines?)``: an agent follows the suggestion and queries the wrong table."""
    lake = _drinks_lake(tmp_path / "lake")
    (lake / "e").mkdir()
    (lake / "e" / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=[])
        con = lakeql.connect(lake)
    for sql, why in [("SELECT country FROM d.drinks", "2 sources map to table"),
                     ("SELECT * FROM e.broken", "left out"), ("SELECT * FROM drinks", "2 sources map")]:
        (msg, sugg), = con.execute("SELECT message, suggestion FROM check_sql(?)", [sql]).fetchall()
        assert why in msg and "did you mean" not in msg and sugg is None, (sql, msg, sugg)
    assert con.execute("SELECT count(*) FROM check_sql('SELECT * FROM d.airlines')").fetchone()[0] == 0


def test_a_query_the_encoder_has_no_token_for_is_refused_not_a_perfect_match(tmp_path: Path) -> None:
    """Before: every text the encoder (all-MiniLM-L6-v2: English WordPiece) tokenizes to [UNK] only (an
    emoji, a Thai or Amharic sentence) embeds to one and the same vector, so ``semantic_search('🚀')``
    answered a Thai sentence with score 1.000 (a 'perfect match' of unrelated text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["Tokyo is the capital of Japan.", "The river floods every spring.",
             "ก่อนหน้านี้ภาษาไทยไม่มีช่องว่างระหว่างคำ", "ሰላም ልዑል", "Invoices are due within thirty days.",
             "👩\u200d👩\u200d👧\u200d👦"]
    (tmp_path / "lake" / "t").mkdir(parents=True)
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}),
                   tmp_path / "lake" / "t" / "s.parquet")
    lake = tmp_path / "lake"
    lakeql.index(lake, capabilities=["vectors"], embed=["t.s.text"], embed_bm25=True)
    con = lakeql.connect(lake)
    for q in ["🚀", "ሰላም", "👩\u200d👩\u200d👧\u200d👦"]:
        with pytest.raises(LakeqlError, match="no token of the query .* ngram_search"):
            con.execute("SELECT * FROM semantic_search('t.s', 'text', ?, k := 3)", [q]).fetchall()
    # hybrid_search keeps its keyword side: the Thai sentence found by its words
    rows = con.execute("SELECT id FROM hybrid_search('t.s', 'text', ?, k := 3)",
                       ["ภาษาไทย"]).fetchall()
    assert rows and rows[0][0] == 2
    # a query with one known word among unknown ones is searched as before
    top = con.execute("SELECT id, score FROM semantic_search('t.s', 'text', ?, k := 1)",
                      ["🚀 Tokyo"]).fetchall()
    assert top[0][0] == 0 and top[0][1] < 0.99


def test_nfd_folder_and_file_names_answer_to_the_names_people_type(tmp_path: Path) -> None:
    """Before: a lake whose folder and file names are decomposed (NFD: written on macOS, or unzipped from
    an archive made there) had tables no typed (NFC) name reached: ``SELECT ... FROM "ürün"."satış_özeti"``
    -> schema does not exist, and every lakeql function (``--embed`` too) said ``unknown table
    'ürün.satış_özeti' (did you mean ürün.satış_özeti?)``, suggesting the name that was typed."""
    import unicodedata

    nfc = "ürün.satış_özeti"
    dom, name = (unicodedata.normalize("NFD", x) for x in nfc.split("."))
    src = shared_data("fivethirtyeight", "alcohol-consumption", "drinks.csv")
    (tmp_path / "lake" / dom).mkdir(parents=True)
    duckdb.connect().execute(f"COPY (FROM read_csv('{src}')) TO '{tmp_path}/lake/{dom}/{name}.parquet'")
    # two files whose names differ only in their Unicode form are one name: both left out, as row 119
    (tmp_path / "lake" / "d").mkdir()
    for form in ("NFC", "NFD"):
        cafe = unicodedata.normalize(form, "café")
        duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{tmp_path}/lake/d/{cafe}.parquet'")
    lake = tmp_path / "lake"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=["joins", "ngrams"], ngram=[f"{nfc}.country"])
        con = lakeql.connect(lake)
    assert con.execute('SELECT count(*) FROM "ürün"."satış_özeti"').fetchone()[0] == 193
    assert con.execute("SELECT ngram_rows(?, 'country', 'land')", [nfc]).fetchone()[0] == 12
    assert con.execute("SELECT ngram_rows(?, 'country', 'land')", [f"{dom}.{name}"]).fetchone()[0] == 12
    assert con.execute("SELECT count(*) FROM check_sql(?)", ['SELECT country FROM "ürün"."satış_özeti"']
                       ).fetchone()[0] == 0
    status = dict(con.execute("SELECT table_name, status FROM lakeql_tables()").fetchall())
    assert status == {nfc: "ok", "d.café": "error"}
    errors = con.execute("SELECT error FROM lakeql_tables() WHERE status = 'error'").fetchall()
    (why,) = {r[0] for r in errors}
    # the two names look alike: the message shows their code points
    assert "'d/cafe\\u0301.parquet' and 'd/caf\\xe9.parquet' (table names ignore case and Unicode form)" \
        in why


def test_mcp_list_domains_counts_only_tables_an_agent_can_query(tmp_path: Path) -> None:
    """Before: MCP ``list_domains`` counted and listed a table left out of the lake (two sources of one
    name, or no readable file) like any other: ``d | 3 | airlines, drinks, drinks``."""
    from lakeql.mcp.service import LakeService

    lake = _drinks_lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=["context"])
        text = LakeService(lake).list_domains()
    row = next(line for line in text.splitlines() if line.startswith("| d |"))
    assert row.startswith("| d | 1 | 56 | airlines, drinks (left out: see lakeql_tables()) |"), row


def test_schema_context_with_a_question_of_no_word_and_no_known_token_says_so(tmp_path: Path) -> None:
    """Before: ``schema_context('🚀')`` and ``schema_context('ሰላም')`` (Amharic "hello") answered the same
    schema file with the same confident score (0.81 on trial11's lake): the encoder's one vector for text
    it has no token for, ranked against every file (also MCP ``search_tables``)."""
    lake = _drinks_lake(tmp_path / "lake")
    (lake / "d" / "drinks.csv").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, capabilities=["context"])
        con = lakeql.connect(lake)
    for q in ["🚀", "ሰላም"]:
        with pytest.raises(LakeqlError, match="no token of the question"):
            con.execute("SELECT path FROM schema_context(?)", [q]).fetchall()
    # a known word among unknown tokens is ranked as before
    paths = [r[0] for r in con.execute("SELECT path FROM schema_context(?, unit := 'table')",
                                       ["🍺 beer servings by country"]).fetchall()]
    assert paths[0].endswith("drinks.yaml")
