"""The lake-wide join index: every column's join profile, merged from the per-table column profiles.

Built from :mod:`lakeql.profile` (``column_profile/<slug>/{columns,hashes}.parquet``, one scan per table).
Files in ``<index_dir>/joins/lake/``:

``columns.parquet``   one row per lake column (col_id, join profile, ``offset``/``n_hashes`` into the
                      by-column hash order, top values and hashes, bottom-k sketch; the DeepJoin text
                      when semantic joins are built)
``tables.json``       {"tables": {table: fingerprint}, "profiles": {table: profile dir},
                      "failed": {table: {"fingerprint", "error"}}}

The value hashes themselves are stored once, in the per-table profiles (4 bytes per value): the query
side (:class:`lakeql.joins.joinindex.JoinIndex`) reads them into memory and sorts them once per process.
Columns with more than ``HASH_CAP`` distinct values keep their bottom ``HASH_CAP`` hashes (a KMV
sample; ``n_hashes < n_distinct`` marks them).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lakeql import parquet_io
from lakeql.progress import progress

TEXT_BUDGET = 1000  # characters of DeepJoin text (MiniLM truncates at 256 word pieces anyway)
READ_THREADS = 4


def read_hashes(d: Path) -> tuple[Any, Any]:
    """(ordinals int32, hashes uint32) of one table profile, sorted by ordinal then hash."""
    h = parquet_io.read_table(d / "hashes.parquet", columns=["ordinal", "hash"])
    return h.column("ordinal").to_numpy(), h.column("hash").to_numpy()


def reusable(lake_dir: Path, keys: list[str], fingerprints: dict[str, str], built: dict[str, str]
             ) -> dict[str, list[dict[str, Any]]]:
    """The rows of the previous ``columns.parquet`` in ``lake_dir`` (built without DeepJoin text) of the
    tables of ``keys`` whose files and profile are unchanged (fingerprint and profile build time as
    recorded in its ``tables.json``): ``merge`` copies them instead of reading their profiles again."""
    import json


    try:
        state = json.loads((lake_dir / "tables.json").read_text())
        old_fp, old_built = dict(state.get("tables", {})), dict(state.get("built", {}))
        same = {k for k in keys if k in old_fp and old_fp[k] == fingerprints.get(k)
                and old_built.get(k) is not None and old_built.get(k) == built.get(k)}
        if not same:
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        for r in parquet_io.read_table(lake_dir / "columns.parquet").to_pylist():
            if r["table_name"] in same:
                if r.get("text") is not None:
                    return {}  # built with DeepJoin text: every table is merged again
                out.setdefault(r["table_name"], []).append(r)
        return out
    except Exception:  # noqa: BLE001 - no readable previous index: merge every table
        return {}


def merge(tables: list[tuple[str, Path]], out: Path, with_text: bool = False,
          reuse: dict[str, list[dict[str, Any]]] | None = None
          ) -> tuple[list[dict[str, Any]], dict[str, str], Any]:
    """Merge per-table profiles (``(key, profile dir)``, in order) into ``out``.

    ``reuse``: {key: its rows of the previous index} (:func:`reusable`) for tables whose profile did not
    change: copied, not read (not with ``with_text``, which needs every table's hashes).

    Returns (the column rows, {key: error} of tables whose profile files could not be read: left out,
    the by-column hash array (None when rows were reused)).
    """
    import numpy as np

    from lakeql.joins.profile import join_row
    from lakeql.profile import SKETCH_K

    reuse = {} if with_text or reuse is None else reuse

    def load(item: tuple[str, Path]):
        key, d = item
        if key in reuse:
            return key, None, None
        try:
            prof = sorted(parquet_io.read_table(d / "columns.parquet").to_pylist(),
                          key=lambda r: r["ordinal"])
            ords, hs = read_hashes(d)
        except Exception as exc:  # noqa: BLE001 - a damaged profile leaves its table out
            return key, None, f"unreadable profile ({type(exc).__name__})"
        return key, (prof, ords, hs), None

    rows: list[dict[str, Any]] = []
    parts: list[Any] = []
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        loaded = list(progress(pool.map(load, tables), desc="joins: value index", total=len(tables),
                               unit="table"))
    fresh: list[dict[str, Any]] = []
    for key, got, err in loaded:
        if key in reuse:
            rows.extend(dict(r) for r in reuse[key])
            continue
        if got is None:
            failed[key] = err or "unreadable profile"
            continue
        prof, ords, hs = got
        counts = np.bincount(ords.astype(np.int64), minlength=len(prof)) if len(ords) else \
            np.zeros(len(prof), np.int64)
        if len(counts) != len(prof) or any(int(counts[i]) != int(r["n_hashes"] or 0)
                                           for i, r in enumerate(prof)):
            failed[key] = "profile files do not match"
            continue
        jrows = [join_row(r) for r in prof]
        starts = np.r_[0, np.cumsum(counts)[:-1]] if len(counts) else counts
        keep = np.zeros(len(ords), dtype=bool)
        for i, r in enumerate(jrows):
            s = int(starts[i])
            if r["indexed"]:
                keep[s:s + int(counts[i])] = True
                r["sketch"] = hs[s:s + min(int(counts[i]), SKETCH_K)].tolist()
            else:
                r["n_hashes"] = 0
        rows.extend(jrows)
        fresh.extend(jrows)
        parts.append(hs[keep])
    _top_hashes(fresh)
    offset = 0
    for i, r in enumerate(rows):
        r["col_id"] = i
        r["offset"] = offset
        offset += r["n_hashes"]
    bycol = None if reuse else np.concatenate(parts) if parts else np.empty(0, np.uint32)
    if with_text:
        add_deepjoin_text(rows, np.sort(bycol))
    else:
        for r in rows:
            r["text"], r["text_values"] = None, []
    write_columns(rows, out / "columns.parquet")
    return rows, failed, bycol


def _top_hashes(rows: list[dict[str, Any]]) -> None:
    """Each indexed column's top-value hashes, all columns in one DuckDB call (not stored per table)."""
    from lakeql.profile import hash_values

    vals = [v for r in rows if r["indexed"] for v in r["top_values"]]
    hs = hash_values(vals)
    pos = 0
    for r in rows:
        if r["indexed"]:
            n = len(r["top_values"])
            r["top_hashes"] = hs[pos:pos + n].tolist()
            pos += n
        else:
            r["top_hashes"] = []


def lake_frequency(hashes, sorted_hashes):
    """How many columns of the lake hold each hash (its posting-list length)."""
    import numpy as np

    h = np.asarray(hashes, dtype=np.uint32)
    return np.searchsorted(sorted_hashes, h, "right") - np.searchsorted(sorted_hashes, h, "left")


def title(table_name: str) -> str:
    """'flights.weather_daily' -> 'flights weather daily'."""
    return re.sub(r"[_.\s]+", " ", table_name).strip()


def deepjoin_text(table_name: str, column: str, r: dict[str, Any], values: list[str]) -> str:
    """DeepJoin's 'title-colname-stat-col' text: title, column name, length stats, then values."""
    stats = (f"{r['n_distinct']} distinct values, length {r['len_min']}-{r['len_max']} "
             f"average {r['len_avg'] or 0:.0f}")
    head = f"{title(table_name)}. {column}. {stats}. "
    out, used = [], len(head)
    for v in values:
        if used + len(v) + 2 > TEXT_BUDGET:
            break
        out.append(v)
        used += len(v) + 2
    return head + ", ".join(out)


def add_deepjoin_text(rows: list[dict[str, Any]], sorted_hashes) -> None:
    """Order each column's frequent values by lake frequency (most shared first) and build its text."""
    import numpy as np

    for r in rows:
        if not r["indexed"]:
            r["text"], r["text_values"] = None, []
            continue
        vals = r["top_values"]
        freq = lake_frequency(r["top_hashes"], sorted_hashes) if vals else np.empty(0)
        order = np.lexsort((-np.asarray(r["top_counts"], dtype=np.int64), -freq)) if vals else []
        ordered = [vals[i] for i in order]
        r["text_values"] = ordered
        r["text"] = deepjoin_text(r["table_name"], r["column_name"], r, ordered)


def write_columns(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.joins.profile import join_schema

    schema = join_schema()
    for name, typ in (("col_id", pa.int32()), ("offset", pa.int64()), ("n_hashes", pa.int64()),
                      ("text", pa.string()), ("text_values", pa.list_(pa.string()))):
        schema = schema.append(pa.field(name, typ))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")
