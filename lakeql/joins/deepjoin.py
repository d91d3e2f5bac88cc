"""DeepJoin embeddings: each column's 'title-colname-stat-col' text, embedded and put in a faiss index.

Files in ``<index_dir>/joins/semantic/``: ``vectors.npy`` (float32, one L2-normalized row per lake
column, zeros for columns that are not indexed), ``index.faiss`` (inner product over the indexed
columns, ids = col_id; exact ``IndexFlatIP`` up to ``HNSW_FROM`` columns, HNSW above) and
``texts.parquet`` (col_id, text, model, encoder) so a refresh re-embeds only texts that changed.

The encoder is chosen as for the vectors capability (``--joins-embed-backend``, default ``auto``:
:func:`lakeql.embedding.resolve_backend`, ``onnx-int8-outlier`` for the packaged MiniLM), so neither a
build nor a query imports torch. The float32 backends (``torch``, ``onnx``) give the same vectors within
~1e-7: vectors made by one are kept and queried by the other (indexes built before 2026-12-07 were made
by one of them); the int8 backends form their own families (:func:`family`).
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


def family(backend: str | None) -> str:
    """The family of vectors ``backend`` makes: ``fp32`` for torch and the float32 ONNX export (equal
    within ~1e-7; ``None``, an index that recorded no backend, was made by torch), else the backend."""
    return "fp32" if backend in (None, "torch", "onnx") else backend


def effective_backend(option: str, recorded: str | None) -> str:
    """``--joins-embed-backend`` as a build applies it to an index whose vectors ``recorded`` made:
    ``auto`` keeps the family the index was built with (as ``--embed`` keeps a column's encoder, so
    the plain ``lakeql index --refresh`` that errors name re-embeds nothing): an int8 backend as recorded,
    the float32 family (``torch`` / ``onnx``, what ``auto`` was before 2026-12-07) as
    :data:`lakeql.embedding.AUTO_FP32`; a new index, and one the default (``onnx-int8-outlier``) made, get
    ``auto``; a named backend is used as it is (switching families re-embeds)."""
    from lakeql.embedding import AUTO, AUTO_FP32, AUTO_ONNX

    if option == AUTO and recorded and recorded != AUTO_ONNX:
        return recorded if family(recorded) != "fp32" else AUTO_FP32
    # an index the default made follows ``auto``: the same backend for the same model, and torch for a
    # model the ONNX encoder does not handle (a joiner trained by ``lakeql train-joiner``)
    return option


def query_backend(recorded: str | None) -> str:
    """The backend that embeds queries against vectors made by ``recorded``: ``auto-fp32`` (float32 ONNX
    for the packaged model, no torch import) for the float32 family, else the recorded int8 backend."""
    from lakeql.embedding import AUTO_FP32

    return AUTO_FP32 if family(recorded) == "fp32" else str(recorded)


def encoder(model: str | None, backend: str = "auto", pin: str | None = None) -> tuple[Any, str]:
    """(loaded encoder, resolved backend) for ``model``: ``auto`` as the vectors capability resolves it
    (:func:`lakeql.embedding.resolve_backend`); if the ONNX encoder fails to load under ``auto`` (no
    export possible), torch float32 with a warning (:func:`lakeql.embedding.load_or_torch`). ``pin``:
    the ``onnx-int8-outlier`` channels the vectors being extended or queried were made with."""
    from lakeql import embedding

    return embedding.load_or_torch(model, backend, "joins embed", pin)


#: beside ``texts.parquet``: the ``onnx-int8-outlier`` channels of the graph that made ``vectors.npy``
#: (:func:`lakeql.onnx_encoder.channels_text`), so a refresh on another machine embeds with that graph
ENCODER_FILE = "encoder.json"


def recorded_channels(folder: Path | None, name: str = ENCODER_FILE) -> str | None:
    """The ``onnx_channels`` recorded in ``folder/name`` (None: no folder, no record, unreadable: an
    index built before they were recorded, or by another encoder)."""
    got = _channel_record(folder, name)
    return got if got else None


def damaged_channels(folder: Path | None, name: str = ENCODER_FILE) -> bool:
    """Whether ``folder/name`` records ``onnx_channels`` that are not a channel set (damaged, hostile):
    the graph of its vectors is unknown, so they are not kept (embedded again, never mixed)."""
    return _channel_record(folder, name) == ""


def _channel_record(folder: Path | None, name: str) -> str | None:
    """The canonical ``onnx_channels`` of ``folder/name`` (:func:`lakeql.onnx_encoder.channels_text`);
    None: no folder, file or record; "": a record that is not a channel set."""
    import json

    from lakeql.errors import LakeqlError
    from lakeql.onnx_encoder import channels_text, parse_channels

    if folder is None:
        return None
    try:
        got = json.loads((folder / name).read_text()).get("onnx_channels")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    if got is None:
        return None
    try:
        return channels_text(parse_channels(got, str(folder / name)))
    except LakeqlError:
        return ""


def build(rows: list[dict[str, Any]], out: Path, model: str | None, previous: Path | None,
          backend: str = "auto") -> dict[str, Any]:
    """Embed every indexed column's text (reusing unchanged ones from ``previous`` made by the same
    model and encoder family) and index them. ``backend``: ``--joins-embed-backend``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql import embedding

    mid = embedding.model_id(model)
    want = embedding.resolve_backend(model, backend)
    pin = None
    reuse: dict[str, Any] = {}
    if previous is not None and (previous / "texts.parquet").exists():
        try:
            old = parquet_io.read_table(previous / "texts.parquet").to_pydict()
            old_family = (old.get("encoder") or ["fp32"])[0]
            if old.get("model") and old["model"][0] == mid and old_family == family(want):
                vecs = np.load(previous / "vectors.npy", mmap_mode="r")
                reuse = {t: vecs[c] for t, c in zip(old["text"], old["col_id"], strict=True)}
                pin = recorded_channels(previous)  # new texts by the graph of the kept vectors
                if damaged_channels(previous):  # made by an unknown graph: embedded again, never mixed
                    reuse = {}
        except Exception:  # noqa: BLE001 - a broken previous index is just not reused
            reuse, pin = {}, None
    idx = [r["col_id"] for r in rows if r["indexed"] and r["text"]]
    texts = [rows[i]["text"] for i in idx]
    todo = [t for t in dict.fromkeys(texts) if t not in reuse]
    channels = pin if reuse else None
    if todo:
        planned = family(want)
        m, want = encoder(model, backend, pin if reuse else None)
        if family(want) != planned:  # auto fell back to torch: the kept vectors are another family's
            reuse = {}
            todo = list(dict.fromkeys(texts))
        channels = embedding.channels(m) if (not reuse or pin is not None) else None
        enc = embedding.encode(todo, model=m, desc="joins: embedding columns")
        reuse.update(zip(todo, enc, strict=True))
    dim = next(iter(reuse.values())).shape[0] if reuse else 384
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    for i, t in zip(idx, texts, strict=True):
        vectors[i] = reuse[t]
    np.save(out / "vectors.npy", vectors)
    write_faiss(vectors, np.asarray(idx, dtype=np.int64), out / "index.faiss")
    pq.write_table(pa.table({"col_id": pa.array(idx, pa.int32()), "text": texts,
                             "model": [mid] * len(idx), "encoder": [family(want)] * len(idx)}),
                   out / "texts.parquet")
    if channels is not None:
        import json

        (out / ENCODER_FILE).write_text(json.dumps({"backend": want, "onnx_channels": channels}))
    return {"model": mid, "dim": int(dim), "n": len(idx), "embedded": len(todo), "backend": want}


def write_faiss(vectors, ids, path: Path) -> None:
    import faiss

    dim = vectors.shape[1]
    base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT) if len(ids) >= HNSW_FROM \
        else faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(base)
    if len(ids):
        index.add_with_ids(vectors[ids], ids)
    faiss.write_index(index, str(path))
