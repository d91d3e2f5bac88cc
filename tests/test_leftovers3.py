"""Defects noticed and left in earlier sessions (benchmarks/results/leftovers3.md): values an Arrow copy
or an Arrow result does not keep (UHUGEINT, BIT[], UNION, ARRAY of TIMESTAMPTZ), ..."""

from __future__ import annotations

import io
import json

import duckdb
import pytest

# (type as DuckDB names it, a value of it): columns a profile could copy to Arrow
ROUND_TRIP = [
    ("UHUGEINT", "340282366920938463463374607431768211455::UHUGEINT"),
    ("HUGEINT", "(-170141183460469231731687303715884105728)::HUGEINT"),
    ("BIT", "'0101'::BIT"),
    ("BIT[]", "['0101'::BIT, NULL, '1'::BIT]"),
    ("BIT[2]", "['0101'::BIT, '1'::BIT]::BIT[2]"),
    ("UHUGEINT[]", "[340282366920938463463374607431768211455::UHUGEINT]"),
    (
        "STRUCT(b BIT[], u UHUGEINT)",
        "{'b': ['01'::BIT], 'u': 340282366920938463463374607431768211455::UHUGEINT}",
    ),
    (
        "UNION(n UHUGEINT, t VARCHAR)",
        "union_value(n := 340282366920938463463374607431768211455::UHUGEINT)::UNION(n UHUGEINT, t VARCHAR)",
    ),
    (
        "UNION(n TIME WITH TIME ZONE, t VARCHAR)",
        "union_value(n := '12:00:00+02'::TIMETZ)::UNION(n TIMETZ, t VARCHAR)",
    ),
    ("TIME WITH TIME ZONE[2]", "['12:00:00+02'::TIMETZ, '01:02:03-05:30'::TIMETZ]::TIMETZ[2]"),
    ("MAP(VARCHAR, TIME WITH TIME ZONE)", "MAP {'a': '12:00:00+02'::TIMETZ}"),
    ("BIGNUM", "'123456789012345678901234567890123456789012345678901234567890'::VARINT"),
    ("UNION(n INTEGER, t VARCHAR)", "union_value(t := 'x')::UNION(n INTEGER, t VARCHAR)"),
    ("DECIMAL(38,9)", "12345678901234567890123456789.123456789::DECIMAL(38,9)"),
    ("BIGINT", "9223372036854775807::BIGINT"),
    ("VARCHAR", "'x'"),
    ("TIMESTAMP WITH TIME ZONE", "'2024-01-01 00:00:00+05'::TIMESTAMPTZ"),
    ("INTERVAL", "INTERVAL '1 month 2 days 3 microseconds'"),
]


def _arrow_round_trip_exact(expr: str) -> bool:
    """Whether DuckDB reads its default Arrow export of ``expr`` back as the same value (VARCHAR text)."""
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE t AS SELECT {expr} AS v").fetchall()
        want = con.execute("SELECT v::VARCHAR FROM t").fetchall()
        copy = con.sql("SELECT * FROM t").to_arrow_table()
        con.register("a", copy)
        return con.execute("SELECT v::VARCHAR FROM a").fetchall() == want
    except duckdb.Error:  # a 39-digit HUGEINT fails the copy (DECIMAL(38,0))
        return False
    finally:
        con.close()


def test_arrow_copy_exact_is_true_only_for_types_an_arrow_copy_keeps():
    """``profile.arrow_copy_exact`` said a UHUGEINT (read back as -1), a BIT[] (BLOB[]), a 39-digit HUGEINT
    (the copy fails) and a UNION/ARRAY holding such were safe to copy to Arrow."""
    from lakeql.profile import arrow_copy_exact

    wrong = []
    for typ, expr in ROUND_TRIP:
        con = duckdb.connect()
        assert con.execute(f"SELECT typeof({expr})").fetchall()[0][0] == typ, expr
        con.close()
        if arrow_copy_exact([("v", typ)]) and not _arrow_round_trip_exact(expr):
            wrong.append(typ)
    assert wrong == []
    # the common types are still copied (one read of the files, not one per statistic)
    for typ in ("BIGINT", "VARCHAR", "DOUBLE", "DATE", "TIMESTAMP WITH TIME ZONE", "DECIMAL(38,9)", "BIGNUM"):
        assert arrow_copy_exact([("habitat", typ), ("v", typ)]), typ


