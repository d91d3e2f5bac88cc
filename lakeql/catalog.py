"""The lake catalog: tables, columns, types, row counts and file fingerprints, stored as Parquet.

Built from Parquet footers only (no data pages are read), so cataloguing 10,000 tables is cheap; CSV and
JSON files have no footer, so their types are sniffed by DuckDB and their rows counted. The catalog is
what every capability resolves names against: :meth:`Catalog.column` raises :class:`UnknownColumnError`
with the closest names.

Isolation: a file that cannot be read is left out of its table, and a table none of whose files can be
read is left out of the lake, each with a warning; both are recorded (``catalog/problems.parquet``,
``Catalog.problems``) so that connections skip them without re-reading them, ``lakeql_tables()`` and
``lakeql doctor`` name them, and the rest of the lake works. A damaged stored catalog is never fatal: it
is recomputed in memory (with a warning naming ``lakeql index LAKE``, which rewrites it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeql import csvheader, parquet_io
from lakeql.errors import (
    LakeqlError,
    RemoteStoreError,
    UnknownColumnError,
    UnknownTableError,
    did_you_mean,
    shown,
)
from lakeql.lake import FileStamp, Lake, Problem, Table, glob_escape
from lakeql.progress import progress
from lakeql.sources import buildfs
from lakeql.store import IndexEntry, IndexWriteError, Store, dir_bytes

TEXT_TYPES = ("VARCHAR",)

#: What the stored catalog's rows mean, recorded in its manifest row's params. Bump it when the same
#: files would now be catalogued differently (2: a column named '' is DuckDB's C<i>, not v<i>): a stored
#: catalog of another (or no) format is not reused, so every table is catalogued again. 3: CSV files that
#: are not UTF-8 are read through a UTF-8 copy (:mod:`lakeql.csvenc`), tables record ``file_encodings``.
#: 4: a CSV header line DuckDB's sniffer reads as data is read as the header (:mod:`lakeql.csvheader`),
#: tables record ``csv_header``. Not bumped for ``csv_whole_sniff`` (CSV files typed from every row,
#: :func:`_count_rows`): an additive column; a stored row without it re-reads its CSV table once.
#: 5: a one-file Parquet table of second/millisecond timestamps, durations or fixed-size lists has the
#: view's (read_parquet's) types, not the Arrow scan's TIMESTAMP_MS/INTERVAL/FLOAT[3] (trial13, review37)
CATALOG_FORMAT = 5


@dataclass(frozen=True)
class Column:
    table_name: str
    column_name: str
    ordinal: int
    type: str

    @property
    def is_text(self) -> bool:
        return self.type.upper() in TEXT_TYPES


class StoredColumns(Mapping):
    """``{table key: [Column, ...]}`` of a stored ``catalog/columns.parquet``, each table's ``Column``s made
    on first use. A refresh of 10,000 tables (150,000 columns) made every one to write the same ones
    back (~0.3 CPU s); :meth:`Catalog.save` writes the stored rows of unchanged tables as they are.

    ``base``: the file's columns as lists (table_name, column_name, ordinal, type), each table's rows
    contiguous; ``spans``: table key -> (start, end) of its rows in ``base`` (the tables taken from
    the file); ``extra``: table key -> its Columns (tables catalogued now, or without stored rows)."""

    def __init__(self, base: tuple[list, list, list, list], spans: dict[str, tuple[int, int]],
                 extra: dict[str, list[Column]] | None = None, made: dict[str, list[Column]] | None = None
                 ) -> None:
        self.base = base
        self.spans = spans
        self.extra = extra if extra is not None else {}
        self._made = made if made is not None else {}  # shared with the mappings made from this one

    @classmethod
    def from_lists(cls, names: list, cols: list, ords: list, types: list) -> StoredColumns | None:
        """None when a table's rows are not contiguous (not a file :meth:`Catalog.save` wrote)."""
        n = len(names)
        starts = [0, *[i for i in range(1, n) if names[i] != names[i - 1]]] if n else []
        ends = [*starts[1:], n] if n else []  # no rows (no table readable): no spans, not a crash
        spans = {names[a]: (a, b) for a, b in zip(starts, ends, strict=True)}
        if len(spans) != len(starts):
            return None
        return cls((names, cols, ords, types), spans)

    def keep(self, kept: list[str], extra: dict[str, list[Column]]) -> StoredColumns:
        """The columns of tables ``kept`` (from this mapping: ``[]`` when it has none) and ``extra``."""
        spans = {}
        more: dict[str, list[Column]] = {}
        for k in kept:
            if k in self.extra:
                more[k] = self.extra[k]
            elif k in self.spans:
                spans[k] = self.spans[k]
            else:
                more[k] = []
        more.update(extra)
        for k in extra:
            spans.pop(k, None)
        return StoredColumns(self.base, spans, more, self._made)

    def __getitem__(self, key: str) -> list[Column]:
        got = self.extra.get(key)
        if got is not None:
            return got
        a, b = self.spans[key]  # KeyError: not a table of this catalog (even when another mapping of the
        # same file made its columns: ``_made`` is shared)
        got = self._made.get(key)
        if got is None:
            _, cols, ords, types = self.base
            got = [Column(key, n, o, ty) for n, o, ty in zip(cols[a:b], ords[a:b], types[a:b], strict=True)]
            self._made[key] = got
        return got

    def __contains__(self, key: object) -> bool:
        return key in self.extra or key in self.spans

    def __iter__(self):
        yield from self.spans
        yield from (k for k in self.extra if k not in self.spans)

    def __len__(self) -> int:
        return len(self.spans) + sum(1 for k in self.extra if k not in self.spans)

    def __eq__(self, other: object) -> bool:
        if (isinstance(other, StoredColumns) and other.base is self.base
                and other.spans.keys() == self.spans.keys()
                and all(other.spans[k] == v for k, v in self.spans.items()) and other.extra == self.extra):
            return True  # the same rows of the same file, and the same others
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def rows_sorted(self) -> tuple[list, list, list, list]:
        """``(table_name, column_name, ordinal, type)`` of every table's columns, tables in key order (what
        :meth:`Catalog.save` writes), stored rows copied as they are (no ``Column`` made)."""
        names, cols, ords, types = self.base
        out: tuple[list, list, list, list] = ([], [], [], [])
        tn, cn, od, ty = out
        for k in sorted(self):
            extra = self.extra.get(k)
            if extra is None:
                a, b = self.spans[k]
                tn.extend(names[a:b])
                cn.extend(cols[a:b])
                od.extend(ords[a:b])
                ty.extend(types[a:b])
            else:
                tn.extend(c.table_name for c in extra)
                cn.extend(c.column_name for c in extra)
                od.extend(c.ordinal for c in extra)
                ty.extend(c.type for c in extra)
        return out


class CorruptParquetWarning(UserWarning):
    """A data file of the lake could not be read; it was left out of its table (or its table left out)."""


class DamagedCatalogWarning(UserWarning):
    """The stored catalog could not be read; it was recomputed in memory."""


_TYPE_CON = None


