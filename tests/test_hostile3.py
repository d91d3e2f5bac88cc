"""Hostile lake shapes found by an outside-judge pass (benchmarks/results/hostile3.md).

Each case: a small lake of one odd shape, indexed with the real CLI, then the answer is checked against a
brute-force DuckDB read of the files, or the error is checked to be one clear line naming the fix.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.cli import main


def index(lake: Path, *args: str) -> None:
    assert main(["index", str(lake), "--quiet", *args]) == 0


def test_directory_symlink_loop_is_not_followed(tmp_path):
    """A symlink to an ancestor folder made the walk descend ~40 times: a 1-row table counted 41 rows."""
    lake = tmp_path / "lake"
    (lake / "dom" / "t").mkdir(parents=True)
    pq.write_table(pa.table({"q": [1]}), lake / "dom" / "t" / "part.parquet")
    os.symlink("..", lake / "dom" / "t" / "up")  # dom/t/up -> dom
    os.symlink(".", lake / "dom" / "self")  # dom/self -> dom
    (lake / "other").mkdir()
    pq.write_table(pa.table({"v": [1, 2]}), lake / "other" / "v.parquet")
    os.symlink("../other", lake / "dom" / "alias")  # a folder of the lake: listed as itself only
    (tmp_path / "outside").mkdir()
    pq.write_table(pa.table({"v": [1, 2]}), tmp_path / "outside" / "v.parquet")
    os.symlink(tmp_path / "outside", lake / "dom" / "link")  # a folder outside the lake is followed
    os.symlink(tmp_path / "outside", lake / "dom" / "link2")  # ... once
    for a, b in (("a", "b"), ("b", "a")):  # two folders linking to each other
        (lake / "x" / a).mkdir(parents=True)
        pq.write_table(pa.table({"q": [1]}), lake / "x" / a / "f.parquet")
        os.symlink(f"../{b}", lake / "x" / a / "to")
    index(lake)
    con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM dom.t").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM dom.link").fetchone()[0] == 2
    tables = {r[0]: r[1] for r in con.execute("SELECT table_name, n_files FROM lakeql_tables()").fetchall()}
    assert tables == {"dom.t": 1, "dom.link": 1, "other.v": 1, "x.a": 1, "x.b": 1}


def test_folders_of_symlinks_to_each_other_are_listed_once(tmp_path):
    """n sibling folders each holding symlinks to all the others: every path that was not a loop was
    followed (n=7: 1,957 files listed in ~10 CPU s, each its own table; n=8: ~100 s)."""
    from lakeql.lake import local_listing

    lake, outside = tmp_path / "lake", tmp_path / "outside"
    n = 6
    for top in (lake, outside):
        for i in range(n):
            (top / f"d{i}").mkdir(parents=True)
            for j in range(n):
                if i != j:
                    os.symlink(top / f"d{j}", top / f"d{i}" / f"l{j}")
    pq.write_table(pa.table({"x": [1]}), lake / "d0" / "t.parquet")
    pq.write_table(pa.table({"x": [1]}), outside / "d0" / "t.parquet")
    os.symlink(outside / "d0", lake / "out")  # outside the lake: followed, each folder once
    t0 = time.process_time()
    listed = sorted(f.path for f in local_listing(lake))
    assert listed == ["d0/t.parquet", "out/t.parquet"]
    assert time.process_time() - t0 < 2


def test_empty_column_name_is_named_as_duckdb_reads_it(tmp_path):
    """A Parquet column named '' is 'C<i>' in DuckDB's read_parquet; the catalog called it 'v<i>', so the
    table's profile failed (Binder Error) and lakeql_columns() named a column the view does not have."""
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(
        pa.table([pa.array([1, 2]), pa.array(["a", "b"]), pa.array([3, 4])], names=["x", "", "y"]),
        lake / "d" / "t.parquet",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot profile" warning
        index(lake)
    con = lakeql.connect(lake)
    view = [d[0] for d in con.execute("SELECT * FROM d.t").description]
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM lakeql_columns() WHERE table_name = 'd.t' ORDER BY ordinal"
        ).fetchall()
    ]
    assert (
        cols
        == view
        == [d[0] for d in duckdb.sql(f"SELECT * FROM read_parquet('{lake / 'd' / 't.parquet'}')").description]
    )
    assert (lake / ".lakeql" / "column_profile").exists()
    prof = con.execute("SELECT count(*) FROM join_columns() WHERE table_name = 'd.t'").fetchone()[0]
    assert prof == 3


@pytest.fixture(scope="module")
def ngram_lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("ng") / "lake"
    (lake / "d").mkdir(parents=True)
    texts = [f"row {i} alpha {'beta ' * (i % 3)}gamma{i % 7}" for i in range(60)]
    pq.write_table(pa.table({"id": list(range(60)), "txt": texts}), lake / "d" / "t.parquet")
    index(lake, "--ngram", "d.t.txt")
    return lake, texts


