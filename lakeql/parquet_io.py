"""Read one Parquet file of an index into Arrow, cheaply.

``pyarrow.parquet.read_table`` goes through ``pyarrow.dataset`` (and with it pandas): about 0.5-1 s of
imports in a fresh process, paid by the first query of every ``lakeql sql`` call. An index file is one
plain file, so :class:`pyarrow.parquet.ParquetFile` reads it the same without those imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_table(path: str | Path, columns: list[str] | None = None) -> Any:
    """The whole Parquet file at ``path`` (or only ``columns``) as a ``pyarrow.Table``."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return f.read(columns=columns)


def rows(table: Any) -> list[dict[str, Any]]:
    """``table.to_pylist()``, but time-zone-aware timestamp columns are converted here: pyarrow's own
    conversion of them imports pandas (0.5-1 s per process). They come back as UTC ``datetime``s
    (nanoseconds truncated to microseconds, as ``datetime`` holds no finer)."""
    import datetime as dt

    import pyarrow as pa

    zoned = [i for i, f in enumerate(table.schema) if pa.types.is_timestamp(f.type) and f.type.tz]
    if not zoned:
        return table.to_pylist()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    converted = {}
    for i in zoned:
        field = table.schema.field(i)
        micros = table.column(i).cast(pa.timestamp("us", field.type.tz), safe=False).cast(pa.int64())
        converted[field.name] = [None if us is None else epoch + dt.timedelta(microseconds=us)
                                 for us in micros.to_pylist()]
    out = table.drop_columns([table.schema.field(i).name for i in zoned]).to_pylist()
    order = table.column_names
    for j, row in enumerate(out):
        for name, values in converted.items():
            row[name] = values[j]
        out[j] = {name: row[name] for name in order}
    return out
