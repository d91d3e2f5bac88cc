"""One column profile per table, from one scan: the statistics every capability needs, computed once.

:func:`profile_table` reads a table once (DuckDB scan of its files into Arrow; tables above
:data:`MEMORY_CELLS` cells are scanned by DuckDB per query instead of materialized) and computes, for every
column:

* for all columns: non-NULL count, NULL share, native min/max (as text, in the column type's order), an
  approximate distinct count, and the length range of text/blob values as they are (``text_len_min`` /
  ``text_len_max``: what the schema files show, so ``min: ""`` comes with ``min_len: 0``);
* for columns whose values can be keys (strings, integers, dates/timestamps, UUIDs, enums: see
  :func:`value_class`), from one GROUP BY of the normalized text
  ``nullif(lower(trim(CAST(v AS VARCHAR))), '')`` of all those columns UNPIVOTed: the exact distinct
  count, value lengths (``len_min``, ``len_max``, average over rows, median over distinct values: of the
  normalized values, what joins compare; for other columns ``len_min``/``len_max`` are the text lengths
  as they are), case/trim flags, the
  :data:`TOP_VALUES` most frequent raw values with their counts (their hashes: :func:`hash_values`),
  and the sorted 32-bit hashes of the distinct values (the upper half of DuckDB's 64-bit ``hash()``:
  ``(hash(v) >> 32)::UINTEGER``, so SQL can compute them too), capped at the bottom :data:`HASH_CAP`
  (a KMV sample: two capped columns still estimate containment without bias, see
  ``lakeql.joins.joinindex``; the first :data:`SKETCH_K` are the column's bottom-k MinHash sketch).
  32 bits are enough: a value matches a hash of an unrelated value with probability
  ``values in the lake / 2^32`` (0.2% at 10 million values), far below what moves a containment.

Stored per table (manifest kind ``column_profile``, fingerprinted like every index) in
``column_profile/<slug>/columns.parquet`` (one row per column) and
``column_profile/<slug>/hashes.parquet`` (``table_name``, ``ordinal`` INT32, ``hash`` UINTEGER sorted by
ordinal then hash: about 4 bytes per stored value). :func:`ensure` computes the missing or
stale profiles of a lake in a thread pool (DuckDB releases the GIL), small single-file tables
:data:`BATCH_TABLES` at a time (:func:`profile_tables`: the same profiles in a few queries per
batch); :func:`load_columns` reads a stored fresh profile; :func:`context_columns` maps it to what the
schema files show. The joins capability builds its
value index from these files; the context capability reads them instead of re-scanning.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from lakeql import parquet_io
from lakeql.lake import Table, quote_ident
from lakeql.sources import buildfs

FORMAT = 6  # 6: text_len_min/max (lengths of the values as they are); 5: lean footers (no statistics)
KIND = "column_profile"
TOP_VALUES = 100  # most frequent raw values kept per column
SKETCH_K = 256  # bottom-k MinHash sketch size
HASH_CAP = 4096  # distinct-value hashes stored per column (the bottom ones: a KMV sample above that)
MEMORY_CELLS = 20_000_000  # tables up to rows * columns cells are read into Arrow once
BATCH_CELLS = 100_000  # single-file tables up to rows * columns cells are profiled together (profile_tables)
BATCH_TABLES = 32  # tables per batch
THREADS = min(4, os.cpu_count() or 1)
COMMIT_THREADS = 8  # writers of finished profiles (they mostly wait for fsync)

_INT = re.compile(r"^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$")
_TEMPORAL = re.compile(r"^(DATE|TIMESTAMP.*|TIME)$")
# a DECIMAL of scale 0 holds whole numbers: ids that Spark, JDBC (Oracle NUMBER(10)) and Teradata loads write
# as DECIMAL(p,0); their text is an integer's, so they join with integer columns (trial13)
_DECIMAL_INT = re.compile(r"^DECIMAL\(\d+, ?0\)$")
_NESTED = re.compile(r"(\[\]|STRUCT|MAP|UNION|\[\d+\])", re.IGNORECASE)
_LENGTHY = re.compile(r"^(VARCHAR|BLOB|BIT)", re.IGNORECASE)


# types whose Arrow copy (DuckDB's default export) DuckDB does not read back as the same values, also
# inside a LIST, ARRAY, STRUCT, MAP or UNION: a TIME WITH TIME ZONE loses its offset (Arrow's time64), a
# BIT becomes a BLOB, a UHUGEINT a DECIMAL(38,0) (2^128-1 reads back as -1), a HUGEINT of 39 digits fails
# the copy (DECIMAL(38,0)). (A field named like one of them only costs a scan instead of a copy.)
_ARROW_INEXACT = re.compile(r"\b(TIME WITH TIME ZONE|TIMETZ|BIT|U?HUGEINT|INT128|UINT128)\b", re.IGNORECASE)


def arrow_copy_exact(columns: list[tuple[str, str]]) -> bool:
    """Whether DuckDB reads an Arrow copy of these columns back as the same values (see ``_ARROW_INEXACT``);
    tables with other columns are scanned, not copied."""
    return not any(_ARROW_INEXACT.search(t) for _, t in columns)


def value_class(duck_type: str) -> str | None:
    """'text', 'int' or 'date' for types whose values can be keys (they get value statistics), else None."""
    t = duck_type.upper().strip()
    if t == "VARCHAR" or t.startswith("ENUM(") or t == "UUID":
        return "text"
    if _INT.match(t) or _DECIMAL_INT.match(t):
        return "int"
    if _TEMPORAL.match(t):
        return "date"
    return None


def params(table: Table | None = None) -> str:
    """What a stored profile depends on besides the table's files (a change re-profiles): for a CSV
    table read with ``header = true`` (:mod:`lakeql.csvheader`), that too, so that a profile made when
    its header line was a row is made again (the other tables' params are unchanged)."""
    prm: dict[str, Any] = {"format": FORMAT, "top": TOP_VALUES, "sketch": SKETCH_K, "cap": HASH_CAP}
    if table is not None and table.csv_header:
        prm["csv_header"] = True
    if table is not None and getattr(table, "csv_whole_sniff", False):  # typed from every row: other types
        prm["csv_whole_sniff"] = True
    return json.dumps(prm, sort_keys=True)


def columns_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("table_name", pa.string()),
            ("column_name", pa.string()),
            ("ordinal", pa.int32()),
            ("type", pa.string()),
            ("value_class", pa.string()),
            ("row_count", pa.int64()),
            ("nonnull", pa.int64()),
            ("n_values", pa.int64()),
            ("n_distinct", pa.int64()),
            ("distinct_exact", pa.bool_()),
            ("min", pa.string()),
            ("max", pa.string()),
            ("len_min", pa.int32()),
            ("len_max", pa.int32()),
            ("len_avg", pa.float64()),
            ("len_median", pa.float64()),
            ("upper", pa.bool_()),
            ("lower", pa.bool_()),
            ("trimmed", pa.bool_()),
            ("top_values", pa.list_(pa.string())),
            ("top_counts", pa.list_(pa.int64())),
            ("n_hashes", pa.int64()),
            ("text_len_min", pa.int32()),
            ("text_len_max", pa.int32()),
        ]
    )


