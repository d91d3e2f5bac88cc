"""The (rowid, score) macros: a plain unnest of the UDF's hit list (no recursive unnest), same answer."""

from __future__ import annotations

import duckdb
import pytest

TEXT_IMPL = (
    "SELECT * FROM (SELECT unnest(semantic_search_impl('python.functions', 'docstring', "
    "'read a csv file', 7, 4, NULL, {exact}), recursive := true))"
)
VECTOR_IMPL = (
    "SELECT * FROM (SELECT unnest(semantic_search_vector_impl('python.functions', 'docstring', "
    "embed('read a csv file'), 7, 4, NULL, {exact}), recursive := true))"
)


def test_rowids_macros_equal_the_udf_hits(con, real):
    """Same rows, scores, order and column types as the UDF's own list, for text and vector queries."""
    want = con.execute(TEXT_IMPL.format(exact="false")).fetchall()
    rel = con.execute(
        "SELECT * FROM semantic_search_rowids('python.functions', 'docstring', 'read a csv file', k := 7)"
    )
    assert [(d[0], str(d[1])) for d in rel.description] == [("rowid", "BIGINT"), ("score", "FLOAT")]
    got = rel.fetchall()
    assert len(want) == 7 and got == want
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    vec = con.execute(
        "SELECT * FROM semantic_search_vector_rowids('python.functions', 'docstring', "
        "embed('read a csv file'), k := 7)"
    ).fetchall()
    assert vec == con.execute(VECTOR_IMPL.format(exact="false")).fetchall() == want
    exact = con.execute(
        "SELECT * FROM semantic_search_vector_rowids('python.functions', 'docstring', "
        "embed('read a csv file'), k := 7, exact := true)"
    ).fetchall()
    assert exact == con.execute(VECTOR_IMPL.format(exact="true")).fetchall()


def test_rowids_macros_keep_the_errors(con):
    """Bad input still fails with the UDF's own message (the macro adds no layer that hides it)."""
    with pytest.raises(duckdb.Error, match="positive integer"):
        con.execute(
            "SELECT * FROM semantic_search_vector_rowids('python.functions', 'docstring', "
            "embed('zip'), k := 0)"
        ).fetchall()
    with pytest.raises(duckdb.Error, match="NULL"):
        con.execute(
            "SELECT * FROM semantic_search_vector_rowids('python.functions', 'docstring', NULL)"
        ).fetchall()
