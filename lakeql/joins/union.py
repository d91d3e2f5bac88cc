"""``unionable(table, k)``: tables that hold more rows of the same kind (table union search).

Per pair of columns (query column x candidate column) three kinds of evidence, as in TUS/Starmie:

``value``     overlap of the distinct values: containment estimated from the bottom-k MinHash sketches of
              the join profiles (exact below 256 distinct values); for numbers without a sketch, the
              overlap of the [min, max] ranges from the Parquet footers (weighted half)
``semantic``  cosine of the columns' TF-IDF vectors over values + header + description (hashed words
              and value shapes), or of their DeepJoin embeddings when built (the larger of the two)
``name``      cosine of the headers' character 3-grams and words
``type``      a compatibility factor (same class 1, int/float 0.8, text/anything else 0)

    pair = type * (0.3 value + 0.4 semantic + 0.3 name)     (4/7 semantic + 3/7 name without values)

The table score is a maximum-weight bipartite matching of the columns (``linear_sum_assignment``),
pairs below ``MIN_PAIR`` dropped, divided by the larger of the two column counts (so a wide table that
merely contains a small table's key column is not a near-perfect union). The weights, ``MIN_PAIR`` and
the denominator were chosen on a development lake (TUS-style slices with another random seed, see
benchmarks/discovery.py), not on the reported benchmark. Candidates are pre-selected by
the sum over query columns of their best semantic/name similarity in each table (sparse products), so
only the ``POOL`` best tables are matched exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lakeql.lake import quote_ident

MIN_PAIR = 0.15
WEIGHTS = (0.3, 0.4, 0.3)  # value, semantic, name (chosen on the development lake, see discovery.md)
POOL = 60
PAD = (1 << 64) - 1
RESULT_COLUMNS = [
    ("candidate_table", "VARCHAR"), ("score", "DOUBLE"), ("matched_columns", "INTEGER"),
    ("column_mapping", "STRUCT(query_column VARCHAR, candidate_column VARCHAR, score DOUBLE)[]"),
    ("union_sql", "VARCHAR"), ("note", "VARCHAR"),
]
SAMPLED_NOTE = "sampled: value overlap estimated from MinHash sketches of 256 values per column"
GRAPH_COLUMNS = [("table_name", "VARCHAR"), ("candidate_table", "VARCHAR"), ("score", "DOUBLE"),
                 ("matched_columns", "INTEGER")]


def _compat():
    import numpy as np

    # text, int, float, date, bool, other
    m = np.zeros((6, 6))
    np.fill_diagonal(m, 1.0)
    m[5, 5] = 0.0  # blobs, lists, structs: nothing to compare
    m[1, 2] = m[2, 1] = 0.8
    m[1, 3] = m[3, 1] = 0.3  # years as integers vs dates
    m[1, 4] = m[4, 1] = 0.3
    return m


def sketch_containment(ix, q: int, cols: Any):
    """Estimated containment (of the smaller set in the larger) of column q's values in each of ``cols``,
    from bottom-k sketches; NaN where either column has no sketch."""
    import numpy as np

    out = np.full(len(cols), np.nan)
    lq = int(ix.sketch_len[q])
    cl = ix.sketch_len[cols]
    ok = cl > 0
    if lq == 0 or not ok.any():
        return out
    sq = np.asarray(ix.sketch[q, :lq])
    sc = np.asarray(ix.sketch[cols[ok]])
    valid = sc != np.uint64(PAD)
    pos = np.minimum(np.searchsorted(sq, sc), lq - 1)
    hit = (sq[pos] == sc) & valid
    inter = hit.sum(axis=1)
    cmax = sc[np.arange(len(sc)), cl[ok] - 1]
    t = np.minimum(cmax, sq[-1])
    a_le = np.searchsorted(sq, t, "right")
    b_le = (valid & (sc <= t[:, None])).sum(axis=1)
    union = np.maximum(a_le + b_le - inter, 1)
    jac = inter / union
    na = max(int(ix.n_distinct[q]), 1)
    nb = np.maximum(ix.n_distinct[cols[ok]], 1)
    est = jac * (na + nb) / (1 + jac)
    out[ok] = np.clip(est / np.minimum(na, nb), 0, 1)
    return out


def range_overlap(ix, q: int, cols: Any):
    """Overlap of numeric [min, max] ranges (intersection / union); NaN where unknown."""
    import numpy as np

    a0, a1 = ix.vmin[q], ix.vmax[q]
    b0, b1 = ix.vmin[cols], ix.vmax[cols]
    inter = np.minimum(a1, b1) - np.maximum(a0, b0)
    union = np.maximum(a1, b1) - np.minimum(a0, b0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(union > 0, np.clip(inter, 0, None) / union, np.where(inter >= 0, 1.0, 0.0))
    return np.where(np.isnan(a0) | np.isnan(b0), np.nan, r)


def pair_scores(ix, qcols: range, cols: Any, sem_tfidf: Any):
    """(pair score, value evidence) matrices, query columns x candidate columns."""
    import numpy as np

    qa = np.arange(qcols.start, qcols.stop)
    name = (ix.namevec[qa] @ ix.namevec[cols].T).toarray()
    sem = np.asarray(sem_tfidf, dtype=np.float64)
    if ix.deepjoin is not None:
        qv, cv = np.asarray(ix.deepjoin[qa]), np.asarray(ix.deepjoin[cols])
        has = (np.abs(qv).sum(1) > 0)[:, None] & (np.abs(cv).sum(1) > 0)[None, :]
        dj = np.clip(((qv @ cv.T) - 0.3) / 0.6, 0, 1)
        sem = np.where(has, np.maximum(sem, dj), sem)
    comp = _compat()[ix.tclass[qa][:, None], ix.tclass[cols][None, :]]
    val = np.full((len(qa), len(cols)), np.nan)
    for i, q in enumerate(qa):
        v = sketch_containment(ix, int(q), cols)
        r = range_overlap(ix, int(q), cols)
        val[i] = np.where(np.isnan(v), 0.5 * r, v)
    has_v = ~np.isnan(val)
    w_v, w_s, w_n = WEIGHTS
    score = np.where(has_v, w_v * np.nan_to_num(val) + w_s * sem + w_n * name,
                     (w_s * sem + w_n * name) / (w_s + w_n))
    return comp * score, val


def candidate_tables(ix, qcols: range, pool: int) -> tuple[Any, Any]:
    """(table ids, sparse-similarity matrix rows per query column) of the best ``pool`` tables."""
    import numpy as np

    qa = np.arange(qcols.start, qcols.stop)
    sem = (ix.colvec[qa] @ ix.colvec_t).toarray()  # m x N
    nam = (ix.namevec[qa] @ ix.namevec_t).toarray() if len(qa) <= 64 else np.zeros_like(sem)
    sim = np.maximum(sem, nam)
    nonempty = np.flatnonzero(ix.col_end > ix.col_start)
    best = np.maximum.reduceat(sim, ix.col_start[nonempty], axis=1) if len(nonempty) else \
        np.zeros((len(qa), 0))
    ub = best.sum(axis=0)
    own = ix.table_id[ix.tables[ix.col_table[qa[0]]]]
    ub[nonempty == own] = -1
    order = np.argsort(-ub, kind="stable")[:pool]
    order = order[ub[order] > 0]
    return nonempty[order], sem


NORM = "max"


def _norm(m: int, n: int) -> float:
    """The table score's denominator ('max': the larger column count), so a wide table that contains a
    small one's columns (flights ~ airlines.carrier) is not a near-perfect union; 'query' and 'sqrt'
    were the alternatives measured on the development lake."""
    import math

    return {"query": m, "sqrt": math.sqrt(m * n), "max": max(m, n)}[NORM]


def unionable_rows(ix, table: str, k: int, with_sql: bool = True) -> list[dict[str, Any]]:
    """The ``k`` most unionable tables of ``table`` (rows of :data:`RESULT_COLUMNS`)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    qcols = ix.columns_of(table)
    m = len(qcols)
    if m == 0:
        return []
    tids, sem_all = candidate_tables(ix, qcols, max(POOL, 4 * k))
    if len(tids) == 0:
        return []
    cols = np.concatenate([np.arange(ix.col_start[t], ix.col_end[t]) for t in tids])
    pair, val = pair_scores(ix, qcols, cols, sem_all[:, cols])
    out = []
    pos = 0
    for t in tids:
        n = int(ix.col_end[t] - ix.col_start[t])
        block = pair[:, pos:pos + n]
        vblock = val[:, pos:pos + n]
        ccols = cols[pos:pos + n]
        pos += n
        ri, ci = linear_sum_assignment(block, maximize=True)
        keep = block[ri, ci] >= MIN_PAIR
        ri, ci = ri[keep], ci[keep]
        if len(ri) == 0:
            continue
        score = float(block[ri, ci].sum() / _norm(m, n))
        mapping = [{"query_column": ix.column_name[qcols.start + int(a)],
                    "candidate_column": ix.column_name[int(ccols[b])], "score": round(float(block[a, b]), 4)}
                   for a, b in sorted(zip(ri, ci, strict=True), key=lambda x: x[0])]
        sampled = any(not np.isnan(vblock[a, b]) and (ix.n_distinct[qcols.start + a] > ix.sketch_len[
            qcols.start + a] or ix.n_distinct[ccols[b]] > ix.sketch_len[ccols[b]])
            for a, b in zip(ri, ci, strict=True))
        note = SAMPLED_NOTE if sampled else None
        out.append({"candidate_table": ix.tables[int(t)], "score": round(score, 6),
                    "matched_columns": len(ri), "column_mapping": mapping, "union_sql": "", "note": note})
    out.sort(key=lambda r: (-r["score"], r["candidate_table"]))
    out = out[:k]
    if with_sql:
        for r in out:
            r["union_sql"] = union_sql(ix, table, r["candidate_table"], r["column_mapping"])
    return out


