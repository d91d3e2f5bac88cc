"""One FM-index shard: build it from a block of rows, write it as plain ``.npy`` files, memory-map it back.

A shard's text is the UTF-8 bytes of consecutive rows, each followed by a NUL separator. The suffix
array comes from ``pydivsufsort``; everything else (BWT, Huffman-shaped wavelet tree over RRR bitvectors,
SA samples every ``sample_rate`` rows, the row map) is built here (see :mod:`lakeql.ngrams.kernels`).

Files of a shard folder::

    meta.json       n, p0, sample_rate, row_base, n_rows, root, format
    tree.npz        C (257 cumulative counts), code / code_len / path_node (Huffman code of each byte),
                    child (internal nodes' children; leaf = -1 - byte), node_off, node_ones0
    classes.npy     RRR block classes (uint8)        offsets.npy  RRR block offsets (uint64 bitstream)
    sup.npy         RRR superblocks (uint64 [k, 2])  samples.npy  SA samples (uint32)
    isa.npy         bit-packed SA row of every ``isa_rate``-th text position (to extract snippets)
    rows.npy        row start offsets in the text (uint32, n_rows + 1 entries, last = n)
    sa.npy          the full suffix array (uint32), only with ``--ngram-mode fast``
    scan.lz4, scan_blocks.npy   the scan tier (:mod:`lakeql.ngrams.scantier`), with ``--ngram-scan``
    words/          a shard of the same format over the rows' reversed word stream (``--ngram-words``)
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakeql.errors import CorruptIndexError, LakeqlError

FORMAT = 1
SEP = 0  # the byte that ends every row
ISA_RATE = 128  # every 128th text position keeps its SA row, to extract text (snippets)


def huffman(freq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Huffman-shaped wavelet tree layout for byte frequencies.

    Returns (code uint64[256], code_len uint8[256], path_node int32[256, L], child int32[k, 2],
    node_len int64[k], root). Internal nodes are numbered 0..k-1 with the root 0; a tree over a single
    symbol gets one internal node whose children are both that symbol (every code is 1 bit).
    """
    syms = [int(s) for s in np.nonzero(freq)[0]]
    code = np.zeros(256, dtype=np.uint64)
    code_len = np.zeros(256, dtype=np.uint8)
    if not syms:
        return code, code_len, np.zeros((256, 1), np.int32), np.zeros((0, 2), np.int32), \
            np.zeros(0, np.int64), 0
    heap: list[tuple[int, int, object]] = [(int(freq[s]), i, ("leaf", s)) for i, s in enumerate(syms)]
    heapq.heapify(heap)
    tick = len(heap)
    if len(heap) == 1:
        only = heap[0][2]
        heap = [(heap[0][0], tick, ("node", only, only))]
    while len(heap) > 1:
        a = heapq.heappop(heap)
        b = heapq.heappop(heap)
        tick += 1
        heapq.heappush(heap, (a[0] + b[0], tick, ("node", a[2], b[2])))
    child_rows: list[list[int]] = []
    lengths: list[int] = []
    paths: dict[int, list[int]] = {}

    def visit(nd: tuple, path: list[int], bits: int, depth: int) -> tuple[int, int]:
        """Number internal node ``nd`` (pre-order); returns (its id or -1-byte for a leaf, weight)."""
        if nd[0] == "leaf":
            s = nd[1]
            if s not in paths:
                paths[s], code[s], code_len[s] = path, bits, depth
            return -1 - s, int(freq[s])
        v = len(child_rows)
        child_rows.append([0, 0])
        lengths.append(0)
        left, wl = visit(nd[1], path + [v], bits << 1, depth + 1)
        right, wr = visit(nd[2], path + [v], (bits << 1) | 1, depth + 1)
        child_rows[v] = [left, right]
        lengths[v] = wl + wr if nd[1] is not nd[2] else wl
        return v, lengths[v]

    visit(heap[0][2], [], 0, 0)
    child = np.asarray(child_rows, dtype=np.int32).reshape(-1, 2)
    width = max(1, int(code_len.max()))
    path_node = np.zeros((256, width), dtype=np.int32)
    for s, path in paths.items():
        path_node[s, :len(path)] = path
    return code, code_len, path_node, child, np.asarray(lengths, dtype=np.int64), 0


