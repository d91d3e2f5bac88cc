"""Cheap column profiles for the schema files: one DuckDB aggregate query per table, never a full scan of
a big table.

* Row counts come from the catalog (Parquet footers); a table with 0 rows needs no query at all.
* Tables up to :data:`ARROW_ROWS` rows are read whole with pyarrow and profiled exactly with
  ``pyarrow.compute`` (count_distinct, min_max, utf8_length, value_counts): no query planning per table,
  about 5x cheaper than the DuckDB query below for tiny tables.
* Bigger tables up to :data:`FULL_SCAN_ROWS` rows get aggregates in ONE query per table: null share, distinct
  count (HyperLogLog ``approx_count_distinct``: ``count(DISTINCT)`` costs 5x more), min/max, length
  range, 3 most frequent values (``approx_top_k``). Columns that look like keys (no NULLs, estimated
  distinct >= 90% of rows) are fetched as Arrow and counted exactly (``pyarrow.compute.count_distinct``,
  10x cheaper than DuckDB's ``count(DISTINCT)`` on small tables), so ``key: unique`` is never a guess.
* Bigger tables are profiled on their first :data:`SAMPLE_ROWS` rows (``LIMIT``, which reads only the
  first row groups); the profile says ``sampled`` so nobody mistakes the numbers for exact ones.
* Descriptions come from Parquet key-value metadata (``description``/``comment``) on the file schema
  and on each field (Arrow field metadata), read from the footer of the first file: invalid UTF-8
  replaced, made one line (control and bidi/zero-width characters dropped), cut at :data:`DESC_CHARS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lakeql.catalog import Catalog
from lakeql.context.safe import one_line
from lakeql.lake import Table, quote_ident
from lakeql.sources import buildfs

ARROW_ROWS = 20_000  # tables up to this size are profiled in pyarrow (exact, ~5x cheaper than a query)
FULL_SCAN_ROWS = 200_000
SAMPLE_ROWS = 50_000
N_SAMPLES = 3
SAMPLE_CHARS = 40
DESC_CHARS = 400
_DESC_KEYS = (b"description", b"comment", b"lakeql.description", b"doc")
_NESTED = re.compile(r"(\[\]|STRUCT|MAP|UNION|\[\d+\])", re.IGNORECASE)
_TEXT = re.compile(r"^(VARCHAR|BLOB|BIT)", re.IGNORECASE)
_NO_MINMAX = re.compile(r"^(BOOLEAN)$", re.IGNORECASE)


@dataclass
class ColumnProfile:
    """What the schema file says about one column."""

    name: str
    type: str
    nulls: float | None = None  # share of NULL rows (None: table empty)
    distinct: int | None = None
    min: str | None = None
    max: str | None = None
    min_len: int | None = None
    max_len: int | None = None
    samples: list[str] = field(default_factory=list)
    key: str | None = None  # 'unique' when every row has a distinct non-NULL value
    description: str | None = None


@dataclass
class TableProfile:
    """A table's profile: row count, description, sampling flag and its columns."""

    key: str
    rows: int
    columns: list[ColumnProfile]
    description: str | None = None
    sampled: bool = False


def clean_text(value: Any, limit: int = SAMPLE_CHARS) -> str:
    """A display string that is safe in every output format: printable, one line, no '|', bounded.

    Non-printable characters (newlines, controls, lone surrogates) become ``\\xNN``/``\\uNNNN`` escapes;
    '|' becomes the broken bar '¦' (it separates cells in Markdown and lists in TOON); long values are
    cut to ``limit`` characters with a trailing '…'. The empty string shows as ``""``.
    """
    s = value if isinstance(value, str) else str(value)
    if s == "":
        return '""'
    if len(s) > limit:
        s = s[:limit] + "…"
    if not s.isprintable() or "|" in s:
        out = []
        for ch in s:
            if ch == "|":
                out.append("¦")
            elif ch.isprintable():
                out.append(ch)
            else:
                code = ord(ch)
                out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        s = "".join(out)
    return s


