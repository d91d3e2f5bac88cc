"""Rows and top-k rows of a frequent phrase counted on the table's own Parquet column (default index).

The n-gram index keeps no copy of the text (unless built with ``--ngram-scan``). For a phrase so frequent
that locating its occurrences costs more than a scan, this reads the indexed column of every Parquet
file with pyarrow, one row group per task in the shared scan pool (pyarrow's reader and the numba
kernel both release the GIL), and counts every row in ONE pass over the Arrow buffers
(:func:`lakeql.ngrams.countkernel.count_rows`: memchr on the pattern's rarest byte, then a compare).
Rows the kernel cannot decide exactly (``unsure``: a non-ASCII byte next to a word match, a character
whose case folding holds ASCII ...) are recounted as the index holds them (Python ``casefold`` / the
builder's word stream, :func:`lakeql.ngrams.colscan._search_batch`) inside the same task. A top-k
keeps each row group's k best rows and their text; the k best of those are counted once more with
their first offsets (snippets). Every count that reaches a user is exact.

Used only for tables of local Parquet files whose indexed column is a top-level string/binary column of
every file, and whose row count is the index's; anything else returns None (the DuckDB scan of
:mod:`lakeql.ngrams.colscan`, or the exact path of before).
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np

#: a scan job reads consecutive row groups of about this many uncompressed column bytes (at least
#: MIN_JOB_BYTES, and at most a share of the column that keeps every scan thread busy)
JOB_BYTES = 8 << 20
MIN_JOB_BYTES = 1 << 20
#: a running top k of at most this many rows copies no text until the end: it keeps each offering
#: piece's buffer (the k best rows of a piece are its longest: copying them measured ~15% of a scan);
#: at most ~2k pieces' buffers are alive, so a larger k copies the entering rows at once (memory bounded
#: by the k rows' text)
LAZY_K = 64


@lru_cache(maxsize=64)
def nfold_table(chars: frozenset) -> np.ndarray:
    """bool[65536]: the first two UTF-8 bytes (lead << 8 | next) of every character whose ``casefold``
    holds one of the ASCII ``chars`` (those of the pattern). A row holding one is recounted in Python;
    a character whose folding shares no character with an ASCII pattern cannot be part of a match."""
    from lakeql.ngrams.colscan import _fold_sources

    n_chars, _ = _fold_sources()
    out = np.zeros(1 << 16, dtype=np.bool_)
    for ch in n_chars:
        if chars & set(ch.casefold()):
            b = ch.encode("utf-8")
            out[(b[0] << 8) | b[1]] = True
    return out


class Spec:
    """What the kernel searches: an encoded pattern of the index (``unit``, ``fold``) as kernel args."""

    def __init__(self, unit: str, fold: str, pat: np.ndarray, freq: np.ndarray | None) -> None:
        from lakeql.ngrams.text import WORD_SEP

        self.unit, self.fold, self.pat = unit, fold, pat
        self.lower = fold == "casefold"
        self.words = unit == "word"
        raw = pat.tobytes()
        if self.words:
            ws = [w for w in raw.split(bytes([WORD_SEP])) if w]
            body = b"".join(ws)
            self.wstart = np.cumsum([0] + [len(w) for w in ws]).astype(np.int64)
            first = ws[0] if ws else b""
        else:
            body = raw
            self.wstart = np.array([0, len(raw)], np.int64)
            first = raw
        self.body = np.frombuffer(body, np.uint8).copy()
        self.ok = bool(first) and (fold in ("none", "casefold"))
        self.ascii = bool(self.body.shape[0]) and int(self.body.max()) < 128
        if not self.ok:
            return
        # the two bytes tested first: the rarest two positions of the first word by the index's byte
        # frequencies (letters of an insensitive pattern: both cases)
        f = np.ones(256) if freq is None else np.asarray(freq, dtype=np.float64)
        fb = np.frombuffer(first, np.uint8).astype(np.int64)
        cost = f[fb].copy()
        if self.lower:
            up = (fb >= 97) & (fb <= 122)
            cost[up] += f[fb[up] - 32]
        order = np.argsort(cost, kind="stable")
        self.i1 = int(order[0])
        self.i2 = int(order[1]) if order.shape[0] > 1 else self.i1
        from lakeql.ngrams.countkernel import failure_table

        # computed once per pattern: the characters whose folding holds the pattern's ASCII, the KMP table
        self.nfold = nfold_table(frozenset(chr(b) for b in self.body.tolist() if b < 128))
        # the pattern as the layer holds it (words: WORD_SEP w1 WORD_SEP ..): KMP's on repetitive rows
        self.kpat = np.frombuffer(raw, np.uint8).copy() if self.words else self.body
        self.fail = failure_table(self.kpat)

    def count(self, data: np.ndarray, offs: np.ndarray, stop: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per row (occurrences, unsure); ``stop``: a row's count is only >= 1 once it holds one (the
        rest of the row is not read; row sets need no more)."""
        from lakeql.ngrams.countkernel import count_rows
        from lakeql.ngrams.text import word_table

        return count_rows(
            data,
            offs,
            self.body,
            self.wstart,
            self.i1,
            self.i2,
            self.lower,
            self.words,
            self.nfold,
            self.lower,
            self.ascii,
            self.kpat,
            self.fail,
            word_table(),
            stop,
        )


