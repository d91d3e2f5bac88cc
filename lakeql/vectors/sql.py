"""The SQL surface's Python side: UDFs bound on every lakeql connection (macros in ``udfs/vectors.sql``).

``semantic_search_impl`` / ``semantic_search_vector_impl`` / ``similar_rows_impl`` return
``LIST<STRUCT(rowid, score)>``; the macros unnest them and join the hit rows back through
``lakeql_rows_view(tbl)``. ``embed`` and ``binarize`` are scalars. Loaded code stores live in
the connection's index cache (``ctx.load_index``): loaded once per connection, reloaded after a rebuild,
never re-read per query.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from lakeql.cliargs import shell_word
from lakeql.errors import LakeqlError, shown
from lakeql.udf import check_k, is_blank, scalar_udf, struct_list
from lakeql.vectors.builder import KIND

HIT_COLUMNS = [("rowid", "BIGINT"), ("score", "FLOAT")]


class EncoderMismatchWarning(UserWarning):
    """An index's vectors were made by another encoder than the one its queries are embedded with."""


class OldTokenizerWarning(UserWarning):
    """An index's BM25 words were cut by an older tokenizer (``lakeql index --refresh`` upgrades it)."""


MAX_QUERY_CHARS = 100_000
HYBRID_POOL = 10  # each side of hybrid_search contributes its best k * HYBRID_POOL (at least 100) rows


