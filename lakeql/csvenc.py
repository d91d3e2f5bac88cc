"""CSV files that are not UTF-8: their encoding detected, and a UTF-8 copy read in their place.

DuckDB's CSV reader (2.0.1) reads UTF-8 (with or without a byte order mark) natively; its ``encoding``
option adds ``utf-16`` (little-endian only) and ``latin-1`` (which refuses the bytes 0x80-0x9F, so not
Windows-1252: the curly quotes, dashes and euro sign of most "Latin-1" files), and anything else needs the
``encodings`` extension (downloaded by ``INSTALL``, and one encoding per scan, where a table may be made of
several files of different encodings). So lakeql keeps DuckDB's own reader for every file it reads as is,
and only a CSV file DuckDB refuses is looked at here (nothing is read twice on the hot path: a UTF-8 file
costs nothing more than before):

1. a byte order mark decides: UTF-8 (``EF BB BF``), UTF-32 LE/BE (``FF FE 00 00`` / ``00 00 FE FF``),
   UTF-16 LE/BE (``FF FE`` / ``FE FF``);
2. no mark, and NUL bytes in at least 30% of the odd (even) positions of the first 64 KB and in under 5%
   of the others: UTF-16 LE (BE) without a mark;
3. else a strict UTF-8 check of the bytes (streamed, C speed): a file that is valid UTF-8 failed for
   another reason, which is reported as it is;
4. else the single-byte fallback ``cp1252`` (Windows-1252; its five undefined bytes 0x81, 0x8D, 0x8F,
   0x90, 0x9D as Latin-1, i.e. U+0081...), or ``utf-8+cp1252`` for a file that is *mostly* UTF-8: its
   valid multi-byte UTF-8 sequences carry more bytes beyond their first than there are invalid bytes
   (a UTF-8 file with a few Windows-1252 bytes pasted in): each valid sequence is UTF-8, each invalid
   byte Windows-1252.
5. a single-byte file is ``mac_roman`` (Mac OS Roman) instead when its letters say so: every byte
   0x80-0xFF right after an ASCII letter (and not before another such byte) is read both ways, and it is
   *plausible* when it is a letter of the case of its word (the next letter's case, else the previous
   one's; either case after a word's first capital: ``Sí``, ``Né``), an apostrophe, dash or middle dot
   inside a word, or a closing quote (``“`` too, as German closes), ellipsis, footnote mark, unit or
   currency at a word's end (``12 M€``: :data:`INSIDE`, :data:`END`). Windows-1252 text is never taken
   for Mac Roman by these (tests/test_review19.py: a survey's ``Sí`` was read ``SÌ``, ``M€`` ``MÄ``).
   ``Vélez`` in Mac Roman is ``V\x8elez``: ``é`` there, ``Ž`` (a capital inside a lower-case word) in
   Windows-1252; ``it’s`` in Mac Roman is ``it\xd5s``: ``Õ`` in Windows-1252. Mac Roman is chosen when
   at least 3 bytes are plausible only as Mac Roman and more than 4 times as many as are plausible only
   as Windows-1252 (:func:`mac_roman_evidence`). Measured on the UTF-8 files of fivethirtyeight with
   non-ASCII text that each encoding can hold, saved in it: 0 of 29 Windows-1252 files read as Mac Roman
   (26 cp1252; 3 are valid UTF-8 that way), 15 of 29 Mac Roman files detected (the other 14 hold too few
   such bytes, 8 none at all: they read as Windows-1252, as before); of the 16 files stored in another
   encoding there, the two ``mad-men`` files (``Chloë Sevigny``, ``Alexander Skarsgård``, were
   ``Chlo‘``, ``SkarsgŒrd``) and ``realDonaldTrump.csv`` read as Mac Roman.
6. before the single-byte answer: a double-byte CJK encoding (Shift-JIS, EUC-JP, GBK/GB18030, Big5,
   EUC-KR/CP949) when most high bytes come in runs, the whole file decodes strictly and its text looks
   like the language (:func:`cjk_encoding`).

The decoded text is written as a UTF-8 file (no BOM) into ``INDEX_DIR/csv_utf8/`` (or, when there is no
writable index dir, ``$XDG_CACHE_HOME/lakeql/csv_utf8``; never into the lake, which may be read-only),
under a name made from the source's path, size, mtime and the encoding, through a temporary name and a
rename: a changed file gets a new copy (in the user's cache it replaces the file's older copies: one
copy per file there), and a build removes the copies in the index dir that no table uses. The copy is read by
every scan of the table (views, profiles, indexes) in place of the file, and the catalog records each
file's encoding (``catalog/tables.parquet`` ``file_encodings``; ``lakeql doctor`` lists them).

A file DuckDB refuses whose lines end in more than one way (``\r\n``, ``\n`` and ``\r`` mixed; or whose
UTF-8 copy DuckDB refuses for that) is read through a copy whose every line ends with ``\n`` (label
``+lf``: ``utf-8+lf``, ``cp1252+lf``); a line end inside a quoted value becomes ``\n`` too.

Other single-byte encodings (Latin-9, Cyrillic, ...) cannot be told from Windows-1252 by their bytes;
such a file is read as Windows-1252 (its non-ASCII letters come out as other characters), and a Mac
Roman file with too few letters to tell as well: save it as UTF-8 to fix that.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import os
import secrets
import threading
from pathlib import Path
from typing import Any, BinaryIO

DIR = "csv_utf8"
VERSION = 1  # bump when the same bytes would be decoded differently (the copies' names change)
CHUNK = 8 << 20
NATIVE = "utf-8"  # the label of a file DuckDB reads as is
#: the encodings a file is read through a copy as
_BASE_LABELS = ("cp1252", "mac_roman", "utf-8+cp1252", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be",
                "cp949", "cp932", "shift_jisx0213", "euc_jp", "euc_jisx0213", "gb18030", "cp950")
#: ``+lf``: a file whose lines end in more than one way (``\r\n``, ``\n``, ``\r`` mixed: files edited on
#: two systems, or concatenated), which DuckDB's sniffer refuses; its copy ends every line with ``\n``
LF = "+lf"
LABELS = (*_BASE_LABELS, "utf-8" + LF, *(b + LF for b in _BASE_LABELS))

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _cp1252_table() -> str:
    out = []
    for b in range(256):
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))  # undefined in cp1252: Latin-1
    return "".join(out)


CP1252 = _cp1252_table()
_STATE = threading.local()


def _fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: the invalid bytes of a UTF-8 decode as Windows-1252 (counted)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    _STATE.invalid = getattr(_STATE, "invalid", 0) + len(bad)
    return codecs.charmap_decode(bytes(bad), "strict", CP1252)[0], exc.end


codecs.register_error("lakeql-cp1252", _fallback)

MAC_MIN = 3  # Mac Roman needs at least this many bytes plausible only as Mac Roman,
MAC_RATIO = 4  # and more than this many times those plausible only as Windows-1252
MAC_LOOKS = 100_000  # bytes after a letter looked at per file, at most (the rest is not scanned for them)


def _plausible_bytes(table: str) -> Any:
    """A (3, 2, 256) bool array: [word case (0 lower, 1 upper, 2 either), inside a word, byte b] ->
    whether byte b of the single-byte ``table`` is a plausible character there (see the module docstring,
    rule 5)."""
    import unicodedata

    import numpy as np

    out = np.zeros((3, 2, 256), dtype=bool)
    for upper in (0, 1):
        for inside in (0, 1):
            for b in range(0x80, 0x100):
                c = table[b]
                letter = unicodedata.category(c) == ("Lu" if upper else "Ll")
                out[upper, inside, b] = letter or c in (INSIDE if inside else END)
    out[2] = out[0] | out[1]
    return out


#: the signs plausible right after a letter inside a word (an apostrophe, also typed as ``‘`` or ``´``, a
#: dash) and at a word's end (closing quotes, also German ``“`` and ``‘``, an ellipsis, a footnote mark,
#: units and currencies: ``12 M€``, ``N°``, ``Nº``). Each sign makes its byte plausible in both readings:
#: one is listed only when the other encoding's character at its byte is not common after a letter
#: (not ``†``: Mac Roman's ``†`` is Windows-1252's no-break space, as in French ``prix\xa0:``; not
#: ``¥``: it is ``´``; not a middle dot: it is ``á``)
INSIDE = "’‘´–—"
END = "’‘”“»›…–—™®©°²³¹ºª€£¢‡•´"


_PLAUSIBLE: list[Any] = []


def mac_roman_evidence(data: bytes, looks: int = MAC_LOOKS) -> tuple[int, int, int]:
    """(bytes of ``data`` plausible only as Mac Roman, bytes plausible only as Windows-1252, bytes looked
    at): the bytes 0x80-0xFF right after an ASCII letter and not before another such byte (runs are
    mojibake: no vote), ``looks`` at most (rule 5 of the module docstring). Vectorized (numpy)."""
    import numpy as np

    if not _PLAUSIBLE:
        _PLAUSIBLE.append(_plausible_bytes(bytes(range(256)).decode("mac_roman")) ^ _plausible_bytes(CP1252))
        _PLAUSIBLE.append(_plausible_bytes(bytes(range(256)).decode("mac_roman")))
    differ, mac_ok = _PLAUSIBLE
    a = np.frombuffer(data, dtype=np.uint8)
    if len(a) < 2 or looks <= 0:
        return 0, 0, 0
    folded = a | 0x20  # ASCII letters folded to lower case
    letter = (folded >= ord("a")) & (folded <= ord("z"))
    high = a >= 0x80
    hit = np.zeros(len(a), dtype=bool)
    hit[1:] = high[1:] & letter[:-1]
    hit[:-1] &= ~high[1:]
    at = np.flatnonzero(hit)[:looks]
    if not len(at):
        return 0, 0, 0
    nxt = np.minimum(at + 1, len(a) - 1)
    inside = letter[nxt] & (at + 1 < len(a))
    capital = (a >= ord("A")) & (a <= ord("Z"))
    # the word's case: the next letter's; at a word's end the previous one's, but a capital that begins
    # the word (``Sí``, ``Né``, ``M€``) says nothing: a title-case word and an upper-case one look alike
    before = np.maximum(at - 2, 0)
    begins = (at < 2) | ~letter[before]
    case = np.where(inside, capital[nxt], np.where(capital[at - 1] & begins, 2, capital[at - 1]))
    case = case.astype(np.intp)
    b = a[at]
    ins = inside.astype(np.intp)
    decides = differ[case, ins, b]
    mac = int(np.count_nonzero(decides & mac_ok[case, ins, b]))
    return mac, int(np.count_nonzero(decides)) - mac, len(at)


class EncodingError(ValueError):
    """A CSV file whose bytes are not of the encoding its byte order mark names."""


class CsvShapeError(ValueError):
    """A CSV file DuckDB would read wrongly without an error (empty, or rows of different lengths)."""


class DecodedReadError(ValueError):
    """DuckDB could not read the UTF-8 copy of a CSV file that is not UTF-8 (the message says why)."""


def _open(src: str | Path, fs: Any, root: Any, rel: str) -> BinaryIO:
    if fs is None:
        f: Any = open(src, "rb")  # noqa: SIM115 - closed by the caller
    else:
        from lakeql.sources.remote import open_object

        f = open_object(fs, root, rel)
    if rel.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def _chunks(f: BinaryIO) -> Any:
    while True:
        b = f.read(CHUNK)
        if not b:
            return
        yield b


def _utf16_without_bom(head: bytes) -> str | None:
    n = len(head) - len(head) % 2
    if n < 4:
        return None
    even = head[0:n:2].count(0) / (n // 2)
    odd = head[1:n:2].count(0) / (n // 2)
    if odd >= 0.3 and even < 0.05:
        return "utf-16-le"
    if even >= 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def detect(opener: Any) -> str | None:
    """The encoding of the bytes ``opener()`` yields (see the module docstring), or None when they are
    plain UTF-8 (no BOM: DuckDB reads them as they are)."""
    with contextlib.closing(opener()) as f:
        head = f.read(1 << 16)
        for bom, label in _BOMS:
            if head.startswith(bom):
                if label != "utf-8-sig":
                    return label
                break
        else:
            guess = _utf16_without_bom(head)
            if guess is not None:
                return guess
        dec = codecs.getincrementaldecoder("utf-8-sig")("lakeql-cp1252")
        _STATE.invalid = 0
        extra = 0  # bytes beyond the first of valid multi-byte sequences (bytes - characters, valid part)
        chunk = head
        only_mac = only_cp = seen = 0
        while chunk:
            text = dec.decode(chunk)
            extra += len(chunk) - len(text)
            if _STATE.invalid and seen < MAC_LOOKS:  # not UTF-8: which single-byte encoding
                more = mac_roman_evidence(chunk, MAC_LOOKS - seen)
                only_mac, only_cp, seen = only_mac + more[0], only_cp + more[1], seen + more[2]
            chunk = f.read(CHUNK)
        dec.decode(b"", final=True)
        invalid = _STATE.invalid
    if head.startswith(codecs.BOM_UTF8):
        extra -= len(codecs.BOM_UTF8)
    if not invalid:
        return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else None
    if head.startswith(codecs.BOM_UTF8):  # marked as UTF-8: its invalid bytes only are Windows-1252
        return "utf-8+cp1252"
    if extra > invalid:
        return "utf-8+cp1252"
    cjk = cjk_encoding(head, opener)  # before Mac Roman: Shift-JIS pairs pass for Mac Roman letters
    if cjk is not None:
        return cjk
    return "mac_roman" if only_mac >= MAC_MIN and only_mac > MAC_RATIO * only_cp else "cp1252"


#: the double-byte CJK encodings told apart by :func:`cjk_encoding`, by language, in the order tried
#: (each the superset its family's files are read with: cp949 of EUC-KR, cp932 of Shift-JIS, gb18030 of
#: GB2312 and GBK, cp950 of Big5)
CJK_KOREAN = ("cp949",)
CJK_JAPANESE = ("cp932", "shift_jisx0213", "euc_jp", "euc_jisx0213")
CJK_CHINESE = ("gb18030", "cp950")
CJK_MIN_HIGH = 16  # bytes 0x80-0xFF in the first 64 KB, at least
CJK_PAIRED = 0.6  # of which at least this share next to another such byte (Latin accents stand alone)
#: the least share of a text's Hangul syllables (Han characters) among :mod:`lakeql.cjkfreq`'s common ones
#: (real text 0.33-0.83, mis-decoded single-byte text 0-0.17: review36)
CJK_COMMON = 0.25
#: the fewest kana, Hangul and Han characters a file's first 64 KB must hold to be read as CJK (3 words of
#: Arabic, Thai or Cyrillic of even lengths passed every other test; review36)
CJK_MIN_CHARS = 24


def _common(cps: Any, common: frozenset[str]) -> Any:
    """Which of the code points ``cps`` (uint32 array) are in ``common`` (:mod:`lakeql.cjkfreq`)."""
    import numpy as np

    return np.isin(cps, np.fromiter((ord(c) for c in common), dtype=np.uint32))


def _script_shares(text: str) -> tuple[float, float, float]:
    """(kana, Hangul, Han and CJK punctuation) shares of the non-ASCII characters of ``text``; all 0
    when more than a tenth of them touch an ASCII letter (``Rodr?guez``: Latin text, or UTF-8 saved
    through another encoding, whose byte pairs a CJK codec also decodes; measured: 0.4-2.1% in real
    Japanese, Chinese and Korean text, 14-100% in such files of fivethirtyeight). Half-width katakana
    are not counted as kana (the bytes 0xA1-0xDF alone are such katakana in Shift-JIS).

    Hangul (Han) counts as 0 when fewer than :data:`CJK_COMMON` of its syllables (characters) are among
    the few hundred most frequent ones (:mod:`lakeql.cjkfreq`): Cyrillic, Greek, Hebrew, Arabic and Thai
    single-byte text whose byte pairs CP949, GB18030 or Big5 decode gives rare ones (review36: 3 Cyrillic
    words of even length were GB18030)."""
    import numpy as np

    from lakeql.cjkfreq import HAN, HANGUL

    all_cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    high = all_cps > 0x7F
    cps = all_cps[high]
    if not cps.size:
        return 0.0, 0.0, 0.0
    letter = ((all_cps | 0x20) >= 0x61) & ((all_cps | 0x20) <= 0x7A)
    touch = np.zeros_like(high)
    touch[1:] |= letter[:-1]
    touch[:-1] |= letter[1:]
    if (high & touch).sum() * 10 > cps.size:
        return 0.0, 0.0, 0.0
    kana = (cps >= 0x3040) & (cps <= 0x30FF)
    hangul = ((cps >= 0xAC00) & (cps <= 0xD7A3)) | ((cps >= 0x1100) & (cps <= 0x11FF)) | (
        (cps >= 0x3130) & (cps <= 0x318F))
    han = ((cps >= 0x4E00) & (cps <= 0x9FFF)) | ((cps >= 0x3400) & (cps <= 0x4DBF)) | (
        (cps >= 0x3000) & (cps <= 0x303F)) | ((cps >= 0xFF01) & (cps <= 0xFF60))
    syllables = (cps >= 0xAC00) & (cps <= 0xD7A3)
    if not syllables.sum() or _common(cps[syllables], HANGUL).mean() < CJK_COMMON:
        hangul[:] = False  # jamo alone, or rare syllables: not Korean text
    ideographs = (cps >= 0x4E00) & (cps <= 0x9FFF)
    if ideographs.sum() and _common(cps[ideographs], HAN).mean() < CJK_COMMON:
        han[:] = False
    if int((kana | hangul | han).sum()) < CJK_MIN_CHARS:
        return 0.0, 0.0, 0.0  # too short to tell: a few words of another script can pass (review36)
    n = float(cps.size)
    return float(kana.sum()) / n, float(hangul.sum()) / n, float(han.sum()) / n


def _decodes(opener: Any, label: str) -> bool:
    """Whether the whole file decodes as ``label`` without an error (streamed; C codecs)."""
    dec = codecs.getincrementaldecoder(label)("strict")
    try:
        with contextlib.closing(opener()) as f:
            for chunk in _chunks(f):
                dec.decode(chunk)
        dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def cjk_encoding(head: bytes, opener: Any) -> str | None:
    """The double-byte CJK encoding of a file that is not UTF-8, or None (then a single-byte one).

    Shift-JIS, EUC-JP, GBK, Big5 and EUC-KR/CP949 files (common exports of Japanese, Chinese and Korean
    systems) were read as Windows-1252: every character came out as two Latin ones (``の`` as ``ÇÃ``),
    silently. A file qualifies when most of its high bytes come in runs (CJK characters are two bytes
    >= 0x80, mostly in a row; Latin accents stand alone), the whole file decodes without an error, and
    the text of its first 64 KB looks like the language: Korean when Hangul is at least half of its
    non-ASCII characters; else Japanese when kana are at least a tenth (every Japanese sentence has
    them; Chinese and mis-decoded text has next to none); else Chinese (GB18030 or Big5, the one whose
    text is more Han) when Han and CJK punctuation are at least 80%. Anything else stays single-byte;
    ``--csv-encoding`` names the encoding when the guess is wrong."""
    high = [i for i, b in enumerate(head) if b >= 0x80]
    if len(high) < CJK_MIN_HIGH:
        return None
    hs = set(high)
    paired = sum(1 for i in high if i - 1 in hs or i + 1 in hs)
    if paired < CJK_PAIRED * len(high):
        return None
    cut = head[: head.rfind(b"\n") + 1] or head  # whole lines: no character cut at the end

    def shares(label: str) -> tuple[float, float, float] | None:
        try:
            return _script_shares(cut.decode(label))
        except UnicodeDecodeError:
            return None

    for labels, test in ((CJK_KOREAN, lambda k, h, c: h >= 0.5), (CJK_JAPANESE, lambda k, h, c: k >= 0.1)):
        for label in labels:
            got = shares(label)
            if got is not None and test(*got) and _decodes(opener, label):
                return label
    chinese = [(got[2], label) for label in CJK_CHINESE if (got := shares(label)) is not None]
    for han, label in sorted(chinese, reverse=True):
        if han >= 0.8 and _decodes(opener, label):
            return label
    return None


def mixed_line_ends(opener: Any) -> bool:
    """True when the bytes ``opener()`` yields end their lines in more than one way (two of ``\r\n``, a
    lone ``\n``, a lone ``\r``). Bytes, so for UTF-8 and single-byte encodings only."""
    crlf = cr = lf = 0
    carry = b""
    with contextlib.closing(opener()) as f:
        for chunk in _chunks(f):
            chunk = carry + chunk
            carry = chunk[-1:] if chunk.endswith(b"\r") else b""  # a \r\n split between two chunks
            if carry:
                chunk = chunk[:-1]
            n = chunk.count(b"\r\n")
            crlf += n
            cr += chunk.count(b"\r") - n
            lf += chunk.count(b"\n") - n
            if (crlf > 0) + (cr > 0) + (lf > 0) > 1:
                return True
    cr += len(carry)
    return (crlf > 0) + (cr > 0) + (lf > 0) > 1


def _one_line_end(chunks: Any) -> Any:
    """``chunks`` of text with every ``\r\n`` and lone ``\r`` made ``\n`` (also inside quoted values)."""
    pending = ""
    for text in chunks:
        text = pending + text
        pending = ""
        if text.endswith("\r"):
            text, pending = text[:-1], "\r"
        yield text.replace("\r\n", "\n").replace("\r", "\n")
    if pending:
        yield "\n"


def _decoded(f: BinaryIO, label: str, named: bool = False) -> Any:
    """The text of ``f`` decoded as ``label``, in chunks. ``named``: the user named ``label``
    (``--csv-encoding``), so invalid bytes say so."""
    if label.endswith(LF):
        yield from _one_line_end(_decoded(f, label[: -len(LF)], named))
        return
    if label == "utf-8":
        label = "utf-8-sig"  # (+lf) a UTF-8 file: only its line ends change, and a BOM goes
    if label == "cp1252":
        for chunk in _chunks(f):
            yield codecs.charmap_decode(chunk, "strict", CP1252)[0]
        return
    if label == "mac_roman":  # every byte defined: no state between chunks
        for chunk in _chunks(f):
            yield chunk.decode("mac_roman")
        return
    if label == "utf-8+cp1252":
        dec = codecs.getincrementaldecoder("utf-8-sig")("lakeql-cp1252")
    else:
        dec = codecs.getincrementaldecoder(label)("strict")
    first = True
    try:
        for chunk in _chunks(f):
            text = dec.decode(chunk)
            if first and text.startswith("\ufeff"):
                text = text[1:]  # utf-16/32 with a BOM: the mark is not text
            first = first and not text
            yield text
        yield dec.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        if named:
            raise EncodingError(
                f"the file is not valid {label}, the encoding named by --csv-encoding ({exc.reason} at "
                f"byte {exc.start} of a block): name its own encoding, or save it as UTF-8"
            ) from None
        raise EncodingError(
            f"the file starts like {label} but is not valid {label} ({exc.reason} at byte "
            f"{exc.start} of a block): save it as UTF-8"
        ) from None


def user_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lakeql" / DIR


def cache_dirs(store: Any) -> list[Path]:
    """Where decoded copies are looked for, the first writable one written: ``INDEX_DIR/csv_utf8`` when
    the index dir exists, then the user's cache."""
    out = []
    if store is not None and Path(store.root).is_dir():
        out.append(Path(store.root) / DIR)
    out.append(user_cache_dir())
    return out