def _type_connection(fs: Any = None):
    """One in-memory DuckDB connection reused for type mapping (a new one per table costs ~30 ms).

    ``fs``: the filesystem of a remote lake, registered on it once.
    """
    global _TYPE_CON
    if _TYPE_CON is None:
        import duckdb

        _TYPE_CON = duckdb.connect()
    if fs is not None:
        from lakeql.sources.remote import register_filesystem

        register_filesystem(_TYPE_CON, fs)
    return _TYPE_CON


_TYPE_CACHE: dict[str, list[tuple[str, str]]] = {}


def _duckdb_types(schema) -> list[tuple[str, str]]:
    """Map an Arrow schema to (name, DuckDB type) pairs without reading any data.

    Cached by the schema's text: lakes often repeat one schema over many tables.
    """
    key = schema.remove_metadata().to_string()
    hit = _TYPE_CACHE.get(key)
    if hit is None:
        # from_batches, not schema.empty_table(): pyarrow cannot make an empty array of a map or list of an
        # extension type (DuckDB writes MAP(VARCHAR, JSON) as map<string, arrow.json>)
        import pyarrow as pa

        if "" in schema.names:  # DuckDB's read_parquet names an unnamed column C<position>
            schema = pa.schema([f if f.name else f.with_name(f"C{i}") for i, f in enumerate(schema)])
        rel = _type_connection().from_arrow(pa.Table.from_batches([], schema=schema))
        hit = list(zip(rel.columns, [str(t) for t in rel.types], strict=True))
        if len(_TYPE_CACHE) < 10_000:
            _TYPE_CACHE[key] = hit
    return list(hit)


# Arrow types of a Parquet footer that DuckDB's Parquet reader (the views) types otherwise than its Arrow
# scan: a Parquet INTERVAL is fixed_size_binary[12] to Arrow (BLOB to the Arrow scan, INTERVAL to
# read_parquet); a FLOAT16 is halffloat, which the Arrow scan refuses ('Unsupported Internal Arrow Type e');
# pyarrow's stored Arrow schema (ARROW:schema) brings back types Parquet has not (trial13): a second or
# millisecond timestamp (TIMESTAMP_MS to the Arrow scan, TIMESTAMP to read_parquet), a duration (INTERVAL,
# BIGINT) and a fixed-size list (FLOAT[3], FLOAT[]), also nested
_ARROW_DIFFERS = ("fixed_size_binary[12]", "halffloat", "timestamp[s]", "timestamp[ms]", "duration[",
                  "fixed_size_list")


def _arrow_differs(schema, pf) -> bool:
    """True when the footer ``pf`` (Arrow ``schema``) may hold a column whose DuckDB type only DuckDB's
    Parquet reader knows: the types above, an INT96 timestamp (timestamp[ns] to Arrow, TIMESTAMP to
    read_parquet), or a TIME adjusted to UTC (time64 to Arrow, TIME WITH TIME ZONE to read_parquet: what
    DuckDB writes for a TIMETZ column). A column name holding the same text only costs a DESCRIBE."""
    text = schema.remove_metadata().to_string()
    if any(t in text for t in _ARROW_DIFFERS):
        return True
    int96, times = "timestamp[ns" in text, "time64" in text or "time32" in text
    if not (int96 or times):
        return False
    md = pf.metadata.schema
    cols = [md.column(i) for i in range(len(md))]
    return (int96 and any(c.physical_type == "INT96" for c in cols)) or (
        times and any(c.logical_type.type == "TIME" and '"isAdjustedToUTC":true' in c.logical_type.to_json()
                      for c in cols))


# DuckDB's read_parquet types (DESCRIBE) of one-file tables whose footer :func:`_arrow_differs`, by
# :func:`_parquet_key`: a lake of 10,000 such tables written by one job has a handful of schemas, and a
# DESCRIBE per table (a second open and footer parse of the file; a GET on a remote lake) cost 0.9-1.5 CPU ms
_PARQUET_TYPES: dict[tuple[str, str], list[tuple[str, str]]] = {}


def _parquet_key(schema, pf) -> tuple[str, str]:
    """What DuckDB's Parquet reader types a file by: its Parquet schema (names, physical, logical and
    converted types, repetition) and the Arrow types of its stored schema (extension types such as UUID)."""
    text = str(pf.metadata.schema)  # its first line is the object's address: dropped
    return text[text.find("\n") + 1:], schema.remove_metadata().to_string()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if "not utf-8 encoded" in str(exc):  # DuckDB's CSV reader says why on a later line
        first += " (the file is not UTF-8: save it as UTF-8)"
    return f"{type(exc).__name__}: {first}"[:300]


#: a file's recorded error that is its environment's, not its bytes' (permissions, the disk, the process's
#: open files): fixed without touching the file (``chmod``, the disk back), which changes no mtime, so a
#: refresh reads such a file again instead of keeping it out as "still unreadable" (review30)
_ENVIRONMENT = re.compile(r"permission denied|operation not permitted|input/output error|too many open files"
                          r"|\[errno (?:1|5|13|23|24)\]", re.IGNORECASE)


def _environmental(problems: list[Problem]) -> bool:
    """Whether one of ``problems`` is a read failure of the file's environment (:data:`_ENVIRONMENT`)."""
    return any(p.kind in ("file", "table") and _ENVIRONMENT.search(p.error or "") for p in problems)


_LINE_SIZE = re.compile(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+) bytes")


def _unreadable(table: Table, stamp: FileStamp, fs: Any, exc: BaseException) -> str:
    """Why a data file cannot be read, on one line, with the fix: DuckDB's first line, unless the reason
    is on a later line (a line over DuckDB's size limit) or in the file's first bytes (a file whose
    extension lies: a Parquet file named ``.csv``, a CSV file named ``.parquet``, gzip without ``.gz``)."""
    text = str(exc)
    m = _LINE_SIZE.search(text)
    if m is not None:  # DuckDB's first line is only 'CSV Error on Line: 1'
        return (f"{type(exc).__name__}: a line of {int(m.group(2)):,} bytes is over DuckDB's limit of "
                f"{int(m.group(1)):,} bytes per CSV line (a value that long): shorten or split that value, "
                "or store the table as Parquet")
    head = b""
    if fs is None:
        with contextlib.suppress(OSError):
            with open(Path(table.root) / stamp.path, "rb") as f:
                head = f.read(64)
    elif table.format == "parquet" and "magic bytes" in text:
        # an object pyarrow read whole enough to find no Parquet footer (not a store failure: those raise
        # before): its first 64 bytes from the build's snapshot, else one ranged read; a store failing
        # now leaves pyarrow's own line
        with contextlib.suppress(Exception):
            from lakeql.sources.remote import open_object

            with contextlib.closing(open_object(fs, table.root, stamp.path)) as f:
                head = f.read(64)
    return _lying_extension(table, stamp, head) or _first_line(exc)


