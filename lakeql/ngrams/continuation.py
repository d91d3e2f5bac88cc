"""What comes next: the next-word distribution of a word phrase, and the ∞-gram (longest suffix).

The word layer indexes each row's word stream ``\\x01 w1 \\x01 w2 ... \\x01`` reversed, so one
backward-search step appends one byte on the right of a phrase, and one wavelet-tree walk lists every
byte that follows it (:meth:`lakeql.ngrams.fmindex.Shard.children`). The next words after a phrase form
a trie of such bytes; :func:`next_words` walks it best-first (a node's count bounds every word below
it), so the exact top k come out without listing every distinct next word.
"""

from __future__ import annotations

import heapq

import numpy as np

from lakeql.ngrams import text as T
from lakeql.ngrams.query import Layer, NgramIndex

Ranges = tuple[tuple[int, int], ...]


def _children(lay: Layer, ranges: Ranges) -> dict[int, list[tuple[int, int]]]:
    """Per next byte: its SA range in every shard (empty ranges where it does not follow)."""
    merged: dict[int, list[tuple[int, int]]] = {}
    n = len(lay.shards)
    for i, (s, (sp, ep)) in enumerate(zip(lay.shards, ranges, strict=True)):
        if ep <= sp:
            continue
        for c, a, b in s.children(sp, ep):
            merged.setdefault(int(c), [(0, 0)] * n)[i] = (int(a), int(b))
    return merged


def continuations(lay: Layer, ranges: Ranges) -> int:
    """Occurrences of a word pattern (ending in ``\\x01``) that a word follows (not at a row end)."""
    return sum(b - a for c, rr in _children(lay, ranges).items() if c > T.WORD_SEP for a, b in rr)


def next_words(idx: NgramIndex, pat: np.ndarray, k: int) -> tuple[list[tuple[str, int]], int]:
    """The k most frequent next words after the word pattern ``pat`` and the number of occurrences of
    ``pat`` followed by a word (the denominator of the shares). Ties: by the word's UTF-8 bytes."""
    lay = idx.layer("word")
    root = tuple(idx.ranges(pat, lay))
    total = continuations(lay, root)
    out: list[tuple[str, int]] = []
    if total == 0:
        return out, 0
    # heap items: (-count, key bytes, tie, ranges or None when the word is complete)
    heap: list[tuple[int, bytes, int, Ranges | None]] = [(-total, b"", 0, root)]
    tick = 1
    while heap and len(out) < k:
        neg, key, _, ranges = heapq.heappop(heap)
        if ranges is None:
            out.append((key[:-1].decode("utf-8", "replace"), -neg))
            continue
        for c, rr in _children(lay, ranges).items():
            cnt = sum(b - a for a, b in rr)
            if c == T.WORD_SEP and key:
                heapq.heappush(heap, (-cnt, key + b"\x01", tick, None))
            elif c > T.WORD_SEP:
                heapq.heappush(heap, (-cnt, key + bytes([c]), tick, tuple(rr)))
            tick += 1
    return out, total


def longest_words(idx: NgramIndex, context: str) -> tuple[list[str], np.ndarray]:
    """The longest suffix of the context's words that occurs followed by a word (infini-gram's ∞-gram
    context), as (words, pattern). Binary search: a suffix that occurs with a next word implies every
    shorter one does. The empty suffix (no word of the context occurs) means every word position."""
    lay = idx.layer("word")
    ws = idx.word_list(context, allow_empty=True)

    def pattern(n: int) -> np.ndarray:
        return np.frombuffer(T.word_pattern(ws[len(ws) - n:] if n else []), dtype=np.uint8).copy()

    def ok(n: int) -> bool:
        return continuations(lay, tuple(idx.ranges(pattern(n), lay))) > 0

    lo, hi = 0, len(ws)  # ok(lo) holds (unless the column has no words at all)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return ws[len(ws) - lo:] if lo else [], pattern(lo)


def longest_chars(idx: NgramIndex, context: str) -> tuple[str, np.ndarray]:
    """The longest suffix of the context (whole characters) that occurs with a next character, as the
    index holds it (case-folded on an insensitive index), and its pattern."""
    lo, hi = 0, len(context)

    def count(n: int) -> int:
        return idx.count(idx.encode(context[len(context) - n:])) if n else 1

    while lo < hi:  # longest suffix that occurs at all
        mid = (lo + hi + 1) // 2
        if count(mid) > 0:
            lo = mid
        else:
            hi = mid - 1
    while lo > 0 and not idx.next_chars(idx.encode(context[len(context) - lo:]), 1):
        lo -= 1  # it only occurs at row ends: shorten until something follows
    if not lo:
        return "", np.zeros(0, np.uint8)
    pat = idx.encode(context[len(context) - lo:])
    # shown as the index holds it (case-folded on an insensitive index), as word suffixes and next are
    return pat.tobytes().decode("utf-8", "surrogatepass"), pat


def every_char(idx: NgramIndex) -> list[tuple[str, int]]:
    """Every character of the column and its count, most frequent first: the next characters of the
    empty suffix. The FM-index lists what follows the empty pattern at every *byte*, so each UTF-8
    continuation byte of a multi-byte character would be listed again as a 'character' of its own (CJK
    text: ``\\x81`` first); those inside a listed sequence are subtracted, so a continuation byte stays
    listed only where it stands alone (invalid UTF-8 in the data)."""
    found = idx.next_chars(np.zeros(0, np.uint8), 1 << 30)
    inside = np.zeros(256, dtype=np.int64)
    for ch, n in found:
        raw = _raw(ch)
        for b in raw[1:]:
            if b & 0xC0 == 0x80:  # a continuation byte inside this sequence (never its start)
                inside[b] += n
    out = []
    for ch, n in found:
        raw = _raw(ch)
        if len(raw) == 1 and raw[0] & 0xC0 == 0x80:
            n -= int(inside[raw[0]])
        if n > 0:
            out.append((ch, n))
    out.sort(key=lambda t: (-t[1], t[0]))
    return out


def _raw(shown: str) -> bytes:
    """The bytes of one entry of ``next_chars``: one character, or invalid bytes shown as ``\\xNN``."""
    if len(shown) == 1:
        return shown.encode("utf-8", "surrogatepass")
    return bytes(int(shown[i + 2:i + 4], 16) for i in range(0, len(shown), 4))
