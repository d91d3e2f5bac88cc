"""A query's first touch of an ANN index at 10M rows (issue 14 item 10): where it goes, three regimes.

    PYTHONPATH=. /work/venv/bin/python benchmarks/ann_first.py prepare --store /tmp/ann10m/store --out DIR
    PYTHONPATH=. /work/venv/bin/python benchmarks/ann_first.py fresh --out DIR [--queries 8] [--cold]
    PYTHONPATH=. /work/venv/bin/python benchmarks/ann_first.py inproc --out DIR [--queries 100]

``prepare``: copies the store of ``vectors_sql_ann.py ann10m`` (10M re-sampled MiniLM vectors, RaBitQ codes +
uint8 tier + 4,096 lists + list-order tier) into ``DIR`` (plain copies: the source is never written, and
``--cold`` may drop the copies' pages), writes ``meta.json`` / ``binarizer.npz`` as lakeql's builder does,
and the list-order rows of :func:`lakeql.vectors.ann.write_list_rows`; also a 20,000-row store ``DIR/warm``
(the same recipe) that each fresh process searches first so that imports and numba's cached kernels are
loaded before the clock starts (both reported).

``fresh``: one new process per (method, query), methods interleaved per query, page cache warm (or, with
``--cold``, the store's pages dropped with ``posix_fadvise(DONTNEED)`` before each process): the time from
opening the index to the first query's answer. Methods: ``exhaustive`` (codes loaded, exact scan),
``ann_loaded`` (codes loaded, lists and their list-order copy built in memory: main's ANN path),
``ann_mapped`` (:func:`lakeql.vectors.ann.open_mapped`: only the probed lists' rows are read).

``inproc``: one process, index opened once, each query run twice (first touch, then again): with
``fresh maps`` every method's files are mapped anew before a query's first run (no page of them mapped in
the process: the strict first touch), as in ``vectors_sql_ann.py ann10m --only-default --fresh-maps``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABEL = "bench.big.vec"
COPY = ("packed.npy", "factor.npy", "add.npy", "scales.npy", "rescore.npy", "ann.npz", "ann_tier.npy")
COPY_SMALL = ("best_i.npy", "build.json", "binarizer.pkl")


def load_code_index(folder: Path):
    """The store's :class:`~lakeql.vectors.codes.CodeIndex`, loaded as ``vectors_sql_ann.py`` does (every
    code into memory, tiers memory-mapped): what a connection's first search loads before it scans."""
    from vectors_sql_ann import store_code_index

    meta = json.loads((folder / "meta.json").read_text())
    binz = pickle.loads((folder / "binarizer.pkl").read_bytes())
    return store_code_index(folder, meta, binz)


