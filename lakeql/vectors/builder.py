"""``lakeql index --embed TABLE.COLUMN``: embed a text column, binarize it, write its code store.

The store is made of per-file shards (:mod:`lakeql.vectors.codes`, :mod:`lakeql.shards`). Texts are
streamed from DuckDB file by file in Arrow batches (row number + the text, NULL/blank rows filtered out
in SQL, over-long texts cut in SQL to what the model can read) and encoded in batches with one progress
bar. A full build fits the binarizer on the column (on at most ``FIT_SAMPLE`` rows) and encodes every
shard; ``lakeql index --refresh`` after files were added, removed or rewritten embeds the rows of the new
files only, encodes them with the binarizer the full build fitted, hard-links the kept shards into the
new folder and merges BM25 from the shards' word counts. When a refresh would more than double the rows
the binarizer was fitted on (``REFIT_GROWTH``), it rebuilds everything instead, so the fit stays
representative.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeql import parquet_io, shards
from lakeql.cliargs import shell_word
from lakeql.colnames import match_column
from lakeql.errors import LakeqlError
from lakeql.lake import nfc, quote_ident
from lakeql.progress import bar, say
from lakeql.sources import buildfs
from lakeql.store import IndexEntry, dir_bytes, file_checksum
from lakeql.udf import NOT_BLANK_RE

KIND = "embed"
FIT_SAMPLE = 200_000
STREAM_ROWS = 4096
#: a BERT word piece covers at most 100 characters (longer words become one [UNK]), so cutting texts at
#: max_seq_length * 100 characters never changes the tokenizer's truncated output, only its work.
CHARS_PER_TOKEN_MAX = 100
#: a refresh that would leave more than this many times the rows the binarizer was fitted on rebuilds all
REFIT_GROWTH = 2.0
#: meta.json: the outlier channels of the ``onnx-int8-outlier`` graph that made the vectors
#: (:func:`lakeql.onnx_encoder.channels_text`): queries and refreshes embed with that graph on any machine
CHANNELS = "onnx_channels"
#: a shard's BM25 word counts (:func:`lakeql.vectors.bm25.write_counts`)
BM25_COUNTS = ("bm25.npz", "bm25_terms.parquet")


def index_params(ctx, column_model: str | None, backend: str | None = None) -> dict[str, Any]:
    """The parameters that define an embed index (a change triggers a rebuild on --refresh).

    ``backend``: the encoder (default: the option's, ``auto`` resolved for ``column_model`` by
    :func:`lakeql.embedding.resolve_backend`): an index always records the backend that made it."""
    from lakeql.embedding import resolve_backend
    from lakeql.vectors.binarizers import DEFAULT_METHOD

    opts = ctx.options["vectors"]
    backend = backend or resolve_backend(column_model, opts.embed_backend)
    bits = int(getattr(opts, "embed_refine_bits", 0) or 0)
    if not 0 <= bits <= 4:
        raise LakeqlError(f"--embed-refine-bits must be 0 to 4, got {bits}")
    if bits and (opts.embed_rescore != "int8" or (opts.embed_method or DEFAULT_METHOD) != "rabitq"):
        raise LakeqlError(
            "--embed-refine-bits refines the int8 tier of the rabitq method: use it with "
            "--embed-rescore int8 and --embed-method rabitq (or drop it)"
        )
    return {
        "model": column_model,
        "method": opts.embed_method or DEFAULT_METHOD,
        "backend": backend,
        "tier": opts.embed_rescore,
        "format": 2,
        **encoder_params(backend),
        **({"bm25": bm25_version()} if opts.embed_bm25 else {}),
        **({"refine_bits": bits} if bits else {}),
        **({"ann": int(opts.embed_ann_lists or 0)} if getattr(opts, "embed_ann", False) else {}),
    }


def bm25_version() -> int:
    """The BM25 tokenizer version new indexes record (``bm25`` in their parameters)."""
    from lakeql.vectors.bm25 import TOKENIZER_VERSION

    return TOKENIZER_VERSION


def encoder_params(backend: str) -> dict[str, Any]:
    """What else defines the encoder of ``backend``: for ``onnx`` / ``onnx-int8``, the export recipe of
    its graph (:func:`lakeql.onnx_encoder.recipe`), so a --refresh after the recipe changed rebuilds the
    index and a query can tell that its encoder is not the one that made the vectors
    (:func:`encoder_mismatch`)."""
    from lakeql.embedding import ONNX_PRECISION

    if backend not in ONNX_PRECISION:
        return {}
    from lakeql.onnx_encoder import recipe

    return {"onnx_recipe": recipe(ONNX_PRECISION[backend])}


def encoder_backend(meta: dict[str, Any]) -> str:
    """The backend that embeds the queries of an index (and the texts a --refresh adds), from its
    recorded parameters: ``torch`` when none is recorded (indexes written before backends). Indexes
    written before 2026-12-07 record ``onnx`` for the int8 graph (the only ONNX recipe then; its recipe
    names ``quantize_dynamic QInt8``, or no recipe was recorded): they are ``onnx-int8``, as made."""
    backend = meta.get("backend") or "torch"
    if backend == "onnx":
        made_by = meta.get("onnx_recipe")
        if made_by is None or any(w in str(made_by) for w in ("quantize_dynamic", "QInt8", "int8")):
            return "onnx-int8"
    return backend


def pinned_params(meta: dict[str, Any], backend: str) -> dict[str, Any] | None:
    """:func:`encoder_params` of an ``onnx-int8-outlier`` index that recorded its outlier channels, on a
    machine without the calibration text (None: not that case): its graph is the float32 export and those
    channels (:func:`lakeql.onnx_encoder.quantize_pinned`), so the recorded recipe is the query's when it
    is this lakeql's int8out recipe, whatever text calibrated it."""
    from lakeql import onnx_encoder
    from lakeql.embedding import ONNX_PRECISION

    if ONNX_PRECISION.get(backend) != "int8out" or meta.get(CHANNELS) is None:
        return None
    if onnx_encoder.CALIBRATION.is_file():
        return None
    made_by = meta.get("onnx_recipe")
    return {"onnx_recipe": made_by if onnx_encoder.is_int8out_recipe(made_by) else "(another recipe)"}


