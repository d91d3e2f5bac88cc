"""lakeql vector search side by side with what users would pick instead (issue 14, item 11).

    /work/venv/bin/python benchmarks/compare_vectors.py                  # 1M vectors, 100 queries
    /work/venv/bin/python benchmarks/compare_vectors.py --n 20000 --vss-rows 5000   # a quick check

Data: the 10,000 real MiniLM-L6 vectors of ../shared/data/ir (DBpedia + MS MARCO corpora, cached in
benchmarks/_work by ``benchmarks/vectors.py``) re-sampled to ``--n`` rows with Gaussian noise (sd 0.01
per dimension, re-normalized; clusters of near-duplicates), and their 100 real query vectors. Both are
saved once as .npy in ``--cache`` (default /tmp/lakeql-compare) with the exact top-10 of every query
(faiss ``IndexFlatIP``), so every system reads the very same vectors.

Systems (one row each; recall@10 against the exact top-10, p50/p95 latency of one query at a time,
build time, index bytes):

* lakeql default index (rabitq codes + int8 tier, adaptive rescoring) built through ``write_index``
  (the path ``lakeql index --embed`` takes after encoding), searched through SQL (whole rows of a
  (id, title) table, and (rowid, score) only) and in-process (``lakeql.vectors.search.search``);
* faiss (this venv): ``IndexFlatIP`` (exact), ``IndexBinaryFlat`` on sign bits (alone, and with the
  best 40 rescored in float32), ``IndexHNSWFlat``; searches on 1 thread, builds on all cores;
* LanceDB (``--lance-venv``, a subprocess): exhaustive (no index), ``IVF_RQ`` (RaBitQ) and ``IVF_PQ``,
  each with and without ``refine_factor``;
* DuckDB 1.5.5 (``--vss-venv``, a subprocess): exhaustive ``array_cosine_similarity`` over an in-memory
  table (``--duckdb-queries`` queries: seconds each), and the ``vss`` extension's HNSW index on the first
  ``--vss-rows`` rows (its build is too slow for 1M rows here), loaded offline from the PyPI
  ``duckdb-extension-vss`` package's bundled file.

A missing side venv gives a "skipped: <why>" row. Other venvs read the cached .npy (DuckDB a Parquet
copy of it, written once here); this script runs in them with ``--worker lance|duckdb`` and imports
nothing but numpy and that system there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
K = 10
D = 384


# ----------------------------------------------------------------------------------------- helpers
def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def lat_stats(ts: list[float]) -> tuple[float, float]:
    """(p50, p95) in ms."""
    ms = np.asarray(ts) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def row(
    system: str, config: str, rows: int, ids=None, gt=None, ts=None, build=None, nbytes=None, note: str = ""
) -> dict:
    out = {
        "system": system,
        "config": config,
        "rows": rows,
        "recall": None,
        "p50": None,
        "p95": None,
        "build_s": build,
        "bytes": nbytes,
        "note": note,
        "queries": 0,
    }
    if ids is not None and gt is not None:
        out["recall"] = recall(ids, gt[: len(ids)])
        out["queries"] = len(ids)
    if ts:
        out["p50"], out["p95"] = lat_stats(ts)
    return out


def recall(ids, gt) -> float:
    return float(
        np.mean([len(set(map(int, a[:K])) & set(map(int, b[:K]))) / K for a, b in zip(ids, gt, strict=True)])
    )


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ----------------------------------------------------------------------------------------- data
IR = HERE.parent / ".." / "shared" / "data" / "ir"


def encode_base(cache: Path, per_set: int) -> None:
    """MiniLM vectors (lakeql's onnx encoder) of the first ``per_set`` documents of each IR corpus
    (title + text, cut to 400 characters to keep encoding within minutes on a loaded 2-core machine) and
    of the 100 real queries."""
    from lakeql.embedding import encode, load_model

    ir = IR if IR.exists() else Path("/work/shared/data/ir")  # a git worktree outside the project root
    docs, titles, qs = [], [], []
    for name in ("dbpedia", "msmarco"):
        with open(ir / name / "corpus.jsonl", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= per_set:
                    break
                d = json.loads(line)
                docs.append((d.get("title", "") + " " + d["text"]).strip()[:400])
                titles.append(d.get("title") or d["text"][:60])
        with open(ir / name / "queries.jsonl", encoding="utf-8") as f:
            qs += [json.loads(line)["text"] for line in f]
    m = load_model(None, "onnx-int8")  # the int8 ONNX export of MiniLM: ~3.5x faster than torch here
    Q = encode(qs, m)
    C = np.concatenate([encode(docs[s : s + 500], m, batch_size=32) for s in range(0, len(docs), 500)])
    np.save(cache / "base_queries.npy", Q.astype(np.float32))
    np.save(cache / "base_corpus.npy", C.astype(np.float32))
    (cache / "base_titles.json").write_text(json.dumps(titles))


def prepare(cache: Path, n: int, vss_rows: int, per_set: int) -> dict:
    """Cached vectors, queries, titles and (once faiss ran) the exact top-10 of every query."""
    cache.mkdir(parents=True, exist_ok=True)
    vpath, qpath, spath = cache / f"vecs_{n}.npy", cache / "base_queries.npy", cache / f"src_{n}.npy"
    gpath, tpath = cache / f"gt_{n}.npy", cache / "base_titles.json"
    if not (qpath.exists() and tpath.exists() and (cache / "base_corpus.npy").exists()):
        encode_base(cache, per_set)
    if not (vpath.exists() and spath.exists()):
        sys.path.insert(0, str(HERE))
        from vectors import synth

        src, vecs = synth(np.load(cache / "base_corpus.npy"), n)  # noise 0.01, seed 0, re-normalized
        np.save(spath, src)
        np.save(str(vpath) + ".tmp.npy", vecs)
        os.replace(str(vpath) + ".tmp.npy", vpath)
        del vecs
    out = {
        "vecs": np.load(vpath, mmap_mode="r"),
        "Q": np.load(qpath),
        "src": np.load(spath),
        "titles": json.loads(tpath.read_text()),
        "vpath": vpath,
        "qpath": qpath,
        "gpath": gpath,
        "gt": np.load(gpath) if gpath.exists() else None,
    }
    sub_gt = cache / f"gt_{n}_first{vss_rows}.npy"
    if not sub_gt.exists():
        sims = out["Q"] @ np.asarray(out["vecs"][:vss_rows]).T
        np.save(sub_gt, np.argsort(-sims, axis=1, kind="stable")[:, :K])
    out["sub_rows"], out["gt_sub"] = vss_rows, np.load(sub_gt)
    return out


def exact_gt(data: dict) -> np.ndarray:
    """The exact top-10 (numpy, in blocks) when faiss has not run yet in this cache."""
    if data["gt"] is None:
        vecs, Q = data["vecs"], data["Q"]
        best_s = np.full((len(Q), 0), -np.inf, np.float32)
        best_i = np.zeros((len(Q), 0), np.int64)
        for s in range(0, len(vecs), 100_000):
            sims = Q @ np.asarray(vecs[s : s + 100_000]).T
            top = np.argsort(-sims, axis=1, kind="stable")[:, :K]
            best_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], 1)
            best_i = np.concatenate([best_i, top + s], 1)
            o = np.argsort(-best_s, axis=1, kind="stable")[:, :K]
            best_s, best_i = np.take_along_axis(best_s, o, 1), np.take_along_axis(best_i, o, 1)
        np.save(str(data["gpath"]) + ".tmp.npy", best_i)
        os.replace(str(data["gpath"]) + ".tmp.npy", data["gpath"])
        data["gt"] = best_i
    return data["gt"]


# ----------------------------------------------------------------------------------------- faiss
def run_faiss(data: dict, hnsw_m: int, ef_search: tuple[int, ...]) -> list[dict]:
    import faiss

    vecs, Q = data["vecs"], data["Q"]
    n = len(vecs)
    rows = []
    # Exact: also the ground truth of every other row.
    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(D)
    for s in range(0, n, 200_000):
        flat.add(np.ascontiguousarray(vecs[s : s + 200_000]))
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    ids, ts = [], []
    for q in Q:
        t = time.perf_counter()
        _, i = flat.search(q[None, :], K)
        ts.append(time.perf_counter() - t)
        ids.append(i[0])
    gt = exact_gt(data)
    rows.append(row("faiss", "IndexFlatIP (exact, ground truth)", n, ids, gt, ts, build, n * D * 4))
    del flat
    # Binary: sign bits, Hamming.
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    bidx = faiss.IndexBinaryFlat(D)
    for s in range(0, n, 200_000):
        bidx.add(np.packbits(np.asarray(vecs[s : s + 200_000]) > 0, axis=1, bitorder="little"))
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    raw_ids, raw_ts, re_ids, re_ts = [], [], [], []
    for q in Q:
        qc = np.packbits(q[None, :] > 0, axis=1, bitorder="little")
        t = time.perf_counter()
        _, i = bidx.search(qc, K)
        raw_ts.append(time.perf_counter() - t)
        raw_ids.append(i[0])
        t = time.perf_counter()
        _, i = bidx.search(qc, 4 * K)
        cand = np.sort(i[0])
        sc = np.asarray(vecs[cand]) @ q
        re_ids.append(cand[np.argsort(-sc, kind="stable")[:K]])
        re_ts.append(time.perf_counter() - t)
    rows.append(
        row("faiss", "IndexBinaryFlat, sign bits, Hamming top 10", n, raw_ids, gt, raw_ts, build, n * D // 8)
    )
    rows.append(
        row(
            "faiss",
            "IndexBinaryFlat top 40 + float32 rescoring",
            n,
            re_ids,
            gt,
            re_ts,
            build,
            n * D // 8 + n * D * 4,
            "rescoring reads the float32 vectors (in RAM here)",
        )
    )
    del bidx
    # HNSW, on the same first rows as DuckDB vss (a graph build of 1M rows is too slow on this machine).
    m, gt = data["sub_rows"], data["gt_sub"]
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(D, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    for s in range(0, m, 100_000):
        hnsw.add(np.ascontiguousarray(vecs[s : min(s + 100_000, m)]))
    build = time.perf_counter() - t0
    tmpf = data["vpath"].parent / "hnsw.faiss"
    faiss.write_index(hnsw, str(tmpf))
    nbytes = tmpf.stat().st_size
    tmpf.unlink()
    faiss.omp_set_num_threads(1)
    for ef in ef_search:
        hnsw.hnsw.efSearch = ef
        ids, ts = [], []
        for q in Q:
            t = time.perf_counter()
            _, i = hnsw.search(q[None, :], K)
            ts.append(time.perf_counter() - t)
            ids.append(i[0])
        rows.append(
            row(
                "faiss",
                f"IndexHNSWFlat M={hnsw_m}, efConstruction=40, efSearch={ef}, on the first {m:,} rows",
                m,
                ids,
                gt,
                ts,
                build if ef == ef_search[0] else None,
                nbytes if ef == ef_search[0] else None,
                f"recall vs exact top-10 of those {m:,} rows",
            )
        )
    del hnsw
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return rows


# ----------------------------------------------------------------------------------------- lakeql

def index_titles(lake: Path, titles, vecs: np.ndarray, params: dict) -> tuple:
    """(Re)make ``lake`` as one table ``bench.titles`` (id, title: one zstd Parquet file, row groups of
    122,880) and write the embed index of its title column from ``vecs`` with ``params``, as the
    default pipeline stores it: (store, index entry, seconds the index write took)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.catalog import Catalog
    from lakeql.lake import discover
    from lakeql.store import Store
    from lakeql.vectors.builder import write_index

    n = len(vecs)
    shutil.rmtree(lake, ignore_errors=True)
    (lake / "bench").mkdir(parents=True)
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "title": pa.array(titles)})
    pq.write_table(table, lake / "bench" / "titles.parquet", row_group_size=122_880, compression="zstd")
    lk = discover(lake)
    store = Store.for_lake(lk, lake / ".lakeql")
    store.ensure_writable()
    Catalog.build(lk, store, refresh=True)
    t0 = time.perf_counter()
    entry = write_index(store, lk.tables["bench.titles"], "title", np.arange(n, dtype=np.int64), vecs, params)
    return store, entry, time.perf_counter() - t0