def _descriptions(table: Table) -> tuple[str | None, dict[str, str]]:
    """Table and column descriptions from the first file's Parquet/Arrow metadata (footer only)."""

    if not table.files:
        return None, {}
    try:
        # ParquetFile, not read_schema: on a remote lake a build serves it from its snapshot (no request)
        with buildfs.parquet_file(table.root / table.files[0].path) as f:
            schema = f.schema_arrow
    except Exception:  # noqa: BLE001 - an unreadable footer just means no description
        return None, {}

    def pick(meta: dict[bytes, bytes] | None) -> str | None:
        for k in _DESC_KEYS:
            if meta and k in meta:
                text = one_line(meta[k].decode("utf-8", "replace"), DESC_CHARS)
                if text:
                    return text
        return None

    cols = {}
    for f in schema:
        d = pick(f.metadata) or _duration_note(f.type)
        if d:
            cols[f.name] = d
    return pick(schema.metadata), cols


_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _duration_note(arrow_type: Any) -> str | None:
    """What an Arrow duration column (pandas' timedelta64) holds: Parquet has no duration type, so DuckDB
    reads a BIGINT count whose unit only the Arrow schema names (trial13)."""
    import pyarrow as pa

    if not pa.types.is_duration(arrow_type):
        return None
    unit = _UNITS.get(arrow_type.unit, arrow_type.unit)
    return f"a duration in {unit} (Arrow duration[{arrow_type.unit}], read as a BIGINT count of {unit})"


def _column_sql(col: str, ctype: str) -> list[str]:
    q = quote_ident(col)
    nested = bool(_NESTED.search(ctype))
    distinct = f"approx_count_distinct({q})" if not nested else "NULL::BIGINT"
    if nested or _NO_MINMAX.match(ctype):
        lo = hi = "NULL::VARCHAR"
    else:
        lo, hi = f"min({q})::VARCHAR", f"max({q})::VARCHAR"
    if _TEXT.match(ctype) and not nested:
        size = f"octet_length({q})" if ctype.upper() == "BLOB" else f"length({q}::VARCHAR)"  # bytes of a BLOB
        lens = [f"min({size})", f"max({size})"]
    else:
        lens = ["NULL::BIGINT", "NULL::BIGINT"]
    top = (f"approx_top_k({q}::VARCHAR, {N_SAMPLES})" if not nested
           else f"list({q}::VARCHAR)[1:{N_SAMPLES}]")
    return [f"count({q})", distinct, lo, hi, *lens, top]


def profile_table(con, table: Table, catalog: Catalog) -> TableProfile:
    """Profile one table with at most one DuckDB query (see the module docstring)."""
    cols = catalog.columns(table)
    rows = catalog.row_count(table)
    tdesc, cdesc = _descriptions(table)
    profiles = [ColumnProfile(c.column_name, c.type, description=cdesc.get(c.column_name)) for c in cols]
    if rows == 0 or not cols:
        return TableProfile(table.key, rows, profiles, tdesc, False)
    if rows <= ARROW_ROWS and not table.hive:
        done = _profile_arrow(table, profiles, rows)
        if done:
            return TableProfile(table.key, rows, profiles, tdesc, False)
    sampled = rows > FULL_SCAN_ROWS
    source = table.scan_sql()
    if sampled:
        source = f"(SELECT * FROM {source} LIMIT {SAMPLE_ROWS})"
    exprs = ["count(*)"]
    for c in cols:
        exprs.extend(_column_sql(c.column_name, c.type))
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {source}").fetchall()[0]
    n = int(row[0])
    candidates = []
    for i, p in enumerate(profiles):
        nonnull, distinct, lo, hi, lmin, lmax, top = row[1 + 7 * i: 8 + 7 * i]
        p.nulls = _share(n - int(nonnull), n) if n else None
        p.distinct = None if distinct is None else min(int(distinct), int(nonnull))
        p.min = None if lo is None else clean_text(lo)
        p.max = None if hi is None else clean_text(hi)
        p.min_len = None if lmin is None else int(lmin)
        p.max_len = None if lmax is None else int(lmax)
        p.samples = [clean_text(v) for v in (top or []) if v is not None][:N_SAMPLES]
        if not sampled and n > 1 and nonnull == n and p.distinct is not None and p.distinct >= 0.9 * n:
            candidates.append(p)
    if candidates:  # HyperLogLog says 'maybe a key': confirm with an exact count on those columns only
        import pyarrow.compute as pc

        arrow = con.sql("SELECT " + ", ".join(quote_ident(p.name) for p in candidates)
                            + f" FROM {source}").to_arrow_table()
        exact = [pc.count_distinct(arrow.column(i)).as_py() for i in range(len(candidates))]
        for p, d in zip(candidates, exact, strict=True):
            p.distinct = int(d)
            if p.distinct == n:
                p.key = "unique"
    return TableProfile(table.key, rows, profiles, tdesc, sampled)


