"""Review of rowfetch x hostile4 (benchmarks/results/review3.md)."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_rowfetch import _same

import lakeql
from lakeql.lake import UnsupportedFileWarning


def test_backslash_and_glob_in_a_file_name_is_skipped_not_misread(tmp_path):
    """DuckDB splits a file pattern at '\\' too (on Linux) and has no escape for it: the escaped pattern of
    'a\\[1].parquet' named the file '[1].parquet' of a folder 'a' (read instead), or nothing (the whole
    table was dropped). Such a file is skipped with a warning; the table's other files are read."""
    t = tmp_path / "lake" / "dom" / "t"
    t.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2]}), t / "a\\[1].parquet")
    pq.write_table(pa.table({"id": [3]}), t / "b.parquet")
    pq.write_table(pa.table({"id": [4]}), t / "c\\d.parquet")  # no glob character: read as spelled
    decoy = t / "a"  # what the pattern 'a\[[]1].parquet' names
    decoy.mkdir()
    pq.write_table(pa.table({"id": [99]}), decoy / "[1].parquet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        con = lakeql.connect(tmp_path / "lake")
    assert any(
        issubclass(w.category, UnsupportedFileWarning) and "backslash" in str(w.message) for w in caught
    )
    ids = sorted(r[0] for r in con.execute("SELECT id FROM dom.t").fetchall())
    assert ids == [3, 4, 99]  # b, c\d and the folder a's own [1].parquet: never a\[1] misread as a/[1]
    rows = _same(con, "dom.t", [0, 1, 2])  # the rowid fetch maps every hit to its file
    assert sorted(r[1] for r in rows) == ids
    con.close()


def test_index_dir_with_a_backslash_is_refused_naming_the_fix(tmp_path):
    """DuckDB opens 'ix\\y/lake.duckdb' as 'ix/y/lake.duckdb' (on Linux too): the build failed with an
    IOException naming a folder the user never gave (or wrote into another folder, when that existed)."""
    from lakeql.demo import SAMPLE_LAKE
    from lakeql.errors import IndexDirError

    with pytest.raises(IndexDirError, match="--index-dir"):
        lakeql.index(SAMPLE_LAKE, index_dir=tmp_path / "ix\\y", capabilities=["ngrams"], progress=False)
    assert not (tmp_path / "ix").exists()


def test_lake_path_with_a_backslash_and_a_glob_character_names_the_fix(tmp_path):
    """Every file of such a lake was skipped and the error said 'no Parquet files under' it."""
    from lakeql.errors import LakeqlError

    root = tmp_path / "l\\k[1]"
    (root / "dom").mkdir(parents=True)
    pq.write_table(pa.table({"id": [1]}), root / "dom" / "t.parquet")
    with pytest.raises(LakeqlError, match="rename or move the folder"):
        lakeql.connect(root)