def copy_name(source: str, size: int, mtime_ns: int, label: str, etag: str = "") -> str:
    """The copy's file name: a hash of the source as listed. ``etag``: an object's ETag (S3 times are whole
    seconds: an object rewritten with the same size within a second differs by its ETag only); local files
    have none and keep the name they always had."""
    tag = f"\0{etag}" if etag else ""
    key = f"{VERSION}\0{source}\0{size}\0{mtime_ns}\0{label}{tag}".encode("utf-8", "surrogatepass")
    return f"{_source_prefix(source)}{hashlib.sha1(key).hexdigest()[:24]}.csv"


def _source_prefix(source: str) -> str:
    """The start of the names of every copy of ``source`` (whatever its size, time and encoding): a new
    copy replaces the older ones (:func:`decode_file`), so a folder holds one copy per source file."""
    return hashlib.sha1(f"{VERSION}\0{source}".encode("utf-8", "surrogatepass")).hexdigest()[:16] + "-"


def _drop_older(folder: Path, name: str) -> None:
    """Remove the other copies of the source of copy ``name`` in ``folder`` (made from earlier versions of
    the file): without this the user's cache, which no build prunes, grew by one copy per change."""
    from lakeql.store import TEMP_RE, _pid_alive

    prefix = name[: name.index("-") + 1]
    for p in folder.glob(f"{prefix}*.csv"):
        if p.name != name:
            with contextlib.suppress(OSError):
                p.unlink()
    for p in folder.glob(f".{prefix}*.tmp"):  # left by a process killed while it wrote a copy of it (no
        m = TEMP_RE.match(p.name)  # clean_stale() runs here: the user's cache is no index dir)
        if m is not None and not _pid_alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                p.unlink()


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)