@pytest.mark.parametrize("mode", ["all", "any"])
def test_ngram_rows_bool_with_a_huge_repeated_list_is_fast_and_exact(ngram_lake, mode):
    """100,000 copies of two phrases took 6 minutes (one index lookup per list item); now one per phrase."""
    lake, texts = ngram_lake
    con = lakeql.connect(lake)
    phrases = ["beta", "gamma3"] * 50_000
    t = time.process_time()  # CPU time (DuckDB's threads included): load slows the wall clock only
    got = con.execute(f"FROM ngram_rows_{mode}('d.t', 'txt', ?)", [phrases]).fetchall()
    assert time.process_time() - t < 30
    test = all if mode == "all" else any
    want = [i for i, s in enumerate(texts) if test(p in s for p in ("beta", "gamma3"))]
    assert [r[0] for r in got] == want
    for rowid, occ, total in got:
        per = [texts[rowid].count("beta"), texts[rowid].count("gamma3")] * 50_000
        assert occ == per and total == sum(per)


def test_ngram_rows_bool_caps_distinct_phrases_with_a_clear_error(ngram_lake):
    lake, _ = ngram_lake
    con = lakeql.connect(lake)
    with pytest.raises(duckdb.Error, match=r"1,001 distinct phrases: at most 1,000 per call"):
        con.execute("FROM ngram_rows_any('d.t', 'txt', ?)", [[f"p{i}" for i in range(1001)]]).fetchall()
    assert (
        con.execute(
            "SELECT count(*) FROM ngram_rows_any('d.t', 'txt', ?)", [[f"row {i} " for i in range(1000)]]
        ).fetchone()[0]
        == 60
    )


SLOW_SQL = "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = 7"


def test_mcp_client_leaving_mid_call_stops_the_server_cleanly(ngram_lake, tmp_path):
    """An agent that disconnects while a query runs: the server printed two tracebacks (closing a busy
    connection, then the warm-up thread on a closed one). Now close() interrupts the call, exits quietly."""
    import anyio
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from test_mcp import child_env

    lake, _ = ngram_lake
    errlog = tmp_path / "stderr.txt"
    args = ["-m", "lakeql.mcp", "--lake", str(lake)]
    params = StdioServerParameters(command=sys.executable, args=args, env=child_env(), cwd=str(tmp_path))

    async def run() -> None:
        with errlog.open("w") as err:
            async with (
                stdio_client(params, errlog=err) as (read, write),
                ClientSession(read, write) as client,
            ):
                await client.initialize()
                r = await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM d.t"})
                assert not r.is_error and "| 60 |" in r.content[0].text
                with anyio.move_on_after(2):
                    await client.call_tool("query", {"sql": SLOW_SQL})

    anyio.run(run)
    text = errlog.read_text()
    assert "Traceback" not in text and "Fatal" not in text, text


def test_mcp_service_close_interrupts_a_running_call(ngram_lake):
    from lakeql.mcp.service import LakeService

    lake, _ = ngram_lake
    service = LakeService(lake)
    errors: list[str] = []

    def call() -> None:
        try:
            service.query(SLOW_SQL)
        except Exception as exc:  # noqa: BLE001 - the interrupted call's error is what is checked
            errors.append(str(exc))

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 30
    while not service._running and time.monotonic() < deadline:
        time.sleep(0.01)
    t = time.perf_counter()
    service.close()  # raised ResourceInUseException: connection is busy
    worker.join(30)
    # wall time is the point (close() interrupts the query at once); the query alone runs 30 s or more
    assert time.perf_counter() - t < 20 and not worker.is_alive() and len(errors) == 1
    # was "the query ran longer than 30 s and was interrupted: add filters or a LIMIT" (it had not)
    assert "the server is shutting down" in errors[0] and "LIMIT" not in errors[0], errors


@pytest.mark.parametrize(
    "table, how",
    [("flights.airlines", "zero"), ("flights.airlines", "delete"), ("flights.flights", "delete")],
)
def test_damaged_column_profile_is_an_error_not_a_partial_join_answer(sample_copy, table, how):
    """joinable('flights.flights', 'carrier') answered [] (no flights.airlines) when a table's profile
    hashes were damaged after the build; now a CorruptIndexError naming --refresh, which repairs it."""
    lake = sample_copy
    index(lake)
    sql = "SELECT candidate_table FROM joinable('flights.flights', 'carrier', k := 1)"
    assert lakeql.connect(lake).execute(sql).fetchall() == [("flights.airlines",)]
    (path,) = (lake / ".lakeql" / "column_profile").glob(f"{table}-*/hashes.parquet")
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:4] + bytes(path.stat().st_size - 4))
    with pytest.raises(duckdb.Error, match=rf"column profiles of 1 table\(s\) \({table}\).*index --refresh"):
        lakeql.connect(lake).execute(sql).fetchall()
    index(lake, "--refresh")
    assert lakeql.connect(lake).execute(sql).fetchall() == [("flights.airlines",)]


