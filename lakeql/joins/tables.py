"""``find_tables(query, k)``: search the lake's tables by words and meaning.

BM25 (k1 1.2, b 0.75) per field over four fields of each table, summed with field weights
(:data:`WEIGHTS`, a BM25F-like sum): the table ``name`` (and domain), its ``description`` (Parquet
key-value metadata ``description`` / ``comment``), its ``columns`` (names and column descriptions) and
sample ``values`` (the 10 most frequent values of each text column). When the index holds table-summary
embeddings (``lakeql index --discovery-embed``), the BM25 ranking and the cosine ranking of the summaries
are fused by reciprocal rank (RRF, k = 60). ``matched`` says which fields matched which query words.
"""

from __future__ import annotations

from typing import Any

from lakeql.errors import LakeqlError
from lakeql.joins import union_text as tx
from lakeql.udf import is_blank

WEIGHTS = {"name": 3.0, "description": 2.0, "columns": 1.5, "values": 1.0}
RRF_K = 60
POOL = 100
RESULT_COLUMNS = [("table_name", "VARCHAR"), ("score", "DOUBLE"), ("matched", "VARCHAR[]")]


def bm25_scores(ix, terms: list[str]):
    """(total score per table, {field: (per-table score, term ids)})."""
    import numpy as np

    n = len(ix.tables)
    total = np.zeros(n)
    per: dict[str, Any] = {}
    ids = sorted({ix.vocab[t] for t in terms if t in ix.vocab})
    if not ids:
        return total, per
    for f, w in WEIGHTS.items():
        m = ix.bm25(f)[:, ids]
        s = np.asarray(m.sum(axis=1)).ravel()
        per[f] = (s, m)
        total += w * s
    return total, per


def matched_fields(ix, per: dict[str, Any], terms: list[str], row: int) -> list[str]:
    """``['name: flight', 'columns: delay, carrier']``: the query words each field of a table matched."""
    ids = sorted({ix.vocab[t] for t in terms if t in ix.vocab})
    inv = {ix.vocab[t]: t for t in terms if t in ix.vocab}
    out = []
    for f in WEIGHTS:
        if f not in per:
            continue
        _, m = per[f]
        r = m[row].toarray().ravel()
        hit = [inv[ids[j]] for j in range(len(ids)) if r[j] > 0]
        if hit:
            out.append(f"{f}: {', '.join(hit)}")
    return out


def find_tables_rows(ix, query: str, k: int, semantic: bool = True, encode=None) -> list[dict[str, Any]]:
    """The ``k`` best tables for ``query``; ``semantic=False`` is BM25 alone (the benchmark baseline)."""
    import numpy as np

    terms = tx.words(query, version=getattr(ix, "words_version", None))  # stemmed as the index was
    total, per = bm25_scores(ix, terms)
    n = len(ix.tables)
    bm_order = np.argsort(-total, kind="stable")[:POOL]
    bm_order = bm_order[total[bm_order] > 0]
    vec = ix.tablevec if semantic else None
    if vec is not None and n:
        if encode is None:
            from lakeql import embedding
            from lakeql.joins.deepjoin import encoder, query_backend

            pin = getattr(ix, "tablevec_channels", None)  # the graph that made the vectors
            model, _ = encoder(None, query_backend(ix.tablevec_backend), pin)

            def encode(texts):
                return embedding.encode(texts, model, desc="find_tables")

        q = np.asarray(encode([query]), dtype=np.float32)[0]
        cos = vec @ q
        sem_order = np.argsort(-cos, kind="stable")[:POOL]
        fused = np.zeros(n)
        fused[bm_order] += 1.0 / (RRF_K + 1 + np.arange(len(bm_order)))
        fused[sem_order] += 1.0 / (RRF_K + 1 + np.arange(len(sem_order)))
        order = np.argsort(-fused, kind="stable")[:k]
        scores = fused
    else:
        order, scores = bm_order[:k], total
    rows = []
    for i in order:
        i = int(i)
        m = matched_fields(ix, per, terms, i)
        if vec is not None:
            m.append(f"summary: cosine {float(cos[i]):.2f}")
        rows.append({"table_name": ix.tables[i], "score": round(float(scores[i]), 6), "matched": m})
    return rows


def check_query(query: Any) -> str:
    if is_blank(query):  # NULL, '', or only whitespace / control / zero-width characters
        raise LakeqlError("find_tables needs a non-empty query, e.g. find_tables('flight delays')")
    return str(query)
