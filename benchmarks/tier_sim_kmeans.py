"""The cluster-centroid layout of ``benchmarks/tier_sim.py``'s oracle row with clusters found as a build
would find them (benchmarks/results/recall1m2.md).

    /work/venv/bin/python benchmarks/tier_sim_kmeans.py 5000 200000 8    # K, sample rows, iterations

faiss k-means with ``K`` centroids on a random sample of the 1M rows, each row of the exact top-300 sets
assigned to its nearest centroid (float16, as an index would store them); code and tier are the rotated
residual to that centroid (8-bit magnitudes, signs from the residual's code, norm-matched scale) and rows
are ranked by that score. Reads the cache ``tier_sim.py --extra-queries 400`` writes
(``/tmp/recall1m2/tier_sim_400.npz``): recall@10 on the 100 real queries and on all 500.
"""

import sys
import time

import faiss
import numpy as np

z = dict(np.load("/tmp/recall1m2/tier_sim_400.npz"))
top, x, q, rot, c = z["top"], z["x"], z["q"], z["rot"], z["c"]
where = np.searchsorted(z["rows"], top)
truth = where[:, :10]
qr = q @ rot
V = np.load("/tmp/lakeql-compare/vecs_1000000.npy", mmap_mode="r")
K, ns, it = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
samp = np.ascontiguousarray(V[np.sort(np.random.default_rng(1).choice(len(V), ns, replace=False))])
t = time.process_time()
w = time.time()
km = faiss.Kmeans(384, K, niter=it, seed=1, spherical=False, max_points_per_centroid=10**9)
km.train(samp)
print("kmeans cpu", time.process_time() - t, "wall", time.time() - w, flush=True)
_, a = km.index.search(x, 1)
cm = km.centroids[a[:, 0]].astype(np.float16).astype(np.float32)
res = x - cm
print("residual norm p50", np.median(np.linalg.norm(res, axis=1)))
rr = res @ rot
mg = np.abs(rr)
lv = np.clip(np.rint(mg / (mg.max(1) / 255.0)[:, None]), 0, 255)
nm = np.linalg.norm(mg, axis=1) / np.linalg.norm(lv, axis=1)
score = q @ cm.T + (qr @ (np.where(rr < 0, -1.0, 1.0) * lv).T) * nm[None, :]
per = np.array(
    [
        len(np.intersect1d(where[i][np.argsort(-score[i, where[i]], kind="stable")[:10]], truth[i]))
        for i in range(len(q))
    ]
)
print(f"K={K} sample={ns} iters={it}: recall real100 {per[:100].sum() / 1000:.3f}", end="")
print(f"  500: {per.sum() / 5000:.4f}")