def encoder_mismatch(meta: dict[str, Any], label: str, lake_root: Any) -> str | None:
    """Why the encoder a query would use now differs from the one that made the index's vectors (None:
    the same), with the command that rebuilds the index: an ``onnx`` index records its export recipe
    (indexes written before it was recorded have none, and are reported as unknown)."""
    backend = encoder_backend(meta)
    want = pinned_params(meta, backend) or encoder_params(backend)
    have = {k: meta.get(k) for k in want}
    if have == want:
        return None
    how = (
        "by an ONNX export whose recipe was not recorded (an older lakeql)"
        if have.get("onnx_recipe") is None
        else "by another ONNX export recipe than this lakeql's"
    )
    again = f"lakeql index {shell_word(str(lake_root))} --refresh --embed {shell_word(label)}"
    return (
        f"the vectors of {label} were made {how}: queries are embedded by the current export, whose "
        f"vectors differ slightly (lower recall); rebuild with '{again} --embed-backend {backend}'"
    )


def build(ctx) -> None:
    """Build every requested embed index (``--embed`` may repeat): text columns through the model,
    vector columns (:mod:`lakeql.vectors.columns`) from their stored vectors."""
    from lakeql.embedding import AUTO, model_id
    from lakeql.vectors.columns import embed_column

    opts = ctx.options["vectors"]
    # (an index built before names were NFC is recorded under its NFD name: nfc finds its table now)
    built_with = {(nfc(e.table_name), e.column_name): e.params_dict for e in ctx.store.entries(KIND)}
    targets = []
    for spec in opts.embed or ():  # resolve everything first: a wrong column fails before any work
        table, col = ctx.catalog.table_column(spec, "--embed")
        column, kind = embed_column(ctx.catalog, table, col, "--embed")
        if (table.key, column.column_name) not in {(t.key, c) for t, c, _ in targets}:
            targets.append((table, column.column_name, kind))
    planned = []
    for table, column, kind in targets:
        # 'auto' keeps the encoder of a column already embedded by the same model (an index built when
        # torch was the default stays torch: no silent re-embedding); a new column gets auto's choice
        prev = built_with.get((table.key, column))
        keep = (
            opts.embed_backend == AUTO
            and isinstance(prev, dict)
            and prev.get("backend")
            and prev.get("model") == model_id(opts.model)
        )
        backend = encoder_backend(prev) if keep else None
        if kind == "vector":  # your own vectors: a model only if named, to embed text queries
            params = {
                **index_params(ctx, model_id(opts.model) if opts.model else None, backend),
                "source": "vectors",
            }
            params.pop("bm25", None)  # no words to index
        else:
            params = index_params(ctx, model_id(opts.model), backend)
        if keep and prev.get("backend") == "onnx" and backend == "onnx-int8":
            params["backend"] = "onnx"  # as recorded by older lakeqls (encoder_backend): not a change
        planned.append((table, column, kind, params))
    for table, column, kind, params in planned + already_indexed(ctx, {(t.key, c) for t, c, _ in targets}):
        pjson = json.dumps(params, sort_keys=True)
        if not ctx.needs_build(KIND, table.key, column, pjson):
            say(f"embed {table.key}.{column}: up to date")
            continue
        try:
            build_column(ctx, table, column, kind, params)
        except LakeqlError:
            raise
        except Exception as exc:  # noqa: BLE001 - bad data in one table must not kill the whole build
            warnings.warn(f"embed {table.key}.{column} skipped: {type(exc).__name__}: {exc}", stacklevel=2)


