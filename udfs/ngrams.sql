-- Exact n-gram search over text columns (lakeql index LAKE --ngram TABLE.COLUMN); see docs/ngrams.md.
-- ngram_count(tbl, col, phrase) and ngram_rows(tbl, col, phrase) are Python UDFs (BIGINT).
-- @python
-- ngram_search(tbl, col, phrase, k := 10): the k rows with the most occurrences of phrase, with all
-- their columns plus occurrences and snippet (~80 bytes around the first match).
CREATE OR REPLACE MACRO ngram_search(tbl, col, phrase, k := 10) AS TABLE
    SELECT r.* EXCLUDE (__rowid), h.occurrences, h.snippet
    FROM (SELECT unnest(ngram_search_impl(tbl, col, phrase, k), recursive := true)) h
    JOIN query_table(lakeql_rows_view(tbl)) r ON r.__rowid = h.rowid
    ORDER BY h.occurrences DESC, h.rowid;

-- ngram_next(tbl, col, prefix, k := 10): the k most frequent next characters after prefix, with their
-- count and share of the prefix's occurrences.
CREATE OR REPLACE MACRO ngram_next(tbl, col, prefix, k := 10) AS TABLE
    SELECT unnest(ngram_next_impl(tbl, col, prefix, k), recursive := true);
-- @pure
-- ngram_indexes(): the n-gram indexes of this lake (also works in the stock duckdb CLI).
CREATE OR REPLACE MACRO ngram_indexes(_path := {{index_dir}} || '/indexes.parquet') AS TABLE
    SELECT table_name, column_name, bytes, source_bytes, round(bytes / greatest(source_bytes, 1), 3) AS ratio,
           built_at, params
    FROM read_parquet(_path) WHERE kind = 'ngram';