def hashes_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("table_name", pa.dictionary(pa.int32(), pa.string())),
            ("ordinal", pa.int32()),
            ("hash", pa.uint32()),
        ]
    )


def connect(threads: int | None = None, pooled: bool = False):
    """A private DuckDB connection for profiling (build time only; never shared between threads).

    ``threads``: DuckDB's worker threads (its default: one per core); :func:`profile_tables` needs 1.
    ``pooled``: from a kept idle database (:func:`lakeql.sources.buildfs.pooled`; ``close()`` gives it
    back), for a caller that closes it when done."""

    con = buildfs.pooled() if pooled else buildfs.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _empty_row(table: Table, name: str, ctype: str, ordinal: int, rows: int) -> dict[str, Any]:
    return {
        "table_name": table.key,
        "column_name": name,
        "ordinal": ordinal,
        "type": ctype,
        "value_class": value_class(ctype),
        "row_count": rows,
        "nonnull": 0,
        "n_values": 0,
        "n_distinct": 0,
        "distinct_exact": True,
        "min": None,
        "max": None,
        "len_min": None,
        "len_max": None,
        "len_avg": None,
        "len_median": None,
        "upper": None,
        "lower": None,
        "trimmed": None,
        "top_values": [],
        "top_counts": [],
        "n_hashes": 0,
        "text_len_min": None,
        "text_len_max": None,
    }


def _native_sql(name: str, ctype: str) -> list[str]:
    """count, approx distinct, min, max, length range, 3 frequent values of one column (all types; the
    frequent values of value columns come from their GROUP BY instead)."""
    q = quote_ident(name)
    if _NESTED.search(ctype):
        return [
            f"count({q})",
            "NULL::BIGINT",
            "NULL::VARCHAR",
            "NULL::VARCHAR",
            "NULL::INTEGER",
            "NULL::INTEGER",
            f"list({q}::VARCHAR)[1:3]",
        ]
    top = "NULL::VARCHAR[]" if value_class(ctype) else f"approx_top_k({q}::VARCHAR, 3)"
    mm = (
        ["NULL::VARCHAR", "NULL::VARCHAR"]
        if ctype.upper() == "BOOLEAN"
        else [f"min({q})::VARCHAR", f"max({q})::VARCHAR"]
    )
    # a BLOB's length is its bytes (a UUID's 16), not the length of its escaped text ('\\xEF&...': 28-61)
    size = f"octet_length({q})" if ctype.upper() == "BLOB" else f"length({q}::VARCHAR)"
    lens = (
        [f"min({size})::INTEGER", f"max({size})::INTEGER"]
        if _LENGTHY.match(ctype)
        else ["NULL::INTEGER", "NULL::INTEGER"]
    )
    return [f"count({q})", f"approx_count_distinct({q})", *mm, *lens, top]