def already_indexed(ctx, requested: set[tuple[str, str]]) -> list[tuple[Any, str, str, dict[str, Any]]]:
    """The columns embedded by an earlier build and not named by ``--embed`` this time, with the
    parameters they were built with: every build keeps them fresh (so ``lakeql index --refresh LAKE``
    alone updates them after their table changed, as the stale-index error says) instead of leaving
    them stale. A column or table that is gone drops its index. An index recorded under a name in
    another Unicode form (NFD, built before lakeql made names NFC) is built again under the table's NFC
    name (its old row is dropped as a removed table's): dropping it would lose an index nobody removed."""
    from lakeql.vectors.columns import embed_column

    out = []
    seen = set(requested)
    for e in ctx.store.entries(KIND):
        if (nfc(e.table_name), e.column_name) in seen:
            continue
        seen.add((nfc(e.table_name), e.column_name))
        table = ctx.lake.tables.get(nfc(e.table_name))
        params = e.params_dict
        if table is None:
            continue  # a removed table: the store drops its indexes
        column = e.column_name
        names = [c.column_name for c in ctx.catalog.columns(table)]
        if column not in names:
            # the file now names it in another Unicode form (rewritten on macOS, or off it) or case: the
            # same column to lakeql's functions and DuckDB (lakeql.colnames), so its index follows it
            column = match_column(column, names) or ""
            if not column:
                warnings.warn(
                    f"column {e.table_name}.{e.column_name} is gone: dropping its embed index", stacklevel=2
                )
            ctx.store.drop(KIND, e.table_name, e.column_name)
            if not column or (nfc(e.table_name), column) in seen:
                continue
            seen.add((nfc(e.table_name), column))
        if not isinstance(params, dict) or not {"model", "method", "backend", "tier"} <= params.keys():
            label = shell_word(f"{e.table_name}.{e.column_name}")
            warnings.warn(
                f"the embed index of {e.table_name}.{e.column_name} records no build parameters: "
                f"rebuild it with 'lakeql index LAKE --embed {label}'",
                stacklevel=2,
            )
            continue
        try:
            _, kind = embed_column(ctx.catalog, table, column, "--embed")
        except LakeqlError as exc:  # e.g. the column is no longer text: its index cannot be kept
            warnings.warn(f"dropping the embed index of {e.table_name}.{e.column_name}: {exc}", stacklevel=2)
            ctx.store.drop(KIND, e.table_name, e.column_name)
            continue
        # the encoder as this lakeql makes it (an onnx export of another recipe: params differ, so the
        # index is rebuilt whole, never refreshed with vectors of two exports nor recorded as the old one)
        # the words as this lakeql cuts them: an index of an older BM25 tokenizer has other params, so a
        # refresh rebuilds it (even when its table did not change)
        words = {"bm25": bm25_version()} if params.get("bm25") else {}
        params = {**params, **encoder_params(encoder_backend(params)), **words}
        out.append((table, column, kind, params))
    return out


# ------------------------------------------------------------------------------ shards
@dataclass(frozen=True)
class ShardPlan:
    """One shard of a table's embed index: its id, file, first ``__rowid`` and the rows it reads."""

    shard: str
    file: str  # the data file, relative to the lake ('*': the whole table, for tables without shards)
    offset: int
    rows: int
    source: str  # SQL: ``__rowid`` (row number within the shard) and the table's columns


def plan_shards(catalog, table) -> list[ShardPlan]:
    """The shards of ``table`` as it is now: one per Parquet file, in catalog order.

    CSV/JSON tables (no row numbers per file) and Parquet tables with a column named like DuckDB's
    ``file_row_number`` are one shard of the whole table, named after all its files.
    """
    from lakeql.lake import quote_path
    from lakeql.rows import FILE_COLUMN, rowid_scan_sql

    file_rows = catalog.file_rows(table)
    names = [c.column_name.lower() for c in catalog.columns(table)]
    if table.format != "parquet" or "file_row_number" in names or FILE_COLUMN in names:
        return [
            ShardPlan(
                whole_table_shard(table),
                "*",
                0,
                int(sum(file_rows)),
                rowid_scan_sql(table, file_rows, [c.column_name for c in catalog.columns(table)]),
            )
        ]
    offsets = shards.row_offsets(table, file_rows)
    hive = "true" if table.hive else "false"
    out = []
    for f, path, n in zip(table.files, table.paths, file_rows, strict=True):
        sid = shards.shard_id(f)
        src = (
            f"SELECT file_row_number AS __rowid, * EXCLUDE (file_row_number) FROM read_parquet("
            f"[{quote_path(path)}], file_row_number = true, hive_partitioning = {hive})"
        )
        out.append(ShardPlan(sid, f.path, offsets[sid], int(n), src))
    return out


def whole_table_shard(table) -> str:
    """The id of the one shard of a table without per-file shards (changes when any file changes)."""
    return hashlib.sha1("\0".join(shards.shard_id(f) for f in table.files).encode()).hexdigest()[:16]