def _is_text(t) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _string_chunks(col) -> list[Any]:
    """The Arrow chunks of a column as string/binary arrays (int32 or int64 offsets)."""
    import pyarrow as pa

    for ch in col.chunks:
        if not _is_text(ch.type):
            raise pa.ArrowTypeError(f"not a string column: {ch.type}")
    return list(col.chunks)


def _as_text(arr):
    """A string/binary Arrow array as text of the same offsets (no validation: bytes as the index
    holds them, for the exact recount)."""
    import pyarrow as pa

    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    return arr.view(pa.large_string() if large else pa.string())


def _buffers(ch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(data bytes, offsets (not rebased), validity or None) views of a string/binary Arrow array."""
    import pyarrow as pa

    large = pa.types.is_large_string(ch.type) or pa.types.is_large_binary(ch.type)
    bufs = ch.buffers()
    n = len(ch)
    offs = np.frombuffer(
        bufs[1], dtype=np.int64 if large else np.int32, count=n + 1, offset=ch.offset * (8 if large else 4)
    )
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8)
        if bufs[2] is not None and bufs[2].size
        else np.zeros(int(offs[-1]) + 1, np.uint8)
    )
    valid = None
    if ch.null_count:
        valid = np.asarray(ch.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return data, offs, valid


def exact_counts(spec: Spec, ch, take=None, stop: bool = False) -> np.ndarray:
    """Exact per-row occurrences of ``spec`` in a string/binary Arrow array (NULL rows 0): the kernel,
    then the rows it reports ``unsure`` counted as the index holds them (their text: ``take(rows)``,
    by default ``ch.take``). ``stop``: counts of rows holding the pattern may be any number >= 1."""
    from lakeql.ngrams.colscan import _search_batch

    data, offs, valid = _buffers(ch)
    cnt, unsure = spec.count(data, offs, stop)
    if valid is not None:
        cnt[~valid] = 0
        unsure &= valid
    if unsure.any():
        idx = np.flatnonzero(unsure)
        c, _ = _search_batch((take or ch.take)(idx), spec.unit, spec.fold, spec.pat, True)
        cnt[idx] = c
    return cnt


class ParquetColumn:
    """The indexed column of a table's local Parquet files: one job per row group, rowids as the
    index numbers rows (files in catalog order)."""

    #: decode the pages here (:mod:`lakeql.ngrams.pqpages`); False: pyarrow's reader only (as before)
    pages = True

    def __init__(self, table: Any, column: str, n_rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from lakeql.ngrams.pqpages import CODECS, PAGE_ENCODINGS

        self.column = column
        self.jobs: list[tuple[str, Any, list[int], int]] = []  # (path, metadata, row groups, first rowid)
        self.ok = False
        self.decodable = True  # every chunk uses codecs and encodings the page decoder handles
        if table.format != "parquet":
            return
        base = 0
        files = []
        try:
            for path in table.paths:
                if not os.path.isfile(path):
                    return
                st = os.stat(path)
                with pq.ParquetFile(path) as pf:
                    # exactly one top-level column of that name (a file may repeat a name: DuckDB's then)
                    if pf.schema_arrow.names.count(column) != 1 or "." in column:
                        return
                    t = pf.schema_arrow.field(column).type
                    md = pf.metadata
                if not _is_text(t):
                    return
                leaf = [md.schema.column(i).path for i in range(md.num_columns)].index(column)
                groups = [
                    (g, md.row_group(g).num_rows, md.row_group(g).column(leaf).total_uncompressed_size)
                    for g in range(md.num_row_groups)
                ]
                if [md.schema.column(i).path for i in range(md.num_columns)].count(column) != 1:
                    return
                for g in range(md.num_row_groups):  # what lakeql.ngrams.pqpages decodes (cost model)
                    cc = md.row_group(g).column(leaf)
                    if cc.compression not in CODECS or not set(cc.encodings) <= PAGE_ENCODINGS:
                        self.decodable = False
                files.append(((path, st.st_size, st.st_mtime_ns), md, groups))
        except (OSError, ValueError, pa.ArrowException):
            return
        # jobs of consecutive row groups of about JOB_BYTES (small row groups cost a fixed ~0.2 ms each:
        # one read call per job), at least two jobs per scan thread when the column is small
        total = sum(b for _, _, gs in files for _, _, b in gs)
        target = max(MIN_JOB_BYTES, min(JOB_BYTES, total // (2 * max(1, os.cpu_count() or 1))))
        for path, md, groups in files:
            cur: list[int] = []
            size, first = 0, base
            for g, n, b in groups:
                cur.append(g)
                size += b
                base += n
                if size >= target:
                    self.jobs.append((path, md, cur, first))
                    cur, size, first = [], 0, base
            if cur:
                self.jobs.append((path, md, cur, first))
        self.ok = base == n_rows

    def _read(self, job) -> tuple[int, list[Any]]:
        """The job's column chunks. The footer was read once: a file replaced since (its size or mtime
        changed) raises ``OSError`` (the caller's other path answers) rather than being read with it."""
        import pyarrow.parquet as pq

        (path, size, mtime), md, groups, base = job
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                raise OSError(f"{path} changed since its footer was read")
            with pq.ParquetFile(fh, metadata=md) as pf:
                col = pf.read_row_groups(groups, columns=[self.column], use_threads=False).column(0)
        return base, _string_chunks(col)

    def _pieces(self, job) -> tuple[int, list[tuple[int, Any, np.ndarray | None]]]:
        """(first rowid, pieces) of a job: (rows, values, row -> value index or None) as
        :func:`lakeql.ngrams.pqpages.chunk_pieces` decodes the pages (no Arrow reader, no copy of
        the text); a row group it declines is read with pyarrow (:meth:`_read`)."""
        from lakeql.ngrams.pqpages import Declined, Values, chunk_pieces

        (path, size, mtime), md, groups, base = job
        if self.pages:
            out: list[tuple[int, Any, np.ndarray | None]] = []
            try:
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if (st.st_size, st.st_mtime_ns) != (size, mtime):
                        raise OSError(f"{path} changed since its footer was read")
                    leaf = [md.schema.column(i).path for i in range(md.num_columns)].index(self.column)
                    for g in groups:
                        out += chunk_pieces(fh, md, g, leaf)
                return base, out
            except Declined:
                pass
        base, chunks = self._read(job)
        return base, [(len(ch), Values(ch), None) for ch in chunks]

    def _counted(self, spec: Spec, job, stop: bool = False):
        """Per piece of the job: (first rowid, exact counts per row, texts(rows) -> Arrow array of
        those rows' text). A dictionary shared by several pages is counted once."""
        base, pieces = self._pieces(job)
        seen: dict[int, np.ndarray] = {}
        for n, vals, index in pieces:
            key = id(vals)
            if key not in seen:
                seen[key] = (
                    exact_counts(spec, vals.arr, vals.take, stop) if len(vals) else np.zeros(0, np.int64)
                )
            cv = seen[key]
            if index is None:
                cnt = cv
            elif cv.shape[0]:
                cnt = np.where(index >= 0, cv[np.maximum(index, 0)], 0)
            else:
                cnt = np.zeros(n, np.int64)

            def texts(rows, vals=vals, index=index):
                return vals.take(rows if index is None else index[rows])

            yield base, cnt, texts
            base += n

    def _run(self, fn) -> list[Any]:
        from lakeql.ngrams.query import _scan_pool

        if len(self.jobs) == 1:
            return [fn(self.jobs[0])]
        return list(_scan_pool().map(fn, self.jobs))

    def rows(
        self, spec: Spec, need_first: bool = False, need_counts: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row ids ascending, occurrences, first offsets) of every row holding the pattern; the first
        offsets (as the index holds the row) only with ``need_first`` (else -1): the rows holding the
        pattern are searched once more for them. Without ``need_counts`` (and ``need_first``) each row's
        scan stops at its first occurrence and reports 1 occurrence."""
        import pyarrow as pa

        from lakeql.ngrams.colscan import verify_batch

        def one(job):
            rid, cnt, off = [], [], []
            for base, c, texts in self._counted(spec, job, not (need_counts or need_first)):
                hit = np.flatnonzero(c)
                if need_first and hit.shape[0]:
                    batch = pa.RecordBatch.from_arrays(
                        [pa.array(hit + base, pa.int64()), _as_text(texts(hit))], ["rowid", "text"]
                    )
                    r, n, f = verify_batch(batch, spec.unit, spec.fold, spec.pat, True)
                else:
                    n = c[hit] if need_counts else np.ones(hit.shape[0], np.int64)
                    r, f = hit + base, np.full(hit.shape[0], -1, np.int64)
                rid.append(r)
                cnt.append(n)
                off.append(f)
            return rid, cnt, off

        parts = self._run(one)
        e = [np.empty(0, np.int64)]
        return tuple(np.concatenate(e + [r for p in parts for r in p[j]]).astype(np.int64) for j in range(3))

    def top(self, spec: Spec, k: int, counts: bool = False):
        """(row ids, their text as one Arrow array) of the k rows with the most occurrences (ties: lower
        row id; rows without the pattern left out), best first. Only rows that enter the running top k
        have their text copied (a row group's longest rows are usually its best: copying each group's k
        best measured ~30% of the scan): one ``take`` per chunk, the running top k kept in numpy."""
        import pyarrow as pa

        top = _RunningTop(k)

        def one(job):
            for base, c, texts in self._counted(spec, job):
                hit = np.flatnonzero(c)
                if hit.shape[0] > k:  # the piece's k best (ties: lower row id)
                    hit = np.sort(hit[np.lexsort((hit, -c[hit]))[:k]])
                top.offer(texts, hit, hit + base, c[hit])

        self._run(one)
        rid, texts = top.result()
        if texts is None:
            texts = pa.array([], pa.large_binary())
        # as text (no validation: bytes as the index holds them), for the exact recount of the caller
        if counts:  # the rows' exact occurrences too
            return rid, texts.view(pa.large_string()), top.cnt[0]
        return rid, texts.view(pa.large_string())


class _RunningTop:
    """The k best (count desc, row id asc) rows offered so far by the scan threads: numpy arrays of row
    id, count, source batch and index in it; each offered chunk's entering rows copied with one ``take``.
    Candidates are pooled and cut back to k once they exceed 2k (amortised: O(n log k) in all)."""

    def __init__(self, k: int) -> None:
        self.k = int(k)
        self.lock = threading.Lock()
        e = np.empty(0, np.int64)
        self.rid, self.cnt, self.src, self.pos = [e], [e], [e], [e]
        self.size = 0
        self.floor: tuple[int, int] | None = None  # (count, row id) of the k-th best once k are held
        self.texts: dict[int, Any] = {}  # source batch -> its taken rows (large_binary)
        self.next_src = 0

    def offer(self, texts, local: np.ndarray, rid: np.ndarray, cnt: np.ndarray) -> None:
        """``texts(local)``: the Arrow text of those rows of the offered piece."""
        import pyarrow as pa

        with self.lock:
            if self.floor is not None and local.shape[0]:  # only rows that beat the current k-th
                fc, fr = self.floor
                keep = (cnt > fc) | ((cnt == fc) & (rid < fr))
                local, rid, cnt = local[keep], rid[keep], cnt[keep]
            if not local.shape[0]:
                return
            src = self.next_src
            self.next_src += 1
            # lazily: (texts, local) kept, the rows' text taken once they survive to the end
            self.texts[src] = (texts, local) if self.k <= LAZY_K else texts(local).cast(pa.large_binary())
            n = local.shape[0]
            self.rid.append(rid.astype(np.int64))
            self.cnt.append(cnt.astype(np.int64))
            self.src.append(np.full(n, src, np.int64))
            self.pos.append(np.arange(n, dtype=np.int64))
            self.size += n
            if self.size > 2 * self.k:
                self._cut()

    def _cut(self) -> None:
        """Keep the k best, sorted best first; drop the texts of batches no kept row comes from."""
        rid, cnt, src, pos = (np.concatenate(a) for a in (self.rid, self.cnt, self.src, self.pos))
        order = np.lexsort((rid, -cnt))[: self.k]
        rid, cnt, src, pos = rid[order], cnt[order], src[order], pos[order]
        self.rid, self.cnt, self.src, self.pos = [rid], [cnt], [src], [pos]
        self.size = rid.shape[0]
        if self.size >= self.k and self.k > 0:
            self.floor = (int(cnt[-1]), int(rid[-1]))
        alive = set(np.unique(src).tolist())
        for s in [s for s in self.texts if s not in alive]:
            del self.texts[s]

    def _take(self, src: int, pos: np.ndarray):
        import pyarrow as pa

        got = self.texts[src]
        if isinstance(got, tuple):
            texts, local = got
            return texts(local[pos]).cast(pa.large_binary())
        return got.take(pa.array(pos))

    def result(self) -> tuple[np.ndarray, Any]:
        """(row ids best first, their texts as one Arrow array or None when empty)."""
        import pyarrow as pa

        self._cut()
        rid, src, pos = self.rid[0], self.src[0], self.pos[0]
        if not rid.shape[0]:
            return rid, None
        by_src = np.argsort(src, kind="stable")  # one take per surviving batch
        bounds = np.flatnonzero(np.diff(src[by_src])) + 1
        parts = [self._take(int(src[g[0]]), pos[g]) for g in np.split(by_src, bounds) if g.shape[0]]
        grouped = pa.concat_arrays(parts)
        back = np.empty_like(by_src)
        back[by_src] = np.arange(by_src.shape[0])  # grouped order -> best-first order
        return rid, grouped.take(pa.array(back))
