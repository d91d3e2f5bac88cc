-- The context capability: schema files for agents, question -> files, SQL checking.
-- @python
-- schema_context(question, k := 3, unit := 'auto'): the schema files to open for a question, best first:
-- path (absolute), score, content. unit 'table' = table files, 'domain' = _DOMAIN.md overviews,
-- 'auto' = the best domain's overview, then that domain's best table files. k counts files.
CREATE OR REPLACE MACRO schema_context(question, k := 3, unit := 'auto') AS TABLE
    SELECT unnest(schema_context_impl(question, k, unit), recursive := true);

-- check_sql(sql, search_path := NULL): one row per problem (severity, message, suggestion, line, col);
-- no rows when the SQL is clean. search_path: the schema bare table names resolve in (default main).
CREATE OR REPLACE MACRO check_sql(sql, search_path := NULL) AS TABLE
    SELECT unnest(check_sql_impl(sql, search_path), recursive := true);

-- schema_files(): as the @pure macro below (which the stock duckdb CLI gets), but a missing listing is an
-- error naming 'lakeql index --refresh' (lakeql_schema_listing checks the default path; DuckDB's own
-- error is "No files found that match the pattern").
CREATE OR REPLACE MACRO schema_files(_path := {{index_dir}} || '/schemas/.lakeql-files.parquet') AS TABLE
    SELECT path, kind, table_name, domain, bytes
    FROM read_parquet(lakeql_schema_listing(_path))
    ORDER BY kind DESC, path;

-- @pure
-- schema_files(): every schema file written for the lake (path relative to INDEX_DIR/schemas, kind
-- 'table' | 'domain' | 'index', table_name, domain, bytes). Works in the stock duckdb CLI.
CREATE OR REPLACE MACRO schema_files(_path := {{index_dir}} || '/schemas/.lakeql-files.parquet') AS TABLE
    SELECT path, kind, table_name, domain, bytes
    FROM read_parquet(_path)
    ORDER BY kind DESC, path;
