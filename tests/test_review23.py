"""Review of the pooled builder databases (``lakeql.sources.buildfs.pooled``) and of ``tfidf_csr`` over the
features present (benchmarks/results/review23.md).

A pooled database is handed to the next builder: nothing a connection did may reach it. The cheap check
made on every give-back (attached files, tables, views, now registered filesystems) runs before the
memory flush; what it cannot see at a cost below the pool's gain (global settings, macros and functions,
schemas, sequences, types, secrets) is checked by :data:`buildfs.VERIFY`, which the tests below turn on
for a whole build and refresh of every default capability.
"""

from __future__ import annotations

import shutil

import duckdb
import fsspec
import numpy as np
import pytest
import scipy.sparse as sp

import lakeql
from lakeql.sources import buildfs


@pytest.fixture()
def empty_pool():
    with buildfs._POOL_LOCK:
        buildfs._POOL.clear()
    yield buildfs._POOL
    with buildfs._POOL_LOCK:
        buildfs._POOL.clear()


@pytest.fixture()
def verify(monkeypatch):
    """Full checks on give-back; the differences found (a list: empty when every builder left nothing)."""
    found: list[str] = []
    monkeypatch.setattr(buildfs, "VERIFY", True)
    monkeypatch.setattr(buildfs, "VIOLATIONS", found)
    return found


def test_a_registered_filesystem_is_not_handed_to_the_next_builder(empty_pool):
    """A filesystem registered on a builder's connection (how lakeql reads s3://: the lake's credentials)
    is the database's, not the cursor's: a database that has one is closed, not kept."""
    con = buildfs.pooled()
    con.register_filesystem(fsspec.filesystem("memory"))
    con.close()
    assert empty_pool == []
    nxt = buildfs.pooled()
    assert not nxt.filesystem_is_registered("memory")
    nxt.close()
    assert len(empty_pool) == 1


class _FakeRoot:
    """A stand-in database that records the statements run on it."""

    def __init__(self, leftovers: int) -> None:
        self.sql: list[str] = []
        self.leftovers, self.closed = leftovers, False

    def execute(self, sql: str):
        self.sql.append(sql)
        return self

    def fetchall(self):
        return [(self.leftovers,)]

    def list_filesystems(self):
        return []

    def close(self) -> None:
        self.closed = True


class _FakeCursor:
    def close(self) -> None:
        pass


def test_a_database_with_leftovers_is_closed_without_the_memory_flush(empty_pool):
    """The flush (a 16 MB limit for a moment) ran before the leftovers were counted: a database about to
    be closed had its tables spilled to DuckDB's temp directory (``.tmp`` of the working directory: a 3M-row
    table, 0.12 CPU s of writes) for nothing."""
    root = _FakeRoot(leftovers=1)
    buildfs.PooledConnection(_FakeCursor(), root).close()
    assert root.closed and empty_pool == []
    assert not any("memory_limit" in s for s in root.sql), root.sql
    clean = _FakeRoot(leftovers=0)
    buildfs.PooledConnection(_FakeCursor(), clean).close()
    assert any("memory_limit" in s for s in clean.sql) and empty_pool == [clean]


@pytest.mark.parametrize("sql", [
    "SET preserve_insertion_order = false",
    "SET GLOBAL default_order = 'DESC'",
    "SET default_null_order = 'nulls_first'",
    "SET GLOBAL Calendar = 'japanese'",
    "SET enable_external_access = false",
    "SET temp_directory = '/nonexistent/lakeql'",
    "CREATE MACRO memory.main.leaked(x) AS x + 1",
    "CREATE SEQUENCE memory.main.leaked",
    "CREATE TYPE memory.main.leaked AS INTEGER",
    "CREATE SCHEMA memory.leaked",
])
def test_verify_finds_database_state_the_cheap_check_cannot_see(empty_pool, verify, sql):
    """Global settings and catalog objects outlive the cursor: with :data:`buildfs.VERIFY` such a
    database is closed and named (without it, it was handed on: the next builder sorted, read and
    wrote with the leaked setting, or could not read files at all after ``enable_external_access``)."""
    con = buildfs.pooled()
    con.execute(sql)
    con.close()
    assert empty_pool == [] and len(verify) == 1, verify
    nxt = buildfs.pooled()
    assert nxt.execute("SELECT current_setting('preserve_insertion_order'), current_setting('Calendar'), "
                       "current_setting('enable_external_access')").fetchall() == [(True, "gregorian", True)]
    nxt.close()
    assert len(empty_pool) == 1 and len(verify) == 1


