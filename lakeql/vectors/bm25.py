"""BM25 over an embedded text column, for ``hybrid_search`` (keyword + vector scores fused).

Built by ``--embed TABLE.COLUMN --embed-bm25`` beside the codes (``bm25/`` in the embed folder), over
exactly the rows that have a code, so both searches share code positions (and the pre-filter mask).
Words are maximal runs of Unicode word characters (``\\w+``), lower-cased (``str.lower``); no stemming,
no stop words (BM25's IDF discounts frequent words). Scores are Okapi BM25 (``k1 = 1.2``, ``b = 0.75``),
precomputed per (word, row) and stored as float16 postings ordered by word (a CSC matrix):

    bm25/postings.npz   indptr (words + 1) int64, rows int32 (code positions), weights float16
    bm25/terms.parquet  one row per word, in word-id order

A query sums the postings of its words (``numpy.bincount``): its cost is the number of postings read,
not the number of rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakeql.errors import CorruptIndexError

WORD = re.compile(r"\w+")
K1, B = 1.2, 0.75


def words(text: str) -> list[str]:
    """The BM25 tokens of ``text``: lower-cased ``\\w+`` runs."""
    return WORD.findall(str(text).lower())


def build(texts: Iterable[str], folder: Path) -> int:
    """Write the BM25 postings of ``texts`` (one per code position, in order) into ``folder``; bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy import sparse

    vocab: dict[str, int] = {}
    rows, cols, counts, lengths = [], [], [], []
    for pos, text in enumerate(texts):
        toks = words(text)
        lengths.append(len(toks))
        if not toks:
            continue
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), np.int64, len(toks))
        uniq, cnt = np.unique(ids, return_counts=True)
        rows.append(np.full(len(uniq), pos, np.int32))
        cols.append(uniq)
        counts.append(cnt)
    n = len(lengths)
    dl = np.asarray(lengths, np.float64)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    tf = np.concatenate(counts).astype(np.float64) if counts else np.zeros(0)
    df = np.bincount(c, minlength=len(vocab)).astype(np.float64)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    avgdl = max(float(dl.mean()) if n else 1.0, 1e-9)
    w = idf[c] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl[r] / avgdl))
    m = sparse.csc_matrix((w.astype(np.float32), (r, c)), shape=(n, len(vocab)))
    m.sort_indices()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "postings.npz", indptr=m.indptr.astype(np.int64), rows=m.indices.astype(np.int32),
             weights=m.data.astype(np.float16), n=np.int64(n))
    terms = [""] * len(vocab)
    for t, i in vocab.items():
        terms[i] = t
    pq.write_table(pa.table({"term": pa.array(terms, pa.string())}), folder / "terms.parquet",
                   compression="zstd")
    return sum(p.stat().st_size for p in folder.iterdir())


@dataclass
class BM25Index:
    """Loaded postings of one column (cached per connection with its code store)."""

    vocab: dict[str, int]
    indptr: np.ndarray
    rows: np.ndarray
    weights: np.ndarray
    n: int

    @classmethod
    def load(cls, folder: Path, label: str) -> BM25Index:
        import pyarrow.parquet as pq

        try:
            with np.load(folder / "postings.npz") as z:
                indptr, rows, weights, n = z["indptr"], z["rows"], z["weights"], int(z["n"])
            terms = pq.read_table(folder / "terms.parquet").column("term").to_pylist()
            if len(indptr) != len(terms) + 1 or len(rows) != len(weights) or int(indptr[-1]) != len(rows):
                raise ValueError("postings do not match the word list")
        except Exception as exc:  # noqa: BLE001 - any read failure means a damaged index
            raise CorruptIndexError(f"the BM25 part of the embed index of {label} is corrupt "
                                    f"({type(exc).__name__}: {exc}): rebuild it with 'lakeql index LAKE "
                                    f"--embed {label} --embed-bm25'") from None
        return cls({t: i for i, t in enumerate(terms)}, indptr, rows, weights, n)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every code position for ``query`` (zeros where no query word occurs)."""
        ids = [self.vocab[t] for t in words(query) if t in self.vocab]
        if not ids:
            return np.zeros(self.n, np.float32)
        spans = [slice(self.indptr[i], self.indptr[i + 1]) for i in ids]  # a repeated word counts again
        parts = [(self.rows[sp], self.weights[sp]) for sp in spans]
        r = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1] for p in parts]).astype(np.float32)
        return np.bincount(r, weights=w, minlength=self.n).astype(np.float32)

    def top(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(code positions, scores) of the ``k`` best rows with a positive score, best first."""
        s = self.scores(query)
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        hit = np.flatnonzero(s > 0)
        if len(hit) > k:
            hit = hit[np.argpartition(-s[hit], k - 1)[:k]]
        order = np.lexsort((hit, -s[hit]))
        return hit[order], s[hit[order]]


def fuse(vec: tuple[np.ndarray, np.ndarray], kw: tuple[np.ndarray, np.ndarray], k: int,
         fusion: str = "rrf", weight: float = 0.5, rrf_k: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Fuse two ranked lists of (positions, scores), best first, into the top ``k`` (positions, scores).

    ``rrf``: reciprocal-rank fusion, ``weight / (rrf_k + rank_vec) + (1 - weight) / (rrf_k + rank_bm25)``
    (ranks from 1; ``weight = 0.5`` is plain RRF up to a factor 2). ``weighted``: ``weight * cosine +
    (1 - weight) * bm25 / max(bm25)`` over the union (a missing score counts 0).
    """
    pos = np.unique(np.concatenate([vec[0], kw[0]]))
    score = np.zeros(len(pos), np.float64)
    for is_kw, (p, s), w in ((False, vec, weight), (True, kw, 1.0 - weight)):
        if not len(p):
            continue
        at = np.searchsorted(pos, p)
        if fusion == "rrf":
            score[at] += w / (rrf_k + np.arange(1, len(p) + 1))
        else:
            top = float(np.max(s)) if is_kw else 1.0
            score[at] += w * np.asarray(s, np.float64) / (top if top > 0 else 1.0)
    order = np.lexsort((pos, -score))[:k]
    return pos[order], score[order].astype(np.float32)
