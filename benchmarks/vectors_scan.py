"""The exhaustive first stage before and after the blocked scan (issue 14 item 9): CPU per query, same
process, methods interleaved query by query, ratios to faiss ``IndexBinaryFlat`` of the same run.

    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_scan.py 1m --tmp /tmp/sqlover \\
        --base /tmp/lakeql-compare [--queries 100]
    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_scan.py natural [--queries 50]

``1m``: the 1M-row near-duplicate lake a finished ``vectors_sql_ann.py sql --tmp DIR`` run left in ``DIR``
(bench.titles: id, title; default rabitq index with an int8 tier). "before" is the row-by-row scan
(:func:`lakeql.vectors.kernels.asym4_bounded_spans`, what main runs: ``CodeIndex.blocked`` patched to
return None), "after" the blocked scan; both in the same process on the same loaded index. Per query:
faiss IndexBinaryFlat on the rows' sign codes (k = 40, 1 thread), the first stage alone, the in-process
``search()``, SQL (rowid, score) (``semantic_search_vector_rowids``, exact) and SQL whole rows
(``semantic_search_vector``, exact, id + title). Every query's hits (rows and scores) are checked equal
before/after; recall@10 vs exact float and rows rescored per query are reported.

``natural``: the real DBpedia and MS MARCO passage embeddings of ../shared/data/ir (5,000 each, cached in
benchmarks/_work by benchmarks/vectors.py) indexed in memory like a build does (rabitq, int8 tier), their
own queries: in-process search CPU before/after, the same checks.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _toggle():
    """(before, after): switch the exhaustive scan between the row-by-row kernel and the blocked one."""
    from lakeql.vectors.codes import CodeIndex

    blocked = CodeIndex.blocked

    def before() -> None:
        CodeIndex.blocked = lambda self: None

    def after() -> None:
        CodeIndex.blocked = blocked

    return before, after


def _measure(methods: dict, qs: list, before, after) -> tuple[dict, list[float]]:
    """CPU seconds per method per query, interleaved; ``methods`` values are (phase, fn) with phase
    'before', 'after' or None."""
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    loads = [os.getloadavg()[0]]
    for phase, fn in methods.values():  # warm: JIT, caches, the blocked layout
        (before if phase == "before" else after)()
        fn(qs[0])
    for q in qs:
        for name, (phase, fn) in methods.items():
            (before if phase == "before" else after)()
            c = time.process_time()
            fn(q)
            cpu[name].append(time.process_time() - c)
        loads.append(os.getloadavg()[0])
    after()
    return cpu, loads


def _summary(cpu: dict, ref: str) -> dict:
    med = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
    mean = {k: 1000 * float(np.mean(v)) for k, v in cpu.items()}
    return {
        "cpu_ms_median": med,
        "cpu_ms_mean": mean,
        "median_vs_" + ref: {k: v / med[ref] for k, v in med.items()},
    }


def _checks(idx, qs, exact_top, before, after, search) -> dict:
    """Same hits before/after on every query; recall@10 vs exact float; rows rescored and candidates."""
    same, rec, resc, cand = 0, [], [], []
    for q, top in zip(qs, exact_top, strict=True):
        before()
        st0: dict = {}
        p0, s0 = search(idx, q, 10, 4, stats=st0)
        after()
        st1: dict = {}
        p1, s1 = search(idx, q, 10, 4, stats=st1)
        same += int(p0.tolist() == p1.tolist() and np.array_equal(s0, s1) and st0 == st1)
        rec.append(len(set(p1.tolist()) & set(top.tolist())) / 10)
        resc.append(st1["rescored"])
        cand.append(st1["candidates"])
    return {
        "queries": len(qs),
        "same_hits_scores_stats_before_after": same,
        "recall_at_10_vs_float": float(np.mean(rec)),
        "rescored_per_query_median": float(np.median(resc)),
        "rescored_per_query_mean": float(np.mean(resc)),
        "candidates_per_query_median": float(np.median(cand)),
    }


def run_1m(root: Path, base_folder: Path, nq: int) -> dict:
    import faiss
    import vectors as bv
    from vectors_sql_ann import base_vectors, sign_flat

    from lakeql.connection import open_lake
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    n = 1_000_000
    lake = root / f"lake{n}"
    if not (root / f"lake{n}.done").exists():
        raise SystemExit(f"no finished lake in {root}: run benchmarks/vectors_sql_ann.py sql --tmp {root}")
    base, Q, _ = base_vectors(base_folder)
    vecs = bv.synth(base, n)[1]
    qs = [Q[i % len(Q)] for i in range(nq)]
    exact_top = [np.argsort(-(vecs @ q), kind="stable")[:10] for q in qs]
    sign, bflat = sign_flat(vecs)
    del vecs
    con, ctx = open_lake(lake, index_dir=lake / ".lakeql", capabilities=["vectors"])
    s = ctx.cache["vectors.searcher"]
    _, _, idx = s.index("bench.titles", "title")
    t = time.process_time()
    idx.blocked()
    build_ms = 1000 * (time.process_time() - t)
    binz = idx.binarizer
    before, after = _toggle()
    par = lambda q: [q.tolist()]  # noqa: E731
    rowids = (
        "SELECT * FROM semantic_search_vector_rowids('bench.titles', 'title', ?::FLOAT[], k := 10, "
        "exact := true)"
    )
    rows = "SELECT * FROM semantic_search_vector('bench.titles', 'title', ?::FLOAT[], k := 10, exact := true)"
    methods = {
        "faiss IndexBinaryFlat (sign, k=40)": (None, lambda q: bflat.search(sign.query_code(q)[None, :], 40)),
        "first stage, before (row scan)": (
            "before",
            lambda q: binz.candidates(q, idx.words, idx.factors, 10, None, 20_000),
        ),
        "first stage, after (blocked)": (
            "after",
            lambda q: binz.candidates(q, idx.words, idx.factors, 10, None, 20_000, blocked=idx.blocked()),
        ),
        "in-process search(), before": ("before", lambda q: search(idx, q, 10, 4)),
        "in-process search(), after": ("after", lambda q: search(idx, q, 10, 4)),
        "SQL (rowid, score) exact, before": ("before", lambda q: con.execute(rowids, par(q)).fetchall()),
        "SQL (rowid, score) exact, after": ("after", lambda q: con.execute(rowids, par(q)).fetchall()),
        "SQL whole rows exact, before": ("before", lambda q: con.execute(rows, par(q)).fetchall()),
        "SQL whole rows exact, after": ("after", lambda q: con.execute(rows, par(q)).fetchall()),
    }
    sql_same = 0
    for q in qs:
        before()
        a = con.execute(rows, par(q)).fetchall()
        after()
        sql_same += int(con.execute(rows, par(q)).fetchall() == a)
    cpu, loads = _measure(methods, qs, before, after)
    out = {
        "rows": n,
        "build_blocked_layout_cpu_ms": build_ms,
        **_summary(cpu, "faiss IndexBinaryFlat (sign, k=40)"),
        "load_1min_during": [min(loads), max(loads)],
        **_checks(idx, qs, exact_top, before, after, search),
        "sql_whole_rows_same_before_after": sql_same,
    }
    con.close()
    return out


def run_natural(nq: int) -> dict:
    import faiss

    from lakeql.vectors import binarizers, kernels
    from lakeql.vectors.codes import CodeIndex, encode_tier
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    work = REPO / "benchmarks" / "_work"
    if not (work / "dbpedia_corpus.npy").exists():
        work = Path("/work/main/benchmarks/_work")  # another checkout's cache (embedding takes minutes)
    out = {}
    for name in ("dbpedia", "msmarco"):
        x = np.load(work / f"{name}_corpus.npy").astype(np.float32)
        Q = np.load(work / f"{name}_queries.npy").astype(np.float32)
        b = binarizers.get("rabitq", x.shape[1]).fit(x)
        codes, factors = b.encode(x)
        words, factors = kernels.scan_inputs(codes, factors, b.scan)
        factors["errc"] = b.error_coefficients(factors)
        values, scales, space, _ = encode_tier(x, "int8", b)
        meta = {"dim": x.shape[1], "tier_space": space, "tier": "int8"}
        idx = CodeIndex(Path("."), meta, np.arange(len(x)), words, factors, values, scales, b)
        qs = [Q[i % len(Q)] for i in range(nq)]
        exact_top = [np.argsort(-(x @ q), kind="stable")[:10] for q in qs]
        sign = binarizers.get("sign", x.shape[1])
        bflat = faiss.IndexBinaryFlat(x.shape[1])
        bflat.add(sign.encode(x)[0])
        before, after = _toggle()
        methods = {
            "faiss IndexBinaryFlat (sign, k=40)": (
                None,
                lambda q, bflat=bflat, sign=sign: bflat.search(sign.query_code(q)[None, :], 40),
            ),
            "in-process search(), before": ("before", lambda q, idx=idx: search(idx, q, 10, 4)),
            "in-process search(), after": ("after", lambda q, idx=idx: search(idx, q, 10, 4)),
        }
        cpu, loads = _measure(methods, qs * 4, before, after)  # 4 passes: the 5k searches take ~0.1 ms
        out[name] = {
            "rows": len(x),
            **_summary(cpu, "faiss IndexBinaryFlat (sign, k=40)"),
            "load_1min_during": [min(loads), max(loads)],
            **_checks(idx, qs, exact_top, before, after, search),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("1m", "natural"))
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--tmp", default="/tmp/sqlover")
    ap.add_argument("--base", default=None, help="folder of base_corpus.npy / base_queries.npy (1m)")
    a = ap.parse_args(argv)
    print("load before", os.getloadavg(), flush=True)
    if a.what == "1m":
        res = run_1m(Path(a.tmp), Path(a.base) if a.base else None, a.queries or 100)
    else:
        res = run_natural(a.queries or 50)
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
