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
* **ngram_search** ranks by DuckDB's own count where it is exact (:func:`native_count`): only the rows
  its top-N keeps (k, plus every row the count may be wrong on) come back and are counted again here.
* **words** (``unit := 'word'``): a regular expression with ASCII word boundaries
  (``[^0-9A-Za-z_]``: every ``\\w`` separator is one of these) is a superset of Python's Unicode ``\\w+``
  words and is exact on rows of pure ASCII; other candidate rows get the builder's word stream
  (:func:`lakeql.ngrams.text.word_rows`) and are searched there.

Anything DuckDB cannot read as the index did (invalid UTF-8 in the column makes DuckDB's Parquet reader
fail; format-1 ASCII-folded indexes; phrases that are not valid UTF-8 or hold a NUL) returns ``None``
and the caller takes the exact path of before (locate through the index, or the Parquet scan).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

import numpy as np

from lakeql.lake import quote_ident

# Costs in the units of query.LOCATE_SECONDS (30 us per located occurrence), calibrated on the 2-core
# benchmark machine in one run (benchmarks/results/ngramscan.md, load ~40): a 100 MB DuckDB
# `contains` scan took as long as ~3,000 located occurrences (514 ms vs 1.33 s for 7,690).
#: rows of a case-sensitive phrase: DuckDB's `contains` scan alone
ROWS_BYTES_PER_SECOND = 1e9
#: ngram_search / occurrence counts of a case-sensitive phrase: the scan plus the count UDF and top-N
COUNT_BYTES_PER_SECOND = 300e6
#: case-insensitive or word phrases: a superset scan plus Python verification of candidate rows (rows of
#: a frequent word at 100 MB: ~1.4 s, the time of ~8,000 located occurrences in the same run)
VERIFY_BYTES_PER_SECOND = 250e6
#: the Parquet kernel (:mod:`lakeql.ngrams.pqcount`) when DuckDB cannot scan the column: pyarrow's read
#: plus the count measured 1.5-2.5x DuckDB's `contains` scan (benchmarks/results/ngramcount.md)
PARQUET_BYTES_PER_SECOND = 300e6
#: the Parquet kernel over pages decoded by lakeql.ngrams.pqpages (counts, words, casefold): measured
#: 1.0-1.5x DuckDB's `contains` scan CPU at 100 MB (benchmarks/results/ngram5.md), ~3,900 located
#: occurrences' time in the units above
PAGES_BYTES_PER_SECOND = 800e6
#: failed Parquet reads (an OSError of a file being replaced ...) before the Parquet path is off for good
PARQUET_MAX_FAILURES = 3
#: :func:`count_rows` switches to KMP when its candidates times the pattern length exceed this many times
#: the text's bytes (the byte-by-byte candidate check would cost more than one linear pass)
KMP_CANDIDATE_BYTES = 2
#: first offsets of the top rows (snippets) are searched in this many first bytes of each row first
FIRST_PREFIX = 1 << 16
#: ... when there are at most this many rows (a Python loop over them)
FIRST_PREFIX_ROWS = 100
#: rows fetched per Arrow batch (bounds memory: one batch of text at a time)
BATCH_ROWS = 2048
#: ngram_search of a case-sensitive phrase of >= 2 bytes counts with RE2 (``regexp_extract_all``: fast on
#: a literal, one allocation per match) when it has at most this many occurrences per text byte, else with
#: ``replace`` (measured on 100 MB of Python source, benchmarks/results/ngramsearch.md)
RX_DENSITY = 2e-3
#: the native top-k of a phrase DuckDB counts exactly on ASCII rows only keeps every non-ASCII row of the
#: column too (verified here); above this many such rows it is not used (the verified scan instead)
MAX_NONASCII_ROWS = 20_000
#: longer phrases never go to RE2 (a huge literal compiles slowly; such phrases are rare anyway)
RX_MAX_BYTES = 256
#: ASCII word characters: every character that separates Python ``\\w+`` words is outside this class
ASCII_WORD = "0-9A-Za-z_"
#: ASCII characters that are not word characters (always separators, in Python's Unicode \\w too)
ASCII_NONWORD = r"[\x00-\x2F\x3A-\x40\x5B-\x5E\x60\x7B-\x7F]"
#: SQL true on rows holding a non-ASCII character (UTF-8 bytes > characters)
NON_ASCII = "strlen({c}) <> length({c})"
_LOCK = threading.Lock()
#: bytes up to and including the last ASCII non-word byte (greedy): where a word prefix is cut
_LAST_SEPARATOR = re.compile(rb"(?s).*" + ASCII_NONWORD.encode())
_ASCII_LOWER = np.arange(256, dtype=np.uint8)
_ASCII_LOWER[65:91] += 32


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
    """Characters as RE2 escapes (``\\x{HHHH}``; ASCII letters and digits as themselves, so that
    ``(?i)`` folds them): safe inside and outside a character class."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):X}}}" for c in chars)


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

    def __init__(self, sql: str, params: list[Any], exact: str, sure: str = "", sure_params=()) -> None:
        self.sql, self.params, self.exact = sql, params, exact
        # optional: SQL true only on rows that certainly match (no verification needed for them)
        self.sure, self.sure_params = sure, list(sure_params)


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


def _words_regex(ws: list[str], sep: str = f"[^{ASCII_WORD}]") -> str:
    """RE2: the words in order, separated and bounded by ``sep`` (by default anything but an ASCII word
    character: a superset of Python's \\w+ words; with ASCII_NONWORD: certain matches only)."""
    return f"(?:^|{sep})" + f"{sep}+".join(_re_chars(w) for w in ws) + f"(?:{sep}|$)"


def pattern_text(fold: str, pat: bytes) -> str | None:
    """The pattern as text DuckDB can match, or None: format-1 ASCII folding (the exact path of before),
    bytes that are not UTF-8, an empty pattern or one holding a NUL."""
    if fold not in ("none", "casefold"):
        return None
    try:
        text = pat.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text or not text else text


def predicate(unit: str, fold: str, pat: bytes, col: str) -> Pred | None:
    """The DuckDB row predicate of an encoded pattern (see the module docstring), or None."""
    from lakeql.ngrams.text import WORD_SEP

    text = pattern_text(fold, pat)
    if text is None:
        return None
    if unit == "char":
        if fold == "none":
            return Pred(f"contains({col}, ?)", [text], "all")
        if text.isascii():  # rows of pure ASCII: RE2's (?i) is exact there; the others are verified
            return Pred(
                f"({NON_ASCII.format(c=col)} OR regexp_matches({col}, ?))",
                ["(?i)" + _re_chars(text)],
                "ascii",
            )
        sql, params = _folded_superset(text, col)  # a non-ASCII folded character needs one in the row
        return Pred(f"{NON_ASCII.format(c=col)} AND {sql}", params, "none")
    ws = [w for w in text.split(chr(WORD_SEP)) if w]
    if not ws:
        return None
    if fold == "none":
        # a match whose boundaries and separators are all ASCII non-word characters is certain
        strict = _words_regex(ws, ASCII_NONWORD)
        # every matching row holds the longest word as a substring: a cheap literal test first
        return Pred(
            f"(contains({col}, ?) AND regexp_matches({col}, ?))",
            [max(ws, key=len), _words_regex(ws)],
            "ascii",
            f"regexp_matches({col}, ?)",
            [strict],
        )
    if all(w.isascii() for w in ws):
        return Pred(
            f"({NON_ASCII.format(c=col)} OR regexp_matches({col}, ?))", ["(?i)" + _words_regex(ws)], "ascii"
        )
    parts, params = [NON_ASCII.format(c=col)], []
    for w in sorted(set(ws), key=len, reverse=True)[:3]:
        s, p = _folded_superset(w, col)
        parts.append(s)
        params += p
    return Pred(" AND ".join(parts), params, "none")


def has_border(seq) -> bool:
    """True when a proper non-empty prefix of ``seq`` (bytes or a list of words) is also its suffix:
    then two occurrences can overlap, and a count of non-overlapping matches (``replace``, RE2) would
    differ from the index's count of overlapping ones."""
    return any(seq[:i] == seq[len(seq) - i :] for i in range(1, len(seq)))


class Native:
    """A per-row occurrence count computed by DuckDB itself (SQL over the column ``c`` and its bound
    parameters), equal to the index's overlapping count on every row (``scope='all'``) or on rows of
    pure ASCII (``'ascii'``; the other rows are verified in Python)."""

    def __init__(self, sql: str, params: list[Any], scope: str, sparse: bool = False) -> None:
        self.sql, self.params, self.scope = sql, params, scope
        self.sparse = sparse  # RE2 over a sparse case-sensitive phrase: cheaper than the Parquet kernel


def _word_count_regex(ws: list[str]) -> str:
    """RE2: the words in order, ASCII non-word characters between them, ASCII word boundaries around:
    on a row of pure ASCII, its non-overlapping matches are exactly Python's ``\\w+`` word sequences."""
    return r"\b" + f"[^{ASCII_WORD}]+".join(_re_chars(w) for w in ws) + r"\b"


def native_count(unit: str, fold: str, pat: bytes, col: str, density: float) -> Native | None:
    """DuckDB's own exact per-row count of an encoded pattern, or None (the caller's other path):

    * case-sensitive characters, >= 2 bytes, no border: ``len(regexp_extract_all(col, literal))`` when
      the phrase is rare enough (``density``: occurrences per text byte <= :data:`RX_DENSITY`), else
      ``(strlen(col) - strlen(replace(col, p, ''))) // strlen(p)`` (bytes; exact on every row);
    * words without a word-level border (all-ASCII words when case-insensitive) and at most
      :data:`RX_DENSITY` occurrences per byte: RE2 matches with ASCII word boundaries (``(?i)`` when
      insensitive), exact on ASCII rows.
    """
    from lakeql.ngrams.text import WORD_SEP

    text = pattern_text(fold, pat)
    if text is None:
        return None
    if unit == "char":
        if has_border(pat):
            return None
        if fold == "none":
            if len(pat) < 2:
                return None  # one byte: the vectorised count UDF is faster than DuckDB's replace here
            if density <= RX_DENSITY and len(pat) <= RX_MAX_BYTES:
                return Native(f"len(regexp_extract_all({col}, ?))", [_re_chars(text)], "all", sparse=True)
            return Native(f"((strlen({col}) - strlen(replace({col}, ?, ''))) // ?)", [text, len(pat)], "all")
        # case-insensitive: `replace` over lower(col) (exact on ASCII rows) measured slower than the
        # verified scan (three lower() per row): not used
        return None
    ws = [w for w in text.split(chr(WORD_SEP)) if w]
    if not ws or has_border(ws) or len(pat) > RX_MAX_BYTES or density > RX_DENSITY:
        return None  # dense words: RE2's per-match cost exceeds the verified scan's (measured)
    if fold == "none":
        return Native(f"len(regexp_extract_all({col}, ?))", [_word_count_regex(ws)], "ascii")
    if not all(w.isascii() for w in ws):
        return None
    return Native(f"len(regexp_extract_all({col}, ?))", ["(?i)" + _word_count_regex(ws)], "ascii")


# ------------------------------------------------------------------------------- the scan
def scan_errors() -> tuple[type[BaseException], ...]:
    """What a DuckDB scan of the column raises when DuckDB cannot read it as the index did (e.g.
    "Invalid string encoding"): DuckDB's errors, and what the Arrow batch stream turns them into (an
    Arrow error, or a plain ``OSError`` carrying DuckDB's message: seen in a full test run)."""
    import duckdb
    import pyarrow as pa

    return duckdb.Error, pa.ArrowException, OSError


class ColumnScan:
    """DuckDB scans of one indexed column, on cursors of the connection ``ctx.con``."""

    def __init__(
        self, ctx: Any, table: Any, column: str, n_rows: int = -1, freq: np.ndarray | None = None
    ) -> None:
        self.ctx, self.table, self.column = ctx, table, column
        self.failed = False  # DuckDB could not read the column as the index did (e.g. invalid UTF-8)
        self.pq_failures = 0  # failed reads of the Parquet path (its own flag: independent of DuckDB's)
        self._source: str | None = None
        self._unsure: dict[tuple, int] = {}
        self._parquet = None
        self._pq_lock = threading.Lock()
        # the index's row count and byte frequencies (lakeql.ngrams.query.load passes them)
        self.n_rows = int(n_rows)
        self.freq: np.ndarray | None = freq

    def quoted(self) -> str:
        """The indexed column as the rowid view (:meth:`source`) names it: a table column called
        ``__rowid`` (any case, any ``~`` after it) is renamed there (:func:`lakeql.rows.escape_column`),
        ``__rowid`` itself being lakeql's row id."""
        from lakeql.rows import escape_column

        return quote_ident(escape_column(self.column))

    def parquet(self):
        """The column read with pyarrow (:class:`lakeql.ngrams.pqcount.ParquetColumn`), or None when the
        table is not local Parquet files the index numbers as pyarrow reads them, or its reads failed
        :data:`PARQUET_MAX_FAILURES` times."""
        if self.n_rows < 0 or self.pq_failures >= PARQUET_MAX_FAILURES:
            return None
        if self._parquet is None:
            with self._pq_lock:  # one footer read per column, whatever the number of query threads
                if self._parquet is None:
                    from lakeql.ngrams.pqcount import ParquetColumn

                    self._parquet = ParquetColumn(self.table, self.column, self.n_rows)
        return self._parquet if self._parquet.ok else None

    def _pq_failed(self) -> None:
        """A read of the Parquet path failed: None this time (the caller's other path answers); after
        :data:`PARQUET_MAX_FAILURES` failures the path is off (a transient error does not end it)."""
        with self._pq_lock:
            self.pq_failures += 1

    @property
    def pages_usable(self) -> bool:
        """True when the Parquet kernel reads this column through the page decoder (every chunk's codec
        and encodings handled): the cheapest scan of a frequent phrase's counts."""
        pq = self.parquet()
        return pq is not None and pq.pages and pq.decodable

    @property
    def parquet_usable(self) -> bool:
        """True when the Parquet kernel can answer (local Parquet files as the index numbers them)."""
        return self.parquet() is not None

    def _pq_spec(self, unit: str, fold: str, pat: np.ndarray):
        from lakeql.ngrams.pqcount import Spec

        if pattern_text(fold, pat.tobytes()) is None or self.parquet() is None:
            return None
        spec = Spec(unit, fold, pat, self.freq)
        return spec if spec.ok else None

    def _pq_top(self, unit: str, fold: str, pat: np.ndarray, k: int):
        """:meth:`top` counted on the Parquet column with pyarrow + numba (see :mod:`lakeql.ngrams.pqcount`),
        or None."""
        import pyarrow as pa

        spec = self._pq_spec(unit, fold, pat)
        if spec is None:
            return None
        try:
            rid, texts, cnt = self._parquet.top(spec, k, True)  # with the counts
        except (pa.ArrowException, OSError):
            self._pq_failed()
            return None
        # the counts are exact already (best first); the first offsets, as the index holds the rows
        return rid, cnt, first_offsets(rid, texts, unit, fold, pat)

    def _pq_rows(self, unit: str, fold: str, pat: np.ndarray, need_first: bool = False):
        """(row ids ascending, occurrences, first offsets (-1 without ``need_first``)) of the rows holding
        ``pat``, counted on the Parquet column (see :mod:`lakeql.ngrams.pqcount`), or None. Without
        ``need_first`` each row's scan stops at its first occurrence and reports 1 occurrence."""
        import pyarrow as pa

        spec = self._pq_spec(unit, fold, pat)
        if spec is None:
            return None
        try:
            return self._parquet.rows(spec, need_first, need_first)
        except (pa.ArrowException, OSError):
            self._pq_failed()
            return None

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

        col = self.quoted()
        pred = predicate(unit, fold, pat.tobytes(), col)
        if pred is None:
            return None
        # rows of words / folded phrases are counted in numba; every phrase when DuckDB cannot scan
        if not self.usable or (not need_counts and pred.exact != "all"):
            got = self._pq_rows(unit, fold, pat, need_counts)
            if got is not None or not self.usable:
                return got
        fetch_params: list[Any] = []
        if need_counts or pred.exact == "none":
            fetch = "TRUE"
        elif pred.exact == "ascii":
            fetch = f"strlen({col}) <> length({col})"
            if pred.sure:
                fetch = f"({fetch} AND NOT {pred.sure})"
                fetch_params = pred.sure_params
        else:
            fetch = "FALSE"
        if fetch == "FALSE":
            cur = self.ctx.con.cursor()
            try:
                rid = cur.execute(
                    f"SELECT __rowid FROM ({self.source()}) WHERE {pred.sql}", pred.params
                ).fetchnumpy()["__rowid"]
            except scan_errors():
                self.failed = True
                return None
            finally:
                cur.close()
            rid = np.sort(np.asarray(rid, dtype=np.int64))
            return rid, np.ones_like(rid), np.full_like(rid, -1)
        sql = f"SELECT __rowid, CASE WHEN {fetch} THEN {col} END AS t FROM ({self.source()}) WHERE {pred.sql}"
        got = self._verified(sql, fetch_params + pred.params, unit, fold, pat, need_counts)
        if got is None:
            return None
        rid, cnt, off = got
        order = np.argsort(rid, kind="stable")
        return rid[order], cnt[order], off[order]

    def count(self, unit: str, fold: str, pat: np.ndarray) -> int | None:
        """Number of rows containing ``pat`` when DuckDB's predicate is exact on every row (one
        ``count(*)``: nothing comes back but the number; the Parquet kernel when DuckDB cannot read the
        column), else None (see :meth:`rows`)."""

        col = self.quoted()
        pred = predicate(unit, fold, pat.tobytes(), col)
        if pred is None or pred.exact != "all":
            return None
        if self.usable:
            cur = self.ctx.con.cursor()
            try:
                return int(
                    cur.execute(
                        f"SELECT count(*) FROM ({self.source()}) WHERE {pred.sql}", pred.params
                    ).fetchone()[0]
                )
            except scan_errors():
                self.failed = True
            finally:
                cur.close()
        got = self._pq_rows(unit, fold, pat)
        return None if got is None else int(got[0].shape[0])

    def unsure_rows(self, sql: str, params: list[Any]) -> int | None:
        """Rows of the column where ``sql`` holds (rows with a non-ASCII character, or with a character
        whose ``lower()`` is not its folding): one scan, then cached (the index is rebuilt, and this
        object with it, when the table changes); None when DuckDB cannot read the column."""

        key = (sql, tuple(params))
        if key not in self._unsure:
            cur = self.ctx.con.cursor()
            try:
                self._unsure[key] = int(
                    cur.execute(f"SELECT count(*) FROM ({self.source()}) WHERE {sql}", params).fetchone()[0]
                )
            except scan_errors():
                self.failed = True
                return None
            finally:
                cur.close()
        return self._unsure[key]

    def top(
        self, unit: str, fold: str, pat: np.ndarray, k: int, density: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The k rows with the most occurrences (ties: lower row id), best first: (row ids, occurrences,
        first offsets), in ONE DuckDB pass whose top-N keeps k rows and their text.

        First choice (except for sparse case-sensitive phrases, which RE2 counts cheaply in DuckDB): the
        Parquet column counted by the numba kernel (:meth:`_pq_top`, :mod:`lakeql.ngrams.pqcount`).

        The count is DuckDB's own (:func:`native_count`) when it is exact: on every row, or on ASCII
        rows only, and then the top-N keeps every non-ASCII row before the k best ASCII ones (sort key
        ``non-ASCII DESC``, limit k + the column's non-ASCII rows), and the kept rows are counted again
        exactly here. Otherwise, for case-sensitive characters (one byte, or a phrase with a border),
        ``ngram_occ_impl`` (a vectorised numba count, overlapping occurrences too) counts. ``density``:
        the phrase's occurrences per text byte (picks RE2 or ``replace``). None: not answerable here."""

        col = self.quoted()
        raw = pat.tobytes()
        nat = native_count(unit, fold, raw, col, density)
        # DuckDB's RE2 count of a sparse case-sensitive phrase measured cheaper than reading the column
        # with pyarrow (1.5x vs 2.1-2.5x the contains scan, benchmarks/results/ngramcount.md), but not
        # than the page decoder (benchmarks/results/ngram5.md): RE2 only when pages are not decoded here
        pq = self.parquet()
        if nat is None or not nat.sparse or not self.usable or (pq is not None and pq.pages):
            found = self._pq_top(unit, fold, pat, k)
            if found is not None or not self.usable:
                return found
        pred = predicate(unit, fold, raw, col)
        if pred is None:
            return None
        if nat is None:
            if unit != "char" or fold != "none":
                return None
            nat = Native(f"ngram_occ_impl({col}, ?)", [pred.params[0]], "all")
        where, where_params = pred.sql, list(pred.params)
        limit = int(k)
        order, order_params = "", []
        if nat.scope != "all":
            # the non-ASCII rows come first, every one of them kept (and verified below)
            unsure, order_params = NON_ASCII.format(c=col), []
            extra = self.unsure_rows(unsure, order_params)
            if extra is None or extra > MAX_NONASCII_ROWS:
                return None
            limit += extra
            order = f"({unsure}) DESC, "
        sql = (
            f"SELECT __rowid, {col} FROM ({self.source()}) WHERE {where} "
            f"ORDER BY {order}{nat.sql} DESC, __rowid LIMIT ?"
        )
        # the kept rows' exact counts and first offsets, as the index holds them
        got = self._verified(sql, where_params + order_params + nat.params + [limit], unit, fold, pat, True)
        if got is None:
            return None
        rid, cnt, off = got
        best = np.lexsort((rid, -cnt))[:k]
        return rid[best], cnt[best], off[best]

    def _verified(
        self, sql: str, params: list[Any], unit: str, fold: str, pat: np.ndarray, need_counts: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(row ids, occurrences, first offsets) of the rows ``sql`` streams (``__rowid`` and the text),
        each batch verified by :meth:`_verify`; None, and the scan marked failed, when DuckDB cannot read
        the column as the index did (e.g. "Invalid string encoding")."""
        e = np.empty(0, np.int64)
        rid_all, cnt_all, off_all = [e], [e], [e]
        cur = self.ctx.con.cursor()
        try:
            for batch in cur.sql(sql, params=params).to_arrow_reader(BATCH_ROWS):
                rid, cnt, off = self._verify(batch, unit, fold, pat, need_counts)
                rid_all.append(rid)
                cnt_all.append(cnt)
                off_all.append(off)
        except scan_errors():
            self.failed = True
            return None
        finally:
            cur.close()
        return np.concatenate(rid_all), np.concatenate(cnt_all), np.concatenate(off_all)

    def _verify(
        self, batch, unit: str, fold: str, pat: np.ndarray, need_counts: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return verify_batch(batch, unit, fold, pat, need_counts)


def first_offsets(rid: np.ndarray, texts, unit: str, fold: str, pat: np.ndarray) -> np.ndarray:
    """Offset of the first occurrence of ``pat`` in each row of ``texts`` (each holds one) as the index
    holds the row. First searched in each row's first :data:`FIRST_PREFIX` bytes (the top rows of a
    frequent phrase are often MBs long; only rows without one in their prefix are searched whole), cut
    so that the prefix as the index holds it is a prefix of the row as the index holds it: an occurrence
    found there is the row's first, at the same offset. Characters: cut at a character start (the
    folded prefix is a prefix of the folded row). Words: cut just after the last ASCII non-word byte (a
    separator: every word before it is whole, so the prefix's word stream ``\x01 w1 .. wN \x01`` is the
    row's up to its NUL; folding is per character)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    off = np.full(rid.shape[0], -1, np.int64)
    todo = np.arange(rid.shape[0])
    if 0 < rid.shape[0] <= FIRST_PREFIX_ROWS:
        pref = []
        for b in pc.binary_slice(texts.view(pa.large_binary()), 0, FIRST_PREFIX + 4).to_pylist():
            e = min(len(b), FIRST_PREFIX)
            if e < len(b):
                if unit == "char":
                    for _ in range(3):  # never inside a UTF-8 sequence
                        if 0 < e and (b[e] & 0xC0) == 0x80:
                            e -= 1
                else:  # just after the last separator of the prefix (none: an empty prefix)
                    m = _LAST_SEPARATOR.match(b, 0, e)
                    e = m.end() if m else 0
            pref.append(b[:e])
        arr = pa.array(pref, pa.large_binary()).view(pa.large_string())
        i, _, f = verify_batch(
            pa.RecordBatch.from_arrays([pa.array(todo), arr], ["i", "t"]), unit, fold, pat, True
        )
        off[i] = f
        todo = np.flatnonzero(off < 0)
    if todo.shape[0]:
        arr = texts.take(pa.array(todo))
        i, _, f = verify_batch(
            pa.RecordBatch.from_arrays([pa.array(todo), arr], ["i", "t"]), unit, fold, pat, True
        )
        off[i] = f
    return off


def verify_batch(
    batch, unit: str, fold: str, pat: np.ndarray, need_counts: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact (row ids, occurrences, first offsets) of one batch: rows without text (DuckDB's answer
    is exact for them) count 1; the others are searched as the index holds them."""
    import pyarrow.compute as pc

    rid = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    texts = batch.column(1)
    has = np.asarray(pc.is_valid(texts).to_numpy(zero_copy_only=False), dtype=bool)
    cnt = np.ones(rid.shape[0], np.int64)
    off = np.full(rid.shape[0], -1, np.int64)
    if not has.any():
        return rid, cnt, off
    # rows of pure ASCII fold by a numpy lower-casing (str.casefold of ASCII is ASCII lower case);
    # only the others go through Python's casefold
    wide = has.copy()
    if fold == "casefold":
        nonascii = pc.not_equal(pc.binary_length(texts), pc.utf8_length(texts)).fill_null(False)
        wide &= np.asarray(nonascii.to_numpy(zero_copy_only=False), dtype=bool)
        narrow = has & ~wide
        if narrow.any():
            c, f = _search_batch(texts.filter(narrow), unit, "ascii", pat, need_counts)
            cnt[narrow], off[narrow] = c, f
    if wide.any():
        c, f = _search_batch(texts.filter(wide), unit, fold, pat, need_counts)
        cnt[wide], off[wide] = c, f
    keep = cnt > 0
    return rid[keep], cnt[keep], off[keep]


def _search_batch(
    texts, unit: str, fold: str, pat: np.ndarray, need_counts: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``texts`` (no NULLs): occurrences and first offset of ``pat`` in the row as the layer
    holds it (``fold`` 'ascii': rows of pure ASCII, lower-cased in numpy)."""
    from lakeql.ngrams.builder import arrow_text

    data, lengths = arrow_text(texts)
    starts = np.zeros(lengths.shape[0] + 1, np.int64)
    np.cumsum(lengths, out=starts[1:])
    if fold == "ascii":
        data = _ASCII_LOWER[data]  # one table lookup per byte
        fold = "none"
    data, starts = _as_indexed(data, starts, unit, fold)
    return search_rows(data, starts, pat, need_counts)


def _as_indexed(data: np.ndarray, starts: np.ndarray, unit: str, fold: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (each ending with a NUL) transformed exactly as the builder does for the layer."""
    from lakeql.ngrams.text import casefold_rows, word_rows
    from lakeql.ngrams.text import fold as casefold

    folded = fold == "casefold"
    if unit == "word":
        return word_rows(data, starts, folded)
    if not folded:
        return data, starts
    if int(np.count_nonzero(data == 0)) != starts.shape[0] - 1:  # NULs inside rows: the general path
        return casefold_rows(data, starts)
    # every NUL ends a row, and folding keeps NULs (no character folds to or from one): the folded
    # rows' starts follow the NULs of the folded text (one casefold over all the rows, as the builder;
    # invalid UTF-8 as the builder reads it: surrogateescape. The Parquet kernel's rows are not validated)
    out = np.frombuffer(
        casefold(data.tobytes().decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape"),
        np.uint8,
    )
    new_starts = np.zeros(starts.shape[0], np.int64)
    new_starts[1:] = np.flatnonzero(out == 0) + 1
    return out, new_starts


def search_rows(
    text: np.ndarray, starts: np.ndarray, pat: np.ndarray, need_counts: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row (``text[starts[r]:starts[r+1]]``, each ending with a NUL): occurrences of ``pat``
    (overlapping ones too) and the first offset (-1 if none)."""
    from lakeql.ngrams.kernels import count_byte_rows

    if pat.shape[0] == 1:
        return count_byte_rows(text, starts, pat[0], need_counts)
    return count_rows(text, np.asarray(starts, np.int64), pat, pad=1)


def count_rows(
    data: np.ndarray, offs: np.ndarray, pat: np.ndarray, pad: int = 0, need_first: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``data[offs[r]:offs[r + 1] - pad]``: overlapping occurrences of ``pat`` and the first
    offset (-1 if none), vectorised: a SIMD compare finds the pattern's rarest byte (in a sample of the
    text), then numpy gathers check the other bytes of the surviving candidates, one byte at a time."""
    n = offs.shape[0] - 1
    m = pat.shape[0]
    counts = np.zeros(n, np.int64)
    first = np.full(n, -1, np.int64)
    if n == 0 or m == 0 or data.shape[0] < m:
        return counts, first
    if m == 1:  # one byte: a SIMD compare and a per-row sum, no positions
        hit = data == pat[0]
        lengths = np.diff(offs) - pad
        ok = lengths > 0
        if ok.any():
            counts[ok] = np.add.reduceat(hit, offs[:-1][ok], dtype=np.int64)  # empty rows skipped
        if need_first:
            has = np.flatnonzero(counts)
            first[has] = _first_true(hit, offs, has)
        return counts, first
    freq = np.bincount(data[: 1 << 16], minlength=256)
    anchor = int(np.argmin(freq[pat]))
    pos = np.flatnonzero(data == pat[anchor])
    if anchor:
        pos = pos[pos >= anchor] - anchor
    pos = pos[pos <= data.shape[0] - m]
    if pos.shape[0] * m > KMP_CANDIDATE_BYTES * data.shape[0]:
        # repetitive text (a run of spaces ...): checking each candidate byte by byte would cost text x
        # pattern; KMP is one linear pass
        from lakeql.ngrams.countkernel import failure_table, kmp_rows

        return kmp_rows(data, np.asarray(offs, np.int64), pad, pat, failure_table(pat))
    for t in np.argsort(freq[pat], kind="stable"):  # rarest bytes first: the candidates shrink fastest
        if t != anchor and pos.shape[0]:
            pos = pos[data[pos + t] == pat[t]]
    rows = np.searchsorted(offs, pos, side="right") - 1
    keep = pos + m <= offs[rows + 1] - pad  # inside one row (not across a row end)
    pos, rows = pos[keep], rows[keep]
    counts += np.bincount(rows, minlength=n)
    if not need_first:
        return counts, first
    uniq, at = np.unique(rows, return_index=True)
    first[uniq] = pos[at] - offs[uniq]
    return counts, first


def _first_true(hit: np.ndarray, offs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Offset of the first True of ``hit`` in each of ``rows`` (each holds one)."""
    pos = np.flatnonzero(hit)
    at = np.searchsorted(pos, offs[rows])
    return pos[at] - offs[rows]


def occurrences(texts, pats):
    """``ngram_occ_impl(text, pattern)``, an Arrow UDF: overlapping occurrences of the pattern's UTF-8
    bytes in each text (NULL text or pattern: NULL), vectorised (:func:`count_rows`) per distinct
    pattern of the chunk."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakeql.ngrams.builder import arrow_buffers

    out = np.zeros(len(texts), np.int64)
    valid = pc.and_(pc.is_valid(texts), pc.is_valid(pats))
    data, offs = arrow_buffers(texts)
    distinct = pc.unique(pats.filter(valid)).to_pylist()
    for p in distinct:
        counts, _ = count_rows(data, offs, np.frombuffer(p.encode("utf-8"), np.uint8), need_first=False)
        if len(distinct) == 1:
            out = counts
        else:
            mask = np.asarray(pc.equal(pats, p).fill_null(False).to_numpy(zero_copy_only=False), bool)
            out[mask] = counts[mask]
    return pa.array(out, pa.int64(), mask=~np.asarray(valid.to_numpy(zero_copy_only=False), bool))
