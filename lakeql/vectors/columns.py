"""Which columns ``--embed`` accepts: text (the catalog's one text rule) or stored vectors (the rule here).

A *vector column* holds one embedding per row that someone else computed: DuckDB type ``FLOAT[n]`` /
``DOUBLE[n]`` (fixed-size arrays) or ``FLOAT[]`` / ``DOUBLE[]`` (lists, every row the same length).
``--embed TABLE.COLUMN`` on one binarizes the stored vectors directly, with no model; they are
L2-normalized first, so scores are cosine similarities as for text columns.

Bad rows: a NULL vector is skipped like a NULL text; a vector with a NULL, NaN or infinite element, or
all zeros, is skipped with one warning that counts them; rows of different lengths are an error (the
index needs one dimension), naming the lengths found.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import numpy as np

from lakeql.errors import LakeqlError, UnknownColumnError
from lakeql.lake import quote_ident
from lakeql.sources import buildfs

VECTOR_TYPE = re.compile(r"^(FLOAT|DOUBLE|REAL|FLOAT4|FLOAT8)\[(\d*)\]$", re.IGNORECASE)


def vector_dim(type_name: str) -> int | None:
    """``n`` for ``FLOAT[n]``/``DOUBLE[n]``, 0 for a list (``FLOAT[]``: length per row), None otherwise."""
    m = VECTOR_TYPE.match(str(type_name).strip())
    if not m:
        return None
    return int(m.group(2)) if m.group(2) else 0


def embed_column(catalog, table, column: str, purpose: str):
    """(Column, kind) of an embeddable column: kind 'text' or 'vector', else a clear error."""
    c = catalog.column(table, column)
    if c.is_text:
        return c, "text"
    if vector_dim(c.type) is not None:
        return c, "vector"
    raise UnknownColumnError(
        f"column {c.table_name}.{c.column_name} has type {c.type}, but {purpose} needs a text (VARCHAR) "
        "column or a vector column (FLOAT[n], DOUBLE[n] or a FLOAT/DOUBLE list): pick one, or write this one "
        "as such in the table's files")


class VectorStats:
    """What a vector stream skipped, for the build's summary line and warning."""

    def __init__(self) -> None:
        self.bad = 0  # NULL/NaN/inf elements or all-zero vectors
        self.dim: int | None = None


def stream_vectors(ctx, table, column: str, stats: VectorStats, rows_per_batch: int = 4096,
                   source: str | None = None, warn: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rowids, L2-normalized float32 vectors) of the non-NULL, well-formed rows of ``column``
    (rowids: ``__rowid`` of the SQL ``source``, by default the whole table's scan; ``warn``: warn here
    about skipped vectors, else the caller does with ``stats.bad``)."""
    import duckdb

    from lakeql.rows import rowid_scan_sql

    col = quote_ident(column)
    label = f"{table.key}.{column}"
    sql = (f"SELECT __rowid, CAST({col} AS FLOAT[]) AS v, len({col}) AS n, "
           f"list_count({col}) = len({col}) AS complete FROM "
           f"({source or rowid_scan_sql(table, ctx.catalog.file_rows(table))}) WHERE {col} IS NOT NULL "
           "ORDER BY __rowid")
    con = buildfs.connect()
    try:
        for batch in con.sql(sql).to_arrow_reader(rows_per_batch):
            rowids = batch.column(0).to_numpy().astype(np.int64)
            lengths = batch.column(2).to_numpy(zero_copy_only=False).astype(np.int64)
            complete = batch.column(3).to_numpy(zero_copy_only=False).astype(bool)
            if not len(rowids):
                continue
            lens = np.unique(lengths)
            if stats.dim is None:
                stats.dim = int(lens[0])
            if len(lens) > 1 or int(lens[0]) != stats.dim:
                found = sorted({stats.dim, *map(int, lens)})
                raise LakeqlError(f"vector column {label} has rows of different lengths "
                                  f"({', '.join(map(str, found[:5]))}): every vector needs the same "
                                  "dimension; filter the odd rows out in a view")
            if stats.dim == 0:
                raise LakeqlError(f"vector column {label} holds empty lists: nothing to index")
            values = batch.column(1).flatten().fill_null(np.nan).to_numpy(zero_copy_only=False)
            vecs = np.asarray(values, np.float32).reshape(len(rowids), stats.dim)
            with np.errstate(invalid="ignore", over="ignore"):
                norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
            ok = complete & np.isfinite(norms) & (norms > 0)
            stats.bad += int((~ok).sum())
            if ok.any():
                yield rowids[ok], (vecs[ok] / norms[ok, None]).astype(np.float32)
    except duckdb.Error as exc:
        raise LakeqlError(f"cannot read vector column {label} ({str(exc).splitlines()[0]})") from None
    finally:
        con.close()
    if stats.bad and warn:
        warn_bad(label, stats)


def warn_bad(label: str, stats: VectorStats) -> None:
    if stats.bad:
        warnings.warn(f"embed {label}: skipped {stats.bad} vectors with a NULL, NaN or infinite element or "
                      "all zeros", stacklevel=4)