def has_column(source: str, column: str, con: Any = None) -> bool:
    """Whether the shard's SQL ``source`` has ``column`` (a file may lack a column others have).
    ``con``: a DuckDB connection to use (default: a new one; a loop over many files passes one)."""

    own = con is None
    con = buildfs.connect() if own else con
    try:
        names = [d[0].lower() for d in con.sql(f"SELECT * FROM ({source}) LIMIT 0").description]
    finally:
        if own:
            con.close()
    return column.lower() in names


@dataclass
class Reuse:
    """What a refresh keeps of the previous index: its folder, binarizer, shards and checksums."""

    folder: Path
    binarizer: Any
    shards: dict[str, dict[str, Any]]
    checksums: dict[str, str]
    fit_rows: int
    #: the previous index's BM25 words were cut by an older tokenizer (its params differ only in ``bm25``):
    #: its codes are kept, the word counts of its kept shards are made again from their texts (no model)
    rewords: bool = False
    #: the build time zone the previous index recorded (None: built before it was recorded)
    time_zone: str | None = None
    #: the ``onnx-int8-outlier`` channels the previous index's vectors were made with (None: not that
    #: encoder, or built before they were recorded): the refresh embeds its new rows with them
    channels: str | None = None


def reusable(ctx, table, column: str, params: dict[str, Any]) -> Reuse | None:
    """The previous index of the column when ``--refresh`` can keep its shards (same params, intact)."""
    from lakeql.vectors import binarizers, codes

    if not ctx.refresh:
        return None
    entry = ctx.store.find(KIND, table.key, column)
    if entry is None or not ctx.store.intact(entry):
        return None
    rewords = entry.params != json.dumps(params, sort_keys=True)
    if rewords and not only_words_differ(entry.params_dict, params):
        return None
    folder = ctx.store.root / entry.path
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if int(meta.get("format", 1)) != codes.FORMAT:
            return None
        with np.load(folder / "binarizer.npz") as z:
            binz = binarizers.from_state(meta["binarizer"], {k: z[k] for k in z.files})
        kept = {str(r["shard"]): r for r in codes.read_shard_list(folder)}
        return Reuse(
            folder,
            binz,
            kept,
            json.loads(entry.checksums or "{}"),
            int(meta.get("fit_rows", meta.get("rows", 0))),
            rewords,
            meta.get("time_zone"),
            meta.get(CHANNELS),
        )
    except Exception:  # noqa: BLE001 - an unreadable previous index is rebuilt whole
        return None


def only_words_differ(old: Any, new: dict[str, Any]) -> bool:
    """Whether an index built with params ``old`` differs from ``new`` only by its BM25 tokenizer
    (``bm25``: ``true`` = version 1, then the version number): a refresh then keeps its embeddings."""
    if not isinstance(old, dict) or not old.get("bm25") or not new.get("bm25"):
        return False
    return {k: v for k, v in old.items() if k != "bm25"} == {
        k: v for k, v in new.items() if k != "bm25"
    } and json.dumps(old["bm25"]) != json.dumps(new["bm25"])


def text_chars(params: dict[str, Any], device: str = "cpu") -> int:
    """The characters of a text the model reads (longer texts are cut to this in SQL before they are
    embedded and their words counted): the encoder's, as :func:`embed_texts` cuts them; read from the
    model folder's config when it says it (a refresh that only counts words again loads no model)."""
    from lakeql import embedding

    tokens = embedding.config_max_seq_length(params["model"])
    if tokens is not None:
        return tokens * CHARS_PER_TOKEN_MAX
    model = embedding.load_model(params["model"], encoder_backend(params), device)
    return int(getattr(model, "max_seq_length", 512) or 512) * CHARS_PER_TOKEN_MAX


def kept_texts(
    ctx, table, column: str, params: dict[str, Any], plans: list[ShardPlan], reuse: Reuse
) -> dict[str, list[str]] | None:
    """The texts of the shards a refresh keeps, in code-position order, to count their words with the
    current BM25 tokenizer (:attr:`Reuse.rewords`): read from the table, never embedded. None when a
    shard's texts are not its codes' rows (then the column is rebuilt whole)."""
    max_chars = text_chars(params, getattr(ctx.options["vectors"], "device", "cpu"))
    out: dict[str, list[str]] = {}
    con = buildfs.connect()
    try:
        for p in plans:
            if p.shard not in reuse.shards:
                continue
            texts: list[str] = []
            if has_column(p.source, column, con):
                for _, batch in stream_texts(ctx, table, column, max_chars, p.source, con):
                    texts.extend(batch)
            if len(texts) != int(reuse.shards[p.shard]["codes"]):
                return None
            out[p.shard] = texts
    finally:
        con.close()
    return out


