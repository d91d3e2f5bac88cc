"""Faults found by the trial8 pass over new real lakes (benchmarks/results/trial8.md): Parquet types whose
Arrow mapping differs from DuckDB's Parquet reader, nanosecond timestamps as pandas writes them."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql


@pytest.fixture(scope="module")
def typed_lake(tmp_path_factory):
    """One table per footer shape: FLOAT16 and nanosecond values (pyarrow), INTERVAL (DuckDB, also nested),
    INT96 timestamps (Spark/Impala's legacy encoding)."""
    root = tmp_path_factory.mktemp("typed_lake")
    (root / "t").mkdir()
    pq.write_table(
        pa.table(
            {
                "half": pa.array(np.array([1.5, 2.5, 3.5], np.float16)),
                "ts_ns": pa.array([1, 2, 1_700_000_000_123_456_789], pa.timestamp("ns")),
                "t_ns": pa.array([1, 2, 3], pa.time64("ns")),
                "k": ["a", "b", "c"],
            }
        ),
        root / "t" / "halfs.parquet",
    )
    pq.write_table(
        pa.table({"ts": pa.array([1, 2, 3], pa.timestamp("ns")), "k": ["a", "b", "c"]}),
        root / "t" / "legacy.parquet",
        use_deprecated_int96_timestamps=True,
    )
    out = root / "t" / "intervals.parquet"
    duckdb.sql(f"""COPY (SELECT i, INTERVAL 1 MONTH * i + INTERVAL 2 DAY AS every, [INTERVAL 1 DAY] AS l_iv,
                   {{'a': INTERVAL 3 HOUR}} AS s_iv FROM range(3) r(i)) TO '{out}'""")
    idx = tmp_path_factory.mktemp("typed_idx")
    lakeql.index(root, index_dir=idx, progress=False)
    return root, idx


def test_catalog_types_are_the_views_types(typed_lake):
    """lakeql_columns(), check_sql and the schema files said BLOB for a Parquet INTERVAL column and
    TIMESTAMP_NS for an INT96 one (pyarrow's view of the footer); a FLOAT16 column made the whole table
    'unreadable' ('DuckDB cannot read its file: Unsupported Internal Arrow Type e') although DuckDB reads
    it. The catalog's types are now those of the views (DuckDB's Parquet reader)."""
    root, idx = typed_lake
    con = lakeql.connect(root, index_dir=idx)
    status = dict(con.execute("SELECT table_name, status FROM lakeql_tables()").fetchall())
    assert status == {"t.halfs": "ok", "t.legacy": "ok", "t.intervals": "ok"}
    for table in ("halfs", "legacy", "intervals"):
        cat = con.execute(
            "SELECT column_name, type FROM lakeql_columns() WHERE table_name = ? ORDER BY ordinal",
            [f"t.{table}"],
        ).fetchall()
        real = [(r[0], r[1]) for r in con.execute(f'DESCRIBE "t"."{table}"').fetchall()]
        assert cat == real
    assert ("every", "INTERVAL") in con.execute(
        "SELECT column_name, type FROM lakeql_columns() WHERE table_name = 't.intervals'"
    ).fetchall()
    assert con.execute("SELECT sum(half) FROM t.halfs").fetchone()[0] == 7.5


def test_nanosecond_footer_statistics_do_not_abort_the_build(tmp_path):
    """A nanosecond timestamp that is not a whole microsecond (pandas writes them: pd.Timestamp.now())
    has footer statistics pyarrow cannot turn into a datetime without pandas loaded: 'Nanosecond
    resolution temporal type ... is not safely convertible' aborted every 'lakeql index' of the lake (the
    discovery index reads numeric footer ranges). Run as the CLI runs (a process without pandas)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "lake" / "d").mkdir(parents=True)
    pq.write_table(
        pa.table({"ts": pa.array([1, 1_700_000_000_123_456_789], pa.timestamp("ns")), "k": ["a", "b"]}),
        tmp_path / "lake" / "d" / "events.parquet",
    )
    env = {**os.environ, "PYTHONPATH": str(Path(lakeql.__file__).parent.parent)}
    run = subprocess.run(
        [sys.executable, "-m", "lakeql", "index", str(tmp_path / "lake"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    con = lakeql.connect(tmp_path / "lake")
    assert con.execute("SELECT table_name FROM find_tables('events')").fetchall() == [("d.events",)]
    assert (
        con.execute("SELECT count(*) FROM d.events WHERE ts > TIMESTAMP_NS '2023-01-01'").fetchone()[0] == 1
    )


def test_nanosecond_values_are_shown_whole(typed_lake):
    """'lakeql sql', the shell and the MCP query tool showed TIMESTAMP_NS / TIME_NS values through
    Python's datetime, which drops the nanoseconds: 1, 2 and 3 ns past midnight all printed
    '1970-01-01 00:00:00' (distinct values shown equal). Now DuckDB's own text; ISO 8601 in JSON."""
    import io
    import json

    from lakeql.render import print_result

    root, idx = typed_lake
    con = lakeql.connect(root, index_dir=idx)
    sql = "SELECT ts_ns, t_ns, k FROM t.halfs ORDER BY k"
    out = io.StringIO()
    print_result(con.execute(sql), "csv", out)
    assert out.getvalue().splitlines() == [
        "ts_ns,t_ns,k",
        "1970-01-01 00:00:00.000000001,00:00:00.000000001,a",
        "1970-01-01 00:00:00.000000002,00:00:00.000000002,b",
        "2023-11-14 22:13:20.123456789,00:00:00.000000003,c",
    ]
    out = io.StringIO()
    print_result(con.execute(sql), "json", out)
    got = json.loads(out.getvalue())
    assert got[2] == {"ts_ns": "2023-11-14T22:13:20.123456789", "t_ns": "00:00:00.000000003", "k": "c"}
    assert con.execute(sql).fetchall()[0][2] == "a"  # DB-API results stay DuckDB's Python values


def test_schema_context_after_a_refresh_that_follows_a_query(tmp_path):
    """The first schema_context writes its embeddings cache into the schemas folder; the next 'lakeql
    index --refresh' recorded that cache's checksum in the manifest; after a table changed, the next
    schema_context re-embedded the changed file, rewrote the cache, and from then on every schema_context
    failed: 'the schemas index of the lake is damaged (schemas/.lakeql-embeddings.npz fails its checksum
    (damaged))' until the next refresh, which deleted it, and so on. A reader's cache is not the
    manifest's to vouch for."""
    import json

    from lakeql.context.retrieve import EMB
    from lakeql.store import READER_CACHES

    assert EMB in READER_CACHES
    lake = tmp_path / "lake"
    (lake / "geo").mkdir(parents=True)
    rates = lake / "geo" / "rates.parquet"
    pq.write_table(pa.table({"alpha_3": ["EUR", "USD"], "rate": [1.0, 1.08]}), rates)
    pq.write_table(
        pa.table({"alpha_2": ["FR", "US"], "name": ["France", "United States"]}),
        lake / "geo" / "countries.parquet",
    )
    sql = "SELECT count(*) FROM schema_context('exchange rate of the euro', k := 2, unit := 'table')"
    lakeql.index(lake, progress=False)
    assert lakeql.connect(lake).execute(sql).fetchone()[0] == 2  # writes the cache
    lakeql.index(lake, refresh=True, progress=False)  # a refresh with the cache there
    pq.write_table(pa.table({"alpha_3": ["EUR", "USD"], "rate": [1.0, 1.08], "day": ["d1", "d2"]}), rates)
    lakeql.index(lake, refresh=True, progress=False)
    for _ in range(2):  # the first call re-embeds the changed table's file and rewrites the cache
        assert lakeql.connect(lake).execute(sql).fetchone()[0] == 2
    row = lakeql.connect(lake).execute("SELECT * FROM lakeql_indexes() WHERE kind = 'schemas'").fetchall()
    assert len(row) == 1
    manifest = pq.read_table(lake / ".lakeql" / "indexes.parquet").to_pylist()
    (entry,) = [r for r in manifest if r["kind"] == "schemas"]
    assert EMB not in json.loads(entry["checksums"])


def test_mcp_list_domains_with_an_unsupported_file_and_a_spaced_domain(tmp_path):
    """list_domains failed on any lake holding a file lakeql cannot read as a table (its lakeql_tables()
    row has no domain): "unsupported operand type(s) for /: 'PosixPath' and 'NoneType'". And a domain
    whose schema folder is not its name ('stats models' -> 'stats_models-<hash>') had no schema file."""
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import LakeService

    lake = tmp_path / "lake"
    (lake / "stats models").mkdir(parents=True)
    (lake / "geo").mkdir()
    pq.write_table(
        pa.table({"year": [1959, 1960], "realgdp": [2710.349, 2778.801]}),
        lake / "stats models" / "macrodata.parquet",
    )
    pq.write_table(pa.table({"alpha_2": ["FR", "US"]}), lake / "geo" / "countries.parquet")
    (lake / "geo" / "data.bin").write_bytes(b"\x00\x01\x02")
    lakeql.index(lake, progress=False)
    service = LakeService(lake)
    try:
        got = service.list_domains()
        with pytest.raises(LakeqlError, match="only on columns with an embed index"):
            service.semantic_search("geo.countries", "alpha_2", "France")
    finally:
        service.close()
    lines = got.splitlines()
    assert lines[2].startswith("| geo | 1 | 2 | countries | geo/_DOMAIN.md |")
    assert lines[3].startswith("| stats models | 1 | 2 | macrodata | stats_models-")
    assert lines[3].endswith("/_DOMAIN.md |") and len(lines) == 4


def test_a_file_symlink_to_another_lake_file_is_not_read_twice(tmp_path):
    """A symlinked folder that leads back into the lake is not followed (no table is read twice), but a
    symlinked *file* was: 'dom/t/latest.parquet -> part-0.parquet' doubled table dom.t's rows silently,
    and 'dom/alias.parquet -> t/part-0.parquet' was a second table of the same rows. A link to a file the
    walk does not list under its own name (a hidden folder of versions) is that file's only name: kept."""
    import os

    lake = tmp_path / "lake"
    (lake / "dom" / "t").mkdir(parents=True)
    (lake / "dom" / ".versions").mkdir()
    pq.write_table(pa.table({"k": [1, 2, 3]}), lake / "dom" / "t" / "part-0.parquet")
    pq.write_table(pa.table({"k": [4]}), lake / "dom" / "t" / "part-1.parquet")
    os.symlink("part-0.parquet", lake / "dom" / "t" / "latest.parquet")
    os.symlink("t/part-0.parquet", lake / "dom" / "alias.parquet")
    pq.write_table(pa.table({"v": [7, 8]}), lake / "dom" / ".versions" / "v3.parquet")
    os.symlink(".versions/v3.parquet", lake / "dom" / "current.parquet")
    (tmp_path / "outside.parquet").write_bytes((lake / "dom" / ".versions" / "v3.parquet").read_bytes())
    os.symlink(tmp_path / "outside.parquet", lake / "dom" / "ext.parquet")
    lakeql.index(lake, progress=False)
    con = lakeql.connect(lake)
    got = dict(con.execute("SELECT table_name, row_count FROM lakeql_tables()").fetchall())
    assert got == {"dom.t": 4, "dom.current": 2, "dom.ext": 2}
    assert con.execute("SELECT sum(k) FROM dom.t").fetchone()[0] == 10


def test_check_sql_says_which_table_name_needs_quotes(tmp_path):
    """Schema files name a table 'iso.iso_3166-1' (a file iso_3166-1.json, a folder 'stats models'); an
    agent writing it unquoted got only DuckDB's 'syntax error at or near "-"'. check_sql now says which
    table it is and suggests the quoted name; quoted SQL stays clean."""
    lake = tmp_path / "lake"
    (lake / "iso").mkdir(parents=True)
    (lake / "stats models").mkdir()
    pq.write_table(pa.table({"alpha_2": ["FR", "US"]}), lake / "iso" / "iso_3166-1.parquet")
    pq.write_table(pa.table({"year": [1959, 1960]}), lake / "stats models" / "fertility.parquet")
    lakeql.index(lake, progress=False)
    con = lakeql.connect(lake)

    def check(sql):
        return con.execute("SELECT message, suggestion FROM check_sql(?)", [sql]).fetchall()

    for sql in ("SELECT alpha_2 FROM iso.iso_3166-1", "SELECT alpha_2 FROM iso_3166-1"):
        ((message, suggestion),) = check(sql)
        assert message.startswith("syntax error") and suggestion == '"iso"."iso_3166-1"'
    ((message, suggestion),) = check("SELECT count(*) FROM stats models.fertility")
    assert suggestion == '"stats models"."fertility"' and "must be quoted" in message
    assert check('SELECT alpha_2 FROM iso."iso_3166-1"') == []
    ((message, suggestion),) = check("SELEC 1")
    assert suggestion is None
    # running it: lakeql sql / the shell (error_text) and the MCP query tool say the same
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import LakeService
    from lakeql.sqlrun import error_text

    hint = 'iso.iso_3166-1 is a table whose name must be quoted in SQL: "iso"."iso_3166-1"'
    with pytest.raises(Exception) as info:
        con.execute("SELECT alpha_2 FROM iso.iso_3166-1")
    assert error_text(info.value, con).endswith("\nHint: " + hint)
    with pytest.raises(Exception) as info:
        con.execute("SELEC 1")
    assert "Hint" not in error_text(info.value, con)
    service = LakeService(lake)
    try:
        with pytest.raises(LakeqlError, match="must be quoted in SQL"):
            service.query("SELECT alpha_2 FROM iso.iso_3166-1")
    finally:
        service.close()
