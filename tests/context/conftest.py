"""Fixtures for the context capability: the sample lake indexed by this capability alone, a connection
with only the foundation and this capability registered, and Spider schemas as lakes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from lakeql import context, core_udfs, sqlfiles, views
from lakeql.catalog import Catalog
from lakeql.connection import LakeContext
from lakeql.indexer import BuildContext
from lakeql.lake import discover
from lakeql.options import IndexOptions
from lakeql.store import Store

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "lakeql" / "sample_lake"
SPIDER = REPO / ".." / "shared" / "data" / "spider"
SCHEMAS = REPO / "schemas"
TYPES = {"text": "VARCHAR", "number": "DOUBLE", "time": "TIMESTAMP", "boolean": "BOOLEAN"}


def options(**kw) -> IndexOptions:
    return IndexOptions.from_kwargs(refresh=True, **kw)


def build_context(lake_root: Path, index_dir: Path, **kw) -> Store:
    """Catalogue ``lake_root`` and run this capability's build into ``index_dir``."""
    lake = discover(lake_root)
    store = Store.for_lake(lake, index_dir)
    store.ensure_writable()
    cat = Catalog.build(lake, store, refresh=True)
    context.build(BuildContext(lake, store, cat, options(**kw)))
    return store


def connect(lake_root: Path, index_dir: Path | None):
    """A DuckDB connection with the lake's views, the foundation UDFs and this capability only."""
    con = duckdb.connect()
    lake = discover(lake_root)
    store = Store.for_lake(lake, index_dir) if index_dir else None
    ctx = LakeContext(lake, store)
    ctx.views = views.attach(con, ctx)
    core_udfs.register(con, ctx)
    sqlfiles.run(con, "lakeql", index_dir=store.root if store else None)
    context.register(con, ctx)
    sqlfiles.run(con, context.NAME, index_dir=store.root if store else None)
    return con, ctx


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> tuple[Path, Path]:
    """(lake, index dir): a copy of the sample lake, indexed with embeddings (loads MiniLM once)."""
    root = tmp_path_factory.mktemp("sample")
    lake = root / "lake"
    shutil.copytree(SAMPLE, lake)
    build_context(lake, root / "idx")
    return lake, root / "idx"


@pytest.fixture(scope="session")
def sample_con(sample_index):
    lake, idx = sample_index
    con, _ = connect(lake, idx)
    yield con
    con.close()


@pytest.fixture(scope="session")
def spider_dbs() -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    if not (SPIDER / "tables.json").exists():
        pytest.fail(f"Spider data not found at {SPIDER} (../shared/data/spider)")
    out = {}
    for db in json.loads((SPIDER / "tables.json").read_text()):
        tables = [(t, []) for t in db["table_names_original"]]
        seen = [set() for _ in tables]
        for (ti, col), ty in zip(db["column_names_original"], db["column_types"], strict=True):
            if ti >= 0 and col.lower() not in seen[ti]:
                seen[ti].add(col.lower())
                tables[ti][1].append((col, TYPES.get(ty, "VARCHAR")))
        out[db["db_id"]] = tables
    return out


@pytest.fixture(scope="session")
def spider_dev() -> list[dict]:
    if not (SPIDER / "dev.json").exists():
        pytest.fail(f"Spider data not found at {SPIDER} (../shared/data/spider)")
    return json.loads((SPIDER / "dev.json").read_text())


def write_empty(path: Path, cols: list[tuple[str, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "TIMESTAMP": pa.timestamp("us"),
             "BOOLEAN": pa.bool_()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.schema([(c, arrow[t]) for c, t in cols]).empty_table(), path)


def spider_lake(root: Path, dbs, names: list[str], flat: bool = False) -> Path:
    for db in names:
        for t, cols in dbs[db]:
            write_empty(root / (f"{db}__{t}.parquet" if flat else f"{db}/{t}.parquet"), cols)
    return root


def sqlite_to_duckdb(sql: str) -> str:
    import re

    return re.sub(r'"([^"]*)"', lambda m: "'" + m.group(1).replace("'", "''") + "'", sql)
