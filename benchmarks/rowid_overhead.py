"""Where SQL (rowid, score) spends its time over the raw faiss binary scan (issue 14 item 9), 1M rows.

    PYTHONPATH=. /work/venv/bin/python benchmarks/rowid_overhead.py --tmp /tmp/sqlover \\
        --base /tmp/lakeql-compare [--queries 60] [--profile]

Needs the finished 1M lake of ``vectors_sql_ann.py sql --tmp DIR`` (bench.titles, default rabitq index).
CPU time per query (``time.process_time``), methods interleaved query by query, ratios to faiss
``IndexBinaryFlat`` (sign codes, k = 40, 1 thread) of the same run. The steps, each containing the one
before: the first stage alone (the blocked 4-bit bound scan), the in-process ``search()`` (+ rescoring),
``Searcher.search_vector()`` (+ name resolution, staleness check, query checks, the hit list), SQL
``semantic_search_vector_rowids`` (+ DuckDB); and the SQL pieces apart: ``SELECT 1``, a stub UDF of
the same signature returning a fixed list of 10 hits read with the macro's ``unnest``, without and
with the 384-float vector argument. ``--profile``: cProfile (CPU clock) of the SQL calls afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from pagefetch import interleaved_cpu  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tmp", default="/tmp/sqlover")
    ap.add_argument("--base", default="/tmp/lakeql-compare")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args(argv)
    import faiss
    import vectors as bv
    from vectors_sql_ann import base_vectors, sign_flat

    from lakeql.connection import open_lake
    from lakeql.udf import scalar_udf, struct_list
    from lakeql.vectors.search import search
    from lakeql.vectors.sql import HIT_COLUMNS

    print("load before", os.getloadavg(), flush=True)
    faiss.omp_set_num_threads(1)
    base, Q, _ = base_vectors(Path(a.base))
    vecs = bv.synth(base, 1_000_000)[1]
    sign, bflat = sign_flat(vecs)
    del vecs
    lake = Path(a.tmp) / "lake1000000"
    con, ctx = open_lake(lake, index_dir=lake / ".lakeql", capabilities=["vectors"])
    s = ctx.cache["vectors.searcher"]
    idx = s.index("bench.titles", "title")[2]
    idx.blocked()
    qs = [Q[i % len(Q)] for i in range(a.queries)]
    fixed = [{"rowid": i * 7919, "score": 0.5} for i in range(10)]
    hits = struct_list(HIT_COLUMNS)
    scalar_udf(
        con,
        "stub_vec_impl",
        lambda t, c, v, k, o, f, e: fixed,
        ["VARCHAR", "VARCHAR", "FLOAT[]", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"],
        hits,
    )
    scalar_udf(
        con,
        "stub_novec_impl",
        lambda t, c, k, o, f, e: fixed,
        ["VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"],
        hits,
    )
    unnest = "SELECT h.__hit.rowid AS rowid, h.__hit.score AS score FROM (SELECT unnest({}) AS __hit) h"
    stub_vec = unnest.format("stub_vec_impl('bench.titles', 'title', ?::FLOAT[], 10, 4, NULL, true)")
    stub_novec = unnest.format("stub_novec_impl('bench.titles', 'title', 10, 4, NULL, true)")
    args = "'bench.titles', 'title', ?::FLOAT[], k := 10, exact := true"
    rowids = f"SELECT * FROM semantic_search_vector_rowids({args})"
    whole = f"SELECT * FROM semantic_search_vector({args})"
    methods = {
        "faiss IndexBinaryFlat (sign, k=40)": lambda q: bflat.search(sign.query_code(q)[None, :], 40),
        "first stage alone (blocked 4-bit bound scan)": lambda q: idx.binarizer.candidates(
            q, idx.words, idx.factors, 10, None, 20_000, blocked=idx.blocked()
        ),
        "in-process search() (+ rescoring)": lambda q: search(idx, q, 10, 4),
        "Searcher.search_vector() (+ names, staleness, checks)": lambda q: s.search_vector(
            "bench.titles", "title", q.tolist(), 10, 4, None, True
        ),
        "SQL SELECT 1": lambda q: con.execute("SELECT 1").fetchall(),
        "SQL stub UDF, no vector argument, + unnest": lambda q: con.execute(stub_novec).fetchall(),
        "SQL stub UDF, 384-float vector argument, + unnest": lambda q: con.execute(
            stub_vec, [q.tolist()]
        ).fetchall(),
        "SQL (rowid, score) exact": lambda q: con.execute(rowids, [q.tolist()]).fetchall(),
        "SQL whole rows exact (id, title)": lambda q: con.execute(whole, [q.tolist()]).fetchall(),
    }
    cpu, loads = interleaved_cpu(methods, qs)
    ref = statistics.median(cpu["faiss IndexBinaryFlat (sign, k=40)"])
    print("| step | CPU ms | / faiss binary |\n|---|---:|---:|")
    for k, v in cpu.items():
        m = statistics.median(v)
        print(f"| {k} | {1000 * m:.2f} | {m / ref:.2f}x |")
    print(f"load during {min(loads):.1f}-{max(loads):.1f}, after {os.getloadavg()}")
    if a.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile(time.process_time)
        pr.enable()
        for q in qs:
            con.execute(rowids, [q.tolist()]).fetchall()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