class Searcher:
    """Resolves names, loads (and caches) code stores, embeds queries and runs searches for one connection."""

    def __init__(self, ctx, con=None) -> None:
        self.ctx = ctx
        self.con = con  # the caller's connection: filters run on a cursor of it, with its restrictions

    # ---------------------------------------------------------------- loading
    def index(self, tbl: str, col: str, purpose: str = "semantic_search"):
        """(table, column name, CodeIndex) for a user's table/column, or a clear error."""
        from lakeql.vectors.codes import CodeIndex

        if tbl is None or col is None:
            raise LakeqlError(f"{purpose} needs a table and a column, got NULL")
        from lakeql.vectors.columns import embed_column

        table = self.ctx.table(str(tbl))
        column = embed_column(self.ctx.catalog, table, str(col), purpose)[0].column_name
        idx = self.ctx.load_index(KIND, table, column,
                                  lambda path, _e: CodeIndex.load(path, f"{table.key}.{column}"),
                                  flag="--embed")
        return table, column, idx

    def first_stage_index(self, tbl: str, col: str, purpose: str, predicate: Any, exact: Any):
        """(table, column name, index) for a search: the loaded index when this connection holds it, or
        for an ANN search without a filter its memory-mapped list-order rows (:func:`lakeql.vectors.ann.
        open_mapped`: a new connection's first query reads the probed lists only, not every code);
        else :meth:`index` (loads every code)."""
        from lakeql.vectors import ann

        if exact or not (predicate is None or not str(predicate).strip()) or tbl is None or col is None:
            return self.index(tbl, col, purpose)
        from lakeql.vectors.columns import embed_column

        table = self.ctx.table(str(tbl))
        column = embed_column(self.ctx.catalog, table, str(col), purpose)[0].column_name
        if self.ctx.cached_index(KIND, table, column, flag="--embed") is None:
            label = f"{table.key}.{column}"
            mapped = self.ctx.load_index(KIND, table, column, lambda path, _e: ann.open_mapped(path, label),
                                         flag="--embed", variant=":ann")
            if mapped is not None:
                return table, column, mapped
        return self.index(tbl, col, purpose)

    def embed_query(self, idx, query: Any, allow_unknown: bool = False) -> np.ndarray | None:
        """The query's unit vector. A query the encoder reads as unknown tokens only is refused (or, with
        ``allow_unknown``, None: hybrid_search then ranks by its words alone)."""
        from lakeql import embedding

        if is_blank(query):  # NULL, '', or only whitespace / control / zero-width characters
            raise LakeqlError("the search query is empty: pass some text, e.g. 'read a csv file'")
        if idx.meta.get("model") is None:  # an index of the user's own vectors, built without --model
            label = f"{idx.meta.get('table')}.{idx.meta.get('column')}"
            raise LakeqlError(f"{label} holds your own vectors and no model was named for text queries: "
                              f"search it with semantic_search_vector, or rebuild with --embed {label} "
                              "--model NAME (the model that made the vectors)")
        self.check_encoder(idx)
        from lakeql.vectors.builder import CHANNELS, encoder_backend

        pin = idx.meta.get(CHANNELS)  # the graph that made the vectors, on this machine too
        model = embedding.load_model(idx.meta.get("model"), encoder_backend(idx.meta), pin=pin)
        text = str(query)[:MAX_QUERY_CHARS]
        if embedding.only_unknown_tokens(model, text):
            if not allow_unknown:
                name = idx.meta.get("model")
                raise LakeqlError(
                    f"the model {name} knows no token of the query {shown(text, 60)} (emoji, or a script "
                    "outside its vocabulary): its vector is the one every such text gets and would match "
                    "them all with score 1.0; find the text with ngram_search / ngram_rows (exact), "
                    "hybrid_search (words), or index the column with a multilingual --model")
            return None
        return model.encode([text], convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)[0].astype(np.float32)

    def check_encoder(self, idx) -> None:
        """Warn (once per index and connection) when the index's vectors were made by another encoder
        than the one its queries get now (an ONNX export of another recipe): the fix is a rebuild."""
        from lakeql.vectors.builder import encoder_mismatch

        if idx._pos.get("encoder_checked"):  # the loaded index lives in this connection's cache
            return
        idx._pos["encoder_checked"] = True
        label = f"{idx.meta.get('table')}.{idx.meta.get('column')}"
        root = self.ctx.lake.root if self.ctx.lake is not None else "LAKE"
        problem = encoder_mismatch(idx.meta, label, root)
        if problem is not None:
            warnings.warn(problem, EncoderMismatchWarning, stacklevel=2)

    def allowed(self, table, idx, predicate: Any) -> np.ndarray | None:
        """Pre-filter: a mask over code positions of the rows where the SQL ``predicate`` holds.

        The predicate is hostile text: :func:`lakeql.safety.parse_filter` reduces it to one expression
        over the table's columns, and it runs on a cursor of the caller's own connection (never a private
        ``duckdb.connect()``), so the caller's ``allowed_directories`` / external-access settings apply.
        """
        if predicate is None or not str(predicate).strip():
            return None
        import duckdb

        from lakeql.rows import escape_column, row_columns_sql
        from lakeql.safety import parse_filter

        if self.con is None:
            raise LakeqlError("filter := needs the connection the lakeql functions were registered on")
        columns = [c.column_name for c in self.ctx.catalog.columns(table)]
        try:
            where = parse_filter(predicate, columns)
        except LakeqlError as exc:
            raise LakeqlError(f"{exc} [table {table.key}]") from None
        source = self.ctx.rows_view(table)
        rid = "__rowid"
        if any(escape_column(c) != c for c in columns):
            # the table has its own __rowid (the rowid view calls it __rowid~): the filter means it
            taken = {c.lower() for c in columns}
            rid = "__lakeql_rid"
            while rid in taken:
                rid += "_"
            source = f"(SELECT __rowid AS {rid}, {row_columns_sql()} FROM {source})"
        cur = self.con.cursor()
        try:
            ids = cur.execute(f"SELECT {rid} FROM {source} WHERE ({where})").fetchnumpy()[rid]
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            raise LakeqlError(f"filter {str(predicate)!r} is not a valid SQL predicate over the columns of "
                              f"{table.key} ({msg})") from None
        finally:
            cur.close()
        return np.isin(idx.rowids, np.asarray(ids, np.int64), assume_unique=True)

    # ---------------------------------------------------------------- searches
    def run(self, table, column: str, idx, q: np.ndarray, k: int, oversample: int,
            allowed: np.ndarray | None, exact: Any = False) -> tuple[np.ndarray, np.ndarray]:
        """The search itself: through the ANN lists when the index has them (``--embed-ann``) and
        ``exact`` is not true, else the exhaustive scan."""
        from lakeql.vectors import ann
        from lakeql.vectors.search import search

        ivf = None if exact else ann.ivf_of(idx, f"{table.key}.{column}")
        if ivf is not None:
            rowids, scores = ann.search(idx, ivf, q, k, oversample, allowed)
        else:
            rowids, scores = search(idx, q, k, oversample, allowed)
        return rowids, cosines(scores)

    def search(self, tbl, col, query, k, oversample, predicate, exact=False) -> list[dict[str, Any]]:
        kk, ov = check_k(k), check_k(oversample, "oversample")
        table, column, idx = self.first_stage_index(tbl, col, "semantic_search", predicate, exact)
        q = self.embed_query(idx, query)
        return hits(*self.run(table, column, idx, q, kk, ov, self.allowed(table, idx, predicate), exact))

    def search_vector(self, tbl, col, vector, k, oversample, predicate, exact=False) -> list[dict[str, Any]]:
        from lakeql.vectors.search import check_query_vector

        kk, ov = check_k(k), check_k(oversample, "oversample")
        if vector is None:
            raise LakeqlError("the query vector is NULL")
        table, column, idx = self.first_stage_index(tbl, col, "semantic_search_vector", predicate, exact)
        q = check_query_vector(idx, np.asarray(vector, np.float32), f"{table.key}.{column}")
        q64 = q.astype(np.float64)  # float32's squared norm overflows/underflows
        norm = float(np.linalg.norm(q64))
        if norm == 0.0:
            raise LakeqlError("the query vector is all zeros: it has no direction to compare")
        q = (q64 / norm).astype(np.float32)  # the stored vectors are unit length: scores are cosines
        return hits(*self.run(table, column, idx, q, kk, ov, self.allowed(table, idx, predicate), exact))

    def hybrid(self, tbl, col, query, k, fusion, weight, predicate) -> list[dict[str, Any]]:
        """BM25 and vector search over the same column, fused (``lakeql.vectors.bm25.fuse``)."""
        from lakeql.vectors import bm25
        from lakeql.vectors.search import search

        kk = check_k(k)
        how = "rrf" if fusion is None else str(fusion).lower()
        if how not in ("rrf", "weighted"):
            raise LakeqlError(f"fusion must be 'rrf' or 'weighted', got {shown(fusion)}")
        w = 0.5 if weight is None else float(weight)
        if not 0.0 <= w <= 1.0:
            raise LakeqlError(f"weight (the vector score's share) must be between 0 and 1, got {weight!r}")
        table, column, idx = self.index(tbl, col, "hybrid_search")
        label = f"{table.key}.{column}"
        folder = idx.path / "bm25"
        if "bm25" not in idx._pos:
            if not (folder / "postings.npz").exists():
                raise LakeqlError(f"hybrid_search needs the words of {label} indexed: rebuild with "
                                  f"'lakeql index LAKE --embed {shell_word(label)} --embed-bm25'")
            # cut queries as the index's texts were cut (an index made before tokenizer 2 keeps version 1)
            version = bm25.index_version(idx.meta)
            idx._pos["bm25"] = bm25.BM25Index.load(folder, label, version)
            if version < bm25.TOKENIZER_VERSION:  # said once per loaded index (the connection's cache)
                root = self.ctx.lake.root if self.ctx.lake is not None else "LAKE"
                warnings.warn(f"the BM25 words of {label} were cut by an older tokenizer (version {version}: "
                              "no Unicode words, Chinese/Japanese/Thai runs kept whole); 'lakeql index "
                              f"{shell_word(str(root))} --refresh' upgrades them (the embeddings are kept)",
                              OldTokenizerWarning, stacklevel=2)
        words = idx._pos["bm25"]
        q = self.embed_query(idx, query, allow_unknown=True)
        allowed = self.allowed(table, idx, predicate)
        pool = max(kk * HYBRID_POOL, 100)
        if q is None:  # no token the encoder knows: its vector says nothing, the words decide
            vec_pos, vec = np.empty(0, np.int64), (None, np.empty(0, np.float32))
        else:
            vec = search(idx, q, pool, 4, allowed)
            vec = (vec[0], cosines(vec[1]))
            vec_pos = idx.positions_of(vec[0])
        kw = words.top(str(query)[:MAX_QUERY_CHARS], pool, allowed)
        if q is None and not len(kw[0]):  # neither side has anything to go on: say why, as semantic_search
            self.embed_query(idx, query)
        pos, scores = bm25.fuse((vec_pos, vec[1]), kw, kk, how, w)
        return hits(idx.rowids[pos], scores)

    def similar(self, tbl, col, rowids, k, oversample) -> list[dict[str, Any]]:
        from lakeql.vectors.search import search

        kk, ov = check_k(k), check_k(oversample, "oversample")
        table, column, idx = self.index(tbl, col, "similar_rows")
        if not rowids:
            raise LakeqlError(f"similar_rows: no row of {table.key} has that key")
        pos = idx.positions_of(np.asarray(rowids[:1], np.int64))
        if pos[0] < 0:
            raise LakeqlError(f"similar_rows: the row's {column} is NULL or empty, so it has no embedding")
        q = idx.vectors(pos)[0]
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        out_ids, scores = search(idx, q, kk, ov, exclude=pos)
        return hits(out_ids, cosines(scores))


