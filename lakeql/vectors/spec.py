"""Resolve ``TABLE.COLUMN`` arguments (``--embed python.functions.docstring``, ``functions.docstring``)."""

from __future__ import annotations

from lakeql.errors import LakeqlError, UnknownTableError, did_you_mean
from lakeql.lake import Lake, Table


def split_table_column(lake: Lake, spec: str) -> tuple[Table, str]:
    """Split ``spec`` at the dot that leaves a known table on the left (``domain.name`` or bare name).

    Tries every split point from the right, so column names containing dots also work.
    """
    text = str(spec).strip()
    parts = text.split(".")
    if len(parts) < 2:
        raise LakeqlError(f"expected TABLE.COLUMN, got {text!r} (for example python.functions.docstring)")
    for cut in range(len(parts) - 1, 0, -1):
        name, column = ".".join(parts[:cut]), ".".join(parts[cut:])
        try:
            return lake.table(name), column
        except (UnknownTableError, LakeqlError):
            continue
    raise UnknownTableError(f"no table in {text!r} is in the lake{did_you_mean(parts[0], lake.tables)}: "
                            "expected TABLE.COLUMN, for example python.functions.docstring")