def codes_from_tree(child: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each byte's code, code length and internal-node path, read back from the children table."""
    code = np.zeros(256, dtype=np.uint64)
    code_len = np.zeros(256, dtype=np.uint8)
    paths: dict[int, list[int]] = {}
    stack: list[tuple[int, list[int], int]] = [(0, [], 0)] if len(child) else []
    while stack:
        v, path, bits = stack.pop()
        for bit in (0, 1):
            nxt = int(child[v, bit])
            b = (bits << 1) | bit
            if nxt < 0:
                s = -1 - nxt
                if s not in paths:
                    paths[s] = path + [v]
                    code[s], code_len[s] = b, len(path) + 1
            else:
                stack.append((nxt, path + [v], b))
    path_node = np.zeros((256, max(1, int(code_len.max()))), dtype=np.int32)
    for s, pth in paths.items():
        path_node[s, :len(pth)] = pth
    return code, code_len, path_node


@dataclass
class BuildStats:
    n: int
    bytes: int
    seconds: float


def build_shard(text: np.ndarray, row_starts: np.ndarray, row_base: int, out: Path, *,
                sample_rate: int = 32, fast: bool = False, isa_rate: int = ISA_RATE) -> BuildStats:
    """Build the FM-index of ``text`` (uint8, rows each ending in NUL) into folder ``out``."""
    from pydivsufsort import divsufsort

    from lakeql.ngrams import kernels as K

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    n = int(text.shape[0])
    if n == 0:
        raise ValueError("a shard needs at least one row")
    if not text.flags.writeable:
        text = text.copy()
    sa = divsufsort(text)
    bwt, p0, samples, full, isa = K.bwt_from_sa(text, sa, sample_rate, fast, isa_rate)
    del sa
    freq = np.bincount(text, minlength=256).astype(np.int64)
    code, code_len, path_node, child, node_len, root = huffman(freq)
    node_off = np.zeros(len(node_len), dtype=np.int64)
    if len(node_len):
        node_off[1:] = np.cumsum(node_len)[:-1]
    nbits = int(node_len.sum())
    words = K.wt_fill(bwt, code, code_len, path_node, node_off, nbits)
    del bwt
    node_ones0 = _ones_before(words, node_off)
    classes, offsets, sup = K.rrr_build(words, K.BINOM, K.WIDTH)
    del words
    C = np.zeros(257, dtype=np.int64)
    C[1:] = np.cumsum(freq)
    C += 1  # row 0 is the '$' suffix
    np.savez(out / "tree.npz", C=C, child=child, node_off=node_off, node_ones0=node_ones0)
    np.save(out / "classes.npy", classes)
    np.save(out / "offsets.npy", offsets)
    # superblock entries are bit counts: 32-bit when the wavelet tree has < 2^32 bits (halves their size)
    np.save(out / "sup.npy", sup.astype(np.uint32) if int(sup[-1, 1]) < 2**32 - 1 and nbits < 2**32 - 1
            else sup)
    sample_w = max(1, int(n).bit_length())
    np.save(out / "samples.npy", K.pack_bits(samples, sample_w))
    np.save(out / "isa.npy", K.pack_bits(isa, sample_w))
    np.save(out / "rows.npy", row_starts.astype(np.uint32))
    if fast:
        np.save(out / "sa.npy", full)
    meta = {"format": FORMAT, "n": n, "p0": int(p0), "sample_rate": sample_rate, "row_base": int(row_base),
            "n_rows": int(len(row_starts) - 1), "root": int(root), "nbits": nbits, "fast": bool(fast),
            "sample_w": sample_w, "isa_rate": isa_rate}
    (out / "meta.json").write_text(json.dumps(meta))
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return BuildStats(n, size, time.perf_counter() - t0)


def _ones_before(words: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """1-bits of the packed bitvector before each position (the node starts)."""
    cum = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.bitwise_count(words), out=cum[1:])
    pos = positions.astype(np.int64)
    w = pos >> 6
    rem = (pos & 63).astype(np.uint64)
    safe = np.minimum(w, len(words) - 1) if len(words) else w
    partial = np.where(rem > 0, np.bitwise_count(words[safe] & ((np.uint64(1) << rem) - np.uint64(1))), 0) \
        if len(words) else np.zeros_like(pos)
    return cum[w] + partial.astype(np.int64)


class Shard:
    """A memory-mapped FM-index shard with count / locate / next-byte queries."""

    def __init__(self, folder: Path) -> None:
        from lakeql.ngrams import kernels as K

        self.folder = folder
        try:
            meta = json.loads((folder / "meta.json").read_text())
            tree = _load_npz(folder / "tree.npz")
            self.C = tree["C"]
            self.child = tree["child"]
            self.code, self.code_len, self.path_node = codes_from_tree(self.child)
            self.node_off = tree["node_off"]
            self.node_ones0 = tree["node_ones0"]
            # memory-mapped, then viewed as plain ndarrays: numba dispatches those ~2x faster
            self.classes = _mmap(folder / "classes.npy")
            self.offsets = _mmap(folder / "offsets.npy")
            self.sup = _mmap(folder / "sup.npy")
            self.samples = _mmap(folder / "samples.npy")
            self.isa = _mmap(folder / "isa.npy")
            self.rows = _mmap(folder / "rows.npy")
            self.sa = _mmap(folder / "sa.npy") if meta.get("fast") else None
            self.n = int(meta["n"])
            self.p0 = int(meta["p0"])
            self.sample_rate = int(meta["sample_rate"])
            self.sample_w = int(meta["sample_w"])
            self.isa_rate = int(meta["isa_rate"])
            self.row_base = int(meta["row_base"])
            self.n_rows = int(meta["n_rows"])
            self.root = int(meta["root"])
            nbits = int(meta["nbits"])
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # not damage: rebuilding would not help
                raise LakeqlError(
                    f"too many open files while opening n-gram index shard {str(folder)!r} (each "
                    f"shard over 1 MB keeps its arrays mapped): raise the limit of open files "
                    f"('ulimit -n', now {_nofile()}) or index fewer, larger files") from None
            raise CorruptIndexError(f"n-gram index shard {str(folder)!r} is unreadable ({exc})") from None
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise CorruptIndexError(f"n-gram index shard {str(folder)!r} is unreadable ({exc})") from None
        n_samples = self.n // self.sample_rate + 1
        ok = (self.classes.shape[0] == (nbits + 63) // 64 and self.sup.shape[0] == self.classes.shape[0]
              // K.SB + 2 and self.samples.shape[0] == (n_samples * self.sample_w) // 64 + 2
              and self.rows.shape[0] == self.n_rows + 1 and int(self.rows[-1]) == self.n
              and self.isa.shape[0] == (((self.n - 1) // self.isa_rate + 1) * self.sample_w) // 64 + 2
              and self.C.shape[0] == 257 and int(self.C[256]) == self.n + 1
              and int(self.sup[-1, 1]) <= self.offsets.shape[0] * 64
              and (self.sa is None or self.sa.shape[0] == self.n + 1))
        if not ok:
            raise CorruptIndexError(f"n-gram index shard {str(folder)!r} fails its consistency check")
        self._K = K
        self._args = (self.C, self.p0, self.code, self.code_len, self.path_node, self.node_off,
                      self.node_ones0, self.classes, self.offsets, self.sup, K.BINOM, K.WIDTH, self.n)

    def range(self, pat: np.ndarray) -> tuple[int, int]:
        """SA rows [sp, ep) of the suffixes starting with ``pat``."""
        return self._K.backward_search(pat, *self._args)

    def count(self, pat: np.ndarray) -> int:
        sp, ep = self.range(pat)
        return ep - sp

    def positions(self, sp: int, ep: int) -> np.ndarray:
        """Text positions (int64, unsorted) of SA rows [sp, ep)."""
        if ep <= sp:
            return np.empty(0, dtype=np.int64)
        if self.sa is not None:
            return np.asarray(self.sa[sp:ep], dtype=np.int64)
        K = self._K
        return K.locate(sp, ep, self.C, self.p0, self.child, self.root, self.samples, self.sample_w,
                        self.sample_rate, self.node_off, self.node_ones0, self.classes, self.offsets,
                        self.sup, K.BINOM, K.WIDTH)

    def extract(self, a: int, b: int) -> bytes:
        """Shard text bytes [a, b), decoded from the index (no Parquet read)."""
        a, b = max(0, a), min(self.n, b)
        if b <= a:
            return b""
        K = self._K
        return K.extract(a, b, self.n, self.isa, self.sample_w, self.isa_rate, self.C, self.p0, self.child,
                         self.root, self.node_off, self.node_ones0, self.classes, self.offsets, self.sup,
                         K.BINOM, K.WIDTH).tobytes()

    def next_counts(self, pat: np.ndarray) -> np.ndarray:
        return self._K.next_counts(pat, *self._args)

    def step(self, c: int, sp: int, ep: int) -> tuple[int, int]:
        """SA range of ``c + P`` given the range [sp, ep) of ``P`` (one backward-search step)."""
        return self._K.backward_step(c, sp, ep, *self._args[:-1])

    def children(self, sp: int, ep: int) -> np.ndarray:
        """Each byte c preceding the suffixes of rows [sp, ep), with the range of ``c + P``: int64 [k, 3]."""
        K = self._K
        return K.range_children(sp, ep, self.C, self.p0, self.child, self.root, self.node_off,
                                self.node_ones0, self.classes, self.offsets, self.sup, K.BINOM, K.WIDTH)

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())


# Arrays below this size are read into memory, not memory-mapped: a mapping holds a file descriptor
# for the life of the shard, and a table of many small files has many shards of 7-13 arrays each
# (2,000 one-row files ran out of the usual 1,024 descriptors at about 80 files).
MMAP_MIN_BYTES = 1 << 20


def _nofile() -> str:
    import resource

    return str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _mmap(path: Path) -> np.ndarray:
    with open(path, "rb") as f:  # one open and fstat: a table of 2,000 files has ~28,000 such arrays
        size = os.fstat(f.fileno()).st_size
        if size < MMAP_MIN_BYTES:
            buf = bytearray(size)
            if f.readinto(buf) != size:
                raise ValueError(f"{path.name} is shorter than its size (truncated while read?)")
            return npy_from_bytes(buf, path.name)
    return np.asarray(np.load(path, mmap_mode="r"))


# the header numpy writes for a plain array ('descr' a simple dtype, C order): parsed without
# ast.literal_eval, which took most of the time of opening many small shards; anything else (a
# structured dtype, Fortran order, another writer's spacing) goes through np.lib.format
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|=][a-zA-Z][0-9]*)', 'fortran_order': False, "
                         rb"'shape': \(((?:[0-9]+, ?)*[0-9]*)\), \} *\n?")


