"""``lakeql index`` for joins: the lake-wide value index from the per-table column profiles, optional
DeepJoin embeddings, and the join graph; every sub-stage prints its seconds and bytes.

Manifest kinds: ``column_profile`` (per table, core: :mod:`lakeql.profile`), ``join_index``
(``joins/lake``), ``join_semantic`` (``joins/semantic``, only with ``--joins-semantic``), ``join_graph``
(``joins/edges.parquet``), ``join_pools`` (``joins/pools.parquet``: each column's candidate pool, for
incremental graph updates, joins/incremental.py).

A table that cannot be read is left out with a warning and recorded in ``joins/lake/tables.json``
(``failed``): the rest of the lake's joins stay usable (it never makes them stale), ``joinable`` on it
says why, and the next ``lakeql index`` (or ``--refresh``) tries it again.

Why semantic column embeddings are opt-in (``joins_semantic`` defaults to False): embedding one DeepJoin
text per column runs MiniLM at 16-51 texts/s on this 2-core CPU, so a lake of 2,292 tables (~30,000
columns) spent about 19 of its 22.6 build minutes there, and the vectors (90 MB) were a sixth of the
index. Exact equi joins (the value index) need no model; ``lakeql index LAKE --joins-semantic`` adds the
embeddings for ``mode := 'semantic'`` and for 'auto' on text columns.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from lakeql import parquet_io
from lakeql.progress import say
from lakeql.store import IndexEntry, dir_bytes

FORMAT = 2


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def build(ctx) -> None:
    """Build or refresh every join index of the lake (see the module docstring)."""
    from lakeql import profile
    from lakeql.joins import deepjoin, graph, lakeindex

    opts = ctx.options["joins"]
    if not opts.joins:
        return
    store, lake, cat = ctx.store, ctx.lake, ctx.catalog
    keys = sorted(lake.tables)
    from lakeql.joins import incremental  # --refresh: the previous graph, and the changed tables' old hashes

    snap = incremental.snapshot(store, lake) if ctx.refresh else None
    # CSV tables read with header = true (lakeql.csvheader): a change of that set renamed their columns
    # without changing their files, so the value index and graph are made whole again
    headers = sorted(k for k in keys if lake.tables[k].csv_header)
    # and CSV tables typed from every row (sample_size = -1): a change of that set retyped their columns
    wholes = sorted(k for k in keys if lake.tables[k].csv_whole_sniff)
    headers_changed = _stored_headers(store) != headers or _stored_headers(store, "csv_whole_sniff") != wholes
    if headers_changed:
        snap = None
    # a full build re-profiles every table; --refresh reuses the fresh profiles
    _, failed = profile.ensure(store, lake, cat, keys, desc="joins: profiling tables", force=not ctx.refresh,
                               engine=ctx.engine)  # lakeql.engine (issue 10)
    fresh = profile.fresh_keys(store, lake, keys)
    good = [k for k in keys if k not in failed and k in fresh]
    for k in keys:
        if k not in failed and k not in good:
            failed[k] = "no column profile"
    fingerprints = {k: lake.tables[k].fingerprint for k in good}
    failed_doc = {k: {"fingerprint": lake.tables[k].fingerprint, "error": e} for k, e in failed.items()}
    params = json.dumps({"format": FORMAT, "profile": profile.params()}, sort_keys=True)
    digest = hashlib.sha1((params + json.dumps(fingerprints, sort_keys=True)
                           + (json.dumps(headers) if headers else "")).encode()).hexdigest()

    lake_dir = store.path("joins", "lake")
    old = store.find("join_index")
    lake_changed = not (ctx.refresh and old is not None and old.params_dict.get("digest") == digest
                        and (lake_dir / "columns.parquet").exists()
                        and old.params_dict.get("failed") == sorted(failed)
                        and bool(old.params_dict.get("text")) >= bool(opts.joins_semantic))
    if lake_changed:
        t1, c1 = time.perf_counter(), time.process_time()
        built = {e.table_name: str(e.built_at) for e in store.entries(profile.KIND)}
        reuse = lakeindex.reusable(lake_dir, good, fingerprints, built) \
            if ctx.refresh and old is not None and not opts.joins_semantic and not headers_changed else {}
        with store.atomic_dir(lake_dir) as tmp:
            rows, bad, _ = lakeindex.merge([(k, profile.path(store, k)) for k in good], tmp,
                                           with_text=bool(opts.joins_semantic), reuse=reuse)
            for k, e in bad.items():
                say(f"joins: warning: table {k} left out ({e})")
                fingerprints.pop(k, None)
                failed_doc[k] = {"fingerprint": lake.tables[k].fingerprint, "error": e}
            paths = {k: profile.path(store, k).relative_to(store.root).as_posix() for k in fingerprints}
            (tmp / "tables.json").write_text(json.dumps({
                "tables": fingerprints, "profiles": paths, "failed": failed_doc,
                "built": {k: built[k] for k in fingerprints if k in built},
                **({"csv_header": headers} if headers else {}),
                **({"csv_whole_sniff": wholes} if wholes else {})}, sort_keys=True))
        n_values = sum(r["n_hashes"] for r in rows)
        size = dir_bytes(lake_dir)
        store.record(IndexEntry("join_index", "", "", "joins/lake", size,
                                sum(lake.tables[k].source_bytes for k in fingerprints), "",
                                params=json.dumps({"digest": digest, "columns": len(rows),
                                                   "values": n_values, "failed": sorted(failed),
                                                   "text": bool(opts.joins_semantic)})))
        say(f"joins: value index of {len(rows)} columns ({len(reuse)} tables' rows kept), {n_values} "
            f"hashes in {time.perf_counter() - t1:.1f} s ({time.process_time() - c1:.1f} CPU s), "
            f"{_mb(dir_bytes(lake_dir))} (+ profiles' hashes)")

    sem_changed = False
    sem_dir = store.path("joins", "semantic")
    if opts.joins_semantic:
        model = deepjoin.resolve_model(opts.joiner_model, store.root)
        from lakeql import embedding

        sparams = {"digest": digest, "model": embedding.model_id(model)}
        old_sem = store.find("join_semantic")
        backend = deepjoin.effective_backend(opts.joins_embed_backend,
                                             old_sem.params_dict.get("backend") if old_sem else None)
        # torch and float32 ONNX vectors agree to ~1e-7: switching between them re-embeds nothing
        new_family = deepjoin.family(embedding.resolve_backend(model, backend))
        fp = embedding.model_fingerprint(model)
        old_fp = old_sem.params_dict.get("model_fp") if old_sem else None
        replaced = old_fp is not None and fp is not None and old_fp != fp  # same path, other model
        if lake_changed or old_sem is None or not (sem_dir / "index.faiss").exists() or replaced or \
                {k: old_sem.params_dict.get(k) for k in sparams} != sparams or \
                deepjoin.family(old_sem.params_dict.get("backend")) != new_family:
            t1 = time.perf_counter()
            rows = parquet_io.read_table(lake_dir / "columns.parquet",
                                 columns=["col_id", "indexed", "text"]).to_pylist()
            prev = sem_dir if (sem_dir / "texts.parquet").exists() and not replaced else None
            with store.atomic_dir(sem_dir) as tmp:
                info = deepjoin.build(rows, tmp, model, prev, backend)
            sparams.update(info, **({"model_fp": fp} if fp else {}))
            size = dir_bytes(sem_dir)
            store.record(IndexEntry("join_semantic", "", "", "joins/semantic", size, 0, "",
                                    params=json.dumps(sparams)))
            sem_changed = True
            say(f"joins: column embeddings ({info.get('embedded', 0)} embedded, {info.get('n', 0)} columns) "
                f"in {time.perf_counter() - t1:.1f} s, {_mb(size)}")
    elif store.find("join_semantic") is not None:
        store.drop("join_semantic")
        sem_changed = True

    min_score = float(opts.joins_min_score)
    sem_entry = store.find("join_semantic")
    gparams = json.dumps({"digest": digest, "min_score": min_score, "format": FORMAT,
                          "semantic": sem_entry.params_dict.get("model") if sem_entry else None})
    old_graph = store.find("join_graph")
    edges = store.path("joins", "edges.parquet")
    if lake_changed or sem_changed or old_graph is None or old_graph.params != gparams or not edges.exists():
        from lakeql.joins.search import Searcher
        from lakeql.joins.sqlapi import open_index

        t1, c1 = time.perf_counter(), time.process_time()
        searcher = Searcher(open_index(store), lake.tables)
        same = old_graph is not None and edges.exists() and \
            {**json.loads(old_graph.params), "digest": ""} == {**json.loads(gparams), "digest": ""}
        pools_path = store.path("joins", "pools.parquet")
        old_pools = pools_path if store.find("join_pools") is not None and pools_path.exists() else None
        with store.atomic_file(edges) as tmp:
            got = incremental.update(searcher, edges, tmp, min_score, snap, fingerprints, old_pools) \
                if snap is not None and same else None  # only the columns the change can reach
            if got is None:
                n, pools = graph.build_with_pools(searcher, tmp, min_score, fingerprints)
            else:
                n, pools = got[0], got[2]
        entries = [IndexEntry("join_graph", "", "", "joins/edges.parquet", edges.stat().st_size, 0, "",
                              params=gparams)]
        if pools is not None:  # what the next --refresh needs to update the graph in proportion
            from lakeql.store import file_checksum

            with store.atomic_file(pools_path) as tmp:
                graph.write_pools(pools, tmp, file_checksum(edges))
            entries.append(IndexEntry("join_pools", "", "", "joins/pools.parquet", pools_path.stat().st_size,
                                      0, "", params=json.dumps({"format": graph.POOLS_FORMAT})))
        elif store.find("join_pools") is not None:
            store.drop("join_pools")
        store.record_many(entries)
        how = "" if got is None else f" ({got[1]} columns searched again)"
        say(f"joins: join graph with {n} edges{how} in {time.perf_counter() - t1:.1f} s "
            f"({time.process_time() - c1:.1f} CPU s), "
            f"{_mb(edges.stat().st_size)}")
    _drop_legacy(store)
    from lakeql.joins.union_index import build_discovery  # discovery: union/table search, transforms

    build_discovery(ctx)


def _drop_legacy(store: Any) -> None:
    """Remove the per-table ``join_values`` indexes of format 1 (their facts now live in the profiles)."""
    for e in store.entries("join_values"):
        store.drop("join_values", e.table_name, e.column_name)


def _stored_headers(store, what: str = "csv_header") -> list[str]:
    """The CSV tables read with ``header = true`` (``what``: or another recorded way, ``csv_whole_sniff``)
    when the stored value index was built ([] when none, or no readable index)."""
    try:
        state = json.loads(store.path("joins", "lake", "tables.json").read_text())
        return list(state.get(what, []))
    except Exception:  # noqa: BLE001 - no previous index: nothing to compare
        return []
