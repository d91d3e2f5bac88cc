"""`lakeql sql` through `lakeql.cli.main` (and `run_sql`) on the sample lake: several statements, valid
JSON and NDJSON, empty input, full DuckDB errors, output not clipped when piped."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import uuid

import pytest

import lakeql
from lakeql.cli import main
from lakeql.demo import SAMPLE_LAKE
from lakeql.render import json_value
from lakeql.sqlrun import run_sql


def sql(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["sql", "--lake", str(SAMPLE_LAKE), *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_every_statement_prints_its_result(capsys) -> None:
    rc, out, err = sql(capsys, "--format", "csv", "SELECT 1 AS a; SELECT carrier FROM flights.airlines "
                                                  "WHERE carrier = 'AA'; SELECT 'x;y' AS s -- ; not a split")
    assert (rc, err) == (0, "")
    assert out == "a\n1\ncarrier\nAA\ns\nx;y\n"


def test_ddl_and_set_print_nothing(capsys) -> None:
    rc, out, _ = sql(capsys, "--format", "csv",
                     "SET threads = 1; CREATE TEMP TABLE t AS SELECT 7 AS x; INSERT INTO t VALUES (8); "
                     "SELECT sum(x) AS total FROM t")
    assert (rc, out) == (0, "total\n15\n")


def test_returning_and_describe_print_rows(capsys) -> None:
    rc, out, _ = sql(capsys, "--format", "csv",
                     "CREATE TEMP TABLE r (x INTEGER); INSERT INTO r VALUES (5) RETURNING x * 2 AS y; "
                     "SELECT column_name FROM (DESCRIBE flights.airlines)")
    assert (rc, out) == (0, "y\n10\ncolumn_name\ncarrier\nname\n")


def test_json_is_valid_with_nan_and_infinities(capsys) -> None:
    rc, out, _ = sql(capsys, "--format", "json",
                     "SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y, '-inf'::FLOAT AS z, 1.5 AS w, "
                     "[1.0, 'nan'::DOUBLE] AS l, {'k': 'nan'::DOUBLE} AS s")
    assert rc == 0
    assert "NaN" not in out and "Infinity" not in out
    assert json.loads(out) == [{"x": None, "y": None, "z": None, "w": 1.5, "l": [1.0, None],
                                "s": {"k": None}}]


def test_json_of_the_lake_and_of_several_results(capsys) -> None:
    rc, out, _ = sql(capsys, "--format", "json", "SELECT carrier, name FROM flights.airlines "
                                                 "ORDER BY carrier LIMIT 2; "
                                                 "SELECT count(*) AS n FROM python.modules")
    assert rc == 0
    first, second = out.splitlines()  # one valid JSON array per result, one per line
    assert json.loads(first) == [{"carrier": "9E", "name": "Endeavor Air Inc."},
                                 {"carrier": "AA", "name": "American Airlines Inc."}]
    assert json.loads(second)[0]["n"] > 100


def test_ndjson_one_object_per_row(capsys) -> None:
    rc, out, _ = sql(capsys, "--format", "ndjson",
                     "SELECT carrier, 'nan'::DOUBLE AS v FROM flights.airlines ORDER BY carrier LIMIT 3")
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["carrier"] for r in rows] == ["9E", "AA", "AS"]
    assert all(r["v"] is None for r in rows)


def test_json_serialises_dates_decimals_blobs(capsys) -> None:
    rc, out, _ = sql(capsys, "--format", "json",
                     "SELECT DATE '2013-01-01' AS d, TIMESTAMP '2013-01-01 05:15:00' AS ts, "
                     "TIME '05:15:00' AS t, 12.50::DECIMAL(10,2) AS dec, "
                     "123456789012345678.123::DECIMAL(38,3) AS big, '\\xAA\\x01'::BLOB AS b, "
                     "INTERVAL 90 MINUTE AS i, '00000000-0000-0000-0000-000000000001'::UUID AS u")
    assert rc == 0
    assert json.loads(out) == [{"d": "2013-01-01", "ts": "2013-01-01T05:15:00", "t": "05:15:00", "dec": 12.5,
                                "big": "123456789012345678.123", "b": "\\xaa01", "i": "PT1H30M",
                                "u": "00000000-0000-0000-0000-000000000001"}]


INTERVALS = ["1 month 2 days", "14 months", "-14 months", "-1 year 2 months", "0 seconds", "1 microsecond",
             "-1 microsecond", "100 hours", "1.5 seconds", "-3 days 4 hours", "1 day -1 hour",
             "2 years -3 days 00:00:01.000010", "1000000 hours 1 second"]


def parse_iso(text: str) -> tuple[int, int, int]:
    """(months, days, micros) of an ISO 8601 duration with signed parts (PostgreSQL's iso_8601 style)."""
    import re

    date, time = r"(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?", r"(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?"
    m = re.fullmatch(f"P{date}(?:T{time})?", text)
    assert m, text
    y, mo, d, h, mi, sec = (g or "0" for g in m.groups())
    micros = int(decimal.Decimal(sec) * 1_000_000)
    return int(y) * 12 + int(mo), int(d), (int(h) * 3600 + int(mi) * 60) * 1_000_000 + micros


def test_intervals_are_shown_as_duckdb_writes_them(capsys) -> None:
    """INTERVAL columns: DuckDB's own text in every text mode (DuckDB's Python values count a month as
    30 days: '1 month 2 days' came out as '32 days'), an exact ISO 8601 duration in JSON."""
    select = ", ".join(f"INTERVAL '{iv}' AS i{n}, CAST(INTERVAL '{iv}' AS VARCHAR) AS t{n}"
                       for n, iv in enumerate(INTERVALS))
    rc, out, _ = sql(capsys, "--format", "csv", f"SELECT {select}, 1.5::FLOAT AS f, 'x' AS s")
    assert rc == 0
    header, row = list(csv.reader(io.StringIO(out)))
    got = dict(zip(header, row, strict=True))
    for n in range(len(INTERVALS)):
        assert got[f"i{n}"] == got[f"t{n}"]  # DuckDB's CAST AS VARCHAR, in the same result
    assert (got["i0"], got["f"], got["s"]) == ("1 month 2 days", "1.5", "x")
    for mode, text in (("table", "1 month 2 days"), ("ndjson", '"P1M2D"')):
        rc, out, _ = sql(capsys, "--format", mode, "SELECT INTERVAL '1 month 2 days' AS i, NULL::INTERVAL n")
        assert rc == 0 and text in out and "32" not in out, (mode, out)
    nested = ("SELECT [INTERVAL 1 MONTH, NULL] AS l, {'a': INTERVAL '14 months 3 days', 'b': 'x'} AS st, "
              "MAP {'k': INTERVAL '-1 day'} AS mp, MAP {'k': 1} AS m2")
    rc, out, _ = sql(capsys, "--format", "json", nested)
    assert json.loads(out) == [{"l": ["P1M", None], "st": {"a": "P1Y2M3D", "b": "x"}, "mp": {"k": "P-1D"},
                                "m2": {"k": 1}}]
    rc, out, _ = sql(capsys, "--format", "csv", nested)
    cells = [json.loads(c) for c in list(csv.reader(io.StringIO(out)))[1]]  # nested values: JSON text
    assert cells == [["P1M", None], {"a": "P1Y2M3D", "b": "x"}, {"k": "P-1D"}, {"k": 1}]
    rc, out, _ = sql(capsys, "--format", "table", nested)
    assert "[1 month, None]" in out and "{'a': 1 year 2 months 3 days, 'b': 'x'}" in out
    rc, out, _ = sql(capsys, "--format", "json",
                     "SELECT " + ", ".join(f"INTERVAL '{iv}' AS i{n}" for n, iv in enumerate(INTERVALS)))
    row = json.loads(out)[0]
    con = lakeql.connect(SAMPLE_LAKE)
    try:
        for n, iv in enumerate(INTERVALS):  # the ISO text gives back DuckDB's months, days and micros
            exact = con.execute(
                f"SELECT datepart('year', i) * 12 + datepart('month', i), datepart('day', i), "
                f"datepart('microseconds', i) + 60000000 * (datepart('minute', i) + 60 * datepart('hour', i))"
                f" FROM (SELECT INTERVAL '{iv}' AS i)").fetchone()
            assert parse_iso(row[f"i{n}"]) == exact, (iv, row[f"i{n}"])
    finally:
        con.close()


@pytest.mark.parametrize("value, expected", [
    (math.nan, None), (math.inf, None), (decimal.Decimal("NaN"), None), (decimal.Decimal("0.1"), 0.1),
    (decimal.Decimal("1e40"), 1e40), (dt.date(2020, 2, 29), "2020-02-29"), (b"\x00\xff", "\\x00ff"),
    (dt.timedelta(days=-1), "-P1DT0S"), (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ({dt.date(2020, 1, 1): [math.nan]}, {"2020-01-01": [None]}), ({1: "a"}, {"1": "a"}),
])
def test_json_value(value, expected) -> None:
    assert json_value(value) == expected


@pytest.mark.parametrize("text", ["", "   \n", "-- only a comment", "/* block */", ";"])
def test_no_statement_is_a_clear_error(capsys, text: str) -> None:
    rc, out, err = sql(capsys, text)
    assert rc == 2 and out == ""
    assert err.strip() == "lakeql: error: no SQL statement to run (the text is empty or only comments)"


def test_query_from_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 41 + 1 AS n;\nSELECT 'b' AS s;\n"))
    rc, out, _ = sql(capsys, "--format", "csv", "-")
    assert (rc, out) == (0, "n\n42\ns\nb\n")


def test_wide_output_is_not_clipped_when_piped(capsys) -> None:
    rc, out, _ = sql(capsys, "SELECT repeat('x', 300) AS wide, module, docstring FROM python.modules "
                             "WHERE module = 'csv'")
    assert rc == 0
    assert "x" * 300 in out and "…" not in out
    docstring = lakeql.connect(SAMPLE_LAKE).execute(
        "SELECT docstring FROM python.modules WHERE module = 'csv'").fetchone()[0]
    assert docstring.replace("\n", "\\n") in out  # the whole cell, newlines escaped


def test_terminal_output_is_clipped() -> None:
    con = lakeql.connect(SAMPLE_LAKE)
    out = io.StringIO()
    assert run_sql(con, "SELECT repeat('x', 300) AS wide", "table", out, is_tty=True) == 0
    assert "x" * 300 not in out.getvalue() and "…" in out.getvalue()


def test_failing_statement_stops_with_duckdb_full_error(capsys) -> None:
    rc, out, err = sql(capsys, "--format", "csv", "SELECT 1 AS a; SELECT carier FROM flights.airlines; "
                                                  "SELECT 3 AS c")
    assert rc == 2
    assert out == "a\n1\n"  # what ran before the error is printed, nothing after
    lines = err.splitlines()
    assert lines[0] == 'lakeql: error: Binder Error: Referenced column "carier" not found in FROM clause!'
    assert 'Candidate bindings: "carrier"' in err
    assert "LINE 1: SELECT carier FROM flights.airlines;" in err and "^^^^^^" in err


def test_parse_error_is_shown_with_caret(capsys) -> None:
    rc, out, err = sql(capsys, "SELECT 1; SELEC 2")
    assert rc == 2 and out == ""  # nothing runs when the text does not parse
    assert 'syntax error at or near "SELEC"' in err and "LINE 1:" in err and "^" in err


def test_lakeql_error_stays_one_line(capsys) -> None:
    rc, _, err = sql(capsys, "SELECT lakeql_rows_view('flihgts')")
    assert rc == 2
    assert err.splitlines() == [
        "lakeql: error: unknown table 'flihgts' (did you mean flights.flights, flights.planes, "
        "flights.weather?)"]


def test_float_columns_print_as_single_precision(capsys) -> None:
    """A FLOAT prints as the shortest decimal of its float32 (as duckdb's CLI), not as the widened double."""
    rc, out, _ = sql(capsys, "--format", "csv", "SELECT 0.634::FLOAT AS f, 0.634::FLOAT::DOUBLE AS d, "
                                                 "16777217::FLOAT AS big, NULL::FLOAT AS n")
    assert rc == 0 and out.splitlines()[1] == "0.634,0.6340000033378601,16777216.0,"


@pytest.mark.parametrize("value", [0.634, 1e-40, 3.4e38, 1 / 3, 123456.789, -2.5e-7])
def test_float32_value_is_shortest_and_reads_back(value) -> None:
    import struct

    from lakeql.render import float32_value

    single = struct.unpack("f", struct.pack("f", value))[0]
    short = float32_value(single)
    assert struct.unpack("f", struct.pack("f", short))[0] == single
    assert len(repr(short)) <= len(repr(single))


def test_scalar_function_called_in_from_gets_a_hint(capsys) -> None:
    rc, _, err = sql(capsys, "SELECT * FROM lakeql_rows_view('flights.flights')")
    assert rc == 2
    assert "Table Function with name lakeql_rows_view does not exist" in err  # DuckDB's own text stays
    assert err.splitlines()[-1] == ("Hint: lakeql_rows_view is a scalar function: call it in the SELECT "
                                    "list, e.g. SELECT lakeql_rows_view(...) AS value")
    rc, _, err = sql(capsys, "SELECT * FROM no_such_function(1)")  # no hint for a name that is nothing
    assert rc == 2 and "Hint:" not in err


def test_control_characters_are_escaped(capsys) -> None:
    rc, out, _ = sql(capsys, "SELECT chr(27) || '[31mred' AS s")
    assert rc == 0 and "\x1b" not in out and "\\x1b[31mred" in out


@pytest.mark.parametrize("argv", [
    ["sql", str(SAMPLE_LAKE), "SELECT carrier FROM flights.airlines WHERE carrier = 'AA'"],
    ["sql", "--lake", str(SAMPLE_LAKE), "SELECT carrier FROM flights.airlines WHERE carrier = 'AA'"],
    ["sql", str(SAMPLE_LAKE), "--format", "csv", "SELECT carrier FROM flights.airlines WHERE carrier = 'AA'"],
    ["sql", str(SAMPLE_LAKE), "--lake", str(SAMPLE_LAKE), "SELECT carrier FROM flights.airlines "
                                                          "WHERE carrier = 'AA'"],
])
def test_the_lake_may_come_first_as_in_lakeql_index(capsys, argv) -> None:
    rc = main([*argv[:1], "--format", "csv", *argv[1:]] if "--format" not in argv else argv)
    assert (rc, capsys.readouterr().out) == (0, "carrier\nAA\n")


@pytest.mark.parametrize("argv, message", [
    (["sql", "LAKE", "SELECT", "1"], "takes [LAKE] QUERY, got 3 arguments"),
    (["sql", "one", "--lake", "two", "SELECT 1"], "two lakes given"),
])
def test_sql_argument_mistakes_are_one_clear_line(capsys, argv, message) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lakeql: error: ") and message in err


def test_interval_text_matches_duckdb_on_random_values() -> None:
    """result_rows' INTERVAL text equals DuckDB's CAST AS VARCHAR (2,000 random values, each part
    signed, time parts within Arrow's int64 nanoseconds), and other columns are DuckDB's Python values."""
    import random

    import duckdb

    from lakeql.render import result_rows

    rng = random.Random(7)
    big = 9_223_372_036_854_775  # the widest time part Arrow's int64 nanoseconds hold, in micros
    def part(*widths: int) -> int:
        w = rng.choice([0, *widths])
        return rng.randint(-w, w)

    vals = [(part(50, 2**31 - 1), part(40, 2**31 - 1), part(10**7, 10**12, big)) for _ in range(2000)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Kolkata'")
    rows = ", ".join(f"({m}, {d}, {u})" for m, d, u in vals)
    con.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES {rows}) v(m, d, u)")
    sql = ("SELECT iv, CAST(iv AS VARCHAR) AS txt, u::HUGEINT AS h, "
           "'00000000-0000-0000-0000-000000000001'::UUID AS uu, '1010'::BIT AS bt, "
           "TIMESTAMPTZ '2020-01-01 00:00:00+00' AS ts, MAP {'k': m} AS mp, [iv] AS li FROM "
           "(SELECT to_months(m::INTEGER) + to_days(d::INTEGER) + to_microseconds(u) AS iv, * FROM t) "
           "ORDER BY u")
    got = list(result_rows(con.execute(sql), size=300))
    # DuckDB's own Python conversion cannot even hold most of these (timedelta overflows): not asked
    plain = con.execute(f"SELECT * EXCLUDE (iv, li) FROM ({sql})").fetchall()
    assert len(got) == len(vals)
    assert [str(r[0]) for r in got] == [r[1] for r in got]
    assert [str(r[-1][0]) for r in got] == [r[1] for r in got]  # nested in a LIST as well
    assert [r[1:-1] for r in got] == plain  # the other columns as DuckDB's Python gives them


@pytest.fixture
def lake_with_unreadable_table(tmp_path):
    """A copy of the sample lake's airlines plus a truncated Parquet file: the catalog's 'error' table."""
    import shutil
    import warnings

    lake = tmp_path / "lake"
    (lake / "flights").mkdir(parents=True)
    shutil.copy(SAMPLE_LAKE / "flights" / "airlines.parquet", lake / "flights")
    (lake / "flights" / "broken.parquet").write_bytes((SAMPLE_LAKE / "flights" / "airlines.parquet")
                                                      .read_bytes()[:100])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, progress=False)
    return lake


def test_unreadable_table_is_named_with_its_reason_and_fix(capsys, lake_with_unreadable_table) -> None:
    """DuckDB only says 'Table with name broken does not exist! Did you mean ...': the table is in the
    lake (lakeql_tables() lists it as 'error'), so the error says so, why, and what to do."""
    lake = lake_with_unreadable_table
    for query in ("SELECT * FROM flights.broken", 'SELECT count(*) FROM "FLIGHTS"."Broken"'):
        rc = main(["sql", "--lake", str(lake), query])
        err = capsys.readouterr().err
        assert rc == 2
        assert "table 'flights.broken' is in the lake but none of its files could be read" in err, err
        assert "ArrowInvalid" in err and "fix or replace 'flights/broken.parquet'" in err
        assert "lakeql index LAKE --refresh" in err and "does not exist" not in err
        assert "LINE 1:" in err  # DuckDB's caret is kept
    rc = main(["sql", "--lake", str(lake), "SELECT * FROM flights.nothere"])  # a table that is not there
    err = capsys.readouterr().err
    assert rc == 2 and "Table with name nothere does not exist" in err and "in the lake" not in err


def test_table_left_out_at_connect_is_named(lake_with_unreadable_table) -> None:
    """A catalogued table without a view (its view could not be made when connecting) says so."""
    from lakeql.sqlrun import error_text

    con = lakeql.connect(lake_with_unreadable_table)
    con.execute("DROP VIEW flights.airlines")
    with pytest.raises(Exception) as err:
        con.execute("SELECT * FROM flights.airlines")
    text = error_text(err.value, con)
    assert text.startswith("table 'flights.airlines' is in the lake but its view could not be made"), text
    assert "--refresh" in text
    assert error_text(err.value) == text  # lakeql.connect() raised lakeql's error already (lakeql.dbapi)


def test_readable_table_of_the_same_name_is_not_blamed_on_an_unreadable_one(tmp_path) -> None:
    """DuckDB's 'Table with name t does not exist' names only the bare table: when another domain has a
    readable table of that name (the query left it unqualified or the name is ambiguous), DuckDB's own
    'Did you mean "d2.t"' is the fix, not "'d1.t' is unreadable"."""
    import shutil
    import warnings

    from lakeql.sqlrun import error_text

    lake = tmp_path / "lake"
    for d in ("d1", "d2", "d3"):
        (lake / d).mkdir(parents=True)
    (lake / "d1" / "t.parquet").write_bytes(b"PAR1 not a parquet file")
    shutil.copy(SAMPLE_LAKE / "flights" / "airlines.parquet", lake / "d2" / "t.parquet")
    shutil.copy(SAMPLE_LAKE / "flights" / "airlines.parquet", lake / "d3" / "u.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, progress=False)
        con = lakeql.connect(lake)
    with pytest.raises(Exception) as err:
        con.execute("SELECT * FROM t")
    text = error_text(err.value, con)
    assert "Table with name t does not exist" in text and "d2.t" in text, text
    assert "in the lake but" not in text, text
    with pytest.raises(Exception) as err:
        con.execute('SELECT * FROM "d3" . t')  # another domain, with no table t: not d1.t's problem
    text = error_text(err.value, con)
    assert "Table with name t does not exist" in text and "in the lake but" not in text, text
    with pytest.raises(Exception) as err:
        con.execute("SELECT * FROM d1.t")  # only the unreadable one is meant: said so
    assert "'d1.t' is in the lake but none of its files could be read" in error_text(err.value, con)


def test_missing_table_hint_does_not_load_the_whole_catalog(tmp_path) -> None:
    """The hint for 'Table with name X does not exist' looks up X only: it went through lakeql_tables(),
    which loads every table's catalog row and builds one row per table (on a 9,763-table lake 1.3 s for
    the first mistyped name of a connection, 0.3-0.4 s for each after; now ~5 ms)."""
    import shutil

    import duckdb

    from lakeql.connection import register
    from lakeql.sqlrun import error_text

    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", lake / "flights")  # 5 tables: views attached, no catalog
    lakeql.index(lake, progress=False)
    con = duckdb.connect()
    ctx = register(con, lake)
    assert ctx._catalog is None  # connecting did not load it
    for query in ("SELECT * FROM flights.airlinez", "SELECT * FROM airlines"):
        with pytest.raises(duckdb.Error) as err:
            con.execute(query)
        text = error_text(err.value, con)
        assert "does not exist" in text and "in the lake but" not in text, text
    assert ctx._catalog is None


def test_unreadable_table_found_in_the_stored_catalog(lake_with_unreadable_table) -> None:
    """Without the connection's catalog loaded, the hint finds the unreadable table in the stored
    catalog's problems (read filtered by the name)."""
    import duckdb

    from lakeql.connection import register
    from lakeql.sqlrun import error_text

    con = duckdb.connect()
    ctx = register(con, lake_with_unreadable_table)
    ctx._catalog = None
    with pytest.raises(duckdb.Error) as err:
        con.execute("SELECT * FROM Flights.BROKEN")
    assert "'flights.broken' is in the lake but none" in error_text(err.value, con)
    assert ctx._catalog is None


def test_clipped_emoji_sequences_fit_the_terminal() -> None:
    """A cell clipped for the terminal counts columns as the box pads them: a VS16 symbol ('❤\ufe0f')
    is two columns, a skin tone or a ZWJ-joined emoji none more. Counting each code point alone kept a
    row of 30 hearts whole (60 columns) in a 30-column terminal."""
    from lakeql.render import _clip, render_box, text_width

    cells = ["❤\ufe0f" * 30, "👍🏽" * 30, "👨\u200d👩\u200d👧" * 10, "a❤\ufe0f" * 20]
    cells += ["e\u0301" * 40, "東京" * 20]
    for cell in cells:
        for width in (2, 3, 9, 10):
            clipped = _clip(cell, width)
            assert clipped.endswith("…") and text_width(clipped) <= width, (cell, width, clipped)
            assert text_width(clipped) >= width - 2, (cell, width, clipped)  # not clipped early either
        out = io.StringIO()
        render_box(["c"], ["VARCHAR"], [[cell]], out, width=30)
        assert max(text_width(line) for line in out.getvalue().splitlines()) <= 30, out.getvalue()


def test_box_lines_line_up_with_wide_and_combining_characters() -> None:
    """CJK and fullwidth characters take two terminal columns, combining marks and ZWJ none: the box is
    padded (and, on a terminal, clipped) by those columns, not by code points, so its borders line up."""
    from lakeql.render import render_box, text_width

    widths = [text_width(t) for t in ("表格", "e\u0301te\u0301", "ab", "ｆｕｌｌ", "a\u200db")]
    assert widths == [4, 3, 2, 8, 2]
    # emoji as terminals draw them: a ZWJ family, a flag with VS16, a skin tone, a VS16 heart: 2 each
    emoji = ("👨\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "👍🏽", "❤\ufe0f")
    assert [text_width(t) for t in emoji] == [2, 2, 2, 2]
    rows = [("odd types.表格", "東京都は日本の首都です。" * 6),
            ("sk learn.linnerud", "e\u0301te\u0301 cafe\u0301"), ("عربي", "שלום עולם"), ("ｆｕｌｌ", "x"),
            ("family " + " ".join(emoji), "👍🏽")]
    for width in (None, 60):
        out = io.StringIO()
        render_box(["table_name", "名前"], ["VARCHAR", "VARCHAR"], rows, out, width=width)
        lines = out.getvalue().splitlines()[:-1]  # the '4 rows' footer is not part of the box
        assert len({text_width(line) for line in lines}) == 1, "\n".join(lines)
        if width is not None:
            assert text_width(lines[0]) <= width and "…" in out.getvalue()
        else:
            assert "東京都は日本の首都です。" * 6 in out.getvalue()
    out = io.StringIO()
    con = lakeql.connect()
    assert run_sql(con, "SELECT 1 AS \"表格\", 22 AS ab", "line", out, is_tty=False) == 0
    assert out.getvalue().splitlines() == ["表格 = 1", "  ab = 22"]