def npy_from_bytes(buf: bytearray, name: str) -> np.ndarray:
    """The array of a whole ``.npy`` file read into ``buf`` (writable and aligned, as ``np.load`` gives:
    numba compiles a kernel per array flavour). Damage raises ValueError, as ``np.load`` does."""
    import io

    if bytes(buf[:6]) != b"\x93NUMPY" or len(buf) < 10:
        raise ValueError(f"{name} is not a .npy file")
    major = buf[6]
    if major == 1:
        hlen, start = int.from_bytes(buf[8:10], "little"), 10
    elif major in (2, 3) and len(buf) >= 12:
        hlen, start = int.from_bytes(buf[8:12], "little"), 12
    else:
        raise ValueError(f"{name}: .npy format version {major} is not supported")
    m = _NPY_HEADER.fullmatch(bytes(buf[start:start + hlen]))
    if m is None:  # not the plain header: numpy's own reader
        return np.load(io.BytesIO(bytes(buf)), allow_pickle=False)
    dtype = np.dtype(m.group(1).decode("ascii"))
    shape = tuple(int(x) for x in m.group(2).split(b",") if x.strip())
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    off = start + hlen
    if len(buf) - off != count * dtype.itemsize:
        raise ValueError(f"{name} holds {len(buf) - off} data bytes, {count * dtype.itemsize} expected "
                         "(truncated?)")
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=off).reshape(shape)
    return arr if arr.flags.aligned else arr.copy()


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (``np.savez``) by name, each header parsed as :func:`npy_from_bytes`."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return {n[:-4] if n.endswith(".npy") else n: npy_from_bytes(bytearray(z.read(n)), n)
                    for n in z.namelist()}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path.name}: {exc}") from None


def shard_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("shard-"))