# types whose distinct values list_unique() counts as count(DISTINCT) does (INTERVAL does not: count(DISTINCT)
# normalizes 1 day = 24 hours, list_unique does not); checked on NaN, -0.0, infinities and scales
_LIST_UNIQUE_SAFE = re.compile(r"^(FLOAT|DOUBLE|REAL|BOOLEAN|DECIMAL\(\d+, ?\d+\))$", re.IGNORECASE)



def maybe_unique(row: dict[str, Any], n_rows: int) -> bool:
    """Whether HyperLogLog's distinct count says the column of profile ``row`` may be unique (a key
    candidate, counted exactly afterwards: keys are never a guess)."""
    return (row["value_class"] is None and n_rows > 1 and row["nonnull"] == n_rows
            and not _NESTED.search(row["type"]) and row["n_distinct"] >= 0.9 * n_rows)


def set_native(row: dict[str, Any], stats: Sequence[Any]) -> None:
    """Fill a column's profile row from the 7 native statistics :func:`_native_sql` selects for it
    (non-NULL count, approximate distinct count, min, max, length range, approximate top values)."""
    nonnull, approx, lo, hi, lmin, lmax, top = stats
    row["top_values"] = [str(v)[:200] for v in top or [] if v is not None]
    row.update(
        nonnull=int(nonnull),
        min=lo,
        max=hi,
        # value columns: the normalized values' lengths, set by _grouped_stats (none when no value is left:
        # a raw length here would make the merge of files mix the two)
        len_min=lmin if row["value_class"] is None else None,
        len_max=lmax if row["value_class"] is None else None,
        text_len_min=lmin,  # the values as they are (the schema files' min_len / max_len)
        text_len_max=lmax,
        n_distinct=min(int(approx or 0), int(nonnull)),
        distinct_exact=approx is None,
    )

def _exact_distinct_sql(name: str, ctype: str, in_memory: bool) -> str:
    """The exact distinct count of one column without NULLs (the only columns asked: ``nonnull = rows``).

    ``count(DISTINCT c)`` costs DuckDB a hash table per column, ~5-16 ms even for 50 rows (579 float
    columns of one 54-row table took 9 s); on a table already in memory ``list_unique(list(c))`` gives the
    same count (no NULLs) in microseconds. Large tables scanned from their files keep ``count(DISTINCT)``
    (no list of all their values in memory)."""
    q = quote_ident(name)
    if in_memory and _LIST_UNIQUE_SAFE.match(ctype.strip()):
        return f"list_unique(list({q}))"
    return f"count(DISTINCT {q})"


def _value_groups_sql(rows: str) -> str:
    """The value groups (by table t, column col, normalized value v) of the ``(t, col, raw VARCHAR, r)``
    rows of query ``rows`` (r: the row's number in its table): v's 32-bit hash, rows, length, smallest
    raw value, case/trim flags and ``first``, the first row holding v.

    v = ``nullif(lower(trim(raw)), '')`` is computed once per distinct raw value (rows counted per raw
    first, summed per v), not for every row: the same counts, smallest raw values and flags, ~1.8x less
    CPU on columns that repeat values. ``first`` orders the values whose hashes are equal (DuckDB's
    string hash collides on some long strings) as :func:`profile_table`'s GROUP BY returns them: in
    the order they first appear (see :func:`_grouped_stats`)."""
    return (
        "SELECT t, col, (hash(v) >> 32)::UINTEGER AS h, sum(c)::BIGINT AS n, length(v)::INTEGER AS len, "
        "min(raw) AS raw, bool_and(raw = upper(raw)) AS up, bool_and(raw = lower(raw)) AS lo, "
        "bool_and(raw = trim(raw)) AS tr, min(r) AS first "
        "FROM (SELECT t, col, raw, count(*) AS c, min(r) AS r, nullif(lower(trim(raw)), '') AS v "
        f"FROM ({rows}) GROUP BY t, col, raw) WHERE v IS NOT NULL GROUP BY t, col, v"
    )