def test_damaged_views_file_does_not_break_connect(sample_copy):
    """A flipped byte in views/d00000.duckdb (flights' prebuilt views): every connect() failed with
    DuckDB's 'Corrupt database file' and no fix. Now the views are made from the lake, with a warning
    naming --refresh, which repairs the file."""
    from lakeql.catalog import DamagedCatalogWarning

    lake = sample_copy
    index(lake)
    (path,) = (lake / ".lakeql" / "views").glob("d*.duckdb")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(DamagedCatalogWarning, match=r"cannot be opened.*index --refresh"):
        con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM flights.flights").fetchone()[0] == 6099
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16
    index(lake, "--refresh")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM flights.flights").fetchone()[0] == 6099


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_schema_embedding_cache_is_embedded_again(ngram_lake, tmp_path, how):
    """A flipped byte in schemas/.lakeql-embeddings.npz: schema_context failed with zipfile's
    'BadZipFile: Bad CRC-32 for file vecs.npy' (no fix named). It is a cache: now it is rebuilt."""
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(ngram_lake[0], lake)
    sql = "SELECT path FROM schema_context('row alpha beta gamma', k := 1)"
    want = lakeql.connect(lake).execute(sql).fetchall()
    cache = lake / ".lakeql" / "schemas" / ".lakeql-embeddings.npz"
    data = bytearray(cache.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    cache.write_bytes(bytes(data))
    assert lakeql.connect(lake).execute(sql).fetchall() == want


def test_joinable_after_a_table_is_removed_answers_without_it(sample_copy):
    """joinable('flights.flights', 'tailnum') after planes.parquet was deleted (before --refresh) failed
    with a bare "KeyError: 'flights.planes'": the transform search tried the removed table's column."""
    lake = sample_copy
    index(lake)
    (lake / "flights" / "planes.parquet").unlink()
    con = lakeql.connect(lake)
    got = con.execute("SELECT candidate_table FROM joinable('flights.flights', 'tailnum')").fetchall()
    assert "flights.planes" not in {r[0] for r in got}


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_decimals_are_printed_with_duckdbs_digits(ngram_lake, capsys, fmt):
    """DECIMAL(38,10) zero printed as Python's '0E-10' and 1e-7 as '1.00E-7' in table, CSV and MCP output."""
    lake, _ = ngram_lake
    values = [
        "0::DECIMAL(38,10)",
        "1e-7::DECIMAL(18,9)",
        "-123.45::DECIMAL(10,2)",
        "(10::HUGEINT**30)::DECIMAL(38,2)",
    ]
    sql = "SELECT " + ", ".join(f"{v} AS c{i}" for i, v in enumerate(values))
    capsys.readouterr()
    assert main(["sql", str(lake), sql, "--format", fmt]) == 0
    out = capsys.readouterr().out
    want = duckdb.connect().execute("SELECT " + ", ".join(f"CAST({v} AS VARCHAR)" for v in values)).fetchone()
    for text in want:
        assert text in out, (text, out)
    assert "E-" not in out


@pytest.mark.parametrize("command", ["sql", "check"])
@pytest.mark.parametrize("stdin", [True, False])
def test_sql_text_that_is_not_utf8_is_one_clear_line(ngram_lake, command, stdin):
    """Invalid UTF-8 on stdin or argv: 'extract_statements(): incompatible function arguments' (pybind's
    message about a str holding surrogates). Now one line naming the byte, exit 2."""
    import subprocess

    from test_mcp import child_env

    lake, _ = ngram_lake
    sql = b"SELECT count(*) FROM d.t WHERE txt = '\xff'"
    env = {**os.environ, **child_env(), "LC_ALL": "C.UTF-8"}
    argv = [sys.executable, "-m", "lakeql.cli", command, str(lake), "-" if stdin else os.fsdecode(sql)]
    res = subprocess.run(argv, input=sql if stdin else b"", capture_output=True, env=env, timeout=300)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2, err
    assert "the SQL text is not UTF-8 (byte 0xff at character 38)" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["sql", "check"])
