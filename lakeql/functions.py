"""The public lakeql SQL functions of a connection: what ``.functions`` shows and what front ends list.

Derived from what is actually registered, not from a hand-kept list: the rows of ``duckdb_functions()``
whose name is a macro defined in lakeql's ``udfs/*.sql`` files or a scalar UDF bound through
:func:`lakeql.udf.scalar_udf`. Internal helpers are left out: the ``*_impl`` UDFs behind table macros and
any name starting with ``_``; so are DuckDB's built-ins. Parameters starting with ``_`` (e.g. the
``_path`` of a pure macro, filled in from the index dir) are hidden from signatures.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_MACRO = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?MACRO\s+"
                    r"(?:\w+\.)?(\w+)\s*\(", re.IGNORECASE)
KINDS = {"table_macro": "table", "macro": "scalar", "scalar": "scalar"}


def is_public(name: str) -> bool:
    """True for names a user calls: not the ``*_impl`` UDFs behind macros, not ``_``-prefixed helpers."""
    return not name.startswith("_") and not name.endswith("_impl")


def _split_params(text: str, start: int) -> list[str] | None:
    """The top-level comma-separated items from ``text[start:]`` up to the matching ``)``."""
    depth, quote, items, cur = 0, "", [], []
    for ch in text[start:]:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == ")":
            if depth == 0:
                item = " ".join("".join(cur).split())
                return items + ([item] if item else [])
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(" ".join("".join(cur).split()))
            cur = []
            continue
        cur.append(ch)
    return None  # unbalanced: not a macro header we can read


def macro_params(paths: tuple[Path, ...]) -> dict[str, list[list[str]]]:
    """Macro name -> the parameter lists (as written, defaults included) of each of its definitions."""
    out: dict[str, list[list[str]]] = {}
    for path in paths:
        text = "\n".join("" if line.lstrip().startswith("--") else line
                         for line in path.read_text(encoding="utf-8").splitlines())
        for m in _MACRO.finditer(text):
            params = _split_params(text, m.end())
            if params is not None:
                out.setdefault(m.group(1).lower(), []).append(params)
    return out


@lru_cache(maxsize=1)
def _lakeql_macros() -> dict[str, list[list[str]]]:
    from lakeql.sqlfiles import udfs_dir

    return macro_params(tuple(sorted(udfs_dir().glob("*.sql"))))


def _param_name(written: str) -> str:
    return re.split(r"\s*:=\s*|\s+", written.strip(), maxsplit=1)[0].lower()


def _macro_signature(name: str, registered: list[str]) -> str:
    """``name(a, b := 2)``: the registered parameters, with the defaults written in the .sql file."""
    wanted = [p.lower() for p in registered]
    written = next((ps for ps in _lakeql_macros().get(name.lower(), [])
                    if [_param_name(p) for p in ps] == wanted), None)
    shown = written if written is not None else registered
    return f"{name}({', '.join(p for p in shown if not _param_name(p).startswith('_'))})"


def public_functions(con) -> list[tuple[str, str, str]]:
    """``(name, kind, signature)`` of every public lakeql function registered on ``con``, sorted.

    ``kind`` is ``'table'`` (use in ``FROM``) or ``'scalar'``. A function with several overloads has
    one row per overload.
    """
    from lakeql.udf import REGISTERED

    macros = {n for n in _lakeql_macros() if is_public(n)}
    scalars = {n for n in REGISTERED if is_public(n)}
    names = sorted(macros | scalars)
    if not names:
        return []
    rows = con.execute(
        "SELECT function_name, function_type, parameters, parameter_types, return_type "
        "FROM duckdb_functions() WHERE lower(function_name) IN (SELECT unnest(?::VARCHAR[])) "
        "AND function_type IN ('macro', 'table_macro', 'scalar')", [names]).fetchall()
    out: set[tuple[str, str, str]] = set()
    for name, ftype, params, ptypes, ret in rows:
        low = name.lower()
        if ftype == "scalar":
            if low not in scalars:
                continue  # a DuckDB built-in that shares a macro's name
            sig = f"{name}({', '.join(t or 'ANY' for t in (ptypes or []))}) -> {ret}"
        else:
            if low not in macros:
                continue
            sig = _macro_signature(name, list(params or []))
        out.add((name, KINDS[ftype], sig))
    return sorted(out)
