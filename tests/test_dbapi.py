"""lakeql.connect(): a DuckDB connection (the subclass lakeql.dbapi.LakeqlConnection) whose error for a table
lakeql left out as unreadable is lakeql's reason and fix, as in the CLI, the shell and the MCP server."""

from __future__ import annotations

import shutil
import warnings

import duckdb
import pandas as pd
import pytest

import lakeql
from lakeql.dbapi import LakeqlConnection, UnreadableTableError
from lakeql.demo import SAMPLE_LAKE
from lakeql.errors import LakeqlError


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """The sample lake's airlines plus a truncated Parquet file (the catalog's 'error' table)."""
    lake = tmp_path_factory.mktemp("dbapi") / "lake"
    (lake / "flights").mkdir(parents=True)
    shutil.copy(SAMPLE_LAKE / "flights" / "airlines.parquet", lake / "flights")
    (lake / "flights" / "broken.parquet").write_bytes(
        (SAMPLE_LAKE / "flights" / "airlines.parquet").read_bytes()[:100]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, progress=False)
    return lake


def _con(lake):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lakeql.connect(lake)


def _assert_lakeql_message(exc: BaseException) -> None:
    assert isinstance(exc, UnreadableTableError)
    assert isinstance(exc, duckdb.CatalogException) and isinstance(exc, duckdb.Error)  # DuckDB's catch works
    assert isinstance(exc, LakeqlError)
    text = str(exc)
    assert text.startswith("table 'flights.broken' is in the lake but none of its files could be read"), text
    assert "fix or replace 'flights/broken.parquet'" in text and "lakeql index LAKE --refresh" in text
    assert "does not exist" not in text and "Did you mean" not in text


def test_every_binding_method_names_the_unreadable_table(lake) -> None:
    con = _con(lake)
    calls = {
        "execute": lambda c: c.execute("SELECT * FROM flights.broken"),
        "execute params": lambda c: c.execute("SELECT * FROM flights.broken WHERE carrier = ?", ["AA"]),
        "executemany": lambda c: c.executemany("SELECT * FROM flights.broken WHERE carrier = ?", [["AA"]]),
        "sql": lambda c: c.sql('SELECT count(*) FROM "FLIGHTS"."Broken"'),
        "query": lambda c: c.query("SELECT * FROM flights.broken"),
        "from_query": lambda c: c.from_query("SELECT * FROM flights.broken"),
        "table": lambda c: c.table("flights.broken"),
    }
    for name, call in calls.items():
        for target in (con, con.cursor()):
            with pytest.raises(duckdb.CatalogException) as err:
                call(target)
            _assert_lakeql_message(err.value)
            if name in ("execute", "execute params"):
                assert "LINE 1:" in str(err.value), (name, str(err.value))  # DuckDB's caret is kept


def test_it_is_still_a_duckdb_connection(lake) -> None:
    con = _con(lake)
    assert isinstance(con, duckdb.DuckDBPyConnection) and type(con) is LakeqlConnection
    assert isinstance(con.cursor(), LakeqlConnection)
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchall() == [(16,)]
    assert con.sql("SELECT carrier FROM flights.airlines ORDER BY 1 LIMIT 1").fetchall() == [("9E",)]
    assert len(con.table("flights.airlines").df()) == 16
    assert duckdb.sql("SELECT 41 + 1", connection=con).fetchall() == [(42,)]
    assert isinstance(con.execute("SELECT * FROM flights.airlines").df(), pd.DataFrame)
    with con.cursor() as cur:
        assert type(cur) is LakeqlConnection and cur.execute("SELECT 1").fetchall() == [(1,)]
    # a table that is not in the lake: DuckDB's own error, untouched
    with pytest.raises(duckdb.CatalogException) as err:
        con.execute("SELECT * FROM flights.nothere")
    assert not isinstance(err.value, LakeqlError)
    assert "Table with name nothere does not exist" in str(err.value)
    # other errors are DuckDB's exceptions of the same classes
    with pytest.raises(duckdb.ParserException):
        con.execute("SELEC 1")
    with pytest.raises(duckdb.BinderException):
        con.execute("SELECT nope FROM flights.airlines")
    # inside an explicit transaction: lakeql's message (looked up on a cursor), the transaction aborted as
    # DuckDB aborts it at any error
    con.execute("BEGIN")
    with pytest.raises(UnreadableTableError):
        con.execute("SELECT * FROM flights.broken")
    with pytest.raises(duckdb.TransactionException, match="aborted"):
        con.execute("SELECT 1")
    con.execute("ROLLBACK")
    assert con.execute("SELECT 2").fetchall() == [(2,)]
    con.close()


def test_a_view_dropped_after_connecting_is_named(lake) -> None:
    con = _con(lake)
    con.execute("DROP VIEW flights.airlines")
    with pytest.raises(UnreadableTableError) as err:
        con.execute("SELECT * FROM flights.airlines")
    assert str(err.value).startswith("table 'flights.airlines' is in the lake but its view could not be made")


