-- The foundation's SQL surface: what is in the lake and which indexes exist.
-- @python
-- lakeql_indexes(): one row per built index (kind, table_name, column_name, bytes, source_bytes,
-- built_at, stale, path, params). stale = the table's Parquet files changed since the build.
CREATE OR REPLACE MACRO lakeql_indexes() AS TABLE
    SELECT unnest(lakeql_indexes_impl(0), recursive := true);

-- lakeql_tables(): one row per lake table with its row count and size, and one per table or file left
-- out: status 'ok', 'partial' (unreadable files skipped), 'error' (no readable file: no view) or
-- 'unsupported' (a format lakeql cannot read); error says why.
CREATE OR REPLACE MACRO lakeql_tables() AS TABLE
    SELECT unnest(lakeql_tables_impl(0), recursive := true);

-- lakeql_columns(): one row per column of every lake table, with its DuckDB type; note (else NULL) says
-- when the stored name is not in Unicode NFC (a macOS header) and how SQL must spell it.
CREATE OR REPLACE MACRO lakeql_columns() AS TABLE
    SELECT * REPLACE (nullif(note, '') AS note) FROM (SELECT unnest(lakeql_columns_impl(0), recursive := true));
