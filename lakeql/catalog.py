"""The lake catalog: tables, columns, types, row counts and file fingerprints, stored as Parquet.

Built from Parquet footers only (no data pages are read), so cataloguing 10,000 tables is cheap. The
catalog is what every capability resolves names against: :meth:`Catalog.column` raises
:class:`UnknownColumnError` with the closest names.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

from lakeql.errors import UnknownColumnError, did_you_mean
from lakeql.lake import FileStamp, Lake, Table
from lakeql.progress import progress
from lakeql.store import IndexEntry, Store, dir_bytes

TEXT_TYPES = ("VARCHAR",)


@dataclass(frozen=True)
class Column:
    table_name: str
    column_name: str
    ordinal: int
    type: str

    @property
    def is_text(self) -> bool:
        return self.type.upper() in TEXT_TYPES


class CorruptParquetWarning(UserWarning):
    """A Parquet file of the lake could not be read; it was left out of its table."""


_TYPE_CON = None


def _type_connection():
    """One in-memory DuckDB connection reused for type mapping (a new one per table costs ~30 ms)."""
    global _TYPE_CON
    if _TYPE_CON is None:
        import duckdb

        _TYPE_CON = duckdb.connect()
    return _TYPE_CON


_TYPE_CACHE: dict[str, list[tuple[str, str]]] = {}


def _duckdb_types(schema) -> list[tuple[str, str]]:
    """Map an Arrow schema to (name, DuckDB type) pairs without reading any data.

    Cached by the schema's text: lakes often repeat one schema over many tables.
    """
    key = schema.remove_metadata().to_string()
    hit = _TYPE_CACHE.get(key)
    if hit is None:
        rel = _type_connection().from_arrow(schema.empty_table())
        hit = list(zip(rel.columns, [str(t) for t in rel.types], strict=True))
        if len(_TYPE_CACHE) < 10_000:
            _TYPE_CACHE[key] = hit
    return list(hit)


def profile_table(table: Table) -> tuple[Table, list[tuple[str, str]], int, list[int]]:
    """Read the footers of a table's files: (table with readable files only, columns, rows, rows/file).

    Unreadable files are dropped from the table with a :class:`CorruptParquetWarning` naming them.
    """
    import pyarrow.parquet as pq

    good: list[FileStamp] = []
    rows: list[int] = []
    schema = None
    for stamp in table.files:
        path = table.root / stamp.path
        try:
            pf = pq.ParquetFile(path)
            meta = pf.metadata
            if schema is None:
                schema = pf.schema_arrow
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad files
            warnings.warn(f"skipping unreadable Parquet file {str(path)!r}: {exc}",
                          CorruptParquetWarning, stacklevel=2)
            continue
        good.append(stamp)
        rows.append(meta.num_rows)
    kept = Table(table.domain, table.name, table.root, table.source, good, table.hive)
    if schema is None:
        return kept, [], 0, []
    if table.hive or len(good) > 1:
        con = _type_connection().cursor()
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {kept.scan_sql()}").fetchall()]
    else:
        cols = _duckdb_types(schema)
    return kept, cols, sum(rows), rows


class Catalog:
    """Tables and columns of a lake, from the stored catalog or computed on the fly."""

    def __init__(self, lake: Lake, tables: dict[str, dict], columns: dict[str, list[Column]]) -> None:
        self.lake = lake
        self.table_rows = tables  # key -> {'row_count': .., 'source_bytes': .., ...}
        self.columns_by_table = columns

    # ------------------------------------------------------------- lookups
    def table(self, name: str) -> Table:
        return self.lake.table(name)

    def columns(self, table: str | Table) -> list[Column]:
        t = table if isinstance(table, Table) else self.table(table)
        return self.columns_by_table.get(t.key, [])

    def column(self, table: str | Table, column: str) -> Column:
        """Resolve a column name (exact, then case-insensitive) or raise with suggestions."""
        t = table if isinstance(table, Table) else self.table(table)
        cols = self.columns(t)
        for c in cols:
            if c.column_name == column:
                return c
        for c in cols:
            if c.column_name.lower() == str(column).lower():
                return c
        names = [c.column_name for c in cols]
        raise UnknownColumnError(
            f"table {t.key} has no column {column!r}{did_you_mean(str(column), names)}")

    def text_column(self, table: str | Table, column: str, purpose: str) -> Column:
        """Resolve a column that must hold text, or raise naming its type."""
        c = self.column(table, column)
        if not c.is_text:
            raise UnknownColumnError(
                f"column {c.table_name}.{c.column_name} has type {c.type}, but {purpose} needs a text "
                f"(VARCHAR) column: pick a text column or cast it in a view")
        return c

    def file_rows(self, table: Table) -> list[int]:
        """Rows per file of ``table``, in file order (from the Parquet footers)."""
        return list(self.table_rows[table.key]["file_rows"])

    def row_count(self, table: Table) -> int:
        return int(self.table_rows[table.key]["row_count"])

    # ------------------------------------------------------------- building
    @classmethod
    def build(cls, lake: Lake, store: Store | None = None, refresh: bool = True) -> Catalog:
        """Catalogue every table; reuse unchanged tables' rows from ``store`` when ``refresh``.

        Writes ``catalog/*.parquet`` and a manifest row of kind ``catalog`` when ``store`` is given.
        """
        previous = cls.load(lake, store) if (store is not None and refresh) else None
        tables: dict[str, dict] = {}
        columns: dict[str, list[Column]] = {}
        kept: dict[str, Table] = {}
        now = dt.datetime.now(dt.UTC)
        for t in progress(list(lake.tables.values()), desc="catalog", unit="table"):
            prev = previous.table_rows.get(t.key) if previous else None
            if prev is not None and prev["fingerprint"] == t.fingerprint:
                tables[t.key] = prev
                columns[t.key] = previous.columns_by_table.get(t.key, [])
                kept[t.key] = t
                continue
            good, cols, nrows, per_file = profile_table(t)
            if not good.files:
                continue
            kept[t.key] = good
            tables[t.key] = {
                "table_name": t.key, "domain": t.domain, "name": t.name, "source": t.source,
                "hive": t.hive, "n_files": len(good.files), "row_count": nrows,
                "source_bytes": good.source_bytes, "fingerprint": good.fingerprint,
                "indexed_at": now, "file_rows": per_file,
            }
            columns[t.key] = [Column(t.key, n, i, ty) for i, (n, ty) in enumerate(cols)]
        lake.tables = kept
        cat = cls(lake, tables, columns)
        if store is not None:
            cat.save(store)
        return cat

    def save(self, store: Store) -> None:
        import pyarrow as pa

        cdir = store.path("catalog")
        trows = sorted(self.table_rows.values(), key=lambda r: r["table_name"])
        tschema = pa.schema([
            ("table_name", pa.string()), ("domain", pa.string()), ("name", pa.string()),
            ("source", pa.string()), ("hive", pa.bool_()), ("n_files", pa.int64()),
            ("row_count", pa.int64()), ("source_bytes", pa.int64()), ("fingerprint", pa.string()),
            ("indexed_at", pa.timestamp("us", tz="UTC")), ("file_rows", pa.list_(pa.int64())),
        ])
        store.write_parquet(pa.Table.from_pylist(trows, schema=tschema), cdir / "tables.parquet")
        ccols = [c for k in sorted(self.columns_by_table) for c in self.columns_by_table[k]]
        store.write_parquet(pa.table({
            "table_name": [c.table_name for c in ccols], "column_name": [c.column_name for c in ccols],
            "ordinal": pa.array([c.ordinal for c in ccols], pa.int32()),
            "type": [c.type for c in ccols]}), cdir / "columns.parquet")
        files = [(t.key, f.path, f.size, f.mtime_ns) for t in self.lake.tables.values() for f in t.files]
        store.write_parquet(pa.table({
            "table_name": [f[0] for f in files], "path": [f[1] for f in files],
            "size": pa.array([f[2] for f in files], pa.int64()),
            "mtime_ns": pa.array([f[3] for f in files], pa.int64())}), cdir / "files.parquet")
        total = sum(r["source_bytes"] for r in trows)
        store.record(IndexEntry("catalog", "", "", "catalog", dir_bytes(cdir), total, ""))

    @classmethod
    def load(cls, lake: Lake, store: Store | None) -> Catalog | None:
        """The stored catalog, or None when the store has none."""
        if store is None or not store.path("catalog", "tables.parquet").exists():
            return None
        import pyarrow.parquet as pq

        from lakeql.errors import CorruptIndexError

        try:
            trows = pq.read_table(store.path("catalog", "tables.parquet")).to_pylist()
            crows = pq.read_table(store.path("catalog", "columns.parquet")).to_pylist()
        except Exception as exc:  # noqa: BLE001
            raise CorruptIndexError(
                f"the catalog in {str(store.root)!r} is unreadable ({exc}): run 'lakeql index LAKE'"
            ) from None
        tables = {r["table_name"]: r for r in trows}
        columns: dict[str, list[Column]] = {}
        for r in crows:
            columns.setdefault(r["table_name"], []).append(
                Column(r["table_name"], r["column_name"], r["ordinal"], r["type"]))
        return cls(lake, tables, columns)

    @classmethod
    def open(cls, lake: Lake, store: Store | None = None) -> Catalog:
        """The stored catalog when it covers the lake's current tables, else one computed now (not saved).

        Tables whose files changed since the catalog was written are re-profiled in memory, so names
        and types are always current; capability indexes still report staleness on their own.
        """
        stored = cls.load(lake, store)
        if stored is None:
            return cls.build(lake, None, refresh=False)
        missing = [t for k, t in lake.tables.items()
                   if k not in stored.table_rows or stored.table_rows[k]["fingerprint"] != t.fingerprint]
        for t in missing:
            good, cols, nrows, per_file = profile_table(t)
            if not good.files:
                continue
            stored.table_rows[t.key] = {"table_name": t.key, "row_count": nrows, "file_rows": per_file,
                                        "source_bytes": good.source_bytes,
                                        "fingerprint": good.fingerprint, "domain": t.domain,
                                        "name": t.name, "source": t.source, "hive": t.hive,
                                        "n_files": len(good.files)}
            stored.columns_by_table[t.key] = [Column(t.key, n, i, ty) for i, (n, ty) in enumerate(cols)]
            lake.tables[t.key] = good
        for k in [k for k in stored.table_rows if k not in lake.tables]:
            stored.table_rows.pop(k)
            stored.columns_by_table.pop(k, None)
        return stored

