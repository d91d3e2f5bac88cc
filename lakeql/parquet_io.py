"""Read one Parquet file of an index into Arrow, cheaply.

``pyarrow.parquet.read_table`` goes through ``pyarrow.dataset`` (and with it pandas): about 0.5-1 s of
imports in a fresh process, paid by the first query of every ``lakeql sql`` call. An index file is one
plain file, so :class:`pyarrow.parquet.ParquetFile` reads it the same without those imports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: index files from this size are decoded on Arrow's thread pool (smaller ones on the calling thread)
THREADED_READ_BYTES = 4 << 20


def read_table(path: str | Path, columns: list[str] | None = None) -> Any:
    """The whole Parquet file at ``path`` (or only ``columns``) as a ``pyarrow.Table``.

    Files under :data:`THREADED_READ_BYTES` are decoded on the calling thread: handing the columns of a
    small file to Arrow's pool and waiting for them cost more than decoding them (~1 ms of CPU a file;
    a refresh reads ~30 index files). The table read is the same either way."""
    import os

    import pyarrow.parquet as pq

    try:
        threads = os.path.getsize(path) >= THREADED_READ_BYTES
    except (OSError, TypeError, ValueError):  # not a local file: as pyarrow does by default
        threads = True
    with pq.ParquetFile(path) as f:
        return f.read(columns=columns, use_threads=threads)


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
        converted[field.name] = [None if us is None else epoch + dt.timedelta(microseconds=us)
                                 for us in _micros(table.column(i), field.type.unit)]
    out = table.drop_columns([table.schema.field(i).name for i in zoned]).to_pylist()
    order = table.column_names
    for j, row in enumerate(out):
        for name, values in converted.items():
            row[name] = values[j]
        out[j] = {name: row[name] for name in order}
    return out



_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _micros(col: Any, unit: str) -> list[int | None]:
    """Microseconds since the epoch of a timestamp column (None for NULL), as ``cast(timestamp('us'),
    safe=False)`` gives them (nanoseconds truncated toward zero), read from the stored integers
    (``Array.view``) rather than through ``pyarrow.compute``: its import is ~0.04 CPU s that a refresh
    with nothing to profile would pay only to read the manifest's ``built_at``."""
    import pyarrow as pa

    per = _PER_SECOND[unit]
    out: list[int | None] = []
    for chunk in col.chunks:
        raw = chunk.view(pa.int64()).to_pylist()
        if per >= 1_000_000:
            f = per // 1_000_000
            out.extend(None if v is None else (v // f if v >= 0 else -(-v // f)) for v in raw)
        else:
            m = 1_000_000 // per
            out.extend(None if v is None else v * m for v in raw)
    return out


class _HidePandas:
    """A meta-path finder under which ``import pandas`` fails (see :func:`without_pandas`)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ImportError("pandas hidden while lakeql builds (lakeql.parquet_io.without_pandas)")
        return None


@contextlib.contextmanager
def without_pandas() -> Iterator[bool]:
    """Run the block as if pandas were not installed (yields True when that took effect).

    pyarrow imports pandas the first time it converts Python values (``pa.array``, ``pa.table``,
    ``from_pylist``: every index file lakeql writes), to ask whether they are pandas objects: 0.25-0.4
    CPU s per process, the largest single cost of a ``lakeql index --refresh`` that changes little
    (issue 10 item 4). lakeql hands pyarrow no pandas objects, so the ``lakeql index`` command builds
    inside this block: pyarrow's Python side asks once while ``import pandas`` fails (it remembers the
    answer), its C++ side and every ``importlib.util.find_spec('pandas')`` see ``sys.modules['pandas']
    = None`` (not installed) until the block ends. After it ``import pandas`` and ``to_pandas()`` work
    again (pyarrow imports pandas when it really needs it). A no-op when pandas is already imported or
    pyarrow's internals differ. For processes lakeql owns (the command line), not the Python API.
    """
    import sys

    if sys.modules.get("pandas", False) is not False:
        yield False
        return
    finder = _HidePandas()
    sys.meta_path.insert(0, finder)
    try:
        import pyarrow.lib as pl

        ok = not pl._pandas_api.have_pandas
    except Exception:  # noqa: BLE001 - another pyarrow: leave pandas alone
        ok = False
    finally:
        sys.meta_path.remove(finder)
    if not ok or "pandas" in sys.modules:
        yield False
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        yield True
    finally:
        if "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]
