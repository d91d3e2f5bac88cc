"""Where the time of ``semantic_search`` through SQL goes, and the optional ANN first stage (issue 14
items 8-10).

    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_sql_ann.py sql  [--rows 1000000] [--tmp DIR]
        [--base FOLDER]
    PYTHONPATH=. /work/venv/bin/python benchmarks/vectors_sql_ann.py ann10m [--rows 10000000]

Vectors: real MiniLM embeddings of 3,000 passages of ../shared/data/ir (msmarco + dbpedia, first 1,500
each, title + text cut to 400 characters) re-sampled with Gaussian noise (sd 0.01 a dimension) and
re-normalized (``benchmarks/vectors.py: synth``): clusters of near-duplicates, for latency only. Queries:
the 100 real queries of the two sets, embedded by the same model. Embeddings are cached in
benchmarks/_work/ (encoding 3,000 passages took 18 min on the loaded machine).

``--base FOLDER``: base_corpus.npy, base_queries.npy and base_titles.json (a list of titles) already encoded
there (e.g. /tmp/lakeql-compare) instead of benchmarks/_work. ``sql`` reuses the lake and indexes a
finished run left in ``--tmp``.

``sql``: a 1M-row lake (bench.titles: id, title; bench.docs: id, title, vec FLOAT[384]) indexed through
``write_index`` (titles also with ``--embed-ann`` lists). Per query, interleaved (so machine load hits
every method alike), median over the queries: faiss IndexBinaryFlat on sign codes (k = 40, 1 thread: the
raw binary scan), the first-stage kernel alone (the blocked scan ``search`` runs), the in-process
``search()``, the connection's ``Searcher`` call (name resolution + search + hit list), the SQL floor
(``SELECT 1``, binding the query vector), a trivial Python UDF through SQL (plumbing), the (rowid, score)
SQL call, whole rows of the narrow and the wide table, and fetching each query's own 10 hits by a join.
Wall and CPU time (``time.process_time``: every thread of the process, DuckDB's included) per method, CPU
ratios to the faiss scan of the same run.

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


def sign_flat(vecs: np.ndarray):
    """(the ``sign`` binarizer, a faiss ``IndexBinaryFlat`` over the sign codes of ``vecs``): the raw binary
    scan lakeql's search is measured against."""
    import faiss

    from lakeql.vectors import binarizers

    sign = binarizers.get("sign", vecs.shape[1])
    flat = faiss.IndexBinaryFlat(vecs.shape[1])
    flat.add(sign.encode(vecs)[0])
    return sign, flat


def store_code_index(folder: Path, meta: dict, binz):
    """The store's :class:`~lakeql.vectors.codes.CodeIndex` as a connection's first search loads it: every
    code and scan factor in memory, the int8 rescoring tier memory-mapped (``meta`` says its rows)."""
    from lakeql.vectors import kernels
    from lakeql.vectors.codes import CodeIndex

    fac = {"factor": np.load(folder / "factor.npy"), "add": np.load(folder / "add.npy")}
    words, factors = kernels.scan_inputs(np.load(folder / "packed.npy"), fac, binz.scan)
    factors["errc"] = binz.error_coefficients(factors)
    n = int(meta["rows"])
    return CodeIndex(
        folder,
        meta,
        np.arange(n),
        words,
        factors,
        np.load(folder / "rescore.npy", mmap_mode="r"),
        np.load(folder / "scales.npy"),
        binz,
    )


