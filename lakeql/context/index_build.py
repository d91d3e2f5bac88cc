"""``lakeql index`` step of the context capability: schema files into ``INDEX_DIR/schemas``.

Runs last (after the join graph and the embed/ngram indexes exist: it reads their hints and
capabilities through the store). The table files are not embedded here unless ``--schemas-embed``:
the first ``schema_context`` call embeds them and caches the vectors (see docs/context.md, "Cost").
Records one lake-wide manifest row of kind ``schemas`` whose params hold the format and a fingerprint
of every table, so ``schema_context`` can tell when the lake changed since (stale) and name the fix.
"""

from __future__ import annotations

import hashlib
import json

from lakeql.progress import say
from lakeql.store import IndexEntry

SUBDIR = "schemas"


def lake_fingerprint(lake) -> str:
    """A hash over every table's key and file fingerprint."""
    h = hashlib.sha1()
    for k in sorted(lake.tables):
        h.update(f"{k}\0{lake.tables[k].fingerprint}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def build(ctx) -> None:
    from lakeql.context import KIND
    from lakeql.context.generate import generate
    from lakeql.errors import LakeqlError

    opts = ctx.options["context"]
    if not opts.schemas:
        return
    fmt = opts.schemas_format
    cap = int(opts.schemas_domain_size)
    if cap < 2:
        raise LakeqlError(f"--schemas-domain-size must be at least 2, got {cap}")
    out = ctx.store.root / SUBDIR
    inputs = inputs_key(ctx, fmt, cap)
    old = ctx.store.find(KIND) if ctx.refresh else None
    prev = old.params_dict if old is not None else {}
    if (inputs and prev.get("inputs") == inputs and prev.get("format") == fmt and prev.get("cap") == cap
            and ctx.store.intact(old)):
        # --refresh and nothing the files are made from changed (the manifest row's checksums vouch for
        # every file as that run wrote it): nothing to render, compare or write
        say(f"schemas: {len(ctx.lake.tables)} tables unchanged since the last build -> {out}: nothing "
            "written")
        res = None
    else:
        res = generate(ctx.lake, ctx.catalog, out, fmt, store=ctx.store, cap=cap, reuse_profiles=ctx.refresh)
        say(f"schemas: {res.tables} tables in {res.domains} domains ({fmt}) -> {out}: {res.written} files "
            f"written, {res.unchanged} unchanged, {res.removed} removed, {res.profiled} tables profiled in "
            f"{res.seconds:.1f} s ({res.stage_line()})")
    model = None
    if opts.schemas_embed:
        from lakeql.context.retrieve import cached_backend, encoder, ensure_embeddings

        stats: dict = {}
        # 'auto' keeps the encoder of the folder's cached vectors, as the queries do: never mixed
        enc, model = encoder(cached_backend(out, opts.schemas_embed_backend), out)
        ensure_embeddings(out, enc, stats=stats, label=model)
        say(f"schemas: embeddings of {len(ctx.lake.tables)} tables ({stats['encoded']} encoded, the rest "
            f"cached) in {stats['seconds']:.1f} s")
        if res is not None:
            res.stages["embeddings"] = stats["seconds"]
    ctx.stats["schemas"] = dict(res.stages) if res is not None else {}
    params = json.dumps({"format": fmt, "cap": cap, "lake_fingerprint": lake_fingerprint(ctx.lake),
                         "embedded": model, "backend": opts.schemas_embed_backend, "inputs": inputs})
    if res is None and old is not None and old.params == params and not opts.schemas_embed:
        return  # the manifest row says it all already (no walk over the folder's files)
    source = sum(t.source_bytes for t in ctx.lake.tables.values())
    # the folder's bytes and checksums from one walk (recorded_as compares the bytes; record keeps both)
    nbytes, checksums = ctx.store.bytes_and_checksums(SUBDIR)
    entry = IndexEntry(KIND, "", "", SUBDIR, nbytes, source, "", params=params)
    if not ctx.store.recorded_as(entry):  # a no-op --refresh: the manifest is left as it is
        entry.checksums = checksums
        ctx.store.record(entry)


def inputs_key(ctx, fmt: str, cap: int) -> str:
    """A hash of everything :func:`lakeql.context.generate.generate` makes the schema files from: the
    format, domain size cap, lakeql's code (:func:`~lakeql.context.generate.code_key`: the renderer and
    the SQL functions INDEX.md lists), the lake's root, each table's key, fingerprint, name, domain, source
    and row count, the join graph's file (its checksum) and the per-column indexes (embed / n-gram) in the
    manifest. Equal keys make equal files (profiles and composite join checks are kept per fingerprint)."""
    from lakeql.context.generate import STATE_VERSION, USAGE_SQL, code_key

    store, lake, cat = ctx.store, ctx.lake, ctx.catalog
    graph = store.find("join_graph")
    if graph is not None and not graph.checksums:
        return ""  # a graph recorded without checksums (older lakeql): its bytes cannot be vouched for
    h = hashlib.sha1(json.dumps([STATE_VERSION, fmt, cap, code_key(), str(lake.root),
                                 [graph.path, graph.params, graph.checksums, graph.fingerprint]
                                 if graph is not None else None,
                                 sorted([e.kind, e.table_name, e.column_name] for kind in USAGE_SQL
                                        for e in store.entries(kind))],
                                ensure_ascii=False).encode("utf-8", "surrogatepass"))
    rows = []
    for k in sorted(lake.tables):
        t = lake.tables[k]
        row = cat.table_rows.get(k)
        rows.append([k, t.fingerprint, t.name, t.domain, str(t.source),
                     None if row is None else row.get("row_count"),
                     *(["csv_header"] if t.csv_header else []),
                     *(["csv_whole_sniff"] if t.csv_whole_sniff else [])])
    # one JSON list of every table's row (a json.dumps per table was ~0.1 CPU s at 10,000 tables)
    h.update(json.dumps(rows, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return h.hexdigest()
