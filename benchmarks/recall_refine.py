"""Recall@10 of the int8 tier with and without refinement planes on near-duplicate vectors (issue 14,
item 8; benchmarks/results/recall.md).

    /work/venv/bin/python benchmarks/recall_refine.py --n 1000000 --bits 3

Data as benchmarks/compare_vectors.py caches it in ``--cache`` (default /tmp/lakeql-compare):
``vecs_1000000.npy`` (real MiniLM vectors re-sampled with noise sd 0.01: clusters of ~200 near-duplicates
at 1M), ``base_queries.npy`` (100 real queries) and the exact top-10 ids ``gt_1000000.npy`` (``--n``
below 1M: the first n rows and ``gt_1000000_first{n}.npy``). One index is built through ``write_index``
(the path of ``lakeql index --embed``) with ``--bits`` refinement planes; since the planes are embedded
(the first b' planes are the b'-bit refinement), every b' <= bits is measured from that one index, b' = 0
being the index without planes (main's search). ``--natural``: instead, the 10,000 real MiniLM vectors
of ../shared/data/ir (DBpedia + MS MARCO, as cached in benchmarks/_work by benchmarks/vectors.py), their
100 real queries and 400 of the documents as queries, exact top-10 by numpy. The configurations run
interleaved query by query (CPU time per query: ``time.process_time``), so each sees the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(vecs: np.ndarray, lake: Path, bits: int) -> tuple[Path, float]:
    from benchmarks.compare_vectors import index_titles

    params = {
        "model": "all-MiniLM-L6-v2",
        "method": "rabitq",
        "backend": "torch",
        "tier": "int8",
        "format": 2,
        **({"refine_bits": bits} if bits else {}),
    }
    store, entry, seconds = index_titles(lake, np.full(len(vecs), "t"), np.asarray(vecs), params)
    return store.root / entry.path, seconds


def with_bits(index, bits: int):
    """A view of ``index`` using its first ``bits`` refinement planes (0: none, the index as main reads)."""
    import copy

    v = copy.copy(index)
    v._pos = {}
    if bits == 0:
        v.refine = None
        v.meta = {k: val for k, val in index.meta.items() if k != "refine_bits"}
    else:
        nb = -(-index.dim // 8)
        v.refine = index.refine[:, : bits * nb]
        v.meta = {**index.meta, "refine_bits": bits}
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/lakeql-compare"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/recall"))
    ap.add_argument("--reuse", action="store_true", help="search the index built by an earlier run")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    ap.add_argument(
        "--natural",
        type=Path,
        nargs="?",
        const=Path(__file__).resolve().parent / "_work",
        default=None,
        help="natural data: the folder of benchmarks/vectors.py's cached vectors",
    )
    args = ap.parse_args()

    from lakeql.vectors.codes import CodeIndex
    from lakeql.vectors.search import search

    if args.natural is not None:
        vecs = np.concatenate([np.load(args.natural / f"{d}_corpus.npy") for d in ("dbpedia", "msmarco")])
        vecs = vecs[: args.n]  # --n below 10,000: the first n rows
        docq = vecs[np.random.default_rng(7).choice(len(vecs), 400, replace=False)]
        q_all = np.concatenate(
            [np.load(args.natural / f"{d}_queries.npy") for d in ("dbpedia", "msmarco")] + [docq]
        ).astype(np.float32)
        gt = np.argsort(-(q_all @ vecs.T), axis=1, kind="stable")[:, :10]
        lake = args.work / f"lake_natural_{len(vecs)}_b{args.bits}"
    else:
        vecs = np.load(args.cache / "vecs_1000000.npy", mmap_mode="r")[: args.n]
        q_all = np.load(args.cache / "base_queries.npy").astype(np.float32)
        gt = np.load(
            args.cache / ("gt_1000000.npy" if args.n == 1_000_000 else f"gt_1000000_first{args.n}.npy")
        )
        lake = args.work / f"lake_{args.n}_b{args.bits}"
    load0 = os.getloadavg()
    if args.reuse:
        folder, build_s = next((lake / ".lakeql" / "embed").iterdir()), None
    else:
        folder, build_s = build(vecs, lake, args.bits)
    del vecs
    index = CodeIndex.load(folder, "bench.titles")
    n = index.n
    files = [f for f in folder.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    planes = sum(f.stat().st_size for f in files if f.name == "refine.npy")
    nb = -(-index.dim // 8)
    configs = [(b, with_bits(index, b)) for b in range(args.bits + 1)]
    for q in q_all[:3]:  # warm: numba kernels, page cache
        for _, ix in configs:
            search(ix, q, 10)
    res = {b: {"ids": [], "cpu": [], "rescored": [], "refined": []} for b, _ in configs}
    for i, q in enumerate(q_all):
        order = configs if i % 2 == 0 else configs[::-1]
        for b, ix in order:
            st: dict = {}
            t = time.process_time()
            ids, _ = search(ix, q, 10, stats=st)
            res[b]["cpu"].append(time.process_time() - t)
            res[b]["ids"].append(ids)
            res[b]["rescored"].append(st.get("rescored", 0))
            res[b]["refined"].append(st.get("refined", 0))
    load1 = os.getloadavg()
    rows = []
    for b, r in res.items():
        hits = sum(
            len(set(map(int, ids)) & set(map(int, g[:10]))) for ids, g in zip(r["ids"], gt, strict=True)
        )
        nbytes = total - planes + b * nb * n
        ms = np.asarray(r["cpu"]) * 1000
        rows.append(
            {
                "bits": b,
                "rows": n,
                "recall": hits / (10 * len(gt)),
                "bytes_per_row": nbytes / n,
                "x_float32": nbytes / n / (4 * index.dim),
                "cpu_p50_ms": float(np.median(ms)),
                "cpu_p95_ms": float(np.percentile(ms, 95)),
                "rescored_p50": float(np.median(r["rescored"])),
                "rescored_p95": float(np.percentile(r["rescored"], 95)),
                "rescored_max": int(np.max(r["rescored"])),
                "refined_p50": float(np.median(r["refined"])),
                "refined_max": int(np.max(r["refined"])),
            }
        )
    out = {"n": n, "build_s": build_s, "load_before": load0, "load_after": load1, "rows": rows}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
