"""Rows of frequent phrases without a scan tier: DuckDB scans the column, Python verifies what it must.

An index built without ``--ngram-scan`` (the default) has no copy of the text. For a phrase so frequent
that locating every occurrence through the sampled suffix array would cost more than a scan, the rows
come from DuckDB's own scan of the table (its Parquet reader is multi-threaded and ~2x faster than
reading the column back with pyarrow). The query runs on a cursor of the connection the functions were
registered on; the phrase (or the regular expressions derived from it) is always a BOUND parameter and
the column a quoted identifier.

What DuckDB can answer exactly, and what is verified in Python:

* **case-sensitive characters**: ``contains(col, ?)`` is the exact row predicate (bytes of valid UTF-8);
  row counts need nothing else. Occurrence counts (overlapping ones too) and first offsets, which
  ``ngram_search`` and AND/OR queries need, are computed by a numba kernel over the matching rows' text.
* **case-insensitive characters** (``str.casefold``): DuckDB has no case folding, so it selects a SAFE
  SUPERSET of the rows: a row whose folded text contains the folded phrase ``F`` either holds a
  non-ASCII character whose folding yields ASCII (``ſ``, ``K`` (Kelvin), ``ß``, ``İ``, ligatures ...:
  the set ``N``), or contains every maximal ASCII run of ``F`` in ``lower(col)`` (ASCII folding is ASCII
  lower-casing, and without ``N`` characters every ASCII character of the folded text comes from an
  ASCII character of the row). Each non-ASCII character ``x`` of ``F`` must come from a character whose
  folding contains ``x`` (a regular-expression character class). Rows of pure ASCII are exact when ``F``
  is ASCII; every other candidate row is folded in Python (one ``str.casefold`` over all of them, as the
  builder does) and searched.
* **words** (``unit := 'word'``): a regular expression with ASCII word boundaries
  (``[^0-9A-Za-z_]``: every ``\\w`` separator is one of these) is a superset of Python's Unicode ``\\w+``
  words and is exact on rows of pure ASCII; other candidate rows get the builder's word stream
  (:func:`lakeql.ngrams.text.word_rows`) and are searched there.

Anything DuckDB cannot read as the index did (invalid UTF-8 in the column makes DuckDB's Parquet reader
fail; format-1 ASCII-folded indexes; phrases that are not valid UTF-8 or hold a NUL) returns ``None``
and the caller takes the exact path of before (locate through the index, or the Parquet scan).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np

from lakeql.lake import quote_ident

#: DuckDB scan of the column on the 2-core benchmark machine (~250-350 MB/s of text at 100 MB).
ROWS_BYTES_PER_SECOND = 300e6
#: ... plus fetching the matching rows' text and counting in Python (~2.5x slower).
COUNT_BYTES_PER_SECOND = 120e6
#: rows fetched per Arrow batch (bounds memory: one batch of text at a time)
BATCH_ROWS = 2048
#: ASCII word characters: every character that separates Python ``\\w+`` words is outside this class
ASCII_WORD = "0-9A-Za-z_"
_LOCK = threading.Lock()


# ------------------------------------------------------------------------------- case folding sets
@lru_cache(maxsize=1)
def _fold_sources() -> tuple[str, dict[str, str]]:
    """(N, G): N = the non-ASCII characters whose ``casefold`` holds an ASCII character; G[x] = every
    character whose ``casefold`` holds the non-ASCII character x, apart from x itself. Built once."""
    with _LOCK:
        n_chars: list[str] = []
        g: dict[str, list[str]] = {}
        for cp in range(0x80, 0x110000):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            c = chr(cp)
            f = c.casefold()
            if f == c:
                continue
            if any(ord(ch) < 0x80 for ch in f):
                n_chars.append(c)
            for ch in set(f):
                if ord(ch) >= 0x80 and ch != c:
                    g.setdefault(ch, []).append(c)
        return "".join(n_chars), {k: "".join(v) for k, v in g.items()}


def _re_chars(chars: str) -> str:
    """Characters as RE2 escapes (``\\x{HHHH}``): safe inside and outside a character class."""
    return "".join(f"\\x{{{ord(c):X}}}" for c in chars)


def _re_class(chars: str) -> str:
    return "[" + _re_chars(chars) + "]"


def _sources_of(x: str) -> str:
    """Every character whose ``casefold`` contains the non-ASCII character ``x`` (x itself when it
    folds to something holding x)."""
    _, g = _fold_sources()
    own = x if x in x.casefold() else ""
    return own + g.get(x, "")


def _ascii_runs(s: str) -> list[str]:
    runs, cur = [], []
    for ch in s:
        if ord(ch) < 0x80:
            cur.append(ch)
        elif cur:
            runs.append("".join(cur))
            cur = []
    if cur:
        runs.append("".join(cur))
    return runs


# ------------------------------------------------------------------------------- predicates
class Pred:
    """A row predicate on the column ``c`` with its bound parameters, and whether it is exact on every
    row (``exact='all'``), on rows of pure ASCII only (``'ascii'``) or a superset only (``'none'``)."""

    def __init__(self, sql: str, params: list[Any], exact: str) -> None:
        self.sql, self.params, self.exact = sql, params, exact


def _folded_superset(f: str, col: str) -> tuple[str, list[Any]]:
    """SQL (and parameters) true on every row whose casefolded text contains the folded string ``f``."""
    n_chars, _ = _fold_sources()
    parts, params = [], []
    runs = _ascii_runs(f)
    if runs:
        runs = sorted(set(runs), key=len, reverse=True)[:3]
        ascii_part = " AND ".join([f"contains(lower({col}), ?)"] * len(runs))
        parts.append(f"(regexp_matches({col}, ?) OR ({ascii_part}))")
        params += [_re_class(n_chars), *runs]
    others = sorted({ch for ch in f if ord(ch) >= 0x80})[:2]
    for ch in others:
        parts.append(f"regexp_matches({col}, ?)")
        params.append(_re_class(_sources_of(ch)))
    return " AND ".join(parts), params


def _words_regex(ws: list[str]) -> str:
    """RE2: the words in order with ASCII-word boundaries and separators (a superset of \\w+ words)."""
    sep = f"[^{ASCII_WORD}]"
    return f"(?:^|{sep})" + f"{sep}+".join(_re_chars(w) for w in ws) + f"(?:{sep}|$)"


def predicate(unit: str, fold: str, pat: bytes, col: str) -> Pred | None:
    """The DuckDB row predicate of an encoded pattern (see the module docstring), or None."""
    from lakeql.ngrams.text import WORD_SEP

    if fold not in ("none", "casefold"):
        return None  # format-1 ASCII folding: the exact path of before
    try:
        text = pat.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text or not text:
        return None
    if unit == "char":
        if fold == "none":
            return Pred(f"contains({col}, ?)", [text], "all")
        if text.isascii():
            n_chars, _ = _fold_sources()
            return Pred(
                f"(regexp_matches({col}, ?) OR contains(lower({col}), ?))",
                [_re_class(n_chars), text],
                "ascii",
            )
        sql, params = _folded_superset(text, col)
        return Pred(sql, params, "none")
    ws = [w for w in text.split(chr(WORD_SEP)) if w]
    if not ws:
        return None
    if fold == "none":
        return Pred(f"regexp_matches({col}, ?)", [_words_regex(ws)], "ascii")
    if all(w.isascii() for w in ws):
        n_chars, _ = _fold_sources()
        return Pred(
            f"(regexp_matches({col}, ?) OR regexp_matches(lower({col}), ?))",
            [_re_class(n_chars), _words_regex(ws)],
            "ascii",
        )
    parts, params = [], []
    for w in sorted(set(ws), key=len, reverse=True)[:3]:
        s, p = _folded_superset(w, col)
        parts.append(s)
        params += p
    return Pred(" AND ".join(parts), params, "none")


# ------------------------------------------------------------------------------- the scan
class ColumnScan:
    """DuckDB scans of one indexed column, on cursors of the connection ``ctx.con``."""

    def __init__(self, ctx: Any, table: Any, column: str) -> None:
        self.ctx, self.table, self.column = ctx, table, column
        self.failed = False  # DuckDB could not read the column as the index did (e.g. invalid UTF-8)
        self._source: str | None = None

    @property
    def usable(self) -> bool:
        return not self.failed and getattr(self.ctx, "con", None) is not None

    def source(self) -> str:
        """``SELECT __rowid, * FROM <the table's files>`` (rowids as the index numbers rows)."""
        if self._source is None:
            from lakeql.rows import rowid_scan_of

            self._source = rowid_scan_of(self.ctx.catalog, self.table)
        return self._source

    def rows(
        self, unit: str, fold: str, pat: np.ndarray, need_counts: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(row ids ascending, occurrences, first offset) of the rows containing ``pat`` (the pattern
        as the layer holds it), exact; None when DuckDB cannot answer (the caller's exact path then).
        Without ``need_counts`` rows DuckDB decides exactly report 1 occurrence and offset -1."""
        import duckdb

        if not self.usable:
            return None
        col = quote_ident(self.column)
        pred = predicate(unit, fold, pat.tobytes(), col)
        if pred is None:
            return None
        if need_counts or pred.exact == "none":
            fetch = "TRUE"
        elif pred.exact == "ascii":
            fetch = f"strlen({col}) <> length({col})"
        else:
            fetch = "FALSE"
        sql = f"SELECT __rowid, CASE WHEN {fetch} THEN {col} END AS t FROM ({self.source()}) WHERE {pred.sql}"
        e = np.empty(0, np.int64)
        rid_all, cnt_all, off_all = [e], [e], [e]
        cur = self.ctx.con.cursor()
        try:
            if fetch == "FALSE":
                rid = cur.execute(
                    f"SELECT __rowid FROM ({self.source()}) WHERE {pred.sql}", pred.params
                ).fetchnumpy()["__rowid"]
                rid = np.sort(np.asarray(rid, dtype=np.int64))
                return rid, np.ones_like(rid), np.full_like(rid, -1)
            reader = cur.sql(sql, params=pred.params).to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                rid, cnt, off = self._verify(batch, unit, fold, pat, need_counts)
                rid_all.append(rid)
                cnt_all.append(cnt)
                off_all.append(off)
        except duckdb.Error:
            # e.g. "Invalid string encoding": DuckDB cannot read every row as the index did
            self.failed = True
            return None
        finally:
            cur.close()
        rid, cnt, off = (np.concatenate(x) for x in (rid_all, cnt_all, off_all))
        order = np.argsort(rid, kind="stable")
        return rid[order], cnt[order], off[order]

    def _verify(
        self, batch, unit: str, fold: str, pat: np.ndarray, need_counts: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact (row ids, occurrences, first offsets) of one batch: rows without text (DuckDB's answer
        is exact for them) count 1; the others are searched as the index holds them."""
        import pyarrow.compute as pc

        from lakeql.ngrams.builder import arrow_text

        rid = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        texts = batch.column(1)
        has = np.asarray(pc.is_valid(texts).to_numpy(zero_copy_only=False), dtype=bool)
        cnt = np.ones(rid.shape[0], np.int64)
        off = np.full(rid.shape[0], -1, np.int64)
        if has.any():
            data, lengths = arrow_text(texts.filter(pc.is_valid(texts)))
            starts = np.zeros(lengths.shape[0] + 1, np.int64)
            np.cumsum(lengths, out=starts[1:])
            data, starts = _as_indexed(data, starts, unit, fold)
            c, f = search_rows(data, starts, pat, need_counts)
            cnt[has], off[has] = c, f
        keep = cnt > 0
        return rid[keep], cnt[keep], off[keep]


def _as_indexed(data: np.ndarray, starts: np.ndarray, unit: str, fold: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (each ending with a NUL) transformed exactly as the builder does for the layer."""
    from lakeql.ngrams.text import casefold_rows, word_rows

    folded = fold == "casefold"
    if unit == "word":
        return word_rows(data, starts, folded)
    if folded:
        return casefold_rows(data, starts)
    return data, starts


def search_rows(
    text: np.ndarray, starts: np.ndarray, pat: np.ndarray, need_counts: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row (``text[starts[r]:starts[r+1]]``, each ending with a NUL): occurrences of ``pat``
    (overlapping ones too) and the first offset (-1 if none). A SIMD compare finds the pattern's rarest
    byte in a sample of the text, numba verifies the candidates."""
    from lakeql.ngrams.kernels import count_byte_rows, verify_candidates

    if pat.shape[0] == 1:
        return count_byte_rows(text, starts, pat[0], need_counts)
    sample = np.bincount(text[: 1 << 20], minlength=256)
    anchor = int(np.argmin(sample[pat]))
    cand = np.flatnonzero(text == pat[anchor])
    return verify_candidates(text, starts, pat, anchor, cand, need_counts)
