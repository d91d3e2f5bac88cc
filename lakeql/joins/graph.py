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
    return build_with_pools(searcher, path, min_score, {})[0]


def build_with_pools(searcher, path: Path, min_score: float, fingerprints: dict[str, str]):
    """:func:`build`, also returning the pools table (:func:`pools_table`) for incremental updates."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ix = searcher.ix
    queries = [q for q in range(len(ix)) if ix.indexed[q] and ix.n_distinct[q] >= 2]
    pools: dict[int, tuple] = {}
    out = edges_of(searcher, queries, min_score, pools)
    pq.write_table(pa.table(out, schema=edge_schema()), path, compression="zstd")
    return len(out["score"]), pools_table(ix, pools, fingerprints, min_score)


# Queries below this count are searched one by one (JoinIndex.overlaps walks only their postings);
# from it on, the prefix-filtering kernel (joins/prefix.py) pays for building its posting lists.
MANY = 2000
CHUNK = 4096  # query columns per kernel call (bounds its output; the progress bar moves per chunk)


def _pools(searcher, queries: list[int], min_score: float):
    """Yield ``(i, cols, containment, uniqueness, upper)`` for every position ``i`` of ``queries``: the
    query's pool restricted to candidates whose name-free bound reaches ``min_score`` (the only ones
    that can become edges: no score exceeds the bound), as ``Searcher.equi_pool`` selects it."""
    from lakeql.joins import prefix
    from lakeql.joins.search import TIE_POOL

    ix = searcher.ix
    if len(queries) < MANY:
        for i, q in enumerate(queries):
            yield (i, *searcher.equi_pool(q, POOL, PROBE, min_upper=min_score))
        return
    post = prefix.postings(ix, min_score)
    for c0 in range(0, len(queries), CHUNK):
        part = queries[c0:c0 + CHUNK]
        for i, *pool in prefix.pools(ix, post, part, PROBE, min_score, POOL, TIE_POOL * POOL):
            yield (c0 + i, *pool)


def edges_of(searcher, queries: list[int], min_score: float, pools: dict | None = None) -> dict[str, list]:
    """The edges of the query columns ``queries`` (in that order), as columns of ``EDGE_COLUMNS``;
    ``pools``: filled with ``q -> (pool column ids, upper bound of the last)`` (see :func:`pools_table`)."""
    from lakeql.progress import bar

    ix = searcher.ix
    out: dict[str, list] = {n: [] for n in EDGE_COLUMNS}
    ranked: list = [None] * len(queries)
    pb = bar(len(queries), desc="joins: graph", unit="col")
    for i, cols, cont, uniq, upper in _pools(searcher, queries, min_score):
        q = queries[i]
        if pools is not None:  # the bound: the POOL-th member's (full pools only)
            pools[q] = (cols, float(upper[POOL - 1]) if len(upper) >= POOL else float("nan"))
        ranked[i] = searcher.equi_rank(q, PER_COLUMN, cols, cont, uniq)
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


# ---------------------------------------------------------------------------------------------- pools
# ``joins/pools.parquet`` (manifest kind ``join_pools``): per column of the value index, in its order,
# the candidate pool its edges were ranked from (column ids = rows of this file) and the pool's
# admission bound (Searcher.equi_pool: the upper bound of its POOL-th member; a full pool admits a
# column above it, or level with it while the pool has room for ties or the column sorts before the
# last member). Format 2: a pool holds only candidates whose bound reaches ``min_score`` (format 1 held
# the best POOL whatever their bound; the edges are the same). With the table fingerprints it was built
# from, a refresh can tell which columns' edges a change can reach (joins/incremental.py). The file
# names the edges file it belongs to (``edges``: its checksum); any mismatch -> the older update path.
POOLS_FORMAT = 2
MAX_POOL = POOL * 4  # search.TIE_POOL: a pool with ties at its boundary holds up to this many
POOLS_META = b"lakeql.join_pools"


def pools_schema():
    import pyarrow as pa

    return pa.schema([("table_name", pa.string()), ("column_name", pa.string()),
                      ("query", pa.bool_()), ("bound", pa.float64()),
                      ("members", pa.list_(pa.int32()))])


def pools_table(ix, pools: dict[int, tuple], tables: dict[str, str], min_score: float):
    """The pools of ``pools`` (query column -> (member ids, bound)) as a table (one row per column);
    ``tables``: the table fingerprints the index was built from."""
    import numpy as np

    none = np.empty(0, np.int64)
    return pools_arrays(ix, none, np.empty(0), none, none, pools, min_score, tables)


def pools_arrays(ix, keep, keep_bound, keep_lens, keep_flat, pools: dict[int, tuple], min_score: float,
                 tables: dict[str, str]):
    """:func:`pools_table` of the columns ``keep`` (their bounds, pool sizes and members concatenated)
    and of ``pools``."""
    import json

    import numpy as np
    import pyarrow as pa

    from lakeql.joins.incremental import tables_digest

    n = len(ix)
    ids = np.array(sorted(pools), dtype=np.int64)
    new = [np.asarray(pools[int(q)][0], dtype=np.int64) for q in ids]
    all_ids = np.r_[np.asarray(keep, np.int64), ids]
    all_lens = np.r_[np.asarray(keep_lens, np.int64), np.array([len(x) for x in new], dtype=np.int64)]
    all_flat = np.concatenate([np.asarray(keep_flat, np.int64), *new]) if len(all_ids) \
        else np.empty(0, np.int64)
    all_bound = np.r_[np.asarray(keep_bound, np.float64),
                      np.array([pools[int(q)][1] for q in ids], np.float64)]
    starts = np.r_[0, np.cumsum(all_lens)[:-1]] if len(all_lens) else np.empty(0, np.int64)
    order = np.argsort(all_ids, kind="stable")
    o_lens = all_lens[order]
    idx = np.repeat(starts[order] - np.r_[0, np.cumsum(o_lens)[:-1]], o_lens) + np.arange(int(o_lens.sum()))
    flat = all_flat[idx].astype(np.int32)
    lens = np.zeros(n, dtype=np.int64)
    lens[all_ids] = all_lens
    bound = np.full(n, np.nan)
    bound[all_ids] = all_bound
    query = np.zeros(n, dtype=bool)
    query[all_ids] = True
    members = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(lens)].astype(np.int32)), pa.array(flat))
    meta = {"format": POOLS_FORMAT, "pool": POOL, "probe": PROBE, "min_score": float(min_score),
            "damaged": sorted(ix.damaged), "tables": tables_digest(tables)}
    return pa.table([pa.array(ix.table_name, pa.string()), pa.array(ix.column_name, pa.string()),
                     pa.array(query), pa.array(bound, mask=np.isnan(bound)), members],
                    schema=pools_schema().with_metadata({POOLS_META: json.dumps(meta, sort_keys=True)}))


def write_pools(table, path: Path, edges_checksum: str) -> None:
    """Write a pools table to ``path`` naming the edges file (its checksum) it belongs to."""
    import json

    import pyarrow.parquet as pq

    meta = json.loads(table.schema.metadata[POOLS_META])
    meta["edges"] = edges_checksum
    t = table.replace_schema_metadata({POOLS_META: json.dumps(meta, sort_keys=True)})
    pq.write_table(t, path, compression="zstd")
