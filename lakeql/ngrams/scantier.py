"""The scan tier of a shard: its indexed text in LZ4 blocks, for the rows of very frequent phrases.

Locating an occurrence through the sampled suffix array costs tens of microseconds, so a phrase with
hundreds of thousands of occurrences is cheaper to find by scanning the text. Reading the column back
from Parquet is as slow as DuckDB's own ``contains`` scan (zstd pages, string decoding); this tier keeps
the shard text (exactly the indexed bytes: case-folded for an insensitive index, NUL after each row) as
LZ4 blocks of about ``BLOCK_BYTES`` cut at row boundaries (~0.3x the text for source code). A scan
decompresses and searches the blocks in a small thread pool (LZ4 and the numba kernel release the GIL),
so it runs at memory speed on every core.

Files: ``scan.lz4`` (the compressed blocks, back to back) and ``scan_blocks.npy`` (int64 [k, 4]: offset
and size of each block in ``scan.lz4``, first row and row count of each block).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK_BYTES = 1 << 20
CODEC = "lz4"


def write(text: np.ndarray, starts: np.ndarray, out: Path) -> int:
    """Write the scan tier of a shard (``text`` with rows at ``starts``); returns its bytes."""
    import pyarrow as pa

    codec = pa.Codec(CODEC)
    starts = np.asarray(starts, dtype=np.int64)
    n_rows = starts.shape[0] - 1
    rows: list[tuple[int, int]] = []
    r = 0
    while r < n_rows:  # a block = whole rows up to BLOCK_BYTES (a longer row gets a block of its own)
        stop = int(np.searchsorted(starts, starts[r] + BLOCK_BYTES, side="right")) - 1
        stop = max(stop, r + 1)
        stop = min(stop, n_rows)
        rows.append((r, stop))
        r = stop
    meta = np.zeros((len(rows), 4), dtype=np.int64)
    pos = 0
    with open(out / "scan.lz4", "wb") as f:
        for i, (a, b) in enumerate(rows):
            comp = codec.compress(pa.py_buffer(text[starts[a]:starts[b]]), asbytes=True)
            f.write(comp)
            meta[i] = (pos, len(comp), a, b - a)
            pos += len(comp)
    np.save(out / "scan_blocks.npy", meta)
    return pos + (out / "scan_blocks.npy").stat().st_size


class ScanTier:
    """The memory-mapped scan tier of one shard (``None`` from :func:`open_tier` when absent)."""

    def __init__(self, folder: Path, rows: np.ndarray) -> None:
        self.blocks = np.load(folder / "scan_blocks.npy")
        size = (folder / "scan.lz4").stat().st_size
        self.data = np.memmap(folder / "scan.lz4", dtype=np.uint8, mode="r") if size \
            else np.zeros(0, np.uint8)
        self.rows = rows
        b = self.blocks
        if b.ndim != 2 or b.shape[1] != 4 or int((b[:, 0] + b[:, 1]).max(initial=0)) > size \
                or int(b[:, 3].sum()) != rows.shape[0] - 1:
            raise ValueError(f"the scan tier of {str(folder)!r} does not match its shard")

    def scan_block(self, i: int, pats: list[np.ndarray], anchors: list[int], need_counts: bool = True
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per pattern: (local row ids, occurrences, first offset) of block ``i``'s rows containing it.

        The block is decompressed once for all patterns. ``anchors``: per pattern, the byte to test
        first (its rarest byte: few candidates to verify). Without ``need_counts`` every row stops at
        its first match and reports 1 occurrence (enough for row counts).
        """
        import pyarrow as pa

        from lakeql.ngrams.kernels import count_byte_rows, verify_candidates

        off, size, r0, nr = (int(x) for x in self.blocks[i])
        starts = np.asarray(self.rows[r0:r0 + nr + 1], dtype=np.int64)
        raw = int(starts[-1] - starts[0])
        buf = pa.Codec(CODEC).decompress(pa.py_buffer(self.data[off:off + size]), decompressed_size=raw)
        text = np.frombuffer(buf, dtype=np.uint8)
        local = starts - starts[0]
        out = []
        for pat, anchor in zip(pats, anchors, strict=True):
            if pat.shape[0] == 1:
                counts, first = count_byte_rows(text, local, pat[0], need_counts)
            else:
                cand = np.flatnonzero(text == pat[anchor])  # SIMD compare, then verify the candidates
                counts, first = verify_candidates(text, local, pat, anchor, cand, need_counts)
            hit = np.flatnonzero(counts)
            out.append((hit + r0, counts[hit], first[hit]))
        return out


def open_tier(folder: Path, rows: np.ndarray) -> ScanTier | None:
    """The scan tier of a shard folder, or None when the shard was built without one."""
    if not (folder / "scan_blocks.npy").exists():
        return None
    return ScanTier(folder, rows)
