"""The real ``semantic_search_vector_rowids`` beside its parts, one process, interleaved (issue 14 item 9).

Reuses the lake that ``vectors_sql_ann.py sql --rows N --tmp DIR`` built (``DIR/lakeN``). Per query, CPU
time (``time.process_time``), methods interleaved (order reversed every other query): faiss
``IndexBinaryFlat`` (sign codes, k = 40, 1 thread), in-process ``search()``, ``Searcher.search_vector``
(the UDF's Python body), the SQL call, a stub UDF of the impl's signature + the macro's unnest on the same
connection, ``SELECT 1``, and binding the query vector alone.

    PYTHONPATH=. /work/venv/bin/python benchmarks/udf_boundary_real.py --tmp /tmp/udfcost --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    import duckdb
    import faiss
    import vectors as bv
    from duckdb.func import NATIVE, SPECIAL
    from vectors_sql_ann import base_vectors

    from lakeql.connection import open_lake
    from lakeql.vectors import binarizers
    from lakeql.vectors.search import search

    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=100)
    a = ap.parse_args()
    faiss.omp_set_num_threads(1)
    base, Q, _titles = base_vectors(None)
    lake = Path(a.tmp) / f"lake{a.rows}"
    vecs = bv.synth(base, a.rows)[1]
    sign = binarizers.get("sign", vecs.shape[1])
    flat = faiss.IndexBinaryFlat(vecs.shape[1])
    flat.add(sign.encode(vecs)[0])
    del vecs
    con, ctx = open_lake(lake, index_dir=lake / ".lakeql", capabilities=["vectors"])
    s = ctx.cache["vectors.searcher"]
    _t, _c, idx = s.index("bench.titles", "title")
    fixed = [{"rowid": i, "score": 0.5} for i in range(10)]

    def stub(tbl, col, vec, k, ov, flt, exact):
        np.asarray(vec, np.float32)
        return list(fixed)

    from lakeql.vectors.sql import cosines, hits

    def searching(tbl, col, vec, k, ov, flt, exact):  # the search alone inside a UDF: no Searcher around it
        return hits(*(lambda r: (r[0], cosines(r[1])))(search(idx, np.asarray(vec, np.float32), 10, 4)))

    con.create_function("search_only_impl", searching, [duckdb.sqltype(t) for t in
                        ["VARCHAR", "VARCHAR", "FLOAT[]", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"]],
                        duckdb.sqltype("STRUCT(rowid BIGINT, score FLOAT)[]"), type=NATIVE,
                        null_handling=SPECIAL, side_effects=True)
    con.create_function("stub_impl", stub, [duckdb.sqltype(t) for t in
                        ["VARCHAR", "VARCHAR", "FLOAT[]", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"]],
                        duckdb.sqltype("STRUCT(rowid BIGINT, score FLOAT)[]"), type=NATIVE,
                        null_handling=SPECIAL, side_effects=True)
    sql = ("SELECT * FROM semantic_search_vector_rowids('bench.titles', 'title', ?::FLOAT[], k := 10, "
           "exact := true)")
    stub_sql = ("SELECT h.__hit.rowid AS rowid, h.__hit.score AS score FROM (SELECT unnest(stub_impl("
                "'bench.titles', 'title', ?::FLOAT[], 10, 4, NULL, true)) AS __hit) h")
    qs = [np.asarray(Q[i % len(Q)], np.float32) for i in range(a.queries)]
    methods = {
        "faiss binary (sign, k=40)": lambda q: flat.search(sign.query_code(q)[None, :], 40),
        "in-process search() exact": lambda q: search(idx, q, 10, 4),
        "Searcher.search_vector (the UDF's Python body)": lambda q: s.search_vector(
            "bench.titles", "title", q.tolist(), 10, 4, None, True),
        "SQL semantic_search_vector_rowids exact": lambda q: con.execute(sql, [q.tolist()]).fetchall(),
        "SQL stub impl + unnest (same connection)": lambda q: con.execute(stub_sql, [q.tolist()]).fetchall(),
        "SQL UDF running search() alone + unnest": lambda q: con.execute(
            stub_sql.replace("stub_impl", "search_only_impl"), [q.tolist()]).fetchall(),
        "SQL bind the FLOAT[] vector": lambda q: con.execute(
            "SELECT len(?::FLOAT[])", [q.tolist()]).fetchall(),
        "SQL SELECT 1": lambda q: con.execute("SELECT 1").fetchall(),
    }
    same = 0
    for q in qs[:20]:  # SQL returns the in-process search's hits
        ids, sc = search(idx, q, 10, 4)
        rows = con.execute(sql, [q.tolist()]).fetchall()
        same += int([r[0] for r in rows] == ids.tolist())
    for f in methods.values():
        f(qs[0])
    names = list(methods)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    for i, q in enumerate(qs):
        for n in (names if i % 2 == 0 else names[::-1]):
            t = time.process_time()
            methods[n](q)
            cpu[n].append(time.process_time() - t)
    load.append(os.getloadavg()[0])
    med = {n: statistics.median(cpu[n]) * 1e3 for n in names}
    ref = med["faiss binary (sign, k=40)"]
    print(json.dumps({"rows": a.rows, "queries": a.queries, "load_1min": load, "sql_same_ids_of_20": same,
                      "cpu_ms_median": {n: round(x, 3) for n, x in med.items()},
                      "vs_faiss": {n: round(x / ref, 2) for n, x in med.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
