"""Text features shared by union search, table search and transformation blocking.

Words are split at non-alphanumerics and camelCase (``depDelay`` -> ``dep``, ``delay``), lower-cased, and
a trailing plural ``s`` is dropped from words longer than three letters. Features are hashed with CRC32
(stable across processes, unlike ``hash()``) into ``2**DIM_BITS`` sparse dimensions, so no vocabulary
has to be stored for the column vectors.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable

_SPLIT = re.compile(r"[^0-9a-zA-Z]+|(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[0-9a-z]+")
DIM_BITS = 20
MASK = (1 << DIM_BITS) - 1
STOP = frozenset("a an the of and or in on at to for by with from is are was were be this that it as "
                 "its into per vs".split())


def stem(w: str) -> str:
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def words(text: str | None, stop: bool = True) -> list[str]:
    """Lower-case word tokens of ``text`` (identifier-aware), plural-stemmed, stop words dropped."""
    if not text:
        return []
    out = []
    for t in _SPLIT.split(str(text)):
        if not t:
            continue
        w = stem(t.lower())
        if stop and w in STOP:
            continue
        out.append(w)
    return out


def value_words(text: str) -> list[str]:
    """Word tokens of a (lower-cased) value, no stemming: what values share in transformations."""
    return _WORD.findall(text.lower())


def char_grams(name: str, n: int = 3) -> list[str]:
    """Character n-grams of a column name, padded (``#de``, ``dep``, ...), over its words joined by ' '."""
    s = "#" + " ".join(words(name, stop=False)) + "#"
    return [s[i:i + n] for i in range(max(1, len(s) - n + 1))]


_LETTERS = re.compile(r"[A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")


def shape(value: str) -> str:
    """A value's pattern: letters -> a, digits -> 9, runs collapsed ('N123AB' -> 'a9a')."""
    return _DIGITS.sub("9", _LETTERS.sub("a", value[:40]))  # compiled once (re.sub looked them up per call)


def hashed(features: Iterable[tuple[str, float]]) -> dict[int, float]:
    """``{dimension: weight}`` of weighted string features (CRC32 hashing, collisions add up)."""
    out: dict[int, float] = {}
    for f, w in features:
        d = zlib.crc32(f.encode("utf-8", "surrogatepass")) & MASK
        out[d] = out.get(d, 0.0) + w
    return out


def bag(tokens: Iterable[str]) -> Counter:
    return Counter(tokens)
