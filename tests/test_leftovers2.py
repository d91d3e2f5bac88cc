"""Defects noticed and left in earlier sessions (benchmarks/results/leftovers2.md): TIMETZ through Arrow,
caches of removed files, S3 retries multiplied, a listing/GET ETag mismatch, a BM25-only refresh loading
the embedding model."""

from __future__ import annotations

import io

import duckdb
import pytest

import lakeql

TZ_SQL = "SELECT t, ns, '12:00:00+02'::TIMETZ AS tz2, INTERVAL 1 MONTH AS iv FROM d.t ORDER BY i LIMIT 2"


@pytest.fixture(scope="module")
def tz_lake(tmp_path_factory):
    """A table with a real TIME WITH TIME ZONE column (DuckDB writes it to Parquet as a TIME adjusted to
    UTC) beside a nanosecond timestamp: a result with such a column (or an INTERVAL) is read as Arrow."""
    root = tmp_path_factory.mktemp("tz")
    (root / "lake" / "d").mkdir(parents=True)
    out = root / "lake" / "d" / "t.parquet"
    duckdb.sql(
        "COPY (SELECT i, ('12:3' || i || ':00+0' || i)::TIMETZ AS t, "
        "TIMESTAMP_NS '2020-01-01 00:00:00.000000001' + to_seconds(i) AS ns,"
        f" 'x' || i AS s FROM range(5) r(i)) TO '{out}' (FORMAT parquet)"
    )
    lakeql.index(root / "lake", index_dir=root / "idx", progress=False)
    return root / "lake", root / "idx"


def test_timetz_keeps_its_offset_in_the_catalog_the_schema_files_and_every_front_end(tz_lake, capsys):
    """The catalog said TIME (pyarrow's time64 of the footer) for a column DuckDB reads as TIMETZ, the
    schema file's min/max/samples had no offset (the profile's Arrow copy), and `lakeql sql`, the shell
    and MCP printed '12:00:00' for '12:00:00+02' in a result that also had a TIMESTAMP_NS/INTERVAL."""
    from lakeql.cli import main
    from lakeql.context import formats
    from lakeql.mcp.service import LakeService
    from lakeql.shell import Shell

    lake, idx = tz_lake
    con = lakeql.connect(lake, index_dir=idx)
    cat = con.execute(
        "SELECT column_name, type FROM lakeql_columns() WHERE table_name = 'd.t' ORDER BY ordinal"
    ).fetchall()
    assert cat == [(r[0], r[1]) for r in con.execute('DESCRIBE "d"."t"').fetchall()]
    assert ("t", "TIME WITH TIME ZONE") in cat
    col = next(
        c
        for c in formats.parse((idx / "schemas" / "d" / "t.yaml").read_text(), "yaml")["columns"]
        if c["column"] == "d.t.t"
    )
    assert col["type"] == "TIME WITH TIME ZONE"
    assert (col["min"], col["max"]) == ("08:34:00+00", "12:30:00+00")
    assert all(s.endswith("+00") for s in col["samples"])
    con.close()

    want = ["t,ns,tz2,iv", "12:30:00+00:00,2020-01-01 00:00:00.000000001,12:00:00+02:00,1 month"]
    assert main(["sql", str(lake), "--index-dir", str(idx), "--format", "csv", TZ_SQL]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == want

    out = io.StringIO()
    shell = Shell(str(lake), str(idx), stdout=out, stderr=io.StringIO(), interactive=False)
    shell.mode = "csv"
    shell.execute(TZ_SQL)
    shell.con.close()
    assert out.getvalue().splitlines()[:2] == want

    svc = LakeService(lake, idx)
    try:
        got = svc.query(TZ_SQL)
    finally:
        svc.close()
    assert "12:00:00+02:00" in got and "12:30:00+00:00" in got, got


def test_a_removed_tables_files_leave_the_checksum_caches_on_refresh(tmp_path, monkeypatch):
    """The process's checksum caches (store._STAMPED, _VERIFIED, _READ_BACK) kept one entry per index file
    ever checked: a long-lived process refreshing a lake whose tables come and go grew without end. A
    refresh's integrity pass now drops the files it no longer finds (and older stamps of rewritten ones);
    the on-disk verification record holds only files of the index."""
    import os

    from lakeql import store

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    for d in ("a", "b"):
        (lake / d).mkdir(parents=True)
        out = lake / d / "items.parquet"
        duckdb.sql(f"COPY (SELECT range AS id, 'v' || range AS name FROM range(50)) TO '{out}'")
    lakeql.index(lake, index_dir=idx, progress=False)
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
    prefix = str(idx.resolve()) + os.sep

    def cached() -> set[str]:
        return {f for f in store._STAMPED if f.startswith(prefix)} | {
            c[0] for c in store._VERIFIED if c[0].startswith(prefix)
        }

    assert any("b" + os.sep in f or "b.items" in f for f in cached())  # table b's files were checked
    (lake / "b" / "items.parquet").unlink()
    (lake / "b").rmdir()
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False)
    gone = sorted(
        f for f in cached() | {f for f in store._READ_BACK if f.startswith(prefix)} if not os.path.exists(f)
    )
    assert gone == []
    record = store.Store(idx)._load_verified()
    assert record and all((idx / label).exists() for label in record)
    # a reader (no integrity pass) sweeps entries of files gone or rewritten once its caches doubled
    fake = str(idx / "gone" / "x.parquet")
    store._STAMPED[fake] = ((1, 2, 3, 4), "1:00000000")
    store._VERIFIED.add((fake, 1, 2, 3, 4, "1:00000000"))
    monkeypatch.setattr(store, "_sweep_at", [0])
    st = store.Store(idx)
    assert all(st.damage(e) is None for e in st.entries())
    assert fake not in store._STAMPED and not any(c[0] == fake for c in store._VERIFIED)
    assert store._sweep_at[0] >= 100_000