def profile_table(
    table: Table, columns: list[tuple[str, str]], row_count: int, con=None
) -> tuple[list[dict[str, Any]], Any]:
    """Profile one table (see the module docstring): (column rows, Arrow table of capped hashes)."""
    import numpy as np
    import pyarrow as pa

    rows = [_empty_row(table, n, t, o, row_count) for o, (n, t) in enumerate(columns)]
    empty_hashes = hashes_schema().empty_table()
    if not columns:
        return rows, empty_hashes
    own = con is None
    con = connect(pooled=True) if own else con
    try:
        if row_count * len(columns) <= MEMORY_CELLS and arrow_copy_exact(columns):
            data = con.sql(f"SELECT * FROM {table.scan_sql()}").to_arrow_table()
            con.register("_lakeql_profile_t", data)
            source = "_lakeql_profile_t"
        else:
            source = table.scan_sql()
        exprs = ["count(*)"]
        for n, t in columns:
            exprs.extend(_native_sql(n, t))
        native = con.execute(f"SELECT {', '.join(exprs)} FROM {source}").fetchall()[0]
        n_rows = int(native[0])
        for i, r in enumerate(rows):
            r["row_count"] = n_rows
            set_native(r, native[1 + 7 * i : 8 + 7 * i])
        maybe_keys = [r for r in rows if maybe_unique(r, n_rows)]
        if maybe_keys:  # HyperLogLog says 'maybe unique': count those exactly (keys are never a guess)
            exact = con.execute(
                "SELECT "
                + ", ".join(
                    _exact_distinct_sql(r["column_name"], r["type"], source == "_lakeql_profile_t")
                    for r in maybe_keys
                )
                + f" FROM {source}"
            ).fetchall()[0]
            for r, d in zip(maybe_keys, exact, strict=True):
                r["n_distinct"], r["distinct_exact"] = int(d), True
        grouped = [r for r in rows if r["value_class"] is not None]
        hashes = empty_hashes
        if grouped and n_rows:
            sel = ", ".join(
                f'CAST({quote_ident(r["column_name"])} AS VARCHAR) AS "{r["ordinal"]}"' for r in grouped
            )
            g = con.sql(
                "SELECT CAST(col AS INTEGER) AS col, (hash(v) >> 32)::UINTEGER AS h, count(*)::BIGINT AS n, "
                "length(v)::INTEGER AS len, min(raw) AS raw, bool_and(raw = upper(raw)) AS up, "
                "bool_and(raw = lower(raw)) AS lo, bool_and(raw = trim(raw)) AS tr "
                "FROM (SELECT col, raw, nullif(lower(trim(raw)), '') AS v "
                f"FROM (UNPIVOT (SELECT {sel} FROM {source}) ON COLUMNS(*) INTO NAME col VALUE raw)) "
                "WHERE v IS NOT NULL GROUP BY col, v"
            ).to_arrow_table()
            hashes = _grouped_stats(table, rows, g, np, pa)
        if source == "_lakeql_profile_t":
            con.unregister(source)
        return rows, hashes
    finally:
        if own:
            con.close()


# column types profile_tables reads from a DuckDB table with the very values (and type) the Arrow copy of
# profile_table gives (tests/test_profile_batch.py); anything else (nested, UUID, ENUM, INTERVAL, HUGEINT,
# TIME WITH TIME ZONE, ...) keeps the one-table path
_BATCH_TYPES = re.compile(
    r"^(VARCHAR|BLOB|BOOLEAN|U?(TINYINT|SMALLINT|INTEGER|BIGINT)|FLOAT|DOUBLE|DATE|TIME"
    r"|TIMESTAMP(_S|_MS|_NS| WITH TIME ZONE)?|DECIMAL\(\d+, ?\d+\))$"
)


def batchable(table: Table, columns: list[tuple[str, str]], row_count: int) -> bool:
    """Whether :func:`profile_tables` may profile ``table`` with others: one Parquet file, at most
    :data:`BATCH_CELLS` cells, at least one column, every column of a type in ``_BATCH_TYPES``, none named
    ``rowid``."""
    return (
        table.format == "parquet"
        and len(table.files) == 1
        and 0 < len(columns)
        and row_count * len(columns) <= BATCH_CELLS
        and all(_BATCH_TYPES.match(t) for _, t in columns)
        and not any(n.lower() == "rowid" for n, _ in columns)  # the batch orders ties by the row id
    )


def profile_tables(
    items: list[tuple[Table, list[tuple[str, str]], int]], con=None, alone_con=None
) -> list[tuple[list[dict[str, Any]], Any] | Exception]:
    """Profile several small tables (:func:`batchable`) in a few DuckDB queries: for each
    ``(table, columns, row_count)`` exactly what :func:`profile_table` gives, or the exception it raises.

    A small table's profile costs DuckDB mostly planning: ~0.3 ms for each of the ~5 aggregates per
    column, 3 queries per table. Here the batch's files are copied into temporary tables by one script,
    then every column of one type in the whole batch is unnested into ``(t, col, val)`` rows and
    aggregated by one ``GROUP BY t, col`` (one set of aggregates per type, not per column); the value
    groups of all the tables come from one ``GROUP BY t, col, v``. The same aggregates over the same
    values in the same row order (``con`` has 1 thread: ``approx_top_k`` depends on the order), so the
    results are equal. A table whose copy does not hold exactly its catalog columns and types, and every
    table of a batch whose queries fail (a broken file), is profiled alone by :func:`profile_table`: its
    error stays its own (on ``alone_con``: a connection as :func:`profile_table` takes).
    """
    import numpy as np
    import pyarrow as pa

    out: list[Any] = [None] * len(items)
    if not items:
        return out
    own = con is None
    con = connect(threads=1, pooled=True) if own else con
    names = [f"_lakeql_b{i}" for i in range(len(items))]
    try:
        try:
            ok = _batch(items, names, con, out, np, pa)
        except Exception:  # noqa: BLE001 - a broken file: every table alone, so its error is its own
            ok = []
        finally:
            con.execute("; ".join(f"DROP TABLE IF EXISTS {n}" for n in names))
        for i, (t, cols, rc) in enumerate(items):
            if i not in ok:
                try:
                    out[i] = profile_table(t, cols, rc, alone_con)
                except Exception as exc:  # noqa: BLE001 - reported per table by the caller
                    out[i] = exc
        return out
    finally:
        if own:
            con.close()