def existing_copy(dirs: list[Path], name: str) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


def decode_file(
    table: Any, stamp: Any, fs: Any, dirs: list[Path], label: str | None = None, again: bool = False
) -> tuple[str, str] | None:
    """(encoding, UTF-8 copy) of CSV file ``stamp`` of ``table``, made when missing; None when the file
    is plain UTF-8 (DuckDB reads it as it is). ``label``: the encoding recorded for it (not detected
    again). Raises :class:`EncodingError` for bytes that do not match their byte order mark, and
    ``OSError`` when no cache folder is writable. ``again``: made again even when a copy exists (one
    whose size no catalog recorded; replaced atomically, so a reader of the old one keeps it)."""
    from lakeql.lake import join_root

    src = join_root(table.root, stamp.path)

    def opener() -> BinaryIO:
        return _open(src, fs, table.root, stamp.path)

    if label is None:
        label = detect(opener)
        if label is None or label == "utf-8-sig":
            if not mixed_line_ends(opener):
                return None
            label = "utf-8" + LF  # DuckDB refused it, and its lines end in several ways: one in the copy
        elif getattr(table, "csv_encoding", None) and _named_applies(label, table.csv_encoding, opener):
            label = table.csv_encoding  # not UTF-8, no byte order mark: the user's encoding, not a guess
    named = bool(getattr(table, "csv_encoding", None)) and label.removesuffix(LF) == table.csv_encoding
    name = copy_name(src, stamp.size, stamp.mtime_ns, label, getattr(stamp, "etag", ""))
    have = None if again else existing_copy(dirs, name)
    if have is not None:
        return label, str(have)
    target = next((d for d in dirs if _writable(d)), None)
    if target is None:  # the index dir's and the cache's failure, not the file's (review30)
        from lakeql.store import IndexWriteError

        raise IndexWriteError(
            f"no writable folder for the UTF-8 copy of a {label} CSV file (tried "
            f"{', '.join(str(d) for d in dirs)}): make one writable (free space, fix its permissions, "
            "set XDG_CACHE_HOME) or save the file as UTF-8, then run 'lakeql index --refresh LAKE'"
        )
    final = target / name
    tmp = target / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        with contextlib.closing(opener()) as f:
            _write_copy(f, tmp, label, named)
        os.replace(tmp, final)
    except OSError as exc:
        from lakeql.store import _write_error, write_error

        if getattr(exc, "lakeql_write", False):
            # the copy could not be written (disk full, quota, file size limit, too many open files, a
            # name too long, the folder removed): the index's failure, not the file's, whatever the errno
            # (review30: trial12 took only WRITE_ERRNOS); taken for a bad file, a good table was recorded
            # as unreadable and a refresh kept it out of the lake (its fingerprint had not changed)
            err = write_error(final, exc) or _write_error(final, exc)
            # the copy's name is a hash: name the CSV file it is of (the one to give room, or save as UTF-8)
            raise type(err)(f"the UTF-8 copy of CSV file {stamp.path!r} of table "
                            f"{getattr(table, 'key', table)}: {err}") from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    if target == user_cache_dir():  # INDEX_DIR/csv_utf8 is pruned by builds: lake.duckdb's views (the
        # stock CLI) read the copies the last build made until the next one
        _drop_older(target, name)
    return label, str(final)


