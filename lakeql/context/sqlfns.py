"""SQL functions of the context capability: ``schema_context`` and ``check_sql`` (macros in
``udfs/context.sql`` over the UDFs bound here), and the ``lakeql demo`` examples."""

from __future__ import annotations

from typing import Any

from lakeql.errors import LakeqlError, NotIndexedError, StaleIndexError

CONTEXT_COLUMNS = [("path", "VARCHAR"), ("score", "DOUBLE"), ("content", "VARCHAR")]
CHECK_COLUMNS = [("severity", "VARCHAR"), ("message", "VARCHAR"), ("suggestion", "VARCHAR"),
                 ("line", "INTEGER"), ("col", "INTEGER")]

# Longest inputs read. A question is ranked by its words and its first ~256 model tokens: 100,000
# characters is far past what changes the answer. Checking SQL costs ~10 CPU s per MB (sqlglot): a 10 MB
# string from an agent would hold a CPU for ~100 s. Longer inputs are an error, not silently cut.
MAX_QUESTION_CHARS = 100_000
MAX_CHECK_SQL_CHARS = 1_000_000


def check_length(what: str, text: str, limit: int) -> None:
    """Raise a clear error when ``text`` is longer than ``limit`` characters."""
    if len(text) > limit:
        raise LakeqlError(f"{what} has {len(text):,} characters; at most {limit:,} are accepted: shorten it")


def schema_index(ctx):
    """The fresh :class:`SchemaIndex` of the connection's lake, loaded once per build."""
    from lakeql.context import KIND
    from lakeql.context.retrieve import SchemaIndex, cached_backend
    from lakeql.store import current_fingerprint

    lake = ctx.require_lake()
    if ctx.store is None or ctx.store.find(KIND) is None:
        raise NotIndexedError("no schema files for this lake: build them with 'lakeql index LAKE' "
                              "(without --no-schemas)")
    entry = ctx.require_index(KIND)
    params = entry.params_dict
    import hashlib

    h = hashlib.sha1()
    for k in sorted(lake.tables):
        h.update(f"{k}\0{current_fingerprint(lake.tables[k])}\n".encode("utf-8", "surrogatepass"))
    if h.hexdigest() != params.get("lake_fingerprint"):
        from lakeql.lake import lake_files_word

        files = lake_files_word(lake.tables.values())  # 'CSV files', 'Parquet and CSV files'
        raise StaleIndexError(f"the schema files are older than the lake's {files}: run "
                              "'lakeql index --refresh LAKE'")
    backend = params.get("backend", "torch")  # indexes written before backends: torch, as then
    # 'auto' keeps the encoder of the folder's cached vectors (a folder the float32 default embedded):
    # decided once per load (it reads the cache's keys and hashes every table's text)
    chosen: dict[str, str] = {}

    def backend_of(path: Any) -> str:
        if str(path) not in chosen:
            chosen[str(path)] = cached_backend(path, backend)
        return chosen[str(path)]

    def embed_outside_the_lock(path: Any, _e: Any) -> None:
        """Encode the tables missing from the embeddings cache before loading (minutes for 10,000 tables
        on a first call): under the loader's shared swap lock, a 'lakeql index --refresh' waited for it.
        A read-only folder keeps vectors in memory only: then the loader encodes, once."""
        import os

        from lakeql.context.retrieve import encoder, ensure_embeddings

        if os.access(path, os.W_OK):
            model, label = encoder(backend_of(path), path)
            ensure_embeddings(path, model, label=label)

    return ctx.load_index(KIND, None, "", lambda path, _e: SchemaIndex.load(path, backend=backend_of(path)),
                          prepare=embed_outside_the_lock)


def register(con, ctx) -> None:
    import os

    from lakeql.udf import check_k, is_blank, scalar_udf, table_udf

    def context_impl(question: Any, k: Any, unit: Any) -> list[dict[str, Any]]:
        from lakeql.context.retrieve import content

        if is_blank(question):  # NULL, '', or only whitespace / control / zero-width characters
            raise LakeqlError("schema_context needs a question: pass a non-empty text")
        check_length("the schema_context question", str(question), MAX_QUESTION_CHARS)
        kk = check_k(k)
        idx = schema_index(ctx)
        hits = idx.pick(str(question), kk, str(unit or "auto"))
        return [{"path": str(idx.out / p), "score": s, "content": content(idx, p, str(question))}
                for p, s in hits]

    def check_impl(sql: Any, search_path: Any) -> list[dict[str, Any]]:
        from lakeql.context.check import check

        if sql is not None:
            check_length("the SQL given to check_sql", str(sql), MAX_CHECK_SQL_CHARS)
        cur = con.cursor()  # a UDF cannot use the connection of the query that calls it
        try:
            return [p.as_dict() for p in check(sql, checker_schema(ctx), search_path or None, con=cur)]
        finally:
            cur.close()

    def listing_path(path: Any) -> Any:
        """``path`` unchanged; when it is this index's schema file listing and that file is missing, the
        error naming the fix (DuckDB's own is "No files found that match the pattern"). Other paths are
        not looked at (no existence test of files outside the index for an agent)."""
        from lakeql.context import KIND
        from lakeql.context.generate import FILES
        from lakeql.errors import CorruptIndexError

        root = ctx.store.root if ctx.store is not None else None
        if path != f"{root if root is not None else ''}/schemas/{FILES}":
            return path
        if os.path.isfile(path):
            entry = ctx.store.find(KIND) if root is not None else None
            if entry is not None:  # truncated, flipped: lakeql's error naming the fix, not DuckDB's
                ctx.store.verify_once(entry)
            return path
        if root is None or ctx.store.find(KIND) is None:
            raise NotIndexedError("no schema files for this lake: build them with 'lakeql index LAKE' "
                                  "(without --no-schemas)")
        raise CorruptIndexError(f"the schema file listing {path!r} is missing: run 'lakeql index --refresh "
                                "LAKE'")

    scalar_udf(con, "lakeql_schema_listing", listing_path, ["VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="default")  # folded at bind time: read_parquet() gets a constant
    table_udf(con, "schema_context", context_impl, ["VARCHAR", "BIGINT", "VARCHAR"], CONTEXT_COLUMNS)
    table_udf(con, "check_sql", check_impl, ["VARCHAR", "VARCHAR"], CHECK_COLUMNS)


def checker_schema(ctx):
    """The :class:`SchemaInfo` of the connection's lake (cached; none when no lake is attached)."""
    from lakeql.context.check import SchemaInfo

    if ctx.lake is None:
        raise LakeqlError("check_sql needs a lake: use lakeql.connect(lake=PATH) or --lake PATH")
    if "context.schema_info" not in ctx.cache:
        ctx.cache["context.schema_info"] = SchemaInfo.from_catalog(ctx.catalog)
    return ctx.cache["context.schema_info"]


def demo(con, ctx, out) -> None:
    """Two examples: a typo caught by check_sql, and the schema files an agent should open."""
    from lakeql.render import show

    show(con, "SELECT severity, message, suggestion FROM check_sql("
              "'SELECT carier, count(*) FROM flights.flights GROUP BY carrier')", out,
         "check_sql: an agent's SQL checked against the catalog (sqlglot, DuckDB dialect)")
    show(con, "SELECT regexp_replace(path, '^.*/schemas/', '') AS file, round(score, 3) AS score, "
              "length(content) AS bytes\n"
              "FROM schema_context('which airline flew the most flights?', k := 3)", out,
         "schema_context: the schema files to open for a question")
