"""Where the time of ``semantic_search`` through SQL goes, and the optional ANN first stage (issue 14
items 8-10).

    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_sql_ann.py sql  [--rows 1000000]
    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_sql_ann.py ann10m [--rows 10000000]

Vectors: real MiniLM embeddings of 3,000 passages of ../shared/data/ir (msmarco + dbpedia, first 1,500
each, title + text cut to 400 characters) re-sampled with Gaussian noise (sd 0.01 a dimension) and
re-normalized (``benchmarks/vectors.py: synth``): clusters of near-duplicates, for latency only. Queries:
the 100 real queries of the two sets, embedded by the same model. Embeddings are cached in
benchmarks/_work/ (encoding 3,000 passages took 18 min on the loaded machine).

``sql``: a 1M-row lake (bench.titles: id, title; bench.docs: id, title, vec FLOAT[384]) indexed through
``write_index`` (titles also with ``--embed-ann`` lists). Per query, interleaved (so machine load hits
every method alike), median over the queries: faiss IndexBinaryFlat on sign codes (k = 40, 1 thread:
the raw binary scan), the first-stage kernel alone, the in-process ``search()``, the connection's
``Searcher`` call (name resolution + search + hit list), a trivial Python UDF through SQL (plumbing), the
(rowid, score) SQL call, whole rows of the narrow and the wide table, and fetching 10 known rows.

``ann10m``: codes for N rows generated in chunks (floats never all in memory; the exact float top-10 of
every query kept on the way), the IVF built, exhaustive vs ANN search in-process: recall@10 vs exact
float and vs the exhaustive search, latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work"
sys.path.insert(0, str(REPO / "benchmarks"))


def base_vectors() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(3,000 passage vectors, 100 query vectors, passage titles), encoded once and cached."""
    cp, qp, tp = WORK / "base_corpus.npy", WORK / "base_queries.npy", WORK / "base_texts.json"
    if not cp.exists():
        from lakeql.embedding import encode, load_model

        data = REPO / ".." / "shared" / "data" / "ir"
        docs, qs = [], []
        for name in ("msmarco", "dbpedia"):
            with open(data / name / "corpus.jsonl", encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    if i >= 1500:
                        break
                    d = json.loads(line)
                    docs.append((d.get("title", "") + " " + d["text"]).strip()[:400])
            with open(data / name / "queries.jsonl", encoding="utf-8") as fh:
                qs += [json.loads(line)["text"] for line in fh]
        m = load_model(None)
        WORK.mkdir(parents=True, exist_ok=True)
        np.save(qp, encode(qs, m))
        np.save(cp, encode(docs, m, batch_size=32))
        tp.write_text(json.dumps({"docs": docs, "queries": qs}))
    return np.load(cp), np.load(qp), [t[:60] for t in json.loads(tp.read_text())["docs"]]


def load() -> str:
    return os.getloadavg().__repr__()


def recall(a: np.ndarray, b: np.ndarray) -> float:
    return len(set(a.tolist()) & set(b.tolist())) / max(len(b), 1)


def sql_run(n: int, nq: int, root: Path) -> dict:
    import duckdb
    import faiss
    import vectors as bv

    from lakeql.connection import open_lake
    from lakeql.vectors import ann, binarizers
    from lakeql.vectors.builder import write_index
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    base, Q, titles = base_vectors()
    t0 = time.perf_counter()
    lake, vecs = bv.make_speed_lake(root, n, base, titles)
    index_dir = bv.index_speed_lake(lake, vecs, tables=("bench.docs",))
    from lakeql.catalog import Catalog
    from lakeql.lake import discover
    from lakeql.store import Store

    lk = discover(lake)
    store = Store.for_lake(lk, index_dir)
    Catalog.open(lk, store)
    params = {
        "model": "all-MiniLM-L6-v2",
        "method": "rabitq",
        "backend": "torch",
        "tier": "int8",
        "format": 1,
        "ann": 0,
    }
    t1 = time.perf_counter()
    write_index(store, lk.tables["bench.titles"], "title", np.arange(n, dtype=np.int64), vecs, params)
    t_ann_build = time.perf_counter() - t1
    print(
        f"lake + indexes in {time.perf_counter() - t0:.0f} s (titles index with ANN {t_ann_build:.0f} s)",
        flush=True,
    )
    con, ctx = open_lake(lake, index_dir=index_dir, capabilities=["vectors"])
    s = ctx.cache["vectors.searcher"]
    qs = [Q[i % len(Q)] for i in range(nq)]
    exact_top = [np.argsort(-(vecs @ q), kind="stable")[:10] for q in qs]  # rowid = position here
    sign = binarizers.get("sign", vecs.shape[1])
    bflat = faiss.IndexBinaryFlat(vecs.shape[1])
    bflat.add(sign.encode(vecs)[0])
    del vecs
    _, _, idx = s.index("bench.titles", "title")
    ivf = ann.ivf_of(idx, "bench.titles.title")
    par = lambda q: [q.tolist()]  # noqa: E731
    rowid_sql = (
        "SELECT * FROM (SELECT unnest(semantic_search_vector_impl('bench.titles', 'title', "
        "?::FLOAT[], 10, 4, NULL, true), recursive := true))"
    )
    rowid_ann_sql = rowid_sql.replace("NULL, true", "NULL, false")
    rows_sql = (
        "SELECT * FROM semantic_search_vector('bench.titles', 'title', ?::FLOAT[], k := 10, exact := true)"
    )
    rows_ann_sql = rows_sql.replace("exact := true", "exact := false")
    wide_sql = "SELECT * FROM semantic_search_vector('bench.docs', 'title', ?::FLOAT[], k := 10)"
    hits10 = np.random.default_rng(3).choice(n, 10, replace=False).tolist()
    view = ctx.rows_view(lk.tables["bench.titles"])
    fetch_sql = (
        f"SELECT r.* FROM (SELECT unnest(?::BIGINT[]) AS rowid) h JOIN {view} r ON r.__rowid = h.rowid"
    )
    con.create_function(
        "noop_hits",
        lambda v: [{"rowid": i, "score": 0.5} for i in range(10)],
        [duckdb.sqltype("FLOAT[]")],
        duckdb.list_type(
            duckdb.struct_type({"rowid": duckdb.sqltype("BIGINT"), "score": duckdb.sqltype("FLOAT")})
        ),
        side_effects=True,
    )
    noop_sql = "SELECT * FROM (SELECT unnest(noop_hits(?::FLOAT[]), recursive := true))"
    binz = idx.binarizer
    methods = {
        "faiss binary (sign, k=40)": lambda q: bflat.search(sign.query_code(q)[None, :], 40),
        "first-stage kernel (rabitq bound scan)": lambda q: binz.candidates(
            q, idx.words, idx.factors, 10, None, 20_000
        ),
        "in-process search() exhaustive": lambda q: search(idx, q, 10, 4),
        "in-process ANN search": lambda q: ann.search(idx, ivf, q, 10, 4),
        "Searcher.index() (name resolution, cache lookup)": lambda q: s.index("bench.titles", "title"),
        "Searcher.search_vector() exhaustive (Python, no SQL)": lambda q: s.search_vector(
            "bench.titles", "title", q.tolist(), 10, 4, None, True
        ),
        "SQL trivial Python UDF + unnest": lambda q: con.execute(noop_sql, par(q)).fetchall(),
        "SQL (rowid, score) exhaustive": lambda q: con.execute(rowid_sql, par(q)).fetchall(),
        "SQL (rowid, score) ANN": lambda q: con.execute(rowid_ann_sql, par(q)).fetchall(),
        "SQL fetch 10 given rowids (narrow table)": lambda q: con.execute(fetch_sql, [hits10]).fetchall(),
        "SQL whole rows exhaustive (id, title)": lambda q: con.execute(rows_sql, par(q)).fetchall(),
        "SQL whole rows ANN (id, title)": lambda q: con.execute(rows_ann_sql, par(q)).fetchall(),
        "SQL whole rows, table with vec FLOAT[384]": lambda q: con.execute(wide_sql, par(q)).fetchall(),
    }
    wide_every = 5  # the wide fetch takes seconds: every 5th query only
    for fn in methods.values():
        fn(qs[0])  # warm: JIT, code store, metadata
    times: dict[str, list[float]] = {k: [] for k in methods}
    rec_ann, rec_ex, rec_ann_ex = [], [], []
    for i, q in enumerate(qs):
        for name, fn in methods.items():
            if name.endswith("FLOAT[384]") and i % wide_every:
                continue
            t = time.perf_counter()
            fn(q)
            times[name].append(time.perf_counter() - t)
        ex, _ = search(idx, q, 10, 4)
        an, _ = ann.search(idx, ivf, q, 10, 4)
        rec_ex.append(recall(ex, exact_top[i]))
        rec_ann.append(recall(an, exact_top[i]))
        rec_ann_ex.append(recall(an, ex))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    st: dict = {}
    ann.search(idx, ivf, qs[0], 10, 4, stats=st)
    con.close()
    return {
        "n": n,
        "queries": nq,
        "ms": med,
        "load_after": load(),
        "ann_lists": ivf.nlist,
        "ann_build_s": t_ann_build,
        "probe": st,
        "recall_exhaustive_vs_float": float(np.mean(rec_ex)),
        "recall_ann_vs_float": float(np.mean(rec_ann)),
        "recall_ann_vs_exhaustive": float(np.mean(rec_ann_ex)),
    }


def ann10m(n: int, nq: int, tmp: Path, chunk: int = 250_000, lists: int | None = None) -> dict:
    """Codes of ``n`` re-sampled rows made chunk by chunk; exhaustive vs ANN search in-process."""
    from lakeql.vectors import ann, binarizers, codes, kernels
    from lakeql.vectors.codes import CodeIndex
    from lakeql.vectors.search import search

    base, Q, _ = base_vectors()
    rng = np.random.default_rng(0)
    qs = [Q[i % len(Q)] for i in range(nq)]
    Qm = np.stack(qs)
    fit = base[rng.integers(0, len(base), 200_000)]
    fit = fit + rng.normal(0, 0.01, fit.shape).astype(np.float32)
    fit /= np.linalg.norm(fit, axis=1, keepdims=True)
    binz = binarizers.get("rabitq", base.shape[1]).fit(fit)
    folder = tmp / "store"
    folder.mkdir(parents=True, exist_ok=True)
    d = base.shape[1]
    tier = np.lib.format.open_memmap(folder / "rescore.npy", "w+", np.uint8, (n, d))  # on disk, not RAM
    packed = np.empty((n, binz.nbytes), np.uint8)
    fac = {"factor": np.empty(n, np.float32), "add": np.empty(n, np.float32)}
    scales = np.empty(n, np.float32)
    best_s = np.full((nq, 10), -np.inf, np.float32)
    best_i = np.full((nq, 10), -1, np.int64)
    t0 = time.perf_counter()
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = base[rng.integers(0, len(base), m)] + rng.normal(0, 0.01, (m, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        p, f = binz.encode(x)
        packed[s : s + m] = p
        fac["factor"][s : s + m], fac["add"][s : s + m] = f["factor"], f["add"]
        tv, sc, space = codes.quantize_tier(x, "int8", binz)
        tier[s : s + m] = tv
        scales[s : s + m] = sc
        sims = Qm @ x.T  # exact float top-10 of every query, kept on the way
        allv = np.concatenate([best_s, sims], axis=1)
        alli = np.concatenate([best_i, np.broadcast_to(np.arange(s, s + m), (nq, m))], axis=1)
        top = np.argpartition(-allv, 10, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(allv, top, 1), np.take_along_axis(alli, top, 1)
        print(
            f"  {s + m:,} rows coded ({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    tier.flush()
    t_codes = time.perf_counter() - t0
    words, factors = kernels.scan_inputs(packed, fac, binz.scan)
    factors["errc"] = binz.error_coefficients(factors)
    idx = CodeIndex(
        folder,
        {"dim": d, "tier": "int8", "tier_space": space, "rows": n},
        np.arange(n),
        words,
        factors,
        tier,
        scales,
        binz,
    )
    t1 = time.perf_counter()
    meta = ann.build(folder, packed, d, lists)
    t_build = time.perf_counter() - t1
    del packed
    ivf = ann.ivf_of(idx, "bench.big.vec")
    print(f"codes {t_codes:.0f} s, ANN lists {meta} in {t_build:.0f} s", flush=True)
    search(idx, qs[0], 10, 4)
    ann.search(idx, ivf, qs[0], 10, 4)
    times: dict[str, list[float]] = {"exhaustive": [], "ann": []}
    rec_f, rec_af, rec_ae, probed = [], [], [], []
    for i, q in enumerate(qs):
        t = time.perf_counter()
        ex, _ = search(idx, q, 10, 4)
        times["exhaustive"].append(time.perf_counter() - t)
        st: dict = {}
        t = time.perf_counter()
        an, _ = ann.search(idx, ivf, q, 10, 4, stats=st)
        times["ann"].append(time.perf_counter() - t)
        probed.append(st["probed_rows"])
        rec_f.append(recall(ex, best_i[i]))
        rec_af.append(recall(an, best_i[i]))
        rec_ae.append(recall(an, ex))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {
        "n": n,
        "queries": nq,
        "ms": med,
        "speedup": med["exhaustive"] / med["ann"],
        "load_after": load(),
        "ann": meta,
        "ann_build_s": t_build,
        "codes_s": t_codes,
        "probed_rows_median": float(np.median(probed)),
        "recall_exhaustive_vs_float": float(np.mean(rec_f)),
        "recall_ann_vs_float": float(np.mean(rec_af)),
        "recall_ann_vs_exhaustive": float(np.mean(rec_ae)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("sql", "ann10m"))
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--lists", type=int, default=None, help="ANN lists (ann10m; default: ann.default_lists)")
    a = ap.parse_args(argv)
    tmp = Path(a.tmp or tempfile.mkdtemp(prefix="lakeql_vsa_"))
    print(f"load before: {load()}", flush=True)
    if a.what == "sql":
        out = sql_run(a.rows or 1_000_000, a.queries, tmp)
    else:
        out = ann10m(a.rows or 10_000_000, a.queries, tmp, lists=a.lists)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
