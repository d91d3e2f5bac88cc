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
from lakeql.store import IndexEntry, dir_bytes

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
    res = generate(ctx.lake, ctx.catalog, out, fmt, store=ctx.store, cap=cap, reuse_profiles=ctx.refresh)
    say(f"schemas: {res.tables} tables in {res.domains} domains ({fmt}) -> {out}: {res.written} files "
        f"written, {res.unchanged} unchanged, {res.removed} removed, {res.profiled} tables profiled in "
        f"{res.seconds:.1f} s ({res.stage_line()})")
    model = None
    if opts.schemas_embed:
        from lakeql.context.retrieve import encoder, ensure_embeddings

        stats: dict = {}
        enc, model = encoder(opts.schemas_embed_backend)
        ensure_embeddings(out, enc, stats=stats, label=model)
        say(f"schemas: embeddings of {res.tables} tables ({stats['encoded']} encoded, the rest cached) in "
            f"{stats['seconds']:.1f} s")
        res.stages["embeddings"] = stats["seconds"]
    ctx.stats["schemas"] = dict(res.stages)
    params = json.dumps({"format": fmt, "cap": cap, "lake_fingerprint": lake_fingerprint(ctx.lake),
                         "embedded": model, "backend": opts.schemas_embed_backend})
    source = sum(t.source_bytes for t in ctx.lake.tables.values())
    entry = IndexEntry(KIND, "", "", SUBDIR, dir_bytes(out), source, "", params=params)
    if not ctx.store.recorded_as(entry):  # a no-op --refresh: the manifest is left as it is
        ctx.store.record(entry)
