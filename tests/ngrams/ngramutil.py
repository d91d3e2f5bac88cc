"""Helpers of the n-gram tests: real text corpora, lakes, index builds and brute-force counts."""

from __future__ import annotations

import sysconfig
from pathlib import Path

STDLIB = Path(sysconfig.get_path("stdlib"))

def stdlib_files(limit_bytes: int) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of stdlib .py files in sorted order, up to ``limit_bytes`` in total."""
    out, total = [], 0
    for p in sorted(STDLIB.rglob("*.py")):
        if "site-packages" in p.parts:
            continue
        b = p.read_bytes()
        out.append((p.relative_to(STDLIB).as_posix(), b))
        total += len(b)
        if total >= limit_bytes:
            break
    return out


def write_text_table(path: Path, rows: list[tuple[str, bytes | None]], binary_view: bool = True) -> None:
    """A Parquet file with columns (path VARCHAR, text VARCHAR, n BIGINT); bytes are not validated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.array([r[1] for r in rows], pa.binary()).view(pa.string())
    tbl = pa.table({"path": pa.array([r[0] for r in rows], pa.string()), "text": text,
                    "n": pa.array([len(r[1] or b"") for r in rows], pa.int64())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tbl, path, row_group_size=64)


def build(lake: Path, index_dir: Path, *specs: str, refresh: bool = False, **opts):
    """``lakeql index LAKE --index-dir DIR --ngram SPEC ...`` through the Python API."""
    import lakeql

    return lakeql.index(lake, index_dir=index_dir, ngram=list(specs), refresh=refresh, progress=False,
                        **opts).store


def brute_count(rows: list[tuple[str, bytes | None]], phrase: bytes, fold: bool = False) -> tuple[int, set]:
    """(overlapping occurrences, set of row ids) by scanning every row."""
    total, hit = 0, set()
    for i, (_, text) in enumerate(rows):
        if not text:
            continue
        t = text.decode("utf-8", "surrogateescape").casefold().encode("utf-8", "surrogateescape") \
            if fold else text  # Unicode full case folding, as a case-insensitive index does
        c, j = 0, t.find(phrase)
        while j >= 0:
            c += 1
            j = t.find(phrase, j + 1)
        if c:
            total += c
            hit.add(i)
    return total, hit


def row_words(rows: list[tuple[str, bytes | None]], fold: bool = False) -> list[list[str]]:
    """Each row's words by brute force: ``re.findall(r'\\w+')`` on the text decoded with surrogateescape
    (invalid bytes separate words), case-folded after cutting when ``fold``."""
    import re

    out = []
    for _, text in rows:
        ws = re.findall(r"\w+", (text or b"").decode("utf-8", "surrogateescape"))
        out.append([w.casefold() for w in ws] if fold else ws)
    return out


def brute_words(words: list[list[str]], phrase: list[str]) -> tuple[int, dict[int, int], dict[str, int]]:
    """(occurrences of the word sequence, occurrences per row, next-word counts) by scanning every row."""
    from collections import Counter

    n = len(phrase)
    total, per_row, nxt = 0, {}, Counter()
    for r, ws in enumerate(words):
        c = 0
        for i in range(len(ws) - n + 1):
            if ws[i:i + n] == phrase:
                c += 1
                if i + n < len(ws):
                    nxt[ws[i + n]] += 1
        if c:
            per_row[r] = c
            total += c
    return total, per_row, dict(nxt)


def top_next(nxt: dict[str, int], k: int) -> list[tuple[str, int]]:
    """The k most frequent next words, ties by UTF-8 bytes (the order ngram_next promises)."""
    return sorted(nxt.items(), key=lambda t: (-t[1], t[0].encode("utf-8", "surrogateescape")))[:k]


def brute_per_row(unit: str, fold: str, phrase: str, rows: list[str | None]) -> list[int]:
    """Occurrences of ``phrase`` in each of ``rows`` by brute force: overlapping byte matches
    (``unit='char'``) or word sequences (``'word'``); ``fold='casefold'`` folds both sides."""
    data = [("", r.encode() if r is not None else None) for r in rows]
    folded = fold == "casefold"
    if unit == "char":
        p = (phrase.casefold() if folded else phrase).encode()
        return [brute_count([row], p, fold=folded)[0] for row in data]
    ws = row_words([("", phrase.encode())], fold=folded)[0]
    per = brute_words(row_words(data, fold=folded), ws)[1]
    return [per.get(i, 0) for i in range(len(data))]