def _write_copy(f: BinaryIO, tmp: Path, label: str, named: bool) -> None:
    """Write the UTF-8 text of source ``f`` to ``tmp``. An ``OSError`` of the writing side (opening,
    writing, closing ``tmp``) is marked ``lakeql_write``; one of reading ``f`` (a source without read
    permission, a failing disk: a bad file, left out of its table) is not."""
    try:
        out = open(tmp, "w", encoding="utf-8", newline="", errors="surrogatepass")  # noqa: SIM115
    except OSError as exc:
        exc.lakeql_write = True  # type: ignore[attr-defined]
        raise
    try:
        for text in _decoded(f, label, named):
            try:
                out.write(text)
            except OSError as exc:
                exc.lakeql_write = True  # type: ignore[attr-defined]
                raise
    finally:
        try:
            out.close()  # flushes the last buffer: a full disk can fail here too
        except OSError as exc:
            exc.lakeql_write = True  # type: ignore[attr-defined]
            raise


SIZES = ".csv_utf8_sizes.json"  # INDEX_DIR/.csv_utf8_sizes.json: {copy name: bytes} of the copies the last
# build kept


def prune(store: Any, keep: set[str]) -> int:
    """Remove the decoded copies in ``INDEX_DIR/csv_utf8`` that no table uses (``keep``: their paths);
    returns how many, and records the size of each kept copy (:data:`SIZES`: a connection that attaches
    prebuilt views checks a copy against it, :func:`intact`). Temporary files are left to
    :meth:`lakeql.store.Store.clean_stale`."""
    import json

    d = Path(store.root) / DIR
    if not d.is_dir():
        return 0
    gone = 0
    sizes = {}
    for p in d.iterdir():
        if p.name.startswith(".") or not p.name.endswith(".csv"):
            continue
        if str(p) in keep:
            with contextlib.suppress(OSError):
                sizes[p.name] = p.stat().st_size
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            gone += 1
    old = None
    with contextlib.suppress(OSError, ValueError, RecursionError):  # (the file is data: any bytes)
        old = json.loads((d.parent / SIZES).read_text())
    if old != sizes:
        with store.atomic_file(d.parent / SIZES) as tmp:
            tmp.write_text(json.dumps(sizes, sort_keys=True))
    return gone


