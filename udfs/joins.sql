-- Joinable-table discovery (lakeql.joins). See docs/joins.md.
-- @pure
-- These read the join index Parquet files directly, so they also work in the stock duckdb CLI on
-- LAKE/.lakeql/lake.duckdb. The index path sits in a parameter default, bound only when called. In a
-- lakeql connection the checked() template passes the files through lakeql_join_files (folded at bind time),
-- which checks the column profiles and the join index against their checksums first: a damaged or
-- truncated profile is an error naming 'lakeql index --refresh' (DuckDB's own was "too small to be a
-- Parquet file", with no fix), never an answer without that table's values.

-- join_graph(min_score := 0): every discovered equi-join edge of the lake, best first.
CREATE OR REPLACE MACRO join_graph(min_score := 0.0, _path := {{index_dir}} || '/joins/edges.parquet') AS TABLE
    SELECT * FROM read_parquet(_path) WHERE score >= min_score ORDER BY score DESC, table_name, column_name;

-- join_columns(): the profile of every lake column (distinct count, uniqueness, null share, lengths,
-- pattern) and whether it is in the join index.
CREATE OR REPLACE MACRO join_columns(_path := {{index_dir}} || '/joins/lake/columns.parquet') AS TABLE
    SELECT table_name, column_name, type, indexed, note, row_count, n_distinct, uniqueness, null_share,
           len_min, len_max, len_avg, pattern
    FROM read_parquet(_path) ORDER BY table_name, ordinal;

-- joins_containment(tbl, col): containment of an indexed column's distinct values in every other
-- column (share of tbl.col's values found there), from the stored value hashes alone (the per-table
-- column profiles). tbl = 'domain.table'. Columns with more than 4,096 distinct values store a sample of
-- their hashes (the bottom 4,096): for those the share is over the sample.
CREATE OR REPLACE MACRO joins_containment(tbl, col,
        _cols := {{index_dir}} || '/joins/lake/columns.parquet',
        _vals := {{index_dir}} || '/column_profile/*/hashes.parquet') AS TABLE
    WITH cols AS (SELECT table_name, ordinal, column_name, n_distinct, uniqueness, n_hashes
                  FROM read_parquet({{checked(lakeql_join_files, _cols)}}) WHERE indexed),
         vals AS (SELECT CAST(table_name AS VARCHAR) AS table_name, ordinal, hash
                  FROM read_parquet({{checked(lakeql_join_files, _vals)}})),
         q AS (SELECT table_name, ordinal, n_hashes FROM cols WHERE table_name = tbl AND column_name = col),
         qv AS (SELECT v.hash FROM vals v JOIN q USING (table_name, ordinal))
    SELECT c.table_name AS candidate_table, c.column_name AS candidate_column,
           count(*) AS overlap, count(*) / any_value(q.n_hashes) AS containment,
           any_value(c.uniqueness) AS candidate_uniqueness
    FROM qv JOIN vals v USING (hash) JOIN cols c ON c.table_name = v.table_name AND c.ordinal = v.ordinal, q
    WHERE c.table_name <> q.table_name
    GROUP BY ALL ORDER BY containment DESC, candidate_uniqueness DESC, candidate_table, candidate_column;

-- joins_lookup(value): every column holding the value (after the index's normalization:
-- lower(trim(CAST(value AS VARCHAR)))); for columns over 4,096 distinct values only if it is sampled.
CREATE OR REPLACE MACRO joins_lookup(val,
        _cols := {{index_dir}} || '/joins/lake/columns.parquet',
        _vals := {{index_dir}} || '/column_profile/*/hashes.parquet') AS TABLE
    SELECT c.table_name, c.column_name, c.n_distinct, c.uniqueness
    FROM read_parquet({{checked(lakeql_join_files, _vals)}}) v
         JOIN read_parquet({{checked(lakeql_join_files, _cols)}}) c
         ON c.table_name = CAST(v.table_name AS VARCHAR) AND c.ordinal = v.ordinal
    WHERE v.hash = (hash({{norm(val)}}) >> 32)::UINTEGER AND c.indexed
    ORDER BY c.uniqueness DESC, c.table_name, c.column_name;

-- @python
-- joinable(tbl, col, k := 10, mode := 'auto'): the columns of other tables that tbl.col joins with.
-- col: a column name, or a list of names for a composite key (['origin', 'time_hour']).
-- mode: 'equi' (exact value overlap), 'semantic' (DeepJoin embeddings + value matching), 'auto'.
CREATE OR REPLACE MACRO joinable(tbl, col, k := 10, mode := 'auto') AS TABLE
    SELECT r.* FROM (SELECT unnest(joinable_impl(tbl, to_json(col), k, mode)) AS r);

-- In Python connections the same two macros, over UDFs that fail with a clear error when the index
-- is missing (the pure versions above stay in lake.duckdb for the stock CLI).
CREATE OR REPLACE MACRO join_graph(min_score := 0.0) AS TABLE
    SELECT r.* FROM (SELECT unnest(join_graph_impl(min_score)) AS r);
CREATE OR REPLACE MACRO join_columns() AS TABLE
    SELECT r.* FROM (SELECT unnest(join_columns_impl(0)) AS r);

-- ---------------------------------------------------------------------------------------------------
-- Discovery beyond equi-joins (lakeql/joins/{union,tables,transform}.py, docs/discovery.md).
-- unionable(tbl, k := 10): tables holding more rows of the same kind, with a column mapping and a
-- runnable UNION ALL BY NAME query. union_graph(min_score := 0.4): every table's unionable tables.
-- find_tables(query, k := 10): tables by words (BM25 over names, descriptions, columns, values) and,
-- when table summaries are embedded, meaning (reciprocal-rank fusion).
CREATE OR REPLACE MACRO unionable(tbl, k := 10) AS TABLE
    SELECT r.* FROM (SELECT unnest(unionable_impl(tbl, k)) AS r);
CREATE OR REPLACE MACRO union_graph(min_score := 0.4) AS TABLE
    SELECT r.* FROM (SELECT unnest(union_graph_impl(min_score)) AS r);
CREATE OR REPLACE MACRO find_tables(query, k := 10) AS TABLE
    SELECT r.* FROM (SELECT unnest(find_tables_impl(query, k)) AS r);
