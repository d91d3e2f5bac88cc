"""Composite join hints for the schema files, computed from the join graph and checked on the data.

The join graph (``joins/edges.parquet``) holds single-column edges only. An edge whose target column is
not a key on its own (``flights.time_hour -> flights.weather.time_hour``: 3 weather rows per hour) often
becomes one together with another column that both tables share by name and type (``origin``). For each
such edge (containment >= :data:`MIN_CONTAINMENT`) the pairs ``(edge column, same-named column)`` are
checked with one DuckDB query each: the pair is a hint when its value pairs are unique in the target
(>= :data:`MIN_UNIQUE` of its non-NULL rows, on at most :data:`SAMPLE_ROWS` rows) while neither column
is unique alone, and >= :data:`MIN_CONTAINMENT` of the source's distinct pairs occur in the target.

The :data:`MAX_CHECKS` strongest candidate pairs are considered (a refresh: the same pairs as a full
build, so the same hints); results are cached by what
each check reads of both tables (:func:`sample_key`), so a refresh re-checks only pairs whose sampled rows
can have changed: a file appended to a large Parquet folder table lies past its first
:data:`SAMPLE_ROWS` rows and re-checks nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

from lakeql import parquet_io
from lakeql.lake import Lake, quote_ident
from lakeql.sources import buildfs

MIN_CONTAINMENT = 0.9
MIN_UNIQUE = 0.99
SINGLE_UNIQUE = 0.9  # a target column this unique alone already gets a single-column hint
SAMPLE_ROWS = 200_000
MAX_CHECKS = 64


def _graph_table(store):
    """The join graph's Arrow table, or None when no graph was built or it cannot be read (generate()
    already warns about an unreadable graph)."""
    if store is None:
        return None
    entry = store.find("join_graph")
    if entry is None:
        return None
    try:
        return parquet_io.read_table(store.root / entry.path)
    except Exception:  # noqa: BLE001 - see the docstring
        return None


def _rows_in_lake(tab, lake: Lake) -> list[dict[str, Any]]:
    """The graph's rows (dicts) whose two tables are in ``lake``."""
    keys = lake.tables
    return [r for r in tab.to_pylist() if r.get("table_name") in keys and r.get("candidate_table") in keys]


def read_edges(store, lake: Lake) -> list[dict[str, Any]]:
    """Rows of the join graph between tables of ``lake`` (none when no graph was built)."""
    tab = _graph_table(store)
    return [] if tab is None else _rows_in_lake(tab, lake)


_Edge = tuple[str, str, str, str, float, float]  # table, column, candidate table, candidate column, score,
# containment


def candidate_edges(store, lake: Lake) -> list[_Edge]:
    """The edges of the join graph :func:`_candidates` can use, filtered in Arrow (no Python row per edge
    of the graph: 137,000 edges at 10,000 tables cost ~2 CPU s as dicts): both tables in ``lake``,
    different, containment >= :data:`MIN_CONTAINMENT` and a target column not a key alone."""
    tab = _graph_table(store)
    if tab is None:
        return []
    names = ("table_name", "column_name", "candidate_table", "candidate_column", "score", "containment")
    if any(c not in tab.column_names for c in (*names, "candidate_uniqueness")):
        return _edge_tuples(_rows_in_lake(tab, lake))  # an older graph: the plain definitions, one read
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = pa.array(list(lake.tables), pa.string())
        # the comparisons of _edge_tuples on floats: NULL counts as 0.0; NaN fails every comparison, so a
        # NaN containment is kept (not < MIN_CONTAINMENT) and so is a NaN uniqueness (not >= SINGLE_UNIQUE)
        mask = pc.and_(
            pc.and_(
                pc.is_in(tab["table_name"], value_set=keys), pc.is_in(tab["candidate_table"], value_set=keys)
            ),
            pc.and_(
                pc.invert(pc.less(pc.fill_null(tab["containment"], 0.0), MIN_CONTAINMENT)),
                pc.invert(pc.greater_equal(pc.fill_null(tab["candidate_uniqueness"], 0.0), SINGLE_UNIQUE)),
            ),
        )
        mask = pc.and_(mask, pc.not_equal(tab["table_name"], tab["candidate_table"]))
        sub = tab.filter(pc.fill_null(mask, False))
        cols = [sub[c].to_pylist() for c in names]
    except Exception:  # noqa: BLE001 - a column of another type: no hints (generate() warns of a bad graph)
        return []
    return [
        (a, ca, b, cb, float(s or 0.0), float(c or 0.0)) for a, ca, b, cb, s, c in zip(*cols, strict=True)
    ]