def _render(sql: str, mode: str) -> str:
    from lakeql.render import keep_arrow_exact, print_result

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'Asia/Kolkata'").fetchall()
        keep_arrow_exact(con)  # as `lakeql sql`, the shell and MCP `query` have it
        out = io.StringIO()
        print_result(con.execute(sql), mode, out)
        return out.getvalue()
    finally:
        con.close()


U = "340282366920938463463374607431768211455"
NESTED = [  # (a value, its JSON as `lakeql sql --format json` shows it)
    (f"union_value(n := {U}::UHUGEINT)::UNION(n UHUGEINT, t VARCHAR)", int(U)),
    ("union_value(n := '12:00:00+02'::TIMETZ)::UNION(n TIMETZ, t VARCHAR)", "12:00:00+02:00"),
    ("union_value(n := '011'::BIT)::UNION(n BIT, t VARCHAR)", "011"),
    ("union_value(n := INTERVAL 1 MONTH)::UNION(n INTERVAL, t VARCHAR)", "P1M"),
    ("['0101'::BIT, '1'::BIT]::BIT[2]", ["0101", "1"]),
    ("['12:00:00+02'::TIMETZ, '01:02:03-05:30'::TIMETZ]::TIMETZ[2]", ["12:00:00+02:00", "01:02:03-05:30"]),
    ("MAP {'a': '12:00:00+02'::TIMETZ}", {"a": "12:00:00+02:00"}),
    (f"[{U}::UHUGEINT]", [int(U)]),
    ("['2024-01-01 00:00:00+05'::TIMESTAMPTZ]::TIMESTAMPTZ[1]", ["2024-01-01T00:30:00+05:30"]),
]


@pytest.mark.parametrize("expr,want", NESTED, ids=[str(i) for i in range(len(NESTED))])
def test_values_beside_an_interval_print_exactly_in_every_front_end(expr, want):
    """A result with an INTERVAL is read as Arrow (``render.result_rows``). There a UNION inside a STRUCT
    or LIST gave its member's raw bytes (``\\xdfc4...`` for a TIMETZ, ``\\x05fb`` for a BIT) or pyarrow's
    ``[1, 0, 0]`` for an INTERVAL, and an ARRAY of TIMESTAMPTZ column showed UTC, not the session's zone."""
    as_column = json.loads(_render(f"SELECT {expr} AS v, INTERVAL 1 DAY AS i", "json"))
    assert as_column == [{"v": want, "i": "P1D"}]
    in_struct = json.loads(_render(f"SELECT {{'x': {expr}, 'i': INTERVAL 1 DAY}} AS v", "json"))
    assert in_struct == [{"v": {"x": want, "i": "P1D"}}]
    in_list = json.loads(_render(f"SELECT [{{'x': {expr}, 'i': INTERVAL 1 DAY}}, NULL] AS v", "json"))
    assert in_list == [{"v": [{"x": want, "i": "P1D"}, None]}]
    # the same value without an INTERVAL (DuckDB's own Python values) prints the same
    if "INTERVAL" not in expr:
        assert json.loads(_render(f"SELECT {expr} AS v", "json")) == [{"v": want}]
    # box: an ARRAY is shown as DuckDB's own fetch shows it (a tuple), inside a STRUCT as well
    box = _render(f"SELECT {{'x': {expr}, 'i': INTERVAL 1 DAY}} AS v", "box")
    plain = _render(f"SELECT {{'x': {expr}, 'i': '1 day'}} AS v", "box")
    assert box.splitlines()[4].replace("1 day", "'1 day'").split() == plain.splitlines()[4].split()
