"""Value-level matching for semantic joins: which query values have a counterpart in a candidate column.

Two values match when, after lower-casing and splitting on non-alphanumerics, the shorter one is (nearly)
contained in the longer one, measured two ways and the better kept:

* tokens, weighted by IDF over both columns: "Gov. Gray Davis" ~ "Gray Davis", "Albuquerque N.M." ~
  "Albuquerque" (rare shared tokens count, a shared "new" or "john" alone does not)
* character 3-grams of the letters: "adejesus" ~ "de-Jesus-Espinosa", "jsmith@x.edu" ~ "Smith"

Both are sparse matrix products (scipy), so matching 2,000 x 20,000 values is one multiplication, not a
double loop. ``containment`` of a semantic candidate = share of query values with a match >= ``THRESHOLD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

THRESHOLD = 0.8
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class Match:
    matched: Any  # bool per query value
    best: Any  # index of the best candidate value per query value (-1 when none)
    score: Any  # best match score per query value


def tokens(value: str) -> list[str]:
    """Word tokens; numbers only count in values that have no words (a '30' must not match every
    'December 30 1873')."""
    toks = _TOKEN.findall(value.lower())
    words = [t for t in toks if not t.isdigit()]
    return words or toks


def grams(value: str) -> list[str]:
    s = "".join(t for t in tokens(value) if not t.isdigit())
    return [s[i:i + 3] for i in range(len(s) - 2)] if len(s) >= 3 else ([s] if s else [])


def _matrix(items: list[list[str]], vocab: dict[str, int], grow: bool):
    import numpy as np
    import scipy.sparse as sp

    rows, cols = [], []
    for i, toks in enumerate(items):
        for t in set(toks):
            j = vocab.get(t)
            if j is None:
                if not grow:
                    continue
                j = vocab[t] = len(vocab)
            rows.append(i)
            cols.append(j)
    data = np.ones(len(rows), dtype=np.float64)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(items), max(len(vocab), 1)))


def _contain(qv: list[list[str]], cv: list[list[str]], idf: bool, min_size: float):
    """Best containment score of the shorter side, per query value: (score, best candidate index)."""
    import numpy as np
    import scipy.sparse as sp

    vocab: dict[str, int] = {}
    qm = _matrix(qv, vocab, True)
    cm = _matrix(cv, vocab, True)
    qm.resize((qm.shape[0], len(vocab) or 1))
    cm.resize((cm.shape[0], len(vocab) or 1))
    if idf:
        df = np.asarray((qm > 0).sum(axis=0)).ravel() + np.asarray((cm > 0).sum(axis=0)).ravel()
        w = np.log1p((qm.shape[0] + cm.shape[0]) / np.maximum(df, 1))
    else:
        w = np.ones(len(vocab) or 1)
    wd = sp.diags(w)
    qs = np.asarray((qm @ wd).sum(axis=1)).ravel()
    cs = np.asarray((cm @ wd).sum(axis=1)).ravel()
    inter = (qm @ wd @ cm.T).tocoo()
    denom = np.minimum(qs[inter.row], cs[inter.col])
    ok = denom >= min_size
    sc = np.where(ok, inter.data / np.maximum(denom, 1e-12), 0.0)
    best_score = np.zeros(qm.shape[0])
    best_idx = np.full(qm.shape[0], -1, dtype=np.int64)
    if len(sc):
        order = np.lexsort((sc, inter.row))  # per row ascending score: the last one wins
        r, s, c = inter.row[order], sc[order], inter.col[order]
        last = np.r_[r[1:] != r[:-1], True]
        best_score[r[last]] = s[last]
        best_idx[r[last]] = np.where(s[last] > 0, c[last], -1)
    return best_score, best_idx


def match(query_values: list[str], cand_values: list[str]) -> Match:
    """Match each query value against the candidate values (see the module docstring)."""
    import numpy as np

    n = len(query_values)
    if n == 0 or not cand_values:
        return Match(np.zeros(n, bool), np.full(n, -1), np.zeros(n))
    # token match: rare tokens weigh more; at least one full token of weight
    ts, ti = _contain([tokens(v) for v in query_values], [tokens(v) for v in cand_values], True, 1.0)
    # 3-gram match: the shorter side must have at least 4 grams (6 letters) to count
    gs, gi = _contain([grams(v) for v in query_values], [grams(v) for v in cand_values], False, 4.0)
    use_g = gs > ts
    score = np.where(use_g, gs, ts)
    best = np.where(use_g, gi, ti)
    return Match(score >= THRESHOLD, np.where(score >= THRESHOLD, best, -1), score)