def run_lakeql(data: dict, cache: Path) -> list[dict]:
    from lakeql.connection import open_lake
    from lakeql.vectors.search import search

    vecs, Q, gt = data["vecs"], data["Q"], data["gt"]
    n = len(vecs)
    lake = cache / f"lakeql_lake_{n}"
    titles = data["titles"]
    params = {"model": "all-MiniLM-L6-v2", "method": "rabitq", "backend": "torch", "tier": "int8",
              "format": 1}
    full = np.asarray(vecs)
    store, entry, build = index_titles(lake, [titles[i] for i in data["src"]], full, params)
    del full
    nbytes = dir_bytes(store.root / entry.path)
    con, ctx = open_lake(lake, index_dir=store.root, capabilities=["vectors"])
    wide = "SELECT id, score FROM semantic_search_vector('bench.titles', 'title', ?::FLOAT[], k := 10)"
    rid = (
        "SELECT * FROM (SELECT unnest(semantic_search_vector_impl('bench.titles', 'title', ?::FLOAT[], "
        "10, 4, NULL), recursive := true))"
    )
    con.execute(wide, [Q[0].tolist()]).fetchall()  # warm: loads the code store once
    con.execute(rid, [Q[0].tolist()]).fetchall()
    out = []
    for label, sql in (
        ("semantic_search_vector, whole rows of an (id, title) table, SQL", wide),
        ("(rowid, score) through SQL", rid),
    ):
        ids, ts = [], []
        for q in Q:
            t = time.perf_counter()
            res = con.execute(sql, [q.tolist()]).fetchall()
            ts.append(time.perf_counter() - t)
            ids.append([r[0] for r in res])
        out.append(
            row(
                "lakeql",
                f"default (rabitq + int8 tier, adaptive): {label}",
                n,
                ids,
                gt,
                ts,
                build if not out else None,
                nbytes if not out else None,
            )
        )
    from lakeql.vectors.codes import CodeIndex

    table = ctx.table("bench.titles")  # the index the SQL above searched, from the connection's cache
    idx = ctx.load_index("embed", table, "title", lambda path, _e: CodeIndex.load(path, "bench.titles.title"))
    ids, ts, resc = [], [], []
    for q in Q:
        st: dict = {}
        t = time.perf_counter()
        r, _ = search(idx, q, K, 4, stats=st)
        ts.append(time.perf_counter() - t)
        ids.append(r)
        resc.append(st.get("rescored", 0))
    out.append(
        row(
            "lakeql",
            "default: scan + rescoring in-process (Python)",
            n,
            ids,
            gt,
            ts,
            note=(f"rows rescored / query p50 {np.median(resc):.0f}, p95 {np.percentile(resc, 95):.0f}"),
        )
    )
    con.close()
    shutil.rmtree(lake, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------------------- workers
def worker_lance(args) -> list[dict]:
    """Runs inside the LanceDB venv."""
    import lancedb
    import pyarrow as pa

    vecs = np.load(args.vecs, mmap_mode="r")
    Q = np.load(args.queries)
    gt = np.load(args.gt)
    n = len(vecs)
    root = Path(args.cache) / "lancedb"
    shutil.rmtree(root, ignore_errors=True)
    db = lancedb.connect(str(root))

    def batches():
        for s in range(0, n, 100_000):
            v = np.ascontiguousarray(vecs[s : s + 100_000])
            yield pa.record_batch(
                [
                    pa.array(np.arange(s, s + len(v), dtype=np.int64)),
                    pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), D),
                ],
                names=["id", "vector"],
            )

    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), D))])
    t0 = time.perf_counter()
    tbl = db.create_table("vecs", data=batches(), schema=schema)
    write = time.perf_counter() - t0
    tdir = next(root.glob("vecs*"))
    data_bytes = dir_bytes(tdir)

    def run(config, build=None, nbytes=None, note="", nq=None, **kw):
        ids, ts = [], []
        for q in Q[: nq or len(Q)]:
            t = time.perf_counter()
            s = tbl.search(q, vector_column_name="vector").distance_type("dot").limit(K).select(["id"])
            if kw.get("exhaustive"):
                s = s.bypass_vector_index()
            if kw.get("nprobes"):
                s = s.nprobes(kw["nprobes"])
            if kw.get("refine"):
                s = s.refine_factor(kw["refine"])
            res = s.to_arrow()
            ts.append(time.perf_counter() - t)
            ids.append(res.column("id").to_pylist())
        return row("LanceDB", config, n, ids, gt, ts, build, nbytes, note)

    steps = args.lance_steps.split(",")
    out = _Partial(Path(args.cache) / "lance_partial.json")  # rows so far, kept if a later step dies
    if "exhaustive" in steps:
        out.append(
            run(
                "exhaustive (no index, dot)",
                write,
                data_bytes,
                "build = writing the Lance table",
                exhaustive=True,
            )
        )
    for itype, extra in (("IVF_RQ", {"num_bits": 1}), ("IVF_PQ", {})):
        if itype not in steps:
            continue
        before = dir_bytes(tdir)
        t0 = time.perf_counter()
        try:
            tbl.create_index(
                metric="dot", vector_column_name="vector", index_type=itype, replace=True, **extra
            )
        except Exception as exc:  # noqa: BLE001 - report what this lancedb cannot do, go on
            out.append(row("LanceDB", itype, n, note=f"failed: {type(exc).__name__}: {str(exc)[:160]}"))
            continue
        build = time.perf_counter() - t0
        nbytes = max(dir_bytes(tdir) - before, 0)
        idx_dir = tdir / "_indices"
        if idx_dir.exists():
            nbytes = dir_bytes(idx_dir) if itype == "IVF_RQ" else nbytes
        out.append(
            run(
                f"{itype} default nprobes, no refine",
                build,
                nbytes,
                "index bytes: _indices/; refine reads the table's float32 vectors",
            )
        )
        out.append(run(f"{itype} default nprobes, refine_factor 40", refine=40))
        out.append(run(f"{itype} nprobes 50, refine_factor 40", nprobes=50, refine=40))
    shutil.rmtree(root, ignore_errors=True)
    return list(out)


