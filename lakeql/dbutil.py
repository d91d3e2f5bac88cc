"""Small DuckDB helpers shared by the core: batched DDL in one transaction, what the default database is."""

from __future__ import annotations


def run_batch(con, statements: list[str], chunk: int = 500) -> None:
    """Execute statements in one transaction, a few hundred per call (rolled back on error)."""
    if not statements:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        for i in range(0, len(statements), chunk):
            con.execute(";\n".join(statements[i:i + chunk]))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def database_is_file(con) -> bool:
    """True when the connection's default database is a file (not ``:memory:``)."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                       ).fetchall()
    return bool(rows and rows[0][0])
