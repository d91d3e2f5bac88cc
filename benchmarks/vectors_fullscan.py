"""The exhaustive search before and after the full-scan layout (issue 14 item 9, benchmarks/results/
sqlscan.md): CPU per query in one process, methods interleaved query by query, ratios to faiss
``IndexBinaryFlat`` of the same run, and where the search's CPU goes.

    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_fullscan.py 1m --tmp /tmp/sqlscan [--queries 100]
    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_fullscan.py natural [--queries 100]

``1m``: the 1M-row near-duplicate lake a finished ``vectors_sql_ann.py sql --tmp DIR`` run left in ``DIR``
(bench.titles: id, title; default rabitq index, int8 tier; vectors: the 3,000 real MiniLM passages of
benchmarks/_work re-sampled with noise). "before" is what main runs (the blocked layout of
:func:`lakeql.vectors.kernels.blocked_inputs`, kernel ``asym4_bounded_blocked``), "after" this branch
(:mod:`lakeql.vectors.fullscan`); both layouts are built once and swapped into the same loaded index per
call. Per query: faiss on the rows' sign codes (k = 40, 1 thread), the first stage alone, the in-process
``search()``, its rescoring alone (CPU inside the tier scorer), SQL ``SELECT 1`` and SQL (rowid, score)
(``semantic_search_vector_rowids``, exact). Checks: the same hits, scores and stats before and after on
every query, recall@10 vs exact float, rows rescored.

``natural``: the 3,000 real passage embeddings themselves (msmarco + dbpedia, not re-sampled) indexed in
memory as a build does (rabitq, int8 tier), the 100 real queries: search before/after, the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _layouts(idx):
    """(before, after) switches of ``idx``'s exhaustive layout: the blocked kernel's, the full scan's."""
    from lakeql.vectors import fullscan, kernels

    old = kernels.blocked_inputs(idx.words, idx.factors)
    new = fullscan.full_layout(idx.words, idx.factors)

    def before() -> None:
        idx._blocked = old

    def after() -> None:
        idx._blocked = new

    return before, after


class _ScoreClock:
    """Wraps ``idx.scorer`` so the CPU time spent rescoring (tier reads + products) is summed per call."""

    def __init__(self, idx) -> None:
        self.idx, self.cpu = idx, 0.0
        real = type(idx).scorer

        def scorer(q):
            inner = real(idx, q)

            def timed(positions):
                c = time.process_time()
                out = inner(positions)
                self.cpu += time.process_time() - c
                return out

            return timed

        idx.scorer = scorer

    def around(self, fn):
        def run(q):
            self.cpu = 0.0
            fn(q)
            return self.cpu

        return run


def _checks(idx, qs, exact_top, before, after) -> dict:
    from lakeql.vectors.search import search

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


def _measure(methods: dict, qs: list, before, after, clock=None) -> tuple[dict, list[float]]:
    """CPU seconds per method per query, interleaved; ``methods`` values are (phase, fn) with phase
    'before', 'after' or None; a method named ``rescoring ...`` reports the clock's rescoring CPU. The
    methods run in one order for even queries and the reverse for odd ones."""
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    loads = [os.getloadavg()[0]]
    for phase, fn in methods.values():  # warm: JIT, caches
        (before if phase == "before" else after)()
        fn(qs[0])
    for j, q in enumerate(qs):
        names = list(methods)
        for name in names if j % 2 == 0 else names[::-1]:  # order alternates: no method always follows one
            phase, fn = methods[name]
            (before if phase == "before" else after)()
            c = time.process_time()
            inner = fn(q)
            spent = time.process_time() - c
            cpu[name].append(inner if name.startswith("rescoring") else spent)
        loads.append(os.getloadavg()[0])
    after()
    return cpu, loads


def _summary(cpu: dict, ref: str) -> dict:
    import statistics

    med = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
    return {
        "cpu_ms_median": med,
        "cpu_ms_mean": {k: 1000 * float(np.mean(v)) for k, v in cpu.items()},
        "median_vs_" + ref: {k: v / med[ref] for k, v in med.items()},
    }


