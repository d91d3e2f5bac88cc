"""``lakeql index --ngram TABLE.COLUMN``: stream a text column into shards and build their FM-indexes.

Text is read with pyarrow file by file in catalog order (so row positions are ``__rowid``), never as a
Python list: each Arrow batch's offsets and data buffers become the shard text with a NUL after every row
(NULL rows become empty rows, so row ids stay contiguous). pyarrow does not validate UTF-8, so invalid
bytes in the data are indexed as they are. When the accumulated text reaches ``--ngram-shard-mb`` a shard
is cut at a row boundary and written to a temporary file; shards are then built independently in a
process pool (``--ngram-jobs``), each into its own folder. A worker case-folds its shard (Unicode
``str.casefold``) for an insensitive index, builds the character FM-index, and (by default) the word
stream's FM-index in ``words/`` and the LZ4 scan tiers of both (see :func:`run_job`).
"""

from __future__ import annotations

import errno
import json
import resource
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeql.colnames import match_column
from lakeql.errors import ChangedDuringBuildError, LakeqlError
from lakeql.lake import Table, nfc, quote_ident, read_parquet_sql, scan_sql
from lakeql.sources import buildfs
from lakeql.store import IndexEntry, write_failure

KIND = "ngram"
FLAG = "--ngram"
SAMPLE_RATE = 32
BATCH_ROWS = 8192
FORMAT = 2  # 2: shards may hold a words/ index; case folding is Unicode (str.casefold)
CSV_TEXT = 1  # how a CSV file's text column is read (1: as VARCHAR, as the table's view reads it)
FOLD = "casefold"  # the case folding of insensitive indexes (format 1 folded ASCII only)


@dataclass(frozen=True)
class Target:
    table: Table
    column: str
    case: str  # 'sensitive' | 'insensitive'
    mode: str  # 'compressed' | 'fast'
    shard_mb: float
    words: bool = True  # also build the word-stream index (unit := 'word')
    scan: bool = True  # keep the scan tier (LZ4 blocks of the indexed text)

    def params(self) -> str:
        p = {"case": self.case, "mode": self.mode, "shard_mb": self.shard_mb, "sample_rate": SAMPLE_RATE,
             "format": FORMAT, "words": self.words, "scan": self.scan, "fold": FOLD}
        if self.table.format == "csv":  # the text read as the view reads it (review21): an index of a CSV
            p["csv_text"] = CSV_TEXT  # table built before is built again by the next refresh
        return json.dumps(p, sort_keys=True)


def text_column(catalog, table: Table, column: str) -> str:
    """The exact name of a text column (the catalog's rule), or a clear error."""
    return catalog.text_column(table, column, "n-gram search").column_name


def targets(ctx) -> list[Target]:
    """The columns to index: every ``--ngram`` flag plus (to keep them fresh) those already indexed."""
    opts = ctx.options["ngrams"]
    case, mode, shard_mb = opts.ngram_case, opts.ngram_mode, float(opts.ngram_shard_mb)
    words, scan = bool(opts.ngram_words), bool(opts.ngram_scan)
    if not 0 < shard_mb <= 3500:
        raise LakeqlError(f"--ngram-shard-mb must be in (0, 3500] (offsets are 32-bit), got {shard_mb}")
    out: dict[tuple[str, str], Target] = {}
    for spec in opts.ngram:
        table, column = ctx.catalog.table_column(spec, FLAG)
        name = text_column(ctx.catalog, table, column)
        out[(table.key, name)] = Target(table, name, case, mode, shard_mb, words, scan)
    for e in ctx.store.entries(KIND):
        # an index recorded under an NFD name (built before names were NFC) is built again under the
        # table's NFC name; its old row is dropped as a removed table's
        key = nfc(e.table_name)
        if (key, e.column_name) in out or key not in ctx.lake.tables:
            continue
        p = e.params_dict
        table = ctx.lake.tables[key]
        column = e.column_name
        names = [c.column_name for c in ctx.catalog.columns(table)]
        if column not in names:
            # the file now names it in another Unicode form (rewritten on macOS, or off it) or case: the
            # same column to lakeql's functions and DuckDB (lakeql.colnames), so its index follows it
            column = match_column(column, names) or ""
            if not column:
                warnings.warn(f"column {e.table_name}.{e.column_name} is gone: dropping its n-gram index",
                              stacklevel=2)
            ctx.store.drop(KIND, e.table_name, e.column_name)
            if not column or (key, column) in out:
                continue
        try:
            text_column(ctx.catalog, table, column)
        except LakeqlError as exc:  # the column is no longer text (a file rewritten with numbers): an
            # index of its digits would be built, listed as fresh and refused by every query (trial13)
            warnings.warn(f"dropping the n-gram index of {e.table_name}.{e.column_name}: {exc}", stacklevel=2)
            ctx.store.drop(KIND, e.table_name, e.column_name)
            continue
        out[(key, column)] = Target(table, column, p.get("case", "sensitive"),
                                                    p.get("mode", "compressed"),
                                                    float(p.get("shard_mb", shard_mb)),
                                                    bool(p.get("words", words)),
                                                    bool(p.get("scan", scan)))
    return list(out.values())