def _batch(items, names: list[str], con, out: list[Any], np, pa) -> set[int]:
    """:func:`profile_tables` of the tables whose copies match their catalog columns; their indexes."""
    from collections import defaultdict

    fits = [i for i, it in enumerate(items) if batchable(*it)]  # the others: alone
    if not fits:
        return set()
    con.execute(
        "; ".join(f"CREATE TEMP TABLE {names[i]} AS SELECT * FROM {items[i][0].scan_sql()}" for i in fits)
    )
    got = {
        r[0]: list(zip(r[1], r[2], strict=True))
        for r in con.execute(
            "SELECT table_name, list(column_name ORDER BY column_index), "
            "list(data_type ORDER BY column_index) FROM duckdb_columns() "
            "WHERE database_name = 'temp' AND starts_with(table_name, '_lakeql_b') GROUP BY table_name"
        ).fetchall()
    }
    ok = [i for i in fits if got.get(names[i]) == [(c, t.replace(", ", ",")) for c, t in items[i][1]]]
    if ok:
        counts = dict(
            con.execute(" UNION ALL ".join(f"SELECT {i}, count(*) FROM {names[i]}" for i in ok)).fetchall()
        )
        ok = [i for i in ok if counts[i]]  # an empty table has no groups: alone (one row of empty aggregates)
    if not ok:
        return set()
    by_type: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i in ok:
        for o, (_, ctype) in enumerate(items[i][1]):
            by_type[ctype][i].append(o)

    def unnest(i: int, ords: list[int], cast: bool = False) -> str:
        """(t, col, val) rows of columns ``ords`` of table i, row by row (with ``cast``: (t, col, raw, r),
        raw as VARCHAR, r the row's number)."""
        cols = items[i][1]
        vals = ", ".join(
            f"CAST({quote_ident(cols[o][0])} AS VARCHAR)" if cast else quote_ident(cols[o][0]) for o in ords
        )
        return (
            f"SELECT {i} AS t, unnest([{', '.join(map(str, ords))}]) AS col, unnest([{vals}]) AS "
            f"{'raw, rowid AS r' if cast else 'val'} FROM {names[i]}"
        )

    native = con.execute(
        " UNION ALL ".join(
            f"SELECT t, col, {', '.join(_native_sql('val', ctype))} "
            f"FROM ({' UNION ALL '.join(unnest(i, ords) for i, ords in per.items())}) GROUP BY t, col"
            for ctype, per in by_type.items()
        )
    ).fetchall()
    rows = {
        i: [_empty_row(items[i][0], n, t, o, int(counts[i])) for o, (n, t) in enumerate(items[i][1])]
        for i in ok
    }
    for i, o, *stats in native:
        set_native(rows[i][o], stats)
    exact: dict[int, list[dict[str, Any]]] = {}  # as profile_table: 'maybe unique' is counted exactly
    for i in ok:
        n_rows = counts[i]
        exact_i = [r for r in rows[i] if maybe_unique(r, n_rows)]
        if exact_i:
            exact[i] = exact_i
    if exact:
        branches = []
        for i, rs in exact.items():
            ds = ", ".join(f"({_exact_distinct_sql(r['column_name'], r['type'], True)})::BIGINT" for r in rs)
            branches.append(f"SELECT {i}, [{ds}] FROM {names[i]}")
        for i, ds in con.execute(" UNION ALL ".join(branches)).fetchall():
            for r, d in zip(exact[i], ds, strict=True):
                r["n_distinct"], r["distinct_exact"] = int(d), True
    grouped = {i: [o for o, r in enumerate(rows[i]) if r["value_class"] is not None] for i in ok}
    grouped = {i: ords for i, ords in grouped.items() if ords}
    parts: dict[int, Any] = {}
    if grouped:
        rows_sql = " UNION ALL ".join(unnest(i, ords, cast=True) for i, ords in grouped.items())
        g = con.sql(_value_groups_sql(rows_sql)).to_arrow_table()
        tab = g.column("t").to_numpy()
        order = np.argsort(tab, kind="stable")
        g, tab = g.drop_columns(["t"]).take(pa.array(order)), tab[order]
        bounds = np.searchsorted(tab, np.arange(len(items) + 1))
        parts = {i: g.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i])) for i in grouped}
    for i in ok:
        hashes = (
            _grouped_stats(items[i][0], rows[i], parts[i], np, pa)
            if i in grouped
            else hashes_schema().empty_table()
        )
        out[i] = (rows[i], hashes)
    return set(ok)


