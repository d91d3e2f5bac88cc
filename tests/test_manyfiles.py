"""Fixes of the manyfiles pass (benchmarks/results/manyfiles.md): named index targets checked up front,
MCP tables that tell the string 'NULL' from a NULL, the first n-gram query over many per-file shards."""

from __future__ import annotations

from pathlib import Path

import pytest

import lakeql
from lakeql.errors import LakeqlError, UnknownColumnError, UnknownTableError


def built_kinds(idx: Path) -> set[str]:
    """The kinds of index the manifest lists (nothing when no manifest was written)."""
    from lakeql.store import Store

    if not idx.exists():
        return set()
    return {e.kind for e in Store(idx).entries()}


@pytest.mark.parametrize(
    "flag, spec, error, named",
    [
        ("embed", "python.functions.docstrng", UnknownColumnError, "did you mean docstring"),
        ("embed", "python.functons.docstring", UnknownTableError, "did you mean python.functions"),
        ("embed", "python.functions.lineno", UnknownColumnError, "needs a text"),
        ("ngram", "python.modules.docstrin", UnknownColumnError, "did you mean docstring"),
        ("ngram", "python.functions.lineno", UnknownColumnError, "needs a text"),
    ],
)
def test_bad_target_fails_before_any_index_is_built(sample_copy, tmp_path, flag, spec, error, named):
    idx = tmp_path / "idx"
    with pytest.raises(error) as info:
        lakeql.index(sample_copy, index_dir=idx, progress=False, **{flag: [spec]})
    msg = str(info.value)
    assert f"--{flag}" in msg and named in msg, msg
    # the catalog is read (the check needs it); no capability index and no database were written
    assert built_kinds(idx) <= {"catalog"}, built_kinds(idx)
    assert not list(idx.glob("*.duckdb")) if idx.exists() else True


def test_every_bad_target_is_named_in_one_error(sample_copy, tmp_path):
    idx = tmp_path / "idx"
    with pytest.raises(LakeqlError) as info:
        lakeql.index(
            sample_copy,
            index_dir=idx,
            progress=False,
            embed=["python.modules.docstring", "python.modules.pakage"],
            ngram=["python.functions.qualnam"],
        )
    msg = str(info.value)
    assert "'python.modules.pakage'" in msg and "did you mean package" in msg, msg
    assert "'python.functions.qualnam'" in msg and "did you mean qualname" in msg, msg
    assert built_kinds(idx) <= {"catalog"}


def test_mcp_table_tells_the_text_null_from_sql_null(tmp_path):
    """A hive folder ``region=NULL`` reads as the text 'NULL', ``__HIVE_DEFAULT_PARTITION__`` as SQL NULL:
    the MCP query table showed both as NULL. Now the text is a quoted literal and a note says so."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.mcp.service import LakeService

    lake = tmp_path / "lake"
    for folder, zone in [
        ("NULL", "Europe/Paris"),
        ("__HIVE_DEFAULT_PARTITION__", "Asia/Tokyo"),
        ("Europe", "Europe/Rome"),
    ]:
        (lake / "geo" / "zones" / f"region={folder}").mkdir(parents=True)
        pq.write_table(
            pa.table({"tz": [zone], "note": ["null" if zone == "Europe/Rome" else "'NULL'"]}),
            lake / "geo" / "zones" / f"region={folder}" / "part-0.parquet",
        )
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"])
    svc = LakeService(lake, idx)
    try:
        out = svc.query("SELECT tz, region, note FROM geo.zones ORDER BY tz")
    finally:
        svc.close()
    rows = [line for line in out.splitlines() if line.startswith("| ") and "tz" not in line]
    assert rows[1] == "| Europe/Paris | 'NULL' | '''NULL''' |", out
    assert rows[2] == "| Europe/Rome | Europe | 'null' |", out
    assert rows[0] == "| Asia/Tokyo | NULL | '''NULL''' |", out
    assert "NULL is SQL NULL" in out, out
    # no quoting and no note where no text looks like NULL
    svc = LakeService(lake, idx)
    try:
        plain = svc.query(
            "SELECT tz, region FROM geo.zones WHERE region IS NULL OR region = 'Europe' ORDER BY tz"
        )
    finally:
        svc.close()
    assert "| Asia/Tokyo | NULL |" in plain and "'" not in plain and "SQL NULL" not in plain, plain
