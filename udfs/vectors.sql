-- lakeql vectors: semantic search over 1-bit codes of embedded text columns (docs/vectors.md).
-- @pure
-- bit_hamming(a, b): number of differing bits of two equally long BLOBs (binary codes).
-- (DuckDB's own hamming() compares strings; this one works on BLOB codes.)
CREATE OR REPLACE MACRO bit_hamming(a, b) AS CAST(bit_count(xor(CAST(a AS BIT), CAST(b AS BIT))) AS INTEGER);

-- embed_codes_path(tbl, col): the code Parquet files of an embedded column, one per shard (data file)
-- (the folder name is lakeql.store.slug, generated into this file from Python).
CREATE OR REPLACE MACRO embed_codes_path(tbl, col) AS
    {{index_dir}} || '/embed/' || {{slug(tbl, col)}} || '/shards/*/codes.parquet';

-- embed_codes(tbl, col): the code store of an embedded column ('domain.name', column): __rowid, code
-- (a shard's row numbers plus its file's first __rowid, from shards.parquet).
CREATE OR REPLACE MACRO embed_codes(tbl, col) AS TABLE
    SELECT s."offset" + c.file_row AS __rowid, c.code
    FROM read_parquet(embed_codes_path(tbl, col), filename = '__lakeql_shard_file') c
    JOIN read_parquet({{index_dir}} || '/embed/' || {{slug(tbl, col)}} || '/shards.parquet') s
      ON s.shard = regexp_extract(c.__lakeql_shard_file, '/shards/([^/]+)/codes[.]parquet$', 1)
    ORDER BY __rowid;

-- nearest_codes(tbl, col, code, k): the k rows whose codes are nearest (Hamming) to a query code.
CREATE OR REPLACE MACRO nearest_codes(tbl, col, qcode, k := 10) AS TABLE
    SELECT __rowid AS rowid, bit_hamming(code, qcode) AS distance
    FROM embed_codes(tbl, col)
    ORDER BY distance, rowid
    LIMIT k;

-- similar_codes(tbl, col, rowid, k): code-to-code nearest rows of one row (itself excluded), with the
-- rows' columns. Runs in the stock duckdb CLI on lake.duckdb (no model needed).
CREATE OR REPLACE MACRO similar_codes(tbl, col, row_id, k := 10) AS TABLE
    WITH q AS (SELECT code FROM embed_codes(tbl, col) WHERE __rowid = row_id),
    h AS (
        SELECT c.__rowid AS rowid, bit_hamming(c.code, q.code) AS distance
        FROM embed_codes(tbl, col) c, q
        WHERE c.__rowid <> row_id
        ORDER BY distance, rowid
        LIMIT k)
    SELECT r.* EXCLUDE (__rowid_file, __rowid_row), h.distance
    FROM h {{join_rows(tbl, h.rowid)}}
    ORDER BY h.distance, h.rowid;

-- @python
-- On a lakeql connection the code store is read only while its embed index is fresh: the table's views
-- follow the lake, so after files were added a stale index's rowids would name other rows.
-- lakeql_embed_dir raises the error naming 'lakeql index --refresh'. (The stock CLI's lake.duckdb keeps
-- the pure versions above: its views list the files the index was built from.)
CREATE OR REPLACE MACRO embed_codes_path(tbl, col) AS lakeql_embed_dir(tbl, col) || '/shards/*/codes.parquet';

CREATE OR REPLACE MACRO embed_codes(tbl, col) AS TABLE
    SELECT s."offset" + c.file_row AS __rowid, c.code
    FROM read_parquet(embed_codes_path(tbl, col), filename = '__lakeql_shard_file') c
    JOIN read_parquet(lakeql_embed_dir(tbl, col) || '/shards.parquet') s
      ON s.shard = regexp_extract(c.__lakeql_shard_file, '/shards/([^/]+)/codes[.]parquet$', 1)
    ORDER BY __rowid;

-- semantic_search(tbl, col, query, k, oversample, filter): the k rows whose text is closest in meaning
-- to query, with all their columns plus score (cosine similarity, highest first). filter is an optional
-- SQL predicate over the table's columns applied BEFORE the search (a pre-filter). exact := true scans
-- every code even when the index has ANN lists (--embed-ann).
CREATE OR REPLACE MACRO semantic_search(tbl, col, query, k := 10, oversample := 4, filter := NULL,
                                        exact := false) AS TABLE
    SELECT {{row_columns()}}, h.__rowid.score AS score
    FROM (SELECT unnest(semantic_search_impl(tbl, col, query, k, oversample, filter, exact)) AS __rowid) h
    {{join_rows(tbl, h.__rowid.rowid)}}
    ORDER BY h.__rowid.score DESC, r.__rowid;

-- semantic_search_vector(tbl, col, vector, ...): the same with a query vector (e.g. embed('...')).
CREATE OR REPLACE MACRO semantic_search_vector(tbl, col, vec, k := 10, oversample := 4, filter := NULL,
                                               exact := false) AS TABLE
    SELECT {{row_columns()}}, h.__rowid.score AS score
    FROM (SELECT unnest(semantic_search_vector_impl(tbl, col, CAST(vec AS FLOAT[]), k, oversample, filter, exact))
                 AS __rowid) h
    {{join_rows(tbl, h.__rowid.rowid)}}
    ORDER BY h.__rowid.score DESC, r.__rowid;

-- semantic_search_rowids(tbl, col, query, k, oversample, filter): only (rowid, score), no row fetch.
-- (a plain unnest and two field reads: ~0.3 ms less than unnest(..., recursive := true), same rows)
CREATE OR REPLACE MACRO semantic_search_rowids(tbl, col, query, k := 10, oversample := 4, filter := NULL,
                                               exact := false) AS TABLE
    SELECT h.__hit.rowid AS rowid, h.__hit.score AS score
    FROM (SELECT unnest(semantic_search_impl(tbl, col, query, k, oversample, filter, exact)) AS __hit) h;

-- semantic_search_vector_rowids(tbl, col, vector, ...): the same with a query vector.
CREATE OR REPLACE MACRO semantic_search_vector_rowids(tbl, col, vec, k := 10, oversample := 4, filter := NULL,
                                                      exact := false) AS TABLE
    SELECT h.__hit.rowid AS rowid, h.__hit.score AS score
    FROM (SELECT unnest(semantic_search_vector_impl(tbl, col, CAST(vec AS FLOAT[]), k, oversample, filter, exact)) AS __hit) h;

-- similar_rows(tbl, col, key_column, key, k): "more like this": the k rows most similar to the row whose
-- key_column equals key (the first such row), itself excluded.
CREATE OR REPLACE MACRO similar_rows(tbl, col, key_column, key, k := 10, oversample := 4) AS TABLE
    SELECT {{row_columns()}}, h.__rowid.score AS score
    FROM (SELECT unnest(similar_rows_impl(tbl, col,
                 (SELECT list(__rowid ORDER BY __rowid) FROM query_table(lakeql_rows_view(tbl))
                  WHERE CAST(COLUMNS([lakeql_row_column(tbl, key_column)]) AS VARCHAR) = CAST(key AS VARCHAR)),
                 k, oversample)) AS __rowid) h
    {{join_rows(tbl, h.__rowid.rowid)}}
    ORDER BY h.__rowid.score DESC, r.__rowid;

-- @python
-- hybrid_search(tbl, col, query, k, fusion, weight, filter): keyword (BM25 over the column's words,
-- built by --embed-bm25) and semantic search fused: fusion := 'rrf' (reciprocal-rank fusion, default)
-- or 'weighted' (weight * cosine + (1 - weight) * BM25 / max BM25); weight is the vector side's share.
CREATE OR REPLACE MACRO hybrid_search(tbl, col, query, k := 10, fusion := 'rrf', weight := 0.5,
                                      filter := NULL) AS TABLE
    SELECT {{row_columns()}}, h.__rowid.score AS score
    FROM (SELECT unnest(hybrid_search_impl(tbl, col, query, k, fusion, weight, filter)) AS __rowid) h
    {{join_rows(tbl, h.__rowid.rowid)}}
    ORDER BY h.__rowid.score DESC, r.__rowid;