def stream_texts(ctx, table, column: str, max_chars: int, source: str | None = None, con: Any = None):
    """Yield (rowids, texts) Arrow-batch by Arrow-batch for the non-blank texts of ``column`` (at least
    one character outside :data:`NOT_BLANK_RE`'s blank classes, as a query must have)
    (rowids: ``__rowid`` of ``source``, by default the whole table's scan). ``con``: as in
    :func:`has_column`."""

    from lakeql.rows import rowid_scan_sql

    col = quote_ident(column)
    if source is None:
        source = rowid_scan_sql(table, ctx.catalog.file_rows(table))
    sql = (
        f"SELECT __rowid, left({col}::VARCHAR, {int(max_chars)}) AS t FROM ({source}) "
        f"WHERE {col} IS NOT NULL AND regexp_matches({col}::VARCHAR, '{NOT_BLANK_RE}') ORDER BY __rowid"
    )
    own = con is None
    con = buildfs.connect() if own else con
    try:
        reader = con.sql(sql).to_arrow_reader(STREAM_ROWS)
        for batch in reader:
            yield batch.column(0).to_numpy().astype(np.int64), batch.column(1).to_pylist()
    finally:
        if own:
            con.close()


def embed_texts(
    ctx, table, column: str, params: dict[str, Any], todo: list[ShardPlan], pin: str | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[list[str]] | None, int]:
    """Embed the texts of the shards ``todo``: per shard (row numbers, vectors), [texts], and the dim.
    ``pin``: the outlier channels of the index being refreshed (:func:`lakeql.embedding.load_model`)."""
    from lakeql import embedding

    opts = ctx.options["vectors"]
    model = embedding.load_model(params["model"], encoder_backend(params), opts.device, pin)
    dim = embedding.dimension(model)
    max_chars = int(getattr(model, "max_seq_length", 512) or 512) * CHARS_PER_TOKEN_MAX
    batch_size = int(opts.embed_batch_size)
    label = f"{table.key}.{column}"
    total = sum(p.rows for p in todo)
    pbar = bar(total, desc=f"embed {label}", unit="text")
    owner: list[int] = []  # the shard of each streamed batch
    texts_of: list[list[str]] | None = [[] for _ in todo] if params.get("bm25") else None
    t0 = time.perf_counter()

    def batches():  # every batch's texts also feed BM25 (all of them, in row order)
        # one connection for every file: opening one per file cost ~0.1 s a file, more than the
        # encoder (a table of 2,000 one-row files embedded at 2 texts/s)
        con = buildfs.connect()
        try:
            for i, p in enumerate(todo):
                if not has_column(p.source, column, con):
                    continue
                for rowids, texts in stream_texts(ctx, table, column, max_chars, p.source, con):
                    owner.append(i)
                    if texts_of is not None:
                        texts_of[i].extend(texts)
                    yield rowids, texts
        finally:
            con.close()

    rowid_parts: list[np.ndarray] = []
    vec_parts: list[np.ndarray] = []
    if ctx.engine.name != "local":  # lakeql.engine (issue 10): batches on actors, model loaded once per actor
        from lakeql.engine_tasks import encode_batches

        rowid_parts, vec_parts = encode_batches(
            ctx.engine,
            batches(),
            params["model"],
            encoder_backend(params),
            batch_size,
            pbar,
            getattr(opts, "device", "cpu"),
            embedding.channels(model),
        )
    else:
        for rowids, texts in batches():
            vec_parts.append(embedding.encode(texts, model, batch_size=batch_size, progress_bar=pbar))
            rowid_parts.append(rowids)
    pbar.close()
    secs = time.perf_counter() - t0
    ids = [np.zeros(0, np.int64) for _ in todo]
    vecs = [np.zeros((0, dim), np.float32) for _ in todo]
    for i in range(len(todo)):
        mine = [j for j, o in enumerate(owner) if o == i]
        if mine:
            ids[i] = np.concatenate([rowid_parts[j] for j in mine])
            vecs[i] = np.concatenate([np.asarray(vec_parts[j], np.float32) for j in mine])
    n = sum(len(x) for x in ids)
    say(
        f"embed {label}: {n} texts of {len(todo)} file(s) in {secs:.1f} s ({n / max(secs, 1e-9):.0f} "
        f"sentences/s, {total - n} NULL/blank rows skipped)"
    )
    return ids, vecs, texts_of, dim


