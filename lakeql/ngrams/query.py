"""Queries over a sharded FM-index: counts, rows containing a phrase, snippets, next characters.

An :class:`NgramIndex` is loaded once per connection (cached in ``LakeContext.cache`` under
``(kind, table, column, built_at)``, so a rebuild is picked up) and memory-maps its shards. Snippets are
decoded from the index itself (LF walks from sampled inverse-SA positions), so no Parquet is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakeql.errors import CorruptIndexError, LakeqlError
from lakeql.lake import Table
from lakeql.ngrams.builder import FLAG, KIND, text_column
from lakeql.ngrams.fmindex import SEP, Shard, shard_dirs

SNIPPET_BYTES = 80
# Cost model for row lookups in compressed mode (measured on the 2-core benchmark machine): locating one
# occurrence walks ~32 LF steps (~30 us); a brute-force scan of the column runs at ~150 MB/s.
LOCATE_SECONDS = 30e-6
SCAN_BYTES_PER_SECOND = 150e6


@dataclass
class Hits:
    """Occurrences of a phrase: global row ids and byte offsets inside the row (same length)."""

    rowids: np.ndarray
    offsets: np.ndarray


class NgramIndex:
    """All shards of one column's index, queried together."""

    def __init__(self, root: Path, table: Table, column: str, case: str) -> None:
        self.root = root
        self.table = table
        self.column = column
        self.case = case
        dirs = shard_dirs(root)
        try:
            meta = json.loads((root / "index.json").read_text())
        except (OSError, ValueError) as exc:
            raise CorruptIndexError(
                f"the n-gram index of {table.key}.{column} is unreadable ({exc}): rebuild it with "
                f"'lakeql index LAKE {FLAG} {table.key}.{column}'") from None
        if int(meta.get("shards", -1)) != len(dirs):
            raise CorruptIndexError(
                f"the n-gram index of {table.key}.{column} has {len(dirs)} shard folders, expected "
                f"{meta.get('shards')}: rebuild it with 'lakeql index LAKE {FLAG} {table.key}.{column}'")
        try:
            self.shards = [Shard(d) for d in dirs]
        except CorruptIndexError as exc:
            raise CorruptIndexError(f"{exc}: rebuild it with 'lakeql index LAKE {FLAG} "
                                    f"{table.key}.{column}'") from None
        self.n_rows = int(meta.get("n_rows", 0))
        self.row_bases = np.array([s.row_base for s in self.shards], dtype=np.int64)
        self.text_bytes = int(meta.get("text_bytes", 0))

    # ------------------------------------------------------------------ phrases
    def encode(self, phrase: str | bytes) -> np.ndarray:
        """The phrase as the bytes the index holds (ASCII-folded for a case-insensitive index)."""
        raw = phrase.encode("utf-8", "surrogatepass") if isinstance(phrase, str) else bytes(phrase)
        if not raw:
            raise LakeqlError("the phrase is empty: pass at least one character")
        pat = np.frombuffer(raw, dtype=np.uint8).copy()
        if self.case == "insensitive":
            upper = (pat >= 65) & (pat <= 90)
            pat[upper] += 32
        return pat

    # ------------------------------------------------------------------ queries
    def count(self, pat: np.ndarray) -> int:
        """All occurrences (overlapping ones too) inside rows."""
        if SEP in pat:  # a NUL could match across the row separator: locate and keep in-row matches
            return int(len(self.hits(pat).rowids))
        return sum(s.count(pat) for s in self.shards)

    def hits(self, pat: np.ndarray) -> Hits:
        """Every occurrence as (row id, offset in row)."""
        rid, off = [], []
        m = len(pat)
        for s in self.shards:
            sp, ep = s.range(pat)
            if ep <= sp:
                continue
            pos = s.positions(sp, ep)
            rows = np.asarray(s.rows)
            r = np.searchsorted(rows, pos, side="right") - 1
            if SEP in pat:
                keep = pos + m <= rows[r + 1] - 1  # must end before the row's separator
                pos, r = pos[keep], r[keep]
            rid.append(r + s.row_base)
            off.append(pos - rows[r])
        if not rid:
            return Hits(np.empty(0, np.int64), np.empty(0, np.int64))
        return Hits(np.concatenate(rid).astype(np.int64), np.concatenate(off).astype(np.int64))

    def row_counts(self, pat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row containing the phrase: (row ids ascending, occurrences, first offset in the row).

        Through the index (locate every occurrence) unless the phrase is so frequent that walking the
        sampled suffix array would cost more than one scan of the column (see :meth:`use_scan`).
        """
        if self.use_scan(pat):
            return self._scan(pat)
        h = self.hits(pat)
        if h.rowids.shape[0] == 0:
            e = np.empty(0, np.int64)
            return e, e, e
        if self.n_rows <= 16 * h.rowids.shape[0]:  # dense: one pass over per-row arrays, no sort
            from lakeql.ngrams.kernels import group_rows

            counts, first = group_rows(h.rowids, h.offsets, self.n_rows)
            uniq = np.nonzero(counts)[0]
            return uniq, counts[uniq], first[uniq]
        order = np.lexsort((h.offsets, h.rowids))
        rid, off = h.rowids[order], h.offsets[order]
        uniq, first, counts = np.unique(rid, return_index=True, return_counts=True)
        return uniq, counts, off[first]

    def use_scan(self, pat: np.ndarray) -> bool:
        """True when locating ``count`` occurrences (~LOCATE_SECONDS each) costs more than a scan."""
        if all(s.sa is not None for s in self.shards):
            return False
        occ = self.count(pat)
        return occ * LOCATE_SECONDS > self.text_bytes / SCAN_BYTES_PER_SECOND

    def _scan(self, pat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from lakeql.ngrams.builder import arrow_buffers, fold_ascii, table_batches
        from lakeql.ngrams.kernels import scan_rows

        rid, cnt, off = [], [], []
        base = 0
        for arr in table_batches(self.table, self.column):
            data, offs = arrow_buffers(arr)
            if self.case == "insensitive":
                data = data.copy()
                fold_ascii(data)
            counts, first = scan_rows(data, offs, pat)
            hit = np.nonzero(counts)[0]
            rid.append(hit + base)
            cnt.append(counts[hit])
            off.append(first[hit])
            base += len(offs) - 1
        if not rid:
            e = np.empty(0, np.int64)
            return e, e, e
        return np.concatenate(rid), np.concatenate(cnt), np.concatenate(off)

    def rows(self, pat: np.ndarray) -> int:
        """Number of rows that contain the phrase."""
        return int(self.row_counts(pat)[0].shape[0])

    def top_rows(self, pat: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Up to k rows with the most occurrences: (row ids, occurrences, first offset), best first."""
        uniq, counts, first = self.row_counts(pat)
        best = np.lexsort((uniq, -counts))[:k]
        return uniq[best], counts[best], first[best]

    def row_text(self, rowid: int, a: int, b: int) -> tuple[bytes, int]:
        """Bytes [a, b) of row ``rowid`` (clipped to the row) from the index, and the row's length."""
        k = int(np.searchsorted(self.row_bases, rowid, side="right")) - 1
        s = self.shards[k]
        r = rowid - s.row_base
        start, end = int(s.rows[r]), int(s.rows[r + 1]) - 1  # end excludes the separator
        a, b = max(0, a), min(end - start, b)
        return (s.extract(start + a, start + b) if b > a else b""), end - start

    def snippet(self, rowid: int, offset: int, length: int, width: int = SNIPPET_BYTES) -> str:
        """About ``width`` bytes around the match at ``offset`` of row ``rowid``, read from the index.

        A case-insensitive index holds ASCII-lower-cased text, so its snippets are lower-cased too.
        """
        side = max(0, (width - length) // 2)
        a = max(0, offset - side)
        text, row_len = self.row_text(rowid, a - 3, offset + length + side + 3)  # 3: UTF-8 slack
        lo = a - max(0, a - 3)
        return snippet_of(text, lo, lo + (min(row_len, offset + length + side) - a), a > 0,
                          offset + length + side < row_len)

    def next_bytes(self, pat: np.ndarray) -> np.ndarray:
        """Occurrences of ``pat + b`` for every byte b (int64[256])."""
        out = np.zeros(256, dtype=np.int64)
        for s in self.shards:
            out += s.next_counts(pat)
        return out

    def next_chars(self, pat: np.ndarray, k: int) -> list[tuple[str, int]]:
        """The k most frequent next UTF-8 characters after ``pat`` (row ends not counted)."""
        found: list[tuple[str, int]] = []
        self._extend(pat, b"", found)
        found.sort(key=lambda t: (-t[1], t[0]))
        return found[:k]

    def _extend(self, pat: np.ndarray, prefix: bytes, found: list[tuple[str, int]]) -> None:
        counts = self.next_bytes(pat)
        need = _utf8_len(prefix[0]) if prefix else 0
        for b in np.nonzero(counts)[0]:
            b = int(b)
            if not prefix and b == SEP:
                continue
            seq = prefix + bytes([b])
            if prefix and (b & 0xC0) != 0x80:  # broken sequence: report the bytes
                found.append((_show(seq), int(counts[b])))
                continue
            full = _utf8_len(b) if not prefix else need
            if full <= 1 or len(seq) == full:
                found.append((_show(seq), int(counts[b])))
            else:
                self._extend(np.append(pat, np.uint8(b)), seq, found)


def _utf8_len(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 1  # a continuation or invalid byte on its own


def _show(seq: bytes) -> str:
    try:
        return seq.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in seq)


# -------------------------------------------------------------------------------- snippets
def snippet_of(text: bytes, s0: int, e0: int, cut_left: bool, cut_right: bool) -> str:
    """``text[s0:e0]`` widened to whole UTF-8 characters, on one line, with ``…`` where cut."""
    while 0 < s0 < len(text) and (text[s0] & 0xC0) == 0x80:
        s0 -= 1
    while e0 < len(text) and (text[e0] & 0xC0) == 0x80:
        e0 += 1
    body = text[s0:e0].decode("utf-8", "replace")
    body = body.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return ("…" if cut_left else "") + body + ("…" if cut_right else "")


# -------------------------------------------------------------------------------- loading
def load(ctx, table_name: str, column: str) -> NgramIndex:
    """The (cached) index of ``table_name.column`` or a clear error naming the fix."""
    if table_name is None or column is None:
        raise LakeqlError("table and column must not be NULL")
    table = ctx.table(table_name)
    col = text_column(ctx.catalog, table, column)
    return ctx.load_index(
        KIND, table, col,
        lambda path, entry: NgramIndex(path, table, col, entry.params_dict.get("case", "sensitive")),
        flag=FLAG)