class _Partial(list):
    """A list of rows that also rewrites ``path`` (JSON) on every append."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def append(self, item) -> None:
        super().append(item)
        self.path.write_text(json.dumps(list(self)))


def vss_ext(name: str) -> str:
    """The extension file that the PyPI ``duckdb-extension-<name>`` package ships (loaded offline)."""
    import importlib

    import duckdb

    mod = importlib.import_module(f"duckdb_extension_{name}")
    base = Path(next(iter(mod.__path__)))
    files = sorted(base.glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension")) or sorted(
        base.rglob(f"{name}.duckdb_extension")
    )
    if not files:
        raise FileNotFoundError(f"no {name}.duckdb_extension under {base}")
    return str(files[0])


def literal(q: np.ndarray) -> str:
    """The query as a constant array: vss's HNSW needs a constant, and binding a 384-float list as a
    parameter costs ~0.4 s per query in the duckdb 1.5.5 Python client (measured; 2.0.1 does not)."""
    return "[" + ",".join(f"{x:.9g}" for x in q.tolist()) + f"]::FLOAT[{D}]"


def worker_duckdb(args) -> list[dict]:
    """Runs inside the DuckDB 1.5.5 + vss venv."""
    import duckdb

    Q = np.load(args.queries)
    gt = np.load(args.gt)
    gt_sub = np.load(args.gt_sub)
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute("CREATE TABLE vecs AS SELECT id, vec::FLOAT[384] AS vec FROM read_parquet(?)", [args.parquet])
    load = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM vecs").fetchone()[0]
    ids, ts = [], []
    for q in Q[: args.duckdb_queries]:
        t = time.perf_counter()
        sql = f"SELECT id FROM vecs ORDER BY array_cosine_similarity(vec, {literal(q)}) DESC LIMIT 10"
        ids.append([r[0] for r in con.execute(sql).fetchall()])
        ts.append(time.perf_counter() - t)
    out = [
        row(
            "DuckDB",
            "exhaustive ORDER BY array_cosine_similarity LIMIT 10 (in-memory table)",
            n,
            ids,
            gt,
            ts,
            load,
            n * D * 4,
            f"build = loading the Parquet into memory; {len(ids)} of {len(Q)} queries (seconds each)",
        )
    ]
    try:
        con.execute(f"LOAD '{vss_ext('vss')}'")
    except Exception as exc:  # noqa: BLE001
        return out + [row("DuckDB vss", "HNSW", args.vss_rows, note=f"skipped: {exc}")]
    m = args.vss_rows
    con.execute("CREATE TABLE sub AS SELECT * FROM vecs WHERE id < ? ORDER BY id", [m])
    con.execute("DROP TABLE vecs")
    t0 = time.perf_counter()
    con.execute("CREATE INDEX sub_hnsw ON sub USING HNSW (vec) WITH (metric = 'cosine')")
    build = time.perf_counter() - t0
    try:
        info = con.execute("SELECT approx_memory_usage FROM pragma_hnsw_index_info()").fetchone()[0]
    except Exception:  # noqa: BLE001
        info = None
    q_sql = "SELECT id FROM sub ORDER BY array_cosine_distance(vec, {}) LIMIT 10"
    plan = "\n".join(r[1] for r in con.execute("EXPLAIN " + q_sql.format(literal(Q[0]))).fetchall())
    ids, ts = [], []
    for q in Q:
        t = time.perf_counter()
        ids.append([r[0] for r in con.execute(q_sql.format(literal(q))).fetchall()])
        ts.append(time.perf_counter() - t)
    used = "HNSW_INDEX_SCAN" in plan
    out.append(
        row(
            "DuckDB vss",
            f"HNSW (metric cosine, defaults M=16, ef_construction=128, ef_search=64) on the first {m:,} rows",
            m,
            ids,
            gt_sub,
            ts,
            build,
            info,
            f"recall vs exact top-10 of those {m:,} rows; index scan in plan: {used}; bytes = "
            "approx_memory_usage",
        )
    )
    return out


def side(venv: Path, worker: str, argv: list[str], label: str) -> list[dict]:
    from sidevenv import run_worker

    t0 = time.perf_counter()
    rows, why = run_worker(venv, __file__, worker, argv)
    if rows is None:
        kept = []
        if "--cache" in argv and why.startswith("skipped: worker failed"):
            done = Path(argv[argv.index("--cache") + 1]) / f"{worker}_partial.json"  # steps that finished
            kept = json.loads(done.read_text()) if done.exists() else []
        return kept + [row(label, "-", 0, note=why)]
    print(f"({label} worker: {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return rows


# ----------------------------------------------------------------------------------------- report
def fmt(rows: list[dict]) -> str:
    lines = [
        "| system | config | rows | queries | recall@10 vs exact | p50 ms | p95 ms | build s | index bytes "
        "| bytes / float32 | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def f(v, spec):
            return "-" if v is None else format(v, spec)

        ratio = f"{r['bytes'] / (r['rows'] * D * 4):.3f}x" if r["bytes"] and r["rows"] else "-"
        lines.append(
            f"| {r['system']} | {r['config']} | {r['rows']:,} | {r['queries']} | {f(r['recall'], '.3f')} "
            f"| {f(r['p50'], '.1f')} | {f(r['p95'], '.1f')} | {f(r['build_s'], '.1f')} | "
            f"{f(r['bytes'], ',')} | {ratio} | {r['note']} |"
        )
    return "\n".join(lines)


def write_parquet(data: dict, pqf: Path) -> None:
    """The same vectors as Parquet (id, vec FLOAT[384]) for DuckDB, whose venv has no pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    w = None
    n = len(data["vecs"])
    for s in range(0, n, 100_000):
        v = np.ascontiguousarray(data["vecs"][s : s + 100_000])
        t = pa.table(
            {
                "id": pa.array(np.arange(s, s + len(v), dtype=np.int64)),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), D),
            }
        )
        w = w or pq.ParquetWriter(str(pqf) + ".tmp", t.schema, compression="zstd")
        w.write_table(t, row_group_size=100_000)
    w.close()
    os.replace(str(pqf) + ".tmp", pqf)


