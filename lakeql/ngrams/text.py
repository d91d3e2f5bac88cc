"""Text transforms of the n-gram index: Unicode case folding and the word stream of a block of rows.

Both work on a whole shard (or batch) at once, never row by row in Python: folding decodes the rows'
bytes once with ``surrogateescape`` (so invalid UTF-8 survives the round trip byte for byte), calls
``str.casefold`` once and encodes back; the word stream is one numba pass over the bytes with a table of
``re``'s ``\\w`` built by asking ``re`` itself.

* **Case folding** is ``str.casefold`` (Unicode full case folding, locale-free): ``'Straße'`` and
  ``'STRASSE'`` both become ``'strasse'``, Greek ``'Σ'``, ``'σ'`` and final ``'ς'`` all become ``'σ'``,
  Turkish ``'İ'`` becomes ``'i̇'`` (``i`` + U+0307 COMBINING DOT ABOVE) and dotless ``'ı'`` stays ``'ı'``.
  Folding may change a row's length in bytes (``'ß'`` -> ``'ss'``): row offsets are recomputed from the
  folded lengths of the code points, so positions and snippets refer to the folded text, consistently.
* **Words** are the maximal runs of ``\\w`` (Python ``re``'s Unicode definition); everything else only
  separates them. A row becomes ``\\x01 w1 \\x01 w2 ... wn \\x01`` (``\\x01`` is below every byte a word
  can hold), so the word phrase ``w1 .. wk`` is the byte pattern ``\\x01 w1 \\x01 .. wk \\x01`` and
  matches whole words only. With a case-insensitive index, words are folded after they are cut (so
  ``'İ'``'s combining dot stays inside its word).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np

WORD_SEP = 1  # the byte between two words (and around a row's words) in the word stream
WORD_RE = re.compile(r"\w+")
_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------- phrases
def fold(text: str) -> str:
    """The case folding of a case-insensitive index (Unicode full folding, ``str.casefold``)."""
    return text.casefold()


def words(text: str, folded: bool = False) -> list[str]:
    """The words of ``text`` (``re.findall(r'\\w+')``), case-folded for a case-insensitive index."""
    found = WORD_RE.findall(text)
    return [fold(w) for w in found] if folded else found


def word_pattern(ws: list[str]) -> bytes:
    """The word-stream bytes of a word sequence: ``\\x01 w1 \\x01 ... wk \\x01`` (just ``\\x01`` if empty)."""
    sep = bytes([WORD_SEP])
    return sep + sep.join(w.encode("utf-8", "surrogatepass") for w in ws) + (sep if ws else b"")


# ------------------------------------------------------------------------------------- folding
@lru_cache(maxsize=1)
def _fold_lengths() -> np.ndarray:
    """UTF-8 bytes of ``chr(cp).casefold()`` for every code point (int8[0x110000]); built once."""
    with _LOCK:
        out = np.empty(0x110000, dtype=np.int8)
        for cp in range(0x110000):
            if 0xD800 <= cp <= 0xDFFF:
                out[cp] = 1 if 0xDC80 <= cp <= 0xDCFF else 3  # escaped bytes stay one byte
            else:
                out[cp] = len(chr(cp).casefold().encode("utf-8"))
        return out


def _utf8_lengths(cps: np.ndarray) -> np.ndarray:
    """Bytes of each code point as encoded with ``surrogateescape`` (escaped bytes: 1)."""
    n = np.where(cps < 0x80, 1, np.where(cps < 0x800, 2, np.where(cps < 0x10000, 3, 4))).astype(np.int64)
    n[(cps >= 0xDC80) & (cps <= 0xDCFF)] = 1
    return n


def _decode(text: np.ndarray) -> str:
    return text.tobytes().decode("utf-8", "surrogateescape")


def _encode(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-8", "surrogateescape"), dtype=np.uint8)


def casefold_rows(text: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Case-fold a block of rows: (folded bytes, new row starts); row r is ``text[starts[r]:starts[r+1]]``."""
    s = _decode(text)
    f = fold(s)
    out = _encode(f)
    if len(f) == len(s) and out.shape[0] == text.shape[0]:
        return out, starts  # every code point kept its length (the usual case)
    cps = np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    orig = np.zeros(cps.shape[0] + 1, dtype=np.int64)
    np.cumsum(_utf8_lengths(cps), out=orig[1:])
    folded = np.zeros(cps.shape[0] + 1, dtype=np.int64)
    np.cumsum(_fold_lengths()[cps].astype(np.int64), out=folded[1:])
    # row starts are code point boundaries (a row ends with a NUL, which always decodes alone)
    at = np.searchsorted(orig, np.asarray(starts, dtype=np.int64))
    return out, folded[at]


def casefold_bytes(data: np.ndarray) -> np.ndarray:
    """Case-fold text bytes (no row structure needed: used for scans of a case-insensitive column)."""
    return _encode(fold(_decode(data)))


# ------------------------------------------------------------------------------------- words
@lru_cache(maxsize=1)
def word_table() -> np.ndarray:
    """``isword[cp]``: is code point cp matched by ``re``'s ``\\w`` (bool[0x110000]); built once per process
    by asking ``re`` itself, so the definition cannot drift from Python's."""
    with _LOCK:  # every code point as one string (surrogates as spaces), then re's \w runs: ~0.06 s
        cps = np.arange(0x110000, dtype="<u4")
        cps[0xD800:0xE000] = 32
        chars = cps.tobytes().decode("utf-32-le")
        isword = np.zeros(0x110000, dtype=bool)
        for m in re.finditer(r"\w+", chars):
            isword[m.start():m.end()] = True
        return isword


def word_rows(text: np.ndarray, starts: np.ndarray, folded: bool) -> tuple[np.ndarray, np.ndarray]:
    """The word stream of a block of rows: (bytes, row starts), each row ``\\x01 w1 \\x01 .. wn \\x01 \\x00``.

    A row without words becomes ``\\x01 \\x00``. Everything that is not a word character separates words:
    NULs inside a row's data, invalid UTF-8 bytes (as Python's strict decoder sees them), punctuation.
    One numba pass over the bytes; with ``folded`` the words are then case-folded (one ``casefold``).
    """
    from lakeql.ngrams.kernels import word_stream

    out, new_starts = word_stream(np.ascontiguousarray(text), np.asarray(starts, dtype=np.int64),
                                  word_table(), WORD_SEP)
    if not folded:
        return out, new_starts
    out = _encode(fold(out.tobytes().decode("utf-8")))  # valid UTF-8: only whole characters were copied
    nul = np.flatnonzero(out == 0)
    new_starts = np.zeros(nul.shape[0] + 1, dtype=np.int64)
    new_starts[1:] = nul + 1
    return out, new_starts


def reverse_rows(text: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each row's bytes reversed in place of the row, its NUL kept last (for right-extension queries)."""
    from lakeql.ngrams.kernels import reverse_segments

    out = np.empty_like(text)
    reverse_segments(text, np.asarray(starts, dtype=np.int64), out)
    return out