def read_vectors(
    ctx, table, column: str, params: dict[str, Any], todo: list[ShardPlan], want_dim: int | None
) -> tuple[list[np.ndarray], list[np.ndarray], None, int]:
    """The stored vectors of the shards ``todo`` (no model): per shard (row numbers, normalized vectors)."""
    from lakeql import embedding
    from lakeql.vectors.columns import VectorStats, stream_vectors, warn_bad

    label = f"{table.key}.{column}"
    stats = VectorStats()
    stats.dim = want_dim
    t0 = time.perf_counter()
    ids, vecs = [], []
    for p in todo:
        parts = (
            list(stream_vectors(ctx, table, column, stats, source=p.source, warn=False))
            if has_column(p.source, column)
            else []
        )
        ids.append(np.concatenate([x[0] for x in parts]) if parts else np.zeros(0, np.int64))
        vecs.append(np.concatenate([x[1] for x in parts]) if parts else None)
    warn_bad(label, stats)
    n = sum(len(x) for x in ids)
    if want_dim is None and not n:
        raise LakeqlError(
            f"vector column {label} has no usable vector (all NULL or malformed): nothing to index"
        )
    dim = int(stats.dim or want_dim or 0)
    vecs = [np.zeros((0, dim), np.float32) if v is None else v for v in vecs]
    if params.get("model") and want_dim is None:
        name = params["model"]
        mdim = embedding.config_dimension(name)
        if mdim is None:
            mdim = embedding.dimension(embedding.load_model(name, encoder_backend(params), "cpu"))
        if mdim != dim:
            raise LakeqlError(
                f"--model {name} embeds text in {mdim} dimensions but the vectors of {label} "
                f"have {dim}: name the model that made them, or leave --model out "
                "and search with semantic_search_vector"
            )
    total = sum(p.rows for p in todo)
    say(
        f"embed {label}: {n} stored vectors of {len(todo)} file(s) binarized in "
        f"{time.perf_counter() - t0:.1f} s ({total - n} NULL or malformed rows skipped)"
    )
    return ids, vecs, None, dim


def build_column(ctx, table, column: str, kind: str, params: dict[str, Any]) -> IndexEntry:
    """Build (or refresh, keeping the shards of unchanged files) the embed index of one column."""
    plans = plan_shards(ctx.catalog, table)
    reuse = reusable(ctx, table, column, params)
    label = f"{table.key}.{column}"
    if reuse is not None and reuse.time_zone != buildfs.BUILD_TIME_ZONE and table.format == "parquet":
        # built in another zone (or before the zone was recorded: the build machine's): the files whose
        # column text depends on it are embedded again, so one index holds one zone's text
        where = dict(zip((f.path for f in table.files), table.paths, strict=True))
        for p in plans:
            if p.shard in reuse.shards and p.file in where and buildfs.zoned_column(where[p.file], column):
                del reuse.shards[p.shard]
    if reuse is not None:
        todo = [p for p in plans if p.shard not in reuse.shards]
        kept_codes = sum(int(reuse.shards[p.shard]["codes"]) for p in plans if p.shard in reuse.shards)
        if len(todo) == len(plans):  # every file is new or changed: nothing to keep, refit on the rows
            say(f"embed {label}: every file changed, rebuilding it whole")
            reuse = None
        elif kept_codes + sum(p.rows for p in todo) > REFIT_GROWTH * max(reuse.fit_rows, 1):
            say(
                f"embed {label}: the table grew past {REFIT_GROWTH:g}x the rows the binarizer was fitted on, "
                "rebuilding it whole"
            )
            reuse = None
    rewords = None
    if reuse is not None and reuse.rewords:  # an older BM25 tokenizer: count the kept texts' words again
        rewords = kept_texts(ctx, table, column, params, plans, reuse)
        if rewords is None:
            say(f"embed {label}: the texts of a kept file do not match its codes, rebuilding it whole")
            reuse = None
        else:
            say(
                f"embed {label}: the BM25 words are cut by tokenizer {bm25_version()} now: counting the "
                f"words of {len(rewords)} kept file(s) again (their embeddings are kept)"
            )
    if reuse is None:
        todo = plans
    else:
        dropped = len(set(reuse.shards) - {p.shard for p in plans})
        say(
            f"embed {label}: refresh: {len(todo)} new or changed file(s), {len(plans) - len(todo)} kept, "
            f"{dropped} dropped"
        )
    meta_dim = None
    if reuse is not None:
        meta_dim = int(json.loads((reuse.folder / "meta.json").read_text())["dim"])
    pin = reuse.channels if reuse is not None else None
    if not todo and meta_dim is not None:  # files were only removed: nothing to read, no model to load
        ids, vecs, texts, dim = [], [], ([] if params.get("bm25") else None), meta_dim
    elif kind == "vector":
        ids, vecs, texts, dim = read_vectors(ctx, table, column, params, todo, meta_dim)
    else:
        ids, vecs, texts, dim = embed_texts(ctx, table, column, params, todo, pin)
    if meta_dim is not None and dim != meta_dim:
        raise LakeqlError(
            f"the new rows of {label} have {dim} dimensions but its index has {meta_dim}: "
            f"rebuild with 'lakeql index LAKE --embed {shell_word(label)}'"
        )
    new = {p.shard: (ids[i], vecs[i], None if texts is None else texts[i]) for i, p in enumerate(todo)}
    total = ctx.catalog.row_count(table)
    n_new = sum(len(x) for x in ids)
    channels = text_channels(params, kind, pin, reuse, ctx)
    extra = {
        **({CHANNELS: channels} if channels is not None else {}),
        "time_zone": buildfs.BUILD_TIME_ZONE,
        "skipped": int(
            total
            - n_new
            - (
                0
                if reuse is None
                else sum(int(reuse.shards[p.shard]["codes"]) for p in plans if p.shard in reuse.shards)
            )
        ),
    }
    return write_sharded(ctx.store, table, column, dim, plans, new, params, extra, reuse, rewords)