@pytest.mark.parametrize(
    "locale_env", [{"LC_ALL": "C.UTF-8"}, {"LANG": "en_US.UTF-8"}, {"LC_ALL": "en_US.UTF-8"}]
)
def test_stdin_not_utf8_under_a_strict_stdin_is_one_clear_line(ngram_lake, command, locale_env):
    """With PYTHONIOENCODING=utf-8 (or a UTF-8 locale other than C.UTF-8) sys.stdin decodes strictly, so
    reading it raised first: "lakeql: error: 'utf-8' codec can't decode byte 0xff in position 38" instead
    of the designed line. Stdin is now read as bytes and checked by lakeql whatever the locale."""
    import subprocess

    from test_mcp import child_env

    lake, _ = ngram_lake
    sql = b"SELECT count(*) FROM d.t WHERE txt = '\xff'"
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONUTF8")}
    env = {**env, **child_env(), **locale_env, "PYTHONIOENCODING": "utf-8"}
    argv = [sys.executable, "-m", "lakeql.cli", command, str(lake), "-"]
    res = subprocess.run(argv, input=sql, capture_output=True, env=env, timeout=300)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2, err
    assert "the SQL text is not UTF-8 (byte 0xff at character 38)" in err and "Traceback" not in err
    assert "codec can't decode" not in err


def test_empty_column_name_clashing_with_duckdbs_name_leaves_only_that_table_out(tmp_path, capsys):
    """A column named '' beside a real 'C0': DuckDB's read_parquet cannot read the file (duplicate C0),
    but the catalog took Arrow's names (C0, C0_1), so the build failed creating the views (a bare Binder
    Error) and every query on the lake failed, healthy tables too."""
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"": [1, 2], "C0": ["a", "b"], "c1": [3, 4]}), lake / "d" / "t.parquet")
    pq.write_table(pa.table({"v": [1, 2, 3]}), lake / "d" / "u.parquet")
    index(lake)
    err = capsys.readouterr().err
    assert "skipping table d.t: DuckDB cannot read its file" in err and "duplicate column name" in err
    assert main(["sql", str(lake), "SELECT count(*) AS n FROM d.u"]) == 0
    assert "3" in capsys.readouterr().out
    con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM d.u").fetchone()[0] == 3
    status = dict(con.execute("SELECT table_name, status FROM lakeql_tables()").fetchall())
    assert status == {"d.u": "ok", "d.t": "error"}
    main(["doctor", str(lake)])
    assert "duplicate column name" in capsys.readouterr().out


def test_a_view_that_cannot_be_created_leaves_only_its_table_out(tmp_path):
    """A table whose files stop reading between the catalog and the database stage (here: deleted) made
    write_database's one batch of views fail with a bare Binder Error: no lake.duckdb for any table."""
    from lakeql.catalog import Catalog
    from lakeql.dbutil import SkippedViewWarning
    from lakeql.indexer import write_database
    from lakeql.lake import discover
    from lakeql.store import Store

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2]}), lake / "d" / "gone.parquet")
    pq.write_table(pa.table({"v": [1, 2, 3]}), lake / "d" / "u.parquet")
    lk = discover(lake)
    store = Store.for_lake(lk, None)
    cat = Catalog.build(lk, store)
    (lake / "d" / "gone.parquet").unlink()
    with pytest.warns(SkippedViewWarning, match="gone"):
        target = write_database(store, cat)
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("SELECT count(*) FROM d.u").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'gone'").fetchone()[0] == 0
    con.close()
    pq.write_table(pa.table({"a": [1, 2]}), lake / "d" / "gone.parquet")  # the file is back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_database(store, cat)  # the same statements: made again, not kept without the view
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("SELECT count(*) FROM d.gone").fetchone()[0] == 2


@pytest.mark.parametrize("args", [(), ("--refresh",)])
def test_catalog_of_an_older_lakeql_is_catalogued_again(tmp_path, args):
    """The '' -> C<i> naming fix never reached an index built by an older lakeql: an unchanged table's
    stored columns were reused whatever version wrote them (here: 'v1', as the old catalog named it)."""
    import dataclasses

    from lakeql.lake import discover
    from lakeql.store import Store

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table([pa.array([1]), pa.array(["a"])], names=["x", ""]), lake / "d" / "t.parquet")
    index(lake)
    store = Store.for_lake(discover(lake), None)
    cols = store.path("catalog", "columns.parquet")
    old = pq.read_table(cols).to_pydict()
    old["column_name"] = ["v1" if c == "C1" else c for c in old["column_name"]]
    pq.write_table(pa.table(old), cols)
    store.record(dataclasses.replace(store.find("catalog"), params="{}", checksums=""))  # old: no format
    index(lake, *args)
    con = lakeql.connect(lake)
    names = con.execute("SELECT column_name FROM lakeql_columns() WHERE table_name = 'd.t' ORDER BY ordinal")
    assert [r[0] for r in names.fetchall()] == ["x", "C1"]