ORDER = ("faiss", "lakeql", "lance", "duckdb")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1M)")
    ap.add_argument("--cache", default="/tmp/lakeql-compare", help="where the shared .npy files live")
    ap.add_argument("--per-set", type=int, default=2500, help="real documents encoded per IR corpus")
    ap.add_argument(
        "--vss-rows", type=int, default=50_000, help="rows the HNSW graphs (vss, faiss) are built on"
    )
    ap.add_argument("--duckdb-queries", type=int, default=10, help="queries timed for DuckDB's full scan")
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--lance-venv", default="/work/venv-lance")
    ap.add_argument("--vss-venv", default="/work/venv-vss")
    ap.add_argument(
        "--systems",
        default=",".join(ORDER),
        help="comma-separated subset to run now; the table also shows the rows that earlier "
        "runs saved in --cache for the same --n (so systems can run in separate processes)",
    )
    ap.add_argument("--out", help="also write the Markdown table here")
    ap.add_argument("--worker", choices=("lance", "duckdb"), help=argparse.SUPPRESS)
    ap.add_argument("--vecs", help=argparse.SUPPRESS)
    ap.add_argument("--queries", help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    ap.add_argument("--gt-sub", help=argparse.SUPPRESS)
    ap.add_argument("--parquet", help=argparse.SUPPRESS)
    ap.add_argument(
        "--lance-steps",
        default="exhaustive,IVF_RQ,IVF_PQ",
        help="LanceDB steps to run (the exhaustive one took 7.3 s a query at 100k rows under load 40)",
    )
    a = ap.parse_args(argv)
    if a.worker:
        res = worker_lance(a) if a.worker == "lance" else worker_duckdb(a)
        print(json.dumps(res))
        return 0
    os.environ.setdefault("LAKEQL_QUIET", "1")
    systems = [x for x in a.systems.split(",") if x]
    unknown = set(systems) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown --systems {sorted(unknown)}: choose from {', '.join(ORDER)}")
    cache = Path(a.cache)
    data = prepare(cache, a.n, a.vss_rows, a.per_set)
    exact_gt(data)
    gt_args = [
        "--vecs",
        str(data["vpath"]),
        "--queries",
        str(data["qpath"]),
        "--gt",
        str(data["gpath"]),
        "--cache",
        str(cache),
    ]
    for name in systems:
        load0, t0 = uptime(), time.perf_counter()
        if name == "faiss":
            rows = run_faiss(data, a.hnsw_m, (64, 256))
        elif name == "lakeql":
            rows = run_lakeql(data, cache)
        elif name == "lance":
            rows = side(Path(a.lance_venv), "lance", gt_args + ["--lance-steps", a.lance_steps], "LanceDB")
        else:
            pqf = cache / f"vecs_{a.n}.parquet"
            if not pqf.exists() and (Path(a.vss_venv) / "bin" / "python").exists():
                write_parquet(data, pqf)
            rows = side(
                Path(a.vss_venv),
                "duckdb",
                gt_args
                + [
                    "--parquet",
                    str(pqf),
                    "--gt-sub",
                    str(cache / f"gt_{a.n}_first{a.vss_rows}.npy"),
                    "--vss-rows",
                    str(a.vss_rows),
                    "--duckdb-queries",
                    str(a.duckdb_queries),
                ],
                "DuckDB",
            )
        stamp = {
            "load_before": load0,
            "load_after": uptime(),
            "seconds": round(time.perf_counter() - t0),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        (cache / f"rows_{a.n}_{name}.json").write_text(json.dumps({"stamp": stamp, "rows": rows}))
        print(f"({name}: {stamp})\n{fmt(rows)}", file=sys.stderr, flush=True)
    import duckdb
    import faiss

    rows, stamps = [], []
    for name in ORDER:
        f = cache / f"rows_{a.n}_{name}.json"
        if f.exists():
            saved = json.loads(f.read_text())
            rows += saved["rows"]
            st = saved["stamp"]
            stamps.append(
                f"{name} finished {st['when']}, {st['seconds']} s, "
                f"load {st['load_before']} -> {st['load_after']}"
            )
    head = (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"faiss {faiss.__version__}, duckdb (lakeql) {duckdb.__version__}; {a.n:,} vectors x {D} from "
        f"{len(np.load(cache / 'base_corpus.npy', mmap_mode='r')):,} real MiniLM vectors (+ noise 0.01), "
        f"{len(data['Q'])} real queries, k = {K}.\nRuns (load average 1/5/15 min before -> after):\n"
        + "\n".join(f"- {x}" for x in stamps)
    )
    report = head + "\n\n" + fmt(rows)
    print(report)
    if a.out:
        Path(a.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
