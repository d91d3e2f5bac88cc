"""The lake's join graph: every equi-join edge whose score passes a threshold, as Parquet.

``<index_dir>/joins/edges.parquet`` (the contract other capabilities read): table_name, column_name,
candidate_table, candidate_column, score DOUBLE, containment DOUBLE, candidate_uniqueness DOUBLE,
method VARCHAR. One ranked equi search per indexed column (a few ms each), from at most ``PROBE`` of
the query's hashes (a KMV sample: the work per column is bounded on lakes where a value sits in
thousands of columns; ``joinable`` itself uses every stored hash).
"""

from __future__ import annotations

from pathlib import Path

EDGE_COLUMNS = ["table_name", "column_name", "candidate_table", "candidate_column", "score", "containment",
                "candidate_uniqueness", "method"]
PER_COLUMN = 5
POOL = 20  # candidates per column scored with names and embeddings
PROBE = 512  # query hashes probed per column: a KMV sample (containment standard error <= 0.022)


def edge_schema():
    import pyarrow as pa

    return pa.schema([("table_name", pa.string()), ("column_name", pa.string()),
                      ("candidate_table", pa.string()), ("candidate_column", pa.string()),
                      ("score", pa.float64()), ("containment", pa.float64()),
                      ("candidate_uniqueness", pa.float64()), ("method", pa.string())])


def build(searcher, path: Path, min_score: float) -> int:
    """Write the edges of every indexed column with at least 2 distinct values; returns the edge count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ix = searcher.ix
    queries = [q for q in range(len(ix)) if ix.indexed[q] and ix.n_distinct[q] >= 2]
    out = edges_of(searcher, queries, min_score)
    pq.write_table(pa.table(out, schema=edge_schema()), path, compression="zstd")
    return len(out["score"])


def edges_of(searcher, queries: list[int], min_score: float) -> dict[str, list]:
    """The edges of the query columns ``queries`` (in that order), as columns of ``EDGE_COLUMNS``."""
    from lakeql.progress import bar

    ix = searcher.ix
    out: dict[str, list] = {n: [] for n in EDGE_COLUMNS}
    ranked: list = [None] * len(queries)
    # the overlaps of many query columns per sparse product (JoinIndex.overlaps_many, columns with the
    # same hashes together), each ranked as equi_ranked does; the edges then in the order of queries
    pb = bar(len(queries), desc="joins: graph", unit="col")
    for i, ov in ix.overlaps_many(queries, PROBE):
        ranked[i] = searcher.equi_ranked(queries[i], PER_COLUMN, pool=POOL, probe=PROBE, ov=ov)
        pb.update(1)
    pb.close()
    for q, (cols, sc, cont, uniq) in zip(queries, ranked, strict=True):
        for c, s, ct, u in zip(cols, sc, cont, uniq, strict=True):
            if s < min_score:
                continue
            out["table_name"].append(ix.table_name[q])
            out["column_name"].append(ix.column_name[q])
            out["candidate_table"].append(ix.table_name[int(c)])
            out["candidate_column"].append(ix.column_name[int(c)])
            out["score"].append(float(s))
            out["containment"].append(float(ct))
            out["candidate_uniqueness"].append(float(u))
            out["method"].append("equi")
    return out
