"""A text column chunk of a Parquet file decoded page by page, for the count kernel (no Arrow reader).

pyarrow's reader builds one Arrow array per row group (decompress, decode, copy every string, build
offsets): measured 1.07-1.4x DuckDB's whole ``count(*) WHERE contains`` query on the same column
(benchmarks/results/ngramcount.md), so a count on top of it could not match DuckDB's scan. The kernel
only needs each row's bytes: this module reads the column chunk's bytes once, parses the page headers
(Thrift compact protocol, a few fields), decompresses each page with Arrow's codecs (the GIL released),
and hands the kernel the values as one contiguous buffer per page (dictionary pages: the dictionary once,
rows then map to entries by their RLE/bit-packed indices, so a repeated string is counted once).

Handled: data pages v1 and v2, PLAIN and dictionary (PLAIN_DICTIONARY / RLE_DICTIONARY) encodings, a
required or optional top-level column (definition levels 0/1, RLE), codecs UNCOMPRESSED, SNAPPY, GZIP,
BROTLI, ZSTD, LZ4_RAW. Anything else (DELTA encodings, the Hadoop LZ4 framing, bad headers, counts
that do not add up) raises :class:`Declined` and the caller reads that row group with pyarrow.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from lakeql.jit import njit

#: Parquet codec name (pyarrow's ColumnChunkMetaData.compression) -> pyarrow.Codec name
CODECS = {
    "UNCOMPRESSED": None,
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "ZSTD": "zstd",
    "LZ4_RAW": "lz4_raw",
    "LZ4": "lz4_raw",
}
# (pyarrow names Parquet's LZ4_RAW "LZ4"; the deprecated Hadoop-framed LZ4 does not decode as a raw
# block: the codec fails or the size differs, and the row group is declined)
PLAIN, PLAIN_DICTIONARY, RLE, RLE_DICTIONARY = 0, 2, 3, 8
#: column chunk encodings (as pyarrow names them in the footer) the decoder handles
PAGE_ENCODINGS = {"PLAIN", "PLAIN_DICTIONARY", "RLE", "RLE_DICTIONARY", "BIT_PACKED"}
DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 1, 2, 3


class Declined(Exception):
    """The chunk uses something this reader does not decode: read it with pyarrow instead."""


# ------------------------------------------------------------------------------- Thrift compact protocol
def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i
        if s > 70:
            raise Declined("bad varint in a page header")


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _skip(b: bytes, i: int, t: int, depth: int) -> int:
    """Skip one value of compact type ``t``."""
    if depth > 32:
        raise Declined("page header nested too deep")
    if t in (1, 2):
        return i
    if t == 3:
        return i + 1
    if t in (4, 5, 6):
        return _varint(b, i)[1]
    if t == 7:
        return i + 8
    if t == 8:
        n, i = _varint(b, i)
        return i + n
    if t in (9, 10):
        h = b[i]
        i += 1
        n, et = h >> 4, h & 15
        if n == 15:
            n, i = _varint(b, i)
        if n > len(b) - i:  # every element takes a byte at least: a hostile count must not spin for ever
            raise Declined("list longer than its page header")
        for _ in range(n):
            i = i + 1 if et in (1, 2) else _skip(b, i, et, depth + 1)
        return i
    if t == 11:
        n, i = _varint(b, i)
        if n > len(b) - i:  # every entry takes a byte at least
            raise Declined("map longer than its page header")
        if n:
            kv = b[i]
            i += 1
            for _ in range(n):
                i = _skip(b, _skip(b, i, kv >> 4, depth + 1), kv & 15, depth + 1)
        return i
    if t == 12:
        return _struct(b, i, None, depth + 1)[1]
    raise Declined(f"unknown Thrift type {t} in a page header")


def _struct(b: bytes, i: int, want: dict | None, depth: int = 0) -> tuple[dict, int]:
    """A compact-protocol struct from ``b[i:]``: {field id: int / bool / nested struct (ids in
    ``want``)}; other fields skipped. Returns (fields, position after the struct)."""
    out: dict[int, Any] = {}
    fid = 0
    while True:
        h = b[i]
        i += 1
        if h == 0:
            return out, i
        t, d = h & 15, h >> 4
        if d:
            fid += d
        else:
            v, i = _varint(b, i)
            fid = _zigzag(v)
        if want is not None and fid in want and t != 12:  # callers read it as a struct: never an int
            raise Declined(f"page header field {fid} is not a struct")
        if t in (4, 5, 6):
            v, i = _varint(b, i)
            out[fid] = _zigzag(v)
        elif t in (1, 2):
            out[fid] = t == 1
        elif t == 12 and want is not None and fid in want:
            out[fid], i = _struct(b, i, want[fid], depth + 1)
        else:
            i = _skip(b, i, t, depth)


_HEADER = {5: {}, 7: {}, 8: {}}  # data page v1, dictionary page, data page v2 headers


# ------------------------------------------------------------------------------- numba decoders
@intrinsic
def _memcpy(typingctx, dst, d0, src, s0, n):  # noqa: ARG001 - numba intrinsic signature
    """``dst[d0:d0 + n] = src[s0:s0 + n]`` (uint8 arrays) by LLVM's memcpy."""
    sig = types.void(dst, types.intp, src, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        da, ds, sa, ss, cnt = args
        dary = context.make_array(signature.args[0])(context, builder, da)
        sary = context.make_array(signature.args[2])(context, builder, sa)
        i8p = ir.IntType(8).as_pointer()
        dp = builder.gep(builder.bitcast(dary.data, i8p), [ds])
        sp = builder.gep(builder.bitcast(sary.data, i8p), [ss])
        cgutils.raw_memcpy(builder, dp, sp, cnt, 1)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _plain_offsets(buf, pos, end, n):
    """Offsets of ``n`` PLAIN byte arrays (4-byte little-endian length, then the bytes) at
    ``buf[pos:end]``: (value starts in buf, lengths), or a start of -1 on a malformed page."""
    starts = np.empty(n, np.int64)
    lens = np.empty(n, np.int64)
    for i in range(n):
        if pos + 4 > end:
            starts[0] = -1
            return starts, lens
        ln = (
            np.int64(buf[pos])
            | (np.int64(buf[pos + 1]) << 8)
            | (np.int64(buf[pos + 2]) << 16)
            | (np.int64(buf[pos + 3]) << 24)
        )
        pos += 4
        if ln < 0 or pos + ln > end:
            starts[0] = -1
            return starts, lens
        starts[i] = pos
        lens[i] = ln
        pos += ln
    return starts, lens


@njit(cache=True, nogil=True)
def _compact(buf, starts, lens, data, offs):
    """The values back to back into ``data`` (Arrow layout), ``offs`` their offsets (computed by the
    caller). ``data`` is allocated by numpy, not here: numba's allocator takes fresh pages from the
    system each time and their page faults cost 3-4x the copy itself (measured)."""
    for i in range(starts.shape[0]):
        if lens[i]:
            _memcpy(data, offs[i], buf, starts[i], lens[i])


@njit(cache=True, nogil=True)
def _zero_gaps(buf, starts):
    """Zero the 4 length bytes before every value but the first (in place): then value i and the gap
    after it are ``buf[starts[i]:starts[i + 1]]``, its text followed by 4 NUL bytes."""
    for i in range(1, starts.shape[0]):
        for k in range(4):
            buf[starts[i] - 4 + k] = 0


@njit(cache=True, nogil=True)
def _hybrid(buf, pos, end, bw, n, out):
    """Decode ``n`` values of the RLE / bit-packed hybrid encoding (bit width ``bw`` <= 32) from
    ``buf[pos:end]`` into ``out``; returns the position after them, or -1 on a malformed run."""
    i = 0
    nb = (bw + 7) // 8
    mask = (np.int64(1) << bw) - 1
    while i < n:
        if pos >= end:
            return -1
        h = np.int64(0)
        s = 0
        while True:
            if pos >= end or s > 35:
                return -1
            x = np.int64(buf[pos])
            pos += 1
            h |= (x & 0x7F) << s
            s += 7
            if x < 0x80:
                break
        if h & 1:  # bit-packed: (h >> 1) groups of 8 values, least significant bit first
            count = (h >> 1) * 8
            nbytes = (h >> 1) * bw
            if pos + nbytes > end:
                return -1
            for j in range(count):
                if i + j >= n:
                    break
                bit = j * bw
                v = np.int64(0)
                for k in range(5):  # bw + 7 <= 39 bits: at most 5 bytes
                    q = pos + bit // 8 + k
                    if q < pos + nbytes:
                        v |= np.int64(buf[q]) << (8 * k)
                out[i + j] = (v >> (bit % 8)) & mask
            i += count
            pos += nbytes
        else:  # a run of one value
            count = h >> 1
            if pos + nb > end:
                return -1
            v = np.int64(0)
            for k in range(nb):
                v |= np.int64(buf[pos + k]) << (8 * k)
            pos += nb
            for j in range(min(count, n - i)):
                out[i + j] = v
            i += count
    return pos


@njit(cache=True, nogil=True)
def _rows_of(defs, max_def, vidx):
    """Row -> value index (-1 for NULL rows: definition level below ``max_def``), values numbered in
    order from ``vidx`` (dictionary pages: the decoded indices)."""
    n = defs.shape[0]
    out = np.empty(n, np.int64)
    j = 0
    for r in range(n):
        if defs[r] == max_def:
            out[r] = vidx[j] if vidx.shape[0] else j
            j += 1
        else:
            out[r] = -1
    return out


# ------------------------------------------------------------------------------- pages
class Values:
    """Values of a page, no NULLs. ``arr``: what the count kernel reads, a large_binary Arrow array over
    the page buffer itself (no copy): every value but the last is followed by 4 NUL bytes (the next
    value's length prefix, zeroed), which changes no count: a phrase never holds a NUL (see
    :func:`lakeql.ngrams.colscan.pattern_text`), a NUL separates words as the end of a row does.
    :meth:`take` gives the exact texts of some values (copied back to back)."""

    def __init__(self, arr, buf: np.ndarray | None = None, starts=None, lens=None) -> None:
        self.arr, self.buf, self.starts, self.lens = arr, buf, starts, lens

    def __len__(self) -> int:
        return len(self.arr)

    def take(self, idx: np.ndarray):
        import pyarrow as pa

        idx = np.asarray(idx, np.int64)
        if self.buf is None:
            return self.arr.take(pa.array(idx, pa.int64()))
        starts, lens = self.starts[idx], self.lens[idx]
        offs = np.zeros(idx.shape[0] + 1, np.int64)
        np.cumsum(lens, out=offs[1:])
        data = np.empty(max(int(offs[-1]), 1), np.uint8)
        _compact(self.buf, starts, lens, data, offs)
        return pa.Array.from_buffers(
            pa.large_binary(), idx.shape[0], [None, pa.py_buffer(offs), pa.py_buffer(data)]
        )


def _values(buf: np.ndarray, pos: int, end: int, n: int) -> Values:
    """``n`` PLAIN values at ``buf[pos:end]`` (``buf`` writable: the gaps are zeroed in place)."""
    import pyarrow as pa

    starts, lens = _plain_offsets(buf, pos, end, n)
    if n and starts[0] < 0:
        raise Declined("malformed PLAIN values")
    if n == 0:
        return Values(pa.array([], pa.large_binary()))
    _zero_gaps(buf, starts)
    offs = np.empty(n + 1, np.int64)
    offs[:n] = starts
    offs[n] = starts[n - 1] + lens[n - 1]
    arr = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offs), pa.py_buffer(buf)])
    return Values(arr, buf, starts, lens)