def text_channels(params: dict[str, Any], kind: str, pin: str | None, reuse: Reuse | None, ctx) -> str | None:
    """The ``onnx-int8-outlier`` channels to record in the index (:data:`CHANNELS`): those of the encoder
    that embedded it (the loaded model's, cached: no second load), or of the refreshed index when it kept
    them; None for other encoders, vector columns, and a refresh of an index that recorded none (its kept
    vectors' channels are unknown)."""
    from lakeql import embedding

    if kind == "vector" or embedding.ONNX_PRECISION.get(encoder_backend(params)) != "int8out":
        return None
    if reuse is not None:  # its new rows were embedded with the kept channels (pinned), or unknown
        return pin
    device = getattr(ctx.options["vectors"], "device", "cpu")
    return embedding.channels(embedding.load_model(params["model"], encoder_backend(params), device, pin))


def fit_binarizer(method: str, dim: int, vecs: list[np.ndarray]):
    """The binarizer of a full build, fitted on (at most ``FIT_SAMPLE`` of) every shard's vectors."""
    from lakeql.vectors import binarizers

    binz = binarizers.get(method, dim)
    allv = np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32)
    n = len(allv)
    if n:
        sample = allv if n <= FIT_SAMPLE else allv[np.random.default_rng(0).choice(n, FIT_SAMPLE, False)]
        binz.fit(sample)
    return binz, n


def encode_shard(binz, vecs: np.ndarray, tier: str, refine_bits: int = 0):
    """(packed codes, factors, tier values, scales, space, refinement planes or None) of one shard's
    vectors."""
    from lakeql.vectors import codes

    if len(vecs):
        packed, factors = binz.encode(vecs)
    else:
        packed = np.zeros((0, binz.nbytes), np.uint8)
        factors = (
            {"factor": np.zeros(0, np.float32), "add": np.zeros(0, np.float32)} if binz.scan == "asym" else {}
        )
    tier_values, scales, space, planes = codes.encode_tier(vecs, tier, binz, refine_bits)
    return packed, factors, tier_values, scales, space, planes


def write_sharded(
    store,
    table,
    column: str,
    dim: int,
    plans: list[ShardPlan],
    new: dict[str, tuple[np.ndarray, np.ndarray, list[str] | None]],
    params: dict[str, Any],
    extra_meta: dict[str, Any],
    reuse: Reuse | None = None,
    rewords: dict[str, list[str]] | None = None,
) -> IndexEntry:
    """Write the index folder: new shards encoded, kept ones linked from ``reuse``; record it.

    ``rewords``: the texts of kept shards whose BM25 word counts are made again (an older tokenizer's):
    their other files are linked, the counts written anew."""
    from lakeql.vectors import bm25, codes

    if reuse is None:
        binz, fit_rows = fit_binarizer(params["method"], dim, [new[p.shard][1] for p in plans])
    else:
        binz, fit_rows = reuse.binarizer, reuse.fit_rows
    target = store.index_path(KIND, table.key, column)
    listing, space, rows = [], codes.tier_space(np.zeros((0, dim), np.float32), binz)[1], 0
    if params["tier"] != "int8":
        space = "raw"
    with store.atomic_dir(target) as tmp:
        for p in plans:
            sub = tmp / "shards" / p.shard
            if p.shard in new:
                ids, vecs, texts = new[p.shard]
                packed, factors, tier_values, scales, space, planes = encode_shard(
                    binz, vecs, params["tier"], int(params.get("refine_bits", 0))
                )
                codes.write_shard(
                    sub,
                    file_rows=ids,
                    codes=packed,
                    factors=factors,
                    tier_values=tier_values,
                    scales=scales,
                    table_name=table.key,
                    column_name=column,
                    refine=planes,
                )
                if texts is not None:
                    bm25.write_counts(bm25.term_counts(texts, bm25.index_version(params)), sub)
                n = len(ids)
            else:
                shards.link_tree(reuse.folder / "shards" / p.shard, sub)
                n = int(reuse.shards[p.shard]["codes"])
                if rewords is not None and p.shard in rewords:
                    for name in BM25_COUNTS:  # linked: unlink first, the previous index keeps its bytes
                        (sub / name).unlink(missing_ok=True)
                    bm25.write_counts(bm25.term_counts(rewords[p.shard], bm25.index_version(params)), sub)
            listing.append({"shard": p.shard, "file": p.file, "offset": p.offset, "codes": n, "rows": p.rows})
            rows += n
        codes.write_shard_list(tmp, listing)
        np.savez(tmp / "binarizer.npz", **binz.arrays())
        meta = {
            **params,
            "dim": dim,
            "table": table.key,
            "column": column,
            "shards": len(plans),
            "fit_rows": int(fit_rows),
            **extra_meta,
        }
        codes.write_meta(tmp, meta, rows, space, binz)
        if params.get("bm25"):  # BM25 postings over the union of the shards, for hybrid_search
            bm25.build_merged([bm25.read_counts(tmp / "shards" / p.shard) for p in plans], tmp / "bm25")
        if "ann" in params and rows:  # --embed-ann: IVF lists over every shard's codes, in search order
            from lakeql.vectors import ann

            # + the tier in list order (ann.TIER_FILE), read by the bounded (rabitq) search only
            tier = all_tiers(tmp, plans, dim) if getattr(binz, "bounded", False) else None
            built = ann.build(tmp, all_codes(tmp, plans, dim), dim, params["ann"] or None, tier=tier)
            # + the rows a new connection's ANN search maps (not with refinement planes: write_list_rows
            # would refuse them after loading the whole index, ~6.5 s at 10M rows for nothing)
            if built is not None and tier is not None and not int(params.get("refine_bits", 0)):
                with np.load(tmp / ann.FILE) as z:
                    list_ids = z["ids"]
                ann.write_list_rows(tmp, codes.CodeIndex.load(tmp, f"{table.key}.{column}"), list_ids)
        checksums = _checksums(
            tmp, reuse, {p.shard for p in plans if p.shard not in new}, fresh=BM25_COUNTS if rewords else ()
        )
    entry = IndexEntry(
        KIND,
        table.key,
        column,
        str(target.relative_to(store.root)),
        dir_bytes(target),
        table.source_bytes,
        table.fingerprint,
        params=json.dumps(params, sort_keys=True),
        checksums=json.dumps(checksums, sort_keys=True),
    )
    store.record(entry)
    return entry