def base_vectors(folder: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(3,000 passage vectors, 100 query vectors, passage titles), encoded once and cached; ``folder``:
    read already encoded base_corpus.npy / base_queries.npy (and base_titles.json, a list of titles, when
    there) from there instead."""
    if folder is not None:
        tp = folder / "base_titles.json"
        titles = [str(t)[:60] for t in json.loads(tp.read_text())] if tp.exists() else []
        return np.load(folder / "base_corpus.npy"), np.load(folder / "base_queries.npy"), titles
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


def sql_run(n: int, nq: int, root: Path, base_folder: Path | None = None) -> dict:
    import duckdb
    import faiss
    import vectors as bv

    from lakeql.connection import open_lake
    from lakeql.vectors import ann, binarizers
    from lakeql.vectors.builder import write_index
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    from lakeql.catalog import Catalog
    from lakeql.lake import discover
    from lakeql.store import Store

    base, Q, titles = base_vectors(base_folder)
    t0 = time.perf_counter()
    lake = root / f"lake{n}"
    done = root / f"lake{n}.done"  # a finished build in --tmp is reused
    if done.exists():
        vecs = bv.synth(base, n)[1]  # the same vectors (fixed seed)
        index_dir = lake / ".lakeql"
        t_ann_build = json.loads(done.read_text())["ann_build_s"]
    else:
        lake, vecs = bv.make_speed_lake(root, n, base, titles)
        index_dir = bv.index_speed_lake(lake, vecs, tables=("bench.docs",))
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
        done.write_text(json.dumps({"ann_build_s": t_ann_build}))
    print(
        f"lake + indexes in {time.perf_counter() - t0:.0f} s (titles index with ANN {t_ann_build:.0f} s)",
        flush=True,
    )
    lk = discover(lake)
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
    rowid_macro_sql = (
        "SELECT * FROM semantic_search_vector_rowids('bench.titles', 'title', ?::FLOAT[], k := 10, "
        "exact := true)"
    )
    rowid_macro_ann_sql = rowid_macro_sql.replace("exact := true", "exact := false")
    rows_sql = (
        "SELECT * FROM semantic_search_vector('bench.titles', 'title', ?::FLOAT[], k := 10, exact := true)"
    )
    rows_ann_sql = rows_sql.replace("exact := true", "exact := false")
    wide_sql = "SELECT * FROM semantic_search_vector('bench.docs', 'title', ?::FLOAT[], k := 10)"
    hits_of = [search(idx, q, 10, 4)[0].tolist() for q in qs]  # each query's own hits, fetched alone below
    qno = {id(q): i for i, q in enumerate(qs)}
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
            q, idx.words, idx.factors, 10, None, 20_000, blocked=idx.blocked()
        ),
        "in-process search() exhaustive": lambda q: search(idx, q, 10, 4),
        "in-process ANN search": lambda q: ann.search(idx, ivf, q, 10, 4),
        "Searcher.index() (name resolution, cache lookup)": lambda q: s.index("bench.titles", "title"),
        "Searcher.search_vector() exhaustive (Python, no SQL)": lambda q: s.search_vector(
            "bench.titles", "title", q.tolist(), 10, 4, None, True
        ),
        "SQL SELECT 1 (a query's floor)": lambda q: con.execute("SELECT 1").fetchall(),
        "SQL bind the FLOAT[] query vector": lambda q: con.execute(
            "SELECT len(?::FLOAT[])", par(q)
        ).fetchall(),
        "SQL trivial Python UDF + unnest": lambda q: con.execute(noop_sql, par(q)).fetchall(),
        "SQL (rowid, score) exhaustive, impl + recursive unnest (before)": lambda q: con.execute(
            rowid_sql, par(q)
        ).fetchall(),
        "SQL (rowid, score) ANN, impl + recursive unnest (before)": lambda q: con.execute(
            rowid_ann_sql, par(q)
        ).fetchall(),
        "SQL (rowid, score) exhaustive, semantic_search_vector_rowids": lambda q: con.execute(
            rowid_macro_sql, par(q)
        ).fetchall(),
        "SQL (rowid, score) ANN, semantic_search_vector_rowids": lambda q: con.execute(
            rowid_macro_ann_sql, par(q)
        ).fetchall(),
        "SQL fetch the query's 10 hits (join, narrow table)": lambda q: con.execute(
            fetch_sql, [hits_of[qno[id(q)]]]
        ).fetchall(),
        "SQL fetch the query's 10 hits, __rowid only": lambda q: con.execute(
            fetch_sql.replace("r.*", "r.__rowid"), [hits_of[qno[id(q)]]]
        ).fetchall(),
        "SQL fetch the query's 10 hits, title only": lambda q: con.execute(
            fetch_sql.replace("r.*", "r.title"), [hits_of[qno[id(q)]]]
        ).fetchall(),
        "SQL whole rows exhaustive (id, title)": lambda q: con.execute(rows_sql, par(q)).fetchall(),
        "SQL whole rows ANN (id, title)": lambda q: con.execute(rows_ann_sql, par(q)).fetchall(),
        "SQL whole rows, table with vec FLOAT[384]": lambda q: con.execute(wide_sql, par(q)).fetchall(),
    }
    wide_every = 5  # the wide fetch takes seconds: every 5th query only
    for fn in methods.values():
        fn(qs[0])  # warm: JIT, code store, metadata
    times: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    rec_ann, rec_ex, rec_ann_ex = [], [], []
    loads = [os.getloadavg()[0]]
    for i, q in enumerate(qs):
        for name, fn in methods.items():
            if name.endswith("FLOAT[384]") and i % wide_every:
                continue
            t, c = time.perf_counter(), time.process_time()
            fn(q)
            cpu[name].append(time.process_time() - c)
            times[name].append(time.perf_counter() - t)
        loads.append(os.getloadavg()[0])
        ex, _ = search(idx, q, 10, 4)
        an, _ = ann.search(idx, ivf, q, 10, 4)
        rec_ex.append(recall(ex, exact_top[i]))
        rec_ann.append(recall(an, exact_top[i]))
        rec_ann_ex.append(recall(an, ex))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    med_cpu = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
    raw = med_cpu["faiss binary (sign, k=40)"]
    st: dict = {}
    ann.search(idx, ivf, qs[0], 10, 4, stats=st)
    files = lk.tables["bench.titles"].paths
    import pyarrow.parquet as pq

    md = pq.ParquetFile(files[0]).metadata  # bench.titles is one file: row group of each hit
    starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
    touched = [len(set(np.searchsorted(starts, h, side="right").tolist())) for h in hits_of]
    con.close()
    return {
        "n": n,
        "queries": nq,
        "ms": med,
        "cpu_ms": med_cpu,
        "cpu_vs_faiss_binary": {k: v / raw for k, v in med_cpu.items()},
        "load_1min_during": [min(loads), max(loads)],
        "row_groups": md.num_row_groups,
        "row_groups_touched_by_hits_median": float(np.median(touched)),
        "load_after": load(),
        "ann_lists": ivf.nlist,
        "ann_build_s": t_ann_build,
        "probe": st,
        "recall_exhaustive_vs_float": float(np.mean(rec_ex)),
        "recall_ann_vs_float": float(np.mean(rec_ann)),
        "recall_ann_vs_exhaustive": float(np.mean(rec_ann_ex)),
    }


class _NpyAppender:
    """A ``.npy`` file of a known shape written block by block with plain sequential writes (the bytes
    ``np.save`` of the whole array writes)."""

    def __init__(self, path: Path, dtype, shape: tuple[int, ...]) -> None:
        self.dtype, self.shape, self.rows = np.dtype(dtype), tuple(shape), 0
        self.fh = open(path, "wb")  # noqa: SIM115 - closed by close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.fh, header)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, self.dtype)
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"a block of shape {block.shape} for {self.shape}")
        self.fh.write(block.reshape(-1).view(np.uint8))
        self.rows += block.shape[0]

    def close(self) -> None:
        self.fh.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.rows} rows written, {self.shape[0]} announced")


def ann10m_build(
    n: int, nq: int, folder: Path, chunk: int, lists: int | None, base: np.ndarray, Q: np.ndarray
) -> dict:
    """Codes of ``n`` re-sampled rows made chunk by chunk (floats of one chunk only in memory), the exact
    float top-10 of every query kept on the way, the IVF built; everything saved in ``folder``."""
    import pickle

    from lakeql.vectors import ann, binarizers, codes

    rng = np.random.default_rng(0)
    Qm = np.stack([Q[i % len(Q)] for i in range(nq)]).astype(np.float32)
    d = base.shape[1]

    def resample(m: int) -> np.ndarray:
        # float32 noise: float64 normals then a cast cost ~2x the time and 4x the memory of a chunk
        x = base[rng.integers(0, len(base), m)] + 0.01 * rng.standard_normal((m, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    t0 = time.perf_counter()
    binz = binarizers.get("rabitq", d).fit(resample(200_000))  # ITQ: 20k-row sample, 100 iterations
    t_fit = time.perf_counter() - t0
    print(f"  binarizer fitted in {t_fit:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    # on disk, not in RAM: appended chunk by chunk with plain writes, as lakeql's builder writes its files
    # (np.save), not through writable memory maps, which leave the page cache in 4 KB pages that cost a
    # reader's first touch far more (benchmarks/results/ann.md)
    tier = _NpyAppender(folder / "rescore.npy", np.uint8, (n, d))
    packed = _NpyAppender(folder / "packed.npy", np.uint8, (n, binz.nbytes))
    factor, add, scales = (
        _NpyAppender(folder / f"{k}.npy", np.float32, (n,)) for k in ("factor", "add", "scales")
    )
    best_s = np.full((nq, 10), -np.inf, np.float32)
    best_i = np.full((nq, 10), -1, np.int64)
    t0 = time.perf_counter()
    space = None
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = resample(m)
        p, f = binz.encode(x)
        packed.append(p)
        factor.append(f["factor"])
        add.append(f["add"])
        tv, sc, space = codes.quantize_tier(x, "int8", binz)
        tier.append(tv)
        scales.append(sc)
        sims = Qm @ x.T  # exact float top-10 of every query, merged with the best so far
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        allv = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], axis=1)
        alli = np.concatenate([best_i, top + s], axis=1)
        keep = np.argsort(-allv, axis=1, kind="stable")[:, :10]
        best_s, best_i = np.take_along_axis(allv, keep, 1), np.take_along_axis(alli, keep, 1)
        if (s // chunk) % 4 == 3 or s + m == n:
            print(
                f"  {s + m:,} rows coded ({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    del x, sims
    for arr in (tier, packed, factor, add, scales):
        arr.close()
    t_codes = time.perf_counter() - t0
    np.save(folder / "best_i.npy", best_i)
    (folder / "binarizer.pkl").write_bytes(pickle.dumps(binz))
    t1 = time.perf_counter()
    meta = ann.build(
        folder, np.load(folder / "packed.npy"), d, lists, tier=np.load(folder / "rescore.npy", mmap_mode="r")
    )
    t_build = time.perf_counter() - t1
    print(f"codes {t_codes:.0f} s, ANN lists {meta} in {t_build:.0f} s", flush=True)
    info = {
        "n": n,
        "space": space,
        "fit_s": t_fit,
        "codes_s": t_codes,
        "ann_build_s": t_build,
        "ann": meta,
        "load_after_build": load(),
    }
    (folder / "build.json").write_text(json.dumps(info))
    return info


def ann10m_measure(
    folder: Path,
    nq: int,
    Q: np.ndarray,
    nprobes: list[int],
    only_default: bool = False,
    fresh_maps: bool = False,
) -> dict:
    """Exhaustive vs ANN search in-process on the saved codes: wall and CPU ms per query (p50/p95),
    recall@10 vs exact float and vs the exhaustive search, per nprobe and adaptive. ``only_default``: the
    exhaustive search and the default ANN search only, each query twice (exhaustive, ANN, exhaustive,
    ANN): the first pass, where each method pays the page faults of mapping its tier rows for the first
    time in the process, is reported as ``first_touch``; the second (pages mapped, as in a long-running
    connection; the CPU caches flushed by the exhaustive scan in between) as the main figures.
    ``fresh_maps`` (with ``only_default``): both tiers are memory-mapped anew before each query's first
    pass, so that pass maps every tier page it reads (pages in the page cache, none mapped in the process:
    a query's first touch, however many queries ran before); minor page faults are counted per pass."""
    import copy
    import dataclasses
    import pickle

    import faiss

    from lakeql.vectors import ann
    from lakeql.vectors.search import search

    faiss.omp_set_num_threads(1)
    info = json.loads((folder / "build.json").read_text())
    n = info["n"]
    binz = pickle.loads((folder / "binarizer.pkl").read_bytes())
    d = binz.dim
    idx = store_code_index(folder, {"dim": d, "tier": "int8", "tier_space": info["space"], "rows": n}, binz)
    tier_copy_s = None
    if not (folder / ann.TIER_FILE).exists():  # a store built before the list-order tier: add it
        t0 = time.perf_counter()
        with np.load(folder / ann.FILE) as z:
            ann.write_tier(folder, np.load(folder / "rescore.npy", mmap_mode="r"), z["ids"])
        tier_copy_s = time.perf_counter() - t0
        print(f"  list-order tier written in {tier_copy_s:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    ivf = ann.ivf_of(idx, "bench.big.vec")
    # the same index without the list-order tier (as an index built before it existed): the table-order
    # tier is rescored; it shares the list-order codes (one copy in memory)
    old_idx = dataclasses.replace(idx, _pos={})
    old_ivf = ann.IVF(ivf.centroids, ivf.offsets, ivf.ids)
    ann.search(idx, ivf, Q[0], 10, 4)  # makes the list-order copy of the codes
    lo_old = copy.copy(idx._pos["ann_order"])
    lo_old.view = None
    old_idx._pos.update(ann=old_ivf, ann_order=lo_old)
    best_i = np.load(folder / "best_i.npy")
    qs = [Q[i % len(Q)] for i in range(nq)]
    methods = {
        "exhaustive": lambda q, st: search(idx, q, 10, 4, stats=st),
        "ann default, table-order tier": lambda q, st: ann.search(old_idx, old_ivf, q, 10, 4, stats=st),
    }
    if only_default:
        methods = {
            "exhaustive": methods["exhaustive"],
            "ann default": lambda q, st: ann.search(idx, ivf, q, 10, 4, stats=st),
        }
        nprobes = []
    for npr in nprobes:
        methods[f"ann nprobe {npr}"] = lambda q, st, npr=npr: ann.search(
            idx, ivf, q, 10, 4, nprobe=npr, stats=st, adaptive=False
        )
    for npr in nprobes:
        methods[f"ann adaptive nprobe {npr}"] = lambda q, st, npr=npr: ann.search(
            idx, ivf, q, 10, 4, nprobe=npr, stats=st
        )
    for fn in methods.values():
        fn(qs[0], {})  # warm: JIT, list order copy
    wall: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    res: dict[str, list[np.ndarray]] = {k: [] for k in methods}
    probed: dict[str, list[int]] = {k: [] for k in methods}
    rescored: dict[str, list[int]] = {k: [] for k in methods}
    widened = dict.fromkeys(methods, 0)
    loads = [os.getloadavg()[0]]
    cold_cpu: dict[str, list[float]] = {k: [] for k in methods}
    cold_wall: dict[str, list[float]] = {k: [] for k in methods}
    cold_faults: dict[str, list[int]] = {k: [] for k in methods}
    import resource

    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    for q in qs:  # interleaved per query: the machine's load hits every method alike
        if fresh_maps and only_default:  # new maps: no tier page of this process is mapped
            idx.tier = np.load(folder / "rescore.npy", mmap_mode="r")
            ivf.tier = idx._pos["ann_order"].view.tier = np.load(folder / ann.TIER_FILE, mmap_mode="r")
        if only_default:  # a first pass maps the query's tier pages (timed apart: "first touch")
            for name, fn in methods.items():
                f0 = minflt()
                t, c = time.perf_counter(), time.process_time()
                fn(q, {})
                cold_cpu[name].append(time.process_time() - c)
                cold_wall[name].append(time.perf_counter() - t)
                cold_faults[name].append(minflt() - f0)
        for name, fn in methods.items():
            st: dict = {}
            t, c = time.perf_counter(), time.process_time()
            r, _ = fn(q, st)
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - t)
            res[name].append(r)
            probed[name].append(int(st.get("probed_rows", n)))
            rescored[name].append(int(st.get("rescored", 0)))
            widened[name] += bool(st.get("widened"))
        loads.append(os.getloadavg()[0])

    out: dict = {
        "build": info,
        "tier_copy_s": tier_copy_s,
        "bytes": {
            name: (folder / name).stat().st_size
            for name in ("packed.npy", "rescore.npy", "scales.npy", ann.FILE, ann.TIER_FILE)
        },
        "queries": nq,
        "fresh_maps": fresh_maps,
        "load_1min_during": [min(loads), max(loads)],
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "methods": {},
    }
    for name in methods:
        w, c = 1000 * np.array(wall[name]), 1000 * np.array(cpu[name])
        rf = [recall(r, best_i[i]) for i, r in enumerate(res[name])]
        re = [recall(r, res["exhaustive"][i]) for i, r in enumerate(res[name])]
        out["methods"][name] = {
            "wall_p50": float(np.percentile(w, 50)),
            "wall_p95": float(np.percentile(w, 95)),
            "cpu_p50": float(np.percentile(c, 50)),
            "cpu_p95": float(np.percentile(c, 95)),
            "recall_vs_float": float(np.mean(rf)),
            "recall_vs_exhaustive": float(np.mean(re)),
            "worst_queries_vs_exhaustive": sorted((round(v, 2), i) for i, v in enumerate(re))[:3],
            "probed_rows_median": float(np.median(probed[name])),
            "probed_rows_mean": float(np.mean(probed[name])),
            "rescored_median": float(np.median(rescored[name])),
            "rescored_mean": float(np.mean(rescored[name])),
            "queries_widened": widened[name],
        }
        if cold_cpu[name]:
            cw, cc = 1000 * np.array(cold_wall[name]), 1000 * np.array(cold_cpu[name])
            out["methods"][name]["first_touch"] = {
                "wall_p50": float(np.percentile(cw, 50)),
                "wall_p95": float(np.percentile(cw, 95)),
                "cpu_p50": float(np.percentile(cc, 50)),
                "cpu_p95": float(np.percentile(cc, 95)),
                "minor_faults_p50": float(np.median(cold_faults[name])),
            }
    status = Path("/proc/self/status")
    if status.exists():  # anonymous memory vs touched pages of the memory-mapped files (page cache)
        mem = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        out["rss_gb"] = {
            k: int(mem[k].split()[0]) / 2**20 for k in ("VmHWM", "RssAnon", "RssFile") if k in mem
        }
    default = f"ann adaptive nprobe {ann.default_nprobe(ivf.nlist)}"
    if default in res:  # the list-order tier must not change a result: same rows as the table-order one
        old_res = res["ann default, table-order tier"]
        out["identical_list_vs_table_order"] = sum(
            a.tolist() == b.tolist() for a, b in zip(res[default], old_res, strict=True)
        )
    ex = out["methods"]["exhaustive"]
    for m in out["methods"].values():
        m["speedup_wall_p50"] = ex["wall_p50"] / m["wall_p50"]
        m["speedup_cpu_p50"] = ex["cpu_p50"] / m["cpu_p50"]
        if "first_touch" in m:
            ft, ex_ft = m["first_touch"], ex["first_touch"]
            ft["speedup_wall_p50"] = ex_ft["wall_p50"] / ft["wall_p50"]
            ft["speedup_cpu_p50"] = ex_ft["cpu_p50"] / ft["cpu_p50"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("sql", "ann10m"))
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--nprobe", default="32,64,128", help="fixed probes compared (ann10m)")
    ap.add_argument("--chunk", type=int, default=250_000, help="rows coded at a time (ann10m)")
    ap.add_argument(
        "--base",
        default=None,
        help="folder of base_corpus.npy + base_queries.npy (+ base_titles.json for sql)",
    )
    ap.add_argument("--lists", type=int, default=None, help="ANN lists (ann10m; default: ann.default_lists)")
    ap.add_argument(
        "--only-default", action="store_true", help="ann10m: the exhaustive and default ANN search only"
    )
    ap.add_argument(
        "--fresh-maps",
        action="store_true",
        help="ann10m --only-default: map the tiers anew before each query's first (first-touch) pass",
    )
    a = ap.parse_args(argv)
    tmp = Path(a.tmp or tempfile.mkdtemp(prefix="lakeql_vsa_"))
    print(f"load before: {load()}", flush=True)
    if a.what == "sql":
        out = sql_run(a.rows or 1_000_000, a.queries, tmp, Path(a.base) if a.base else None)
    else:
        base, Q, _ = base_vectors(Path(a.base) if a.base else None)
        folder = tmp / "store"
        if not (folder / "build.json").exists():  # a finished build in --tmp is reused
            ann10m_build(a.rows or 10_000_000, len(Q), folder, a.chunk, a.lists, base, Q)
        nprobes = [int(v) for v in a.nprobe.split(",")]
        out = ann10m_measure(folder, a.queries, Q, nprobes, a.only_default, a.fresh_maps)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
