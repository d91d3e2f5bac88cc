"""The SQL surface of joins: ``joinable_impl`` (behind the ``joinable`` macro) and ``joins_path_impl``.

The loaded index is cached in ``ctx.cache`` keyed by the build times of the join and semantic indexes,
so it is read once per connection and reloaded after a rebuild.
"""

from __future__ import annotations

import json
from typing import Any

from lakeql.errors import CorruptIndexError, LakeqlError, NotIndexedError, StaleIndexError
from lakeql.udf import check_k, table_udf

RESULT_COLUMNS = [
    ("candidate_table", "VARCHAR"), ("candidate_column", "VARCHAR"), ("score", "DOUBLE"),
    ("containment", "DOUBLE"), ("candidate_uniqueness", "DOUBLE"), ("method", "VARCHAR"),
    ("sample_matches", "STRUCT(query_value VARCHAR, candidate_value VARCHAR)[]"), ("join_sql", "VARCHAR"),
]


PROFILE_COLUMNS = [
    ("table_name", "VARCHAR"), ("column_name", "VARCHAR"), ("type", "VARCHAR"), ("indexed", "BOOLEAN"),
    ("note", "VARCHAR"), ("row_count", "BIGINT"), ("n_distinct", "BIGINT"), ("uniqueness", "DOUBLE"),
    ("null_share", "DOUBLE"), ("len_min", "INTEGER"), ("len_max", "INTEGER"), ("len_avg", "DOUBLE"),
    ("pattern", "VARCHAR"),
]


def index_file(ctx, kind: str):
    """The path of a lake-wide join index file, or a clear error naming how to build it."""
    if ctx.store is None:
        raise LakeqlError("no index store: run 'lakeql index LAKE' first")
    entry = ctx.store.find(kind)
    if entry is None:
        raise NotIndexedError(f"no {kind} index: build it with 'lakeql index LAKE' (without --no-joins)")
    p = ctx.store.root / entry.path
    if not p.exists():
        raise CorruptIndexError(f"the {kind} index file {str(p)!r} is missing: run "
                                "'lakeql index --refresh LAKE'")
    return p


def load_index(store):
    """Open the join index of ``store`` (and its semantic index when built)."""
    from lakeql.joins.joinindex import JoinIndex

    entry = store.find("join_index")
    if entry is None:
        raise NotIndexedError("no join index: build it with 'lakeql index LAKE' (without --no-joins)")
    root = store.root / entry.path
    if not root.exists():
        raise CorruptIndexError(f"the join index files are missing ({entry.path}): run "
                                "'lakeql index --refresh LAKE'")
    sem = store.find("join_semantic")
    return JoinIndex(root, store.root / sem.path if sem is not None else None)


def searcher(ctx):
    """The connection's cached :class:`Searcher` (reloaded when the index was rebuilt)."""
    from lakeql.joins.search import Searcher

    store = ctx.store
    if store is None:
        raise LakeqlError("no index store: run 'lakeql index LAKE' first")
    entry = store.find("join_index")
    sem = store.find("join_semantic")
    key = ("joins", entry.built_at if entry else None, sem.built_at if sem else None)
    cached = ctx.cache.get("joins")
    if cached is not None and cached[0] == key:
        return cached[1]
    s = Searcher(load_index(store), ctx.require_lake().tables)
    check_lake(ctx, store, entry)
    ctx.cache["joins"] = (key, s)
    return s


def check_lake(ctx, store, entry) -> None:
    """Raise :class:`StaleIndexError` when a table changed or appeared since the join index was built."""
    path = store.root / entry.path / "tables.json"
    try:
        built = json.loads(path.read_text())
    except Exception as exc:  # noqa: BLE001
        raise CorruptIndexError(f"the join index is missing {path.name} ({type(exc).__name__}): run "
                                "'lakeql index --refresh LAKE'") from None
    lake = ctx.require_lake()
    bad = sorted(k for k, t in lake.tables.items() if built.get(k) != t.fingerprint)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise StaleIndexError(f"the join index is older than the Parquet files of table {bad[0]}{more}: "
                              "run 'lakeql index --refresh LAKE'")


def parse_columns(cols_json: str | None) -> list[str]:
    """The column argument: a name or a list of names (the macro passes it as JSON)."""
    if cols_json is None:
        raise LakeqlError("joinable needs a column name or a list of column names, got NULL")
    val = json.loads(cols_json)
    cols = [val] if isinstance(val, str) else val
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c.strip() for c in cols):
        raise LakeqlError("joinable needs a column name or a non-empty list of column names, "
                          f"got {cols_json}")
    if len(set(cols)) != len(cols):
        raise LakeqlError(f"joinable: a column is repeated in {cols_json}")
    return cols


def joinable(ctx, table: str | None, cols_json: str | None, k: Any, mode: str | None
             ) -> list[dict[str, Any]]:
    from lakeql.joins.search import MODES

    kk = check_k(k)
    m = (mode or "").strip().lower()
    if m not in MODES:
        raise LakeqlError(f"joinable: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if table is None:
        raise LakeqlError("joinable needs a table name, got NULL")
    cols = parse_columns(cols_json)
    t = ctx.table(table)
    for c in cols:
        ctx.column(t, c)  # unknown column -> suggestions from the catalog
    s = searcher(ctx)  # no join index at all -> says how to build it
    ctx.require_index("join_values", t, flag="")  # this table changed since -> stale, names --refresh
    ids = [s.col_id(t.key, ctx.column(t, c).column_name) for c in cols]
    if len(ids) > 1:
        if m == "semantic":
            raise LakeqlError("joinable: composite keys are searched with mode 'equi' or 'auto' only")
        found = s.composite(t.key, ids, kk)
    elif m == "equi":
        found = s.equi(ids[0], kk)
    elif m == "semantic":
        found = s.semantic(ids[0], kk)
    else:
        found = s.auto(ids[0], kk)
    return [c.row() for c in found]


def register(con, ctx) -> None:

    def joinable_impl(table, cols_json, k, mode):
        return joinable(ctx, table, cols_json, k, mode)

    def graph_impl(min_score):
        path = index_file(ctx, "join_graph")
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        t = t.filter(pc.greater_equal(t["score"], float(min_score or 0.0)))
        t = t.sort_by([("score", "descending"), ("table_name", "ascending"), ("column_name", "ascending")])
        return t.to_pylist()

    def columns_impl(_dummy):
        import pyarrow.parquet as pq

        path = index_file(ctx, "join_index") / "columns.parquet"
        names = [n for n, _ in PROFILE_COLUMNS]
        t = pq.read_table(path, columns=[*names, "ordinal"]).sort_by([("table_name", "ascending"),
                                                                       ("ordinal", "ascending")])
        return t.select(names).to_pylist()

    table_udf(con, "joinable", joinable_impl, ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR"], RESULT_COLUMNS)
    from lakeql.joins.graph import edge_schema

    table_udf(con, "join_graph", graph_impl, ["DOUBLE"],
              [(f.name, "DOUBLE" if str(f.type) == "double" else "VARCHAR") for f in edge_schema()])
    table_udf(con, "join_columns", columns_impl, ["INTEGER"], PROFILE_COLUMNS)
