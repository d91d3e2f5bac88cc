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
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Any

_SPLIT = re.compile(r"[^0-9a-zA-Z]+|(?<=[a-z])(?=[A-Z])")


def name_tokens(name: str) -> set[str]:
    toks = {t.lower() for t in _SPLIT.split(name) if t}
    return {t[:-1] if len(t) > 3 and t.endswith("s") else t for t in toks}


def name_similarity(query_col: str, cand_col: str, cand_table: str) -> float:
    """1 for equal names; token Jaccard or character similarity otherwise; the candidate's table name
    counts too ('carrier' ~ table 'carriers')."""
    a, b = query_col.lower(), cand_col.lower()
    if a == b:
        return 1.0
    ta, tb = name_tokens(query_col), name_tokens(cand_col)
    jac = len(ta & tb) / len(ta | tb) if ta and tb else 0.0
    char = SequenceMatcher(None, a, b).ratio()
    tname = cand_table.rsplit(".", 1)[-1]
    tt = name_tokens(tname)
    tab = 0.8 if ta and (ta <= tt or tt <= ta) and cand_col.lower() in ("id", "key", "code", "name") else 0.0
    return float(max(jac, char if char >= 0.6 else 0.0, tab))


def semantic_similarity(ix, q: int, cols: Any):
    """Cosine of DeepJoin vectors, mapped to [0, 1] (0 below 0.3, 1 above 0.9); zeros without them."""
    import numpy as np

    if ix.vectors is None or len(cols) == 0:
        return np.zeros(len(cols))
    cos = np.asarray(ix.vectors[np.asarray(cols)]) @ np.asarray(ix.vectors[q])
    return np.clip((cos - 0.3) / 0.6, 0.0, 1.0)


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
    names = np.array([name_similarity(ix.column_name[q], ix.column_name[c], ix.table_name[c])
                      for c in cols], dtype=np.float64) if len(cols) else np.zeros(0)
    return np.maximum(sem, names)
