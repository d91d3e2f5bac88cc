"""review32: a hard review of h/leftovers6 (benchmarks/results/review32.md; docs/robustness.md rows 174-)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import lakeql

SAMPLE = Path(lakeql.__file__).resolve().parent / "sample_lake" / "python" / "functions.parquet"


def _lake_with_a_changed_table(tmp_path: Path) -> tuple[Path, object]:
    """A lake of two tables indexed, then ``d.gone`` rewritten (its domain's views are made while
    connecting, from the files)."""
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    rows = pq.read_table(SAMPLE).slice(0, 50)
    pq.write_table(rows, lake / "d" / "gone.parquet")
    pq.write_table(rows.slice(0, 7), lake / "d" / "stays.parquet")
    lakeql.index(lake, capabilities=["joins"], joins_semantic=False, progress=False)
    pq.write_table(rows.slice(0, 40), lake / "d" / "gone.parquet")
    return lake, rows


def test_a_view_failing_for_another_reason_keeps_its_error(tmp_path, monkeypatch):
    """leftovers6 recorded every view that failed while connecting as "its files no longer read as
    catalogued: changed while connecting?" and dropped DuckDB's error: a file turned into garbage (or a
    real bug, a type, a name) was relabelled as a writer's race, with 'reconnect' as the fix, and the
    agent never saw why. The reason now carries the view's error."""
    from lakeql import views

    lake, _ = _lake_with_a_changed_table(tmp_path)
    real = views._readable

    def writer_breaks_it(ctx, tables):
        got = real(ctx, tables)
        (lake / "d" / "gone.parquet").write_bytes(b"this is no parquet file at all, just hostile bytes")
        return got

    monkeypatch.setattr(views, "_readable", writer_breaks_it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake)
    try:
        got = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT table_name, status, error FROM lakeql_tables()").fetchall()}
        assert got["d.stays"] == ("ok", None), got
        status, error = got["d.gone"]
        assert status == "error" and "left out of this connection" in error, got
        # DuckDB's own reason is in it (the file is not Parquet), not only a guess about a writer
        assert "Error:" in error and "parquet" in error.lower(), error
        with pytest.raises(Exception, match=r"d\.gone.*left out of this connection.*Error:"):
            con.execute("SELECT count(*) FROM d.gone").fetchall()
        assert con.execute("SELECT count(*) FROM d.stays").fetchone()[0] == 7
    finally:
        con.close()