def _share(part: int, whole: int) -> float:
    """A share rounded to 3 decimals, never rounded to 0 or 1 when it is not exactly that."""
    x = part / whole
    r = round(x, 3)
    if r == 0 and part > 0:
        return 0.001
    if r == 1 and part < whole:
        return 0.999
    return r


def _text(value: Any) -> str | None:
    return None if value is None else clean_text(value)


def _profile_arrow(table: Table, profiles: list[ColumnProfile], rows: int) -> bool:
    """Profile a small table in pyarrow (read whole: it is small); False when pyarrow cannot."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parts = [buildfs.parquet_file(p).read(use_threads=False) for p in table.paths]
        tab = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    except Exception:  # noqa: BLE001 - schema drift or odd encodings: let DuckDB handle it
        return False
    n = tab.num_rows
    if n != rows or n == 0:
        return False
    try:
        tab.validate(full=True)  # pyarrow reads invalid UTF-8 text as is; as_py() would then raise
    except pa.ArrowInvalid:
        return False  # DuckDB's path names the file and the table is left out with a warning
    for p in profiles:
        if p.name not in tab.column_names:
            return False
        arr = tab.column(p.name)
        t = arr.type
        nonnull = n - arr.null_count
        p.nulls = _share(n - nonnull, n)
        nested = pa.types.is_nested(t) or pa.types.is_dictionary(t)
        if nested or pa.types.is_null(t):
            vals = arr.drop_null()[:N_SAMPLES].to_pylist() if nonnull else []
            p.samples = [clean_text(v) for v in vals]
            continue
        try:
            p.distinct = int(pc.count_distinct(arr, mode="only_valid").as_py())
            if nonnull and not pa.types.is_boolean(t):
                mm = pc.min_max(arr)
                p.min, p.max = _text(mm["min"].as_py()), _text(mm["max"].as_py())
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                if nonnull:
                    lm = pc.min_max(pc.utf8_length(arr))
                    p.min_len, p.max_len = int(lm["min"].as_py()), int(lm["max"].as_py())
            elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
                if nonnull:
                    lm = pc.min_max(pc.binary_length(arr))
                    p.min_len, p.max_len = int(lm["min"].as_py()), int(lm["max"].as_py())
            if nonnull:
                vc = pc.value_counts(arr.drop_null())
                counts = vc.field("counts")
                top = pc.select_k_unstable(pa.table({"c": counts}), N_SAMPLES, [("c", "descending")])
                p.samples = [clean_text(v) for v in vc.field("values").take(top).to_pylist()]
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            p.distinct = p.min = p.max = None
            p.min_len = p.max_len = None
            p.samples = [clean_text(v) for v in arr.drop_null()[:N_SAMPLES].to_pylist()]
        if n > 1 and nonnull == n and p.distinct == n:
            p.key = "unique"
    return True


def profile_from_store(store, table: Table, catalog: Catalog) -> TableProfile | None:
    """The table's profile from the core column profile (:mod:`lakeql.profile`, one scan per table, built
    by the joins capability) when a fresh one is stored, else None (then call :func:`profile_table`)."""
    from lakeql.profile import context_columns

    cols = context_columns(store, table) if store is not None else None
    if cols is None:
        return None
    rows = catalog.row_count(table)
    tdesc, cdesc = _descriptions(table)
    out = []
    for c, cat_col in zip(cols, catalog.columns(table), strict=False):
        p = ColumnProfile(cat_col.column_name, cat_col.type, description=cdesc.get(cat_col.column_name))
        nn = round((1 - c["nulls"]) * rows) if c["nulls"] is not None else 0
        p.nulls = _share(rows - nn, rows) if rows else None
        p.distinct, p.min, p.max = c["distinct"], _text(c["min"]), _text(c["max"])
        p.min_len, p.max_len, p.key = c["min_len"], c["max_len"], c["key"]
        p.samples = [clean_text(v) for v in c["samples"]][:N_SAMPLES]
        out.append(p)
    if len(out) != len(catalog.columns(table)):
        return None
    return TableProfile(table.key, rows, out, tdesc, False)