def write_extras(folder: Path) -> None:
    """meta.json, binarizer.npz and the list-order rows of a store (lakeql's builder writes the first two
    with the codes and the last with the lists)."""
    from lakeql.vectors import ann

    info = json.loads((folder / "build.json").read_text())
    binz = pickle.loads((folder / "binarizer.pkl").read_bytes())
    meta = {
        "method": "rabitq",
        "tier": "int8",
        "format": 2,
        "dim": binz.dim,
        "rows": int(info["n"]),
        "tier_space": info["space"],
        "binarizer": binz.params(),
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    np.savez(folder / "binarizer.npz", **binz.arrays())
    idx = load_code_index(folder)
    with np.load(folder / ann.FILE) as z:
        ids = z["ids"]
    t0 = time.perf_counter()
    ann.write_list_rows(folder, idx, ids)
    print(f"  list-order rows written in {time.perf_counter() - t0:.1f} s (load {os.getloadavg()[0]:.1f})")


def prepare(store: Path, out: Path, base: Path, link: bool = False) -> None:
    """``link``: the store's big files linked, not copied (``inproc`` only: ``--cold`` drops the pages of
    ``out``'s files, which would then be the store's own)."""
    from lakeql.vectors import ann, codes

    out.mkdir(parents=True, exist_ok=True)
    for name in COPY + COPY_SMALL:
        if not (out / name).exists():
            t0 = time.perf_counter()
            if link:
                os.symlink((store / name).resolve(), out / name)
                continue
            shutil.copyfile(store / name, out / (name + ".part"))
            os.replace(out / (name + ".part"), out / name)
            print(f"  copied {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    write_extras(out)
    # a small store of the same recipe: warms imports and numba's kernels before a fresh process's clock
    warm = out / "warm"
    warm.mkdir(exist_ok=True)
    n = 20_000
    binz = pickle.loads((out / "binarizer.pkl").read_bytes())
    rng = np.random.default_rng(5)
    b = np.load(base / "base_corpus.npy")
    x = b[rng.integers(0, len(b), n)] + 0.01 * rng.standard_normal((n, b.shape[1]), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    p, f = binz.encode(x)
    tv, sc, space = codes.quantize_tier(x, "int8", binz)
    np.save(warm / "packed.npy", p)
    np.save(warm / "factor.npy", f["factor"])
    np.save(warm / "add.npy", f["add"])
    np.save(warm / "rescore.npy", tv)
    np.save(warm / "scales.npy", sc)
    (warm / "binarizer.pkl").write_bytes(pickle.dumps(binz))
    (warm / "build.json").write_text(json.dumps({"n": n, "space": space}))
    ann.build(warm, p, binz.dim, 16, tier=np.load(warm / "rescore.npy", mmap_mode="r"))
    write_extras(warm)


def open_method(method: str, folder: Path):
    """(search function q -> (rowids, scores), stats getter) of ``method`` opened on ``folder``."""
    from lakeql.vectors import ann
    from lakeql.vectors.search import search

    if method == "exhaustive":
        idx = load_code_index(folder)
        return lambda q, st: search(idx, q, 10, 4, stats=st)
    if method == "ann_loaded":
        idx = load_code_index(folder)
        ivf = ann.ivf_of(idx, LABEL)
        return lambda q, st: ann.search(idx, ivf, q, 10, 4, stats=st)
    if method == "ann_mapped":
        m = ann.open_mapped(folder, LABEL)
        return lambda q, st: ann.search(m, m._pos["ann"], q, 10, 4, stats=st)
    raise ValueError(method)


def worker(method: str, folder: Path, qi: int, warm: bool) -> None:
    """One fresh process: (warm-up on the small store), then open ``method`` and answer query ``qi``."""
    w0, c0 = time.perf_counter(), time.process_time()
    Q = np.load(folder / "queries.npy")
    if warm:
        fn = open_method(method, folder / "warm")
        fn(Q[(qi + 1) % len(Q)], {})
    w1, c1 = time.perf_counter(), time.process_time()
    fn = open_method(method, folder)
    w2, c2 = time.perf_counter(), time.process_time()
    st: dict = {}
    rowids, scores = fn(Q[qi], st)
    w3, c3 = time.perf_counter(), time.process_time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "method": method,
                "q": qi,
                "before_ms": [1e3 * (w1 - w0), 1e3 * (c1 - c0)],
                "open_ms": [1e3 * (w2 - w1), 1e3 * (c2 - c1)],
                "query_ms": [1e3 * (w3 - w2), 1e3 * (c3 - c2)],
                "total_ms": [1e3 * (w3 - w1), 1e3 * (c3 - c1)],
                "major_faults": ru.ru_majflt,
                "maxrss_mb": ru.ru_maxrss / 1024,
                "rowids": rowids.tolist(),
                "rescored": st.get("rescored"),
                "load": os.getloadavg()[0],
            }
        )
    )


def drop_pages(folder: Path) -> None:
    """Drop the page-cache pages of the store's files (``posix_fadvise(DONTNEED)``; this copy's only)."""
    for f in folder.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def fresh(folder: Path, nq: int, cold: bool, warm: bool, methods: list[str]) -> dict:
    rows: list[dict] = []
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for qi in range(nq):
        for method in methods:
            if cold:
                drop_pages(folder)
            args = [sys.executable, __file__, "worker", method, str(folder), str(qi)] + (
                ["--warm"] if warm else []
            )
            out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"  q{qi} {method}: open {r['open_ms'][1]:.0f} + query {r['query_ms'][1]:.1f} ms CPU "
                f"(wall {r['total_ms'][0]:.0f}), majflt {r['major_faults']}, load {r['load']:.1f}",
                flush=True,
            )
    out: dict = {"cold": cold, "warm": warm, "queries": nq, "methods": {}}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        tw = np.array([r["total_ms"][0] for r in mine])
        tc = np.array([r["total_ms"][1] for r in mine])
        out["methods"][method] = {
            "total_wall_p50": float(np.median(tw)),
            "total_cpu_p50": float(np.median(tc)),
            "open_cpu_p50": float(np.median([r["open_ms"][1] for r in mine])),
            "query_cpu_p50": float(np.median([r["query_ms"][1] for r in mine])),
            "before_cpu_p50": float(np.median([r["before_ms"][1] for r in mine])),
            "major_faults_p50": float(np.median([r["major_faults"] for r in mine])),
            "maxrss_mb_max": float(max(r["maxrss_mb"] for r in mine)),
            "load": [min(r["load"] for r in mine), max(r["load"] for r in mine)],
        }
    ex = out["methods"].get("exhaustive")
    for m in out["methods"].values():
        if ex:
            m["speedup_wall"] = ex["total_wall_p50"] / m["total_wall_p50"]
            m["speedup_cpu"] = ex["total_cpu_p50"] / m["total_cpu_p50"]
    by_q: dict[int, dict[str, list]] = {}
    for r in rows:
        by_q.setdefault(r["q"], {})[r["method"]] = r["rowids"]
    if "ann_loaded" in methods and "ann_mapped" in methods:
        out["identical_mapped_vs_loaded"] = sum(v["ann_mapped"] == v["ann_loaded"] for v in by_q.values())
    return out