_RECORDED: dict[str, tuple[tuple[int, int, int], dict | None]] = {}


def recorded_sizes(index_root: Path) -> dict | None:
    """The copy sizes :data:`SIZES` records in ``index_root`` (None: none, or not a ``{name: bytes}``
    object), read once per version of the file: a connection checks every copy of a lake against it (it
    was read again per copy: 2,000 Latin-1 CSV tables doubled a connection's CPU, review21). The file is
    data: a value of another shape, or JSON nested too deep to parse, is no record (no crash)."""
    import json

    f = Path(index_root) / SIZES
    try:
        st = f.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _RECORDED.get(str(f))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        got = json.loads(f.read_text())
    except (OSError, ValueError, RecursionError):
        got = None
    if not isinstance(got, dict):
        got = None
    if len(_RECORDED) > 64:
        _RECORDED.clear()
    _RECORDED[str(f)] = (stamp, got)
    return got


def intact(path: str) -> bool:
    """Whether the copy ``path`` exists with the size the last build recorded for it (:data:`SIZES`; a
    copy it did not record is taken as it is): a truncated copy was read silently short (trial10)."""
    p = Path(path)
    try:
        size = p.stat().st_size if p.is_file() else None
    except OSError:
        return False
    if size is None:
        return False
    sizes = recorded_sizes(p.parent.parent)
    want = sizes.get(p.name) if sizes is not None else None
    return want is None or want == size


