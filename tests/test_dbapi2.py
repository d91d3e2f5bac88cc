"""PEP 249 (DB-API 2.0), point by point, on what ``lakeql.connect()`` returns, and the Python API as a
sqlite3/duckdb user drives it (dbapi2 trial, benchmarks/results/dbapi2.md).

The module-level names (``lakeql.paramstyle``, ``lakeql.dbapi.Error``, ``Date``, ...), the connection's
exception attributes (``con.Error``), ``arraysize``, iteration, ``setinputsizes``/``nextset``/``callproc``,
a ``rollback()`` without a transaction, lakeql's errors at connect as ``OperationalError`` and an empty lake
path were missing or wrong before this file; the rest pins behaviour that was already right.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import threading
import warnings
from pathlib import Path

import duckdb
import pytest

import lakeql
import lakeql.dbapi as dbapi
from lakeql.demo import SAMPLE_LAKE
from lakeql.errors import LakeNotFoundError, LakeqlError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("dbapi2") / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", lake / "flights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, progress=False)
    return lake


@pytest.fixture
def con(lake):
    c = lakeql.connect(lake)
    yield c
    c.close()


# -- module globals -------------------------------------------------------------------------------------

#: PEP 249's exception tree: class -> its parent
HIERARCHY = {
    "Warning": Exception, "Error": Exception, "InterfaceError": "Error", "DatabaseError": "Error",
    "DataError": "DatabaseError", "OperationalError": "DatabaseError", "IntegrityError": "DatabaseError",
    "InternalError": "DatabaseError", "ProgrammingError": "DatabaseError",
    "NotSupportedError": "DatabaseError",
}


@pytest.mark.parametrize("module", [lakeql, dbapi], ids=["lakeql", "lakeql.dbapi"])
def test_module_globals_of_pep249(module) -> None:
    from lakeql import pep249

    assert (module.apilevel, module.threadsafety, module.paramstyle) == ("2.0", 1, "qmark")
    assert set(pep249.NAMES) == lakeql._PEP249
    for name in pep249.NAMES:
        assert getattr(module, name) is getattr(pep249, name), name
    for name, parent in HIERARCHY.items():
        cls = getattr(module, name)
        parent_cls = getattr(module, parent) if isinstance(parent, str) else parent
        assert isinstance(cls, type) and issubclass(cls, parent_cls), (name, parent)
    assert module.Error is duckdb.Error and module.ProgrammingError is duckdb.ProgrammingError
    assert callable(module.connect)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lakeql.nope  # noqa: B018


def test_the_declared_paramstyle_and_named_parameters_work(con) -> None:
    assert con.execute("SELECT ? + 1", [1]).fetchall() == [(2,)]
    assert con.execute("SELECT ? || ?", ("a", "b")).fetchall() == [("ab",)]
    assert con.execute("SELECT $1 + $1", [2]).fetchall() == [(4,)]
    assert con.execute("SELECT $x * $y", {"x": 3, "y": 4}).fetchall() == [(12,)]
    n = con.execute("SELECT count(*) FROM flights.airlines WHERE carrier = ?", ["AA"]).fetchone()
    assert n == (1,)
    hostile = "x'); DROP VIEW flights.airlines; --"
    assert con.execute("SELECT count(*) FROM flights.airlines WHERE name = ?", [hostile]).fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchone() == (16,)


def test_type_constructors_bind_as_their_sql_types(con) -> None:
    import datetime

    row = con.execute(
        "SELECT typeof(?), typeof(?), typeof(?), typeof(?), ?::VARCHAR",
        [dbapi.Date(2024, 2, 29), dbapi.Time(1, 2, 3), dbapi.Timestamp(2024, 2, 29, 1, 2, 3),
         dbapi.Binary(b"\x00\xff"), dbapi.Date(2024, 2, 29)]).fetchone()
    assert row[:4] == ("DATE", "TIME", "TIMESTAMP", "BLOB") and row[4] == "2024-02-29"
    ticks = 1_700_000_000.5
    local = datetime.datetime.fromtimestamp(ticks)
    assert dbapi.DateFromTicks(ticks) == local.date()
    assert dbapi.TimeFromTicks(ticks) == local.time().replace(microsecond=0)
    assert dbapi.TimestampFromTicks(ticks) == local.replace(microsecond=0)


#: SQL type -> the type object its description's type code compares equal to (None: none of them)
TYPE_CODES = {
    "VARCHAR": "STRING", "INTEGER": "NUMBER", "BIGINT": "NUMBER", "DOUBLE": "NUMBER",
    "DECIMAL(10,2)": "NUMBER", "DATE": "DATETIME", "TIMESTAMP": "DATETIME", "TIME": "DATETIME",
    "BLOB": "BINARY",
}


def test_description_is_seven_tuples_with_comparable_type_codes(con) -> None:
    cols = ", ".join(f"NULL::{t} AS c{i}" for i, t in enumerate(TYPE_CODES))
    cur = con.cursor()
    assert cur.description is None and cur.rowcount == -1
    assert cur.execute(f"SELECT {cols}") is cur  # execute returns the cursor (chaining)
    assert [d[0] for d in cur.description] == [f"c{i}" for i in range(len(TYPE_CODES))]
    for d, expected in zip(cur.description, TYPE_CODES.values(), strict=True):
        assert len(d) == 7
        for name in ("STRING", "NUMBER", "DATETIME", "BINARY", "ROWID"):
            assert (d[1] == getattr(dbapi, name)) == (name == expected), (d, name)
    view = con.execute("SELECT * FROM flights.airlines").description
    assert [(d[0], d[1] == dbapi.STRING) for d in view] == [("carrier", True), ("name", True)]


# -- errors ---------------------------------------------------------------------------------------------

#: a statement -> PEP 249's class of its error on a lakeql connection
ERRORS = {
    "SELEC 1": "ProgrammingError",
    "SELECT * FROM flights.nothere": "ProgrammingError",
    "SELECT nope FROM flights.airlines": "ProgrammingError",
    "SELECT * FROM find_tables('')": "ProgrammingError",  # lakeql's own error, raised in its SQL function
    "SELECT * FROM joinable('flights.nothere', 'x')": "ProgrammingError",
    "SELECT 'x'::INTEGER": "DataError",
    "SELECT 2147483647::INTEGER + 1::INTEGER": "DataError",
    "INSERT INTO pk VALUES (1)": "IntegrityError",
    "INSERT INTO pk VALUES (NULL)": "IntegrityError",
}


def test_errors_are_pep249_classes_reachable_from_the_connection(con) -> None:
    con.execute("CREATE TABLE pk(a INTEGER PRIMARY KEY)")  # not TEMP: cursors see it
    con.execute("INSERT INTO pk VALUES (1)")
    cur = con.cursor()
    for sql, name in ERRORS.items():
        for target in (con, cur):
            with pytest.raises(getattr(dbapi, name)) as err:
                target.execute(sql).fetchall()
            assert isinstance(err.value, target.Error) and isinstance(err.value, getattr(target, name)), sql
    for name in HIERARCHY:
        assert getattr(con, name) is getattr(dbapi, name) is getattr(cur, name)


def test_lakeqls_errors_at_connect_are_operational_errors(tmp_path, lake) -> None:
    (tmp_path / "notes.txt").write_text("x")
    for bad in (tmp_path / "nope", tmp_path / "notes.txt", tmp_path, ""):
        with pytest.raises(dbapi.OperationalError) as err:
            lakeql.connect(bad)
        exc = err.value
        assert isinstance(exc, LakeNotFoundError) and isinstance(exc, LakeqlError), bad
        assert isinstance(exc, duckdb.Error) and type(exc).__name__ == "LakeNotFoundError"
        again = pickle.loads(pickle.dumps(exc))  # a multiprocessing worker's error reaches the parent
        assert type(again) is type(exc) and str(again) == str(exc)
    with pytest.raises(dbapi.OperationalError, match="lake path is empty"):
        dbapi.connect("")
    with pytest.raises(dbapi.ProgrammingError, match="unknown capability 'nope'") as err:  # the caller's
        lakeql.connect(lake, capabilities=["nope"])
    assert not isinstance(err.value, dbapi.OperationalError)
    with pytest.raises(LakeqlError) as err:  # lakeql.index is not DB-API: its errors are lakeql's alone
        lakeql.index(tmp_path / "nope", progress=False)
    assert not isinstance(err.value, duckdb.Error)


def test_an_empty_lake_path_is_refused_not_the_current_directory(tmp_path, monkeypatch) -> None:
    """``Path('')`` is the current directory: ``lakeql.connect(os.environ.get('LAKE', ''))`` opened
    whatever folder the process stood in as the lake (and ``lakeql index ''`` wrote an index there)."""
    shutil.copytree(SAMPLE_LAKE / "flights", tmp_path / "flights")
    monkeypatch.chdir(tmp_path)
    for empty in ("", " ", b""):
        with pytest.raises(LakeNotFoundError, match="the lake path is empty"):
            lakeql.connect(empty)
    with pytest.raises(LakeNotFoundError, match="the lake path is empty"):
        lakeql.index("", progress=False)
    assert not (tmp_path / ".lakeql").exists()
    from lakeql.cli import main

    assert main(["sql", "--lake", "", "SELECT 1"]) == 2


def test_lake_paths_as_a_python_user_passes_them(lake, monkeypatch) -> None:
    monkeypatch.chdir(lake.parent)
    monkeypatch.setenv("HOME", str(lake.parent))
    for path in (lake, str(lake), "lake", "./lake/", "~/lake", Path("~/lake"), os.fsencode(str(lake))):
        with lakeql.connect(path) as c:
            assert c.execute("SELECT count(*) FROM flights.airlines").fetchone() == (16,), path


# -- connection and cursor ------------------------------------------------------------------------------

def test_fetching_before_after_and_past_the_end(con) -> None:
    cur = con.cursor()
    for fetch in (cur.fetchone, cur.fetchall, cur.fetchmany):
        with pytest.raises(dbapi.Error):  # before any execute
            fetch()
    cur.execute("SELECT * FROM range(3)")
    assert cur.fetchone() == (0,) and cur.fetchall() == [(1,), (2,)]
    assert (cur.fetchone(), cur.fetchall(), cur.fetchmany(5)) == (None, [], [])
    cur.execute("SELECT * FROM range(10)")
    cur.execute("SELECT 42")  # a second execute discards the first result
    assert cur.fetchall() == [(42,)]


def test_arraysize_drives_fetchmany(con) -> None:
    cur = con.cursor()
    assert cur.arraysize == 1 and con.arraysize == 1
    cur.execute("SELECT * FROM range(10)")
    assert cur.fetchmany() == [(0,)]
    cur.arraysize = 4
    assert (cur.arraysize, con.arraysize) == (4, 1)  # per cursor
    assert cur.fetchmany() == [(1,), (2,), (3,), (4,)]
    assert cur.fetchmany(2) == [(5,), (6,)] and cur.fetchmany(size=1) == [(7,)]
    assert cur.fetchmany() == [(8,), (9,)] and cur.fetchmany() == []
    for bad in (0, -1, 2.5, "3", True, None):
        with pytest.raises(dbapi.ProgrammingError, match="arraysize must be"):
            cur.arraysize = bad
    assert cur.arraysize == 4


def test_iterating_a_cursor_yields_the_remaining_rows(con) -> None:
    assert [r for r in con.execute("SELECT * FROM range(4)")] == [(0,), (1,), (2,), (3,)]
    cur = con.cursor().execute("SELECT * FROM range(5)")
    assert cur.fetchone() == (0,)
    it = iter(cur)
    assert next(it) == (1,)
    assert cur.fetchone() == (2,)  # one row at a time: iteration and fetch* share one position
    assert list(it) == [(3,), (4,)]
    rows = [r[0] for r in con.execute("SELECT carrier FROM flights.airlines ORDER BY 1")]
    assert len(rows) == 16 and rows[0] == "9E"


def test_the_optional_cursor_methods(con) -> None:
    cur = con.cursor()
    cur.setinputsizes([10, None])
    cur.setoutputsize(100)
    cur.setoutputsize(100, 0)
    cur.execute("SELECT 1; SELECT 2")
    assert cur.fetchall() == [(2,)] and cur.nextset() is None  # DuckDB keeps the last statement's result
    with pytest.raises(dbapi.NotSupportedError, match="no stored procedures"):
        cur.callproc("find_tables", ["flights"])


def test_executemany_runs_every_parameter_set(con) -> None:
    con.execute("CREATE TEMP TABLE t(a INTEGER, b VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(50)])
    con.executemany("INSERT INTO t VALUES (?, ?)", ((i, None) for i in range(3)))  # any iterable
    assert con.execute("SELECT count(*), count(b), sum(a) FROM t").fetchone() == (53, 50, 1228)
    with pytest.raises(dbapi.ProgrammingError):
        con.executemany("INSERT INTO t VALUES (?, ?)", [(1,)])


def test_rollback_without_a_transaction_keeps_the_real_error(con) -> None:
    """DuckDB commits each statement by itself: the sqlite3/psycopg habit ``except: con.rollback(); raise``
    raised DuckDB's 'cannot rollback - no transaction is active' instead of the error being handled."""
    con.execute("CREATE TEMP TABLE r(a INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO r VALUES (1)")
    with pytest.raises(dbapi.IntegrityError):
        try:
            con.execute("INSERT INTO r VALUES (1)")
            con.commit()
        except dbapi.Error:
            con.rollback()
            raise
    assert con.rollback() is con and con.commit() is con
    con.begin()  # an explicit transaction is rolled back as before
    con.execute("INSERT INTO r VALUES (2)")
    con.rollback()
    assert con.execute("SELECT count(*) FROM r").fetchone() == (1,)
    con.execute("BEGIN")
    con.execute("INSERT INTO r VALUES (3)")
    con.commit()
    assert con.execute("SELECT count(*) FROM r").fetchone() == (2,)


