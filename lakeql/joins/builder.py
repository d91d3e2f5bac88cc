"""``lakeql index`` for joins: per-table profiles and value hashes, the lake-wide value index, DeepJoin
embeddings and the join graph, each rebuilt only when its inputs changed (``--refresh``).

Manifest kinds: ``join_values`` (per table: ``join_values/<slug>/{profiles,values}.parquet``),
``join_index`` (``joins/lake``), ``join_semantic`` (``joins/semantic``), ``join_graph``
(``joins/edges.parquet``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from lakeql.progress import progress, say
from lakeql.store import IndexEntry, dir_bytes

FORMAT = 1
BUILD_THREADS = min(4, os.cpu_count() or 1)  # tables profiled at once


def table_params() -> str:
    from lakeql.joins.normalize import MAX_TEXT_AVG_LEN
    from lakeql.joins.profile import SKETCH_K, TOP_VALUES

    return json.dumps({"format": FORMAT, "top_values": TOP_VALUES, "sketch_k": SKETCH_K,
                       "max_text_avg_len": MAX_TEXT_AVG_LEN}, sort_keys=True)


def build(ctx) -> None:
    """Build or refresh every join index of the lake (see the module docstring)."""
    from lakeql.joins import deepjoin, graph, lakeindex
    from lakeql.joins.profile import build_table, connect_build
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import load_index

    opts = ctx.options["joins"]
    if not opts.joins:
        return
    store, lake, cat = ctx.store, ctx.lake, ctx.catalog
    params = table_params()
    t0 = time.perf_counter()
    built = 0
    table_dirs: list[tuple[str, Path]] = []
    fingerprints: dict[str, str] = {}
    keys = sorted(lake.tables)
    todo = [k for k in keys if ctx.needs_build("join_values", k, "", params)
            or not (store.index_path("join_values", k) / "values.parquet").exists()]
    local = threading.local()
    cons: list[Any] = []

    def work(key: str) -> None:
        # one DuckDB connection per worker thread, reused for all its tables (connecting costs ~30 ms)
        con = getattr(local, "con", None)
        if con is None:
            con = local.con = connect_build()
            cons.append(con)
        t = lake.tables[key]
        cols = [(c.column_name, c.type) for c in cat.columns(t)]
        with store.atomic_dir(store.index_path("join_values", key)) as tmp:
            build_table(t, cols, cat.row_count(t), tmp, con)

    failed: set[str] = set()
    pending: list[IndexEntry] = []  # manifest rows, written in batches (one manifest write per batch)
    last_flush = time.perf_counter()
    workers = max(1, min(BUILD_THREADS, len(todo)))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # DuckDB releases the GIL while it scans
        futures = {pool.submit(work, k): k for k in todo}
        for fut in progress(as_completed(futures), desc="joins: profiling tables", total=len(todo),
                            unit="table"):
            key = futures[fut]
            t = lake.tables[key]
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - bad data in one table must not stop the build
                say(f"joins: warning: skipped table {key} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]})")
                failed.add(key)
                if store.find("join_values", key):
                    store.drop("join_values", key)
                continue
            path = store.index_path("join_values", key)
            pending.append(IndexEntry("join_values", key, "", path.relative_to(store.root).as_posix(),
                                      dir_bytes(path), t.source_bytes, t.fingerprint, params=params))
            built += 1
            if len(pending) >= 1000 or time.perf_counter() - last_flush > 30:
                store.record_many(pending)  # an interrupted build keeps what is recorded
                pending, last_flush = [], time.perf_counter()
    for con in cons:
        con.close()
    store.record_many(pending)
    for key in keys:
        if key not in failed:
            table_dirs.append((key, store.index_path("join_values", key)))
            fingerprints[key] = lake.tables[key].fingerprint
    n_cols = sum(len(cat.columns(lake.tables[k])) for k, _ in table_dirs)
    secs = time.perf_counter() - t0
    if built:
        say(f"joins: profiled {built} tables in {secs:.1f} s ({n_cols / max(secs, 1e-9):.0f} columns/s)")

    digest = hashlib.sha1((params + json.dumps(fingerprints, sort_keys=True)).encode()).hexdigest()
    lake_dir = store.path("joins", "lake")
    old = store.find("join_index")
    lake_changed = not (ctx.refresh and old is not None and old.params_dict.get("digest") == digest
                        and (lake_dir / "columns.parquet").exists())
    if lake_changed:
        with store.atomic_dir(lake_dir) as tmp:
            rows = lakeindex.merge(table_dirs, tmp)
            (tmp / "tables.json").write_text(json.dumps(fingerprints, sort_keys=True))
        n_values = sum(r["n_hashes"] for r in rows)
        store.record(IndexEntry("join_index", "", "", "joins/lake", dir_bytes(lake_dir),
                                sum(lake.tables[k].source_bytes for k, _ in table_dirs), "",
                                params=json.dumps({"digest": digest, "columns": len(rows),
                                                   "values": n_values})))
        say(f"joins: value index of {len(rows)} columns, {n_values} distinct values")

    sem_changed = False
    sem_dir = store.path("joins", "semantic")
    if opts.joins_semantic:
        model = deepjoin.resolve_model(opts.joiner_model, store.root)
        from lakeql import embedding

        sparams = {"digest": digest, "model": embedding.model_id(model)}
        old_sem = store.find("join_semantic")
        if lake_changed or old_sem is None or not (sem_dir / "index.faiss").exists() or \
                {k: old_sem.params_dict.get(k) for k in sparams} != sparams:
            import pyarrow.parquet as pq

            rows = pq.read_table(lake_dir / "columns.parquet",
                                 columns=["col_id", "indexed", "text"]).to_pylist()
            prev = sem_dir if (sem_dir / "texts.parquet").exists() else None
            with store.atomic_dir(sem_dir) as tmp:
                info = deepjoin.build(rows, tmp, model, prev)
            sparams.update(info)
            store.record(IndexEntry("join_semantic", "", "", "joins/semantic", dir_bytes(sem_dir), 0, "",
                                    params=json.dumps(sparams)))
            sem_changed = True
    elif store.find("join_semantic") is not None:
        store.drop("join_semantic")
        sem_changed = True

    min_score = float(opts.joins_min_score)
    gparams = json.dumps({"digest": digest, "min_score": min_score,
                          "semantic": (store.find("join_semantic") or IndexEntry("", "", "", "", 0, 0, "")
                                       ).params_dict.get("model")})
    old_graph = store.find("join_graph")
    edges = store.path("joins", "edges.parquet")
    if lake_changed or sem_changed or old_graph is None or old_graph.params != gparams or not edges.exists():
        t1 = time.perf_counter()
        searcher = Searcher(load_index(store), lake.tables)
        with store.atomic_file(edges) as tmp:
            n = graph.build(searcher, tmp, min_score)
        store.record(IndexEntry("join_graph", "", "", "joins/edges.parquet", edges.stat().st_size, 0, "",
                                params=gparams))
        say(f"joins: join graph with {n} edges in {time.perf_counter() - t1:.1f} s")
