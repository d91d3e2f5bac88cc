"""Benchmark of lakeql vectors: quality of each binarizer vs exact float search, speed vs the baselines.

    /work/venv/bin/python benchmarks/vectors.py            # full: quality + speed at 100k and 1M rows
    /work/venv/bin/python benchmarks/vectors.py --quick    # quality + speed at 100k only, fewer queries

Quality (../shared/data/ir/dbpedia and msmarco, 5,000 documents and 50 queries each, MiniLM-L6 vectors):
recall@10 against the exact float top-10, nDCG@10 and Recall@10 against the graded qrels, for float
exact search and for each binarizer + float16 rescoring at oversample 1, 2, 4, 10. A second recall column
uses 500 held-out corpus documents as queries (more queries, tighter numbers).

Speed (one query at a time, median over queries, same run): a lake table of N rows made by re-sampling
the 10,000 real corpus vectors with small Gaussian noise (latency only), searched by
lakeql ``semantic_search_vector`` end to end in SQL (rows with all columns), DuckDB
``ORDER BY array_cosine_distance(...) LIMIT 10`` over the same Parquet, faiss ``IndexFlatIP`` and faiss
``IndexBinaryFlat`` (raw, 1 thread, k * 4 candidates).

Default pipeline (``--skip-pipeline`` to skip): the whole ``search()`` per rescoring tier (int8, float16)
and mode (adaptive under RaBitQ's error bound, or a fixed ``k * oversample``): recall@10 vs exact float,
rows rescored per query, in-process latency, bytes per row; on both IR sets and on ``--dup-rows``
near-duplicates (the real vectors re-sampled with noise 0.01). Index bytes on disk at 2,000 and 100,000
rows through ``write_index``. Hybrid search: nDCG@10 / Recall@10 of BM25 alone, vectors alone and their
fusions (``lakeql.vectors.bm25``) on the 50 real queries of each set.

Embedding throughput: sentences/s of the torch and torch-int8 backends on real MS MARCO passages, and
the int8 backend's quality cost (nDCG@10 with corpus and queries both encoded by it); the onnx backend
is compared in ``benchmarks/encoders.py``.

Document embeddings are cached in benchmarks/_work/ (gitignored): encoding 10,000 texts takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LAKEQL_SHARED_DATA", REPO.parent / "shared" / "data")) / "ir"
WORK = REPO / "benchmarks" / "_work"
OVERSAMPLES = (1, 2, 4, 10)
K = 10


# ----------------------------------------------------------------------------- data
def load_ir(name: str) -> dict:
    """Corpus/queries/qrels of one BEIR subset plus their (cached) MiniLM embeddings."""
    from lakeql.embedding import encode

    root = DATA / name
    docs = [json.loads(line) for line in open(root / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(line) for line in open(root / "queries.jsonl", encoding="utf-8")]
    qrels: dict[str, dict[str, int]] = {}
    for line in list(open(root / "qrels" / "test.tsv", encoding="utf-8"))[1:]:
        qid, did, score = line.rstrip("\n").split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    WORK.mkdir(parents=True, exist_ok=True)
    cpath, qpath = WORK / f"{name}_corpus.npy", WORK / f"{name}_queries.npy"
    if not cpath.exists():
        np.save(cpath, encode([(d.get("title", "") + " " + d["text"]).strip() for d in docs], report=True))
    if not qpath.exists():
        np.save(qpath, encode([q["text"] for q in queries]))
    return {"name": name, "doc_ids": [d["_id"] for d in docs], "titles": [d.get("title", "") for d in docs],
            "query_ids": [q["_id"] for q in queries], "query_texts": [q["text"] for q in queries],
            "qrels": qrels, "C": np.load(cpath), "Q": np.load(qpath)}


# ----------------------------------------------------------------------------- metrics
def ndcg_at_k(ranked: list[str], rels: dict[str, int], k: int = K) -> float:
    gains = [rels.get(d, 0) for d in ranked[:k]]
    dcg = sum((2 ** g - 1) / np.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / np.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_rel(ranked: list[str], rels: dict[str, int], k: int = K) -> float:
    relevant = {d for d, g in rels.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def prepared(method: str, C: np.ndarray, **kw):
    from lakeql.vectors import binarizers, kernels

    b = binarizers.get(method, C.shape[1], **kw).fit(C)
    codes, factors = b.encode(C)
    words, factors = kernels.scan_inputs(codes, factors, b.scan)
    return b, words, factors


def search_binary(b, words, factors, tier: np.ndarray, q: np.ndarray, ov: int, k: int = K) -> np.ndarray:
    pos, _ = b.topk(q, words, factors, k * ov)
    return pos[np.argsort(-(tier[pos] @ q), kind="stable")[:k]]


CONFIGS = [("sign", "sign", {}), ("median", "median", {}),
           ("rabitq (random R)", "rabitq", {"rotation_kind": "random"}),
           ("rabitq (ITQ R, default)", "rabitq", {})]


def quality(ds: dict, n_docq: int, tier_kind: str = "float16") -> list[dict]:
    """One row per (method, oversample) on one dataset."""
    from lakeql.vectors.codes import quantize_tier

    C, Q = ds["C"], ds["Q"]
    rng = np.random.default_rng(7)
    docq_idx = rng.choice(len(C), n_docq, replace=False)
    docq = C[docq_idx]
    exact_q = np.argsort(-(Q @ C.T), axis=1, kind="stable")[:, :K]
    sims = docq @ C.T
    sims[np.arange(n_docq), docq_idx] = -np.inf  # a document is not its own neighbour
    exact_d = np.argsort(-sims, axis=1, kind="stable")[:, :K]
    ids = ds["doc_ids"]

    def qrel_metrics(ranked_pos: list[np.ndarray]) -> tuple[float, float]:
        nd, rc = [], []
        for qi, pos in enumerate(ranked_pos):
            rels = ds["qrels"].get(ds["query_ids"][qi], {})
            ranked = [ids[p] for p in pos]
            nd.append(ndcg_at_k(ranked, rels))
            rc.append(recall_rel(ranked, rels))
        return float(np.mean(nd)), float(np.mean(rc))

    rows = []
    f_ndcg, f_rec = qrel_metrics(list(exact_q))
    rows.append({"dataset": ds["name"], "method": "float32 exact", "oversample": "-", "recall_exact": 1.0,
                 "recall_docq": 1.0, "ndcg": f_ndcg, "ndcg_ratio": 1.0, "recall_rel": f_rec})
    tier = quantize_tier(C, tier_kind)[0].astype(np.float32)  # float16 or float32: rows as they are
    for label, method, kw in CONFIGS:
        b, words, factors = prepared(method, C, **kw)
        for ov in OVERSAMPLES:
            res_q = [search_binary(b, words, factors, tier, q, ov) for q in Q]
            res_d = []
            for i, q in enumerate(docq):
                pos = search_binary(b, words, factors, tier, q, ov, K + 1)
                res_d.append(pos[pos != docq_idx[i]][:K])
            rq = np.mean([len(set(r) & set(e)) / K for r, e in zip(res_q, exact_q, strict=True)])
            rd = np.mean([len(set(r) & set(e)) / K for r, e in zip(res_d, exact_d, strict=True)])
            nd, rc = qrel_metrics(res_q)
            rows.append({"dataset": ds["name"], "method": label, "oversample": ov, "recall_exact": rq,
                         "recall_docq": rd, "ndcg": nd, "ndcg_ratio": nd / f_ndcg if f_ndcg else 0.0,
                         "recall_rel": rc})
    return rows


def code_index(C: np.ndarray, tier: str = "int8", method: str = "rabitq", **kw):
    """An in-memory CodeIndex of ``C`` built exactly as ``write_index`` builds one (fit, encode, tier)."""
    from lakeql.vectors import binarizers, kernels
    from lakeql.vectors.codes import CodeIndex, quantize_tier

    b = binarizers.get(method, C.shape[1], **kw).fit(C)
    codes, f = b.encode(C)
    words, f = kernels.scan_inputs(codes, f, b.scan)
    if getattr(b, "bounded", False):
        f["errc"] = b.error_coefficients(f)
    vals, sc, space = quantize_tier(C, tier, b)
    return CodeIndex(Path("."), {"dim": C.shape[1], "tier_space": space}, np.arange(len(C)), words, f, vals,
                     sc, b)


def pipeline_rows(name: str, C: np.ndarray, Q: np.ndarray, qrels_ndcg=None, label: str = "",
                  configs=None) -> list[dict]:
    """The whole default search (``lakeql.vectors.search.search``) per tier / rescoring mode: recall@10 vs
    exact float, candidates rescored per query, latency (in-process), and index bytes per row."""
    from lakeql.vectors.search import search

    exact = np.argsort(-(Q @ C.T), axis=1, kind="stable")[:, :K]
    out = []
    for tier, mode, ov in configs or [("int8", "adaptive", 4), ("float16", "adaptive", 4),
                                      ("int8", "fixed", 4), ("int8", "fixed", 10), ("float16", "fixed", 4)]:
        idx = code_index(C, tier)
        rec, resc, ts, ranked = [], [], [], []
        for q, e in zip(Q, exact, strict=True):
            st: dict = {}
            t0 = time.perf_counter()
            ids, _ = search(idx, q, K, ov, stats=st, max_rescore=20_000 if mode == "adaptive" else 0)
            ts.append(time.perf_counter() - t0)
            rec.append(len(set(ids.tolist()) & set(e.tolist())) / K)
            resc.append(st["rescored"])
            ranked.append(ids)
        per_row_scale = idx.scales is not None and idx.scales.shape == (len(C),)
        tier_b = idx.tier.dtype.itemsize * C.shape[1] + (4 if per_row_scale else 0)
        row = {"dataset": name, "label": label, "tier": tier, "mode": mode, "oversample": ov,
               "recall": float(np.mean(rec)), "rescored_p50": float(np.median(resc)),
               "rescored_p95": float(np.percentile(resc, 95)), "ms": 1000 * statistics.median(ts),
               "bytes_row": 48 + 8 + tier_b}
        if qrels_ndcg is not None:
            row["ndcg"] = qrels_ndcg(ranked)
        out.append(row)
    return out


def fmt_pipeline(rows: list[dict]) -> str:
    lines = ["| data | tier | rescoring | oversample | recall@10 vs exact float | rescored / query p50 (p95) "
             "| ms / query (in-process) | bytes / row (codes + factors + tier) | / float32 | nDCG@10 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        nd = f"{r['ndcg']:.4f}" if "ndcg" in r else "-"
        lines.append(f"| {r['dataset']}{r['label']} | {r['tier']} | {r['mode']} | {r['oversample']} | "
                     f"{r['recall']:.3f} | {r['rescored_p50']:.0f} ({r['rescored_p95']:.0f}) | {r['ms']:.1f} "
                     "| "
                     f"{r['bytes_row']} | {r['bytes_row'] / 1536:.3f} | {nd} |")
    return "\n".join(lines)


def size_rows(base: np.ndarray, titles: list[str], tmp: Path, sizes=(2_000, 100_000)) -> list[dict]:
    """Index bytes on disk per row (codes Parquet + tier + binarizer + meta) through write_index."""
    out = []
    for n in sizes:
        for tier in ("int8", "float16"):
            lake, vecs = make_speed_lake(tmp / f"size{n}{tier}", n, base, titles)
            index_dir = index_speed_lake(lake, vecs, tier=tier, tables=("bench.titles",))
            folder = next((index_dir / "embed").iterdir())
            total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            out.append({"n": n, "tier": tier, "bytes": total, "per_row": total / n,
                        "ratio": total / (n * vecs.shape[1] * 4)})
    return out


def hybrid_rows(ds: dict) -> list[dict]:
    """nDCG@10 / Recall@10 of BM25 alone, vectors alone (the default index) and their fusions."""
    from lakeql.vectors import bm25
    from lakeql.vectors.search import search

    docs = [json.loads(line) for line in open(DATA / ds["name"] / "corpus.jsonl", encoding="utf-8")]
    with tempfile.TemporaryDirectory() as tmp:
        bm25.build([(d.get("title", "") + " " + d["text"]).strip() for d in docs], Path(tmp))
        words = bm25.BM25Index.load(Path(tmp), ds["name"])
    idx = code_index(ds["C"], "int8")
    ids = ds["doc_ids"]
    runs: dict[str, list] = {name: [] for name in (
        "BM25 alone", "vectors alone (rabitq + int8)", "hybrid RRF (default)", "hybrid RRF, weight 0.7",
        "hybrid weighted 0.5", "hybrid weighted 0.7")}
    for qi, text in enumerate(ds["query_texts"]):
        q = ds["Q"][qi]
        vec = search(idx, q, 100, 4)
        kw = words.top(text, 100)
        runs["BM25 alone"].append(kw[0][:K])
        runs["vectors alone (rabitq + int8)"].append(vec[0][:K])
        runs["hybrid RRF (default)"].append(bm25.fuse(vec, kw, K)[0])
        runs["hybrid RRF, weight 0.7"].append(bm25.fuse(vec, kw, K, "rrf", 0.7)[0])
        runs["hybrid weighted 0.5"].append(bm25.fuse(vec, kw, K, "weighted", 0.5)[0])
        runs["hybrid weighted 0.7"].append(bm25.fuse(vec, kw, K, "weighted", 0.7)[0])
    out = []
    for name, ranked in runs.items():
        rels = [ds["qrels"].get(qid, {}) for qid in ds["query_ids"]]
        nd = [ndcg_at_k([ids[p] for p in r], rels[i]) for i, r in enumerate(ranked)]
        rc = [recall_rel([ids[p] for p in r], rels[i]) for i, r in enumerate(ranked)]
        out.append({"dataset": ds["name"], "method": name, "ndcg": float(np.mean(nd)),
                    "recall": float(np.mean(rc))})
    return out


# ----------------------------------------------------------------------------- speed
def synth(base: np.ndarray, n: int, seed: int = 0, noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors re-sampled from ``base`` with Gaussian noise (per-dim sd ``noise``), re-normalized."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(base), n)
    out = np.empty((n, base.shape[1]), np.float32)
    step = 200_000
    for s in range(0, n, step):
        v = base[src[s:s + step]] + rng.normal(0, noise, (min(step, n - s), base.shape[1])).astype(np.float32)
        out[s:s + step] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return src, out


def make_speed_lake(root: Path, n: int, base: np.ndarray, titles: list[str]) -> tuple[Path, np.ndarray]:
    """A lake with bench.docs (id, title, vec FLOAT[384]) and bench.titles (id, title): the same ``n`` rows,
    with and without their vectors; returns (lake, vectors)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, vecs = synth(base, n)
    lake = root / f"lake{n}"
    (lake / "bench").mkdir(parents=True, exist_ok=True)
    d = vecs.shape[1]
    vec_arr = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), d)
    tbl = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)),
                    "title": pa.array([titles[i] for i in src]), "vec": vec_arr})
    pq.write_table(tbl, lake / "bench" / "docs.parquet", row_group_size=122_880, compression="zstd")
    pq.write_table(tbl.drop_columns(["vec"]), lake / "bench" / "titles.parquet", row_group_size=122_880,
                   compression="zstd")
    return lake, vecs