def _grouped_stats(table: Table, rows: list[dict[str, Any]], g, np, pa):
    """Fill the value statistics of each grouped column from the (col, value) groups; return hashes."""
    col = g.column("col").to_numpy()
    h = g.column("h").to_numpy()
    n = g.column("n").to_numpy()
    ln = g.column("len").to_numpy()
    # by column, then hash; equal hashes in the order the groups came, or (profile_tables) of first rows
    order = np.lexsort((g.column("first").to_numpy(), h, col) if "first" in g.column_names else (h, col))
    col, h, n, ln = col[order], h[order], n[order], ln[order]
    up = g.column("up").to_numpy(zero_copy_only=False)[order]
    lo = g.column("lo").to_numpy(zero_copy_only=False)[order]
    tr = g.column("tr").to_numpy(zero_copy_only=False)[order]
    raw = g.column("raw").take(pa.array(order))
    cols, starts = np.unique(col, return_index=True)
    # no groups at all (every grouped column NULL in every row): no segments, not one empty segment
    ends = np.r_[starts[1:], len(col)] if len(starts) else starts
    keep = np.zeros(len(col), dtype=bool)
    for c, s, e in zip(cols.tolist(), starts.tolist(), ends.tolist(), strict=True):
        r = rows[c]
        seg_n, seg_len = n[s:e], ln[s:e]
        nd = e - s
        r.update(
            n_distinct=int(nd),
            distinct_exact=True,
            n_values=int(seg_n.sum()),
            len_min=int(seg_len.min()),
            len_max=int(seg_len.max()),
            len_avg=float((seg_len * seg_n).sum() / seg_n.sum()),
            len_median=float(np.median(seg_len)),
            upper=bool(up[s:e].all()),
            lower=bool(lo[s:e].all()),
            trimmed=bool(tr[s:e].all()),
        )
        top = np.lexsort((h[s:e], -seg_n))[:TOP_VALUES] + s  # most frequent first, ties in hash order
        r["top_values"] = [v[:200] for v in raw.take(pa.array(top)).to_pylist()]
        r["top_counts"] = n[top].tolist()
        r["n_hashes"] = int(min(nd, HASH_CAP))
        keep[s : s + r["n_hashes"]] = True
    hc = col[keep].astype(np.int32)
    return pa.table(
        {
            "table_name": pa.array([table.key] * int(keep.sum()), pa.string()).dictionary_encode(),
            "ordinal": hc,
            "hash": h[keep],
        },
        schema=hashes_schema(),
    )


def hash_values(values: list[str], con=None):
    """The stored 32-bit hashes of raw values (as the profile hashes them), in one DuckDB call."""
    import numpy as np

    if not values:
        return np.empty(0, np.uint32)
    own = con is None
    con = connect(pooled=True) if own else con
    try:
        t = con.execute(
            "SELECT (hash(nullif(lower(trim(v)), '')) >> 32)::UINTEGER AS h FROM "
            "(SELECT unnest(?::VARCHAR[]) AS v)",
            [values],
        ).fetchnumpy()
        return np.asarray(t["h"], dtype=np.uint32)
    finally:
        if own:
            con.close()


