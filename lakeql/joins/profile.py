"""Per-table join index: a profile of every column and the sorted hashes of its distinct values.

For each table the builder writes one folder ``join_values/<slug>/`` with

``profiles.parquet``  one row per column: type class, row/distinct/null counts, uniqueness, value length
                      stats, dominant value pattern, case, integer range, the most frequent values (with
                      their hashes and counts) and a bottom-k MinHash sketch (the k smallest hashes)
``values.parquet``    (column_name, hash UBIGINT): every distinct normalized value, sorted by column, hash

DuckDB does one scan per table and the GROUP BY (out of core when needed); Python sees per-column
aggregates and at most ``TOP_VALUES`` strings per column, and the hashes stream through in Arrow
batches: never the rows.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from lakeql.joins.normalize import MAX_TEXT_AVG_LEN, skip_reason, type_class
from lakeql.lake import Table, quote_ident

TOP_VALUES = 200  # most frequent values kept per column (DeepJoin text, sample matches)
SKETCH_K = 256  # bottom-k MinHash sketch size
PATTERN_VALUES = 30  # most frequent values whose shapes vote for the column's pattern

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
    con.execute("SET enable_progress_bar = false")
    return con


def base_row(table: Table, column: str, ctype: str, ordinal: int, row_count: int) -> dict[str, Any]:
    """The profile of a column before its values are read (what a skipped column keeps)."""
    row: dict[str, Any] = {"table_name": table.key, "column_name": column, "ordinal": ordinal,
                           "type": ctype, "type_class": type_class(ctype), "indexed": False, "note": None,
                           "row_count": row_count, "nonnull": 0, "n_distinct": 0, "uniqueness": 0.0,
                           "null_share": 1.0 if row_count else 0.0, "len_min": None, "len_max": None,
                           "len_avg": None, "pattern": None, "case_class": None, "int_min": None,
                           "int_max": None, "top_values": [], "top_hashes": [], "top_counts": [],
                           "sketch": []}
    # until its values are read, a joinable column counts as empty (NULL-only columns stay so)
    row["note"] = "skipped: " + skip_reason(ctype) if row["type_class"] is None else \
        "skipped: no non-empty values"
    return row


def build_table(table: Table, columns: list[tuple[str, str]], row_count: int, out_dir: Path,
                con=None) -> list[dict[str, Any]]:
    """Write ``profiles.parquet`` and ``values.parquet`` of one table into ``out_dir``; return profiles.

    One scan of the table: every joinable column is cast to text and UNPIVOTed into (column, value),
    grouped once by DuckDB; the statistics, top values, sketches and sorted hashes are then read from
    that grouped table, and the hashes stream into ``values.parquet`` in Arrow batches.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [base_row(table, n, t, o, row_count) for o, (n, t) in enumerate(columns)]
    eligible = [r for r in rows if r["type_class"] is not None]
    own = con is None
    con = connect_build() if own else con
    try:
        if eligible:
            sel = ", ".join(f"CAST({quote_ident(r['column_name'])} AS VARCHAR) AS \"{r['ordinal']}\""
                            for r in eligible)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE g AS SELECT CAST(col AS INTEGER) AS col, v, "
                "count(*)::BIGINT AS n, min(raw) AS raw, bool_and(raw = upper(raw)) AS up, "
                "bool_and(raw = lower(raw)) AS lo, "
                "bool_and(raw = trim(raw)) AS tr FROM (SELECT col, raw, nullif(lower(trim(raw)), '') AS v "
                f"FROM (UNPIVOT (SELECT {sel} FROM {table.scan_sql()}) ON COLUMNS(*) "
                "INTO NAME col VALUE raw)) WHERE v IS NOT NULL GROUP BY ALL")
            stats = con.execute(
                "SELECT col, count(*), sum(n), min(length(v)), max(length(v)), "
                "sum(length(v) * n) / sum(n), median(length(v)), bool_and(up), bool_and(lo), bool_and(tr), "
                f"min(TRY_CAST(v AS HUGEINT)), max(TRY_CAST(v AS HUGEINT)), min(hash(v), {SKETCH_K}) "
                "FROM g GROUP BY col").fetchall()
            for col, nd, nonnull, lmin, lmax, lavg, lmed, up, lo, tr, imin, imax, sketch in stats:
                apply_stats(rows[col], nd, nonnull, lmin, lmax, lavg, lmed, up, lo, tr, imin, imax, sketch)
            top = con.execute(
                "SELECT col, raw, hash(v), n FROM (SELECT *, row_number() OVER (PARTITION BY col ORDER BY "
                f"n DESC, hash(v)) AS rn FROM g) WHERE rn <= {TOP_VALUES} ORDER BY col, rn").fetchall()
            for col, raw, h, n in top:
                r = rows[col]
                if r["indexed"]:
                    r["top_values"].append(raw[:200])
                    r["top_hashes"].append(int(h))
                    r["top_counts"].append(int(n))
            for r in rows:
                if r["indexed"]:
                    shapes = Counter(shape(v) for v in r["top_values"][:PATTERN_VALUES])
                    r["pattern"] = shapes.most_common(1)[0][0] if shapes else None
        indexed = [r["ordinal"] for r in rows if r["indexed"]]
        with pq.ParquetWriter(out_dir / "values.parquet", values_schema(), compression="zstd") as w:
            if indexed:
                names = [r["column_name"] for r in rows]
                reader = con.sql(
                    "SELECT (?::VARCHAR[])[col + 1] AS column_name, hash(v) AS hash FROM g "
                    "WHERE list_contains(?::INTEGER[], col) ORDER BY col, hash", params=[names, indexed]
                ).to_arrow_reader(1 << 20)
                for batch in reader:
                    w.write_table(pa.Table.from_batches([batch]).cast(values_schema()))
    finally:
        con.execute("DROP TABLE IF EXISTS g")
        if own:
            con.close()
    pq.write_table(pa.Table.from_pylist(rows, schema=profile_schema()), out_dir / "profiles.parquet",
                   compression="zstd")
    return rows


def apply_stats(row: dict[str, Any], nd, nonnull, lmin, lmax, lavg, lmed, up, lo, tr, imin, imax,
                sketch) -> None:
    """Fill a profile from its column's aggregate row; decide whether the column is indexed."""
    rc = row["row_count"]
    row["note"] = None
    row.update(nonnull=int(nonnull), n_distinct=int(nd), uniqueness=(nd / nonnull) if nonnull else 0.0,
               null_share=(1 - nonnull / rc) if rc else 0.0, len_min=lmin, len_max=lmax,
               len_avg=float(lavg) if lavg is not None else None)
    if nd == 0:
        row["note"] = "skipped: no non-empty values"
        return
    if row["type_class"] == "text" and lmed is not None and lmed > MAX_TEXT_AVG_LEN:
        row["note"] = f"skipped: free text (median value length {lmed:.0f} characters)"
        return
    row["case_class"] = ("upper" if up and not lo else "lower" if lo and not up else
                         "none" if up and lo else "mixed") + ("" if tr else "+untrimmed")
    if row["type_class"] == "int":
        row["int_min"] = float(imin) if imin is not None else None
        row["int_max"] = float(imax) if imax is not None else None
    row["sketch"] = sorted(int(h) for h in sketch)
    row["indexed"] = True
