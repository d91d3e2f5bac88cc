"""The lake-wide join index: every column's distinct-value hashes, merged and sorted two ways.

Files in ``<index_dir>/joins/lake/``:

``columns.parquet``   one row per lake column (col_id, profile, ``offset`` into the by-column arrays,
                      DeepJoin text)
``values.parquet``    (hash UBIGINT, col_id INT32) sorted by hash: the exact value index, for SQL
``bycol_hash.npy``    uint64, column after column, sorted within a column: a column's distinct hashes
                      are ``bycol_hash[offset : offset + n_distinct]``
``byhash_hash.npy``   uint64 sorted; ``byhash_col.npy`` int32 the column of each entry: posting lists

The ``.npy`` files are memory-mapped at query time, so a query touches only the pages it searches. The
merge streams each table's ``values.parquet`` into a memory map; the sort is one numpy argsort (about
20 bytes of RAM per indexed value).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lakeql.errors import CorruptIndexError

TEXT_BUDGET = 1000  # characters of DeepJoin text (MiniLM truncates at 256 word pieces anyway)


def merge(table_dirs: list[tuple[str, Path]], out: Path) -> list[dict[str, Any]]:
    """Merge per-table indexes (in the given order) into ``out``; returns the column rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for key, d in table_dirs:
        try:
            prof = pq.read_table(d / "profiles.parquet").to_pylist()
        except Exception as exc:  # noqa: BLE001
            raise CorruptIndexError(f"join profile of table {key} is unreadable ({exc}): "
                                    "run 'lakeql index --refresh LAKE'") from None
        rows.extend(sorted(prof, key=lambda r: r["ordinal"]))
    offset = 0
    for i, r in enumerate(rows):
        r["col_id"] = i
        r["offset"] = offset
        if not r["indexed"]:
            r["n_hashes"] = 0
        else:
            r["n_hashes"] = r["n_distinct"]
        offset += r["n_hashes"]
    total = offset
    bycol = np.lib.format.open_memmap(out / "bycol_hash.npy", mode="w+", dtype=np.uint64, shape=(total,))
    pos = 0
    by_table: dict[str, int] = {}
    for r in rows:
        by_table[r["table_name"]] = by_table.get(r["table_name"], 0) + r["n_hashes"]
    for key, d in table_dirs:
        start = pos
        pf = pq.ParquetFile(d / "values.parquet")
        for batch in pf.iter_batches(columns=["hash"], batch_size=1 << 20):
            h = batch.column(0).to_numpy(zero_copy_only=False)
            if pos + len(h) > total:
                raise CorruptIndexError(f"join values of table {key} do not match its profile: "
                                        "run 'lakeql index --refresh LAKE'")
            bycol[pos:pos + len(h)] = h
            pos += len(h)
        if pos - start != by_table.get(key, 0):
            raise CorruptIndexError(f"join values of table {key} do not match its profile: "
                                    "run 'lakeql index --refresh LAKE'")
    bycol.flush()
    counts = np.array([r["n_hashes"] for r in rows], dtype=np.int64)
    colrep = np.repeat(np.arange(len(rows), dtype=np.int32), counts)
    order = np.argsort(bycol, kind="stable")
    hh = np.lib.format.open_memmap(out / "byhash_hash.npy", mode="w+", dtype=np.uint64, shape=(total,))
    hc = np.lib.format.open_memmap(out / "byhash_col.npy", mode="w+", dtype=np.int32, shape=(total,))
    step = 1 << 22
    schema = pa.schema([("hash", pa.uint64()), ("col_id", pa.int32())])
    with pq.ParquetWriter(out / "values.parquet", schema, compression="zstd") as w:
        for s in range(0, total, step):
            idx = order[s:s + step]
            hh[s:s + len(idx)] = bycol[idx]
            hc[s:s + len(idx)] = colrep[idx]
            w.write_table(pa.table({"hash": hh[s:s + len(idx)], "col_id": hc[s:s + len(idx)]}, schema=schema),
                          row_group_size=1 << 20)
        if total == 0:
            w.write_table(schema.empty_table())
    hh.flush()
    hc.flush()
    del order, colrep
    add_deepjoin_text(rows, np.asarray(hh))
    write_columns(rows, out / "columns.parquet")
    return rows


def lake_frequency(hashes, sorted_hashes):
    """How many columns of the lake hold each hash (its posting-list length)."""
    import numpy as np

    h = np.asarray(hashes, dtype=np.uint64)
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

    from lakeql.joins.profile import profile_schema

    schema = profile_schema()
    for name, typ in (("col_id", pa.int32()), ("offset", pa.int64()), ("n_hashes", pa.int64()),
                      ("text", pa.string()), ("text_values", pa.list_(pa.string()))):
        schema = schema.append(pa.field(name, typ))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")