def test_verify_finds_a_python_udf(empty_pool, verify):
    """A Python function made on a builder's cursor stays in the database after the cursor closed; the
    next connection calling it crashes the process (DuckDB 2.0.1: SIGSEGV). Not kept under VERIFY."""
    con = buildfs.pooled()
    con.create_function("lakeql_leaked", lambda x: x, ["INTEGER"], "INTEGER")
    con.close()
    assert empty_pool == [] and len(verify) == 1, verify


def _lake(root):
    lake = root / "lake"
    shutil.copytree(lakeql.__path__[0] + "/sample_lake/flights", lake / "flights")
    return lake


def test_a_build_and_refreshes_leave_nothing_in_the_pooled_databases(tmp_path, empty_pool, verify):
    """Every builder that takes a pooled database today (column profiles, top-value hashes,
    ``lake.duckdb``, ``views/``) gives it back as it was: a full build and two refreshes (a file added,
    a file changed) of every default capability, each give-back fully checked."""
    lake = _lake(tmp_path)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False)
    assert empty_pool, "the build gave no database back"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM '{lake}/flights/airlines.parquet' LIMIT 3) TO "
                f"'{lake}/flights/airlines2.parquet' (FORMAT parquet)")
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
    con.execute(f"COPY (SELECT * FROM '{lake}/flights/airlines.parquet' LIMIT 5) TO "
                f"'{lake}/flights/airlines2.parquet' (FORMAT parquet)")
    con.close()
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
    assert verify == []
    assert empty_pool


def _main_tfidf(m):
    """``tfidf_csr`` as before append5: the products over every column."""
    n_rows, n_dims = m.shape
    m.data = 1.0 + np.log(np.maximum(m.data, 1e-9), dtype=np.float32)
    m.data = np.maximum(m.data, 0.1).astype(np.float32)
    df = np.bincount(m.indices, minlength=n_dims)
    idf = np.log((n_rows + 1) / (df + 1), dtype=np.float64) + 1.0
    m.data = (m.data * idf[m.indices]).astype(np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ m, dtype=np.float32)


def _edge_matrices():
    d = 1 << 20
    yield sp.csr_matrix((0, d), dtype=np.float32)  # no column at all (an empty lake)
    yield sp.csr_matrix((3, d), dtype=np.float32)  # columns without a feature
    yield sp.csr_matrix((3, 0), dtype=np.float32)  # no feature space
    yield sp.csr_matrix(([2.0], [d - 1], [0, 1]), shape=(1, d), dtype=np.float32)  # one table
    yield sp.csr_matrix(([1.0, 2.0, 3.0, 4.0], [9, 3, 9, 1], [0, 3, 3, 4]), shape=(3, d), dtype=np.float32)
    yield sp.csr_matrix(([0.0, 5.0], [7, 7], [0, 1, 2]), shape=(2, 64), dtype=np.float32)  # explicit zero
    rng = np.random.default_rng(7)
    for n, dims, nnz in ((1, 64, 40), (40, d, 200_000), (500, 4096, 20_000)):  # both branches
        yield sp.csr_matrix((rng.integers(1, 9, nnz).astype(np.float32),
                             (rng.integers(0, n, nnz), rng.integers(0, dims, nnz))), shape=(n, dims))


def test_tfidf_over_present_features_is_byte_equal_on_edge_cases():
    from lakeql.joins.union_index import tfidf_csr

    for m in _edge_matrices():
        a, b = _main_tfidf(m.copy()), tfidf_csr(m.copy())
        assert a.shape == b.shape and a.dtype == b.dtype
        for x, y in ((a.data, b.data), (a.indices, b.indices), (a.indptr, b.indptr)):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), m.shape
