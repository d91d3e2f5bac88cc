"""The schema files' min_len / max_len describe the values as they are (like min / max), while the column
profile's len_min / len_max, which joins compare, stay those of the normalized values
(``nullif(lower(trim(v)), '')``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import yaml

import lakeql
from lakeql import profile
from lakeql.catalog import Catalog
from lakeql.lake import discover

VALUES = ["   \t  \n ", "", "  Hello World  ", "ABCD", None, "x"]


def _lake(root: Path, files: int = 1) -> Path:
    """d.t: one file, or ``files`` files in the folder d/t/ (one table)."""
    folder = root / "d" / "t" if files > 1 else root / "d"
    folder.mkdir(parents=True)
    con = duckdb.connect()
    for i in range(files):
        con.execute("CREATE OR REPLACE TABLE t (s VARCHAR, n INTEGER)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [[v, j] for j, v in enumerate(VALUES[i::files])])
        con.execute(f"COPY t TO '{folder / (f'part{i}.parquet' if files > 1 else 't.parquet')}'")
    con.close()
    return root


def _sql_lengths(expr: str) -> tuple[int, int]:
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT min(length({expr})), max(length({expr})) FROM (SELECT unnest(?) AS s)", [VALUES]
        ).fetchone()
    finally:
        con.close()


def _core_row(root: Path) -> dict:
    lake = discover(root)
    cat = Catalog.open(lake, None)
    (table,) = lake.tables.values()
    rows, _ = profile.profile_table(
        table, [(c.column_name, c.type) for c in cat.columns(table)], cat.row_count(table)
    )
    return {r["column_name"]: r for r in rows}["s"]


def test_the_schema_file_lengths_are_those_of_the_values(tmp_path):
    root = _lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(root, progress=False)
    doc = yaml.safe_load((root / ".lakeql" / "schemas" / "d" / "t.yaml").read_text())
    s = doc["columns"]["d.t.s"]
    raw = _sql_lengths("s")
    assert raw == (0, 15)
    assert (s["min_len"], s["max_len"]) == raw  # was 1..11: lower(trim(v)) without empty values
    assert (s["min_len"], s["max_len"]) == _context_own_profile(root)  # the context's own profile agrees


def _context_own_profile(root: Path) -> tuple[int, int]:
    from lakeql.context.profile import profile_table

    lake = discover(root)
    cat = Catalog.open(lake, None)
    (table,) = lake.tables.values()
    con = duckdb.connect()
    try:
        p = {c.name: c for c in profile_table(con, table, cat).columns}["s"]
    finally:
        con.close()
    return p.min_len, p.max_len


def test_join_profiles_keep_the_normalized_lengths(tmp_path):
    row = _core_row(_lake(tmp_path / "lake"))
    assert (row["len_min"], row["len_max"]) == _sql_lengths("nullif(lower(trim(s)), '')")  # what joins use
    assert (row["text_len_min"], row["text_len_max"]) == _sql_lengths("s")
    assert row["n_values"] == 4 and row["trimmed"] is False


def test_files_merged_give_the_lengths_of_the_whole(tmp_path):
    from lakeql.profile_merge import merge

    whole = _core_row(_lake(tmp_path / "one"))
    root = _lake(tmp_path / "three", files=3)
    lake = discover(root)
    cat = Catalog.open(lake, None)
    (table,) = lake.tables.values()
    cols = [(c.column_name, c.type) for c in cat.columns(table)]
    parts = []
    assert len(table.files) == 3
    for f in sorted((root / "d" / "t").glob("*.parquet")):
        sub = tmp_path / f"part_{f.stem}" / "lake"
        (sub / "d").mkdir(parents=True)
        (sub / "d" / "t.parquet").write_bytes(f.read_bytes())
        plake = discover(sub)
        pcat = Catalog.open(plake, None)
        (pt,) = plake.tables.values()
        parts.append(profile.profile_table(pt, cols, pcat.row_count(pt)))
    merged = {r["column_name"]: r for r in merge(table.key, cols, parts)[0]}["s"]
    for k in ("len_min", "len_max", "text_len_min", "text_len_max"):
        assert merged[k] == whole[k], k