def damaged_copies(index_root: Path | None) -> set[str]:
    """The names of the copies the last build recorded (:data:`SIZES`) that are now missing or of another
    size: a stat per recorded copy, nothing when there are none."""
    if index_root is None:
        return set()
    d = Path(index_root) / DIR
    sizes = recorded_sizes(Path(index_root))
    bad = set()
    for name, want in sizes.items() if sizes is not None else ():
        try:
            if (d / name).stat().st_size != want:
                bad.add(name)
        except (OSError, ValueError):
            bad.add(name)
    return bad


def copy_names(table: Any) -> set[str]:
    """The names every copy of ``table``'s files could have (one per file and encoding)."""
    from lakeql.lake import join_root

    labels = (*LABELS, *named_labels(getattr(table, "csv_encoding", None)))
    return {copy_name(join_root(table.root, f.path), f.size, f.mtime_ns, label, f.etag)
            for f in table.files for label in labels}


def named_labels(named: str | None) -> tuple[str, ...]:
    """The labels of copies of a table whose encoding the user named (``--csv-encoding``)."""
    return (named, named + LF) if named else ()


#: labels a byte order mark decides (a named encoding does not replace them)
_BOM_LABELS = tuple(b for _, b in _BOMS if b != "utf-8-sig")


def _wide(label: str) -> bool:
    """Whether ``label`` is a UTF-16 or UTF-32 encoding (two or four bytes a character)."""
    return label.removesuffix(LF).replace("_", "-").startswith(("utf-16", "utf-32"))


