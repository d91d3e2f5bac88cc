"""Queries over a sharded FM-index: counts, rows containing a phrase, snippets, next characters.

An :class:`NgramIndex` is loaded once per connection (cached by the connection's index cache under
``(kind, table, column, built_at)``, so a rebuild is picked up) and memory-maps its shards. It has one
:class:`Layer` per unit: the characters, and (format 2) the word stream, whose rows are indexed reversed.
Rows of a phrase come from locating its occurrences, or, when that would cost more, from one pass over
the layer's scan tier (:mod:`lakeql.ngrams.scantier`) in a shared thread pool. Snippets are decoded from
the index itself (LF walks from sampled inverse-SA positions), so no Parquet is read. Nothing here is
mutated after loading: any number of threads may query one index.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeql import arrays
from lakeql.cliargs import shell_word
from lakeql.errors import CorruptIndexError, LakeqlError, shown
from lakeql.lake import Table
from lakeql.ngrams import text as T
from lakeql.ngrams.builder import FLAG, KIND, text_column
from lakeql.ngrams.fileshards import layout, rebase
from lakeql.ngrams.fmindex import SEP, Shard
from lakeql.ngrams.scantier import ScanTier, open_tier

SNIPPET_BYTES = 80
# Cost model for row lookups (measured on the 2-core benchmark machine): locating one occurrence walks
# ~16 LF steps on average (~30 us); with the full suffix array (fast mode) it is a read and a binary
# search (~0.13 us). A scan of the Parquet column runs at ~150 MB/s of text; a scan of the LZ4 scan tier
# at ~0.5 GB/s of compressed blocks (~1.5 GB/s of text) on 2 threads.
LOCATE_SECONDS = 30e-6
LOCATE_SECONDS_SA = 0.13e-6
SCAN_BYTES_PER_SECOND = 150e6
TIER_BYTES_PER_SECOND = 0.5e9


@dataclass
class Hits:
    """Occurrences of a phrase: global row ids and byte offsets inside the row (same length)."""

    rowids: np.ndarray
    offsets: np.ndarray


@dataclass
class Layer:
    """One searchable text of the column: the characters, or the word stream (unit := 'word').

    ``shards`` are the FM-indexes, ``tiers`` their scan tiers (None when built without). The word
    stream is indexed with each row reversed (``reversed``): a phrase is searched reversed, and a
    backward-search step appends a byte on its right.
    """

    unit: str
    shards: list[Shard]
    tiers: list[ScanTier | None]
    reversed: bool

    def search_bytes(self, pat: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pat[::-1]) if self.reversed else pat


def _scan_pool() -> ThreadPoolExecutor:
    """The process-wide pool that scans scan-tier blocks (thread-safe; created once)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1),
                                       thread_name_prefix="lakeql-ngram-scan")
        return _POOL


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