def test_close_twice_and_use_after_close(lake) -> None:
    with lakeql.connect(lake) as c:
        cur = c.cursor()
        cur.execute("SELECT * FROM range(1000)")
        assert cur.fetchone() == (0,)
        cur.close()  # mid-result
        cur.close()
        with pytest.raises(dbapi.Error):
            cur.execute("SELECT 1")
        assert c.execute("SELECT 1").fetchall() == [(1,)]
    c.close()  # closed by the with block: closing again is a no-op
    for call in (lambda: c.execute("SELECT 1"), c.cursor, c.commit, lambda: c.fetchall()):
        with pytest.raises(dbapi.Error):
            call()


def test_threads_one_cursor_each_and_a_shared_connection_refuses(con) -> None:
    """threadsafety = 1 is true: cursors (one per thread) run lakeql's functions at once and agree with
    one thread; one connection used by two threads at once refuses with a duckdb.Error naming the fix."""
    queries = ["SELECT * FROM find_tables('flight delays') ORDER BY 1",
               "SELECT * FROM joinable('flights.flights', 'carrier') ORDER BY 1",
               "SELECT * FROM lakeql_tables() ORDER BY 1",
               "SELECT count(*), sum(dep_delay) FROM flights.flights"]
    expected = [con.execute(q).fetchall() for q in queries]
    got: list = []
    failures: list = []

    def work(cur) -> None:
        try:
            for _ in range(3):
                got.append([cur.execute(q).fetchall() for q in queries])
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(con.cursor(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(got) == 12 and all(g == expected for g in got)
    busy: list = []
    barrier = threading.Barrier(3)

    def share() -> None:
        barrier.wait()
        try:
            for _ in range(20):
                con.execute("SELECT count(*) FROM range(2000000)").fetchall()
        except dbapi.Error as exc:
            busy.append(exc)

    threads = [threading.Thread(target=share) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in busy:  # DuckDB refuses (does not corrupt or hang); the message names cursor()
        assert "cursor()" in str(exc), str(exc)


def test_a_connection_is_usable_in_a_forked_and_a_new_process(lake) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:  # bounded waits: a Pool whose child dies loses the task and waits for ever
        assert pool.apply_async(_count_airlines, (str(lake),)).get(timeout=120) == 16
        with pytest.raises(LakeNotFoundError):  # lakeql's error crosses the process boundary
            pool.apply_async(_count_airlines, (str(lake / "nope"),)).get(timeout=120)


def _count_airlines(lake: str) -> int:
    with lakeql.connect(lake) as c:
        return c.execute("SELECT count(*) FROM flights.airlines").fetchone()[0]


# -- the docs' Python examples --------------------------------------------------------------------------

def python_blocks() -> list[tuple[str, str]]:
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"```python\n(.*?)```", text, re.DOTALL):
            where = f"{path.name}:{text[:m.start()].count(chr(10)) + 2}"
            first = m.group(1).lstrip().splitlines()[0] if m.group(1).strip() else ""
            if first.lower().startswith("# not run here:"):
                assert len(first) > len("# not run here:") + 3, f"{where}: say why it is not run"
                continue
            out.append((where, m.group(1)))
    return out


def test_every_python_example_in_the_docs_runs_as_written(tmp_path, monkeypatch) -> None:
    """README.md and docs/*.md ```python blocks, run on a copy of the sample lake at ``path/to/lake``
    (the placeholder the docs use) in a scratch directory; a block for another place starts with
    ``# not run here: <why>``."""
    blocks = python_blocks()
    assert any(w.startswith("README.md") for w, _ in blocks), blocks
    shutil.copytree(SAMPLE_LAKE, tmp_path / "path" / "to" / "lake")
    monkeypatch.chdir(tmp_path)
    for where, code in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, where, "exec"), {"__name__": "__docs__"})  # noqa: S102