def _decompress(codec, raw: memoryview, size: int) -> np.ndarray:
    """A page's bytes, writable (the value gaps are zeroed in place)."""
    if codec is None:
        return np.frombuffer(raw, np.uint8).copy()
    out = codec.decompress(raw, decompressed_size=size)
    if out.size != size:
        raise Declined("page size differs from its header")
    arr = np.frombuffer(out, np.uint8)
    return arr if arr.flags.writeable else arr.copy()


def chunk_pieces(fh, md, group: int, leaf: int) -> list[tuple[int, Values, np.ndarray | None]]:
    """The column ``leaf`` of row group ``group`` as pieces (rows, values, index): ``values`` a
    :class:`Values`; ``index`` None (row i is value i) or int64 row -> value (-1: NULL). Raises
    :class:`Declined` for what this reader does not handle."""
    import pyarrow as pa

    rg = md.row_group(group)
    cc = rg.column(leaf)
    col = md.schema.column(leaf)
    if col.physical_type != "BYTE_ARRAY" or col.max_repetition_level != 0 or col.max_definition_level > 1:
        raise Declined("not a flat BYTE_ARRAY column")
    max_def = int(col.max_definition_level)
    name = cc.compression
    if name not in CODECS:
        raise Declined(f"codec {name}")
    codec = pa.Codec(CODECS[name]) if CODECS[name] else None
    start = cc.data_page_offset
    if cc.has_dictionary_page and cc.dictionary_page_offset and 0 < cc.dictionary_page_offset < start:
        start = cc.dictionary_page_offset
    size = int(cc.total_compressed_size)
    # the footer is the file's word too: a chunk outside the file must not make us allocate its claim
    if not (0 <= start and 0 <= size and start + size <= os.fstat(fh.fileno()).st_size):
        raise Declined("column chunk outside the file")
    raw = os.pread(fh.fileno(), size, start)
    if len(raw) != size:
        raise Declined("short read")
    view = memoryview(raw)
    want_rows, rows = int(rg.num_rows), 0
    # no page decompresses to more than its whole chunk (the footer's figure, as pyarrow trusts it)
    max_page = max(int(cc.total_uncompressed_size), 0)
    pieces: list[tuple[int, Values, np.ndarray | None]] = []
    dictionary = None
    i = 0
    try:
        while i < size and rows < want_rows:
            h, i = _struct(raw, i, _HEADER)
            ptype, usize, csize = h.get(1), h.get(2), h.get(3)
            if ptype is None or usize is None or csize is None or csize < 0 or i + csize > size:
                raise Declined("bad page header")
            if not 0 <= usize <= max_page:  # a hostile header must not make us allocate gigabytes
                raise Declined("page larger than its column chunk")
            body = view[i : i + csize]
            i += csize
            if ptype == INDEX_PAGE:
                continue
            if ptype == DICTIONARY_PAGE:
                d = h.get(7) or {}
                if d.get(2, PLAIN) not in (PLAIN, PLAIN_DICTIONARY):
                    raise Declined("dictionary encoding")
                buf = _decompress(codec, body, usize)
                nd = int(d.get(1, 0))
                if not 0 <= nd <= buf.shape[0] // 4:  # every value has a 4-byte length
                    raise Declined("dictionary size")
                dictionary = _values(buf, 0, buf.shape[0], nd)
                continue
            if ptype == DATA_PAGE:
                d = h.get(5)
                if d is None:
                    raise Declined("data page without its header")
                n, enc = int(d.get(1, 0)), d.get(2)
                if not 0 <= n <= want_rows - rows:  # a flat column: one value or NULL per row
                    raise Declined("page holds more rows than its row group")
                buf = _decompress(codec, body, usize)
                pos, end = 0, buf.shape[0]
                defs = None
                if max_def:
                    if d.get(3, RLE) != RLE or pos + 4 > end:
                        raise Declined("definition levels")
                    ln = int.from_bytes(bytes(buf[:4]), "little")
                    if 4 + ln > end:  # the decoders index the buffer unchecked: stay inside it
                        raise Declined("definition levels")
                    defs = np.empty(n, np.int64)
                    if _hybrid(buf, 4, 4 + ln, 1, n, defs) < 0:
                        raise Declined("definition levels")
                    pos = 4 + ln
            elif ptype == DATA_PAGE_V2:
                d = h.get(8)
                if d is None:
                    raise Declined("data page v2 without its header")
                n, nulls, enc = int(d.get(1, 0)), int(d.get(2, 0)), d.get(4)
                if not 0 <= n <= want_rows - rows:
                    raise Declined("page holds more rows than its row group")
                dl, rl = int(d.get(5, 0)), int(d.get(6, 0))
                if rl or not 0 <= dl <= csize:
                    raise Declined("levels of data page v2")
                lv = np.frombuffer(body[:dl], np.uint8)
                rest = body[dl:]
                buf = _decompress(codec if d.get(7, True) else None, rest, usize - dl)
                pos, end = 0, buf.shape[0]
                defs = None
                if max_def:
                    defs = np.empty(n, np.int64)
                    if _hybrid(lv, 0, dl, 1, n, defs) < 0:
                        raise Declined("definition levels")
                elif nulls:
                    raise Declined("NULLs in a required column")
            else:
                raise Declined(f"page type {ptype}")
            nvals = n if defs is None else int(np.count_nonzero(defs == max_def))
            if enc == PLAIN:
                vals = _values(buf, pos, end, nvals)
                index = None if defs is None else _rows_of(defs, max_def, np.empty(0, np.int64))
            elif enc in (PLAIN_DICTIONARY, RLE_DICTIONARY):
                if dictionary is None or pos >= end and nvals:
                    raise Declined("dictionary indices without a dictionary")
                vidx = np.empty(nvals, np.int64)
                if nvals:
                    bw = int(buf[pos])
                    if bw > 32 or _hybrid(buf, pos + 1, end, bw, nvals, vidx) < 0:
                        raise Declined("dictionary indices")
                    if int(vidx.min()) < 0 or int(vidx.max()) >= len(dictionary):
                        raise Declined("dictionary index out of range")
                vals = dictionary
                index = vidx if defs is None else _rows_of(defs, max_def, vidx)
            else:
                raise Declined(f"encoding {enc}")
            pieces.append((n, vals, index))
            rows += n
    except (IndexError, ValueError, OSError, pa.ArrowException) as exc:
        raise Declined(f"unreadable page: {exc}") from None
    if rows != want_rows:
        raise Declined("row count of the pages differs from the footer")
    return pieces