def _edge_tuples(edges: list[dict[str, Any]]) -> list[_Edge]:
    out = []
    for e in edges:
        if (e.get("containment") or 0.0) < MIN_CONTAINMENT:
            continue
        if (e.get("candidate_uniqueness") or 0.0) >= SINGLE_UNIQUE:
            continue
        if e["table_name"] == e["candidate_table"]:
            continue
        out.append(
            (
                e["table_name"],
                e["column_name"],
                e["candidate_table"],
                e["candidate_column"],
                float(e.get("score") or 0.0),
                float(e.get("containment") or 0.0),
            )
        )
    return out


def _candidates(
    edges, lake: Lake, catalog, limit: int | None = None
) -> list[tuple[float, str, str, tuple[str, str], tuple[str, str]]]:
    """(priority, source table, target table, source columns, target columns) pairs worth checking,
    strongest first, from join-graph rows (dicts, as :func:`read_edges`) or the tuples of
    :func:`candidate_edges`. ``limit``: only the first ``limit`` of that list (the same ones)."""
    rows = edges if not edges or isinstance(edges[0], tuple) else _edge_tuples(edges)
    return _candidate_pairs(rows, lake, catalog, limit)


def _effective(score: float, containment: float) -> float:
    """An edge's priority as the max() of _candidate_pairs sees it: <= 0 or NaN count as 0.0."""
    prio = score + containment
    return prio if prio > 0.0 else 0.0


def _candidate_pairs(edges: list[_Edge], lake: Lake, catalog, limit: int | None = None):
    """A pair's priority is the highest of the edges that make it. With ``limit``, edges are visited
    strongest first and the visit stops once ``limit`` pairs are known and a weaker edge comes: every pair
    made later ranks below them (its priority is lower), and no known pair's priority can rise - so the
    first ``limit`` pairs are those of the whole list (10,000 tables: 600,000 pairs, ~2 CPU s)."""
    if limit is not None:
        edges = sorted(edges, key=lambda e: -_effective(e[4], e[5]))
    out: dict[tuple, float] = {}
    level = None
    by_lower: dict[str, dict[str, list[tuple[str, str]]]] = {}  # per table: lower name -> [(name, type)]
    orders: dict[str, dict[str, int]] = {}
    types_of: dict[str, dict[str, tuple[str, str]]] = {}  # per table: lower name -> (name, type), last wins
    shared_of: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (a, b) -> [(a column, b column)]
    for a, ca, b, cb, score, containment in edges:
        shared = shared_of.get((a, b))
        if shared is None:
            for t in (a, b):
                if t not in by_lower:
                    cols = {c.column_name: c.type for c in catalog.columns(lake.tables[t])}
                    orders[t] = {n: i for i, n in enumerate(cols)}
                    low: dict[str, list[tuple[str, str]]] = {}
                    for n, ty in cols.items():
                        low.setdefault(n.lower(), []).append((n, ty))
                    by_lower[t] = low
                    types_of[t] = {
                        c.column_name.lower(): (c.column_name, c.type)
                        for c in catalog.columns(lake.tables[t])
                    }
            bcols = types_of[b]
            shared = shared_of[(a, b)] = [
                (c2, bcols[lw][0])
                for lw in by_lower[a].keys() & bcols.keys()
                for c2, t2 in by_lower[a][lw]
                if bcols[lw][1] == t2
            ]
        prio = score + containment
        if limit is not None:
            eff = _effective(score, containment)
            if level is not None and eff < level and len(out) >= limit:
                break
            level = eff
        if not shared:
            continue
        order = orders[a]
        for c2, d2 in shared:
            if c2 == ca or d2 == cb:
                continue
            pair = sorted([(ca, cb), (c2, d2)], key=lambda p: order[p[0]])
            key = (a, b, (pair[0][0], pair[1][0]), (pair[0][1], pair[1][1]))
            out[key] = max(out.get(key, 0.0), prio)
    found = sorted(((p, *k) for k, p in out.items()), key=lambda x: (-x[0], x[1:]))
    return found if limit is None else found[:limit]