def test_a_scalar_in_from_gets_the_hint_once(lake, capsys) -> None:
    from lakeql.cli import main

    con = _con(lake)
    with pytest.raises(duckdb.CatalogException) as err:
        con.execute("SELECT * FROM embed('x')")
    assert str(err.value).count("Hint: embed is a scalar function") == 1, str(err.value)
    assert main(["sql", "--lake", str(lake), "SELECT * FROM embed('x')"]) == 2
    assert capsys.readouterr().err.count("Hint: embed is a scalar function") == 1


def test_an_error_of_a_lakeql_function_is_lakeqls_message_first(lake) -> None:
    """DuckDB wraps an exception raised in a UDF ('Invalid Input Error: Python exception occurred while
    executing the UDF: LakeqlError: ...'): the DB-API caller gets lakeql's message, as the CLI shows it,
    catchable as DuckDB's exception and as lakeql's."""
    from lakeql.dbapi import UdfError
    from lakeql.errors import UnknownTableError
    from lakeql.sqlrun import error_text

    con = _con(lake)
    calls = {
        "execute": lambda c: c.execute("SELECT * FROM find_tables(?)", ["\u200b"]),
        "executemany": lambda c: c.executemany("SELECT * FROM find_tables(?)", [[""]]),
    }
    for call in calls.values():
        for target in (con, con.cursor()):
            with pytest.raises(duckdb.InvalidInputException) as err:
                call(target)
            exc = err.value
            assert (
                isinstance(exc, UdfError) and isinstance(exc, LakeqlError) and isinstance(exc, duckdb.Error)
            )
            assert str(exc) == "find_tables needs a non-empty query, e.g. find_tables('flight delays')"
            assert exc.duckdb_message.startswith("Invalid Input Error: Python exception occurred")
            # what the CLI shows for DuckDB's wrapped error is this message
            assert error_text(duckdb.InvalidInputException(exc.duckdb_message)) == str(exc) == error_text(exc)
    with pytest.raises(UnknownTableError) as err:  # a subclass of LakeqlError keeps its own class
        con.execute("SELECT * FROM semantic_search('flights.airlinez', 'name', 'x')")
    assert isinstance(err.value, duckdb.InvalidInputException)
    assert str(err.value).startswith("unknown table 'flights.airlinez'"), str(err.value)
    with pytest.raises(LakeqlError):
        con.execute("SELECT * FROM semantic_search('flights.airlinez', 'name', 'x')")


def test_other_python_errors_in_a_udf_stay_duckdbs(lake) -> None:
    con = _con(lake)

    def boom() -> int:
        raise ValueError("not lakeql's")

    con.create_function("boom", boom, [], "INTEGER")
    with pytest.raises(duckdb.InvalidInputException) as err:
        con.execute("SELECT boom()")
    assert not isinstance(err.value, LakeqlError)
    assert "Python exception occurred while executing the UDF: ValueError: not lakeql's" in str(err.value)


def test_the_hint_look_up_leaves_no_unfinished_result() -> None:
    """DuckDB refuses other work on a connection with an unfinished result (a fetchone() of a one-row
    result is unfinished): the scalar-in-FROM look-up must fetch to the end, or the user's next
    con.sql(...) fails with ResourceInUseException."""
    from lakeql.sqlerrors import scalar_in_from_hint

    plain = duckdb.connect()
    with pytest.raises(duckdb.CatalogException) as err:
        plain.execute("SELECT * FROM lower('x')")
    assert scalar_in_from_hint(str(err.value), plain).startswith("\nHint: lower is a scalar function")
    assert plain.sql("SELECT 1").fetchall() == [(1,)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect()
    with pytest.raises(duckdb.CatalogException, match="Hint: lower is a scalar function"):
        con.execute("SELECT * FROM lower('x')")
    assert con.sql("SELECT 1").fetchall() == [(1,)]
    assert duckdb.sql("SELECT 2", connection=con).fetchall() == [(2,)]


def test_a_converted_error_leaves_the_connection_as_duckdb_would(lake) -> None:
    """The look-ups behind lakeql's message run on a cursor of their own: after the error the user's
    connection has no result of lakeql's (DuckDB's description None, fetchall 'No open result set')."""
    plain = duckdb.connect()
    plain.execute("SELECT 1 AS one")
    with pytest.raises(duckdb.CatalogException):
        plain.execute("SELECT * FROM broken")
    con = _con(lake)
    con.execute("SELECT 1 AS one")
    with pytest.raises(UnreadableTableError):
        con.execute("SELECT * FROM broken")
    assert con.description == plain.description
    for c in (plain, con):
        with pytest.raises(duckdb.InvalidInputException, match="No open result set"):
            c.fetchall()
    con.execute("DROP VIEW flights.airlines")  # the view look-up (SELECT ... LIMIT 0) leaves nothing either
    with pytest.raises(UnreadableTableError):
        con.execute("SELECT * FROM flights.airlines")
    assert con.description is None
