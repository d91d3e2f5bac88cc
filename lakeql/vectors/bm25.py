"""BM25 over an embedded text column, for ``hybrid_search`` (keyword + vector scores fused).

Built by ``--embed TABLE.COLUMN --embed-bm25`` beside the codes (``bm25/`` in the embed folder), over
exactly the rows that have a code (merged from the word counts each shard keeps, :func:`build_merged`, so
``--refresh`` counts the words of new files only), so both searches share code positions (and the
pre-filter mask).
Words (tokenizer version 2, :data:`TOKENIZER_VERSION`; the index records the version it was made with in
its parameters, ``bm25``, and a query is cut by the same version): the text is NFKC-normalized (ligatures,
fullwidth forms, decomposed accents), soft hyphens and zero-width (non-)joiners are removed, and it is
case-folded (``STRASSE`` and ``straße`` are one word); words are maximal runs of Unicode word characters
(``\\w``, letters and digits of every script) and the combining marks that follow them (Hindi vowel signs,
Hebrew points, Arabic harakat). Scripts written without spaces between words (Chinese, Japanese kana, Korean
Hangul, Thai, Lao, Khmer, Myanmar) become overlapping character pairs (``東京都`` -> ``東京``, ``京都``; a
lone character stays one word), so a query word matches inside a longer run. Version 1 (indexes built
before 2026-12-07, recorded as ``bm25: true``): lower-cased ``\\w+`` runs, a CJK run one word. No stemming,
no stop words (BM25's IDF discounts frequent words). Scores are Okapi BM25 (``k1 = 1.2``, ``b = 0.75``),
precomputed per (word, row) and stored as float16 postings ordered by word (a CSC matrix):

    bm25/postings.npz   indptr (words + 1) int64, rows int32 (code positions), weights float16
    bm25/terms.parquet  one row per word, in word-id order

A query sums the postings of its words (``numpy.bincount``): its cost is the number of postings read,
not the number of rows.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakeql import arrays, parquet_io
from lakeql.errors import CorruptIndexError

WORD = re.compile(r"\w+")
K1, B = 1.2, 0.75
TOKENIZER_VERSION = 2  # recorded in the index parameters (``bm25``); 1 (``true``): lower-cased \w+ runs
# scripts written without spaces between words: their runs become overlapping character pairs
_NOSPACE = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3005-\u3007\u3040-\u30ff\u3130-\u318f"
            "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
_NOSPACE_RUN = re.compile(f"([{_NOSPACE}]+)")
_JOINERS = dict.fromkeys(map(ord, "\u00ad\u200c\u200d\u2060\ufeff"))  # removed: they join, not split


@functools.cache
def _word_re() -> re.Pattern:
    """A word: a word character, then word characters and combining marks (Unicode category M, which
    ``\\w`` leaves out: without them ``हिन्दी`` or a pointed Hebrew word would fall apart)."""
    marks, start = [], None
    for c in [*range(0x300, 0x1E950), *range(0xE0100, 0xE01F0), sys.maxunicode + 1]:
        is_mark = c <= sys.maxunicode and unicodedata.category(chr(c))[0] == "M"
        if is_mark and start is None:
            start = c
        elif not is_mark and start is not None:
            marks.append(f"{re.escape(chr(start))}-{re.escape(chr(c - 1))}")
            start = None
    return re.compile(f"\\w[\\w{''.join(marks)}]*")


def words(text: str, version: int = TOKENIZER_VERSION) -> list[str]:
    """The BM25 tokens of ``text`` by tokenizer ``version`` (see the module's docstring)."""
    text = str(text)
    if int(version) < 2:
        return WORD.findall(text.lower())
    if text.isascii():
        return WORD.findall(text.lower())  # ASCII: what version 2 gives, fast
    text = unicodedata.normalize("NFKC", text).translate(_JOINERS).casefold()
    found = _word_re().findall(text)
    if not _NOSPACE_RUN.search(text):  # no script without spaces: the words as found
        return found
    out: list[str] = []
    for w in found:
        if not _NOSPACE_RUN.search(w):
            out.append(w)
            continue
        for i, part in enumerate(_NOSPACE_RUN.split(w)):
            if not part:
                continue
            if i % 2 and len(part) > 1:  # a run without spaces: overlapping pairs
                out += [part[j:j + 2] for j in range(len(part) - 1)]
            else:
                out.append(part)
    return out


def index_version(meta: dict) -> int:
    """The tokenizer version of an index from its parameters (``bm25: true``: version 1)."""
    v = meta.get("bm25")
    return int(v) if isinstance(v, (int, float)) else TOKENIZER_VERSION


@dataclass
class TermCounts:
    """The words of a run of texts (one shard's rows): what BM25 needs, before any corpus statistic.

    Row ``i``'s distinct words are ``ids[indptr[i]:indptr[i + 1]]`` (ids into ``terms``, in the order of
    first occurrence in these texts) with counts ``tf``; ``lengths[i]`` is its number of words.
    """

    terms: list[str]
    indptr: np.ndarray  # (rows + 1,) int64
    ids: np.ndarray  # int32
    tf: np.ndarray  # int32
    lengths: np.ndarray  # (rows,) int32

    @property
    def rows(self) -> int:
        return len(self.lengths)


def term_counts(texts: Iterable[str], version: int = TOKENIZER_VERSION) -> TermCounts:
    """Count the words of ``texts`` (one row each, in order) as tokenizer ``version`` cuts them."""
    vocab: dict[str, int] = {}
    ids, counts, lengths, per_row = [], [], [], []
    for text in texts:
        toks = words(text, version)
        lengths.append(len(toks))
        if not toks:
            per_row.append(0)
            continue
        tid = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), np.int64, len(toks))
        uniq, cnt = np.unique(tid, return_counts=True)
        ids.append(uniq)
        counts.append(cnt)
        per_row.append(len(uniq))
    terms = [""] * len(vocab)
    for t, i in vocab.items():
        terms[i] = t
    indptr = np.concatenate([[0], np.cumsum(np.asarray(per_row, np.int64))]).astype(np.int64)
    return TermCounts(terms, indptr,
                      np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, np.int32),
                      np.concatenate(counts).astype(np.int32) if counts else np.zeros(0, np.int32),
                      np.asarray(lengths, np.int32))


