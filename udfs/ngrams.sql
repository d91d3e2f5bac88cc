-- Exact n-gram search over text columns (lakeql index LAKE --ngram TABLE.COLUMN); see docs/ngrams.md.
-- unit := 'char' (default: exact substrings) or 'word' (sequences of whole \w+ words; separators ignored).
-- @python
-- ngram_count(tbl, col, phrase, unit := 'char'): every occurrence, overlapping ones included.
CREATE OR REPLACE MACRO ngram_count(tbl, col, phrase, unit := 'char') AS
    ngram_count_impl(tbl, col, phrase, unit);

-- ngram_rows(tbl, col, phrase, unit := 'char'): the number of rows that contain phrase.
CREATE OR REPLACE MACRO ngram_rows(tbl, col, phrase, unit := 'char') AS
    ngram_rows_impl(tbl, col, phrase, unit);

-- ngram_search(tbl, col, phrase, k := 10, unit := 'char'): the k rows with the most occurrences of
-- phrase, with all their columns plus occurrences and snippet (~80 bytes around the first match).
CREATE OR REPLACE MACRO ngram_search(tbl, col, phrase, k := 10, unit := 'char') AS TABLE
    SELECT {{row_columns()}}, h.__rowid.occurrences AS occurrences, h.__rowid.snippet AS snippet
    FROM (SELECT unnest(ngram_search_impl(tbl, col, phrase, k, unit)) AS __rowid) h
    {{join_rows(tbl, h.__rowid.rowid)}}
    ORDER BY h.__rowid.occurrences DESC, r.__rowid;

-- ngram_next(tbl, col, prefix, k := 10, unit := 'char'): the k most frequent next characters (or
-- words) after prefix, with their count and share.
CREATE OR REPLACE MACRO ngram_next(tbl, col, prefix, k := 10, unit := 'char') AS TABLE
    SELECT unnest(ngram_next_impl(tbl, col, prefix, k, unit), recursive := true);

-- ngram_longest(tbl, col, context, k := 10, unit := 'word'): the infini-gram: the longest suffix of
-- context that occurs (followed by something), its count, and the k most frequent continuations.
CREATE OR REPLACE MACRO ngram_longest(tbl, col, context, k := 10, unit := 'word') AS TABLE
    SELECT unnest(ngram_longest_impl(tbl, col, context, k, unit), recursive := true);

-- ngram_rows_all(tbl, col, phrases, unit := 'char') / ngram_rows_any(...): every row that contains all
-- (any) of the phrases: rowid, occurrences (one count per phrase, in order) and their total.
CREATE OR REPLACE MACRO ngram_rows_all(tbl, col, phrases, unit := 'char') AS TABLE
    SELECT h.r.rowid AS rowid, h.r.occurrences AS occurrences, h.r.total AS total
    FROM (SELECT unnest(ngram_rows_all_impl(tbl, col, phrases, unit)) AS r) h;

CREATE OR REPLACE MACRO ngram_rows_any(tbl, col, phrases, unit := 'char') AS TABLE
    SELECT h.r.rowid AS rowid, h.r.occurrences AS occurrences, h.r.total AS total
    FROM (SELECT unnest(ngram_rows_any_impl(tbl, col, phrases, unit)) AS r) h;

-- @pure
-- ngram_indexes(): the n-gram indexes of this lake (also works in the stock duckdb CLI). In a lakeql
-- connection lakeql_manifest_file reads the manifest first: a damaged one is lakeql's error naming the fix
-- rather than DuckDB's "too small to be a Parquet file".
CREATE OR REPLACE MACRO ngram_indexes(_path := {{index_dir}} || '/indexes.parquet') AS TABLE
    SELECT table_name, column_name, bytes, source_bytes, round(bytes / greatest(source_bytes, 1), 3) AS ratio,
           built_at, params
    FROM read_parquet({{checked(lakeql_manifest_file, _path)}}) WHERE kind = 'ngram';
