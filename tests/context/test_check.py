"""check_sql: clean SQL gives no problems; each mistake one problem with the right suggestion first."""

from __future__ import annotations

import random
import re

import pytest

from lakeql.catalog import Catalog
from lakeql.context.check import SchemaInfo, check, dl_distance, rank
from lakeql.lake import discover

from .conftest import SAMPLE, spider_lake, sqlite_to_duckdb


@pytest.fixture(scope="module")
def info():
    lake = discover(SAMPLE)
    return SchemaInfo.from_catalog(Catalog.open(lake, None))


@pytest.fixture(scope="module")
def lake_con():
    """A lakeql connection to the sample lake (the binder check needs its views)."""
    import lakeql

    con = lakeql.connect(SAMPLE)
    yield con
    con.close()


CLEAN = [
    "SELECT carrier, count(*) FROM flights.flights GROUP BY carrier",
    "SELECT f.carrier, a.name FROM flights.flights f JOIN flights.airlines a ON a.carrier = f.carrier",
    "SELECT carrier FROM flights.flights JOIN flights.airlines USING (carrier)",
    "WITH t AS (SELECT carrier AS c FROM flights.flights) SELECT c FROM t WHERE c IN "
    "(SELECT carrier FROM flights.airlines WHERE name = t.c)",
    "SELECT f.carrier, count(*) AS n FROM flights.flights f GROUP BY 1 HAVING n > 3 ORDER BY n",
    "SELECT x.carrier FROM (SELECT * FROM flights.flights) x",
    "SELECT list_transform([1, 2], lambda x: x + 1)",
    "SELECT s.a FROM (SELECT {'a': 1} AS s)",
    "SELECT origin, avg(dep_delay::DOUBLE) OVER (PARTITION BY origin ORDER BY day) FROM flights.flights",
    "SELECT origin FROM flights.flights UNION ALL SELECT faa FROM flights.airports ORDER BY 1",
    "SELECT * FROM flights.weather WHERE EXISTS "
    "(SELECT 1 FROM flights.flights f WHERE f.origin = weather.origin)",
    "SELECT carrier, count(*) FROM flights.flights GROUP BY ALL",
    "SELECT FLIGHTS.CARRIER FROM FLIGHTS.FLIGHTS",
    "SELECT flights.flights.carrier FROM flights.flights",
    "SELECT * FROM information_schema.tables",
    "SELECT 1; SELECT module FROM python.modules",
    "EXPLAIN SELECT module FROM python.modules",
    "SELECT __rowid, module FROM lakeql_rows.\"python.modules\"",
    "SELECT 42 AS answer",
]


@pytest.mark.parametrize("sql", CLEAN)
def test_clean_sql_has_no_problems(info, lake_con, sql):
    assert check(sql, info) == []
    assert check(sql, info, con=lake_con) == []  # DuckDB's parser and binder agree


NOT_QUERIES = [
    # sql, message fragment: statements that are not queries, and file reads, are errors
    ("DROP TABLE flights.flights", "DROP statement, not a query"),
    ("COPY (SELECT 1) TO 'out.csv'", "COPY statement, not a query"),
    ("CREATE TABLE t AS SELECT module FROM python.modules", "CREATE"),
    ("ATTACH 'other.db' AS o", "ATTACH"),
    ("SELECT 1; DROP TABLE x", "statement 2 is a DROP statement"),
    ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN statement"),
    ("SELECT * FROM read_csv('/etc/passwd')", "reads files directly"),
    ("SELECT * FROM read_parquet('x.parquet') WHERE anything = 1", "reads files directly"),
    ("SELECT content FROM read_text('/etc/passwd')", "reads files directly"),
    ("SELECT * FROM glob('/etc/*')", "reads files directly"),
    ("SELECT * FROM '/etc/data.csv'", "reads files directly"),
]


@pytest.mark.parametrize(("sql", "fragment"), NOT_QUERIES)
def test_statements_that_are_not_queries_and_file_reads_are_errors(info, lake_con, sql, fragment):
    for con in (None, lake_con):
        probs = check(sql, info, con=con)
        assert len(probs) == 1 and probs[0].severity == "error" and fragment in probs[0].message, (con, probs)


def test_a_bare_word_is_a_syntax_error(info, lake_con):
    (p,) = check("SELEC", info)
    assert "syntax error" in p.message and (p.line, p.col) == (1, 1)
    (p,) = check("SELEC", info, con=lake_con)
    assert "syntax error" in p.message and (p.line, p.col) == (1, 1)