def _lying_extension(table: Table, stamp: FileStamp, head: bytes) -> str | None:
    """Why a file whose first bytes ``head`` are of another format than its extension says cannot be
    read, with the fix; None when they agree (or tell nothing)."""
    if head.startswith(b"PAR1") and table.format != "parquet":
        return (f"the file is Parquet (it starts with PAR1), not {table.format.upper()}: rename it to "
                f"{Path(stamp.path).stem}.parquet")
    if head.startswith(b"\x1f\x8b") and not stamp.path.lower().endswith(".gz"):
        return f"the file is gzip-compressed: rename it to {Path(stamp.path).name}.gz"
    if table.format == "parquet" and head and not head.startswith(b"PAR1"):
        start = head.decode("utf-8", "ignore").lstrip("\ufeff")
        if len(start) >= 8 and all(ch.isprintable() or ch in "\r\n\t" for ch in start):
            return (f"not a Parquet file (it does not start with PAR1 but with the text {start[:40]!r}): "
                    f"rename it after its format ({Path(stamp.path).stem}.csv, .json)")
    return None


def _open_parquet(table: Table, stamp: FileStamp, fs: Any):
    import pyarrow.parquet as pq

    if fs is None:
        return pq.ParquetFile(table.root / stamp.path)
    from lakeql.sources.remote import open_object

    return pq.ParquetFile(open_object(fs, table.root, stamp.path))


def profile_table(table: Table, fs: Any = None, cache: list | None = None
                  ) -> tuple[Table, list[tuple[str, str]], int, list[int], list[Problem]]:
    """Read a table's footers (Parquet) or sniff its files (CSV, JSON).

    Returns (the table with readable files only, columns, rows, rows per file, problems). Unreadable
    files are dropped with a :class:`CorruptParquetWarning` naming them; when none is readable the table
    comes back without files and one ``'table'`` problem. A CSV file DuckDB refuses that is not UTF-8 is
    read through a UTF-8 copy made in the first writable folder of ``cache`` (:mod:`lakeql.csvenc`).
    """
    decoded: dict[str, tuple[str, str]] = {}
    good: list[FileStamp] = []
    rows: list[int] = []
    problems: list[Problem] = []
    schema = None
    differs = False
    parquet_key: tuple[str, str] = ("", "")
    whole_sniff = False  # some CSV file has a late value its sniffed type refuses: read with sample_size = -1
    for stamp in table.files:
        try:
            if table.format == "parquet":
                pf = _open_parquet(table, stamp, fs)
                n = pf.metadata.num_rows
                if schema is None:
                    schema = pf.schema_arrow
                    differs = _arrow_differs(schema, pf)
                    if differs:
                        parquet_key = _parquet_key(schema, pf)
            else:
                n, dec, whole = _count_rows(table, stamp, fs, cache)
                if dec is not None:
                    decoded[stamp.path] = dec
                whole_sniff = whole_sniff or whole
        except (RemoteStoreError, IndexWriteError):
            raise  # the store or the index dir failed, not the file: the build stops, previous index kept
        except Exception as exc:  # noqa: BLE001 - readers raise many types for bad files
            _raise_store_failure(fs)  # a CSV/JSON read by DuckDB: its IOException hides the store's failure
            from lakeql.sources.snapshot import ObjectChanged

            why = _unreadable(table, stamp, fs, exc)  # (reads the file's first bytes: once)
            warnings.warn(f"skipping {table.format} file {stamp.path!r} of table {table.key}: {exc}"
                          if isinstance(exc, ObjectChanged) else  # no fault of the file: read again
                          f"skipping unreadable {table.format} file {stamp.path!r} of table {table.key}: "
                          f"{why}; fix or replace the file, then run 'lakeql index LAKE --refresh'",
                          CorruptParquetWarning, stacklevel=2)
            problems.append(Problem("file", stamp.path, why, table.key))
            continue
        good.append(stamp)
        rows.append(n)
    kept = table.with_files(good)
    kept.decoded = decoded
    kept.csv_whole_sniff = whole_sniff
    if not good:
        what = problems[0].error if problems else "no data file"
        return kept, [], 0, [], [Problem("table", table.source, f"no readable file ({what})", table.key)]
    try:
        # a column named '': DuckDB names it C<i> and may then fail on a clash with a real C<i>; its own
        # DESCRIBE gives its names (and errors), where Arrow's from_arrow would quietly rename (C0_1)
        def describe() -> list[tuple[str, str]]:
            con = _type_connection(fs).cursor()
            return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {kept.scan_sql()}").fetchall()]

        alone = table.format == "parquet" and not table.hive and len(good) == 1 and "" not in schema.names
        if alone and differs:  # one DESCRIBE per Parquet schema, not per table (review37)
            cols = _PARQUET_TYPES.get(parquet_key)
            if cols is None:
                cols = describe()
                if len(_PARQUET_TYPES) < 10_000:
                    _PARQUET_TYPES[parquet_key] = cols
            cols = list(cols)
        elif not alone or differs:
            cols = describe()
            if table.format == "csv":
                con = _type_connection(fs).cursor()
                sniffed = _check_csv_shape(kept, cols, con)
                if _header_missed(kept, cols, con, sniffed, fs):
                    kept.csv_header = True
                    cols = describe()
                    rows = [int(con.execute(f"SELECT count(*) FROM {kept.with_files([f]).scan_sql()}")
                                .fetchone()[0]) for f in kept.files]
        else:
            try:
                cols = _duckdb_types(schema)
            except Exception:  # noqa: BLE001 - an Arrow type DuckDB's Arrow scan lacks: its Parquet reader decides
                cols = describe()
    except RemoteStoreError:
        raise  # the store failed, not the files (the header check below): the build stops
    except Exception as exc:  # noqa: BLE001 - files readable one by one but not together
        _raise_store_failure(fs)  # DuckDB's DESCRIBE hides a store failure under its own error
        err = _first_line(exc)
        why = "its files cannot be read together" if len(good) > 1 else "DuckDB cannot read its file"
        warnings.warn(f"skipping table {table.key}: {why} ({err})",
                      CorruptParquetWarning, stacklevel=2)
        return table.with_files([]), [], 0, [], [*problems, Problem("table", table.source, err, table.key)]
    return kept, cols, sum(rows), rows, problems


