"""The builders' per-item work as top-level functions of plain arguments, for ``ctx.engine.map``.

A Ray worker (or a spawned process) receives only what is pickled: a :class:`~lakeql.lake.Table`
description, column names, a model name. It reads the lake itself and returns Arrow tables or numpy
arrays; the driver writes every index file and the manifest (so a worker that dies commits nothing,
and both engines write byte-for-byte the same profiles and codes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np


# ------------------------------------------------------------------------------ column profiles
def profile_task(spec: tuple[Any, list[tuple[str, str]], int]) -> tuple[list[dict[str, Any]], Any]:
    """Profile one table where the engine runs it: ``(table, [(column, type)], row_count)`` ->
    (column rows, Arrow table of hashes), exactly :func:`lakeql.profile.profile_table`."""
    from lakeql import profile
    from lakeql.sources.remote import worker_reads

    table, columns, row_count = spec[:3]
    if len(spec) > 3:  # a multi-file table: the shards of the files named (lakeql.profile_shards)
        from lakeql.profile_shards import profile_files

        with worker_reads(table, spec[3]):  # a Ray worker on an s3:// lake: its own reads of the objects
            return profile_files(table, spec[3], columns, row_count=row_count)
    with worker_reads(table):
        return profile.profile_table(table, columns, row_count)


CHUNK_FILES = 16  # files of one multi-file table profiled per task (one grouped scan each)


def ensure_profiles(engine: Any, store: Any, lake: Any, catalog: Any, todo: list[str], desc: str,
                    reuse: bool = False) -> tuple[list[str], dict[str, str]]:
    """:func:`lakeql.profile.ensure` on an engine: profiles computed by ``engine``, written here.

    Returns (keys profiled, {key: error}); an unreadable table is left out with a warning, as locally.
    """
    from lakeql import profile
    from lakeql.errors import RemoteStoreError
    from lakeql.progress import say
    from lakeql.store import IndexEntry, dir_bytes

    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    done: list[str] = []
    pending: list[IndexEntry] = []
    n_cols = 0

    def write(i: int, result: Any) -> None:
        nonlocal pending, n_cols
        key = owners[i]
        if key in failed:  # another chunk of this table failed already
            return
        if isinstance(result, RemoteStoreError):  # the store failed, not the table: stop, commit nothing
            cause = getattr(result, "cause", None)  # a Ray task's error: the worker's own exception
            raise RemoteStoreError(str(cause if isinstance(cause, RemoteStoreError) else result)) from None
        if isinstance(result, Exception) and lake.fs is not None:
            from lakeql.sources.snapshot import store_failure

            failed_store = store_failure(lake.fs)  # a read under DuckDB met it (DuckDB's error hides it)
            if failed_store is not None:
                raise failed_store
        if isinstance(result, Exception):
            msg = f"{type(result).__name__}: {(str(result).splitlines() or [''])[0][:200]}"
            failed[key] = msg
            say(f"warning: cannot profile table {key}, left out ({msg})")
            if store.find(profile.KIND, key):
                store.drop(profile.KIND, key)
            return
        t = lake.tables[key]
        shards = None
        if key in plans:  # multi-file: merge the new shards with the stored ones (here, not on workers)
            from lakeql import profile_shards

            parts[key].extend(result)
            left[key] -= 1
            if left[key]:
                return  # more chunks of this table's files to come
            rows, hashes, shards = profile_shards.finish(t, specs[i][1], plans[key], parts.pop(key))
        else:
            rows, hashes = result
        target = profile.path(store, key)
        with store.atomic_dir(target) as tmp:
            profile.write(tmp, rows, hashes)
            if shards is not None:
                profile_shards.write(tmp, t, shards)
        pending.append(IndexEntry(profile.KIND, key, "", target.relative_to(store.root).as_posix(),
                                  dir_bytes(target), t.source_bytes, t.fingerprint,
                                  params=profile.params(t)))
        done.append(key)
        n_cols += len(rows)
        if len(pending) >= 1000:
            store.record_many(pending)
            pending = []

    specs: list[tuple[Any, ...]] = []
    owners: list[str] = []  # the table of each spec
    plans: dict[str, Any] = {}  # multi-file tables: their reusable stored shards
    parts: dict[str, list[Any]] = {}  # multi-file tables: the file profiles received so far
    left: dict[str, int] = {}  # multi-file tables: chunks not received yet
    for k in todo:
        t = lake.tables[k]
        cols = [(c.column_name, c.type) for c in catalog.columns(t)]
        if len(t.files) > 1:
            from lakeql import profile_shards

            plans[k], files = profile_shards.plan(store, t, cols, reuse)
            rows_of = dict(zip([f.path for f in t.files], catalog.file_rows(t), strict=False))
            chunks = [files[j:j + CHUNK_FILES] for j in range(0, len(files), CHUNK_FILES)] or [[]]
            parts[k], left[k] = [], len(chunks)
            for ch in chunks:  # a table of many new files is profiled by several workers
                specs.append((t, cols, sum(int(rows_of.get(f.path, 0)) for f in ch), ch))
                owners.append(k)
        else:
            specs.append((t, cols, catalog.row_count(t)))
            owners.append(k)
    try:
        engine.map(profile_task, specs, desc=desc, unit="table", return_exceptions=True, on_result=write)
    finally:  # a store failure (or a dead worker) stops the stage: the profiles written so far replaced
        store.record_many(pending)  # their tables' previous ones in place, so their rows must be recorded
    secs = time.perf_counter() - t0
    say(f"column profiles ({engine.name} engine): {len(done)} tables, {n_cols} columns in {secs:.1f} s "
        f"({n_cols / max(secs, 1e-9):.0f} columns/s)")
    return done, failed


# ------------------------------------------------------------------------------ embeddings
def encoder_setup(model: str | None, backend: str, device: str = "cpu", pin: str | None = None) -> Any:
    """Load the encoder once per worker (a Ray actor's ``setup``); ``pin``: the driver's outlier channels
    (``onnx-int8-outlier``), so a worker of another CPU embeds with the driver's graph."""
    from lakeql import embedding

    return embedding.load_model(model, backend, device, pin)


def encode_task(encoder: Any, item: tuple[list[str], int]) -> np.ndarray:
    """Encode one batch of texts with a loaded encoder: ``(texts, batch_size)`` -> float32 matrix."""
    from lakeql import embedding
    from lakeql.progress import quiet_while

    texts, batch_size = item
    with quiet_while(True):  # the driver shows the bar
        return embedding.encode(texts, encoder, batch_size=batch_size)


def encode_batches(engine: Any, batches: Iterable[tuple[np.ndarray, list[str]]], model: str | None,
                   backend: str, batch_size: int, pbar: Any = None, device: str = "cpu",
                   pin: str | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Encode streamed ``(rowids, texts)`` batches on ``engine``'s actors (the model loaded once per
    actor); returns (rowid parts, vector parts) in stream order, as the local loop does.

    With ``device`` other than ``cpu`` and GPUs in the Ray cluster, each actor asks for one GPU.
    """
    rowid_parts: list[np.ndarray] = []
    items: list[tuple[list[str], int]] = []
    for rowids, texts in batches:
        rowid_parts.append(rowids)
        items.append((texts, batch_size))
    vec_parts: list[Any] = [None] * len(items)

    def keep(i: int, vecs: Any) -> None:
        vec_parts[i] = vecs
        if pbar is not None:
            pbar.update(len(items[i][0]))

    resources = {"cpu": 1.0}
    if device != "cpu" and getattr(engine, "gpus", 0):
        resources["gpu"] = 1.0
    engine.map(encode_task, items, setup=partial(encoder_setup, model, backend, device, pin), on_result=keep,
               resources=resources, workers=engine.gpus if "gpu" in resources else None)
    return rowid_parts, vec_parts