def run_1m(root: Path, nq: int) -> dict:
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
    base, Q, _ = base_vectors(None)
    vecs = bv.synth(base, n)[1]
    qs = [Q[i % len(Q)] for i in range(nq)]
    exact_top = [np.argsort(-(vecs @ q), kind="stable")[:10] for q in qs]
    sign, bflat = sign_flat(vecs)
    del vecs
    con, ctx = open_lake(lake, index_dir=lake / ".lakeql", capabilities=["vectors"])
    s = ctx.cache["vectors.searcher"]
    _, _, idx = s.index("bench.titles", "title")
    t = time.process_time()
    before, after = _layouts(idx)
    build_ms = 1000 * (time.process_time() - t)
    binz = idx.binarizer
    clock = _ScoreClock(idx)
    par = lambda q: [q.tolist()]  # noqa: E731
    rowids = (
        "SELECT * FROM semantic_search_vector_rowids('bench.titles', 'title', ?::FLOAT[], k := 10, "
        "exact := true)"
    )
    first = lambda q: binz.candidates(q, idx.words, idx.factors, 10, None, 20_000, blocked=idx.blocked())  # noqa: E731
    methods = {
        "faiss IndexBinaryFlat (sign, k=40)": (None, lambda q: bflat.search(sign.query_code(q)[None, :], 40)),
        "first stage, before": ("before", first),
        "first stage, after": ("after", first),
        "in-process search(), before": ("before", lambda q: search(idx, q, 10, 4)),
        "in-process search(), after": ("after", lambda q: search(idx, q, 10, 4)),
        "rescoring inside search(), after": ("after", clock.around(lambda q: search(idx, q, 10, 4))),
        "SQL SELECT 1": (None, lambda q: con.execute("SELECT 1").fetchall()),
        "SQL (rowid, score) exact, before": ("before", lambda q: con.execute(rowids, par(q)).fetchall()),
        "SQL (rowid, score) exact, after": ("after", lambda q: con.execute(rowids, par(q)).fetchall()),
    }
    sql_same = 0
    for q in qs:
        before()
        a = con.execute(rowids, par(q)).fetchall()
        after()
        sql_same += int(con.execute(rowids, par(q)).fetchall() == a)
    cpu, loads = _measure(methods, qs, before, after)
    out = {
        "rows": n,
        "build_both_layouts_cpu_ms": build_ms,
        **_summary(cpu, "faiss IndexBinaryFlat (sign, k=40)"),
        "load_1min_during": [min(loads), max(loads)],
        **_checks(idx, qs, exact_top, before, after),
        "sql_rowid_score_same_before_after": sql_same,
    }
    con.close()
    return out


def run_natural(nq: int) -> dict:
    import faiss
    from vectors_sql_ann import base_vectors, sign_flat

    from lakeql.vectors import binarizers, kernels
    from lakeql.vectors.codes import CodeIndex, encode_tier
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    x, Q, _ = base_vectors(None)
    x, Q = x.astype(np.float32), Q.astype(np.float32)
    b = binarizers.get("rabitq", x.shape[1]).fit(x)
    codes, factors = b.encode(x)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    factors["errc"] = b.error_coefficients(factors)
    values, scales, space, _ = encode_tier(x, "int8", b)
    meta = {"dim": x.shape[1], "tier_space": space, "tier": "int8"}
    idx = CodeIndex(Path("."), meta, np.arange(len(x)), words, factors, values, scales, b)
    qs = [Q[i % len(Q)] for i in range(nq)]
    exact_top = [np.argsort(-(x @ q), kind="stable")[:10] for q in qs]
    sign, bflat = sign_flat(x)
    before, after = _layouts(idx)
    methods = {
        "faiss IndexBinaryFlat (sign, k=40)": (None, lambda q: bflat.search(sign.query_code(q)[None, :], 40)),
        "in-process search(), before": ("before", lambda q: search(idx, q, 10, 4)),
        "in-process search(), after": ("after", lambda q: search(idx, q, 10, 4)),
    }
    cpu, loads = _measure(methods, qs * 4, before, after)
    return {
        "rows": len(x),
        **_summary(cpu, "faiss IndexBinaryFlat (sign, k=40)"),
        "load_1min_during": [min(loads), max(loads)],
        **_checks(idx, qs, exact_top, before, after),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("1m", "natural"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--tmp", default="/tmp/sqlscan")
    a = ap.parse_args(argv)
    print("load before", os.getloadavg(), flush=True)
    res = run_1m(Path(a.tmp), a.queries) if a.what == "1m" else run_natural(a.queries)
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
