"""Automatic domains for a flat lake: clusters of at most ``cap`` tables that belong together.

Tables are TF-IDF vectors of the words of their names (weight 2) and column names (weight 1); words
shared by more than a fifth of the tables (``id``, ``name``...) are dropped. Clustering is centroid
linkage over a sparse 10-nearest-neighbour graph (plus join-graph edges, weight 1): edges are visited
strongest first and two groups merge only while the cosine of their centroids stays >= :data:`TAU` and
the merged group has at most ``cap`` tables, so unrelated tables do not chain together. Groups smaller
than :data:`MIN_DOMAIN` join their most similar group with room; what is left is packed together.

Each domain is named after its most characteristic words (``singer_concert``); names are unique.
Re-partitioning keeps earlier assignments of unchanged tables (see :func:`assign`), so an incremental run
does not move files around.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from lakeql.context.text import tokens

MIN_DOMAIN = 3  # smaller clusters join their nearest domain
TAU = 0.15  # centroid cosine needed to merge two groups


def _matrix(docs: Sequence[tuple[str, Sequence[str]]]):
    """(sparse L2-normalized TF-IDF matrix, vocabulary list) of (table name, column names) docs."""
    import numpy as np
    from scipy import sparse

    n = len(docs)
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, (name, colnames) in enumerate(docs):
        bag: Counter[str] = Counter()
        for t in tokens(name):
            bag[t] += 2.0
        for c in colnames:
            for t in tokens(c):
                bag[t] += 1.0
        for t, v in bag.items():
            rows.append(i)
            cols.append(vocab.setdefault(t, len(vocab)))
            vals.append(v)
    x = sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n, max(len(vocab), 1)))
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    idf = np.log((n + 1) / (df + 1)) + 1.0
    if n >= 20:
        idf[df > max(0.2 * n, 3)] = 0.0
    x = x @ sparse.diags(idf.astype(np.float32))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    x = sparse.diags(1.0 / norms) @ x
    words = [""] * len(vocab)
    for w, j in vocab.items():
        words[j] = w
    return sparse.csr_matrix(x), words


def _knn_edges(x, k: int = 10, min_sim: float = 0.05) -> list[tuple[float, int, int]]:
    """Top-``k`` cosine neighbours of each row (blocked sparse products)."""
    import numpy as np

    edges: list[tuple[float, int, int]] = []
    n = x.shape[0]
    xt = x.T.tocsc()
    for start in range(0, n, 2048):
        block = (x[start:start + 2048] @ xt).tocsr()
        for r in range(block.shape[0]):
            lo, hi = block.indptr[r], block.indptr[r + 1]
            idx, val = block.indices[lo:hi], block.data[lo:hi]
            keep = idx != start + r
            idx, val = idx[keep], val[keep]
            if len(val) > k:
                top = np.argpartition(-val, k)[:k]
                idx, val = idx[top], val[top]
            for j, v in zip(idx.tolist(), val.tolist(), strict=True):
                if v >= min_sim:
                    edges.append((v, start + r, j))
    return edges


def _centroid_union(x, edges: list[tuple[float, int, int]], cap: int, tau: float) -> list[int]:
    """Union-find over ``edges`` (strongest first) that merges two groups only while the cosine of
    their centroids stays >= ``tau`` and their size stays <= ``cap`` (centroid linkage: no chaining)."""
    import numpy as np

    n = x.shape[0]
    parent = list(range(n))
    size = [1] * n
    vec: list[dict[int, float]] = []
    for i in range(n):
        lo, hi = x.indptr[i], x.indptr[i + 1]
        vec.append(dict(zip(x.indices[lo:hi].tolist(), x.data[lo:hi].astype(np.float64).tolist(),
                            strict=True)))
    norm2 = [sum(v * v for v in d.values()) for d in vec]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for _, a, b in sorted(edges, reverse=True):
        ra, rb = find(a), find(b)
        if ra == rb or size[ra] + size[rb] > cap:
            continue
        va, vb = vec[ra], vec[rb]
        if len(va) < len(vb):
            ra, rb, va, vb = rb, ra, vb, va
        dot = sum(v * va.get(j, 0.0) for j, v in vb.items())
        if norm2[ra] <= 0 or norm2[rb] <= 0 or dot / (norm2[ra] * norm2[rb]) ** 0.5 < tau:
            continue
        for j, v in vb.items():
            va[j] = va.get(j, 0.0) + v
        norm2[ra] = sum(v * v for v in va.values())
        parent[rb] = ra
        size[ra] += size[rb]
        vec[rb] = {}
    return [find(i) for i in range(n)]


def partition(docs: Sequence[tuple[str, Sequence[str]]], cap: int = 250,
              join_edges: Sequence[tuple[int, int]] = ()) -> list[str]:
    """A domain name for each ``(table name, column names)`` doc; no domain exceeds ``cap`` tables."""
    import numpy as np

    n = len(docs)
    if n == 0:
        return []
    x, words = _matrix(docs)
    edges = _knn_edges(x) + [(1.0, a, b) for a, b in join_edges]
    labels = np.asarray(_centroid_union(x, edges, cap, TAU))
    # Clusters are the domains; tiny ones (< MIN_DOMAIN tables) join their most similar cluster with room,
    # or are packed together in the order of their leading word.
    uniq, inv = np.unique(labels, return_inverse=True)
    clusters: list[list[int]] = [[] for _ in uniq]
    for i, c in enumerate(inv.tolist()):
        clusters[c].append(i)

    def top_words(members: list[int], m: int) -> list[str]:
        sub = np.asarray(x[members].sum(axis=0)).ravel()
        order = np.argsort(-sub, kind="stable")[:m]
        return [words[j] for j in order if sub[j] > 0]

    big = [c for c in clusters if len(c) >= MIN_DOMAIN]
    tiny = [c for c in clusters if len(c) < MIN_DOMAIN]
    if big and tiny:
        cent = np.vstack([np.asarray(x[c].sum(axis=0)).ravel() for c in big])
        cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-9)
        rest = []
        for c in tiny:
            v = np.asarray(x[c].sum(axis=0)).ravel()
            sims = cent @ (v / max(float(np.linalg.norm(v)), 1e-9))
            placed = False
            for j in np.argsort(-sims, kind="stable"):
                if sims[j] <= 0:
                    break
                if len(big[j]) + len(c) <= cap:
                    big[j].extend(c)
                    placed = True
                    break
            if not placed:
                rest.append(c)
        tiny = rest
    lead = [(top_words(c, 1) or [""])[0] for c in tiny]
    bins: list[list[int]] = list(big)
    packed: list[int] = []
    for c in sorted(range(len(tiny)), key=lambda c: lead[c]):
        if packed and len(packed) + len(tiny[c]) > cap:
            bins.append(packed)
            packed = []
        packed = packed + tiny[c]
    if packed:
        bins.append(packed)
    out = [""] * n
    used: set[str] = set()
    assert sum(len(b) for b in bins) == n, "partition lost a table"
    for members in bins:
        base = "_".join(top_words(members, 2)) or "tables"
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        for i in members:
            out[i] = name
    return out


def assign(docs: Sequence[tuple[str, Sequence[str]]], previous: Sequence[str | None], cap: int = 250,
           join_edges: Sequence[tuple[int, int]] = ()) -> list[str]:
    """Domains that keep ``previous`` assignments where given; new tables join the closest domain.

    Falls back to a fresh :func:`partition` when fewer than half of the tables have an assignment or a
    new table finds no domain with room.
    """
    n = len(docs)
    known = [p for p in previous if p]
    if n == 0 or len(known) * 2 < n or max(Counter(known).values()) > cap:
        return partition(docs, cap, join_edges)  # mostly new, or a domain outgrew the cap
    if len(known) == n:  # no new table: every table keeps its domain (what the loop below returns)
        return [str(o) for o in previous]
    import numpy as np

    x, _ = _matrix(docs)
    out = list(previous)
    counts = Counter(known)
    doms = sorted(counts)
    idx = {d: i for i, d in enumerate(doms)}
    cent = np.zeros((len(doms), x.shape[1]), np.float32)
    for i, p in enumerate(previous):
        if p:
            cent[idx[p]] += x[i].toarray().ravel()
    for i, p in enumerate(previous):
        if p:
            continue
        sims = cent @ x[i].toarray().ravel()
        for j in np.argsort(-sims, kind="stable"):
            if counts[doms[j]] < cap:
                out[i] = doms[j]
                counts[doms[j]] += 1
                break
        else:
            return partition(docs, cap, join_edges)
    return [str(o) for o in out]
