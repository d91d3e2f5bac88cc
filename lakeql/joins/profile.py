"""Per-table join index: a profile of every column and the sorted hashes of its distinct values.

For each table the builder writes one folder ``join_values/<slug>/`` with

``profiles.parquet``  one row per column: type class, row/distinct/null counts, uniqueness, value length
                      stats, dominant value pattern, case, integer range, the most frequent values (with
                      their hashes and counts) and a bottom-k MinHash sketch (the k smallest hashes)
``values.parquet``    (column_name, hash UBIGINT): every distinct normalized value, sorted by column, hash

DuckDB does the scan and the GROUP BY (out of core when needed); Python only sees per-column results
(hash arrays, at most ``TOP_VALUES`` strings), never the rows.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from lakeql.joins.normalize import MAX_TEXT_AVG_LEN, norm_col, skip_reason, type_class
from lakeql.lake import Table

TOP_VALUES = 200  # most frequent values kept per column (DeepJoin text, sample matches)
SKETCH_K = 256  # bottom-k MinHash sketch size

PROFILE_FIELDS = [
    ("table_name", "string"), ("column_name", "string"), ("ordinal", "int32"), ("type", "string"),
    ("type_class", "string"), ("indexed", "bool_"), ("note", "string"), ("row_count", "int64"),
    ("nonnull", "int64"), ("n_distinct", "int64"), ("uniqueness", "float64"), ("null_share", "float64"),
    ("len_min", "int32"), ("len_max", "int32"), ("len_avg", "float64"), ("pattern", "string"),
    ("case_class", "string"), ("int_min", "float64"), ("int_max", "float64"),
]


def profile_schema():
    import pyarrow as pa

    fields = [pa.field(n, getattr(pa, t)()) for n, t in PROFILE_FIELDS]
    fields += [pa.field("top_values", pa.list_(pa.string())), pa.field("top_hashes", pa.list_(pa.uint64())),
               pa.field("top_counts", pa.list_(pa.int64())), pa.field("sketch", pa.list_(pa.uint64()))]
    return pa.schema(fields)


def values_schema():
    import pyarrow as pa

    return pa.schema([pa.field("column_name", pa.string()), pa.field("hash", pa.uint64())])


def shape(value: str) -> str:
    """A value's pattern: letters -> A/a, digits -> 9, runs collapsed ('N12345' -> 'A9+')."""
    s = re.sub(r"[A-Z]", "A", value[:40])
    s = re.sub(r"[a-z]", "a", s)
    s = re.sub(r"[0-9]", "9", s)
    return re.sub(r"(.)\1+", r"\1+", s)


def connect_build():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def profile_column(con, table: Table, column: str, ctype: str, ordinal: int, row_count: int
                   ) -> tuple[dict[str, Any], Any]:
    """Profile one column and return (profile row, sorted distinct hashes as a numpy uint64 array)."""
    import numpy as np

    row: dict[str, Any] = {"table_name": table.key, "column_name": column, "ordinal": ordinal,
                           "type": ctype, "type_class": type_class(ctype), "indexed": False, "note": None,
                           "row_count": row_count, "nonnull": 0, "n_distinct": 0, "uniqueness": 0.0,
                           "null_share": 1.0 if row_count else 0.0, "len_min": None, "len_max": None,
                           "len_avg": None, "pattern": None, "case_class": None, "int_min": None,
                           "int_max": None, "top_values": [], "top_hashes": [], "top_counts": [],
                           "sketch": []}
    empty = np.empty(0, dtype=np.uint64)
    if row["type_class"] is None:
        row["note"] = "skipped: " + skip_reason(ctype)
        return row, empty
    raw = f"CAST({column_ref(column)} AS VARCHAR)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE g AS SELECT v, count(*)::BIGINT AS n, min(raw) AS raw, "
        f"bool_and(raw = upper(raw)) AS up, bool_and(raw = lower(raw)) AS lo, "
        f"bool_and(raw = trim(raw)) AS tr "
        f"FROM (SELECT {raw} AS raw, {norm_col(column)} AS v FROM {table.scan_sql()}) WHERE v IS NOT NULL "
        f"GROUP BY v")
    nd, nonnull, lmin, lmax, lavg, lmed, up, lo, tr = con.execute(
        "SELECT count(*), coalesce(sum(n), 0), min(length(v)), max(length(v)), "
        "sum(length(v) * n) / nullif(sum(n), 0), median(length(v)), bool_and(up), bool_and(lo), "
        "bool_and(tr) FROM g").fetchone()
    row.update(nonnull=int(nonnull), n_distinct=int(nd),
               uniqueness=(nd / nonnull) if nonnull else 0.0,
               null_share=(1 - nonnull / row_count) if row_count else 0.0,
               len_min=lmin, len_max=lmax, len_avg=float(lavg) if lavg is not None else None)
    if nd == 0:
        row["note"] = "skipped: no non-empty values"
        return row, empty
    if row["type_class"] == "text" and lmed is not None and lmed > MAX_TEXT_AVG_LEN:
        row["note"] = f"skipped: free text (median value length {lmed:.0f} characters)"
        return row, empty
    row["case_class"] = ("upper" if up and not lo else "lower" if lo and not up else
                         "none" if up and lo else "mixed") + ("" if tr else "+untrimmed")
    if row["type_class"] == "int":
        imin, imax = con.execute("SELECT min(TRY_CAST(v AS HUGEINT)), max(TRY_CAST(v AS HUGEINT)) FROM g"
                                 ).fetchone()
        row["int_min"] = float(imin) if imin is not None else None
        row["int_max"] = float(imax) if imax is not None else None
    hashes = con.execute("SELECT hash(v) AS h FROM g ORDER BY h").fetchnumpy()["h"].astype(np.uint64)
    top = con.execute(f"SELECT raw, hash(v) AS h, n FROM g ORDER BY n DESC, v LIMIT {TOP_VALUES}").fetchall()
    row["top_values"] = [r[0][:200] for r in top]
    row["top_hashes"] = [int(r[1]) for r in top]
    row["top_counts"] = [int(r[2]) for r in top]
    shapes = Counter(shape(r[0]) for r in top)
    row["pattern"] = shapes.most_common(1)[0][0] if shapes else None
    row["sketch"] = [int(h) for h in hashes[:SKETCH_K]]
    row["indexed"] = True
    return row, hashes


def column_ref(column: str) -> str:
    from lakeql.lake import quote_ident

    return quote_ident(column)


def build_table(table: Table, columns: list[tuple[str, str]], row_count: int, out_dir: Path
                ) -> list[dict[str, Any]]:
    """Write ``profiles.parquet`` and ``values.parquet`` of one table into ``out_dir``; return profiles."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    con = connect_build()
    profiles: list[dict[str, Any]] = []
    writer = pq.ParquetWriter(out_dir / "values.parquet", values_schema(), compression="zstd")
    try:
        for ordinal, (name, ctype) in enumerate(columns):
            row, hashes = profile_column(con, table, name, ctype, ordinal, row_count)
            profiles.append(row)
            if len(hashes):
                writer.write_table(pa.table({
                    "column_name": pa.array([name] * 1, pa.string()).take(pa.array([0] * len(hashes))),
                    "hash": pa.array(hashes, pa.uint64())}, schema=values_schema()),
                    row_group_size=1 << 20)
    finally:
        writer.close()
        con.close()
    pq.write_table(pa.Table.from_pylist(profiles, schema=profile_schema()), out_dir / "profiles.parquet",
                   compression="zstd")
    return profiles
