"""The SQL surface of joins: ``joinable_impl`` (behind the ``joinable`` macro) and ``joins_path_impl``.

The loaded index comes from ``ctx.load_index`` (read once per connection, reloaded after a rebuild,
memory bounded) and holds no connection: every function here is safe from many threads and cursors.
Staleness is per table: a table changed since the build makes only answers that touch it fail (the
query table) or leave it out (candidates); the rest of the lake keeps its joins.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from lakeql import parquet_io
from lakeql.errors import CorruptIndexError, LakeqlError, NotIndexedError, StaleIndexError, shown
from lakeql.udf import check_k, scalar_udf, table_udf


class StaleJoinsWarning(UserWarning):
    """``joinable`` / ``join_graph`` left out tables changed or removed since the join index was built."""


RESULT_COLUMNS = [
    ("candidate_table", "VARCHAR"), ("candidate_column", "VARCHAR"), ("score", "DOUBLE"),
    ("containment", "DOUBLE"), ("candidate_uniqueness", "DOUBLE"), ("method", "VARCHAR"),
    ("sample_matches", "STRUCT(query_value VARCHAR, candidate_value VARCHAR)[]"), ("join_sql", "VARCHAR"),
    ("transform", "VARCHAR"),  # discovery (transform.py): the learned program of method 'transform'
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
    ctx.store.verify_once(entry)  # a damaged file: the error naming the fix (a stat per file once verified)
    return p


def open_index(store):
    """Open the join index of ``store`` with its semantic index when built (build time, benchmarks)."""
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


load_index = open_index  # the name benchmarks and older callers use


def searcher(ctx):
    """A :class:`Searcher` over the connection's cached join index (``ctx.load_index``: loaded once,
    reloaded after a rebuild, shared read-only by every thread), without the columns of tables that
    changed or vanished since the build (see :func:`stale_tables`)."""
    from lakeql.joins.joinindex import JoinIndex, SemanticIndex
    from lakeql.joins.search import Searcher

    if ctx.store is None:
        raise LakeqlError("no index store: run 'lakeql index LAKE' first")
    ix = ctx.load_index("join_index", None, "", lambda path, _e: JoinIndex(path))
    if ctx.store.find("join_semantic") is not None:
        sem = ctx.load_index("join_semantic", None, "", lambda path, _e: SemanticIndex(path, len(ix)))
        ix = ix.with_semantic(sem)
    return Searcher(ix.excluding(stale_tables(ctx, ix)), ctx.require_lake().tables)


def stale_tables(ctx, ix) -> set[str]:
    """Tables of the join index whose files changed or vanished since it was built (as this connection's
    lake sees them). Their columns are left out of every answer; the rest of the lake stays searchable."""
    lake = ctx.require_lake()
    key = ("joins-stale", id(ix.built), id(lake))
    hit = ctx.cache.get("joins-stale")
    if hit is not None and hit[0] == key:
        return hit[1]
    stale = {t for t, fp in ix.built.items() if not built_from_files_of(lake, t, fp)}
    ctx.cache["joins-stale"] = (key, stale)
    return stale


def built_from_files_of(lake, key: str, fingerprint: str) -> bool:
    """True when a lake-wide index entry of table ``key`` built from files of ``fingerprint`` describes the
    table: its files as this connection saw them, or its files as they are now on disk (re-listed only when
    they differ: the table changed after this connection opened and was indexed again, as a new connection
    sees it; leaving it out silently dropped it from joinable's answers on a long-lived connection)."""
    table = lake.tables.get(key)
    if table is None:
        return False
    if table.fingerprint == fingerprint:
        return True
    from lakeql.store import current_fingerprint

    try:
        return current_fingerprint(table, getattr(lake, "fs", None)) == fingerprint
    except Exception:  # noqa: BLE001 - its files are gone or unreadable now: stale
        return False


def graph_stale_tables(ctx) -> set[str]:
    """Tables changed or vanished since the join index was built (from its ``tables.json``, cheap)."""
    entry = ctx.store.find("join_index") if ctx.store is not None else None
    if entry is None or ctx.lake is None:
        return set()
    try:
        built = json.loads((ctx.store.root / entry.path / "tables.json").read_text()).get("tables", {})
    except Exception:  # noqa: BLE001 - the graph stands on its own; joinable reports a damaged index
        return set()
    lake = ctx.lake
    return {t for t, fp in built.items() if not built_from_files_of(lake, t, fp)}


def stale_note(stale: set[str], what: str = "joinable") -> str | None:
    """The note saying which tables ``what`` left out because they changed or vanished since the join
    index was built (their columns are not in the answer), with the fix; None when there are none."""
    if not stale:
        return None
    names = sorted(stale)
    shown_names = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5
                                                           else "")
    return (f"{what} left out {len(names)} table(s) changed or removed since the join index was built "
            f"({shown_names}): their columns are not in this answer; run 'lakeql index --refresh LAKE' "
            "to search them again")