def index_speed_lake(lake: Path, vecs: np.ndarray, method: str = "rabitq", tier: str = "int8",
                     tables: tuple[str, ...] = ("bench.docs", "bench.titles")) -> Path:
    """The embed index of bench.docs.title from the given vectors, through lakeql's own write path."""
    from lakeql.catalog import Catalog
    from lakeql.lake import discover
    from lakeql.store import Store
    from lakeql.vectors.builder import write_index

    lk = discover(lake)
    store = Store.for_lake(lk, lake / ".lakeql")
    store.ensure_writable()
    Catalog.build(lk, store, refresh=True)
    params = {"model": "all-MiniLM-L6-v2", "method": method, "backend": "torch", "tier": tier,
              "format": 1}
    for table in tables:
        write_index(store, lk.tables[table], "title", np.arange(len(vecs), dtype=np.int64), vecs, params)
    return store.root


def timed(fn, reps: list) -> float:
    """Median seconds of ``fn(x)`` over the items of ``reps``."""
    ts = []
    for x in reps:
        t0 = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def speed(n: int, base: np.ndarray, titles: list[str], queries: np.ndarray, texts: list[str],
          n_queries: int, tmp: Path) -> dict:
    import duckdb
    import faiss

    from lakeql.vectors import binarizers
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    lake, vecs = make_speed_lake(tmp, n, base, titles)
    index_dir = index_speed_lake(lake, vecs)
    con, ctx, how = open_lake(lake, index_dir)
    qs = [queries[i % len(queries)] for i in range(n_queries)]
    tq = [texts[i % len(texts)] for i in range(n_queries)]
    sql_wide = "SELECT * FROM semantic_search_vector('bench.docs', 'title', ?::FLOAT[], k := 10)"
    con.execute(sql_wide, [qs[0].tolist()]).fetchall()  # warm: loads the code store once
    t_wide = timed(lambda q: con.execute(sql_wide, [q.tolist()]).fetchall(), qs[: max(3, n_queries // 4)])
    sql = "SELECT * FROM semantic_search_vector('bench.titles', 'title', ?::FLOAT[], k := 10)"
    con.execute(sql, [qs[0].tolist()]).fetchall()
    t_lakeql = timed(lambda q: con.execute(sql, [q.tolist()]).fetchall(), qs)
    sql_ids = ("SELECT * FROM (SELECT unnest(semantic_search_vector_impl('bench.titles', 'title', "
               "?::FLOAT[], 10, 4, NULL), recursive := true))")
    t_rowids = timed(lambda q: con.execute(sql_ids, [q.tolist()]).fetchall(), qs)
    sql_text = "SELECT * FROM semantic_search('bench.titles', 'title', ?, k := 10)"
    con.execute(sql_text, [tq[0]]).fetchall()  # warm: loads the model
    t_text = timed(lambda t: con.execute(sql_text, [t]).fetchall(), [t + f" {i}" for i, t in enumerate(tq)])
    # The in-process scan + rescoring alone (what the SQL wraps).
    from lakeql.vectors.sql import Searcher

    idx = Searcher(ctx).index("bench.titles", "title")[2]  # the code store the SQL above loaded
    t_scan = timed(lambda q: search(idx, q, 10, 4), qs)
    # Baselines.
    path = str(lake / "bench" / "docs.parquet")
    dsql = (f"SELECT id, title, array_cosine_distance(vec::FLOAT[384], ?::FLOAT[384]) AS d "
            f"FROM read_parquet('{path}') ORDER BY d LIMIT 10")
    dcon = duckdb.connect()
    dq = qs[: max(3, n_queries // 4)]
    dcon.execute(dsql, [dq[0].tolist()]).fetchall()
    t_duck = timed(lambda q: dcon.execute(dsql, [q.tolist()]).fetchall(), dq)
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    t_flat = timed(lambda q: flat.search(q[None, :], 10), qs)
    sign = binarizers.get("sign", vecs.shape[1])
    bcodes = sign.encode(vecs)[0]
    bflat = faiss.IndexBinaryFlat(vecs.shape[1])
    bflat.add(bcodes)
    t_bin = timed(lambda q: bflat.search(sign.query_code(q)[None, :], 40), qs)
    from lakeql.vectors import kernels

    t_ham = timed(lambda q: kernels.hamming_topk(idx.words, kernels.as_words(sign.query_code(q)[None, :])[0],
                                                 40, kernels.NO_MASK), qs)
    folder = index_dir / idx.path.relative_to(index_dir)
    code_bytes = sum(f.stat().st_size for f in folder.glob("shards/*/codes.parquet"))  # one per data file
    tier_bytes = sum(f.stat().st_size for f in folder.glob("shards/*/rescore.npy"))
    scanned = n * idx.words.shape[1] * 8 + 40 * vecs.shape[1] * 2  # codes + 40 float16 rows
    con.close()
    return {"n": n, "lakeql_sql": t_lakeql, "lakeql_wide_sql": t_wide, "lakeql_rowids_sql": t_rowids,
            "lakeql_text_sql": t_text,
            "lakeql_scan": t_scan, "duckdb": t_duck, "faiss_flat": t_flat, "faiss_binary": t_bin,
            "numba_hamming": t_ham, "code_bytes": code_bytes, "tier_bytes": tier_bytes,
            "float_bytes": n * vecs.shape[1] * 4, "scanned": scanned,
            "parquet_bytes": os.path.getsize(path), "connection": how}


def open_lake(lake: Path, index_dir: Path):
    """(connection, LakeContext, how): lakeql's full registration, or the vectors functions alone when
    another capability fails to register on this vectors-only lake (reported in the output)."""
    from lakeql.connection import open_lake

    con, ctx = open_lake(lake, index_dir=index_dir, capabilities=["vectors"])
    return con, ctx, "lakeql.connect(capabilities=['vectors'])"


# ----------------------------------------------------------------------------- embedding
def throughput(texts: list[str]) -> list[dict]:
    from lakeql.embedding import encode, load_model

    out = []
    for backend in ("torch", "torch-int8"):
        m = load_model(None, backend)
        encode(texts[:16], m)  # warm-up
        t0 = time.perf_counter()
        encode(texts, m)
        secs = time.perf_counter() - t0
        out.append({"backend": backend, "texts": len(texts), "seconds": secs, "per_s": len(texts) / secs})
    return out


def int8_quality(ds: dict) -> dict | None:
    """nDCG@10 with corpus+queries encoded by the torch-int8 backend (cached), vs float32 torch."""
    from lakeql.embedding import encode, load_model

    cpath = WORK / f"{ds['name']}_corpus_int8.npy"
    qpath = WORK / f"{ds['name']}_queries_int8.npy"
    if not cpath.exists():
        return None
    C8 = np.load(cpath)
    Q8 = np.load(qpath) if qpath.exists() else encode(ds["query_texts"], load_model(None, "torch-int8"))
    ids = ds["doc_ids"]

    def ndcg(C, Q):
        top = np.argsort(-(Q @ C.T), axis=1)[:, :K]
        return float(np.mean([ndcg_at_k([ids[p] for p in top[i]], ds["qrels"].get(ds["query_ids"][i], {}))
                              for i in range(len(Q))]))

    cos = float(np.mean(np.sum(C8 * ds["C"], axis=1)))
    return {"dataset": ds["name"], "ndcg_fp32": ndcg(ds["C"], ds["Q"]), "ndcg_int8": ndcg(C8, Q8),
            "mean_cos": cos}


# ----------------------------------------------------------------------------- report
def fmt_quality(rows: list[dict]) -> str:
    lines = ["| dataset | method | oversample | recall@10 vs exact (50 queries) | recall@10 vs exact "
             "(500 doc queries) | nDCG@10 | nDCG@10 / float | Recall@10 (qrels) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['method']} | {r['oversample']} | {r['recall_exact']:.3f} | "
                     f"{r['recall_docq']:.3f} | {r['ndcg']:.4f} | {r['ndcg_ratio']:.3f} | "
                     f"{r['recall_rel']:.4f} |")
    return "\n".join(lines)


def fmt_speed(rows: list[dict]) -> str:
    lines = ["| rows | lakeql semantic_search_vector (SQL, whole rows of bench.titles) | "
             "same, rows of bench.docs incl. their 1.5 KB vec column | lakeql (rowid, score) SQL | "
             "lakeql scan + rescore (Python) | lakeql semantic_search (text, incl. query embedding) | "
             "DuckDB array_cosine_distance full scan | faiss IndexFlatIP | faiss IndexBinaryFlat (k=40) | "
             "numba Hamming (k=40) | DuckDB / lakeql SQL | lakeql SQL / faiss binary |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = {k: v * 1000 for k, v in r.items() if isinstance(v, float)}
        lines.append(f"| {r['n']:,} | {ms['lakeql_sql']:.1f} ms | {ms['lakeql_wide_sql']:.1f} ms | "
                     f"{ms['lakeql_rowids_sql']:.1f} ms | "
                     f"{ms['lakeql_scan']:.1f} ms | {ms['lakeql_text_sql']:.1f} ms | {ms['duckdb']:.1f} ms | "
                     f"{ms['faiss_flat']:.1f} ms | {ms['faiss_binary']:.1f} ms | "
                     f"{ms['numba_hamming']:.1f} ms | "
                     f"{r['duckdb'] / r['lakeql_sql']:.1f}x | {r['lakeql_sql'] / r['faiss_binary']:.2f}x |")
    lines += ["", "| rows | code bytes (Parquet) | float32 bytes | codes / float32 | float16 tier | "
              "bytes scanned / query (lakeql) | implied GB/s (scan) | DuckDB Parquet bytes |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['code_bytes']:,} | {r['float_bytes']:,} | "
                     f"1/{r['float_bytes'] / r['code_bytes']:.1f} | {r['tier_bytes']:,} (1/"
                     f"{r['float_bytes'] / r['tier_bytes']:.1f}) | {r['scanned']:,} | "
                     f"{r['scanned'] / r['lakeql_scan'] / 1e9:.1f} | {r['parquet_bytes']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="speed at 100k rows only, fewer queries")
    ap.add_argument("--sizes", default=None, help="comma-separated row counts (default 100000,1000000)")
    ap.add_argument("--queries", type=int, default=None, help="queries timed per size")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--skip-pipeline", action="store_true", help="skip tiers/rescoring, sizes and hybrid")
    ap.add_argument("--dup-rows", type=int, default=200_000, help="rows of the near-duplicate set")
    ap.add_argument("--embed-texts", type=int, default=None, help="texts for the throughput test")
    args = ap.parse_args(argv)
    os.environ.setdefault("LAKEQL_QUIET", "1")
    sizes = [int(s) for s in (args.sizes or ("100000" if args.quick else "100000,1000000")).split(",")]
    nq = args.queries or (20 if args.quick else 50)
    print(f"# lakeql vectors benchmark\n\nmachine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, duckdb {__import__('duckdb').__version__}, "
          f"faiss {__import__('faiss').__version__}\n")
    sets = [load_ir("dbpedia"), load_ir("msmarco")]
    if not args.skip_quality:
        rows = []
        for ds in sets:
            rows += quality(ds, 200 if args.quick else 500)
        print("## Quality (binarizer first stage + float16 rescoring, k = 10)\n")
        print(fmt_quality(rows) + "\n", flush=True)
    if not args.skip_pipeline:
        rows = []
        for ds in sets:
            def qn(ranked, ds=ds):
                return float(np.mean([ndcg_at_k([ds["doc_ids"][p] for p in r],
                                                ds["qrels"].get(ds["query_ids"][i], {}))
                                      for i, r in enumerate(ranked)]))
            rows += pipeline_rows(ds["name"], ds["C"], ds["Q"], qn, " (50 queries)")
            rng = np.random.default_rng(7)
            di = rng.choice(len(ds["C"]), 500, replace=False)
            rows += pipeline_rows(ds["name"], np.delete(ds["C"], di, axis=0), ds["C"][di], None,
                                  " (500 held-out docs as queries)")
        base = np.concatenate([ds["C"] for ds in sets])
        _, dup = synth(base, args.dup_rows)
        qv = np.concatenate([ds["Q"] for ds in sets])
        rows += pipeline_rows(f"near-duplicates {args.dup_rows:,}", dup, qv, None, " (100 real queries)")
        print("## The default search pipeline: tiers and rescoring modes (k = 10)\n")
        print(fmt_pipeline(rows) + "\n", flush=True)
        titles = [t if t else "untitled" for ds in sets for t in ds["titles"]]
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            sz = size_rows(base, titles, Path(tmp))
        print("## Index bytes on disk (codes Parquet + tier + binarizer + meta)\n")
        print("| rows | tier | bytes | bytes / row | / float32 |\n|---|---|---|---|---|")
        for r in sz:
            print(f"| {r['n']:,} | {r['tier']} | {r['bytes']:,} | {r['per_row']:.0f} | {r['ratio']:.3f} |")
        print(flush=True)
        print("## Hybrid search (BM25 over the same texts + vectors, k = 10)\n")
        print("| dataset | method | nDCG@10 | Recall@10 |\n|---|---|---|---|")
        for ds in sets:
            for r in hybrid_rows(ds):
                print(f"| {r['dataset']} | {r['method']} | {r['ndcg']:.4f} | {r['recall']:.4f} |")
        print(flush=True)
    if not args.skip_speed:
        base = np.concatenate([ds["C"] for ds in sets])
        titles = [t for ds in sets for t in ds["titles"]]
        titles = [t if t else "untitled" for t in titles]
        qv = np.concatenate([ds["Q"] for ds in sets])
        qt = [t for ds in sets for t in ds["query_texts"]]
        res = []
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            for n in sizes:
                res.append(speed(n, base, titles, qv, qt, nq, Path(tmp)))
                print(f"(speed at {n:,} rows done)", file=sys.stderr, flush=True)
        print(f"## Speed (one query, median of {nq}; 1 faiss thread; connection: {res[0]['connection']})\n")
        print(fmt_speed(res) + "\n", flush=True)
    if not args.skip_embed:
        ms = sets[1]
        texts = [json.loads(line) for line in open(DATA / "msmarco" / "corpus.jsonl", encoding="utf-8")]
        n_texts = args.embed_texts or (100 if args.quick else 300)
        sample = [(d.get("title", "") + " " + d["text"]).strip() for d in texts[:n_texts]]
        print("## Embedding throughput (MS MARCO passages, batch 64)\n")
        print("| backend | texts | seconds | sentences/s |\n|---|---|---|---|")
        tp = throughput(sample)
        for r in tp:
            print(f"| {r['backend']} | {r['texts']} | {r['seconds']:.1f} | {r['per_s']:.1f} |")
        print(f"\nspeed-up torch-int8 / torch: {tp[1]['per_s'] / tp[0]['per_s']:.2f}x")
        q8 = int8_quality(ms)
        if q8:
            print(f"\nint8 backend quality ({q8['dataset']}, 5,000 passages): "
                  f"nDCG@10 {q8['ndcg_int8']:.4f} vs "
                  f"{q8['ndcg_fp32']:.4f} float32 ({q8['ndcg_int8'] / q8['ndcg_fp32']:.3f}x); mean cosine "
                  f"between the two backends' vectors {q8['mean_cos']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