def _appended(table: Table, stored: Catalog, fs: Any
              ) -> tuple[Table, list[tuple[str, str]], int, list[int], list[Problem]] | None:
    """:func:`profile_table` of a Parquet table that only gained files since ``stored``, from the
    stored rows of its other files and the new files' footers alone; None when that cannot be known
    exactly (then the whole table is read again). The columns stay the stored ones when every new file
    has the schema of the table's first file: a union by name of the same names and types again adds
    no column and widens no type."""
    prev = stored.table_rows.get(table.key)
    if table.format != "parquet" or table.hive or prev is None or stored.problems_of(table.key):
        return None
    old = stored.file_stamps(table.key)
    rows_old = list(prev.get("file_rows") or [])
    if len(old or []) < 2 or len(old) != len(rows_old):  # a one-file table's columns came from its footer
        return None
    known = {st: n for st, n in zip(old, rows_old, strict=True)}
    now = [(f.path, f.size, f.mtime_ns, f.etag) for f in table.files]
    if now[:len(old)] != old or len(now) == len(old):
        return None  # a file changed, went or came before the stored ones: read the table again
    try:
        first_schema = _open_parquet(table, table.files[0], fs).schema_arrow.remove_metadata()
        first = None
        rows = [known[st] for st in now[:len(old)]]
        for stamp in table.files[len(old):]:
            pf = _open_parquet(table, stamp, fs)
            schema = pf.schema_arrow.remove_metadata()
            # the same Arrow schema maps to the same DuckDB types: no DuckDB (its Arrow scan imports
            # pandas, ~0.3-0.4 CPU s of a refresh) unless the Arrow schemas differ
            if not schema.equals(first_schema):
                first = first or _duckdb_types(first_schema)
                if _duckdb_types(schema) != first:
                    return None
            rows.append(pf.metadata.num_rows)
    except Exception:  # noqa: BLE001 - an unreadable file: the full read names it
        return None
    cols = [(c.column_name, c.type) for c in stored.columns_by_table.get(table.key, [])]
    if not cols:
        return None
    return table, cols, sum(rows), rows, []


def _current_format(entry: IndexEntry | None) -> bool:
    """True when the stored catalog's manifest row says it was written in :data:`CATALOG_FORMAT`."""
    try:
        return entry is not None and entry.params_dict.get("format") == CATALOG_FORMAT
    except (ValueError, AttributeError):
        return False


def _raise_store_failure(fs: Any) -> None:
    """Raise the object store's own failure (:class:`RemoteStoreError`) when one hides under a DuckDB read
    error of a remote lake: the store failed, not the file, so the build stops instead of taking the file
    for unreadable (or headerless, or mistyped). Nothing for a local lake."""
    if fs is None:
        return
    from lakeql.sources.snapshot import store_failure

    failed = store_failure(fs)
    if failed is not None:
        raise failed from None


def _conversion_error(exc: BaseException) -> bool:
    """True when DuckDB refused a CSV value that does not fit the type it sniffed from its sample."""
    return type(exc).__name__ == "ConversionException" or "Could not convert" in str(exc)