class NgramIndex:
    """All shards of one column's index, queried together."""

    def __init__(self, root: Path, table: Table, column: str, case: str) -> None:
        self.root = root
        self.table = table
        self.column = column
        self.case = case
        try:
            meta = json.loads((root / "index.json").read_text())
            # per-file shards in row order and each file's row offset (None: an older index)
            dirs, offsets = layout(root, meta)
        except (OSError, ValueError, CorruptIndexError) as exc:
            raise CorruptIndexError(
                f"the n-gram index of {table.key}.{column} is unreadable ({exc}): rebuild it with "
                f"'lakeql index LAKE {FLAG} {shell_word(f'{table.key}.{column}')}'") from None
        if int(meta.get("shards", -1)) != len(dirs):
            raise CorruptIndexError(
                f"the n-gram index of {table.key}.{column} has {len(dirs)} shard folders, expected "
                f"{meta.get('shards')}: rebuild it with "
                f"'lakeql index LAKE {FLAG} {shell_word(f'{table.key}.{column}')}'")
        self.fold = meta.get("fold", "ascii") if case == "insensitive" else "none"
        try:
            self.shards = [Shard(d) for d in dirs]
            rebase(self.shards, offsets)
            tiers = [open_tier(d, s.rows) for d, s in zip(dirs, self.shards, strict=True)]
            self.chars = Layer("char", self.shards, tiers, False)
        except (CorruptIndexError, OSError, ValueError) as exc:
            raise CorruptIndexError(f"{exc}: rebuild it with 'lakeql index LAKE {FLAG} "
                                    f"{shell_word(f'{table.key}.{column}')}'") from None
        # the word layer opens on the first unit := 'word' query (as many arrays again as the characters:
        # half the first query of a table of many small files); its files were verified with the rest
        self._word_dirs = (dirs, offsets) if meta.get("words") else None
        self._words: Layer | None = None
        self._words_lock = threading.Lock()
        # opens the word layer the way the rest was opened: under the store's swap lock, its files
        # checked against the manifest row this index was loaded from (set by load(); None: directly)
        self.guard: Any = None
        self.n_rows = int(meta.get("n_rows", 0))
        self.row_bases = np.array([s.row_base for s in self.shards], dtype=np.int64)
        self.text_bytes = int(meta.get("text_bytes", 0))
        self.colscan = None  # a lakeql.ngrams.colscan.ColumnScan, attached by load() (needs the connection)

    @property
    def words(self) -> Layer | None:
        """The word layer (``unit := 'word'``), opened on first use; None when built without one."""
        if self._words is None and self._word_dirs is not None:
            with self._words_lock:
                if self._words is None:
                    self._words = self._open_words() if self.guard is None else self.guard(self._open_words)
        return self._words

    def _open_words(self, root: Path | None = None) -> Layer:
        """``root``: where the files this index was loaded from are now (a rebuild swapped others in and
        kept these aside until it records the new ones); None: where they were."""
        dirs, offsets = self._word_dirs
        try:
            if root is not None and root != self.root:
                dirs = [root / d.relative_to(self.root) for d in dirs]
            wsh = [Shard(d / "words") for d in dirs]
            rebase(wsh, offsets)
            tiers = [open_tier(d / "words", s.rows) for d, s in zip(dirs, wsh, strict=True)]
            return Layer("word", wsh, tiers, True)
        except (CorruptIndexError, OSError, ValueError) as exc:
            raise CorruptIndexError(f"{exc}: rebuild it with 'lakeql index LAKE {FLAG} "
                                    f"{shell_word(f'{self.table.key}.{self.column}')}'") from None

    # ------------------------------------------------------------------ phrases
    def layer(self, unit: str | None) -> Layer:
        """The layer of ``unit`` ('char' or 'word'), or a clear error."""
        u = (unit or "char").lower()
        if u == "char":
            return self.chars
        if u != "word":
            raise LakeqlError(f"unit must be 'char' or 'word', got {shown(unit)}")
        if self.words is None:  # opens the word layer (once)
            t = f"{self.table.key}.{self.column}"
            raise LakeqlError(f"the n-gram index of {t} has no word index: rebuild it with "
                              f"'lakeql index LAKE {FLAG} {shell_word(t)} --ngram-words'")
        return self.words

    def encode(self, phrase: str | bytes) -> np.ndarray:
        """The phrase as the bytes the index holds (case-folded for a case-insensitive index)."""
        if isinstance(phrase, str) and self.fold == "casefold":
            phrase = T.fold(phrase)
        raw = phrase.encode("utf-8", "surrogatepass") if isinstance(phrase, str) else bytes(phrase)
        if not raw:
            raise LakeqlError("the phrase is empty: pass at least one character")
        pat = np.frombuffer(raw, dtype=np.uint8).copy()
        if self.fold == "ascii":  # format-1 indexes folded ASCII only
            upper = (pat >= 65) & (pat <= 90)
            pat[upper] += 32
        return pat

    def word_list(self, phrase: str, allow_empty: bool = False) -> list[str]:
        """The words of a phrase (``\\w+`` runs, case-folded for an insensitive index)."""
        ws = T.words(phrase, folded=self.case == "insensitive")
        if not ws and not allow_empty:
            raise LakeqlError(f"the phrase {phrase[:40]!r} has no words (runs of letters, digits or _): "
                              "pass one, or use unit := 'char'")
        return ws

    def encode_unit(self, phrase: str, unit: str | None) -> tuple[Layer, np.ndarray]:
        """(layer, pattern bytes in reading order) of a phrase in ``unit``."""
        layer = self.layer(unit)
        if layer.unit == "char":
            return layer, self.encode(phrase)
        return layer, np.frombuffer(T.word_pattern(self.word_list(phrase)), dtype=np.uint8).copy()

    # ------------------------------------------------------------------ queries
    def ranges(self, pat: np.ndarray, layer: Layer | None = None) -> list[tuple[int, int]]:
        """The SA range of the pattern in every shard of the layer."""
        lay = layer or self.chars
        q = lay.search_bytes(pat)
        return [s.range(q) for s in lay.shards]

    def count(self, pat: np.ndarray, layer: Layer | None = None) -> int:
        """All occurrences (overlapping ones too) inside rows."""
        lay = layer or self.chars
        if lay.unit == "char" and SEP in pat:  # a NUL could match across the row separator
            return int(len(self.hits(pat).rowids))
        return sum(ep - sp for sp, ep in self.ranges(pat, lay))

    def hits(self, pat: np.ndarray, layer: Layer | None = None) -> Hits:
        """Every occurrence as (row id, offset in row: in the word stream for unit 'word')."""
        lay = layer or self.chars
        rid, off = [], []
        m = len(pat)
        for s, (sp, ep) in zip(lay.shards, self.ranges(pat, lay), strict=True):
            if ep <= sp:
                continue
            pos = s.positions(sp, ep)
            rows = np.asarray(s.rows)
            r = np.searchsorted(rows, pos, side="right") - 1
            if SEP in pat:
                keep = pos + m <= rows[r + 1] - 1  # must end before the row's separator
                pos, r = pos[keep], r[keep]
            o = pos - rows[r]
            if lay.reversed:  # offset of the match in the row read forwards
                o = (rows[r + 1] - 1 - rows[r]) - o - m
            rid.append(r + s.row_base)
            off.append(o)
        if not rid:
            return Hits(np.empty(0, np.int64), np.empty(0, np.int64))
        return Hits(np.concatenate(rid).astype(np.int64), np.concatenate(off).astype(np.int64))

    def row_counts(self, pat: np.ndarray, layer: Layer | None = None, only: np.ndarray | None = None,
                   need_counts: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row containing the phrase: (row ids ascending, occurrences, first offset in the row).

        Through the index (locate every occurrence) unless the phrase is so frequent that locating
        would cost more than scanning (see :meth:`use_scan`). ``only``: ascending row ids the caller
        restricts to (AND queries): a scan then reads just the blocks holding them. Without
        ``need_counts`` a scan may report 1 occurrence per row (row counts need no more).
        """
        lay = layer or self.chars
        if self.use_scan(pat, lay, only, need_counts):
            uniq, counts, first = self._scan(pat, lay, only, need_counts)
        else:
            uniq, counts, first = self._located(pat, lay)
        if only is not None:
            keep = np.isin(uniq, only, assume_unique=True)
            uniq, counts, first = uniq[keep], counts[keep], first[keep]
        return uniq, counts, first

    def _located(self, pat: np.ndarray, lay: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h = self.hits(pat, lay)
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

    def scan_seconds(self, lay: Layer, only: np.ndarray | None = None, need_counts: bool = True,
                     top: bool = False) -> float:
        """Estimated seconds of a scan of the layer: its scan tier, else DuckDB's scan of the column
        (:mod:`lakeql.ngrams.colscan`), else the Parquet column read back here. ``top``: for the k best
        rows (:meth:`top_rows`)."""
        if all(t is not None for t in lay.tiers):
            total = sum(int(t.blocks[:, 1].sum()) for t in lay.tiers)
            blocks = sum(int(t.blocks.shape[0]) for t in lay.tiers)
            if only is not None and blocks:  # at most one block per candidate row is read
                total = total * min(blocks, len(only)) / blocks
            return total / TIER_BYTES_PER_SECOND
        if self.colscan is not None and self.fold != "ascii":
            from lakeql.ngrams import colscan

            # the kernel on decoded pages answers the top k, and the rows of words / folded phrases
            kernel = top or (not need_counts and (lay.unit != "char" or self.fold != "none"))
            if kernel and only is None and self.colscan.pages_usable:
                return self.text_bytes / colscan.PAGES_BYTES_PER_SECOND
            if self.colscan.usable:
                if lay.unit == "char" and self.fold == "none":
                    bps = colscan.COUNT_BYTES_PER_SECOND if need_counts else colscan.ROWS_BYTES_PER_SECOND
                else:
                    bps = colscan.VERIFY_BYTES_PER_SECOND
                return self.text_bytes / bps
            if self.colscan.parquet_usable:  # DuckDB cannot read the column: the Parquet kernel can
                return self.text_bytes / colscan.PARQUET_BYTES_PER_SECOND
        if lay.unit == "word":
            return float("inf")
        return self.text_bytes / SCAN_BYTES_PER_SECOND

    def use_scan(self, pat: np.ndarray, layer: Layer | None = None, only: np.ndarray | None = None,
                 need_counts: bool = True, top: bool = False) -> bool:
        """True when locating every occurrence would cost more than a scan (:meth:`scan_seconds`)."""
        lay = layer or self.chars
        if SEP in pat:
            return False
        per = LOCATE_SECONDS_SA if all(s.sa is not None for s in lay.shards) else LOCATE_SECONDS
        return self.count(pat, lay) * per > self.scan_seconds(lay, only, need_counts, top)

    def _scan(self, pat: np.ndarray, lay: Layer, only: np.ndarray | None = None, need_counts: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if all(t is not None for t in lay.tiers):
            return self.scan_many([pat], lay, only, need_counts)[0]
        if self.colscan is not None:
            found = self.colscan.rows(lay.unit, self.fold, pat, need_counts)
            if found is not None:
                return found
        if lay.unit == "word":  # no Parquet scan of the word stream: locate (exact, slower)
            return self._located(pat, lay)
        return self._scan_parquet(pat)

    def scan_many(self, pats: list[np.ndarray], lay: Layer, only: np.ndarray | None = None,
                  need_counts: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Rows of several phrases in ONE pass over the scan tier (each block decompressed once):
        per phrase (row ids ascending, occurrences, first offset). Needs the layer's scan tier."""
        e = np.empty(0, np.int64)
        jobs = []
        for s, t in zip(lay.shards, lay.tiers, strict=True):
            blocks = np.arange(t.blocks.shape[0])
            if only is not None:
                local = only[(only >= s.row_base) & (only < s.row_base + s.n_rows)] - s.row_base
                blocks = arrays.unique(np.searchsorted(t.blocks[:, 2], local, side="right") - 1)
            jobs += [(s.row_base, t, int(b)) for b in blocks]
        if not jobs:
            return [(e, e, e) for _ in pats]
        freq = np.diff(lay.shards[0].C)  # byte frequencies of a shard: test the rarest byte first
        anchors = [int(np.argmin(freq[p])) for p in pats]

        def one(job):
            base, t, b = job
            return [(r + base, c, f) for r, c, f in t.scan_block(b, pats, anchors, need_counts)]

        parts = list(_scan_pool().map(one, jobs)) if len(jobs) > 1 else [one(jobs[0])]
        out = []
        for k in range(len(pats)):
            rid, cnt, off = (np.concatenate([p[k][j] for p in parts]).astype(np.int64) for j in range(3))
            if only is not None:
                keep = np.isin(rid, only, assume_unique=True)
                rid, cnt, off = rid[keep], cnt[keep], off[keep]
            out.append((rid, cnt, off))
        return out

    def _scan_parquet(self, pat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scan of indexes built without a scan tier: the column read back from Parquet."""
        from lakeql.ngrams.builder import arrow_buffers, fold_ascii, table_batches
        from lakeql.ngrams.kernels import scan_rows

        rid, cnt, off = [], [], []
        base = 0
        for arr in table_batches(self.table, self.column):
            data, offs = arrow_buffers(arr)
            if self.fold == "ascii":
                data = data.copy()
                fold_ascii(data)
            elif self.fold == "casefold":
                data, offs = T.casefold_rows(data, offs)
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

    def rows(self, pat: np.ndarray, layer: Layer | None = None) -> int:
        """Number of rows that contain the phrase."""
        lay = layer or self.chars
        if self.colscan is not None and not all(t is not None for t in lay.tiers) \
                and self.use_scan(pat, lay, need_counts=False):
            n = self.colscan.count(lay.unit, self.fold, pat)  # DuckDB's count(*) when its predicate is exact
            if n is not None:
                return n
        return int(self.row_counts(pat, layer, need_counts=False)[0].shape[0])

    def top_rows(self, pat: np.ndarray, k: int, layer: Layer | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Up to k rows with the most occurrences: (row ids, occurrences, first offset), best first."""
        lay = layer or self.chars
        if self.colscan is not None and not all(t is not None for t in lay.tiers) \
                and self.use_scan(pat, lay, top=True):
            density = self.count(pat, lay) / max(1, self.text_bytes)
            found = self.colscan.top(lay.unit, self.fold, pat, k, density)  # one DuckDB pass, top-N in DuckDB
            if found is not None:
                return found
        uniq, counts, first = self.row_counts(pat, layer)
        best = np.lexsort((uniq, -counts))[:k]
        return uniq[best], counts[best], first[best]

    def row_text(self, rowid: int, a: int, b: int, layer: Layer | None = None) -> tuple[bytes, int]:
        """Bytes [a, b) of row ``rowid`` (clipped to the row) from the index, and the row's length.

        For the word layer: bytes of the row's word stream, read forwards.
        """
        lay = layer or self.chars
        k = int(np.searchsorted(self.row_bases, rowid, side="right")) - 1
        s = lay.shards[k]
        r = rowid - s.row_base
        start, end = int(s.rows[r]), int(s.rows[r + 1]) - 1  # end excludes the separator
        length = end - start
        a, b = max(0, a), min(length, b)
        if b <= a:
            return b"", length
        if lay.reversed:
            return s.extract(start + length - b, start + length - a)[::-1], length
        return s.extract(start + a, start + b), length

    def snippet(self, rowid: int, offset: int, length: int, width: int = SNIPPET_BYTES,
                layer: Layer | None = None) -> str:
        """About ``width`` bytes around the match at ``offset`` of row ``rowid``, read from the index.

        A case-insensitive index holds case-folded text, so its snippets are folded too. For the word
        layer the snippet is the row's words around the match, one space between words.
        """
        lay = layer or self.chars
        side = max(0, (width - length) // 2)
        a = max(0, offset - side)
        text, row_len = self.row_text(rowid, a - 3, offset + length + side + 3, lay)  # 3: UTF-8 slack
        lo = a - max(0, a - 3)
        if lay.unit == "word":
            return word_snippet(text, lo, lo + (min(row_len, offset + length + side) - a), a > 0,
                                offset + length + side < row_len)
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
        # a NUL in the text is the row separator or a NUL of the data: count those cases exactly, so the
        # separator is never a next character and a prefix holding a NUL never spans two rows
        exact = np.nonzero(counts)[0] if SEP in pat else ([SEP] if counts[SEP] else [])
        for b in exact:
            counts[b] = self.count(np.append(pat, np.uint8(b)).astype(np.uint8))
        need = _utf8_len(prefix[0]) if prefix else 0
        for b in np.nonzero(counts)[0]:
            b = int(b)
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
def word_snippet(text: bytes, s0: int, e0: int, cut_left: bool, cut_right: bool) -> str:
    """A word-stream slice as words separated by single spaces, widened to whole words, ``…`` where cut."""
    while 0 < s0 < len(text) and text[s0 - 1] != T.WORD_SEP:
        s0 -= 1
    while e0 < len(text) and text[e0] != T.WORD_SEP:
        e0 += 1
    body = " ".join(w for w in text[s0:e0].decode("utf-8", "replace").split("\x01") if w)
    return ("…" if cut_left else "") + body + ("…" if cut_right else "")


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
def guarded(ctx, entry, idx: NgramIndex) -> NgramIndex:
    """``idx`` whose word layer, opened later, is read as the rest was: under the store's swap lock (a
    rebuild never swaps files in mid-read) and only while the manifest still has the row ``entry`` whose
    files were verified when ``idx`` was loaded (a rebuild in between: an error asking to run the query
    again, which loads the new index). Files damaged after loading are as for the memory-mapped arrays."""
    import fcntl

    from lakeql.store import SWAP_LOCK

    store = ctx.store

    def guard(open_words):
        with store._flock(SWAP_LOCK, fcntl.LOCK_SH):
            store._manifest_cache = None
            fresh = store.find(entry.kind, entry.table_name, entry.column_name)
            again = LakeqlError(f"the n-gram index of {idx.table.key}.{idx.column} was rebuilt while "
                                "this query opened it: run the query again")
            if fresh is None or str(fresh.built_at) != str(entry.built_at) or fresh.path != entry.path:
                raise again
            # the row is the same, the files may not be: a rebuild between swapping its files in and
            # recording them (or killed there) keeps the recorded ones aside (review17: the word layer
            # of the new build was opened under the old row, wrong answers)
            if store.damage(fresh, trusted=store._load_verified()) is None:
                return open_words(store.root / fresh.path)
            kept = store.kept_aside(fresh)
            if kept is None:
                raise again
            return open_words(kept)

    idx.guard = guard
    return idx


def load(ctx, table_name: str, column: str) -> NgramIndex:
    """The (cached) index of ``table_name.column`` or a clear error naming the fix."""
    if table_name is None or column is None:
        raise LakeqlError("table and column must not be NULL")
    table = ctx.table(table_name)
    col = text_column(ctx.catalog, table, column)
    # the table as the index and the catalog have it: without the files left out as unreadable (their
    # rows are in neither), else a scan numbers rows past them wrongly (or fails: one more file than
    # the catalog has row counts for)
    readable = ctx.catalog.lake.tables.get(table.key) or table
    idx = ctx.load_index(
        KIND, table, col,
        lambda path, entry: guarded(ctx, entry, NgramIndex(path, readable, col,
                                                           entry.params_dict.get("case", "sensitive"))),
        flag=FLAG)
    if idx.colscan is None:  # rows of frequent phrases without a scan tier: DuckDB scans the column
        from lakeql.ngrams.colscan import ColumnScan

        # built whole, then published: another thread never sees it without its row count
        freq = np.diff(idx.chars.shards[0].C) if idx.shards else None
        idx.colscan = ColumnScan(ctx, readable, col, idx.n_rows, freq)
    return idx