def _named_applies(detected: str, named: str, opener: Any) -> bool:
    """Whether the user's encoding ``named`` replaces the ``detected`` one of a file that is not UTF-8:
    not for a byte order mark, and not for UTF-16/32 found without one (its NUL bytes: no single-byte or
    multi-byte text has them) unless ``named`` is UTF-16/32 itself. A lake-wide ``--csv-encoding cp1251``
    otherwise decoded such a file, which detection reads right, as Cyrillic letters and NULs."""
    if _wide(detected) and not _wide(named):
        return False
    return not _has_bom(opener)


def _has_bom(opener: Any) -> bool:
    with contextlib.closing(opener()) as f:
        head = f.read(4)
    return any(head.startswith(bom) for bom, label in _BOMS if label != "utf-8-sig")


def labels_fit(labels: Any, named: str | None) -> bool:
    """Whether the encodings a catalog recorded for a CSV table's files (``file_encodings``) are what
    reading it now gives: with a named encoding, UTF-8, a byte order mark's or the named one; else UTF-8
    or a detected one. False: the table is read again (its encoding was named, changed or dropped)."""
    if labels is None:
        return True
    ok = {NATIVE, "utf-8" + LF}
    ok |= {*_BOM_LABELS, *(b + LF for b in _BOM_LABELS), *named_labels(named)} if named else set(LABELS)
    return all(str(x) in ok for x in labels)
