"""Join facts of a column, derived from its core profile (:mod:`lakeql.profile`, one scan per table).

:func:`join_row` turns one profile row into the row the join index keeps: whether the column is indexed
(and why not), uniqueness, dominant value pattern, case class, integer range, and whether its values
are a **surrogate sequence**: a unique, dense run of integers starting at 0 or 1 (row numbers,
auto-increment ids such as R's ``rownames``). Those are recognised from the values alone (never from the
column name): ``n_distinct == non-empty values`` and ``max - min + 1 == n_distinct`` with ``min`` in
{0, 1}. Any two tables of similar length share such a column, so the ranking (rank.py) does not count
its overlap as join evidence by itself.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from lakeql.joins.normalize import MAX_TEXT_AVG_LEN, skip_reason, type_class

PATTERN_VALUES = 30  # most frequent values whose shapes vote for the column's pattern
SURROGATE_MIN = 3  # a sequence needs at least this many values to count as one

JOIN_FIELDS = [
    ("table_name", "string"), ("column_name", "string"), ("ordinal", "int32"), ("type", "string"),
    ("type_class", "string"), ("indexed", "bool_"), ("note", "string"), ("row_count", "int64"),
    ("nonnull", "int64"), ("n_distinct", "int64"), ("uniqueness", "float64"), ("null_share", "float64"),
    ("len_min", "int32"), ("len_max", "int32"), ("len_avg", "float64"), ("pattern", "string"),
    ("case_class", "string"), ("int_min", "float64"), ("int_max", "float64"), ("sequence", "bool_"),
    ("surrogate", "bool_"),
]


def join_schema():
    import pyarrow as pa

    fields = [pa.field(n, getattr(pa, t)()) for n, t in JOIN_FIELDS]
    fields += [pa.field("top_values", pa.list_(pa.string())), pa.field("top_hashes", pa.list_(pa.uint32())),
               pa.field("top_counts", pa.list_(pa.int64())), pa.field("sketch", pa.list_(pa.uint32()))]
    return pa.schema(fields)


_SHAPE = str.maketrans({**{c: "A" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
                        **{c: "a" for c in "abcdefghijklmnopqrstuvwxyz"}, **{c: "9" for c in "0123456789"}})
_RUNS = re.compile(r"(.)\1+")


def shape(value: str) -> str:
    """A value's pattern: letters -> A/a, digits -> 9, runs collapsed ('N12345' -> 'A9+')."""
    return _RUNS.sub(r"\1+", value[:40].translate(_SHAPE))


def _int(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(int(text.strip()))
    except ValueError:
        return None


def is_sequence(n_distinct: int, n_values: int, imin: float | None, imax: float | None) -> bool:
    """A unique dense run of integers (no gaps, no repeats), at least ``SURROGATE_MIN`` long."""
    return (imin is not None and imax is not None and n_distinct >= SURROGATE_MIN
            and n_distinct == n_values and imax - imin + 1 == n_distinct)


def is_surrogate(n_distinct: int, n_values: int, imin: float | None, imax: float | None) -> bool:
    """A unique dense integer sequence starting at 0 or 1 (see the module docstring)."""
    return is_sequence(n_distinct, n_values, imin, imax) and imin in (0.0, 1.0)


def join_row(p: dict[str, Any]) -> dict[str, Any]:
    """The join index row of one core profile row (see the module docstring)."""
    rc = int(p["row_count"] or 0)
    tc = type_class(p["type"])
    nv, nd = int(p["n_values"] or 0), int(p["n_distinct"] or 0)
    row: dict[str, Any] = {
        "table_name": p["table_name"], "column_name": p["column_name"], "ordinal": p["ordinal"],
        "type": p["type"], "type_class": tc, "indexed": False, "note": None, "row_count": rc,
        "nonnull": nv, "n_distinct": nd if tc else 0, "uniqueness": (nd / nv) if nv and tc else 0.0,
        "null_share": (1 - nv / rc) if rc else 0.0, "len_min": None, "len_max": None, "len_avg": None,
        "pattern": None, "case_class": None, "int_min": None, "int_max": None,
        "sequence": False, "surrogate": False,
        "top_values": [], "top_hashes": [], "top_counts": [], "sketch": [],
        "n_hashes": int(p["n_hashes"] or 0),
    }
    if tc is None:
        row["note"] = "skipped: " + skip_reason(p["type"])
        row["null_share"] = 1.0 - (int(p["nonnull"] or 0) / rc) if rc else 0.0
        return row
    if nd == 0:
        row["note"] = "skipped: no non-empty values"
        return row
    row.update(len_min=p["len_min"], len_max=p["len_max"], len_avg=p["len_avg"])
    if tc == "text" and p["len_median"] is not None and p["len_median"] > MAX_TEXT_AVG_LEN:
        row["note"] = f"skipped: free text (median value length {p['len_median']:.0f} characters)"
        return row
    up, lo, tr = bool(p["upper"]), bool(p["lower"]), bool(p["trimmed"])
    row["case_class"] = ("upper" if up and not lo else "lower" if lo and not up else
                         "none" if up and lo else "mixed") + ("" if tr else "+untrimmed")
    imin = imax = None
    if tc == "int":
        imin, imax = _int(p["min"]), _int(p["max"])
        row["int_min"], row["int_max"] = imin, imax
    row["top_values"] = list(p["top_values"] or [])
    row["top_counts"] = [int(c) for c in p["top_counts"] or []]
    shapes = Counter(shape(v) for v in row["top_values"][:PATTERN_VALUES])
    row["pattern"] = shapes.most_common(1)[0][0] if shapes else None
    if tc == "text" and row["pattern"] in ("9", "9+"):  # integers stored as text (CSV sources)
        nums = [_int(v) for v in row["top_values"]]
        if nd <= len(nums) and all(x is not None for x in nums):
            imin, imax = min(nums), max(nums)  # type: ignore[type-var]
    row["sequence"] = is_sequence(nd, nv, imin, imax)
    row["surrogate"] = is_surrogate(nd, nv, imin, imax)
    row["indexed"] = True
    return row
