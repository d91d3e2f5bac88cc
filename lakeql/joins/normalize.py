"""Which columns can join, and the one value normalization every part of the join index shares.

A value is joined after ``nullif(lower(trim(CAST(v AS VARCHAR))), '')`` and hashed with DuckDB's
``hash()`` (64-bit, identical in DuckDB 2.0 Python and the 1.5 CLI), so the stock CLI can hash a value
the same way the builder did. Integers, dates and timestamps join through their text form, which is
what makes ``flights.year`` (BIGINT) meet ``planes.year`` (INTEGER).
"""

from __future__ import annotations

from lakeql.lake import quote_ident

MAX_TEXT_AVG_LEN = 200  # text columns whose median distinct value is longer are prose, not keys


def type_class(duck_type: str) -> str | None:
    """'text', 'int', 'date' for joinable DuckDB types, None for the rest (floats, blobs, nested...):
    the columns the core profile gives value statistics (:func:`lakeql.profile.value_class`)."""
    from lakeql.profile import value_class

    return value_class(duck_type)


def skip_reason(duck_type: str) -> str:
    """Why a column of this type is not indexed (one phrase)."""
    t = duck_type.upper()
    if t == "BLOB":
        return "binary column"
    if t.endswith("[]") or t.startswith(("STRUCT", "MAP", "LIST", "UNION")) or "[" in t:
        return "nested column"
    return f"type {duck_type} is not a join key type (strings, integers, dates)"


def norm_sql(expr: str) -> str:
    """SQL of the normalized text of ``expr`` (NULL for NULL or empty)."""
    return f"nullif(lower(trim(CAST({expr} AS VARCHAR))), '')"


def norm_col(column: str, alias: str = "") -> str:
    ref = f"{alias}.{quote_ident(column)}" if alias else quote_ident(column)
    return norm_sql(ref)


def normalize_py(value: str) -> str:
    """Python twin of :func:`norm_sql` for values already cast to text."""
    return value.strip().lower()