# ------------------------------------------------------------------------------------- text stream
def arrow_buffers(arr) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy views of an Arrow string/binary array: (data bytes, int64 offsets rebased to 0).

    NULLs become empty rows. Nothing is decoded, so invalid UTF-8 passes through as bytes.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_large_binary(arr.type):
        arr = pc.cast(arr, pa.large_binary())
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar(b"", pa.large_binary()))
    n = len(arr)
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    lo, hi = int(offs[0]), int(offs[-1])
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=hi - lo, offset=lo) if hi > lo and bufs[2] \
        else np.zeros(0, np.uint8)
    return data, offs - lo


def arrow_text(arr) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string/binary array -> (bytes with a NUL after each row, row lengths incl. the NUL).

    The text as stored (case folding happens per shard, in the worker: see :func:`run_job`).
    """
    from lakeql.ngrams.kernels import interleave

    data, offs = arrow_buffers(arr)
    lengths = np.diff(offs) + 1
    out = np.empty(data.shape[0] + len(lengths), dtype=np.uint8)
    interleave(data, offs, out)
    return out, lengths


def fold_ascii(buf: np.ndarray) -> None:
    """Lower-case ASCII A-Z in place: the folding of format-1 indexes (still read by queries)."""
    upper = (buf >= 65) & (buf <= 90)
    buf[upper] += 32


def table_batches(table: Table, column: str) -> Iterator[Any]:
    """Arrow arrays of ``column`` over the table's files in catalog order (row order = ``__rowid``)."""

    import pyarrow as pa

    def textual(t) -> bool:
        if pa.types.is_dictionary(t):  # pandas categoricals: read by pyarrow as before
            return textual(t.value_type)
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t)

    for f, path in zip(table.files, table.paths, strict=True):
        pf = buildfs.parquet_file(path) if table.format == "parquet" else None
        # a file whose column is not text (a type that drifted: BIGINT here, VARCHAR in the table's other
        # files) is read through DuckDB, as the view casts it; so is every CSV/JSON file (no pyarrow
        # reader: it was opened as Parquet, and every --ngram of a CSV table was skipped, trial10)
        if pf is not None and column in pf.schema_arrow.names and textual(pf.schema_arrow.field(column).type):
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[column]):
                yield batch.column(0)
        else:  # e.g. a hive partition column: let DuckDB produce it, in file order
            con = buildfs.connect()
            one = table.with_files([f])
            scan = read_parquet_sql([path], table.hive) if pf is not None else one.scan_sql()
            names = {r[0].lower(): r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
            if column.lower() not in names:
                # a column added to the table after this file was written (schema drift): the
                # table's view reads it as NULL in this file's rows (union_by_name), so does the index
                n = pf.metadata.num_rows if pf is not None else con.execute(
                    f"SELECT count(*) FROM {scan}").fetchone()[0]
                con.close()
                for start in range(0, n, BATCH_ROWS):
                    yield pa.nulls(min(BATCH_ROWS, n - start), pa.binary())
                continue
            if table.format == "csv" and _in_file(con, one, names[column.lower()]):
                # the column as text, as the table's view reads it: a file read alone may type it (DATE
                # '2020-02-01' for the text '01/02/2020' the view has, review21); not a hive partition key
                scan = scan_sql(one.format, one.paths, one.hive, one.csv_header, one.csv_whole_sniff,
                                names[column.lower()])
            rdr = con.sql(f"SELECT encode({quote_ident(column)}::VARCHAR) FROM {scan}").to_arrow_reader(
                BATCH_ROWS)
            for batch in rdr:
                yield batch.column(0)
            con.close()


def _in_file(con: Any, one: Table, name: str) -> bool:
    """Whether the column ``name`` of the one-file CSV table ``one`` is in its file (not only a hive
    partition key, which DuckDB's ``types`` option refuses: 'Columns with names ... do not exist')."""
    if not one.hive:
        return True
    plain = scan_sql(one.format, one.paths, False, one.csv_header, one.csv_whole_sniff)
    return name in {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {plain}").fetchall()}


@dataclass
class ShardJob:
    index: int
    text_path: str
    rows_path: str
    row_base: int
    n_bytes: int
    out_dir: str
    sample_rate: int
    fast: bool
    case: str = "sensitive"
    words: bool = True
    scan: bool = True


def cut_shards(target: Target, tmp: Path, batches: Iterator[Any] | None = None,
               name: Callable[[int], str] | None = None, first: int = 0
               ) -> tuple[list[ShardJob], int, int]:
    """Stream the column into shard text files in ``tmp``; returns (jobs, rows, text bytes w/o NULs).

    ``batches``: the Arrow arrays to cut (default: the whole column, every file); ``name(k)``: the
    folder name of the k-th shard cut here (default ``shard-%05d``); ``first``: the first job index.
    Row bases count from 0 at the first row of ``batches``.
    """
    limit = int(target.shard_mb * 1024 * 1024)
    name = name or (lambda k: f"shard-{k:05d}")
    jobs: list[ShardJob] = []
    parts: list[np.ndarray] = []
    lens: list[np.ndarray] = []
    size = 0
    row_base = 0
    total_rows = 0
    text_bytes = 0

    def flush() -> None:
        nonlocal parts, lens, size, row_base
        if not lens:
            return
        k = len(jobs)
        text = np.concatenate(parts) if len(parts) > 1 else parts[0]
        ln = np.concatenate(lens)
        starts = np.zeros(len(ln) + 1, dtype=np.int64)
        np.cumsum(ln, out=starts[1:])
        folder = name(k)
        tp, rp = tmp / f"{folder}.text", tmp / f"{folder}.rows"
        text.tofile(tp)
        starts.tofile(rp)
        jobs.append(ShardJob(first + k, str(tp), str(rp), row_base, int(text.shape[0]),
                             str(tmp / folder), SAMPLE_RATE, target.mode == "fast",
                             target.case, target.words, target.scan))
        row_base += len(ln)
        parts, lens, size = [], [], 0

    for arr in batches if batches is not None else table_batches(target.table, target.column):
        if len(arr) == 0:
            continue
        text, ln = arrow_text(arr)
        ends = np.cumsum(ln)
        row = 0
        while row < len(ln):  # add as many whole rows as fit; a row above the limit gets its own shard
            base = int(ends[row - 1]) if row else 0
            stop = int(np.searchsorted(ends, base + (limit - size), side="right"))
            if stop <= row:
                if size > 0:
                    flush()
                    continue
                stop = row + 1
            hi = int(ends[stop - 1])
            parts.append(text[base:hi])
            lens.append(ln[row:stop])
            size += hi - base
            row = stop
            if size >= limit or row < len(ln):
                flush()
        total_rows += len(ln)
        text_bytes += int(text.shape[0]) - len(ln)
    flush()
    return jobs, total_rows, text_bytes


def run_job(job: ShardJob) -> tuple[int, int, float, int]:
    """Build one shard (in a worker process): returns (index, bytes, seconds, peak RSS in KiB).

    The character index gets the text (case-folded for an insensitive index); with ``words``, the
    shard's ``words/`` folder gets the FM-index of the word stream with each row reversed (so a
    backward-search step appends a byte to the right of a word phrase: next-word distributions).
    """
    from lakeql.ngrams import scantier
    from lakeql.ngrams.fmindex import build_shard
    from lakeql.ngrams.text import casefold_rows, reverse_rows, word_rows

    text = np.fromfile(job.text_path, dtype=np.uint8)
    starts = np.fromfile(job.rows_path, dtype=np.int64)
    folded = job.case == "insensitive"
    out = Path(job.out_dir)
    extra = 0
    if job.words:
        wtext, wstarts = word_rows(text, starts, folded)
        (out / "words").mkdir(parents=True, exist_ok=True)
        if job.scan:
            extra += scantier.write(wtext, wstarts, out / "words")
        wtext = reverse_rows(wtext, wstarts)
        extra += build_shard(wtext, wstarts, job.row_base, out / "words", sample_rate=job.sample_rate,
                             fast=job.fast).bytes
        del wtext, wstarts
    if folded:
        text, starts = casefold_rows(text, starts)
    stats = build_shard(text, starts, job.row_base, out, sample_rate=job.sample_rate, fast=job.fast)
    if job.scan:
        extra += scantier.write(text, starts, out)
    Path(job.text_path).unlink(missing_ok=True)
    Path(job.rows_path).unlink(missing_ok=True)
    return job.index, stats.bytes + extra, stats.seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build_target(ctx, target: Target, jobs_n: int) -> IndexEntry:
    """Build the FM-index of one column, one set of shards per data file, and record it in the manifest
    (on ``--refresh``: only the shards of new or changed files; see :mod:`lakeql.ngrams.fileshards`)."""
    from lakeql.ngrams.fileshards import build_target as _build_target

    return _build_target(ctx, target, jobs_n)


def up_to_date(ctx, target: Target) -> bool:
    """On ``--refresh``: the index exists, its table is unchanged and it was built with these options."""
    if not ctx.refresh:
        return False
    e = ctx.store.find(KIND, target.table.key, target.column)
    if e is None or e.fingerprint != target.table.fingerprint:
        return False
    want = json.loads(target.params())
    have = e.params_dict
    if not (all(have.get(k) == v for k, v in want.items()) and (ctx.store.root / e.path).exists()):
        return False
    if have.get("time_zone") != buildfs.BUILD_TIME_ZONE and target.table.format == "parquet":
        # built in another zone (or before it was recorded): a file whose column text depends on the
        # zone has its shards built again (a footer read per file until the index is rewritten)
        return not any(buildfs.zoned_column(p, target.column) for p in target.table.paths)
    return True


def build(ctx) -> None:
    """The capability's ``build`` hook: index every target column (skipping up-to-date ones)."""
    import os

    import pyarrow as pa

    jobs_n = int(ctx.options["ngrams"].ngram_jobs)
    if jobs_n < 0:
        raise LakeqlError(f"--ngram-jobs must be 0 (= number of CPUs) or more, got {jobs_n}")
    jobs_n = jobs_n or (os.cpu_count() or 1)
    for target in targets(ctx):
        if up_to_date(ctx, target):
            continue
        try:
            build_target(ctx, target, jobs_n)
        except ChangedDuringBuildError as exc:  # a writer is at work on the table: the rest goes on
            warnings.warn(f"n-gram index of {target.table.key}.{target.column} skipped: {exc}", stacklevel=2)
        except (OSError, pa.ArrowException) as exc:  # bad data in one table: warn, keep building
            code = write_failure(exc)
            if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # not bad data: the index cannot be
                from lakeql.store import _write_error  # written (exit 2)

                raise _write_error(ctx.store.root, OSError(code, os.strerror(code))) from None
            warnings.warn(f"n-gram index of {target.table.key}.{target.column} skipped: {exc}",
                          stacklevel=2)
