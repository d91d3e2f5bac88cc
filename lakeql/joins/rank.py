"""Ranking join candidates so the referenced key comes first.

Containment alone ranks a child table that repeats a key (weather.origin, Fielding.playerID) level with
the parent that owns it (airports.faa, People.playerID). The score multiplies three pieces of evidence:

``containment``      share of the query's distinct values found in the candidate (exact for equi joins)
``key-ness``         the candidate's uniqueness (distinct / non-null rows): a referenced key is unique
``name/semantics``   similarity of the column names, and cosine of the two DeepJoin embeddings

    score = containment * (0.5 + 0.5 * uniqueness) * (0.8 + 0.2 * evidence)

so a unique parent with full containment scores near 1 and a child repeating the key near 0.5. A query
of integers (day 1..31, minutes, altitudes) matches numeric columns by accident: there the evidence
factor becomes ``0.5 + 0.5 * evidence``.

Surrogate sequences: two columns that are both unique dense integer runs, one of them starting at 0 or 1
(row numbers, auto-increment ids: see joins/profile.py), overlap in any two tables of similar length, and
their names are often equal too ('rownames', 'id'), so neither containment nor the name is evidence. Such
a pair's score is multiplied by ``SURROGATE_FACTOR`` unless a name ties one column to the other's table
(``flight_id`` -> table ``flights``): a foreign key to an auto-increment key keeps its score.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

_SPLIT = re.compile(r"[^0-9a-zA-Z]+|(?<=[a-z])(?=[A-Z])")


@lru_cache(maxsize=65536)
def name_tokens(name: str) -> frozenset[str]:
    return frozenset(_name_tokens(name))


def _name_tokens(name: str) -> set[str]:
    toks = {t.lower() for t in _SPLIT.split(name) if t}
    return {t[:-1] if len(t) > 3 and t.endswith("s") else t for t in toks}


def name_similarity(query_col: str, cand_col: str, cand_table: str) -> float:
    """1 for equal names; token Jaccard or character similarity otherwise; the candidate's table name
    counts too ('carrier' ~ table 'carriers'). Cached: lakes repeat column names."""
    return max(_column_names(query_col, cand_col), _table_name(query_col, cand_col,
                                                               cand_table.rsplit(".", 1)[-1]))


@lru_cache(maxsize=262144)
def _column_names(query_col: str, cand_col: str) -> float:
    a, b = query_col.lower(), cand_col.lower()
    if a == b:
        return 1.0
    ta, tb = name_tokens(query_col), name_tokens(cand_col)
    jac = len(ta & tb) / len(ta | tb) if ta and tb else 0.0
    m = SequenceMatcher(None, a, b)
    char = m.ratio() if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6 else 0.0
    return float(max(jac, char if char >= 0.6 else 0.0))


_TABLE_KEYS = ("id", "key", "code", "name")  # candidate names _table_name looks past to the table


@lru_cache(maxsize=262144)
def _table_name(query_col: str, cand_col: str, tname: str) -> float:
    if cand_col.lower() not in _TABLE_KEYS:
        return 0.0
    ta, tt = name_tokens(query_col), name_tokens(tname)
    return 0.8 if ta and (ta <= tt or tt <= ta) else 0.0


def semantic_similarity(ix, q: int, cols: Any):
    """Cosine of DeepJoin vectors, mapped to [0, 1] (0 below 0.3, 1 above 0.9); zeros without them."""
    import numpy as np

    if ix.vectors is None or len(cols) == 0:
        return np.zeros(len(cols))
    cos = np.asarray(ix.vectors[np.asarray(cols)]) @ np.asarray(ix.vectors[q])
    return np.clip((cos - 0.3) / 0.6, 0.0, 1.0)


SURROGATE_FACTOR = 0.5
_GENERIC = {"id", "key", "no", "num", "number", "nr", "idx", "index", "row", "code"}


def _names_table(column: str, table: str) -> bool:
    """True when the column's distinctive name words name the table ('flight_id' ~ 'flights')."""
    cw = name_tokens(column) - _GENERIC
    tw = name_tokens(table.rsplit(".", 1)[-1])
    return bool(cw and tw and cw & tw)


def surrogate_factor(ix, q: int, cols: Any):
    """``SURROGATE_FACTOR`` for candidates that pair two row-number-like sequences with no name tying
    them together, 1 otherwise (see the module docstring)."""
    import numpy as np

    cols = np.asarray(cols, dtype=np.int64)
    out = np.ones(len(cols))
    if len(cols) == 0 or not ix.sequence[q]:
        return out
    hit = ix.sequence[cols] & (ix.surrogate[cols] | bool(ix.surrogate[q]))
    for i in np.flatnonzero(hit):
        c = int(cols[i])
        if not (_names_table(ix.column_name[q], ix.table_name[c])
                or _names_table(ix.column_name[c], ix.table_name[q])):
            out[i] = SURROGATE_FACTOR
    return out


_NUMERIC_PATTERN = re.compile(r"^-?9\+?([.,]9\+?)?$")


def weak_query(ix, q: int) -> bool:
    """True for integer columns and text columns of numbers: counts, minutes, altitudes and ids share
    values by accident, so only names or semantics can tell a real reference from a coincidence."""
    return ix.type_class[q] == "int" or bool(_NUMERIC_PATTERN.match(ix.pattern[q] or ""))


def score(containment: Any, uniqueness: Any, evidence: Any, weak_query: bool = False):
    import numpy as np

    c = np.asarray(containment, dtype=np.float64)
    u = np.clip(np.asarray(uniqueness, dtype=np.float64), 0, 1)
    e = np.clip(np.asarray(evidence, dtype=np.float64), 0, 1)
    ev = (0.5 + 0.5 * e) if weak_query else (0.8 + 0.2 * e)
    return c * (0.5 + 0.5 * u) * ev


def evidence(ix, q: int, cols: Any):
    """max(name similarity, semantic similarity) for each candidate column."""
    import numpy as np

    sem = semantic_similarity(ix, q, cols)
    return np.maximum(sem, name_similarities(ix, q, cols))


def name_similarities(ix, q: int, cols: Any):
    """``name_similarity`` of column q's name to each candidate's (equal values), computed once per
    distinct candidate name: a pool holds the same column of many copies of a table (the join graph
    ranks about a million candidates on a 2,400-table lake)."""
    import numpy as np

    cols = np.asarray(cols, dtype=np.int64)
    if len(cols) == 0:
        return np.zeros(0)
    ids, names, keyish = _name_ids(ix)
    uniq, inv = np.unique(ids[cols], return_inverse=True)
    qn = ix.column_name[q]
    out = np.array([_column_names(qn, names[int(i)]) for i in uniq], dtype=np.float64)[inv.ravel()]
    for i in np.flatnonzero(keyish[cols]):  # 'id', 'code' ...: the candidate's table name counts too
        c = int(cols[i])
        out[i] = max(out[i], _table_name(qn, ix.column_name[c], ix.table_name[c].rsplit(".", 1)[-1]))
    return out


def _name_ids(ix):
    """(distinct-name id per column, the distinct names, whether _table_name applies), once per index."""
    import numpy as np

    got = getattr(ix, "_lakeql_name_ids", None)
    if got is None or len(got[0]) != len(ix.column_name):
        names, ids = np.unique(np.asarray(ix.column_name, dtype=object), return_inverse=True)
        names = names.tolist()
        keyish = np.array([n.lower() in _TABLE_KEYS for n in names], dtype=bool)[ids.ravel()]
        got = (ids.ravel().astype(np.int64), names, keyish)
        ix._lakeql_name_ids = got
    return got
