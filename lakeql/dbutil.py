"""Small DuckDB helpers shared by the core: batched DDL in one transaction, what the default database is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from lakeql.sources import buildfs

#: DuckDB's smallest block: a database of a few views is ~30 KB instead of ~270 KB with the default 256 KB
#: blocks (the stock duckdb CLI 1.5 reads such files; checked)
SMALL_BLOCK_SIZE = 16384


@contextlib.contextmanager
def new_database_file(path: str | Path, storage_version: str) -> Iterator[object]:
    """A connection whose current database is a new file at ``path`` (small blocks, ``storage_version``).

    The file is checkpointed and detached when the block ends (no ``.wal`` is left beside it).
    """
    from lakeql.lake import quote_literal

    options = f" (BLOCK_SIZE {SMALL_BLOCK_SIZE}, STORAGE_VERSION {quote_literal(storage_version)})"
    with database_file(path, options) as con:
        yield con


#: the name a file being written is attached as: with a '/', which no domain folder's name (a schema)
#: holds, so ``"schema"."view"`` never also reads as ``catalog.schema`` (a domain named ``lakeql_out``
#: holding a table of that name made its view ambiguous, and it was left out)
OUT = '"lakeql/out"'


@contextlib.contextmanager
def database_file(path: str | Path, options: str = "") -> Iterator[object]:
    """A connection whose current database is the DuckDB file ``path`` (made when missing; ``options``:
    the ATTACH options lakeql chose, never text from outside); checkpointed and detached when the block
    ends, so no ``.wal`` is left beside it. The connection's database is a pooled one
    (:func:`lakeql.sources.buildfs.pooled`): kept for the next file only when the file was detached."""
    from lakeql.lake import quote_literal

    con = buildfs.pooled()  # a kept idle database: making one is most of a small update's cost
    try:
        con.execute(f"ATTACH {quote_literal(str(path))} AS {OUT}{options}")
        con.execute(f"USE {OUT}")
        yield con
        con.execute(f"CHECKPOINT {OUT}")
        con.execute("USE memory.main")  # qualified: the file may hold a schema named 'memory'
        con.execute(f"DETACH {OUT}")
    finally:
        con.close()
    wal = Path(str(path) + ".wal")
    if wal.exists():
        wal.unlink()


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


class SkippedViewWarning(UserWarning):
    """A table's view could not be created (its files no longer read as catalogued); it was left out."""


def run_views(con, statements: list[str], chunk: int = 500,
              errors: dict[str, str] | None = None) -> list[str]:
    """:func:`run_batch` of view DDL where one failing view does not fail the rest: when the batch fails,
    each statement runs on its own and those that fail are left out, each with a
    :class:`SkippedViewWarning` naming it and the fix. Returns the statements left out; ``errors`` (when
    given) is filled with each one's error (type and first line), so a caller that records the table as
    left out says why (a writer, or a real error: never relabelled, review32)."""
    import warnings

    import duckdb

    try:
        run_batch(con, statements, chunk)
        return []
    except duckdb.Error:
        pass
    failed = []
    for sql in statements:
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            failed.append(sql)
            what = sql.split(" AS ", 1)[0][:200]
            err = (str(exc).strip().splitlines() or [""])[0][:300]
            if errors is not None:
                errors[sql] = f"{type(exc).__name__}: {err}"
            warnings.warn(f"left out {what!r}: {type(exc).__name__}: {err}; fix or replace its table's "
                          "files, then run 'lakeql index LAKE --refresh' ('lakeql doctor LAKE' checks it)",
                          SkippedViewWarning, stacklevel=2)
    return failed


def database_is_file(con) -> bool:
    """True when the connection's default database is a file (not ``:memory:``)."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                       ).fetchall()
    return bool(rows and rows[0][0])


INFLATE_LIMIT = 256 * 1024 * 1024  # bytes; lakeql's own records (statements, checks) stay far below


def inflate(data: bytes, limit: int = INFLATE_LIMIT) -> bytes:
    """``zlib.decompress(data)``, refusing (``zlib.error``) output over ``limit`` bytes: a small damaged or
    planted record in an index folder must not expand into gigabytes of memory."""
    import zlib

    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail or (not d.eof and d.decompress(b"", 1)):
        raise zlib.error(f"a compressed record expands past {limit} bytes (damaged or not lakeql's)")
    return out

