"""The header line of a CSV file DuckDB reads as a data row: decided per file, deterministically.

DuckDB's sniffer (2.0.1, ``header_detection.cpp``) takes the first line as the header when one of its
fields does not cast to the type sniffed for its column, or when every column sniffs as VARCHAR (or the
line is all empty). So it reads a real header as a data row (columns ``column0``...) when the line casts
to every typed column: a column that is empty below its header (its type is not VARCHAR while sniffing,
and an empty header field casts to anything: fivethirtyeight's ``cabinet-turnover`` header
``president,...,gender,,``), or a header field that is itself a number over a numeric column
(``district,2021`` over ``AK-1,-14.62``). A file it reads with a header costs nothing more here: only a
file DuckDB sniffs without one (``sniff_csv(...).HasHeader`` false, no skipped lines) is looked at.

The rule (:func:`has_header`), on the first line ``H`` and the next :data:`SAMPLE_ROWS` rows (DuckDB's
own sample size) read as text with DuckDB's dialect (``header = false, all_varchar = true``):

1. there are at least :data:`MIN_ROWS` (2) rows after ``H`` (one row is no sample: ``AB12,x`` over
   ``ef56,y`` alone is as likely two rows of data);
2. at least half of ``H``'s fields are non-empty, and the non-empty ones are distinct;
3. no non-empty field of ``H`` occurs again in its column (a name is not one of its column's values);
4. the words of ``H`` (its non-empty fields that are not numbers) exist, and more than half of them have
   a *shape* no value of their column has: a field's shape is its text with each run of upper-case
   letters made ``A``, of other letters ``a``, of digits ``9`` and of blanks one space (``president`` is
   ``a`` over ``Carter``'s ``Aa``; ``start_date`` is ``a_a`` over ``1/21/77``'s ``9/9/9``). A shape
   that differs by case alone (the same with every run of letters ``a``: ``a`` and ``Aa``) is evidence
   only over at least :data:`CASE_ROWS` (10) values: a first row of data often differs from a few rows
   below by case alone (``SMITH,JOHN`` over ``Jones,Mary``; codes ``AB12`` over ``ef56``; ``Apple``
   over ``banana``: review12, such files lost their first row); values that
   mark a missing value (:data:`NULL_MARKERS`: ``NA``, ``N/A``, ``NULL``...) have no shape (``SMITH``
   over ``30915.36`` and ``NA`` is evidence).

Rule 4 is the evidence: a first line of data has the shapes of the rows below it (a headerless file of
numbers has no words; one of names or words has their shapes, ``alice`` over ``bob``, ``Alice Smith``
over ``Bob Jones``), where a header's names rarely look like their column's values. A file without
evidence stays as DuckDB reads it. Numbers in ``H`` (``2021``) are neither evidence nor against it:
DuckDB already found them consistent with their column.

When the rule takes the header, the table is read with ``header = true`` (every scan: catalog, views,
profiles; :meth:`lakeql.lake.Table.scan_sql`), so DuckDB names its columns as it does for any header
(trimmed; an empty field ``column<position>``, zero-padded like DuckDB's own ``column08``; a repeated
name ``a_1``) and types them without the header line. The catalog records it per table
(``catalog/tables.parquet`` ``csv_header``).
"""

from __future__ import annotations

import re
from typing import Any

#: the rule's version, in the catalog's manifest row: a refresh decides again the tables an older rule
#: read with ``header = true`` (1: d948299, where case alone and a single row below were evidence)
RULE = 2
SAMPLE_ROWS = 20480  # DuckDB's default sniffing sample
#: rows after the first line needed to decide: against a single row, any first line has shapes of its own
MIN_ROWS = 2
#: values a column needs below the first line for a shape differing by case alone to be evidence
CASE_ROWS = 10
GENERATED = re.compile(r"column\d+")
#: values that stand for a missing value (compared case-insensitively): not shapes of their column
NULL_MARKERS = ("na", "n/a", "nan", "null", "none", "nil", "-", "--", ".", "?")