def sample_key(table, catalog, columns: tuple[str, ...]) -> str:
    """What :func:`_check` reads of ``table``: its first :data:`SAMPLE_ROWS` rows of ``columns``, in scan
    order (DuckDB keeps the files' order under ``LIMIT``). A plain Parquet table whose first files hold
    that many rows (row counts from the catalog's footers): those files' stamps and the columns' types
    (the scan's types, unified over every file) - files after them cannot change the sample. Any other
    table (fewer rows, CSV/JSON types sniffed from every file, hive keys typed from every path, Delta or
    Iceberg): its fingerprint."""
    from lakeql.lake import fingerprint_of

    try:
        counts = catalog.file_rows(table)
    except (KeyError, AttributeError):
        counts = []
    if (
        table.format != "parquet"
        or table.hive
        or table.layout not in ("file", "folder")
        or len(counts) != len(table.files)
    ):
        return table.fingerprint
    total = 0
    for i, n in enumerate(counts):
        total += int(n)
        if total >= SAMPLE_ROWS:
            if i == len(counts) - 1:
                return table.fingerprint
            types = {c.column_name: c.type for c in catalog.columns(table)}
            return (
                "sample:"
                + fingerprint_of(table.files[: i + 1])
                + ":"
                + ",".join(str(types.get(c)) for c in columns)
            )
    return table.fingerprint


def _check(con, lake: Lake, a: str, b: str, acols: tuple[str, str], bcols: tuple[str, str]) -> bool:
    """True when ``b``'s ``bcols`` pairs are unique (but neither column alone) and hold ``a``'s pairs."""
    qa = [quote_ident(c) for c in acols]
    qb = [quote_ident(c) for c in bcols]
    src_b = f"(SELECT {qb[0]} AS k0, {qb[1]} AS k1 FROM {lake.tables[b].scan_sql()} LIMIT {SAMPLE_ROWS})"
    src_a = f"(SELECT {qa[0]} AS k0, {qa[1]} AS k1 FROM {lake.tables[a].scan_sql()} LIMIT {SAMPLE_ROWS})"
    sql = (
        f"WITH b AS (SELECT * FROM {src_b} WHERE k0 IS NOT NULL AND k1 IS NOT NULL), "
        f"a AS (SELECT DISTINCT * FROM {src_a} WHERE k0 IS NOT NULL AND k1 IS NOT NULL) "
        "SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM (SELECT DISTINCT k0, k1 FROM b)), "
        "(SELECT count(DISTINCT k0) FROM b), (SELECT count(DISTINCT k1) FROM b), "
        "(SELECT count(*) FROM a), (SELECT count(*) FROM a SEMI JOIN b USING (k0, k1))"
    )
    n, pairs, d0, d1, na, hit = con.execute(sql).fetchone()
    if not n or not na:
        return False
    return (
        pairs / n >= MIN_UNIQUE
        and d0 / n < SINGLE_UNIQUE
        and d1 / n < SINGLE_UNIQUE
        and hit / na >= MIN_CONTAINMENT
    )


def composite_hints(
    store, lake: Lake, catalog, cache: dict[str, bool] | None = None
) -> tuple[dict[tuple[str, str], list[str]], dict[str, bool]]:
    """``(table, column) -> ['(c1, c2) -> domain.table (d1, d2)']`` for every key column, and the
    updated check cache (key: both tables' :func:`sample_key` and the columns; value: the check's
    result)."""
    cache = dict(cache or {})
    edges = candidate_edges(store, lake)
    if not edges:
        return {}, {}
    found: dict[tuple[str, str], list[str]] = {}
    used: dict[str, bool] = {}
    con = None
    try:
        # the first MAX_CHECKS candidates (strongest first), cached or not: a refresh considers the pairs a
        # full build checks, no others (counting only uncached checks let each refresh check up to 64
        # more pairs, beyond the full build's: hints a full build does not have)
        for _, a, b, acols, bcols in _candidates(edges, lake, catalog, MAX_CHECKS):
            key = "\0".join(
                [
                    a,
                    sample_key(lake.tables[a], catalog, acols),
                    b,
                    sample_key(lake.tables[b], catalog, bcols),
                    *acols,
                    *bcols,
                ]
            )
            ok = cache.get(key)
            if ok is None:
                import duckdb  # here: a refresh whose checks are all cached need not import it

                con = con or buildfs.connect()
                try:
                    ok = _check(con, lake, a, b, acols, bcols)
                except duckdb.Error as exc:
                    warnings.warn(
                        f"composite join check {a} -> {b} failed ({str(exc).splitlines()[0]})",
                        UserWarning,
                        stacklevel=2,
                    )
                    ok = False
            used[key] = ok
            if ok:
                hint = f"({', '.join(acols)}) -> {b} ({', '.join(bcols)})"
                for c in acols:
                    lst = found.setdefault((a, c), [])
                    if hint not in lst:
                        lst.append(hint)
    finally:
        if con is not None:
            con.close()
    return found, used
