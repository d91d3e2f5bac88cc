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


def read_edges(store, lake: Lake) -> list[dict[str, Any]]:
    """Rows of the join graph between tables of ``lake`` (none when no graph was built)."""
    if store is None:
        return []
    entry = store.find("join_graph")
    if entry is None:
        return []
    try:
        rows = parquet_io.read_table(store.root / entry.path).to_pylist()
    except Exception:  # noqa: BLE001 - generate() already warns about an unreadable graph
        return []
    return [r for r in rows if r.get("table_name") in lake.tables and r.get("candidate_table") in lake.tables]


def _candidates(edges, lake: Lake, catalog) -> list[tuple[float, str, str, tuple[str, str], tuple[str, str]]]:
    """(priority, source table, target table, source columns, target columns) pairs worth checking."""
    out = {}
    by_name: dict[str, dict[str, str]] = {}  # per table (made once: a table is in many edges)
    by_lower: dict[str, dict[str, tuple[str, str]]] = {}
    orders: dict[str, dict[str, int]] = {}
    for e in edges:
        if (e.get("containment") or 0.0) < MIN_CONTAINMENT:
            continue
        if (e.get("candidate_uniqueness") or 0.0) >= SINGLE_UNIQUE:
            continue
        a, b = e["table_name"], e["candidate_table"]
        if a == b:
            continue
        acols = by_name.get(a)
        if acols is None:
            acols = by_name[a] = {c.column_name: c.type for c in catalog.columns(lake.tables[a])}
            orders[a] = {n: i for i, n in enumerate(acols)}
        bcols = by_lower.get(b)
        if bcols is None:
            bcols = by_lower[b] = {c.column_name.lower(): (c.column_name, c.type)
                                   for c in catalog.columns(lake.tables[b])}
        order = orders[a]
        for c2, t2 in acols.items():
            if c2 == e["column_name"] or c2.lower() not in bcols:
                continue
            d2, u2 = bcols[c2.lower()]
            if d2 == e["candidate_column"] or u2 != t2:
                continue
            pair = sorted([(e["column_name"], e["candidate_column"]), (c2, d2)], key=lambda p: order[p[0]])
            key = (a, b, (pair[0][0], pair[1][0]), (pair[0][1], pair[1][1]))
            prio = float(e.get("score") or 0.0) + float(e.get("containment") or 0.0)
            out[key] = max(out.get(key, 0.0), prio)
    return sorted(((p, *k) for k, p in out.items()), key=lambda x: (-x[0], x[1:]))


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
    edges = read_edges(store, lake)
    if not edges:
        return {}, {}
    found: dict[tuple[str, str], list[str]] = {}
    used: dict[str, bool] = {}
    con = None
    try:
        # the first MAX_CHECKS candidates (strongest first), cached or not: a refresh considers the pairs a
        # full build checks, no others (counting only uncached checks let each refresh check up to 64
        # more pairs, beyond the full build's: hints a full build does not have)
        for _, a, b, acols, bcols in _candidates(edges, lake, catalog)[:MAX_CHECKS]:
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