def _shape_sql(expr: str, fold: bool = False) -> str:
    """SQL of the shape of ``expr`` (see the module docstring): runs of upper-case letters ``A``, of other
    letters ``a`` (``fold``: runs of letters of either case ``a``), of digits ``9``, of blanks one
    space."""
    if fold:
        s = f"regexp_replace({expr}, '\\p{{L}}+', 'a', 'g')"
    else:
        s = f"regexp_replace({expr}, '\\p{{Lu}}+', 'A', 'g')"
        s = f"regexp_replace({s}, '[\\p{{Ll}}\\p{{Lt}}\\p{{Lm}}\\p{{Lo}}]+', 'a', 'g')"
    s = f"regexp_replace({s}, '\\p{{Nd}}+', '9', 'g')"
    return f"regexp_replace({s}, '\\s+', ' ', 'g')"


def generated(names: list[str]) -> bool:
    """True when some of ``names`` look like DuckDB's made-up ``column<N>`` (a file read without a header
    may be among the table's files)."""
    return any(GENERATED.fullmatch(n) for n in names)


def sniff(con: Any, path: str) -> tuple[bool, int]:
    """(DuckDB's sniffer found a header, lines it skips before the data) for one CSV file."""
    has, skip = con.execute("SELECT HasHeader, SkipRows FROM sniff_csv(?)", [path]).fetchone()
    return bool(has), int(skip or 0)


def has_header(con: Any, path: str) -> bool:
    """Whether the first line of CSV file ``path`` (which DuckDB sniffed without a header) is its header,
    by the rule of the module docstring. One scan of at most :data:`SAMPLE_ROWS` + 1 rows."""
    from lakeql.lake import quote_ident, quote_path

    scan = f"read_csv([{quote_path(path)}], header = false, all_varchar = true)"
    first = con.execute(f"SELECT * FROM {scan} LIMIT 1").fetchone()
    if first is None:
        return False
    names = [d[0] for d in con.description]
    head = [None if v is None or not str(v).strip() else str(v) for v in first]
    filled = [h for h in head if h is not None]
    if len(filled) * 2 < len(head) or len({h.strip() for h in filled}) != len(filled):
        return False
    numeric = con.execute(
        "SELECT "
        + ", ".join(f"TRY_CAST(?::VARCHAR AS DOUBLE) IS NOT NULL AS n{i}" for i in range(len(filled))),
        filled,
    ).fetchone()
    is_num = dict(zip(filled, numeric, strict=True))
    exprs, params, words = ["count(*)"], [], []
    for name, h in zip(names, head, strict=True):
        if h is None:
            continue
        q = quote_ident(name)
        exprs.append(f"coalesce(bool_or({q} = ?), false)")
        params.append(h)
        if not is_num[h]:
            words.append(h)
            markers = ", ".join(f"'{m}'" for m in NULL_MARKERS)
            value = f"lower(trim({q})) NOT IN ({markers})"
            for fold in (False, True):
                exprs.append(
                    f"coalesce(bool_or({_shape_sql(q, fold)} = {_shape_sql('?', fold)} AND {value}), false)"
                )
                params.append(h)
            exprs.append(f"count(*) FILTER ({value})")
    got = con.execute(
        f"SELECT {', '.join(exprs)} FROM (SELECT * FROM {scan} LIMIT {SAMPLE_ROWS} OFFSET 1)", params
    ).fetchone()
    if got[0] < MIN_ROWS or not words:
        return False
    i, evidence = 1, 0
    for h in head:
        if h is None:
            continue
        if got[i]:  # the name occurs again in its column: a row of data
            return False
        i += 1
        if not is_num[h]:  # a shape of its own; by case alone only over CASE_ROWS values or more
            same, same_folded, values = got[i : i + 3]
            evidence += not same_folded or (not same and values >= CASE_ROWS)
            i += 3
    return evidence * 2 > len(words)