def write(out_dir: Path, rows: list[dict[str, Any]], hashes) -> None:
    """Write one table's profile files into ``out_dir``.

    Small files (a few KB per table), so the footer is most of them: no column statistics (nothing
    filters on them), no embedded Arrow schema (every type is a plain Parquet type), no dictionary pages
    (values repeat little within one table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    small = {"compression": "zstd", "write_statistics": False, "store_schema": False}
    pq.write_table(
        pa.Table.from_pylist(rows, schema=columns_schema()),
        out_dir / "columns.parquet",
        use_dictionary=False,
        **small,
    )
    # table_name (one dictionary entry, run-length encoded: ~0.2 KB a table) is what the stock CLI's
    # joins_containment macro joins on
    pq.write_table(
        hashes,
        out_dir / "hashes.parquet",
        use_dictionary=["table_name"],
        column_encoding={"ordinal": "DELTA_BINARY_PACKED", "hash": "DELTA_BINARY_PACKED"},
        row_group_size=1 << 20,
        **small,
    )


def path(store, table_key: str) -> Path:
    return store.index_path(KIND, table_key)


def fresh_keys(store, lake, keys: list[str]) -> set[str]:
    """The tables of ``keys`` with a stored profile matching their files and format (one manifest read)."""
    prm = params()  # a table read with header = true has its own (params(table))
    by_key = {e.table_name: e for e in store.entries(KIND)}
    root = str(store.root)
    return {
        k
        for k in keys
        if (e := by_key.get(k)) is not None
        and e.fingerprint == lake.tables[k].fingerprint
        and e.params == (params(lake.tables[k]) if lake.tables[k].csv_header or lake.tables[k].csv_whole_sniff
                         else prm)
        and os.path.exists(os.path.join(root, e.path, "columns.parquet"))
    }


def fresh_entry(store, table: Table):
    """The manifest entry of a stored profile of ``table`` that matches its files and format, or None."""
    e = store.find(KIND, table.key)
    if e is None or e.fingerprint != table.fingerprint or e.params != params(table):
        return None
    return e if (store.root / e.path / "columns.parquet").exists() else None


def load_columns(store, table: Table):
    """The stored fresh profile of ``table`` as an Arrow table (one row per column), or None."""
    e = fresh_entry(store, table)
    if e is None:
        return None
    try:
        return parquet_io.read_table(store.root / e.path / "columns.parquet")
    except Exception:  # noqa: BLE001 - a damaged profile is recomputed by whoever needs it
        return None


def ensure(
    store,
    lake,
    catalog,
    keys: list[str],
    threads: int = THREADS,
    desc: str = "profiling tables",
    force: bool = False,
    engine: Any = None,
) -> tuple[list[str], dict[str, str]]:
    """Compute and store the profile of every table in ``keys`` that has no fresh one (all with ``force``).

    Returns (keys profiled now, {key: error} of tables that could not be read: left out, never fatal).
    """
    from lakeql.progress import bar, say
    from lakeql.store import IndexEntry, dir_bytes

    fresh = set() if force else fresh_keys(store, lake, keys)
    todo = [k for k in keys if k not in fresh]
    failed: dict[str, str] = {}
    done: list[str] = []
    if not todo:
        return done, failed
    if engine is not None and engine.name != "local":  # lakeql.engine (issue 10): profiled on Ray workers
        from lakeql.engine_tasks import ensure_profiles

        return ensure_profiles(engine, store, lake, catalog, todo, desc, reuse=not force)
    t0, c0 = time.perf_counter(), time.process_time()
    local = threading.local()
    cons: list[Any] = []
    lock = threading.Lock()

    def connection(kind: str):
        con = getattr(local, kind, None)
        if con is None:
            con = connect(threads=1 if kind == "batch_con" else None, pooled=True)
            setattr(local, kind, con)
            with lock:
                cons.append(con)
        return con

    def spec(key: str) -> tuple[Table, list[tuple[str, str]], int]:
        t = lake.tables[key]
        return t, [(c.column_name, c.type) for c in catalog.columns(t)], catalog.row_count(t)

    def work(key: str):
        con = connection("con")
        t, cols, n_rows = spec(key)
        if len(t.files) > 1:  # per-file shards, merged (lakeql.profile_shards: refresh scans new files only)
            from lakeql import profile_shards

            rows, hashes, shards, _ = profile_shards.profile_sharded(
                store, t, cols, not force, con, catalog.file_rows(t)
            )
            return rows, hashes, shards
        rows, hashes = profile_table(t, cols, n_rows, con)
        return rows, hashes, None

    def work_batch(keys: list[str]) -> list[Any]:
        """Small tables together (profile_tables); per key (rows, hashes, None) or its exception."""
        got = profile_tables([spec(k) for k in keys], connection("batch_con"), connection("con"))
        return [g if isinstance(g, Exception) else (*g, None) for g in got]

    def commit(key: str, got) -> IndexEntry:
        """Write one table's profile and swap it in (fsync: waits on the disk, not the CPU)."""
        rows, hashes, shards = got
        t = lake.tables[key]
        target = path(store, key)
        with store.atomic_dir(target) as tmp:
            write(tmp, rows, hashes)
            if shards is not None:
                from lakeql import profile_shards

                profile_shards.write(tmp, t, shards)
        return IndexEntry(
            KIND,
            key,
            "",
            target.relative_to(store.root).as_posix(),
            dir_bytes(target),
            t.source_bytes,
            t.fingerprint,
            params=params(t),
        )

    pending: list[IndexEntry] = []
    stale: list[str] = []
    last = time.perf_counter()
    n_cols = 0

    def store_failed() -> Exception | None:
        """The object store's failure met by a read of this build (a remote lake; DuckDB's error hides it)."""
        if lake.fs is None:
            return None
        from lakeql.sources.snapshot import store_failure

        return store_failure(lake.fs)

    def fail(key: str, exc: Exception) -> None:
        if store_failed() is not None:  # the store failed, not the table: its profile is kept, stop below
            return
        msg = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        failed[key] = msg
        say(f"warning: cannot profile table {key}, left out ({msg})")
        stale.append(key)

    def committed(fut, key: str) -> None:
        nonlocal last, pending, n_cols
        try:
            pending.append(fut.result())
        except Exception as exc:  # noqa: BLE001 - one unwritable table must not stop the build
            fail(key, exc)
            return
        done.append(key)
        n_cols += len(catalog.columns(lake.tables[key]))
        if len(pending) >= 1000 or time.perf_counter() - last > 30:
            store.record_many(pending)
            pending, last = [], time.perf_counter()

    # small single-file tables are profiled BATCH_TABLES at a time (profile_tables: DuckDB's cost per query
    # and per aggregate, not the data, is most of a small table's profile), the others one by one, the
    # largest first (the last tasks are short: both workers stay busy until the end)
    cells: dict[str, int] = {}
    small: list[str] = []
    for k in todo:
        try:
            t, cols, n_rows = spec(k)
        except Exception:  # noqa: BLE001 - not in the catalog: work() reports it as the table's problem
            cells[k] = 0
            continue
        cells[k] = n_rows * len(cols)
        if batchable(t, cols, n_rows):
            small.append(k)
    small_set = set(small)
    units: list[str | list[str]] = sorted((k for k in todo if k not in small_set), key=lambda k: -cells[k])
    units += [small[i : i + BATCH_TABLES] for i in range(0, len(small), BATCH_TABLES)]

    # the scans run on ``threads`` workers; each table's write + fsync + swap on an I/O pool, so the
    # scan workers never wait for the disk (~5 ms per fsync: 2,427 tables spent ~15% of the stage there)
    bar_ = bar(len(todo), desc=desc, unit="table")
    with (
        ThreadPoolExecutor(max_workers=max(1, min(threads, len(units)))) as pool,
        ThreadPoolExecutor(max_workers=COMMIT_THREADS) as io,
    ):
        futures = {pool.submit(work_batch if isinstance(u, list) else work, u): u for u in units}
        commits: dict[Any, str] = {}
        for fut in as_completed(futures):
            unit = futures[fut]
            keys = unit if isinstance(unit, list) else [unit]
            try:
                results = fut.result() if isinstance(unit, list) else [fut.result()]
            except Exception as exc:  # noqa: BLE001 - one unreadable table must not stop the build
                results = [exc] * len(keys)
            for key, got in zip(keys, results, strict=True):
                if isinstance(got, Exception):
                    fail(key, got)
                else:
                    commits[io.submit(commit, key, got)] = key
            bar_.update(len(keys))
            for c in [c for c in commits if c.done()]:
                committed(c, commits.pop(c))
        for c in as_completed(list(commits)):
            committed(c, commits.pop(c))
    bar_.close()
    store.record_many(pending)
    old = {e.table_name for e in store.entries(KIND)}
    for key in stale:  # a profile of older files must not pass for this table's
        if key in old:
            store.drop(KIND, key)
    for con in cons:
        con.close()
    failed_store = store_failed()
    if failed_store is not None:  # a read under DuckDB met a failing store: the build stops here
        raise failed_store
    secs = time.perf_counter() - t0
    done_set = set(done)
    size = sum(e.bytes for e in store.entries(KIND) if e.table_name in done_set)
    say(
        f"column profiles: {len(done)} tables, {n_cols} columns in {secs:.1f} s "
        f"({time.process_time() - c0:.1f} CPU s, {n_cols / max(secs, 1e-9):.0f} columns/s), "
        f"{size / 1e6:.1f} MB"
    )
    return done, failed


