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
merely contains a small table's key column is not a near-perfect union); candidates scoring below
``MIN_SCORE`` (about one matched column in 2,000) are not returned. The weights, ``MIN_PAIR`` and
the denominator were chosen on a development lake (TUS-style slices with another random seed, see
benchmarks/discovery.py), not on the reported benchmark. Candidates are pre-selected by
the sum over query columns of their best semantic/name similarity in each table (sparse products), so
only the ``POOL`` best tables are matched exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lakeql import arrays
from lakeql.lake import key_sql_name, quote_ident

MIN_PAIR = 0.15
#: a candidate whose table score is below this is not returned: it matches about one column of 2,000 or
#: less (a 2,000-column table listed 1-2-column matches as score 0.000, as the MCP tool rounds it)
MIN_SCORE = 0.0005
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


def sketch_containment_many(ix, qa: Any, cols: Any):
    """:func:`sketch_containment` of every query column ``qa`` (rows) in every column ``cols``, at once.

    The same counts (intersection, each sketch's values below the smaller maximum) and the same float
    operations, so the result equals the per-column function bit for bit; but the candidates' sketches
    are read once for all query columns (a table's 15 columns against 60 candidate tables cost 15
    searches of 900 x 256 values before: most of the discovery build of a 473-table lake).
    """
    import numpy as np

    qa = np.asarray(qa, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    m, n = len(qa), len(cols)
    out = np.full((m, n), np.nan)
    lq = ix.sketch_len[qa].astype(np.int64)
    cl = ix.sketch_len[cols].astype(np.int64)
    if m == 0 or n == 0 or not (lq > 0).any() or not (cl > 0).any():
        return out
    shift = np.uint64(32)
    qi, qval = _ragged(ix, qa, lq)
    ci, cval = _ragged(ix, cols, cl)
    if (len(qval) and int(qval.max()) >> 32) or (len(cval) and int(cval.max()) >> 32):
        # the packed keys below need 32-bit values (the profiles' hashes are): else one column at a time
        for i, q in enumerate(qa.tolist()):
            out[i] = sketch_containment(ix, q, cols)
        return out
    # values as (row << 32 | value): each sketch is sorted, rows in order, so the flat keys are sorted
    qkey = (qi.astype(np.uint64) << shift) | qval
    ckey = (ci.astype(np.uint64) << shift) | cval
    # intersection: every candidate value (with its multiplicity) found in each query sketch
    uq = arrays.unique(qkey)  # a query value counts once per query column, as a searchsorted hit does
    ux, urow = uq & np.uint64(0xFFFFFFFF), (uq >> shift).astype(np.int64)
    order = np.argsort(ux, kind="stable")
    ux, urow = ux[order], urow[order]
    lo = np.searchsorted(ux, cval, "left")
    hi = np.searchsorted(ux, cval, "right")
    lens = hi - lo
    total = int(lens.sum())
    inter = np.zeros(m * n, dtype=np.int64)
    if total:
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        hit_q = urow[starts + np.arange(total)]
        hit_c = np.repeat(ci, lens)
        inter = np.bincount(hit_q * n + hit_c, minlength=m * n).astype(np.int64)
    inter = inter.reshape(m, n)
    qstart = np.concatenate(([0], np.cumsum(lq)[:-1]))
    cstart = np.concatenate(([0], np.cumsum(cl)[:-1]))
    sqmax = qval[np.maximum(qstart + lq - 1, 0)]  # (rows without a sketch: any value, masked below)
    cmax = cval[np.maximum(cstart + cl - 1, 0)]
    t = np.minimum(cmax[None, :], sqmax[:, None])  # m x n
    rows_q = np.repeat(np.arange(m, dtype=np.uint64), n).reshape(m, n)
    rows_c = np.tile(np.arange(n, dtype=np.uint64), m).reshape(m, n)
    a_le = np.searchsorted(qkey, (rows_q << shift) | t, "right") - qstart[:, None]
    b_le = np.searchsorted(ckey, (rows_c << shift) | t, "right") - cstart[None, :]
    union = np.maximum(a_le + b_le - inter, 1)
    jac = inter / union
    na = np.maximum(ix.n_distinct[qa], 1)
    nb = np.maximum(ix.n_distinct[cols], 1)
    est = jac * (na[:, None] + nb[None, :]) / (1 + jac)
    ok = (lq > 0)[:, None] & (cl > 0)[None, :]
    out[ok] = np.clip(est / np.minimum(na[:, None], nb[None, :]), 0, 1)[ok]
    return out


def _ragged(ix, cols: Any, lens: Any) -> tuple[Any, Any]:
    """(row in ``cols``, value) of every stored sketch value of ``cols``, row by row, each row sorted."""
    import numpy as np

    total = int(lens.sum())
    rows = np.repeat(np.arange(len(cols)), lens)
    starts = ix.sketch_start[cols]
    pos = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(total)
    return rows, np.asarray(ix.sketch_flat[pos], dtype=np.uint64)


def range_overlap_many(ix, qa: Any, cols: Any):
    """:func:`range_overlap` of every query column ``qa`` (rows) with ``cols``, elementwise the same."""
    import numpy as np

    a0, a1 = ix.vmin[qa][:, None], ix.vmax[qa][:, None]
    b0, b1 = ix.vmin[cols][None, :], ix.vmax[cols][None, :]
    inter = np.minimum(a1, b1) - np.maximum(a0, b0)
    union = np.maximum(a1, b1) - np.minimum(a0, b0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(union > 0, np.clip(inter, 0, None) / union, np.where(inter >= 0, 1.0, 0.0))
    return np.where(np.isnan(a0) | np.isnan(b0), np.nan, r)


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


def pair_scores(ix, qcols: range, cols: Any, sem_tfidf: Any, name: Any = None):
    """(pair score, value evidence) matrices, query columns x candidate columns. ``name``: the header
    similarities of these pairs when already computed (:func:`candidate_tables`' product with every
    column sums the same products in the same order as ``namevec[qa] @ namevec[cols].T``)."""
    import numpy as np

    qa = np.arange(qcols.start, qcols.stop)
    if name is None:
        name = (ix.namevec[qa] @ ix.namevec[cols].T).toarray()
    sem = np.asarray(sem_tfidf, dtype=np.float64)
    if ix.deepjoin is not None:
        qv, cv = np.asarray(ix.deepjoin[qa]), np.asarray(ix.deepjoin[cols])
        has = (np.abs(qv).sum(1) > 0)[:, None] & (np.abs(cv).sum(1) > 0)[None, :]
        dj = np.clip(((qv @ cv.T) - 0.3) / 0.6, 0, 1)
        sem = np.where(has, np.maximum(sem, dj), sem)
    comp = _compat()[ix.tclass[qa][:, None], ix.tclass[cols][None, :]]
    val = sketch_containment_many(ix, qa, cols)
    miss = np.isnan(val)
    if miss.any():  # numeric ranges where a sketch is missing (elementwise as range_overlap, all rows)
        val = np.where(miss, 0.5 * range_overlap_many(ix, qa, cols), val)
    has_v = ~np.isnan(val)
    w_v, w_s, w_n = WEIGHTS
    score = np.where(has_v, w_v * np.nan_to_num(val) + w_s * sem + w_n * name,
                     (w_s * sem + w_n * name) / (w_s + w_n))
    return comp * score, val


def candidate_tables(ix, qcols: range, pool: int, names: list | None = None) -> tuple[Any, Any]:
    """(table ids, sparse-similarity matrix rows per query column) of the best ``pool`` tables;
    ``names``: a list that receives the header similarities with every column (None when not
    computed: more than 64 query columns)."""
    import numpy as np

    qa = np.arange(qcols.start, qcols.stop)
    sem = (ix.colvec[qa] @ ix.colvec_t).toarray()  # m x N
    nam = (ix.namevec[qa] @ ix.namevec_t).toarray() if len(qa) <= 64 else np.zeros_like(sem)
    if names is not None:
        names.append(nam if len(qa) <= 64 else None)
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
_LSAP: list = []


def lsap():
    """scipy's ``linear_sum_assignment``, without importing ``scipy.optimize`` when it is not loaded yet.

    ``scipy/optimize/__init__`` imports all of scipy.optimize: ~0.3 CPU s of a fresh process, most of the
    discovery stage of a ``--refresh`` (issue 10 item 4). The function lives alone in the compiled
    module ``scipy.optimize._lsap`` (it needs only numpy), so that module is loaded from its file: the
    same code, ~0.01 s. Any surprise (another scipy layout) falls back to the ordinary import.
    """
    if _LSAP:
        return _LSAP[0]
    import sys

    fn = None
    if "scipy.optimize" not in sys.modules:
        try:
            import importlib.machinery
            import importlib.util

            import scipy

            base = Path(scipy.__file__).parent / "optimize"
            path = next((base / f"_lsap{sfx}" for sfx in importlib.machinery.EXTENSION_SUFFIXES
                         if (base / f"_lsap{sfx}").exists()), None)
            if path is not None:
                mod = sys.modules.get("scipy.optimize._lsap")
                if mod is None:
                    spec = importlib.util.spec_from_file_location("scipy.optimize._lsap", path)
                    mod = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(mod)
                fn = mod.linear_sum_assignment
        except Exception:  # noqa: BLE001 - any other layout: the public import below
            fn = None
    if fn is None:
        from scipy.optimize import linear_sum_assignment as fn
    _LSAP.append(fn)
    return fn


def _norm(m: int, n: int) -> float:
    """The table score's denominator ('max': the larger column count), so a wide table that contains a
    small one's columns (flights ~ airlines.carrier) is not a near-perfect union; 'query' and 'sqrt'
    were the alternatives measured on the development lake."""
    import math

    return {"query": m, "sqrt": math.sqrt(m * n), "max": max(m, n)}[NORM]


def unionable_rows(ix, table: str, k: int, with_sql: bool = True, tables: dict | None = None
                   ) -> list[dict[str, Any]]:
    """The ``k`` most unionable tables of ``table`` (rows of :data:`RESULT_COLUMNS`)."""
    import numpy as np

    linear_sum_assignment = lsap()
    qcols = ix.columns_of(table)
    m = len(qcols)
    if m == 0:
        return []
    names: list = []
    tids, sem_all = candidate_tables(ix, qcols, max(POOL, 4 * k), names)
    if len(tids) == 0:
        return []
    cols = np.concatenate([np.arange(ix.col_start[t], ix.col_end[t]) for t in tids])
    nam = names[0][:, cols] if names and names[0] is not None else None
    pair, val = pair_scores(ix, qcols, cols, sem_all[:, cols], nam)
    found = []
    pos = 0
    for t in tids:
        n = int(ix.col_end[t] - ix.col_start[t])
        block = pair[:, pos:pos + n]
        pos += n
        ri, ci = linear_sum_assignment(block, maximize=True)
        keep = block[ri, ci] >= MIN_PAIR
        ri, ci = ri[keep], ci[keep]
        if len(ri) == 0:
            continue
        score = float(block[ri, ci].sum() / _norm(m, n))
        if score < MIN_SCORE:
            continue
        found.append((round(score, 6), ix.tables[int(t)], pos - n, n, ri, ci))
    found.sort(key=lambda f: (-f[0], f[1]))
    out = []
    for score, name, start, n, ri, ci in found[:k]:  # the mapping of the k kept tables only
        block = pair[:, start:start + n]
        vblock = val[:, start:start + n]
        ccols = cols[start:start + n]
        mapping = [{"query_column": ix.column_name[qcols.start + int(a)],
                    "candidate_column": ix.column_name[int(ccols[b])], "score": round(float(block[a, b]), 4)}
                   for a, b in sorted(zip(ri, ci, strict=True), key=lambda x: x[0])]
        sampled = any(not np.isnan(vblock[a, b]) and (ix.n_distinct[qcols.start + a] > ix.sketch_len[
            qcols.start + a] or ix.n_distinct[ccols[b]] > ix.sketch_len[ccols[b]])
            for a, b in zip(ri, ci, strict=True))
        note = SAMPLED_NOTE if sampled else None
        out.append({"candidate_table": name, "score": score, "matched_columns": len(ri),
                    "column_mapping": mapping, "union_sql": "", "note": note})
    if with_sql:
        for r in out:
            r["union_sql"] = union_sql(ix, table, r["candidate_table"], r["column_mapping"], tables)
    return out




_SAFE_TYPE = __import__("re").compile(r"^[A-Z][A-Z0-9_ ]*(\(\d+(, ?\d+)?\))?$")


def union_sql(ix, qtable: str, ctable: str, mapping: list[dict[str, Any]], tables: dict | None = None) -> str:
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
    sql = (f"SELECT * FROM {key_sql_name(qtable, tables)}\nUNION ALL BY NAME\n"
           f"SELECT {', '.join(sel)} FROM {key_sql_name(ctable, tables)}")
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