def _sql_name(key: str) -> str:
    d, _, n = key.partition(".")
    return f"{quote_ident(d)}.{quote_ident(n)}"


_SAFE_TYPE = __import__("re").compile(r"^[A-Z][A-Z0-9_ ]*(\(\d+(, ?\d+)?\))?$")


def union_sql(ix, qtable: str, ctable: str, mapping: list[dict[str, Any]]) -> str:
    """``SELECT * FROM q UNION ALL BY NAME SELECT <renamed, cast matched columns> FROM c``, checked
    with sqlglot (an unparsable statement is a bug: it raises)."""
    import sqlglot

    qtype = {ix.column_name[i]: ix.type[i] for i in ix.columns_of(qtable)}
    ctype = {ix.column_name[i]: ix.type[i] for i in ix.columns_of(ctable)}
    sel = []
    for mp in mapping:
        qc, cc = mp["query_column"], mp["candidate_column"]
        expr = quote_ident(cc)
        qt, ct = qtype.get(qc, ""), ctype.get(cc, "")
        if qt != ct and _SAFE_TYPE.match(qt.upper()):
            expr = f"TRY_CAST({expr} AS {qt.upper()})"
        sel.append(expr if (qc == cc and expr == quote_ident(cc)) else f"{expr} AS {quote_ident(qc)}")
    sql = (f"SELECT * FROM {_sql_name(qtable)}\nUNION ALL BY NAME\n"
           f"SELECT {', '.join(sel)} FROM {_sql_name(ctable)}")
    sqlglot.parse_one(sql, read="duckdb")
    return sql


def write_union_graph(root: Path, k: int = 10, min_score: float = 0.3) -> int:
    """Write ``union_edges.parquet`` (each table's best ``k`` unionable tables) into ``root``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.joins.union_store import DiscoveryIndex

    ix = DiscoveryIndex(root)
    rows = []
    for t in ix.tables:
        for r in unionable_rows(ix, t, k, with_sql=False):
            if r["score"] >= min_score:
                rows.append({"table_name": t, "candidate_table": r["candidate_table"], "score": r["score"],
                             "matched_columns": r["matched_columns"]})
    schema = pa.schema([("table_name", pa.string()), ("candidate_table", pa.string()),
                        ("score", pa.float64()), ("matched_columns", pa.int32())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "union_edges.parquet")
    return len(rows)