def cosines(scores: np.ndarray) -> np.ndarray:
    """Scores of unit vectors clamped to [-1, 1]: the int8 rescoring tier's rounding (and float32 sums)
    put an exact match at up to ~1.0001; the order is the search's, unchanged."""
    return np.clip(scores, -1.0, 1.0)


def hits(rowids: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"rowid": int(r), "score": float(s)} for r, s in zip(rowids, scores, strict=True)]


def register(con, ctx) -> None:
    """Bind the vectors UDFs on ``con`` (the macros come from ``udfs/vectors.sql``)."""
    from lakeql import embedding

    s = Searcher(ctx, con)
    ctx.cache.setdefault("vectors.searcher", s)
    hit_list = struct_list(HIT_COLUMNS)
    scalar_udf(con, "semantic_search_impl", s.search,
               ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"], hit_list)
    scalar_udf(con, "semantic_search_vector_impl", s.search_vector,
               ["VARCHAR", "VARCHAR", "FLOAT[]", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"], hit_list)
    scalar_udf(con, "hybrid_search_impl", s.hybrid,
               ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "DOUBLE", "VARCHAR"], hit_list)
    scalar_udf(con, "similar_rows_impl", s.similar,
               ["VARCHAR", "VARCHAR", "BIGINT[]", "BIGINT", "BIGINT"], hit_list)

    def embed_dir(tbl: Any, col: Any) -> str:
        """The folder of the fresh embed index of (tbl, col), glob-escaped for read_parquet, or the error
        naming the fix: a stale index's rowids point at other rows once files were added or changed, so
        the pure-SQL code macros (embed_codes, nearest_codes, similar_codes) must not read it silently."""
        from lakeql.lake import glob_escape
        from lakeql.vectors.columns import embed_column

        if tbl is None or col is None:
            raise LakeqlError("embed_codes needs a table and a column, got NULL")
        table = ctx.table(str(tbl))
        column = embed_column(ctx.catalog, table, str(col), "embed_codes")[0].column_name
        entry = ctx.require_index(KIND, table, column, flag="--embed")
        ctx.store.verify_once(entry)  # a damaged file: the error naming the fix, not DuckDB's Parquet error
        return glob_escape(str(ctx.store.root / entry.path))

    # deterministic: folded at bind time, so read_parquet() gets a constant path
    scalar_udf(con, "lakeql_embed_dir", embed_dir, ["VARCHAR", "VARCHAR"], "VARCHAR", side_effects=False,
               null_handling="special")

    dim = embedding.config_dimension(None)
    ret = f"FLOAT[{dim}]" if dim else "FLOAT[]"

    def embed(texts: Any) -> Any:
        """Arrow UDF: one batch of up to 2,048 texts is encoded in one model call (NULL/blank -> NULL)."""
        import pyarrow as pa

        values = texts.to_pylist()
        keep = [i for i, t in enumerate(values) if not is_blank(t)]
        model = embedding.load_model(None, embedding.AUTO)  # the default encoder (ONNX, no torch)
        d = dim or embedding.dimension(model)
        out = np.zeros((len(values), d), np.float32)
        if keep:
            out[keep] = model.encode([str(values[i])[:MAX_QUERY_CHARS] for i in keep], convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False, batch_size=64)
        null = np.ones(len(values), bool)
        null[keep] = False
        flat = pa.array(out.reshape(-1), pa.float32())
        if dim:
            return pa.FixedSizeListArray.from_arrays(flat, d, mask=pa.array(null))
        offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32) * d)
        return pa.ListArray.from_arrays(offsets, flat, mask=pa.array(null))

    def binarize(vector: Any, method: Any) -> bytes | None:
        if vector is None:
            return None
        from lakeql.vectors import binarizers

        v = np.asarray(vector, np.float32)
        m = "sign" if method is None else str(method)
        if m == "sign":
            return binarizers.get("sign", len(v)).query_code(v).tobytes()
        if m in binarizers.METHODS:
            raise LakeqlError(f"binarize(v, '{m}') needs fitted parameters: pass the embedded column "
                              "instead, e.g. binarize(v, 'python.functions.docstring')")
        from lakeql.vectors.search import check_query_vector

        table, col = ctx.require_lake().table_column(m, "binarize")
        _, column, idx = s.index(table.key, col, "binarize")
        check_query_vector(idx, v, f"{table.key}.{column}")
        return idx.binarizer.query_code(v).tobytes()

    scalar_udf(con, "embed", embed, ["VARCHAR"], ret, arrow=True)
    # DOUBLE[]: FLOAT[], FLOAT[n] (embed), DOUBLE[] (numpy, pandas) and literal lists all cast to it (trial13)
    scalar_udf(con, "binarize", binarize, ["DOUBLE[]", "VARCHAR"], "BLOB")
