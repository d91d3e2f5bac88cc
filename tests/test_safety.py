"""lakeql.safety: hostile filters and statements are refused; legitimate filters keep their rows.

The three attacks measured in issue 11 (a filter that wrote a file with COPY, one that read /etc/passwd
through read_text inside a CAST error, one that ran ATTACH + CREATE TABLE) run against a locked-down
connection and must fail without writing or reading anything.
"""

from __future__ import annotations

import duckdb
import pytest
from indexed_sample import indexed_sample

from lakeql.safety import (
    UnsafeSqlError,
    file_functions,
    is_read_only_query,
    parse_filter,
    require_read_only,
)

COLUMNS = ["module", "package", "path", "lines", "docstring"]

GOOD_FILTERS = [
    # filter, its re-rendering (identifiers quoted, from the AST)
    ("lines > 500", '"lines" > 500'),
    ("module LIKE 'email%'", "\"module\" LIKE 'email%'"),
    ("lower(module) IN ('csv','json')", "LOWER(\"module\") IN ('csv', 'json')"),
    ("LINES BETWEEN 10 AND 20 AND docstring IS NOT NULL",
     '"lines" BETWEEN 10 AND 20 AND NOT "docstring" IS NULL'),
    ("length(docstring) > 100 OR module ILIKE '%xml%'",
     "LENGTH(\"docstring\") > 100 OR \"module\" ILIKE '%xml%'"),
    ("CAST(lines AS DOUBLE) / 2 >= 100", 'CAST("lines" AS DOUBLE) / 2 >= 100'),
    ("coalesce(package, module) = 'json'", "COALESCE(\"package\", \"module\") = 'json'"),
    ("starts_with(module, 'xml') -- a comment", "STARTS_WITH(\"module\", 'xml')"),
    ("LINES", '"lines"'),  # a bare column is the whole expression: still spelled as the table has it
]


@pytest.mark.parametrize(("text", "rendered"), GOOD_FILTERS)
def test_legitimate_filters_are_reparsed_with_quoted_identifiers(text, rendered):
    assert parse_filter(text, COLUMNS) == rendered


