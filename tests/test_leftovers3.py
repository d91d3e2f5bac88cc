"""Defects noticed and left in earlier sessions (benchmarks/results/leftovers3.md): values an Arrow copy
or an Arrow result does not keep (UHUGEINT, BIT[], UNION, ARRAY of TIMESTAMPTZ), ..."""

from __future__ import annotations

import io
import json
from pathlib import Path

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


def _drifted_weather_lake(root):
    """Two stations of us-weather-history as one table of two files: ``day`` a TIMESTAMP in one file and
    a TIMESTAMPTZ in the other (the view reads TIMESTAMPTZ), ``note`` a VARCHAR in one and a TIMESTAMPTZ
    in the other (the view reads VARCHAR). Noon of each day, 365 rows per file."""
    from testutil import shared_data

    src = shared_data("fivethirtyeight", "us-weather-history")
    out = root / "lake" / "w" / "obs"
    out.mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    noon = "date::TIMESTAMP + INTERVAL 12 HOUR"
    for name, station, typ in (("a", "KCLT", "TIMESTAMP"), ("b", "KSEA", "TIMESTAMPTZ")):
        note = f"strftime({noon}, '%Y-%m-%d %H:%M:%S')" if typ == "TIMESTAMP" else f"({noon})::TIMESTAMPTZ"
        con.execute(
            f"COPY (SELECT ? AS station, ({noon})::{typ} AS day, {note} AS note, actual_mean_temp "
            f"FROM read_csv(?)) TO '{out / name}.parquet' (FORMAT parquet)",
            [station, str(src / f"{station}.csv")],
        ).fetchall()
    con.close()
    return root / "lake"


_PROBE = """
import json, sys, lakeql
con = lakeql.connect(sys.argv[1], index_dir=sys.argv[2])
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
out = {p: con.execute("SELECT ngram_count('w.obs', 'note', ?)", [p]).fetchall()[0][0]
       for p in ("12:00:00+00", "17:30:00+05:30", "2014-07-01 12:00:00")}
out["semantic"] = [r[0] for r in con.execute(
    "SELECT note FROM semantic_search('w.obs', 'note', '2014-07-01 12:00:00+00', k := 3)").fetchall()]
print(json.dumps(out))
"""


def test_a_drifted_timestamptz_column_is_indexed_the_same_in_every_build_time_zone(tmp_path):
    """A TIMESTAMPTZ file of a VARCHAR column was cast to text in the build machine's zone: built with
    TZ=Asia/Kolkata the n-gram index held '2014-07-01 17:30:00+05:30' where a TZ=UTC build held
    '... 12:00:00+00' (ngram_count('12:00:00+00') 0 vs 365), and the embedded texts differed. Now every
    build connection is in UTC (``buildfs.BUILD_TIME_ZONE``): the same index whatever ``TZ`` says."""
    import os
    import subprocess
    import sys

    import lakeql

    lake = _drifted_weather_lake(tmp_path)
    here = str(Path(lakeql.__file__).resolve().parent.parent)  # this tree's lakeql in the subprocesses
    got = {}
    for zone in ("UTC", "Asia/Kolkata"):
        idx = tmp_path / f"idx-{zone.replace('/', '-')}"
        env = {**os.environ, "TZ": zone, "PYTHONPATH": here}
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "lakeql.cli",
                "index",
                str(lake),
                "--index-dir",
                str(idx),
                "-q",
                "--ngram",
                "w.obs.note",
                "--embed",
                "w.obs.note",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert build.returncode == 0, build.stderr
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, str(lake), str(idx)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**env, "TZ": "UTC"},
        )
        assert probe.returncode == 0, probe.stderr
        got[zone] = json.loads(probe.stdout.strip().splitlines()[-1])
        schema = (idx / "schemas" / "w" / "obs.yaml").read_text()
        got[zone]["schema"] = schema
    assert got["UTC"] == got["Asia/Kolkata"]
    # the UTC text, as a session in UTC sees the view
    assert got["UTC"]["12:00:00+00"] == 365 and got["UTC"]["17:30:00+05:30"] == 0
    assert got["UTC"]["2014-07-01 12:00:00"] == 2
    assert got["UTC"]["semantic"][0] == "2014-07-01 12:00:00+00"


def test_mac_roman_csv_is_told_from_windows_1252_by_its_letters(tmp_path):
    """A Mac Roman CSV was read as Windows-1252 ('Chlo\\x91 Sevigny' as 'Chlo‘ Sevigny'). Now the letters
    decide (``csvenc.mac_roman_evidence``): the UTF-8 files of fivethirtyeight with non-ASCII text, saved
    as Windows-1252 and as Mac Roman, are never read as Mac Roman when Windows-1252, and mostly detected
    when Mac Roman (the rest hold too few letters to tell: read as Windows-1252, as before)."""
    from testutil import shared_data

    from lakeql import csvenc
    from lakeql.catalog import profile_table
    from lakeql.lake import discover

    got: dict[tuple[str, str | None], int] = {}
    for p in sorted(shared_data("fivethirtyeight").rglob("*.csv")):
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not any(ord(c) > 127 for c in text):
            continue
        for enc in ("cp1252", "mac_roman"):
            data = text.encode(enc, errors="replace")
            if not any(b >= 0x80 for b in data) or data.count(b"?") > text.count("?"):
                continue  # nothing to tell, or characters the encoding lacks
            label = csvenc.detect(lambda data=data: io.BytesIO(data))
            got[(enc, label)] = got.get((enc, label), 0) + 1
    assert got.get(("cp1252", "mac_roman"), 0) == 0, got  # Windows-1252 is never taken for Mac Roman
    assert got.get(("mac_roman", "mac_roman"), 0) >= 10, got
    assert got.get(("cp1252", "cp1252"), 0) >= 10, got

    # a real Mac Roman file of the lake, end to end: the table holds 'Chloë Sevigny'
    lake = tmp_path / "lake"
    (lake / "tv").mkdir(parents=True)
    src = shared_data("fivethirtyeight", "mad-men", "performer-scores.csv")
    (lake / "tv" / "performers.csv").write_bytes(src.read_bytes())
    table = discover(lake).tables["tv.performers"]
    kept, _cols, _n, _per_file, problems = profile_table(table, None, [tmp_path / "copies"])
    assert not problems, problems
    assert kept.decoded["tv/performers.csv"][0] == "mac_roman"
    con = duckdb.connect()
    names = {r[0] for r in con.execute(f"SELECT Performer FROM {kept.scan_sql()}").fetchall()}
    assert "Chloë Sevigny" in names and "Chlo‘ Sevigny" not in names
