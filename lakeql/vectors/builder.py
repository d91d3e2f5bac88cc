"""``lakeql index --embed TABLE.COLUMN``: embed a text column, binarize it, write its code store.

Texts are streamed from DuckDB in Arrow batches (``__rowid`` + the text, NULL/blank rows filtered out in
SQL, over-long texts cut in SQL to what the model can read), encoded in batches with one progress bar,
then the binarizer is fitted on the column (on at most ``FIT_SAMPLE`` rows) and every row encoded.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import numpy as np

from lakeql.errors import LakeqlError
from lakeql.lake import quote_ident
from lakeql.progress import bar, say
from lakeql.store import IndexEntry, dir_bytes

KIND = "embed"
FIT_SAMPLE = 200_000
STREAM_ROWS = 4096
#: a BERT word piece covers at most 100 characters (longer words become one [UNK]), so cutting texts at
#: max_seq_length * 100 characters never changes the tokenizer's truncated output, only its work.
CHARS_PER_TOKEN_MAX = 100


def index_params(ctx, column_model: str | None) -> dict[str, Any]:
    """The parameters that define an embed index (a change triggers a rebuild on --refresh)."""
    from lakeql.vectors.binarizers import DEFAULT_METHOD

    opts = ctx.options["vectors"]
    return {"model": column_model, "method": opts.embed_method or DEFAULT_METHOD,
            "backend": opts.embed_backend, "tier": opts.embed_rescore, "format": 1,
            **({"bm25": True} if opts.embed_bm25 else {}),
            **({"ann": int(opts.embed_ann_lists or 0)} if getattr(opts, "embed_ann", False) else {})}


def build(ctx) -> None:
    """Build every requested embed index (``--embed`` may repeat): text columns through the model,
    vector columns (:mod:`lakeql.vectors.columns`) from their stored vectors."""
    from lakeql.embedding import model_id
    from lakeql.vectors.columns import embed_column

    opts = ctx.options["vectors"]
    specs = opts.embed
    if not specs:
        return
    targets = []
    for spec in specs:  # resolve everything first: a wrong user-requested column fails before any work
        table, col = ctx.lake.table_column(spec, "--embed")
        column, kind = embed_column(ctx.catalog, table, col, "--embed")
        if (table.key, column.column_name) not in {(t.key, c) for t, c, _ in targets}:
            targets.append((table, column.column_name, kind))
    for table, column, kind in targets:
        if kind == "vector":  # your own vectors: a model only if named, to embed text queries
            params = {**index_params(ctx, model_id(opts.model) if opts.model else None), "source": "vectors"}
            params.pop("bm25", None)  # no words to index
        else:
            params = index_params(ctx, model_id(opts.model))
        pjson = json.dumps(params, sort_keys=True)
        if not ctx.needs_build(KIND, table.key, column, pjson):
            say(f"embed {table.key}.{column}: up to date")
            continue
        try:
            (build_vectors if kind == "vector" else build_one)(ctx, table, column, params)
        except LakeqlError:
            raise
        except Exception as exc:  # noqa: BLE001 - bad data in one table must not kill the whole build
            warnings.warn(f"embed {table.key}.{column} skipped: {type(exc).__name__}: {exc}", stacklevel=2)


def stream_texts(ctx, table, column: str, max_chars: int):
    """Yield (rowids, texts) Arrow-batch by Arrow-batch for the non-blank texts of ``column``."""
    import duckdb

    from lakeql.rows import rowid_scan_sql

    col = quote_ident(column)
    sql = (f"SELECT __rowid, left({col}, {int(max_chars)}) AS t FROM "
           f"({rowid_scan_sql(table, ctx.catalog.file_rows(table))}) "
           f"WHERE {col} IS NOT NULL AND regexp_matches({col}, '\\S') ORDER BY __rowid")
    con = duckdb.connect()
    try:
        reader = con.sql(sql).to_arrow_reader(STREAM_ROWS)
        for batch in reader:
            yield batch.column(0).to_numpy().astype(np.int64), batch.column(1).to_pylist()
    finally:
        con.close()


def build_one(ctx, table, column: str, params: dict[str, Any]) -> None:
    from lakeql import embedding

    opts = ctx.options["vectors"]
    model = embedding.load_model(opts.model, params["backend"], opts.device)
    dim = embedding.dimension(model)
    max_chars = int(getattr(model, "max_seq_length", 512) or 512) * CHARS_PER_TOKEN_MAX
    batch_size = int(ctx.options["vectors"].embed_batch_size)
    label = f"{table.key}.{column}"
    total = ctx.catalog.row_count(table)
    pbar = bar(total, desc=f"embed {label}", unit="text")
    rowid_parts, vec_parts, all_texts = [], [], ([] if params.get("bm25") else None)
    t0 = time.perf_counter()
    def batches():  # every batch's texts also feed BM25 (all of them, in rowid order)
        for rowids, texts in stream_texts(ctx, table, column, max_chars):
            if all_texts is not None:
                all_texts.extend(texts)
            yield rowids, texts

    if ctx.engine.name != "local":  # lakeql.engine (issue 10): batches on actors, model loaded once per actor
        from lakeql.engine_tasks import encode_batches

        rowid_parts, vec_parts = encode_batches(ctx.engine, batches(), ctx.options["vectors"].model,
                                                params["backend"], batch_size, pbar,
                                                getattr(ctx.options["vectors"], "device", "cpu"))
    else:
        for rowids, texts in batches():
            vec_parts.append(embedding.encode(texts, model, batch_size=batch_size, progress_bar=pbar))
            rowid_parts.append(rowids)
    pbar.close()
    secs = time.perf_counter() - t0
    rowids = np.concatenate(rowid_parts) if rowid_parts else np.zeros(0, np.int64)
    vecs = np.concatenate(vec_parts) if vec_parts else np.zeros((0, dim), np.float32)
    n = len(rowids)
    say(f"embed {label}: {n} texts in {secs:.1f} s ({n / max(secs, 1e-9):.0f} sentences/s, "
        f"{total - n} NULL/blank rows skipped)")

    write_index(ctx.store, table, column, rowids, vecs, params,
                extra_meta={"skipped": int(total - n), "encode_seconds": round(secs, 3)}, texts=all_texts)


def build_vectors(ctx, table, column: str, params: dict[str, Any]) -> None:
    """Index a column of stored vectors (no model): normalize, binarize, write."""
    from lakeql import embedding
    from lakeql.vectors.columns import VectorStats, stream_vectors

    label = f"{table.key}.{column}"
    stats = VectorStats()
    t0 = time.perf_counter()
    parts = list(stream_vectors(ctx, table, column, stats))
    rowids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    if not len(rowids):
        raise LakeqlError(f"vector column {label} has no usable vector (all NULL or malformed): nothing to "
                          "index")
    vecs = np.concatenate([p[1] for p in parts])
    if params.get("model"):
        name = ctx.options["vectors"].model
        mdim = embedding.config_dimension(name)
        if mdim is None:
            mdim = embedding.dimension(embedding.load_model(name, params["backend"], "cpu"))
        if mdim != vecs.shape[1]:
            raise LakeqlError(f"--model {name} embeds text in {mdim} dimensions but the vectors of {label} "
                              f"have {vecs.shape[1]}: name the model that made them, or leave --model out "
                              "and search with semantic_search_vector")
    total = ctx.catalog.row_count(table)
    say(f"embed {label}: {len(rowids)} stored vectors binarized in {time.perf_counter() - t0:.1f} s "
        f"({total - len(rowids)} NULL or malformed rows skipped)")
    write_index(ctx.store, table, column, rowids, vecs, params,
                extra_meta={"skipped": int(total - len(rowids))})


def write_index(store, table, column: str, rowids: np.ndarray, vecs: np.ndarray, params: dict[str, Any],
                extra_meta: dict[str, Any] | None = None, texts: list[str] | None = None) -> IndexEntry:
    """Binarize ``vecs`` (L2-normalized, one per ``rowids``) and write + record the code store.

    The second half of a build, separate so that precomputed embeddings (the benchmark's) go through
    exactly the same path.
    """
    from lakeql.vectors import binarizers, codes

    n, dim = vecs.shape
    binz = binarizers.get(params["method"], dim)
    if n:
        sample = vecs if n <= FIT_SAMPLE else vecs[np.random.default_rng(0).choice(n, FIT_SAMPLE, False)]
        binz.fit(sample)
    packed, factors = binz.encode(vecs) if n else (np.zeros((0, binz.nbytes), np.uint8), {
        "factor": np.zeros(0, np.float32), "add": np.zeros(0, np.float32)} if binz.scan == "asym" else {})
    tier_values, scales, space = codes.quantize_tier(vecs, params["tier"], binz)
    meta = {**params, "dim": dim, "table": table.key, "column": column, **(extra_meta or {})}
    target = store.index_path(KIND, table.key, column)
    with store.atomic_dir(target) as tmp:
        codes.write(tmp, rowids=rowids, codes=packed, factors=factors, tier_values=tier_values,
                    scales=scales, space=space, binarizer=binz, meta=meta, table_name=table.key,
                    column_name=column)
        if texts is not None:  # BM25 postings over the same rows, for hybrid_search
            from lakeql.vectors import bm25

            bm25.build(texts, tmp / "bm25")
        if "ann" in params and n:  # --embed-ann: IVF lists over the codes, swapped in with them
            from lakeql.vectors import ann

            ann.build(tmp, packed, dim, params["ann"] or None)
    entry = IndexEntry(KIND, table.key, column, str(target.relative_to(store.root)), dir_bytes(target),
                       table.source_bytes, table.fingerprint, params=json.dumps(params, sort_keys=True))
    store.record(entry)
    return entry