def warn_stale(stale: set[str], what: str = "joinable") -> None:
    """Warn (a :class:`StaleJoinsWarning`, like the other stale cases of lakeql's SQL functions) when
    ``what``'s answer left out stale tables: the answer's columns stay as they are."""
    note = stale_note(stale, what)
    if note is not None:
        warnings.warn(note, StaleJoinsWarning, stacklevel=3)


def stale_in_reach(ctx, stale: set[str], ids: list[int], mode: str) -> set[str]:
    """The tables of ``stale`` an answer of query columns ``ids`` could have named (review33): in 'equi'
    mode, those with a column sharing values with a query column as the join index was built (the
    containment of the loaded index, stale columns included: a few ms, only when a table is stale). A
    changed table that shares no value (a log table appended to all day) is not named on every call.
    Other modes also match values that only mean the same: every stale table counts."""
    if not stale or mode != "equi":
        return stale
    from lakeql.joins.joinindex import JoinIndex

    base = ctx.load_index("join_index", None, "", lambda path, _e: JoinIndex(path))  # stale columns kept
    names = base.table_name
    near: set[str] = set()
    for q in ids:
        ov = base.overlaps(q)
        near.update(names[int(c)] for c in ov.cols[ov.containment > 0])
    return stale & near


def left_out_tables(ctx, table: str | None = None, column: str | None = None, mode: str | None = None
                    ) -> set[str]:
    """The tables ``joinable`` leaves out on this connection now (changed or removed since the join index
    was built): for a caller that shows the note itself (the MCP tool). Empty without a join index.
    With ``table``, ``column`` (a name) and ``mode``: only those the answer could have named
    (:func:`stale_in_reach`), as the SQL call's warning."""
    if ctx.store is None or ctx.lake is None or ctx.store.find("join_index") is None:
        return set()
    from lakeql.joins.joinindex import JoinIndex
    from lakeql.joins.search import Searcher

    try:
        ix = ctx.load_index("join_index", None, "", lambda path, _e: JoinIndex(path))
        stale = stale_tables(ctx, ix)
        if not stale or table is None or column is None or (mode or "").strip().lower() != "equi":
            return stale
        t = ctx.table(table)
        q = Searcher(ix, ctx.require_lake().tables).col_id(t.key, ctx.column(t, column).column_name)
        return stale_in_reach(ctx, stale, [q], "equi")
    except LakeqlError:  # joinable itself says what is wrong with the index or the arguments
        return set()