HOSTILE_FILTERS = [
    # filter, fragment of the refusal
    ("1=1); COPY (SELECT 42) TO 'out.csv'; SELECT 0 AS __rowid WHERE (1=1", "one SQL expression"),
    ("CAST((SELECT content FROM read_text('/etc/passwd')) AS INT) > 0", "subquery"),
    ("1=1); ATTACH 'x.db' AS x; CREATE TABLE x.t AS SELECT 1; SELECT 0 AS __rowid WHERE (1=1",
     "one SQL expression"),
    ("read_text('/etc/passwd') IS NOT NULL", "read_text() is not allowed"),
    ("lines IN (SELECT 1)", "subquery"),
    ("EXISTS (SELECT 1)", "subquery"),
    ("getenv('HOME') = ''", "getenv() is not allowed"),
    ("embed(docstring) IS NULL", "embed() is not allowed"),
    ("semantic_search_impl('a', 'b', 'c', 1, 1, NULL) IS NULL", "not allowed"),
    ("current_setting('allowed_directories') = ''", "not allowed"),
    ("lines = ?", "Placeholder is not allowed"),
    ("lines = $1", "not allowed"),
    ("t.lines > 1", "by their name only"),
    ("linez > 1", "unknown column 'linez' (did you mean lines"),
    ("lines::VARCHAR[] IS NULL", "CAST to"),
    ("module -> '$.a' = 1", "not allowed"),
    ("1=1; DROP TABLE python.modules", "one SQL expression"),
    ("(" * 3000 + "1" + ")" * 3000, "nests parentheses 3000 deep"),
    ("lines>1 AND " * 700 + "true", "nested too deeply"),
    ("x" * 20_000, "at most 10,000"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE_FILTERS)
def test_hostile_filters_are_refused(text, fragment):
    with pytest.raises(UnsafeSqlError) as err:
        parse_filter(text, COLUMNS)
    assert fragment in str(err.value)


STATEMENTS = [
    # sql, read-only?
    ("SELECT 1", True),
    ("  -- a comment\nWITH t AS (SELECT 1 AS a) SELECT a FROM t", True),
    ("FROM python.modules", True),
    ("DESCRIBE SELECT 1", True),
    ("(SELECT 1) UNION ALL (SELECT 2)", True),
    ("EXPLAIN SELECT 1", True),
    ("EXPLAIN ANALYZE SELECT 1", False),
    ("EXPLAIN COPY (SELECT 1) TO 'x.csv'", False),
    ("COPY (SELECT 1) TO 'x.csv'", False),
    ("ATTACH 'x.db' AS x", False),
    ("CREATE TABLE t AS SELECT 1", False),
    ("INSERT INTO t VALUES (1)", False),
    ("SET enable_external_access = true", False),
    ("PRAGMA version", False),
    ("CALL pragma_version()", False),
    ("INSTALL httpfs", False),
    ("SELECT 1; DROP TABLE t", False),
    ("SELECT 1; SELECT 2", False),
    ("", False),
    ("SELEC 1", False),
]


@pytest.mark.parametrize(("sql", "ok"), STATEMENTS)
def test_read_only_by_duckdb_statement_type(sql, ok):
    con = duckdb.connect()
    assert is_read_only_query(con, sql) is ok
    if not ok:
        with pytest.raises(UnsafeSqlError):
            require_read_only(con, sql)


@pytest.mark.parametrize(("sql", "n"), [
    ("SELECT * FROM read_csv('/etc/passwd')", 1),
    ("SELECT * FROM read_parquet(['a.parquet', 'b.parquet'])", 1),
    ("SELECT * FROM '/etc/data.csv'", 1),
    ("SELECT content FROM read_text('/etc/passwd') UNION ALL SELECT * FROM glob('*')", 2),
    ("SELECT * FROM python.modules WHERE module = 'read_csv'", 0),
])
def test_file_readers_are_found(sql, n):
    import sqlglot

    assert len(file_functions(sqlglot.parse_one(sql, read="duckdb"))) == n


# ------------------------------------------------------------------ on a real, locked-down connection
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return indexed_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def locked(sample):
    """A lakeql connection restricted the way issue 11 measured it: only the lake and index folders."""
    import lakeql

    lake, idx = sample
    con = duckdb.connect()
    lakeql.register(con, lake, index_dir=idx)
    con.execute(f"SET allowed_directories = ['{lake}/', '{idx}/']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    yield con
    con.close()


SEARCH = "SELECT module FROM semantic_search('python.modules', 'docstring', ?, k := ?, filter := ?)"


def test_the_three_measured_attacks_fail_and_touch_nothing(locked, tmp_path):
    out, db = tmp_path / "pwned.csv", tmp_path / "x.db"
    attacks = [
        f"1=1); COPY (SELECT 42) TO '{out}'; SELECT 0 AS __rowid WHERE (1=1",
        "CAST((SELECT content FROM read_text('/etc/passwd')) AS INT) > 0",
        f"1=1); ATTACH '{db}' AS x; CREATE TABLE x.t AS SELECT 1; SELECT 0 AS __rowid WHERE (1=1",
    ]
    for attack in attacks:
        with pytest.raises(duckdb.Error) as err:
            locked.execute(SEARCH, ["send an email", 3, attack]).fetchall()
        assert "root:" not in str(err.value)  # nothing of /etc/passwd comes back in the message
    assert not out.exists() and not db.exists() and list(tmp_path.iterdir()) == []
    attached = locked.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'x'").fetchone()
    assert attached[0] == 0


def test_attacks_fail_on_an_unrestricted_connection_too(sample, tmp_path):
    """The filter guard does not depend on the caller's settings: it refuses before anything runs."""
    import lakeql

    lake, idx = sample
    con = lakeql.connect(lake, index_dir=idx)
    out = tmp_path / "pwned.csv"
    with pytest.raises(duckdb.Error, match="one SQL expression"):
        con.execute(SEARCH, ["email", 3, f"1=1); COPY (SELECT 42) TO '{out}'; SELECT 0 WHERE (1=1"])
    with pytest.raises(duckdb.Error, match="not allowed"):
        con.execute(SEARCH, ["email", 3, "length(read_text('/etc/passwd')::VARCHAR) > 0"])
    assert not out.exists()
    con.close()


@pytest.mark.parametrize("flt", ["lines > 500", "module LIKE 'email%'", "lower(module) IN ('csv','json')",
                                 "lines BETWEEN 100 AND 200 AND package <> 'encodings'"])
def test_legitimate_filters_give_the_rows_the_predicate_selects(locked, flt):
    """With k above the table size the search returns every embedded row the predicate selects."""
    got = {r[0] for r in locked.execute(SEARCH, ["parse a file", 1000, flt]).fetchall()}
    want = {r[0] for r in locked.execute(
        f"SELECT module FROM python.modules WHERE ({flt}) AND docstring IS NOT NULL "
        "AND regexp_matches(docstring, '\\S')").fetchall()}
    assert got == want and len(got) >= 2


def test_filter_runs_with_the_callers_restrictions(locked):
    """The filter is evaluated on a cursor of the caller's connection: the locked settings hold there."""
    assert locked.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is False
    top = locked.execute(SEARCH, ["electronic mail messages", 3, "module LIKE 'email%'"]).fetchall()
    assert top and all(m.startswith("email") for (m,) in top)