def _conversion_detail(exc: BaseException) -> str:
    """DuckDB's line number, line and value of a conversion error, on one line (its first three lines:
    ``CSV Error on Line: 25342``, ``Original Line: NA,...``, ``Error when converting column ...``)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()][:3]
    return "; ".join(lines)[:400]


def _count_rows(table: Table, stamp: FileStamp, fs: Any, cache: list | None = None
                ) -> tuple[int, tuple[str, str] | None, bool]:
    """Rows of one CSV/JSON file (parsed by DuckDB with sniffing: a file it cannot parse raises), and
    (encoding, UTF-8 copy) when it is a CSV file that is not UTF-8 (:mod:`lakeql.csvenc`; the rows are
    the copy's), else None, and whether the file is to be read with ``sample_size = -1``. Only a file
    DuckDB refuses is looked at. DuckDB checks UTF-8 only in the
    columns a query reads (``count(*)`` reads none: a byte past its sniffer's sample passed), so a CSV
    file's count reads every column (``count(COLUMNS(*))``, ~20-40% more CPU than ``count(*)``).

    A value past DuckDB's sniffing sample (20,480 rows) that does not fit the type sniffed for its column
    (``NA`` in a DOUBLE column, a word in a BIGINT one) fails that count with a conversion error: the file
    is read again with types sniffed from every row (``sample_size = -1``; only such files pay it), and the
    table is then read so everywhere (:attr:`lakeql.lake.Table.csv_whole_sniff`). When even that fails,
    a warning names the file, DuckDB's line and value, and the fix, and the file is counted as before."""
    from lakeql.lake import join_root, scan_sql

    if table.format == "csv" and stamp.size == 0:
        from lakeql.csvenc import CsvShapeError

        raise CsvShapeError(f"{stamp.path!r} is empty (0 bytes): write its header line, or remove the file")
    con = _type_connection(fs).cursor()

    def count(path: str, every_column: bool = False, whole: bool = False) -> int:
        what = "count(*), count(COLUMNS(*))" if every_column else "count(*)"
        scan = scan_sql(table.format, [path], whole_sniff=whole)
        return int(con.execute(f"SELECT {what} FROM {scan}").fetchone()[0])

    def whole_sniff(path: str, exc: BaseException) -> int | None:
        """Rows of ``path`` read with types from the whole file, or None (warned) when that fails too."""
        try:
            return count(path, every_column=True, whole=True)
        except Exception as again:  # noqa: BLE001 - readers raise many types for bad files
            _raise_store_failure(fs)
            warnings.warn(
                f"CSV file {stamp.path!r} of table {table.key} has a value that does not fit the type DuckDB "
                f"sniffed for its column ({_conversion_detail(exc)}), and reading it with types from the "
                f"whole file (sample_size = -1) failed too ({_first_line(again)}): queries on the table "
                "will fail on that value; fix the value (or quote/empty it) in the file, then run "
                "'lakeql index LAKE --refresh'", CorruptParquetWarning, stacklevel=3)
            return None

    src = join_root(table.root, stamp.path)
    try:
        return count(src, every_column=table.format == "csv"), None, False
    except Exception as exc:
        if table.format != "csv":
            raise
        _raise_store_failure(fs)  # a store failure under DuckDB's read: not the file's fault
        if _conversion_error(exc):
            n = whole_sniff(src, exc)
            if n is not None:
                return n, None, True
            return count(src), None, False  # (a file DuckDB cannot parse at all raises its own error here)
        from lakeql import csvenc

        with contextlib.closing(csvenc._open(src, fs, table.root, stamp.path)) as f:
            lie = _lying_extension(table, stamp, f.read(64))
        if lie is not None:  # not CSV at all: no UTF-8 copy of its bytes (a Parquet file read so was one
            raise csvenc.CsvShapeError(lie) from None  # column of binary text)
        dec = csvenc.decode_file(table, stamp, fs, cache or csvenc.cache_dirs(None))
        if dec is None:  # plain UTF-8 DuckDB refuses for another reason: counted as before
            return count(src), None, False  # (a file DuckDB cannot parse at all raises its own error here)
    try:
        try:
            return count(dec[1], every_column=True), dec, False
        except Exception as exc:  # noqa: BLE001 - a late value of the UTF-8 copy: as for a UTF-8 file
            if _conversion_error(exc) and (n := whole_sniff(dec[1], exc)) is not None:
                return n, dec, True
            if not dec[0].endswith(csvenc.LF) and csvenc.mixed_line_ends(lambda: open(dec[1], "rb")):
                # the copy's lines end in several ways (which DuckDB's sniffer refuses): one line end
                dirs = cache or csvenc.cache_dirs(None)
                dec = csvenc.decode_file(table, stamp, fs, dirs, dec[0] + csvenc.LF)
                return count(dec[1], every_column=True), dec, False
        return count(dec[1]), dec, False
    except IndexWriteError:
        raise  # a copy made again could not be written: the index dir's failure, not the file's
    except Exception as exc:  # noqa: BLE001 - readers raise many types for bad files
        lines = str(exc).strip().splitlines()
        raise csvenc.DecodedReadError(f"{type(exc).__name__}: {lines[0] if lines else exc!r} (the file was "
                                      f"read as {dec[0]})") from exc


def _check_csv_shape(table: Table, cols: list[tuple[str, str]], con: Any) -> list[tuple[bool, int]] | None:
    """Refuse a CSV table DuckDB would read wrongly without an error: rows of different lengths make its
    sniffer fall back to one column holding whole lines (named after the header line), or skip the
    lines before the longest consistent run (then no header is found: the columns are ``column0``...).
    Checked only on those shapes (the extra sniff of a headerless file costs ~7 ms). Returns what
    ``sniff_csv`` said of each file (has a header, lines skipped) when it was asked, else None."""
    import re

    from lakeql.csvenc import CsvShapeError
    from lakeql.csvheader import sniff

    fix = "make every row have as many fields as the header line, then run 'lakeql index LAKE --refresh'"
    if len(cols) == 1 and any(ch in cols[0][0] for ch in ",;\t|") and not _quoted_header(table, con):
        raise CsvShapeError(f"DuckDB found no delimiter that splits every row of {table.source!r} into the "
                            f"same number of fields and would read each line as one column "
                            f"{cols[0][0][:60]!r}: {fix}")
    if cols and all(re.fullmatch(r"column\d+", n) for n, _ in cols):
        out = []
        for f, path in zip(table.files, table.paths, strict=True):
            has, skip = sniff(con, path)
            if skip:
                raise CsvShapeError(f"the rows of {f.path!r} do not all have the same number of fields: "
                                    f"DuckDB would skip its first {skip} line(s) and its header: {fix}")
            out.append((has, skip))
        return out
    return None


def _header_missed(table: Table, cols: list[tuple[str, str]], con: Any,
                   sniffed: list[tuple[bool, int]] | None, fs: Any = None) -> bool:
    """True when ``table``'s CSV files are to be read with ``header = true``: some file DuckDB sniffs
    without a header has one by :func:`lakeql.csvheader.has_header`, and every other file has one too
    (as DuckDB sniffs it, or by that rule). Looked at only when some column is named ``column<N>``."""
    from lakeql import csvheader

    names = [n for n, _ in cols]
    if not csvheader.generated(names):
        return False
    if len(table.files) == 1 and not all(csvheader.GENERATED.fullmatch(n) for n in names):
        return False  # DuckDB found its one file's header (an empty field is column<N>): no sniff (review12)
    missed = False
    try:
        for i, path in enumerate(table.paths):
            has, skip = sniffed[i] if sniffed is not None else csvheader.sniff(con, path)
            if has:
                continue
            if skip or not csvheader.has_header(con, path):
                return False  # a file without a header: the table is read as DuckDB reads it
            missed = True
    except Exception:  # noqa: BLE001 - a file the rule cannot read: read as DuckDB reads it
        _raise_store_failure(fs)  # unless the store failed (the decision was then "no header", kept)
        return False
    return missed


def _quoted_header(table: Table, con: Any) -> bool:
    """True when DuckDB's sniffer read ``table``'s first file with a quote character: its one column is a
    quoted field (``"Name, first"``), not the whole header line of rows of different lengths (then no
    dialect fits and the sniffer falls back to no quote)."""
    quote = con.execute("SELECT Quote FROM sniff_csv(?)", [table.paths[0]]).fetchone()[0]
    return quote not in (None, "", "(empty)", "\0")


def _copy_bytes(table: Table) -> list[int]:
    """The size of each file's UTF-8 copy (-1: a file read as it is), as the catalog records it."""
    out = []
    for f in table.files:
        dec = table.decoded.get(f.path)
        try:
            out.append(os.stat(dec[1]).st_size if dec is not None else -1)
        except OSError:
            out.append(-1)
    return out


def _restore_decoded(table: Table, labels: Any, fs: Any, cache: list, sizes: Any = None,
                     again: bool = False) -> bool:
    """Give an unchanged ``table`` (its readable files) the UTF-8 copies its stored ``labels`` (one
    encoding per file, ``file_encodings``) name, made again when missing; False when one cannot be.
    ``sizes``: the copies' sizes as the catalog recorded them (``file_copy_bytes``): a copy of another
    size (truncated in the index dir: its rows were read silently short, trial10) is made again.
    ``again``: every copy made again (a catalog from before ``file_copy_bytes``: the size of a copy damaged
    then is not known, and would be recorded as right, review21)."""
    if table.format != "csv" or not labels:
        return True
    from lakeql import csvenc

    if len(labels) != len(table.files):
        return False
    if sizes is not None and len(sizes) != len(labels):
        sizes = None
    decoded = {}
    for i, (f, label) in enumerate(zip(table.files, labels, strict=True)):
        if label == csvenc.NATIVE:
            continue
        try:
            got = csvenc.decode_file(table, f, fs, cache, label=label, again=again and sizes is None)
            want = int(sizes[i]) if sizes is not None and sizes[i] is not None else -1
            if got is not None and want >= 0 and (have := os.stat(got[1]).st_size) != want:
                warnings.warn(f"the UTF-8 copy of {f.path!r} ({got[1]}) has {have:,} bytes, {want:,} "
                              "expected "
                              "(damaged): made again", DamagedCatalogWarning, stacklevel=3)
                os.unlink(got[1])
                got = csvenc.decode_file(table, f, fs, cache, label=label)
                if got is not None and os.stat(got[1]).st_size != want:
                    return False  # the file decodes to another size now: the table is read again
        except Exception:  # noqa: BLE001 - gone, unreadable, no writable folder: read the table again
            return False
        if got is None:
            return False
        decoded[f.path] = got
    table.decoded = decoded
    return True


#: how a table this connection (not the stored catalog) left out is described: lakeql_tables() lists it
#: with status 'error' and this reason, which the MCP tools show (a Python warning no agent sees)
LEFT_OUT_HERE = "left out of this connection"


def unreadable_message(table_name: str, error: str, path: str) -> str:
    """The one-line error for a table the lake has but could not read (no view): why, and the fix."""
    from lakeql.lake import SHARED_NAME

    if error.startswith(LEFT_OUT_HERE):  # its files read; this connection could not use them (the fix is
        return f"table {table_name!r} is {error}"  # in the error)
    if SHARED_NAME in error:  # its files read; the name is the problem (lakeql.lake._one_source_per_name)
        return (f"table {table_name!r} is left out of the lake: {error}, then run 'lakeql index LAKE "
                "--refresh'")
    return (f"table {table_name!r} is in the lake but none of its files could be read ({error}): "
            f"fix or replace {path!r}, then run 'lakeql index LAKE --refresh' "
            "('lakeql doctor LAKE' lists every unreadable file)")


def not_text_fix(type_name: object) -> str:
    """The fix for a column that must hold text but does not. Not "a view": lakeql indexes the lake's
    files, never a session's views. Text stored as Parquet BYTE_ARRAY without the STRING annotation (some
    older writers) is read as BLOB: say so."""
    binary = str(type_name).upper() in ("BLOB", "BYTEA", "BINARY", "VARBINARY")
    why = (" (a Parquet BYTE_ARRAY column without the STRING/UTF8 annotation, as some older writers store "
           "text, is read as BLOB)") if binary else ""
    return f"write its files with this column as a string (UTF-8) type{why}"


class Catalog:
    """Tables and columns of a lake, from the stored catalog or computed on the fly."""

    def __init__(self, lake: Lake, tables: dict[str, dict], columns: dict[str, list[Column]],
                 problems: list[Problem] | None = None) -> None:
        self.lake = lake
        self.table_rows = tables  # key -> {'row_count': .., 'source_bytes': .., ...}
        self.columns_by_table = columns
        self.files_path: Any = None  # Path of the stored catalog's files.parquet (read on first use)
        self._file_stamps: dict[str, list[tuple[str, int, int, str]]] | None = None
        self.problems: list[Problem] = list(problems or [])  # what was left out, and why
        self.failed: dict[str, str] = {}  # stored: table key -> fingerprint of a wholly unreadable table
        self.header_rule = csvheader.RULE  # stored: the header rule the catalog was written with

    # ------------------------------------------------------------- lookups
    def table(self, name: str) -> Table:
        """Resolve a table name; a table left out because none of its files reads says so (not 'unknown')."""
        try:
            return self.lake.table(name)
        except UnknownTableError as exc:
            raise self.unreadable_table_error(name) or exc from None

    def table_column(self, spec: str, what: str = "TABLE.COLUMN") -> tuple[Table, str]:
        """:meth:`Lake.table_column`; a table left out as unreadable says so (not 'unknown')."""
        try:
            return self.lake.table_column(spec, what)
        except UnknownTableError:
            from lakeql.lake import _unquote_dotted

            raw = str(spec or "").strip()
            for text in dict.fromkeys(t for t in (raw, _unquote_dotted(raw)) if t):  # as written, unquoted
                for i in range(len(text) - 1, 0, -1):
                    err = self.unreadable_table_error(text[:i]) if text[i] == "." else None
                    if err is not None:
                        raise UnknownTableError(f"{what} {spec!r}: {err}") from None
            raise

    def check_specs(self, specs, what: str, resolve) -> None:
        """Check every ``TABLE.COLUMN`` of flag ``what`` up front; ``resolve(table, column)`` raises when
        the column does not fit. One error names every bad target (each with its close matches)."""
        bad: list[LakeqlError] = []
        for spec in specs or ():
            try:
                table, column = self.table_column(spec, what)
                resolve(table, column)
            except UnknownTableError as exc:  # already names the flag and the target
                bad.append(exc)
            except LakeqlError as exc:
                bad.append(type(exc)(f"{what} {shown(spec)}: {exc}"))
        if len(bad) == 1:
            raise bad[0]
        if bad:
            raise LakeqlError("; ".join(str(e) for e in bad))

    def unreadable_table_error(self, name: str) -> UnknownTableError | None:
        """The error for ``name`` when it is a table of the lake that was left out as unreadable."""
        wanted = str(name or "").strip().lower()
        for p in self.problems:
            key = p.table_name.lower()  # 'domain.name' or the bare name (a domain may hold dots)
            if p.kind == "table" and wanted and (wanted == key or key.endswith("." + wanted)):
                return UnknownTableError(unreadable_message(p.table_name, p.error, p.path))
        return None

    def columns(self, table: str | Table) -> list[Column]:
        t = table if isinstance(table, Table) else self.table(table)
        return self.columns_by_table.get(t.key, [])

    def column(self, table: str | Table, column: str) -> Column:
        """Resolve a column name (exact, then case-insensitive, then up to Unicode form: a name typed NFC for
        a column stored NFD) or raise with suggestions."""
        t = table if isinstance(table, Table) else self.table(table)
        cols = self.columns(t)
        for c in cols:
            if c.column_name == column:
                return c
        for c in cols:
            if c.column_name.lower() == str(column).lower():
                return c
        names = [c.column_name for c in cols]
        from lakeql.colnames import match_column

        stored = match_column(str(column), names)  # 'café' typed (NFC) for a column stored NFD (macOS)
        if stored is not None:
            return next(c for c in cols if c.column_name == stored)
        raise UnknownColumnError(
            f"table {t.key} has no column {shown(column)}{did_you_mean(str(column), names)}")

    def text_column(self, table: str | Table, column: str, purpose: str) -> Column:
        """Resolve a column that must hold text, or raise naming its type."""
        c = self.column(table, column)
        if not c.is_text:
            raise UnknownColumnError(
                f"column {c.table_name}.{c.column_name} has type {c.type}, but {purpose} needs a text "
                f"(VARCHAR) column: pick a text column, or {not_text_fix(c.type)}")
        return c

    def file_rows(self, table: Table) -> list[int]:
        """Rows per file of ``table``, in file order (from the Parquet footers)."""
        return list(self.table_rows[table.key]["file_rows"])

    def row_count(self, table: Table) -> int:
        return int(self.table_rows[table.key]["row_count"])

    def problems_of(self, key: str) -> list[Problem]:
        """The problems (unreadable files, or the whole table) recorded for table ``key``."""
        return [p for p in self.problems if p.table_name == key]

    # ------------------------------------------------------------- building
    @classmethod
    def build(cls, lake: Lake, store: Store | None = None, refresh: bool = True) -> Catalog:
        """Catalogue every table; reuse unchanged tables' rows from ``store`` when ``refresh``.

        Writes ``catalog/*.parquet`` and a manifest row of kind ``catalog`` when ``store`` is given.
        Tables with no readable file are left out of ``lake.tables`` (and recorded as problems).
        """
        previous = cls.load(lake, store) if (store is not None and refresh) else None
        cat = cls._resolve(lake, previous, store, building=True)
        if store is not None and not cat._same_as(previous, store):
            cat.save(store)
        if store is not None:  # UTF-8 copies of CSV files no table reads any more
            from lakeql import csvenc

            csvenc.prune(store, {d[1] for t in lake.tables.values() for d in t.decoded.values()})
        return cat

    def _same_as(self, stored: Catalog | None, store: Store) -> bool:
        """True when ``stored`` (read and verified by :meth:`load`) holds exactly what :meth:`save` would
        write now: every table kept with its rows, columns, files (equal fingerprints) and problems. A
        refresh that changed nothing keeps the catalog files and manifest row as they are."""
        if stored is None or stored.files_path is None or store.find("catalog") is None:
            return False

        def probs(c: Catalog) -> list:
            return sorted(c.problems, key=lambda p: (p.table_name, p.path, p.kind, p.error))

        return (self.table_rows == stored.table_rows and self.columns_by_table == stored.columns_by_table
                and self.failed == stored.failed and probs(self) == probs(stored))

    @classmethod
    def _resolve(cls, lake: Lake, stored: Catalog | None, store: Store | None = None,
                 building: bool = False) -> Catalog:
        """The catalog of ``lake`` as it is now: ``stored`` rows of unchanged tables, the rest profiled.

        Sets ``lake.tables`` to the tables with at least one readable file (those files only). ``store``:
        where UTF-8 copies of CSV files that are not UTF-8 go (:func:`lakeql.csvenc.cache_dirs`).
        ``building``: a failed write of such a copy (disk full, file size limit) stops the build
        (:class:`IndexWriteError`); a connection leaves the table out with a warning (nothing is saved).
        """
        from lakeql import csvenc, csvnamed

        # the CSV encodings a build was told (--csv-encoding), kept by later builds and connections
        csvnamed.apply(lake, csvnamed.recorded(store), strict=False)
        cache = csvenc.cache_dirs(store)
        tables: dict[str, dict] = {}
        columns: dict[str, list[Column]] = {}
        kept: dict[str, Table] = {}
        from_stored: list[str] = []  # tables whose stored columns are kept (a StoredColumns: not made)
        lazy = stored is not None and isinstance(stored.columns_by_table, StoredColumns)
        problems: list[Problem] = [p for p in lake.problems]
        failed: dict[str, str] = {}
        now = dt.datetime.now(dt.UTC)
        todo = []
        for t in lake.tables.values():
            prev = stored.table_rows.get(t.key) if stored else None
            # a table an older rule read with header = true is decided again (lakeql.csvheader.RULE)
            redo = prev is not None and prev.get("csv_header") and stored.header_rule != csvheader.RULE
            # a CSV table of a catalog written before csv_whole_sniff (no such column) is read again once:
            # a late value its sniffed types refuse made it unreadable, and nothing stored says which
            redo = redo or (prev is not None and t.format == "csv" and prev.get("csv_whole_sniff") is None)
            # a CSV table whose files were decoded otherwise than its named encoding (or lack of one) says
            redo = redo or (prev is not None and t.format == "csv"
                            and not csvenc.labels_fit(prev.get("file_encodings"), t.csv_encoding))
            # a file unreadable for its permissions or disk, fixed since (chmod changes no mtime): read again
            redo = redo or (prev is not None and _environmental(stored.problems_of(t.key)))
            if prev is not None and prev["fingerprint"] == t.fingerprint and not redo:
                mine = stored.problems_of(t.key)
                skip = {p.path for p in mine if p.kind == "file"}
                kept[t.key] = t.with_files([f for f in t.files if f.path not in skip])
                kept[t.key].csv_header = bool(prev.get("csv_header"))
                kept[t.key].csv_whole_sniff = bool(prev.get("csv_whole_sniff"))
                if not _restore_decoded(kept[t.key], prev.get("file_encodings"), lake.fs, cache,
                                        prev.get("file_copy_bytes"),
                                        again=t.format == "csv" and prev.get("file_copy_bytes") is None):
                    del kept[t.key]
                    todo.append(t)  # a UTF-8 copy cannot be made again: the table is read again
                    continue
                if t.format == "csv" and prev.get("file_copy_bytes") is None:  # a catalog older than it
                    prev = {**prev, "file_copy_bytes": _copy_bytes(kept[t.key])}
                tables[t.key] = prev
                if lazy:
                    from_stored.append(t.key)
                else:
                    columns[t.key] = stored.columns_by_table.get(t.key, [])
                problems += mine
            elif (stored is not None and stored.failed.get(t.key) == t.fingerprint
                  and not _environmental(stored.problems_of(t.key))):
                problems += stored.problems_of(t.key)  # still unreadable: not read again
                failed[t.key] = t.fingerprint
            else:
                todo.append(t)
        if lake.fs is not None and todo:  # a remote lake: fetch the objects read below, concurrently
            from lakeql.sources.remote import prefetch

            prefetch(lake, todo)
        for t in progress(todo, desc="catalog", unit="table"):
            got = _appended(t, stored, lake.fs) if stored is not None else None
            try:
                good, cols, nrows, per_file, found = got if got is not None else profile_table(t, lake.fs,
                                                                                               cache)
            except IndexWriteError as exc:
                if building:
                    raise
                # a connection: the other tables answer; nothing is stored against the file (trial12),
                # but this connection lists it (lakeql_tables(), the MCP tools): a warning alone is
                # nothing an agent sees (leftovers6)
                why = (f"{LEFT_OUT_HERE}: its UTF-8 copy cannot be written ({_first_line(exc)[:300]}); "
                       "free space in the index folder (or raise the limit named), then run 'lakeql index "
                       "LAKE --refresh' or reconnect")
                problems.append(Problem("table", t.source, why, t.key))
                warnings.warn(f"table {t.key} is {why}", CorruptParquetWarning, stacklevel=2)
                continue
            problems += found
            if not good.files:
                failed[t.key] = t.fingerprint
                continue
            kept[t.key] = good
            tables[t.key] = {
                "table_name": t.key, "domain": t.domain, "name": t.name, "source": t.source,
                "hive": t.hive, "n_files": len(good.files), "row_count": nrows,
                "source_bytes": good.source_bytes, "fingerprint": t.fingerprint,
                "indexed_at": now, "file_rows": per_file,
                "file_encodings": ([good.decoded.get(f.path, (csvenc.NATIVE,))[0] for f in good.files]
                                   if t.format == "csv" else None),
                "csv_header": good.csv_header if t.format == "csv" else None,
                "csv_whole_sniff": good.csv_whole_sniff if t.format == "csv" else None,
                "file_copy_bytes": _copy_bytes(good) if t.format == "csv" else None,
            }
            columns[t.key] = [Column(t.key, n, i, ty) for i, (n, ty) in enumerate(cols)]
        lake.tables = {k: kept[k] for k in lake.tables if k in kept}
        if lazy:
            columns = stored.columns_by_table.keep(from_stored, columns)
        cat = cls(lake, tables, columns, problems)
        cat.failed = failed
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
            ("file_encodings", pa.list_(pa.string())), ("csv_header", pa.bool_()),
            ("csv_whole_sniff", pa.bool_()), ("file_copy_bytes", pa.list_(pa.int64())),
        ])
        store.write_parquet(pa.Table.from_pylist(trows, schema=tschema), cdir / "tables.parquet")
        if isinstance(self.columns_by_table, StoredColumns):
            tn, cn, od, ty = self.columns_by_table.rows_sorted()
        else:
            ccols = [c for k in sorted(self.columns_by_table) for c in self.columns_by_table[k]]
            tn, cn = [c.table_name for c in ccols], [c.column_name for c in ccols]
            od, ty = [c.ordinal for c in ccols], [c.type for c in ccols]
        store.write_parquet(pa.table({
            "table_name": tn, "column_name": cn, "ordinal": pa.array(od, pa.int32()), "type": ty}),
            cdir / "columns.parquet")
        files = [(t.key, f.path, f.size, f.mtime_ns, f.etag)
                 for t in self.lake.tables.values() for f in t.files]
        store.write_parquet(pa.table({
            "table_name": [f[0] for f in files], "path": [f[1] for f in files],
            "size": pa.array([f[2] for f in files], pa.int64()),
            "mtime_ns": pa.array([f[3] for f in files], pa.int64()),
            "etag": pa.array([f[4] for f in files], pa.string())}), cdir / "files.parquet")
        probs = sorted(self.problems, key=lambda p: (p.table_name, p.path))
        store.write_parquet(pa.table({
            "kind": pa.array([p.kind for p in probs], pa.string()),
            "table_name": pa.array([p.table_name for p in probs], pa.string()),
            "path": pa.array([p.path for p in probs], pa.string()),
            "error": pa.array([p.error for p in probs], pa.string()),
            "fingerprint": pa.array([self.failed.get(p.table_name, "") if p.kind == "table" else ""
                                     for p in probs], pa.string())}), cdir / "problems.parquet")
        total = sum(r["source_bytes"] for r in trows)
        params = json.dumps({"format": CATALOG_FORMAT, "header_rule": csvheader.RULE})
        store.record(IndexEntry("catalog", "", "", "catalog", dir_bytes(cdir), total, "", params=params))

    @classmethod
    def load(cls, lake: Lake, store: Store | None) -> Catalog | None:
        """The stored catalog, or None when the store has none or it is damaged (with a warning)."""
        if store is None or not store.path("catalog", "tables.parquet").exists():
            return None

        try:
            entry = store.find("catalog")
            if not _current_format(entry):
                return None  # written by another lakeql: every table is catalogued again
            store.verify(entry)
            header_rule = entry.params_dict.get("header_rule", 1)
            trows = parquet_io.rows(parquet_io.read_table(store.path("catalog", "tables.parquet")))
            cdict = parquet_io.read_table(store.path("catalog", "columns.parquet")).to_pydict()
            ppath = store.path("catalog", "problems.parquet")
            prows = parquet_io.read_table(ppath).to_pylist() if ppath.exists() else []
        except Exception as exc:  # noqa: BLE001 - a damaged catalog is recomputed, never fatal
            if store.build_running() is not None:
                return None  # being rewritten by a running build (files of two versions): recompute
            warnings.warn(f"the stored catalog in {str(store.root)!r} is damaged ({_first_line(exc)}): "
                          "reading the lake's footers instead; run 'lakeql index LAKE' to repair it",
                          DamagedCatalogWarning, stacklevel=2)
            return None
        tables = {r["table_name"]: r for r in trows}
        clists = [cdict["table_name"], cdict["column_name"], cdict["ordinal"], cdict["type"]]
        columns: Mapping[str, list[Column]] | None = StoredColumns.from_lists(*clists)
        if columns is None:  # rows of a table not contiguous: made eagerly
            columns = {}
            for tn, cn, od, ty in zip(*clists, strict=True):
                columns.setdefault(tn, []).append(Column(tn, cn, od, ty))
        problems = [Problem(r["kind"], r["path"], r["error"], r["table_name"]) for r in prows]
        cat = cls(lake, tables, columns, problems)
        cat.failed = {r["table_name"]: r["fingerprint"] for r in prows if r["kind"] == "table"}
        cat.files_path = store.path("catalog", "files.parquet")
        cat.header_rule = header_rule
        return cat

    def file_stamps(self, key: str) -> list[tuple[str, int, int, str]]:
        """The stored (path, size, mtime, etag) of table ``key``'s files, in catalog order ([] when
        unknown; etag '' for local files and catalogs written before it was recorded)."""
        if self._file_stamps is None:
            self._file_stamps = {}
            if self.files_path is not None and self.files_path.exists():
                try:
                    d = parquet_io.read_table(self.files_path).to_pydict()
                except Exception:  # noqa: BLE001 - unknown stamps: the table is read again
                    d = {}
                tags = d.get("etag") or [""] * len(d.get("path", []))
                cols = (d.get(c, []) for c in ("table_name", "path", "size", "mtime_ns"))
                for k, p, sz, mt, tag in zip(*cols, tags, strict=True):
                    self._file_stamps.setdefault(k, []).append((p, int(sz), int(mt), tag or ""))
        return self._file_stamps.get(key, [])

    @classmethod
    def stored_table(cls, table: Table, store: Store | None, con: Any = None
                     ) -> tuple[Table, list[int], list[str]] | None:
        """One unchanged table as the stored catalog has it, read without loading the whole catalog:
        (the table made of its readable files, rows per file, column names). None when the store has no
        intact catalog, or the table is not in it or changed since (then use :meth:`open`).

        What a rowid view needs (:func:`lakeql.rows.rowid_scan_sql`): on a lake of 37,000 columns
        :meth:`load` builds every column's object (~0.3 s) after importing pyarrow (~0.3 s in a fresh
        process); this reads one table's rows with DuckDB (milliseconds), the key a bound parameter,
        through a cursor of ``con`` when given (a new in-memory database costs ~15 ms).
        """
        if store is None or not store.path("catalog", "tables.parquet").exists():
            return None

        con = con.cursor() if con is not None else buildfs.connect()
        try:
            entry = store.find("catalog")
            if not _current_format(entry):
                return None
            store.verify(entry)

            def rows(name: str, sql: str) -> list[tuple]:
                return con.execute(f"SELECT {sql} FROM read_parquet(?) AS t WHERE table_name = ?",
                                   [glob_escape(str(store.path("catalog", name))), table.key]).fetchall()

            # a catalog without csv_whole_sniff (written before it) fails here: the table is read again
            trows = rows("tables.parquet",
                         "fingerprint, file_rows, file_encodings, csv_header, csv_whole_sniff, "
                         "to_json(t) ->> 'file_copy_bytes'")  # (none before trial10: NULL)
            if len(trows) != 1 or trows[0][0] != table.fingerprint:
                return None
            cols = [r[0] for r in sorted(rows("columns.parquet", "column_name, ordinal"), key=lambda r: r[1])]
            prows = (rows("problems.parquet", "kind, path")
                     if store.path("catalog", "problems.parquet").exists() else [])
        except Exception:  # noqa: BLE001 - a damaged catalog: open() recomputes it (and says so)
            return None
        finally:
            con.close()
        if any(kind == "table" for kind, _ in prows):
            return None
        skip = {path for kind, path in prows if kind == "file"}
        kept = table.with_files([f for f in table.files if f.path not in skip])
        file_rows = [int(n) for n in trows[0][1]]
        if len(file_rows) != len(kept.files) or not kept.files:
            return None
        from lakeql import csvenc

        kept.csv_header = bool(trows[0][3])
        kept.csv_whole_sniff = bool(trows[0][4])
        sizes = json.loads(trows[0][5]) if trows[0][5] else None
        if not _restore_decoded(kept, trows[0][2], None, csvenc.cache_dirs(store), sizes):
            return None
        return kept, file_rows, cols

    @classmethod
    def open(cls, lake: Lake, store: Store | None = None) -> Catalog:
        """The stored catalog for the lake's unchanged tables, the others profiled now (not saved).

        Tables whose files changed since the catalog was written (or that appeared) are re-profiled in
        memory, so names and types are always current; unreadable ones are left out with a warning;
        capability indexes still report staleness on their own.
        """
        return cls._resolve(lake, cls.load(lake, store), store)