def check_query_table(ix, table) -> None:
    """Raise a clear error when the query table is not answerable from the join index: it could not be
    read when indexing, it is newer than the index, or its files changed since (checked on disk now)."""
    from lakeql.store import current_fingerprint

    bad = ix.failed.get(table.key)
    if bad is not None and bad.get("fingerprint") == table.fingerprint:
        raise LakeqlError(f"table {table.key} could not be read when the join index was built "
                          f"({bad.get('error', 'unreadable')}): fix or remove its files, then run "
                          "'lakeql index --refresh LAKE'")
    built = ix.built.get(table.key)
    if built is None:
        raise NotIndexedError(f"table {table.key} is not in the join index (new since it was built): run "
                              "'lakeql index --refresh LAKE'")
    if built != current_fingerprint(table):
        from lakeql.lake import files_word

        raise StaleIndexError(f"the join index is older than the {files_word(table)} of table {table.key}: "
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
        raise LakeqlError(f"joinable: mode must be one of {', '.join(MODES)}, got {shown(mode)}")
    if table is None:
        raise LakeqlError("joinable needs a table name, got NULL")
    cols = parse_columns(cols_json)
    t = ctx.table(table)
    for c in cols:
        ctx.column(t, c)  # unknown column -> suggestions from the catalog
    s = searcher(ctx)  # no join index at all -> says how to build it
    check_query_table(s.ix, t)  # this table unreadable / new / changed since -> says so, names --refresh
    stale = stale_tables(ctx, s.ix)
    damaged = sorted(set(s.ix.damaged) - stale)
    if damaged:  # their columns would be missing from the answer: an error, not a partial answer
        raise CorruptIndexError(f"the column profiles of {len(damaged)} table(s) ({', '.join(damaged[:5])}) "
                                "are damaged or do not match the join index: run 'lakeql index --refresh "
                                "LAKE' to rebuild them")
    ids = [s.col_id(t.key, ctx.column(t, c).column_name) for c in cols]
    if len(ids) > 1:
        if m == "semantic":
            raise LakeqlError("joinable: composite keys are searched with mode 'equi' or 'auto' only")
        found = s.composite(t.key, ids, kk)
    elif m == "equi":
        found = s.equi(ids[0], kk)
    elif m == "semantic":
        found = s.semantic(ids[0], kk)
    elif m == "transform":  # discovery: transformation joins only (added by transform.extend below)
        found = []
    else:
        found = s.auto(ids[0], kk)
    from lakeql.joins.transform import extend  # discovery: method = 'transform' rows (auto, transform)

    found = extend(ctx, s, ids, kk, m, found)
    # the answer misses their columns: say so (trial12: an agent could not tell), for the tables that
    # could have been in it (review33)
    warn_stale(stale_in_reach(ctx, stale, ids, m))
    return [c.row() for c in found]


def register(con, ctx) -> None:

    def joinable_impl(table, cols_json, k, mode):
        return joinable(ctx, table, cols_json, k, mode)

    def graph_impl(min_score):
        path = index_file(ctx, "join_graph")
        import pyarrow as pa
        import pyarrow.compute as pc

        t = parquet_io.read_table(path)
        t = t.filter(pc.greater_equal(t["score"], float(min_score or 0.0)))
        stale = graph_stale_tables(ctx)
        if stale:  # edges of tables changed since the build are left out, the rest stands
            warn_stale(stale, "join_graph")
            gone = pa.array(sorted(stale))
            t = t.filter(pc.invert(pc.or_(pc.is_in(t["table_name"], gone),
                                          pc.is_in(t["candidate_table"], gone))))
        t = t.sort_by([("score", "descending"), ("table_name", "ascending"), ("column_name", "ascending")])
        return t.to_pylist()

    def columns_impl(_dummy):
        path = index_file(ctx, "join_index") / "columns.parquet"
        names = [n for n, _ in PROFILE_COLUMNS]
        t = parquet_io.read_table(path, columns=[*names, "ordinal"]).sort_by([("table_name", "ascending"),
                                                                       ("ordinal", "ascending")])
        return t.select(names).to_pylist()

    def join_files(path):
        """``path`` unchanged; when it is this index's join index or column profile files, each is checked
        against its manifest checksums first (a ``stat`` per file once verified), so a damaged one is an
        error naming the fix rather than DuckDB's "too small to be a Parquet file" or a wrong answer.
        Other paths (a ``_vals :=`` given by the user) are not looked at."""
        from lakeql.lake import glob_escape

        if ctx.store is None or path is None:
            return path
        root = glob_escape(str(ctx.store.root))
        if path == f"{root}/column_profile/*/hashes.parquet":
            kinds = ("column_profile",)
        elif path == f"{root}/joins/lake/columns.parquet":
            kinds = ("join_index",)
        else:
            return path
        # CorruptIndexError naming 'lakeql index --refresh LAKE'; once per manifest read (not per query)
        if not [e for kind in kinds for e in ctx.store.verify_kind_once(kind)]:
            raise NotIndexedError("no join index: build it with 'lakeql index LAKE' (without --no-joins)")
        return path

    scalar_udf(con, "lakeql_join_files", join_files, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")  # folded at bind time: read_parquet() gets a constant
    table_udf(con, "joinable", joinable_impl, ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR"], RESULT_COLUMNS)
    from lakeql.joins.graph import edge_schema

    table_udf(con, "join_graph", graph_impl, ["DOUBLE"],
              [(f.name, "DOUBLE" if str(f.type) == "double" else "VARCHAR") for f in edge_schema()])
    table_udf(con, "join_columns", columns_impl, ["INTEGER"], PROFILE_COLUMNS)
    from lakeql.joins.discovery_sql import register as register_discovery  # unionable, find_tables

    register_discovery(con, ctx)
