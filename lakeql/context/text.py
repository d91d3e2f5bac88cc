"""Tokenizing identifiers and questions the same way, for partitioning and for BM25 retrieval.

``customer_orderID`` -> ``customer order id``; plurals are folded with a light suffix stemmer
(``singers`` -> ``singer``, ``countries`` -> ``country``, ``addresses`` -> ``address``) so a question's
words meet the schema's names.
"""

from __future__ import annotations

import re

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP = frozenset("""a an and are as at be by did do does each for from had has have how i in is it its
list many me more most much of on or other show than that the their them there these they this those to
was were what when where which who whom whose why with all any give find tell return also please""".split())


def stem(w: str) -> str:
    """A light plural stemmer: good enough to meet 'singers' with 'singer'."""
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes", "zes")):
        return w[:-2]
    if w.endswith("ss") or w.endswith("us") or w.endswith("is"):
        return w
    if w.endswith("s"):
        return w[:-1]
    return w


def words(text: str) -> list[str]:
    """Split camelCase and every non-alphanumeric boundary; lowercase."""
    return [w.lower() for w in _WORD.findall(_CAMEL.sub(" ", text))]


def tokens(text: str, drop_stop: bool = True) -> list[str]:
    """Stemmed, lowercased words of ``text`` (stop words dropped when asked)."""
    return [stem(w) for w in words(text) if not (drop_stop and w in STOP)]


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``1 table``, ``3 tables``): schema files are read."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