def write_counts(counts: TermCounts, folder: Path) -> None:
    """Keep one shard's :class:`TermCounts` (``bm25.npz`` + ``bm25_terms.parquet`` in ``folder``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    np.savez(folder / "bm25.npz", indptr=counts.indptr, ids=counts.ids, tf=counts.tf, lengths=counts.lengths)
    pq.write_table(pa.table({"term": pa.array(counts.terms, pa.string())}), folder / "bm25_terms.parquet",
                   compression="zstd")


def read_counts(folder: Path) -> TermCounts:
    with np.load(folder / "bm25.npz") as z:
        indptr, ids, tf, lengths = z["indptr"], z["ids"], z["tf"], z["lengths"]
    terms = parquet_io.read_table(folder / "bm25_terms.parquet").column("term").to_pylist()
    if len(indptr) != len(lengths) + 1 or int(indptr[-1]) != len(ids) or len(ids) != len(tf):
        raise ValueError("the term counts of a shard do not match")
    return TermCounts(terms, indptr, ids, tf, lengths)


def build(texts: Iterable[str], folder: Path, version: int = TOKENIZER_VERSION) -> int:
    """Write the BM25 postings of ``texts`` (one per code position, in order) into ``folder``; bytes."""
    return build_merged([term_counts(texts, version)], folder)


def build_merged(parts: list[TermCounts], folder: Path) -> int:
    """Write the BM25 postings of the rows of ``parts`` (shards, in code-position order) into ``folder``.

    Corpus statistics (IDF, mean length) are over every part, so the result equals :func:`build` of all
    the texts at once; words are numbered in order of first occurrence, as :func:`build` numbers them.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy import sparse

    vocab: dict[str, int] = {}
    rows, cols, tfs, lengths = [], [], [], []
    start = 0
    for part in parts:
        lmap = np.fromiter((vocab.setdefault(t, len(vocab)) for t in part.terms), np.int64, len(part.terms))
        rows.append(start + np.repeat(np.arange(part.rows, dtype=np.int64), np.diff(part.indptr)))
        cols.append(lmap[part.ids] if len(part.ids) else np.zeros(0, np.int64))
        tfs.append(part.tf)
        lengths.append(part.lengths)
        start += part.rows
    n = start
    dl = np.concatenate(lengths).astype(np.float64) if lengths else np.zeros(0)
    r = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    tf = np.concatenate(tfs).astype(np.float64) if tfs else np.zeros(0)
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
    version: int = TOKENIZER_VERSION  # the tokenizer that cut the indexed texts: queries are cut the same

    @classmethod
    def load(cls, folder: Path, label: str, version: int = TOKENIZER_VERSION) -> BM25Index:
        try:
            with np.load(folder / "postings.npz") as z:
                indptr, rows, weights, n = z["indptr"], z["rows"], z["weights"], int(z["n"])
            terms = parquet_io.read_table(folder / "terms.parquet").column("term").to_pylist()
            if len(indptr) != len(terms) + 1 or len(rows) != len(weights) or int(indptr[-1]) != len(rows):
                raise ValueError("postings do not match the word list")
        except Exception as exc:  # noqa: BLE001 - any read failure means a damaged index
            raise CorruptIndexError(f"the BM25 part of the embed index of {label} is corrupt "
                                    f"({type(exc).__name__}: {exc}): rebuild it with 'lakeql index LAKE "
                                    f"--embed {label} --embed-bm25'") from None
        return cls({t: i for i, t in enumerate(terms)}, indptr, rows, weights, n, int(version))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every code position for ``query`` (zeros where no query word occurs)."""
        ids = [self.vocab[t] for t in words(query, self.version) if t in self.vocab]
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
    pos = arrays.unique(np.concatenate([vec[0], kw[0]]))
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
