"""Helpers of the vectors tests: the test lake, a vectors-only build and connection."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "lakeql" / "sample_lake" / "python" / "functions.parquet"
N_REAL = 200
ODD = ("Zeichenkette \u00fcn\u00efc\u00f6d\u00e9 \U0001f40d \u200b \u0645\u0631\u062d\u0628\u0627 "
       "\u4e2d\u6587 e\u0301")


def make_lake(root: Path) -> Path:
    """Write the test lake under ``root``; returns the lake folder."""
    import duckdb

    lake = root / "lake"
    (lake / "python").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE f AS SELECT module, qualname, kind, signature, lineno, left(docstring, 200) AS docstring
        FROM read_parquet('{SAMPLE}') WHERE docstring IS NOT NULL AND length(trim(docstring)) > 0
        ORDER BY module, qualname LIMIT {N_REAL}""")
    bad = [("bad", "null_doc", None), ("bad", "empty_doc", ""), ("bad", "blank_doc", "   \n\t "),
           ("bad", "huge_doc", "read and write zip archives " * 40_000), ("bad", "odd_doc", ODD)]
    for mod, name, doc in bad:
        con.execute("INSERT INTO f VALUES (?, ?, 'function', '()', 0, ?)", [mod, name, doc])
    con.execute(f"COPY (SELECT * FROM f) TO '{lake / 'python' / 'functions.parquet'}' (FORMAT parquet)")
    con.close()
    return lake


def build(lake: Path, index_dir: Path, embed: list[str], **options) -> None:
    """Index ``lake`` with the vectors builder only (the real build path, other capabilities left out)."""
    from lakeql import vectors
    from lakeql.catalog import Catalog
    from lakeql.indexer import BuildContext
    from lakeql.lake import discover
    from lakeql.store import Store

    lk = discover(lake)
    store = Store.for_lake(lk, index_dir)
    store.ensure_writable()
    opts = argparse.Namespace(embed=embed, model=None, embed_method="rabitq", embed_backend="torch",
                              embed_batch_size=64, embed_rescore="float16")
    for k, v in options.items():
        setattr(opts, k, v)
    catalog = Catalog.build(lk, store, refresh=True)
    vectors.build(BuildContext(lk, store, catalog, opts, refresh=bool(options.get("refresh"))))
    write_database(store, catalog)


def write_database(store, catalog) -> None:
    """``lake.duckdb`` as lakeql.indexer.write_database writes it, with the vectors SQL only (the other
    capabilities' pure macros need their own indexes, which these tests do not build)."""
    import duckdb

    from lakeql import sqlfiles
    from lakeql.connection import views_sql
    from lakeql.indexer import DUCKDB_CLI_STORAGE

    target = store.path("lake.duckdb")
    if target.exists():
        target.unlink()
    con = duckdb.connect(str(target), config={"storage_compatibility_version": DUCKDB_CLI_STORAGE})
    for stmt in views_sql(catalog):
        con.execute(stmt)
    for name in ("lakeql", "vectors"):
        sqlfiles.run(con, name, kinds=("pure",), index_dir=store.root)
    con.execute("CHECKPOINT")
    con.close()


def connect(lake: Path, index_dir: Path):
    """A DuckDB connection with the lake's views, the core functions and the vectors functions."""
    import duckdb

    from lakeql import core_udfs, sqlfiles, vectors
    from lakeql.connection import LakeContext, create_views
    from lakeql.lake import discover
    from lakeql.store import Store

    lk = discover(lake)
    store = Store.for_lake(lk, index_dir)
    ctx = LakeContext(lk, store)
    con = duckdb.connect()
    create_views(con, ctx.catalog)
    core_udfs.register(con, ctx)
    sqlfiles.run(con, "lakeql", index_dir=store.root)
    vectors.register(con, ctx)
    return con
