"""Helpers to bind Python UDFs to DuckDB, shared by every capability.

DuckDB has no Python table functions, so a lakeql table function is a macro
``CREATE MACRO f(...) AS TABLE SELECT unnest(f_impl(...), recursive := true)`` over a scalar UDF
``f_impl`` returning ``LIST<STRUCT<...>>`` (see :func:`table_udf`). Expensive UDFs are registered with
``side_effects=True`` so DuckDB neither folds them at plan time nor runs them from ``EXPLAIN``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lakeql.errors import LakeqlError, shown

REGISTERED: set[str] = set()  # names bound by scalar_udf() (lakeql.functions lists the public ones)


def sqltype(name: str):
    import duckdb

    return duckdb.sqltype(name)


def struct_list(columns: Sequence[tuple[str, str]]):
    """``LIST<STRUCT<name type, ...>>`` as a DuckDB type object."""
    import duckdb

    return duckdb.list_type(duckdb.struct_type({n: duckdb.sqltype(t) for n, t in columns}))


def scalar_udf(con, name: str, fn: Callable[..., Any], params: Sequence[str], returns: Any,
               *, side_effects: bool = True, null_handling: str = "special", arrow: bool = False
               ) -> None:
    """Register ``fn`` as SQL function ``name`` (replacing an older registration of this name).

    ``params`` and ``returns`` are DuckDB type names (or type objects for ``returns``).
    ``LakeqlError`` raised inside surfaces as a DuckDB ``InvalidInputException`` with its message.
    """
    import duckdb

    try:
        con.remove_function(name)
    except Exception:  # noqa: BLE001 - not registered yet
        pass
    ret = duckdb.sqltype(returns) if isinstance(returns, str) else returns
    from duckdb.func import ARROW, DEFAULT, NATIVE, SPECIAL

    con.create_function(name, fn, [duckdb.sqltype(p) for p in params], ret,
                        type=ARROW if arrow else NATIVE,
                        null_handling=SPECIAL if null_handling == "special" else DEFAULT,
                        side_effects=side_effects)
    REGISTERED.add(name)


def table_udf(con, name: str, fn: Callable[..., list[dict[str, Any]]], params: Sequence[str],
              columns: Sequence[tuple[str, str]]) -> None:
    """Register ``{name}_impl`` returning LIST<STRUCT(columns)>; pair it with a macro in udfs/*.sql."""
    scalar_udf(con, f"{name}_impl", fn, params, struct_list(columns))


# Unicode categories that carry no text to search for: control (NUL, tab, ESC, C1), format (zero-width
# space / joiners, BOM, bidi marks, soft hyphen), surrogates, and space / line / paragraph separators
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})

#: an RE2 class (DuckDB's ``regexp_matches``) of a character that is not blank in :func:`is_blank`'s sense,
#: made from the same categories (surrogates cannot occur in DuckDB text): the embed build keeps a row only
#: if it has one, so a row is embedded exactly when the same text as a query would be searched. RE2's
#: ``\S`` is ASCII-only: rows of ideographic spaces, no-break/zero-width spaces or BOMs were embedded
NOT_BLANK_RE = "[^" + "".join(f"\\p{{{c}}}" for c in sorted(_BLANK_CATEGORIES - {"Cs"})) + "]"


def is_blank(text: Any) -> bool:
    """Whether a query ``text`` is NULL or holds nothing to search for: only whitespace, control or format
    characters (``chr(0)``, ``'\\u200b'``, ``'\\t\\n'``). Such a query is refused like an empty one."""
    if text is None:
        return True
    text = str(text)
    if not text.strip():
        return True
    import unicodedata

    return all(unicodedata.category(c) in _BLANK_CATEGORIES for c in text)  # stops at the first letter


def check_k(k: Any, name: str = "k") -> int:
    """Validate a top-k argument: a positive integer (raises a clear error otherwise)."""
    if k is None:
        raise LakeqlError(f"{name} must be a positive integer, got NULL")
    try:
        kk = int(k)
    except (TypeError, ValueError):
        raise LakeqlError(f"{name} must be a positive integer, got {shown(k)}") from None
    if kk <= 0:
        raise LakeqlError(f"{name} must be a positive integer, got {kk}")
    return kk