def test_an_index_error_of_a_lakeql_function_is_also_an_operational_error(tmp_path) -> None:
    """A stale or damaged index is not the caller's mistake: PEP 249's OperationalError (and, as before,
    DuckDB's InvalidInputException); an unknown table stays a ProgrammingError only."""
    from lakeql.errors import StaleIndexError

    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", lake / "flights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, ngram=["flights.airlines.name"], progress=False)
        c = lakeql.connect(lake)
    assert c.execute("SELECT count(*) FROM ngram_search('flights.airlines', 'name', 'Air')").fetchone()[0] > 0
    target = lake / "flights" / "airlines.parquet"
    duckdb.execute(f"COPY (SELECT * FROM read_parquet('{target}') LIMIT 3) TO '{tmp_path / 'a.parquet'}'")
    os.replace(tmp_path / "a.parquet", target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c2 = lakeql.connect(lake)
    with pytest.raises(dbapi.OperationalError) as err:
        c2.execute("SELECT * FROM ngram_search('flights.airlines', 'name', 'Air')")
    exc = err.value
    assert isinstance(exc, StaleIndexError) and isinstance(exc, duckdb.InvalidInputException)
    assert "lakeql index --refresh" in str(exc)
    with pytest.raises(dbapi.ProgrammingError) as err:
        c2.execute("SELECT * FROM ngram_search('flights.nothere', 'name', 'Air')")
    assert not isinstance(err.value, dbapi.OperationalError)


def test_a_read_only_database_file_connects(lake, tmp_path) -> None:
    """``read_only=True`` (a documented duckdb_kwarg) failed: lakeql attached ``:memory:`` catalogs, which
    DuckDB refuses in a read-only instance ('Cannot launch in-memory database in read-only mode!')."""
    db = tmp_path / "mine.duckdb"
    with duckdb.connect(db) as own:
        own.execute("CREATE TABLE mine AS SELECT 7 AS a")
    with lakeql.connect(lake, str(db), read_only=True) as c:
        assert c.execute("SELECT count(*) FROM flights.airlines").fetchone() == (16,)
        assert c.execute("SELECT a FROM mine").fetchone() == (7,)
        assert c.execute("SELECT count(*) FROM find_tables('flight delays')").fetchone()[0] > 0
        assert c.execute("SELECT count(*) FROM joinable('flights.flights', 'carrier')").fetchone()[0] > 0
        with pytest.raises(dbapi.Error):
            c.execute("CREATE TABLE t2(a INTEGER)")


def test_a_database_file_opened_twice_in_one_process_names_the_fix(lake, tmp_path) -> None:
    """DuckDB shares one database instance among a process's connections to a file: a second
    ``lakeql.connect(lake, 'my.duckdb')`` while the first is open (a notebook cell run again) failed half-way
    with 'Scalar Function with name "lakeql_manifest_file" already exists!'."""
    db = str(tmp_path / "twice.duckdb")
    first = lakeql.connect(lake, db)
    lakeql.register(first, lake)  # the same connection again: its functions are replaced, as before
    for again in (lambda: lakeql.connect(lake, db), lambda: lakeql.register(first.cursor(), lake),
                  lambda: lakeql.register(duckdb.connect(db), lake)):
        with pytest.raises(LakeqlError, match="already registered in '.*twice.duckdb' by another open "
                                              "connection.*close it before connecting again"):
            again()
    assert first.execute("SELECT count(*) FROM find_tables('flight delays')").fetchone()[0] > 0
    with pytest.raises(dbapi.ProgrammingError):
        lakeql.connect(lake, db)
    first.close()
    with lakeql.connect(lake, db) as second:
        assert second.execute("SELECT count(*) FROM find_tables('flight delays')").fetchone()[0] > 0


def test_capabilities_given_as_one_string_is_one_name(lake, tmp_path) -> None:
    """``capabilities='joins'`` was read letter by letter: "unknown capability 'j'"."""
    with lakeql.connect(lake, capabilities="joins") as c:
        names = {r[0] for r in c.execute("SELECT function_name FROM duckdb_functions()").fetchall()}
        assert "joinable" in names and "ngram_search" not in names
    other = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", other / "flights")
    report = lakeql.index(other, capabilities="joins", progress=False)
    assert {r["kind"] for r in report.indexes} >= {"join_graph"}
    assert not {r["kind"] for r in report.indexes} & {"schemas", "ngram", "embed"}


def test_cursors_of_a_database_file_connection_have_the_table_functions(lake, tmp_path) -> None:
    """On a database file lakeql's table functions are TEMP macros (nothing written into the user's file):
    ``con.cursor()`` — one per thread, as threadsafety 1 asks — said 'Table Function with name find_tables
    does not exist'."""
    queries = ["SELECT * FROM find_tables('flight delays') ORDER BY 1",
               "SELECT * FROM joinable('flights.flights', 'carrier') ORDER BY 1",
               "SELECT * FROM schema_context('flights') ORDER BY 1",
               "SELECT count(*) FROM flights.airlines"]
    with lakeql.connect(lake, str(tmp_path / "mine.duckdb")) as c:
        expected = [c.execute(q).fetchall() for q in queries]
        assert expected[0] and expected[1]
        got: list = []
        failures: list = []

        def work(cur) -> None:
            try:
                got.append([cur.execute(q).fetchall() for q in queries])
            except Exception as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(c.cursor(),)) for _ in range(3)]
        threads.append(threading.Thread(target=work, args=(c.cursor().cursor(),)))  # a cursor's cursor
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures and got == [expected] * 4
    with duckdb.connect(tmp_path / "mine.duckdb") as plain:  # nothing of lakeql's left in the file
        assert not plain.execute("SELECT * FROM duckdb_functions() WHERE function_name = 'find_tables'"
                                 ).fetchall()
    with lakeql.connect(lake, str(tmp_path / "joins.duckdb"), capabilities="joins") as c:
        assert c.cursor().execute(queries[1]).fetchall() == expected[1]


def test_an_index_dir_that_is_a_file_is_named_at_connect(lake, tmp_path) -> None:
    """``index_dir=`` a file connected silently; the first lakeql function then said "index manifest
    '<file>/indexes.parquet' is unreadable (Not a directory): delete it and run 'lakeql index LAKE' again"
    (a file that is not there); ``lakeql index --index-dir FILE``: "cannot write ... (File exists)"."""
    from lakeql.cli import main
    from lakeql.errors import IndexDirError

    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(IndexDirError, match="is a file, not a folder") as err:
        lakeql.connect(lake, index_dir=afile)
    assert isinstance(err.value, dbapi.OperationalError)
    with pytest.raises(IndexDirError, match="is a file, not a folder"):
        lakeql.index(lake, index_dir=afile, progress=False)
    assert main(["sql", "--lake", str(lake), "--index-dir", str(afile), "SELECT 1"]) == 2
    assert afile.read_text() == "x"