def inproc(
    folder: Path,
    nq: int,
    fresh_maps: bool,
    nprobe: int | None = None,
    start: int = 0,
    only: list[str] | None = None,
) -> dict:
    """Each method opened once; per query: (re)map, first run (first touch), second run (steady).
    ``ann_rowscan``: the loaded path with its probed spans scanned row by row (no blocked layout: the
    code before the blocked spans scan), same index, same run. ``nprobe``: the ANN searches' probe
    (None: the default); ``start``: the first query (a held-out half)."""
    from lakeql.vectors import ann

    Q = np.load(folder / "queries.npy")
    best_i = np.load(folder / "best_i.npy")
    t0 = time.process_time()
    ex_idx = load_code_index(folder)
    lo_idx = ex_idx  # one copy of the codes: the exhaustive scan does not read the list-order copy
    lo_ivf = ann.ivf_of(lo_idx, LABEL)
    mapped = ann.open_mapped(folder, LABEL)
    print(f"  opened in {time.process_time() - t0:.1f} s CPU", flush=True)
    from lakeql.vectors.search import search

    def remap() -> None:
        nonlocal mapped
        mapped = None
        gc.collect()  # the previous maps are closed before new ones are made
        ex_idx.tier = np.load(folder / "rescore.npy", mmap_mode="r")
        tier = np.load(folder / ann.TIER_FILE, mmap_mode="r")
        lo_ivf.tier = lo_idx._pos["ann_order"].view.tier = tier
        mapped = ann.open_mapped(folder, LABEL)

    def rowscan(q, st):
        if "ann_order" not in lo_idx._pos:  # (the warm-up call) the list-order copy
            ann.search(lo_idx, lo_ivf, q, 10, 4)
        lo = lo_idx._pos["ann_order"]
        keep, lo.blocked = lo.blocked, None
        try:
            return ann.search(lo_idx, lo_ivf, q, 10, 4, stats=st, nprobe=nprobe)
        finally:
            lo.blocked = keep

    methods = {
        "exhaustive": lambda q, st: search(ex_idx, q, 10, 4, stats=st),
        "ann_loaded": lambda q, st: ann.search(lo_idx, lo_ivf, q, 10, 4, stats=st, nprobe=nprobe),
        "ann_rowscan": rowscan,
        "ann_mapped": lambda q, st: ann.search(mapped, mapped._pos["ann"], q, 10, 4, stats=st, nprobe=nprobe),
    }
    from lakeql.vectors import search as vsearch

    def before(fn):
        """``fn`` as the code before the fused rounds ran it (search.FUSED_ROUNDS off: numpy rounds, the
        query's rotation per step): the same index and maps, the same results."""

        def run(q, st):
            was, vsearch.FUSED_ROUNDS = vsearch.FUSED_ROUNDS, False
            try:
                return fn(q, st)
            finally:
                vsearch.FUSED_ROUNDS = was

        return run

    methods.update({f"{k}_before": before(v) for k, v in list(methods.items()) if k != "ann_rowscan"})
    if only:  # ann_rowscan shares ann_loaded's maps: leave it out for a clean first touch of the other
        methods = {k: v for k, v in methods.items() if k in only or k == "exhaustive"}
    for fn in methods.values():  # JIT and the loaded path's list-order copy
        fn(Q[-1], {})
    stats: dict = {m: [] for m in methods}
    res: dict = {
        m: {"first": [], "second": [], "first_wall": [], "second_wall": [], "faults": []} for m in methods
    }
    got: dict = {m: [] for m in methods}
    got_scores: dict = {m: [] for m in methods}
    loads = [os.getloadavg()[0]]
    for qi in range(start, start + nq):
        q = Q[qi % len(Q)]
        if fresh_maps:
            remap()
        names = list(methods)
        names = names[qi % len(names) :] + names[: qi % len(names)]  # rotated: no method always goes first
        for name in names:
            fn = methods[name]
            for rnd in ("first", "second"):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                w, c = time.perf_counter(), time.process_time()
                st: dict = {}
                r, sc = fn(q, st)
                res[name][rnd].append(1e3 * (time.process_time() - c))
                res[name][rnd + "_wall"].append(1e3 * (time.perf_counter() - w))
                if rnd == "first":
                    res[name]["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
                    got[name].append(r.tolist())
                    got_scores[name].append(sc.tobytes())
                    stats[name].append(st)
        loads.append(os.getloadavg()[0])
    out: dict = {
        "fresh_maps": fresh_maps,
        "queries": nq,
        "start": start,
        "nprobe": nprobe,
        "load": [min(loads), max(loads)],
        "methods": {},
    }
    for name, v in res.items():
        sts = stats[name]
        out["methods"][name] = {
            "probed_rows_p50": float(np.median([s.get("probed_rows", ex_idx.n) for s in sts])),
            "rescored_p50": float(np.median([s.get("rescored", 0) for s in sts])),
            "widened": int(sum(bool(s.get("widened")) for s in sts)),
            "second_cpu_p95": float(np.percentile(v["second"], 95)),
            "first_cpu_p50": float(np.median(v["first"])),
            "first_wall_p50": float(np.median(v["first_wall"])),
            "second_cpu_p50": float(np.median(v["second"])),
            "second_wall_p50": float(np.median(v["second_wall"])),
            "first_minor_faults_p50": float(np.median(v["faults"])),
            "recall_vs_float": float(
                np.mean(
                    [
                        len(set(a) & set(best_i[i % len(Q)].tolist())) / 10
                        for i, a in enumerate(got[name], start)
                    ]
                )
            ),
        }
    ex = out["methods"]["exhaustive"]
    for m in out["methods"].values():
        m["speedup_first_cpu"] = ex["first_cpu_p50"] / m["first_cpu_p50"]
        m["speedup_first_wall"] = ex["first_wall_p50"] / m["first_wall_p50"]
        m["speedup_second_cpu"] = ex["second_cpu_p50"] / m["second_cpu_p50"]
    for name in list(got):  # each "_before" method against its fused one: the same top 10
        if name.endswith("_before") and name[: -len("_before")] in got:
            base = name[: -len("_before")]
            out[f"identical_rows_and_score_bytes_{name}"] = sum(
                a == b and x == y
                for a, b, x, y in zip(got[name], got[base], got_scores[name], got_scores[base], strict=True)
            )
            out[f"identical_stats_{name}"] = sum(
                a == b for a, b in zip(stats[name], stats[name[: -len("_before")]], strict=True)
            )
    for other in ("ann_mapped", "ann_rowscan"):
        if other in got and "ann_loaded" in got:
            out[f"identical_{other}_vs_loaded"] = sum(
                a == b for a, b in zip(got[other], got["ann_loaded"], strict=True)
            )
    for name in got:
        if name != "exhaustive":
            out[f"recall_{name}_vs_exhaustive"] = float(
                np.mean(
                    [len(set(a) & set(b)) / 10 for a, b in zip(got[name], got["exhaustive"], strict=True)]
                )
            )
    status = Path("/proc/self/status").read_text().splitlines()
    out["rss"] = [line for line in status if line.split(":")[0] in ("VmHWM", "RssAnon", "RssFile")]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("prepare", "fresh", "inproc", "worker"))
    ap.add_argument("args", nargs="*")
    ap.add_argument("--store", default="/tmp/ann10m/store")
    ap.add_argument("--base", default="/tmp/lakeql-compare")
    ap.add_argument("--out", default=None)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--warm", action="store_true", help="fresh: warm imports and kernels on DIR/warm first")
    ap.add_argument("--fresh-maps", action="store_true")
    ap.add_argument("--methods", default="exhaustive,ann_loaded,ann_mapped")  # inproc: + ann_rowscan
    ap.add_argument("--link", action="store_true", help="prepare: link the store's big files (inproc only)")
    ap.add_argument("--nprobe", type=int, default=None, help="inproc: the ANN probe (default: the default)")
    ap.add_argument("--start", type=int, default=0, help="inproc: first query")
    ap.add_argument(
        "--before",
        action="store_true",
        help="inproc: every method as the code before the fused rounds (search.FUSED_ROUNDS off)",
    )
    a = ap.parse_args(argv)
    if a.before:
        from lakeql.vectors import search as vsearch

        vsearch.FUSED_ROUNDS = False
    if a.what == "worker":
        worker(a.args[0], Path(a.args[1]), int(a.args[2]), a.warm)
        return 0
    out = Path(a.out)
    print(f"uptime load before: {os.getloadavg()}", flush=True)
    if a.what == "prepare":
        prepare(Path(a.store), out, Path(a.base), a.link)
        np.save(out / "queries.npy", np.load(Path(a.base) / "base_queries.npy").astype(np.float32))
        return 0
    if a.what == "fresh":
        res = fresh(out, a.queries, a.cold, a.warm, a.methods.split(","))
    else:
        only = a.methods.split(",") if a.methods != ap.get_default("methods") else None
        res = inproc(out, a.queries, a.fresh_maps, a.nprobe, a.start, only)
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