def all_codes(folder: Path, plans: list[ShardPlan], dim: int) -> np.ndarray:
    """The packed codes of every shard written in ``folder``, in the order a search reads them."""
    from lakeql.vectors import codes

    nbytes = -(-dim // 8)
    parts = [
        codes._code_bytes(
            parquet_io.read_table(folder / "shards" / p.shard / "codes.parquet", columns=["code"])
            .column("code")
            .combine_chunks(),
            nbytes,
        )
        for p in plans
    ]
    return np.concatenate(parts) if parts else np.zeros((0, nbytes), np.uint8)


def all_tiers(folder: Path, plans: list[ShardPlan], dim: int):
    """The rescoring tiers of every shard written in ``folder`` (memory-mapped), as one row-indexable
    array in the order a search reads them (for the ANN stage's list-order copy)."""
    from lakeql.vectors import codes

    parts = [np.load(folder / "shards" / p.shard / "rescore.npy", mmap_mode="r") for p in plans]
    return parts[0] if len(parts) == 1 else codes.ShardedRows(parts, dim, parts[0].dtype)


def _checksums(
    folder: Path, reuse: Reuse | None, kept: set[str], fresh: tuple[str, ...] = ()
) -> dict[str, str]:
    """The manifest checksums of ``folder``'s files; a kept (linked) shard's are the previous index's
    (but for its files named in ``fresh``, written anew)."""
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        parts = rel.split("/")
        if (
            reuse is not None
            and len(parts) == 3
            and parts[0] == "shards"
            and parts[1] in kept
            and parts[2] not in fresh
            and rel in reuse.checksums
        ):
            out[rel] = reuse.checksums[rel]
        else:
            out[rel] = file_checksum(f)
    return out


def write_index(
    store,
    table,
    column: str,
    rowids: np.ndarray,
    vecs: np.ndarray,
    params: dict[str, Any],
    extra_meta: dict[str, Any] | None = None,
    texts: list[str] | None = None,
) -> IndexEntry:
    """Binarize ``vecs`` (L2-normalized, one per ``rowids`` of ``table``) and write + record the code
    store, sharded by ``table``'s files.

    For vectors computed elsewhere (the benchmark's): they go through exactly the path of a build.
    """
    plans = plan_shards_of_rowids(table, int(rowids.max()) + 1 if len(rowids) else 0)
    new = {}
    for p in plans:
        lo, hi = np.searchsorted(rowids, [p.offset, p.offset + p.rows])
        new[p.shard] = (rowids[lo:hi] - p.offset, vecs[lo:hi], None if texts is None else texts[lo:hi])
    return write_sharded(store, table, column, vecs.shape[1], plans, new, params, extra_meta or {})


def plan_shards_of_rowids(table, n_rows: int) -> list[ShardPlan]:
    """Shards of ``table`` from its Parquet footers (no catalog): for :func:`write_index`."""

    if table.format != "parquet":
        return [ShardPlan(whole_table_shard(table), "*", 0, n_rows, "")]
    file_rows = [buildfs.parquet_file(p).metadata.num_rows for p in table.paths]
    offsets = shards.row_offsets(table, file_rows)
    return [
        ShardPlan(shards.shard_id(f), f.path, offsets[shards.shard_id(f)], n, "")
        for f, n in zip(table.files, file_rows, strict=True)
    ]
