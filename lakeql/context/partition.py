"""Automatic domains for a flat lake: clusters of at most ``cap`` tables that belong together.

Tables are TF-IDF vectors of the words of their names (weight 2) and column names (weight 1), with words
shared by more than a fifth of the tables dropped (``id``, ``name``...). Clustering is size-capped
single linkage: edges of a 10-nearest-neighbour graph (plus join-graph edges, weight 1) are merged
strongest first with union-find, never past ``cap`` tables; two more rounds repeat that on cluster
centroids; finally the clusters are packed, in the order of their leading word, into domains of at most
``cap`` tables. Everything is sparse matrix algebra (scipy), so 10,000 tables take about a second.

Each domain is named after its most characteristic words (``singer_concert``); names are unique.
Re-partitioning keeps earlier assignments of unchanged tables (see :func:`assign`), so an incremental run
does not move files around.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from lakeql.context.text import tokens


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


def _capped_union(n: int, edges: list[tuple[float, int, int]], sizes: list[int], cap: int) -> list[int]:
    """Union-find over ``edges`` (strongest first) that never builds a group heavier than ``cap``."""
    parent = list(range(n))
    weight = list(sizes)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for _, a, b in sorted(edges, reverse=True):
        ra, rb = find(a), find(b)
        if ra != rb and weight[ra] + weight[rb] <= cap:
            parent[rb] = ra
            weight[ra] += weight[rb]
    return [find(i) for i in range(n)]


def partition(docs: Sequence[tuple[str, Sequence[str]]], cap: int = 250,
              join_edges: Sequence[tuple[int, int]] = ()) -> list[str]:
    """A domain name for each ``(table name, column names)`` doc; no domain exceeds ``cap`` tables."""
    import numpy as np
    from scipy import sparse

    n = len(docs)
    if n == 0:
        return []
    x, words = _matrix(docs)
    edges = _knn_edges(x) + [(1.0, a, b) for a, b in join_edges]
    labels = np.asarray(_capped_union(n, edges, [1] * n, cap))
    for _ in range(2):  # merge clusters on their centroids, still capped
        uniq, inv = np.unique(labels, return_inverse=True)
        member = sparse.csr_matrix((np.ones(n, np.float32), (inv, np.arange(n))), shape=(len(uniq), n))
        cent = member @ x
        norms = np.sqrt(np.asarray(cent.multiply(cent).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        cent = sparse.csr_matrix(sparse.diags(1.0 / norms) @ cent)
        sizes = np.asarray(member.sum(axis=1)).ravel().astype(int).tolist()
        merged = _capped_union(len(uniq), _knn_edges(cent, k=5, min_sim=0.15), sizes, cap)
        labels = np.asarray(merged)[inv]
    # Pack clusters into domains of <= cap tables, ordered by their leading word so neighbours meet.
    uniq, inv = np.unique(labels, return_inverse=True)
    clusters: list[list[int]] = [[] for _ in uniq]
    for i, c in enumerate(inv.tolist()):
        clusters[c].append(i)

    def top_words(members: list[int], m: int) -> list[str]:
        sub = np.asarray(x[members].sum(axis=0)).ravel()
        order = np.argsort(-sub, kind="stable")[:m]
        return [words[j] for j in order if sub[j] > 0]

    lead = [(top_words(c, 1) or [""])[0] for c in clusters]
    order = sorted(range(len(clusters)), key=lambda c: (lead[c], -len(clusters[c])))
    bins: list[list[int]] = []
    small = max(1, cap // 10)
    for c in order:
        members = clusters[c]
        if bins and len(bins[-1]) + len(members) <= cap and (len(members) < small or len(bins[-1]) < small):
            bins[-1].extend(members)
        else:
            bins.append(list(members))
    out = [""] * n
    used: set[str] = set()
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
    if n == 0 or len(known) * 2 < n:
        return partition(docs, cap, join_edges)
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
