"""DeepJoin embeddings: each column's 'title-colname-stat-col' text, embedded and put in a faiss index.

Files in ``<index_dir>/joins/semantic/``: ``vectors.npy`` (float32, one L2-normalized row per lake
column, zeros for columns that are not indexed), ``index.faiss`` (inner product over the indexed
columns, ids = col_id; exact ``IndexFlatIP`` up to ``HNSW_FROM`` columns, HNSW above) and
``texts.parquet`` (col_id, text) so a refresh re-embeds only texts that changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lakeql import parquet_io

HNSW_FROM = 200_000


def resolve_model(option: str | None, store_root: Path) -> str | None:
    """The model to embed with: ``--joiner-model``, else a trained joiner under the index dir, else
    the default (None)."""
    if option:
        return option
    trained = store_root / "joins" / "joiner"
    if (trained / "config.json").exists() or (trained / "modules.json").exists():
        return str(trained)
    return None


def build(rows: list[dict[str, Any]], out: Path, model: str | None, previous: Path | None) -> dict[str, Any]:
    """Embed every indexed column's text (reusing unchanged ones from ``previous``) and index them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql import embedding

    mid = embedding.model_id(model)
    reuse: dict[str, Any] = {}
    if previous is not None and (previous / "texts.parquet").exists():
        try:
            old = parquet_io.read_table(previous / "texts.parquet").to_pydict()
            if old.get("model") and old["model"][0] == mid:
                vecs = np.load(previous / "vectors.npy", mmap_mode="r")
                reuse = {t: vecs[c] for t, c in zip(old["text"], old["col_id"], strict=True)}
        except Exception:  # noqa: BLE001 - a broken previous index is just not reused
            reuse = {}
    idx = [r["col_id"] for r in rows if r["indexed"] and r["text"]]
    texts = [rows[i]["text"] for i in idx]
    todo = [t for t in dict.fromkeys(texts) if t not in reuse]
    if todo:
        enc = embedding.encode(todo, model=model, desc="joins: embedding columns")
        reuse.update(zip(todo, enc, strict=True))
    dim = next(iter(reuse.values())).shape[0] if reuse else 384
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    for i, t in zip(idx, texts, strict=True):
        vectors[i] = reuse[t]
    np.save(out / "vectors.npy", vectors)
    write_faiss(vectors, np.asarray(idx, dtype=np.int64), out / "index.faiss")
    pq.write_table(pa.table({"col_id": pa.array(idx, pa.int32()), "text": texts,
                             "model": [mid] * len(idx)}), out / "texts.parquet")
    return {"model": mid, "dim": int(dim), "n": len(idx), "embedded": len(todo)}


def write_faiss(vectors, ids, path: Path) -> None:
    import faiss

    dim = vectors.shape[1]
    base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT) if len(ids) >= HNSW_FROM \
        else faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(base)
    if len(ids):
        index.add_with_ids(vectors[ids], ids)
    faiss.write_index(index, str(path))
