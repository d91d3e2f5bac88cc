"""Review of h/dbapi2 (benchmarks/results/review35.md): defects found in the branch's PEP 249 work.

* a cursor of a database-file connection re-made lakeql's ``TEMP`` macros at every ``con.cursor()``
  (37-56 ms of DuckDB's time each, paid by every cursor: pandas' ``read_sql`` opens one per call); they
  are now made when the cursor first runs SQL that names one, and again after a ``ROLLBACK`` dropped them;
* a lake folder whose name is blanks (``' '``, a legal POSIX name) was refused as an "empty" lake path.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings
from pathlib import Path

import pytest

import lakeql
import lakeql.dbapi as dbapi
from lakeql.demo import SAMPLE_LAKE
from lakeql.errors import LakeNotFoundError


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("review35") / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", lake / "flights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, progress=False)
    return lake


@pytest.fixture
def filecon(lake, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake, str(tmp_path / "mine.duckdb"))
    yield con
    con.close()


@pytest.fixture
def made(monkeypatch) -> list[int]:
    """Counts the times a cursor's TEMP macros are made."""
    calls: list[int] = []
    real = dbapi._make_temp_macros

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dbapi, "_make_temp_macros", counting)
    return calls


FIND = "SELECT count(*) FROM find_tables('flights')"


def test_a_cursor_that_runs_no_lakeql_function_does_not_pay_for_its_macros(filecon, made) -> None:
    want = filecon.execute(FIND).fetchone()[0]
    assert want > 0
    t = time.process_time()
    for _ in range(300):
        cur = filecon.cursor()
        assert cur.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16
        cur.close()
    spent = time.process_time() - t
    assert made == [], "a cursor made lakeql's macros without running any of them"
    assert spent < 6.0, f"300 cursors took {spent:.1f} CPU s"  # 37-56 ms each before: 11-17 s
    cur = filecon.cursor()
    assert cur.execute(FIND).fetchone()[0] == want  # made on first use
    assert cur.execute(FIND).fetchone()[0] == want
    assert made == [1]
    sub = cur.cursor()  # a cursor's cursor: made on its own first use
    assert sub.execute("select * from FIND_TABLES('flights')").fetchall()
    assert made == [1, 1]


def test_a_cursor_gets_the_macros_in_a_script_and_after_a_rollback(filecon) -> None:
    want = filecon.execute(FIND).fetchone()[0]
    cur = filecon.cursor()
    assert cur.execute(f"SELECT 1; {FIND}").fetchone()[0] == want  # a script naming one
    cur2 = filecon.cursor()
    cur2.begin()
    assert cur2.execute(FIND).fetchone()[0] == want  # made inside the transaction
    cur2.rollback()  # ... which drops them again
    assert cur2.execute(FIND).fetchone()[0] == want
    assert cur2.execute("SELECT count(*) FROM lakeql_tables()").fetchone()[0] > 0
    with pytest.raises(dbapi.ProgrammingError):  # an unknown name is still DuckDB's error, retried once
        cur2.execute("SELECT * FROM find_tables")


def test_cursors_of_a_database_file_in_threads_answer_alike(filecon) -> None:
    want = filecon.execute(FIND).fetchall()
    out, errors = [], []

    def work() -> None:
        try:
            cur = filecon.cursor()
            for _ in range(3):
                out.append(cur.execute(FIND).fetchall())
            cur.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and out == [want] * 12


def test_a_lake_folder_named_with_blanks_is_not_an_empty_path(tmp_path, monkeypatch) -> None:
    shutil.copytree(SAMPLE_LAKE / "flights", tmp_path / " " / "flights")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(" ")
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16
    con.close()
    with pytest.raises(LakeNotFoundError, match="empty"):
        lakeql.connect("")
    with pytest.raises(LakeNotFoundError):  # blanks naming no folder: still refused
        lakeql.connect("  ")
    assert not os.path.exists(tmp_path / "  ")


_CROSS_PROCESS = r"""
import multiprocessing, pickle, sys, warnings

import duckdb

import lakeql
import lakeql.dbapi as dbapi
from lakeql.errors import UDF_MARKER, LakeqlError, StaleIndexError, UnknownTableError


def unknown_table(lake):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with lakeql.connect(lake) as c:
            c.execute("SELECT * FROM joinable('flights.nothere', 'x')")


def unpickled(blob):
    e = pickle.loads(blob)
    return (type(e).__name__, isinstance(e, StaleIndexError), isinstance(e, duckdb.OperationalError),
            isinstance(e, LakeqlError) and isinstance(e, duckdb.InvalidInputException), str(e))


if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(1) as pool:
        try:
            pool.apply_async(unknown_table, (sys.argv[1],)).get(timeout=120)
            print("no error")
        except UnknownTableError as err:
            print("fork:", type(err).__name__, isinstance(err, duckdb.InvalidInputException), err)
    stale = dbapi._udf_error(duckdb.InvalidInputException(
        f"Invalid Input Error: {UDF_MARKER}StaleIndexError: the index of 'x' is stale: run lakeql index "
        "--refresh"))
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh interpreter unpickles it
        print("spawn:", pool.apply_async(unpickled, (pickle.dumps(stale),)).get(timeout=120) ==
              ("StaleIndexError", True, True, True, str(stale)))
"""


def test_an_error_of_a_lakeql_sql_function_crosses_a_process_boundary(lake, tmp_path) -> None:
    """The classes made for lakeql's UDF errors (``UnknownTableError`` that is also DuckDB's, and since
    h/dbapi2 ``StaleIndexError`` that is also ``OperationalError``) did not pickle: 'it's not the same
    object as lakeql.errors.UnknownTableError', so a worker's error broke ``multiprocessing``/Ray.

    The pools run in a fresh interpreter of their own, with bounded waits: forked from a pytest worker of
    hundreds of DuckDB/numba threads, a pool's child once died in CI and ``Pool.apply`` waited for ever
    (a lost task is never reported by ``multiprocessing.Pool``)."""
    import subprocess
    import sys

    script = tmp_path / "cross_process.py"
    script.write_text(_CROSS_PROCESS)
    run = subprocess.run([sys.executable, str(script), str(lake)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "fork: UnknownTableError True" in run.stdout and "unknown table 'flights.nothere'" in run.stdout, \
        run.stdout + run.stderr[-3000:]
    assert "spawn: True" in run.stdout, run.stdout + run.stderr[-3000:]
