"""``schema_context(question, k)``: which schema files an agent should open for a question.

Every table file is a document. Its score for a question is a hybrid of
* BM25 over its words (table and column names split at ``_``/camelCase, plural-folded, descriptions,
  non-numeric sample values), computed as one sparse matrix-vector product, and
* the cosine between the question's and the table's MiniLM embeddings (table and column names),
fused as ``BM25 / max BM25 + W_EMB * cosine``.

A domain scores as its best table, plus BM25 over all of its words, plus the cosine with the mean of its
tables' embeddings (weights below; chosen on a 300-question sample of Spider dev, see
benchmarks/results/schemas.md). Units: ``table`` returns the ``k`` best table files; ``domain`` the
``k`` best domains' ``_DOMAIN.md`` overviews (one line per table with every column and type, so a
question joining several tables sees all their names in one compact file); ``auto`` (the default) walks
the best domains and returns each one's overview when it is at most :data:`AUTO_MAX_BYTES`, else that
domain's best table file.

Embeddings of the table files are computed on the first ``schema_context`` call (or at index time with
``--schemas-embed``) and cached beside them (``.lakeql-embeddings.npz`` keyed by the hash of the model and
each table's embedding text: names and descriptions), so later calls, processes and incremental builds
re-encode only tables whose names or descriptions changed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeql import parquet_io
from lakeql.context.generate import FILES
from lakeql.context.text import tokens
from lakeql.errors import CorruptIndexError, LakeqlError, shown

EMB = ".lakeql-embeddings.npz"
OLD_CACHE = (".lakeql-embeddings.npy", ".lakeql-embeddings.json")  # the cache format before (by file hash)
W_EMB = 2.0  # weight of the table embedding cosine against max-normalized table BM25
W_SECOND = 0.0  # weight of a domain's second-best table
W_DOMAIN_BM25 = 0.5  # weight of BM25 over the whole domain's words (max-normalized)
W_DOMAIN_EMB = 2.0  # weight of the cosine with the domain's mean table embedding
AUTO_MAX_BYTES = 32_768  # 'auto' returns a domain overview up to this size, else its best table file
K1, B = 1.2, 0.75
UNITS = ("auto", "table", "domain")


@dataclass(frozen=True)
class Weights:
    """Fusion weights (the module constants are the defaults; benchmarks/schemas.py tunes them)."""

    emb: float = W_EMB
    second: float = W_SECOND
    domain_bm25: float = W_DOMAIN_BM25
    domain_emb: float = W_DOMAIN_EMB


def _listing(out: Path):
    path = out / FILES
    try:
        return parquet_io.read_table(path).to_pylist()
    except FileNotFoundError:
        raise CorruptIndexError(f"the schema file listing {str(path)!r} is missing: run 'lakeql index "
                                "--refresh LAKE'") from None
    except Exception as exc:  # noqa: BLE001 - any read failure is a corrupt listing
        raise CorruptIndexError(f"the schema file listing {str(path)!r} is unreadable ({exc}): run "
                                "'lakeql index --refresh LAKE'") from None


def _text_key(model: str, text: str) -> str:
    return hashlib.sha1(f"{model}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _load_cache(out: Path) -> dict[str, Any]:
    """key -> vector from ``.lakeql-embeddings.npz`` (empty when missing or unreadable)."""
    import zipfile

    import numpy as np

    path = out / EMB
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if "channels" in z.files and _channels_entry(z) is None:
                return {}  # a damaged channel record: which graph made the vectors is unknown
            keys, vecs = z["keys"].tolist(), z["vecs"]
        return dict(zip(keys, vecs, strict=True)) if len(keys) == len(vecs) else {}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: embedded again
        return {}


def cached_channels(out: str | Path | None) -> str | None:
    """The ``onnx-int8-outlier`` channels recorded in ``out/.lakeql-embeddings.npz`` (its ``channels``
    entry; the vectors are not read): the graph its vectors were made with, which the folder's encoder
    is pinned to (:func:`encoder`). None: no folder or cache, not recorded (an older lakeql), unreadable."""
    import zipfile

    import numpy as np

    if out is None or not (Path(out) / EMB).exists():
        return None
    try:
        with np.load(Path(out) / EMB, allow_pickle=False) as z:
            return _channels_entry(z) if "channels" in z.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _channels_entry(z: Any) -> str | None:
    """The canonical channel set of an open cache's ``channels`` entry; None when it is damaged (not one
    string, or not a channel set: :func:`lakeql.onnx_encoder.parse_channels`), so the cache is embedded
    again (:func:`_load_cache`) instead of failing every build and query of the folder."""
    from lakeql.errors import LakeqlError
    from lakeql.onnx_encoder import channels_text, parse_channels

    got = z["channels"]
    if got.dtype.kind != "U" or got.size != 1 or got.dtype.itemsize > 16_000_000:
        return None
    try:
        return channels_text(parse_channels(str(got.item()), "the schema embeddings cache"))
    except LakeqlError:
        return None


def _save_cache(out: Path, cache: dict[str, Any], keep: list[str], channels: str | None = None) -> bool:
    """Write the vectors of ``keep`` atomically (a unique temp name, then rename), with the encoder's
    ``channels`` when known (:func:`cached_channels`); False when the folder is not writable (the vectors
    then live in memory for this process only)."""
    import numpy as np

    tmp = out / f".tmp-{os.getpid()}-{threading.get_ident()}{EMB}"
    extra = {"channels": np.asarray(channels, dtype=str)} if channels is not None else {}
    try:
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.asarray(keep, dtype=str),
                     vecs=np.stack([cache[k] for k in keep]).astype(np.float32), **extra)
        os.replace(tmp, out / EMB)
        for old in OLD_CACHE:
            (out / old).unlink(missing_ok=True)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return True


BACKENDS = ("auto", "onnx", "onnx-int8", "onnx-int8-token", "onnx-int8-outlier", "torch", "torch-int8")


def encoder(backend: str = "auto", out: str | Path | None = None) -> tuple[Any, str]:
    """(model, cache label) of the schema embeddings' encoder for schema folder ``out`` (an
    ``onnx-int8-outlier`` encoder is pinned to the channels its cached vectors recorded,
    :func:`cached_channels`, so every machine embeds its questions and new tables with that graph).

    ``auto``: the backend :func:`lakeql.embedding.resolve_backend` picks for the packaged MiniLM,
    ``onnx-int8-outlier`` (:mod:`lakeql.onnx_encoder`: mean cosine 0.999 to torch, 4.4x the sentences/s
    of torch here and no torch import in a query process); when that export is not possible, torch
    float32 with a warning. A schema folder embedded by an older default (``onnx-fp32`` in the cache)
    keeps it: callers pass ``auto`` through :func:`cached_backend` first (``auto-fp32`` here).
    ``onnx-int8`` is faster still with vectors that move slightly
    with their batch; Spider dev quality is the same within 0.01 for all (benchmarks/results/schemas.md).
    Tables and questions are always encoded by the same encoder: the cache label names it (``onnx`` as
    ``onnx-fp32``, since the cache of older lakeqls labelled their int8 vectors ``onnx``).
    """
    from lakeql.embedding import AUTO_FP32, load_or_torch, model_id
    from lakeql.errors import LakeqlError

    if backend not in (*BACKENDS, AUTO_FP32):
        raise LakeqlError(f"unknown schema embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
    model, used = load_or_torch(None, backend, "schema embeddings", cached_channels(out))
    return model, f"{model_id(None)}:{label_of(used)}"


def _cached_keys(out: Path) -> set[str]:
    """The keys of ``.lakeql-embeddings.npz`` (its vectors are not read); empty when missing or unreadable."""
    import zipfile

    import numpy as np

    path = out / EMB
    if not path.exists():
        return set()
    try:
        with np.load(path, allow_pickle=False) as z:
            return set(z["keys"].tolist())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return set()


def cached_backend(out: str | Path, backend: str, rows: list[dict] | None = None) -> str:
    """The backend that embeds schema folder ``out`` for the option ``backend``: a named backend as it
    is; ``auto`` keeps the encoder the folder's cached vectors were made with (as ``--embed`` keeps a
    column's encoder), so a folder the previous default embedded (float32 ``onnx``, label ``onnx-fp32``,
    before 2026-12-07) is neither embedded again by its first query (17 s for 2,000 tables, minutes for
    10,000; every process for a read-only folder) nor mixed by a refresh: :data:`lakeql.embedding.
    AUTO_FP32` when more of its tables have float32 vectors than vectors of the current default, else
    ``auto``. Reads the cache's keys and hashes each table's text twice (no model load)."""
    from lakeql.embedding import AUTO, AUTO_FP32, model_id, resolve_backend

    if backend != AUTO:
        return backend
    out = Path(out)
    have = _cached_keys(out)
    if not have:
        return backend
    try:
        rows = rows if rows is not None else _listing(out)
    except CorruptIndexError:
        return backend
    texts = [r["embed_text"] or "" for r in rows if r["kind"] == "table"]
    name = model_id(None)
    now = f"{name}:{label_of(resolve_backend(None, AUTO))}"
    fp32 = f"{name}:{label_of(resolve_backend(None, AUTO_FP32))}"
    if fp32 == now:
        return backend
    hits_now = sum(_text_key(now, t) in have for t in texts)
    hits_fp32 = sum(_text_key(fp32, t) in have for t in texts)
    return AUTO_FP32 if hits_fp32 > hits_now else backend


def label_of(backend: str) -> str:
    """The name of ``backend`` in the embeddings cache key (``onnx``: ``onnx-fp32``)."""
    return "onnx-fp32" if backend == "onnx" else backend


def ensure_embeddings(out: str | Path, model: Any = None, rows: list[dict] | None = None,
                      stats: dict[str, Any] | None = None, label: str | None = None):
    """Embeddings of every table file's embedding text; returns (file shas, matrix).

    Cached in ``out/.lakeql-embeddings.npz`` keyed by the hash of (model, text), not of the file: a table
    whose data changed but whose names and descriptions did not is not re-encoded. Only missing texts
    are encoded, in batches sorted by length (:func:`lakeql.embedding.encode`). ``stats`` (when given)
    receives ``encoded`` (texts encoded now) and ``seconds``. ``label`` names the encoder in the cache
    key (default: the model's name, or ``object:<class>`` for a model object).
    """
    import time

    import numpy as np

    from lakeql.embedding import channels, encode, model_id

    t0 = time.perf_counter()
    out = Path(out)
    rows = rows if rows is not None else _listing(out)
    label = label or (model_id(model) if model is None or isinstance(model, str)
                      else f"object:{getattr(model, 'lakeql_id', type(model).__name__)}")
    tables = [r for r in rows if r["kind"] == "table"]
    keys = [_text_key(label, r["embed_text"] or "") for r in tables]
    cache = _load_cache(out)
    missing = {k: r["embed_text"] or "" for k, r in zip(keys, tables, strict=True) if k not in cache}
    if missing:
        vecs = encode(list(missing.values()), model=model, desc="schema embeddings")
        cache.update(zip(missing, vecs, strict=True))
    keep = list(dict.fromkeys(keys))
    if keep and (missing or len(cache) != len(keep)):
        # the encoder's channels, unless kept vectors were made before they were recorded (unknown)
        made = channels(model) if model is not None and not isinstance(model, str) else None
        known = cached_channels(out) is not None or len(set(missing)) == len(keep)
        _save_cache(out, cache, keep, made if known else None)
    mat = np.stack([cache[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)
    if stats is not None:
        stats.update(encoded=len(missing), seconds=time.perf_counter() - t0)
    return [r["sha"] for r in tables], mat.astype(np.float32, copy=False)


class Bm25:
    """Okapi BM25 over a fixed set of documents, as a sparse (docs x terms) weight matrix."""

    def __init__(self, docs: list[list[str]]) -> None:
        import numpy as np
        from scipy import sparse

        self.vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for i, d in enumerate(docs):
            counts: dict[int, int] = {}
            for t in d:
                j = self.vocab.setdefault(t, len(self.vocab))
                counts[j] = counts.get(j, 0) + 1
            rows.extend([i] * len(counts))
            cols.extend(counts)
            vals.extend(counts.values())
        n, v = len(docs), max(len(self.vocab), 1)
        tf = sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n, v))
        dl = np.asarray([len(d) for d in docs], np.float32)
        avg = float(dl.mean()) if n else 1.0
        df = np.bincount(np.asarray(cols, np.int64), minlength=v).astype(np.float32)
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = K1 * (1 - B + B * dl / max(avg, 1e-9))
        tf = tf.tocoo()
        w = tf.data * (K1 + 1) / (tf.data + norm[tf.row]) * self.idf[tf.col]
        self.w = sparse.csc_matrix((w, (tf.row, tf.col)), shape=(n, v))
        self.n = n

    def scores(self, query: list[str]):
        import numpy as np

        idx = sorted({self.vocab[t] for t in query if t in self.vocab})
        if not idx:
            return np.zeros(self.n, np.float32)
        return np.asarray(self.w[:, idx].sum(axis=1)).ravel()


@dataclass
class SchemaIndex:
    """The loaded retrieval index of one schema folder (cached per connection)."""

    out: Path
    tables: list[dict[str, Any]]
    domains: dict[str, dict[str, Any]]
    bm25: Bm25
    emb: Any  # float32 (n_tables x dim) or None
    model: Any = None
    dom_names: list[str] | None = None
    dom_of_table: Any = None  # int array: domain position of each table
    dom_bm25: Bm25 | None = None
    dom_emb: Any = None  # normalized mean table embedding per domain
    weights: Weights = Weights()

    @classmethod
    def load(cls, out: str | Path, embed: bool = True, model: Any = None, backend: str | None = None
             ) -> SchemaIndex:
        """Load the listing, build BM25, and embed (cached) the table files.

        ``backend`` (see :func:`encoder`) picks the encoder when no ``model`` is given; without both,
        the default torch model (as before backends existed)."""
        label = None
        if model is None and backend is not None and embed:
            model, label = encoder(backend, out)
        out = Path(out)
        rows = _listing(out)
        tables = [r for r in rows if r["kind"] == "table"]
        domains = {r["domain"]: r for r in rows if r["kind"] == "domain"}
        bm25 = Bm25([tokens(r["search_text"] or "") for r in tables])
        emb = ensure_embeddings(out, model, rows, label=label)[1] if embed else None
        import numpy as np

        names = sorted({r["domain"] for r in tables})
        pos = {d: i for i, d in enumerate(names)}
        dom_of = np.asarray([pos[r["domain"]] for r in tables], np.int64)
        dom_bm25 = Bm25([tokens((domains.get(d) or {}).get("search_text") or "") for d in names])
        dom_emb = None
        if emb is not None and len(tables):
            dom_emb = np.zeros((len(names), emb.shape[1]), np.float32)
            np.add.at(dom_emb, dom_of, emb)
            dom_emb /= np.maximum(np.linalg.norm(dom_emb, axis=1, keepdims=True), 1e-9)
        return cls(out, tables, domains, bm25, emb, model, names, dom_of, dom_bm25, dom_emb)

    def _qvec(self, question: str, qvec: Any):
        """The question's embedding. A question the encoder reads as unknown tokens only (emoji, a script
        outside its vocabulary) gets zeros: its vector is the one all such text gets and would rank files
        by noise; BM25 alone ranks it, and with no word of the files either it is refused."""
        if qvec is None and self.emb is not None:
            import numpy as np

            from lakeql.embedding import encode, load_model, only_unknown_tokens

            model = self.model
            if model is None or isinstance(model, str):
                model = load_model(model)
            if only_unknown_tokens(model, question):
                if not self._has_words(question):
                    raise LakeqlError(
                        f"the model knows no token of the question {shown(question, 60)} and no schema file "
                        "has any of its words: ask in words of the lake (English names and descriptions), "
                        "e.g. 'which tables hold sales by country?'")
                return np.zeros(self.emb.shape[1], np.float32)
            qvec = encode([question], model=model, desc="question")[0]
        return qvec

    def _has_words(self, question: str) -> bool:
        """Whether BM25 finds any word of ``question`` in a table or domain file."""
        words = tokens(question)
        return any(b is not None and len(sc := b.scores(words)) and float(sc.max()) > 0
                   for b in (self.bm25, self.dom_bm25))

    def table_scores(self, question: str, qvec: Any = None):
        """Hybrid score of every table file for ``question`` (``qvec``: its embedding, if known)."""
        import numpy as np

        s = self.bm25.scores(tokens(question))
        top = float(s.max()) if len(s) else 0.0
        score = s / top if top > 0 else s
        qvec = self._qvec(question, qvec)
        if self.emb is not None and len(self.tables):
            score = score + self.weights.emb * (self.emb @ np.asarray(qvec, np.float32))
        return score

    def domain_scores(self, tscore, question: str = "", qvec: Any = None) -> dict[str, float]:
        """Score of each domain: its best table, plus BM25 over all its words and its mean embedding."""
        import numpy as np

        nd = len(self.dom_names or [])
        best = np.full(nd, -np.inf)
        np.maximum.at(best, self.dom_of_table, tscore)
        score = best.copy()
        w = self.weights
        if w.second:
            masked = np.where(tscore >= best[self.dom_of_table], -np.inf, tscore)
            second = np.full(nd, -np.inf)
            np.maximum.at(second, self.dom_of_table, masked)
            score += w.second * np.where(np.isfinite(second), second, 0.0)
        if question and self.dom_bm25 is not None:
            b = self.dom_bm25.scores(tokens(question))
            top = float(b.max()) if len(b) else 0.0
            if top > 0:
                score += w.domain_bm25 * b / top
        qvec = self._qvec(question, qvec) if question else qvec
        if self.dom_emb is not None and qvec is not None:
            score += w.domain_emb * (self.dom_emb @ np.asarray(qvec, np.float32))
        return dict(zip(self.dom_names or [], score.tolist(), strict=True))

    def pick(self, question: str, k: int, unit: str = "auto", qvec: Any = None
             ) -> list[tuple[str, float]]:
        """The ``k`` files (path relative to the schema folder, score) for ``question``."""
        import numpy as np

        if unit not in UNITS:
            raise LakeqlError(f"unknown unit {shown(unit)}: use one of {', '.join(UNITS)}")
        if not self.tables:
            return []
        qvec = self._qvec(question, qvec)
        ts = self.table_scores(question, qvec)
        order = np.argsort(-ts, kind="stable")
        if unit == "table":
            return [(self.tables[i]["path"], float(ts[i])) for i in order[:k]]
        ds = self.domain_scores(ts, question, qvec)
        doms = sorted(ds, key=lambda d: -ds[d])
        out: list[tuple[str, float]] = []
        for d in doms:
            if len(out) >= k:
                break
            ov = self.domains.get(d)
            if ov is not None and (unit == "domain" or ov["bytes"] <= AUTO_MAX_BYTES):
                out.append((ov["path"], ds[d]))
                continue
            best = next(i for i in order if self.tables[i]["domain"] == d)
            out.append((self.tables[best]["path"], ds[d]))
        return out


def read_file(out: Path, rel: str) -> str:
    """The text of one schema file (a clear error when it vanished)."""
    p = out / rel
    try:
        return p.read_text(encoding="utf-8", errors="surrogatepass")
    except FileNotFoundError:
        raise CorruptIndexError(f"schema file {str(p)!r} is missing: run 'lakeql index --refresh LAKE'"
                                ) from None


WIDE_TABLE_BYTES = 16_384  # a table file over this is "wide": a domain overview lists only its first columns
WIDE_TABLES_SHOWN = 3  # relevant columns appended to a domain overview for at most this many wide tables


def content(idx: SchemaIndex, rel: str, question: str) -> str:
    """What ``schema_context`` returns for the file ``rel``: the file, except that a table file over
    :data:`AUTO_MAX_BYTES` gives its columns relevant to ``question`` (:func:`lakeql.context.pages.relevant`)
    and a domain overview gets, for its (at most :data:`WIDE_TABLES_SHOWN` best) wide tables, the columns
    relevant to the question, which the overview's bounded line may not list (these sections together
    within :data:`AUTO_MAX_BYTES`)."""
    from lakeql.context import pages

    text = read_file(idx.out, rel)
    fmt = pages.fmt_of(rel)
    if fmt is not None:
        if len(text.encode("utf-8", "surrogatepass")) <= AUTO_MAX_BYTES:
            return text
        try:
            return pages.relevant(text, fmt, question, path=rel).text
        except Exception:  # noqa: BLE001 - a file lakeql cannot parse back is returned as it is
            return text
    dom = next((d for d, r in idx.domains.items() if r["path"] == rel), None)
    wide = [i for i, r in enumerate(idx.tables) if r["domain"] == dom and dom is not None
            and (r["bytes"] or 0) > WIDE_TABLE_BYTES]
    if not wide:
        return text
    s = idx.bm25.scores(tokens(question))
    wide.sort(key=lambda i: -float(s[i]))
    room = AUTO_MAX_BYTES  # the sections together stay within this
    for i in wide[:WIDE_TABLES_SHOWN]:
        r = idx.tables[i]
        f = pages.fmt_of(r["path"])
        try:
            part = pages.relevant(read_file(idx.out, r["path"]), f, question, path=r["path"]) if f else None
        except Exception:  # noqa: BLE001 - unparsable: the overview's line and the file name stay
            part = None
        if part is not None:
            import re

            fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", part.text)), default=0))
            section = (f"\n## Columns of {r['path']} related to the question ({part.shown} of {part.total})"
                       f"\n\n{fence}\n{part.text}{fence}\n")
            size = len(section.encode("utf-8", "surrogatepass"))
            if size <= room:
                text, room = text + section, room - size
    return text
