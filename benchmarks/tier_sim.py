"""The rescoring tier alone: recall@10 of quantizers of the rows at 1M near-duplicates (issue 14, item 8;
benchmarks/results/recall1m2.md).

    /work/venv/bin/python benchmarks/tier_sim.py --index LAKE/.lakeql/embed/bench.titles__title-...

Isolates the tier from the search: the exact top 300 rows of each of the 100 real queries (exact inner
product over all rows of ``vecs_1000000.npy``, as ``benchmarks/compare_vectors.py`` caches it) are
re-quantized with the index's own rotation and centroid (its binarizer) and ranked by the quantized
score; recall@10 against the exact top 10. The first stage and the stopping rule are perfect here (at 1M
they rescore every true top-10 row: recall1m.md), so what is left is the tier's rounding. A 95%
interval comes from resampling the queries (bootstrap, 2,000 draws). ``--extra-queries N`` adds N
documents of ../shared/data/ir as queries (real MiniLM vectors; a narrower interval).

Variants: the index's stored tier; the default quantizer recomputed (8-bit magnitudes, signs from the
code, norm-matched scale); refinement bits (as ``refine.npy`` stores them) on the first ``D`` dimensions
or all; two scales a row; rounding shaped so that its error is orthogonal to the centroid, the top
principal directions of the rows and the row itself (numba; same bytes, same reader); the residual to
the row's true cluster mean (an oracle: the clusters ``src_1000000.npy`` records) as signed int8; the
rows as float16. Also the entropy of the 8- and 9-bit magnitudes (what an ideal entropy coder would
store). Extra bytes a row are relative to the default index (442.5 bytes a row at 1M: recall.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOP = 300
DEFAULT_BYTES = 442.5  # bytes a row of the default index at 1M (recall.md, same data)


def prepare(index_dir: Path, cache: Path, work: Path, extra: int, natural: Path) -> dict:
    """The exact top ``TOP`` rows per query, those rows, the binarizer and stored tier (cached in
    ``work``). Queries: the 100 real ones, then ``extra`` documents of ../shared/data/ir (as
    benchmarks/vectors.py caches them in ``natural``) as queries."""
    out = work / f"tier_sim_{extra}.npz"
    if out.exists():
        return dict(np.load(out))
    from lakeql.vectors.codes import CodeIndex

    ix = CodeIndex.load(index_dir, "bench.titles")
    vecs = np.load(cache / "vecs_1000000.npy", mmap_mode="r")
    queries = np.load(cache / "base_queries.npy").astype(np.float32)
    if extra:
        docs = np.concatenate([np.load(natural / f"{d}_corpus.npy") for d in ("dbpedia", "msmarco")])
        pick = np.random.default_rng(7).choice(len(docs), extra, replace=False)
        queries = np.concatenate([queries, docs[pick].astype(np.float32)])
    n = len(vecs)
    top = np.empty((len(queries), TOP), np.int64)
    for a in range(0, len(queries), 100):  # 100 queries at a time: 400 MB of scores
        scores = np.empty((len(queries[a : a + 100]), n), np.float32)
        for s in range(0, n, 100_000):
            scores[:, s : s + 100_000] = queries[a : a + 100] @ np.asarray(vecs[s : s + 100_000]).T
        part = np.argpartition(-scores, TOP, axis=1)[:, :TOP]
        top[a : a + 100] = np.take_along_axis(
            part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1), axis=1
        )
        del scores
    rows = np.unique(top)
    sample = np.asarray(vecs[::10]) - ix.binarizer.centroid
    w, u = np.linalg.eigh(sample.T @ sample / len(sample))
    data = {
        "top": top,
        "rows": rows,
        "x": np.asarray(vecs[rows]),
        "q": queries,
        "rot": np.asarray(ix.binarizer.rotation, np.float32),
        "c": np.asarray(ix.binarizer.centroid, np.float32),
        "tier": np.asarray(ix.tier[rows]),
        "scales": np.asarray(ix.scales[rows]),
        "pcs": u[:, ::-1][:, :64].astype(np.float32),
    }
    src = cache / "src_1000000.npy"
    if src.exists():  # the cluster each row was re-sampled from, and the cluster means (float16)
        ids = np.load(src)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        means = {}
        for k in np.unique(ids[rows]):
            a, b = np.searchsorted(sorted_ids, k), np.searchsorted(sorted_ids, k, side="right")
            means[k] = np.asarray(vecs[np.sort(order[a:b])]).mean(axis=0)
        data["cluster_mean"] = np.stack([means[k] for k in ids[rows]]).astype(np.float16)
    np.savez(out, **data)
    return data


def shaped_levels(f: np.ndarray, signs: np.ndarray, dirs: np.ndarray, lam: float, rounds: int = 400):
    """Magnitude levels (0..255) near ``f`` (real levels) whose rounding error is (nearly) orthogonal to
    the columns of ``dirs`` (rotated space, orthonormal) and to the row itself: greedy flips of single
    roundings while ``|e|^2 + lam (|dirs' e|^2 + <e, f/|f|>^2)`` falls."""
    import numba

    @numba.njit(cache=False)
    def run(f, sg, ug, gram, lam, rounds):
        n, d = f.shape
        m = ug.shape[1]
        out = np.empty((n, d), np.float32)
        for i in range(n):
            lev = np.empty(d)
            e = np.empty(d)
            for j in range(d):
                v = min(np.rint(f[i, j]), 255.0)
                lev[j] = v
                e[j] = v - f[i, j]
            t = np.zeros(m)
            for k in range(d):
                for a in range(m):
                    t[a] += e[k] * sg[i, k] * ug[k, a]
            g = np.zeros(d)
            for j in range(d):
                for a in range(m):
                    g[j] += t[a] * sg[i, j] * ug[j, a]
            fn = max(np.sqrt(np.sum(f[i] * f[i])), 1e-12)
            own = np.sum(e * f[i]) / fn
            for _ in range(rounds):
                best, bj, bd = -1e-12, -1, 0.0
                for j in range(d):
                    if e[j] > 0:
                        if lev[j] <= 0:
                            continue
                        dl = -1.0
                    else:
                        if lev[j] >= 255:
                            continue
                        dl = 1.0
                    w = f[i, j] / fn
                    ne = e[j] + dl
                    dj = ne * ne - e[j] * e[j] + lam * (2 * dl * g[j] + gram[j, j] + 2 * dl * own * w + w * w)
                    if dj < best:
                        best, bj, bd = dj, j, dl
                if bj < 0:
                    break
                lev[bj] += bd
                e[bj] += bd
                for j in range(d):
                    g[j] += bd * sg[i, bj] * sg[i, j] * gram[bj, j]
                own += bd * f[i, bj] / fn
            out[i] = lev
        return out

    return run(f.astype(np.float64), signs.astype(np.float64), dirs, dirs @ dirs.T, lam, rounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True, help="the embed folder of a 1M index")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/lakeql-compare"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/recall1m2"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--extra-queries", type=int, default=0, help="documents of ../shared/data/ir as queries")
    ap.add_argument("--natural", type=Path, default=Path(__file__).resolve().parent / "_work")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    z = prepare(args.index, args.cache, args.work, args.extra_queries, args.natural)
    top, x, q, rot, c = z["top"], z["x"], z["q"], z["rot"], z["c"]
    where = np.searchsorted(z["rows"], top)  # (queries, TOP) positions into x
    truth = where[:, :10]
    qc = (q @ c)[:, None]
    qr = q @ rot
    r = (x - c) @ rot
    sg = np.where(r < 0, -1.0, 1.0).astype(np.float32)
    mag = np.abs(r)
    step = mag.max(axis=1) / 255.0
    f = mag / step[:, None]
    lev8 = np.clip(np.rint(f), 0, 255)

    def hits(score: np.ndarray) -> np.ndarray:
        per = np.empty(len(q), np.int64)
        for i in range(len(q)):
            cand = where[i]
            pick = cand[np.argsort(-score[i, cand], kind="stable")[:10]]
            per[i] = len(np.intersect1d(pick, truth[i]))
        return per

    def norm_scale(levels: np.ndarray) -> np.ndarray:
        return np.linalg.norm(mag, axis=1) / np.linalg.norm(levels, axis=1)

    def tier_score(levels: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return qc + (qr @ (sg * levels).T) * scale[None, :]

    def refined(levels: np.ndarray, bits: int, dims: int) -> np.ndarray:
        cell = np.clip(np.floor((f - levels + 0.5) * (1 << bits)), 0, (1 << bits) - 1)
        fine = levels + (cell + 0.5) / (1 << bits) - 0.5
        out = levels.copy()
        out[:, :dims] = fine[:, :dims]
        return out

    rng = np.random.default_rng(0)
    boot = rng.integers(0, len(q), (2000, len(q)))
    rows_out = []

    class Variants:  # each variant's scores are ranked as soon as they are made (500 x 150k floats each)
        def append(self, item: tuple[str, float, np.ndarray]) -> None:
            name, extra, score = item
            per = hits(score)
            draws = per[boot].sum(axis=1) / (10 * len(q))
            b = DEFAULT_BYTES + extra
            rows_out.append(
                {
                    "variant": name,
                    "recall": float(per.sum() / (10 * len(q))),
                    "ci95": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))],
                    "missed": int(10 * len(q) - per.sum()),
                    "recall_real100": float(per[:100].sum() / 1000),
                    "bytes_per_row": b,
                    "x_float32": b / (4 * x.shape[1]),
                }
            )
            print(json.dumps(rows_out[-1]), flush=True)

    variants = Variants()
    variants.append(
        ("index tier as stored (default)", 0, tier_score(z["tier"].astype(np.float32), z["scales"]))
    )
    variants.append(
        ("default recomputed (8-bit magnitudes, norm-matched)", 0, tier_score(lev8, norm_scale(lev8)))
    )
    for dims in (96, 144, 192, 288, 384):
        lv = refined(lev8, 1, dims)
        variants.append(
            (f"+1 refinement bit on {dims} of 384 dims", dims / 8, tier_score(lv, norm_scale(lv)))
        )
    lv = refined(lev8, 2, 384)
    variants.append(("+2 refinement bits on all dims", 96, tier_score(lv, norm_scale(lv))))
    half = np.zeros_like(mag)  # two scales a row: each half of the dimensions its own step, norm-matched
    scale2 = np.zeros((len(x), 2), np.float32)
    for h, sl in enumerate((slice(0, 192), slice(192, 384))):
        st = mag[:, sl].max(axis=1) / 255.0
        lv = np.clip(np.rint(mag[:, sl] / st[:, None]), 0, 255)
        half[:, sl] = lv
        scale2[:, h] = np.linalg.norm(mag[:, sl], axis=1) / np.linalg.norm(lv, axis=1)
    s2 = qc + (qr[:, :192] @ (sg[:, :192] * half[:, :192]).T) * scale2[None, :, 0]
    s2 += (qr[:, 192:] @ (sg[:, 192:] * half[:, 192:]).T) * scale2[None, :, 1]
    variants.append(("two scales a row (halves of the dims)", 4, s2))
    ch = c / np.linalg.norm(c)
    for m in (1, 16, 64):
        dirs, _ = np.linalg.qr(np.column_stack([ch, z["pcs"][:, : m - 1]]) if m > 1 else ch[:, None])
        lv = shaped_levels(f, sg, (dirs.T @ rot).T.astype(np.float64), 50.0)
        variants.append(
            (f"rounding shaped orthogonal to the row, c and {m - 1} PCs", 0, tier_score(lv, norm_scale(lv)))
        )
    if "cluster_mean" in z:
        cm = z["cluster_mean"].astype(np.float32)
        res = x - cm
        st = np.abs(res).max(axis=1) / 127.0
        v = np.rint(res / st[:, None])
        nm = np.linalg.norm(res, axis=1) / np.linalg.norm(v, axis=1)
        variants.append(
            (
                "oracle: int8 of the residual to the row's true cluster mean",
                2 + 3.84,
                q @ cm.T + (q @ v.T) * nm[None, :],
            )
        )
        rr = (
            res @ rot
        )  # the same, as the default stores it: 8-bit magnitudes, signs from a code of the residual
        mg = np.abs(rr)
        lv = np.clip(np.rint(mg / (mg.max(axis=1) / 255.0)[:, None]), 0, 255)
        nm = np.linalg.norm(mg, axis=1) / np.linalg.norm(lv, axis=1)
        variants.append(
            (
                "oracle: 8-bit magnitudes of the rotated residual to the true cluster mean, its signs coded",
                2 + 3.84,
                q @ cm.T + (qr @ (np.where(rr < 0, -1.0, 1.0) * lv).T) * nm[None, :],
            )
        )
    x16 = x.astype(np.float16).astype(np.float32)
    variants.append(("rows as float16 (--embed-rescore float16)", 384 - 12 + 4, q @ x16.T))

    def entropy(levels: np.ndarray) -> float:
        p = np.bincount(levels.astype(np.int64).ravel()) / levels.size
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    lev9 = np.clip(np.rint(mag / (mag.max(axis=1) / 511.0)[:, None]), 0, 511)
    ent = {"bits_8bit_magnitudes": entropy(lev8), "bits_9bit_magnitudes": entropy(lev9)}
    print(json.dumps(ent))
    if args.out:
        args.out.write_text(json.dumps({"load": os.getloadavg(), "rows": rows_out, "entropy": ent}, indent=1))


if __name__ == "__main__":
    main()