def test_deep_nesting_is_a_clear_error_not_a_crash(info, lake_con):
    sql = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    for con in (None, lake_con):
        (p,) = check(sql, info, con=con)
        assert "nests parentheses 3000 deep" in p.message
    long_chain = "SELECT 1 FROM flights.airlines WHERE " + " AND ".join(["carrier = 'AA'"] * 2000)
    probs = check(long_chain, info, con=lake_con)  # deep tree without brackets: answered, no crash
    assert all(p.severity == "error" for p in probs)


def test_binder_finds_type_errors_with_position(info, lake_con):
    sql = "SELECT name\nFROM flights.airlines\nWHERE carrier > 0"
    assert check(sql, info) == []  # names alone are right
    (p,) = check(sql, info, con=lake_con)
    assert "Binder Error" in p.message and "explicit cast" in p.message
    assert (p.line, p.col) == (3, 7)
    (p,) = check("SELECT upper(module, 2) FROM python.modules", info, con=lake_con)
    assert "upper" in p.message.lower()


def test_dep_delay_compared_to_a_number_binds_only_when_numeric(info, lake_con):
    """The issue's example: ``dep_delay > 0`` is a binder error exactly when the column is VARCHAR."""
    dtype = lake_con.execute("SELECT typeof(dep_delay) FROM flights.flights LIMIT 1").fetchone()[0]
    probs = check("SELECT count(*) FROM flights.flights WHERE dep_delay > 0", info, con=lake_con)
    if dtype == "VARCHAR":
        assert len(probs) == 1 and "VARCHAR" in probs[0].message
    else:
        assert probs == []


def test_name_errors_keep_their_suggestions_with_a_connection(info, lake_con):
    (p,) = check("SELECT carier FROM flights.flights", info, con=lake_con)
    assert p.suggestion == "carrier" and (p.line, p.col) == (1, 8)


BAD = [
    # sql, message fragment, first suggestion
    ("SELECT carier FROM flights.flights", "unknown column 'carier'", "carrier"),
    ("SELECT f.carier FROM flights.flights f", "unknown column 'carier' in f", "f.carrier"),
    ("SELECT * FROM flights.airline", "unknown table flights.airline", "flights.airlines"),
    ("SELECT * FROM flight.airlines", "unknown schema 'flight'", "flights.airlines"),
    ("SELECT * FROM airlines", "not in the search path", "flights.airlines"),
    ("SELECT * FROM airlnes", "unknown table 'airlnes'", "flights.airlines"),
    ("SELECT name FROM flights.airlines a JOIN flights.airports p ON a.carrier = p.faa", "ambiguous",
     "a.name"),
    ("SELECT q.name FROM flights.airlines a", "unknown table or alias 'q'", "a"),
    ("SELECT tailnum FROM flights.flights f JOIN flights.planes p USING (tailnum) WHERE p.yaer > 2000",
     "unknown column 'yaer' in p", "p.year"),
    ("WITH t AS (SELECT carrier AS c FROM flights.flights) SELECT d FROM t", "unknown column 'd'", "c"),
]


@pytest.mark.parametrize(("sql", "fragment", "suggestion"), BAD)
def test_mistakes_are_flagged_with_the_right_suggestion(info, sql, fragment, suggestion):
    probs = check(sql, info)
    assert len(probs) == 1, probs
    p = probs[0]
    assert p.severity == "error" and fragment in p.message and p.suggestion == suggestion
    assert p.line == 1 and p.col is not None and p.col >= 1


def test_positions_point_at_the_name(info):
    sql = "SELECT carrier,\n       nmae\nFROM flights.airlines"
    (p,) = check(sql, info)
    assert (p.line, p.col) == (2, 8) and sql.splitlines()[1][p.col - 1:].startswith("nmae")


@pytest.mark.parametrize(("sql", "fragment"), [
    ("SELEC carrier FROM flights.flights", "syntax error"),
    ("SELECT carrier FROM flights.flights WHERE", "syntax error"),
    ("SELECT 'unterminated", "syntax error"),
    ("", "empty SQL"),
    ("   ", "empty SQL"),
    (None, "empty SQL"),
])
def test_parse_errors(info, sql, fragment):
    probs = check(sql, info)
    assert len(probs) == 1 and fragment in probs[0].message


def test_parse_error_has_line_and_column(info):
    (p,) = check("SELECT 1\nFROM flights.flights\nWHERE carrier = = 'AA'", info)
    assert p.line == 3 and p.col is not None


def test_search_path(info, lake_con):
    assert check("SELECT carrier FROM airlines", info, "flights") == []
    assert check("SELECT carrier FROM airlines", info, "flights", con=lake_con) == []
    (p,) = check("SELECT carrier FROM airlines WHERE carrier > 0", info, "flights", con=lake_con)
    assert "Binder Error" in p.message
    (p,) = check("SELECT carier FROM airlines", info, "flights")
    assert p.suggestion == "carrier"


