"""Text features shared by union search, table search and transformation blocking.

Words are split at non-alphanumerics (Unicode letters and digits are word characters: ``Größe``, ``名前``;
text is NFC-normalized first, so a decomposed ``e`` + U+0301 is the ``é`` a user types)
and camelCase (``depDelay`` -> ``dep``, ``delay``), lower-cased, and plurals of words longer than three
letters are folded (``flights`` -> ``flight``, ``countries`` and ``country`` -> ``country``,
``taxes`` -> ``tax``). Scripts written without spaces (Chinese, Japanese) become overlapping
character pairs (``東京都`` -> ``東京``, ``京都``), so a query word matches inside a longer run. Features
are hashed with CRC32 (stable across processes, unlike ``hash()``) into ``2**DIM_BITS`` sparse dimensions,
so no vocabulary has to be stored for the column vectors.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable

_SPLIT = re.compile(r"[\W_]+|(?<=[a-z])(?=[A-Z])")
# Han ideographs, kana and CJK compatibility ideographs: written without spaces between words
_CJK = re.compile("([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+)")
# in table digests and the discovery index's manifest params ("words", since 5: a query is stemmed as its
# index was); 5: the stemmer of 4, recorded (an index of 4 did not say so: read as 3 until refreshed);
# 4: plurals in -ies/-es folded (countries -> country);
# 3: text NFC-normalized first; 2: Unicode letters and CJK pairs; 1: ASCII letters, digits
WORDS_VERSION = 5
_WORD = re.compile(r"[0-9a-z]+")
DIM_BITS = 20
MASK = (1 << DIM_BITS) - 1
STOP = frozenset("a an the of and or in on at to for by with from is are was were be this that it as "
                 "its into per vs".split())


def stem(w: str, version: int | None = None) -> str:
    """A light plural folding, the same for a word and its plural: ``flights`` -> ``flight``,
    ``countries``/``country`` -> ``country``, ``movies``/``movie`` -> ``movy``, ``boxes``/``box`` -> ``box``,
    ``addresses``/``address`` -> ``address``; ``class``, ``status``, ``analysis`` stay. ``version``: the
    :data:`WORDS_VERSION` of an index the word is looked up in (below 4: only a final ``s`` dropped, as such
    an index's vocabulary was made); default the current one."""
    if len(w) <= 3:
        return w
    if version is not None and version < 4:
        return w[:-1] if w.endswith("s") and not w.endswith("ss") else w
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3:
        if w.endswith("ie"):
            return w[:-2] + "y"
        if w.endswith(("sse", "she", "che", "xe")):
            return w[:-1]
    return w


def words(text: str | None, stop: bool = True, version: int | None = None) -> list[str]:
    """Lower-case word tokens of ``text`` (identifier-aware), plural-stemmed, stop words dropped.
    ``version``: stem as an index of that :data:`WORDS_VERSION` did (a query against an older index)."""
    if not text:
        return []
    text = str(text)
    if not text.isascii():  # NFC: 'e' + U+0301 (macOS file names) is the 'é' a user types, one word
        text = unicodedata.normalize("NFC", text)
    out = []
    for t in _SPLIT.split(text):
        if not t:
            continue
        if not t.isascii() and _CJK.search(t):
            out += _cjk_words(t, version)
            continue
        w = stem(t.lower(), version)
        if stop and w in STOP:
            continue
        out.append(w)
    return out


def _cjk_words(token: str, version: int | None = None) -> list[str]:
    """A token holding CJK runs: each run as overlapping character pairs (one character alone), the
    other parts as words."""
    out = []
    for i, part in enumerate(_CJK.split(token)):
        if not part:
            continue
        if i % 2:  # a CJK run
            out += [part] if len(part) == 1 else [part[j:j + 2] for j in range(len(part) - 1)]
        else:
            out.append(stem(part.lower(), version))
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