def context_columns(store, table: Table) -> list[dict[str, Any]] | None:
    """The stored profile of ``table`` as the schema files' column facts, or None when there is none.

    Per column: ``nulls`` (share), ``distinct``, ``min``, ``max``, ``min_len``, ``max_len``, ``samples``
    (the 3 most frequent values) and ``key``
    ('unique' when every row holds a distinct non-NULL value, known exactly for value columns).
    """
    t = load_columns(store, table)
    if t is None:
        return None
    out = []
    for r in t.to_pylist():
        rc, nn = r["row_count"], r["nonnull"]
        exact = bool(r["distinct_exact"])
        lengthy = bool(_LENGTHY.match(r["type"]))
        out.append(
            {
                "name": r["column_name"],
                "nulls": (rc - nn) / rc if rc else None,
                "distinct": r["n_distinct"] if r["min"] is not None or r["value_class"] else None,
                "distinct_exact": exact,
                "min": r["min"],
                "max": r["max"],
                # the values as they are, like min / max (len_min: of the normalized values of joins)
                "min_len": r["text_len_min"] if lengthy else None,
                "max_len": r["text_len_max"] if lengthy else None,
                "samples": r["top_values"][:3],
                "key": "unique" if exact and rc > 1 and nn == rc and r["n_distinct"] == rc else None,
            }
        )
    return out