def test_rank_prefers_one_edit():
    assert dl_distance("carier", "carrier") == 1 and dl_distance("ab", "ba") == 1
    assert rank("nmae", ["name", "manufacturer", "model"])[0] == "name"
    assert rank("zzzz", ["name", "model"]) == []


def test_spider_gold_sql_is_clean_and_typos_are_caught(tmp_path, spider_dbs, spider_dev):
    """The first 150 dev questions' gold SQL checks clean; one-edit typos of a name are caught and fixed."""
    import sqlglot
    from sqlglot.tokens import TokenType

    qs = spider_dev[:150]
    dbs = sorted({q["db_id"] for q in qs})
    root = spider_lake(tmp_path / "lake", spider_dbs, dbs)
    info = SchemaInfo.from_catalog(Catalog.open(discover(root), None))
    rng = random.Random(7)
    typos = flagged = 0
    for q in qs:
        sql = sqlite_to_duckdb(q["query"])
        assert check(sql, info, q["db_id"]) == [], sql
        names = {t.lower() for t, _ in spider_dbs[q["db_id"]]} | {
            c.lower() for _, cols in spider_dbs[q["db_id"]] for c, _ in cols}
        toks = [t for t in sqlglot.tokenize(sql, read="duckdb")
                if t.token_type == TokenType.VAR and t.text.lower() in names and len(t.text) > 3]
        if not toks:
            continue
        tok = rng.choice(toks)
        i = rng.randrange(1, len(tok.text) - 1)
        bad_name = tok.text[:i] + tok.text[i + 1:]  # drop one letter
        if bad_name.lower() in names or not re.fullmatch(r"[A-Za-z_]\w*", bad_name):
            continue
        typos += 1
        probs = check(sql[:tok.start] + bad_name + sql[tok.end + 1:], info, q["db_id"])
        assert probs, (sql, bad_name)
        if (probs[0].suggestion or "").rsplit(".", 1)[-1].lower() == tok.text.lower():
            flagged += 1
    assert typos >= 100 and flagged / typos >= 0.97, (flagged, typos)


def test_close_local_table_beats_same_name_in_another_schema():
    info = SchemaInfo({"a.courses": ("a", "courses", ["id"]), "b.course": ("b", "course", ["id"])})
    (p,) = check("SELECT id FROM course", info, "a")
    assert p.suggestion == "courses" and "b.course" in p.message
    (p,) = check("SELECT id FROM course", info, "main")
    assert p.suggestion == "b.course" and "not in the search path" in p.message


def _rank_by_scoring_all(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """check.rank's definition: score every candidate (the code before the vectorised distances)."""
    import difflib

    from lakeql.context.check import dl_distance

    low, scored = name.lower(), []
    for c in dict.fromkeys(c for c in candidates if c):
        d, sim = dl_distance(low, c.lower()), difflib.SequenceMatcher(None, low, c.lower()).ratio()
        if d <= max(2, len(low) // 3) or sim >= 0.6:
            scored.append((d, -sim, c))
    return [c for _, _, c in sorted(scored)[:n]]


def test_vectorised_distances_and_rank_equal_scoring_every_candidate() -> None:
    """dl_distances = dl_distance per candidate, and rank = scoring all: random strings over a small
    alphabet (transpositions, non-ASCII, empty strings, mixed case) and names of many lengths (blocks)."""
    import random

    from lakeql.context.check import dl_distance, dl_distances, rank

    rnd = random.Random(0)
    alpha = "abcé_.xyAB"

    def word(hi: int) -> str:
        return "".join(rnd.choice(alpha) for _ in range(rnd.randint(0, hi)))

    for _ in range(1500):
        a, bs = word(8), [word(9) for _ in range(rnd.randint(1, 6))]
        assert list(dl_distances(a, bs)) == [dl_distance(a, b) for b in bs], (a, bs)
        assert rank(a, bs, 2) == _rank_by_scoring_all(a, bs, 2), (a, bs)
    many = [word(40) for _ in range(1500)]  # several length blocks of 512
    assert list(dl_distances("ab_cé.x", many)) == [dl_distance("ab_cé.x", b) for b in many]
    names = [f"{d}.{t}" for d in ("sales", "salez", "f538_fifa", "nyc_flights") for t in
             ("orders", "order_items", "flights_2013", "fifa_countries_audience", "ordres")]
    for q in ("sales.ordrs", "salse.orders", "nyc_flight.flights_2013", "fifa", "zzz", "", "SALES.ORDERS"):
        assert rank(q, names) == _rank_by_scoring_all(q, names), q
