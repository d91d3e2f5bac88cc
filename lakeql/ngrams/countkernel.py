"""Per-row occurrence counts of a phrase straight on Arrow string buffers (one numba pass, no copy).

:func:`count_rows` counts, in every row ``data[offs[r]:offs[r + 1]]`` of an Arrow string/binary array,
the occurrences of a pattern as the n-gram index counts them (overlapping ones too: every start
position), with candidates found by libc ``memchr`` on the pattern's rarest byte (SIMD, called through
an LLVM declaration so the function stays cacheable) and compared byte by byte.

Modes (``lower``, ``words``):

* characters, case-sensitive: the byte count of the index, exact on every row (any bytes);
* ``lower``: ASCII letters compared lower-cased. A case-insensitive index holds ``str.casefold`` text;
  for a row without the characters whose folding holds ASCII (``ſ``, Kelvin ``K``, ``ß``, ligatures ...:
  their first two UTF-8 bytes are flagged in ``nfold``), every ASCII byte of the folded text comes from
  the same ASCII character lower-cased and every other character folds to non-ASCII bytes only, so the
  count of an ASCII pattern is exact. A row holding such a character is reported ``unsure``;
* ``words``: the pattern is a word sequence (``\\w+`` runs, :mod:`lakeql.ngrams.text`): a match is the
  first word's bytes not preceded by a word character, then for every next word at least one separator
  and the word, then no word character. ASCII bytes decide by ``[0-9A-Za-z_]`` (Python's ``\\w`` on
  ASCII); a non-ASCII character that the decision touches (the one before, a separator, the one after) is
  decoded (strict UTF-8, invalid bytes separate words, as the builder reads them) and looked up in
  ``re``'s ``\\w`` table (:func:`lakeql.ngrams.text.word_table`), so the kernel decides it exactly (a
  case-insensitive row holding a character whose folding holds the pattern's ASCII is still ``unsure``:
  words are folded after they are cut, and only such characters can fold into an ASCII word).

A pattern that holds a non-ASCII byte in a mode other than case-sensitive characters can only occur in
rows with a non-ASCII byte: those rows are all ``unsure`` and the others count 0. ``unsure`` rows are
recounted exactly by the caller (Python ``casefold`` / the builder's word stream), so the counts handed
back to users are always exact.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from lakeql.jit import njit
from lakeql.ngrams.kernels import _utf8_char


@intrinsic
def _memchr(typingctx, arr, start, byte, stop):  # noqa: ARG001 - numba intrinsic signature
    """Position of the first ``byte`` in ``arr[start:stop]`` (libc memchr), or -1."""
    sig = types.intp(arr, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        a, s, b, e = args
        ary = context.make_array(signature.args[0])(context, builder, a)
        i8p = ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(i8p, [i8p, ir.IntType(32), intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "memchr")
        base = builder.bitcast(ary.data, i8p)
        ptr = builder.gep(base, [s])
        found = builder.call(fn, [ptr, builder.trunc(b, ir.IntType(32)), builder.sub(e, s)])
        idx = builder.sub(builder.ptrtoint(found, intp), builder.ptrtoint(base, intp))
        return builder.select(cgutils.is_null(builder, found), ir.Constant(intp, -1), idx)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _low(b):
    return b + 32 if 65 <= b <= 90 else b


@njit(cache=True, nogil=True, inline="always")
def _isw(b):
    return (48 <= b <= 57) or (65 <= b <= 90) or (97 <= b <= 122) or b == 95


@njit(cache=True, nogil=True)
def _has_high(data, a, e):
    d = data[a:e]  # a slice and a uint8 accumulator: LLVM vectorises the OR (measured 78 -> ~10 ms / 100 MB)
    acc = np.uint8(0)
    for i in range(d.shape[0]):
        acc = np.uint8(acc | d[i])
    return acc >= 128


@njit(cache=True, nogil=True)
def _has_nfold(data, a, e, nfold):
    for i in range(a, e - 1):
        if data[i] >= 0xC0 and nfold[(np.int64(data[i]) << 8) | np.int64(data[i + 1])]:
            return True
    return False


@njit(cache=True, nogil=True)
def _match_at(data, s, e, pat, lower):
    """pat (lower-case when ``lower``) at data[s:] within the row end e?"""
    m = pat.shape[0]
    if s + m > e:
        return False
    for t in range(m):
        b = data[s + t]
        if lower:
            b = _low(b)
        if b != pat[t]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _cp_before(data, a, s, e):
    """Code point of the character ending at ``s`` (s > a) as Python's strict decoder reads the row from
    ``a``, or -1 (an invalid byte). Exact from a backward scan: a byte that is not a continuation byte
    always starts a character (or is an invalid single byte) in the forward decoding."""
    lead = s - 1
    while lead > a and lead > s - 4 and 0x80 <= data[lead] <= 0xBF:
        lead -= 1
    cp, ln = _utf8_char(data, lead, e)
    if cp >= 0 and lead + ln == s:
        return cp
    return -1


@njit(cache=True, nogil=True, inline="always")
def _word_at(data, i, e, isword):
    """(is the character at i a ``\\w`` character, its byte length): ASCII by ``[0-9A-Za-z_]``, other
    code points by ``isword`` (``re``'s table), invalid bytes are separators (as the builder reads them)."""
    b = data[i]
    if b < 128:
        return _isw(b), 1
    cp, ln = _utf8_char(data, i, e)
    return cp >= 0 and isword[cp], ln


@njit(cache=True, nogil=True)
def _word_match(data, a, s, e, pat, wstart, lower, isword):
    """Word sequence at s (its first word's bytes already known to start there): (1 match or 0 none,
    the end of the bytes looked at). Non-ASCII characters next to a word are decoded and tested against
    ``isword`` (the word table of the index), so the answer is exact."""
    if s > a:
        p = data[s - 1]
        if p >= 128:
            cp = _cp_before(data, a, s, e)
            if cp >= 0 and isword[cp]:
                return 0, s
        elif _isw(p):
            return 0, s
    nw = wstart.shape[0] - 1
    j = s
    for w in range(nw):
        if w > 0:  # at least one separator, then the word
            k = j
            while k < e:
                isw, ln = _word_at(data, k, e, isword)
                if isw:
                    break
                k += ln
            if k == j:
                return 0, k
            j = k
        if not _match_at(data, j, e, pat[wstart[w] : wstart[w + 1]], lower):
            return 0, j
        j += wstart[w + 1] - wstart[w]
    if j < e and _word_at(data, j, e, isword)[0]:
        return 0, j
    return 1, j


@njit(cache=True, nogil=True)
def failure_table(pat):
    """KMP failure table of ``pat``: ``fail[j]`` = length of the longest proper border of ``pat[:j+1]``."""
    m = pat.shape[0]
    fail = np.zeros(m, dtype=np.int64)
    j = 0
    for i in range(1, m):
        while j > 0 and pat[i] != pat[j]:
            j = fail[j - 1]
        if pat[i] == pat[j]:
            j += 1
        fail[i] = j
    return fail


@njit(cache=True, nogil=True)
def _kmp_count(data, s, e, pat, fail, lower):
    """Occurrences of ``pat`` starting in data[s:e] and ending by e (overlapping ones too: every start
    position), in one linear pass (Knuth-Morris-Pratt); ASCII letters lower-cased when ``lower``."""
    m = pat.shape[0]
    c = 0
    j = 0
    for i in range(s, e):
        b = data[i]
        if lower:
            b = _low(b)
        while j > 0 and b != pat[j]:
            j = fail[j - 1]
        if b == pat[j]:
            j += 1
            if j == m:
                c += 1
                j = fail[m - 1]
    return c


@njit(cache=True, nogil=True, inline="always")
def _kmp_step(x, j, kpat, fail):
    """KMP state after the byte x: (matched length, 1 when a whole occurrence just ended)."""
    m = kpat.shape[0]
    while j > 0 and x != kpat[j]:
        j = fail[j - 1]
    if x == kpat[j]:
        j += 1
        if j == m:
            return fail[m - 1], 1
    return j, 0


@njit(cache=True, nogil=True)
def _kmp_words(data, a, s, e, kpat, fail, lower, isword):
    """Word-sequence matches whose first word starts at s or later in data[a:e], in one linear pass: the
    row read as the index's word stream (a run of separators one ``WORD_SEP`` byte, words as their
    bytes, lower-cased ASCII when ``lower``, a non-ASCII word character as the byte 0x80, which no ASCII
    pattern holds) matched by KMP against ``kpat`` (the ``WORD_SEP w1 WORD_SEP .. WORD_SEP`` pattern)."""
    sep = kpat[0]
    c = 0
    j = 0
    in_sep = True
    if s > a:
        p = data[s - 1]
        if p < 128:
            in_sep = not _isw(p)
        else:
            cp = _cp_before(data, a, s, e)
            in_sep = cp < 0 or not isword[cp]
    if in_sep:
        j, got = _kmp_step(sep, j, kpat, fail)
        c += got
    i = s
    while i < e:
        b = data[i]
        isw, ln = _word_at(data, i, e, isword)
        if isw:
            x = np.uint8(0x80) if b >= 128 else (np.uint8(_low(b)) if lower else b)
            j, got = _kmp_step(x, j, kpat, fail)
            c += got
            in_sep = False
        elif not in_sep:
            j, got = _kmp_step(sep, j, kpat, fail)
            c += got
            in_sep = True
        i += ln
    if not in_sep:
        j, got = _kmp_step(sep, j, kpat, fail)
        c += got
    return c


@njit(cache=True, nogil=True)
def kmp_rows(data, offs, pad, pat, fail):
    """Per row ``data[offs[r]:offs[r + 1] - pad]``: (occurrences of ``pat``, overlapping ones too, and the
    first offset or -1) by KMP: one linear pass whatever the text (runs of one byte, periodic text)."""
    n = offs.shape[0] - 1
    m = pat.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    first = np.full(n, -1, dtype=np.int64)
    for r in range(n):
        a = np.int64(offs[r])
        e = np.int64(offs[r + 1]) - pad
        j = 0
        c = 0
        for i in range(a, e):
            j, got = _kmp_step(data[i], j, pat, fail)
            if got:
                if c == 0:
                    first[r] = i + 1 - m - a
                c += 1
        counts[r] = c
    return counts, first


#: the candidate test compares at most this many pattern bytes per row byte (plus one pattern length)
#: before the rest of the row is counted by KMP: repetitive text and patterns (a run of spaces) stay linear
KMP_AFTER = 4

#: candidate positions are filtered in blocks of this many bytes (a buffer that stays in L1/L2)
BLOCK = 8192


@njit(cache=True, nogil=True)
def _pair_block(data, s0, n, i1, b1, o1, i2, b2, o2, buf):
    """buf[t] = 1 where ``data[s0 + t + i1] | o1 == b1`` and ``data[s0 + t + i2] | o2 == b2`` (t < n):
    no branch, so LLVM vectorises it; returns the number of such t."""
    d1 = data[s0 + i1 : s0 + i1 + n]  # slices first: indexing them with t alone vectorises (measured)
    d2 = data[s0 + i2 : s0 + i2 + n]
    c = np.int64(0)
    for t in range(n):
        x = np.uint8(((d1[t] | o1) == b1) & ((d2[t] | o2) == b2))
        buf[t] = x
        c += x
    return c


@njit(cache=True, nogil=True)
def count_rows(
    data,
    offs,
    pat,
    wstart,
    i1,
    i2,
    lower,
    words,
    nfold,
    check_nfold,
    pat_ascii,
    kpat,
    fail,
    isword,
    stop=False,
):
    """Per row: (occurrences, unsure). ``pat``: the phrase (words mode: the words back to back, word
    w = ``pat[wstart[w]:wstart[w+1]]``), lower-case when ``lower``. Candidates: the start positions
    where the bytes at ``i1`` and ``i2`` of the (first word of the) pattern match (ASCII letters of a
    ``lower`` pattern in both cases: ``x | 0x20``), found by a vectorised compare over blocks of
    :data:`BLOCK` bytes and libc memchr over the block's flags; then every byte is compared. ``kpat``
    and ``fail``: the pattern as bytes of the layer (words: ``WORD_SEP w1 WORD_SEP ..``) and its
    :func:`failure_table`: once the compares of a row exceed :data:`KMP_AFTER` x its length, the rest of
    the row is counted by KMP (linear on any input). ``isword``: ``re``'s ``\\w`` table. ``stop``: a row's
    count is only known to be >= 1 once it holds an occurrence (the rest of the row is not read: row
    sets need no more), 0 stays exact."""
    n = offs.shape[0] - 1
    counts = np.zeros(n, dtype=np.int64)
    unsure = np.zeros(n, dtype=np.bool_)
    m0 = wstart[1] if words else pat.shape[0]
    b1 = np.uint8(pat[i1])
    b2 = np.uint8(pat[i2])
    o1 = np.uint8(32 if (lower and 97 <= b1 <= 122) else 0)
    o2 = np.uint8(32 if (lower and 97 <= b2 <= 122) else 0)
    # the pair test decides alone: characters of 1 or 2 bytes (both positions tested)
    exact = (not words) and (m0 == 1 or (m0 == 2 and i1 != i2))
    careful = lower or words
    buf = np.empty(BLOCK, dtype=np.uint8)
    for r in range(n):
        a = np.int64(offs[r])
        e = np.int64(offs[r + 1])
        if e - a < m0 and not lower:  # folding can lengthen a row ('İ' 2 bytes -> 3, 'ŉ' 2 -> 3)
            continue
        if careful:
            if not pat_ascii:  # only rows with a non-ASCII byte can hold it: the caller decides them
                if _has_high(data, a, e):
                    unsure[r] = True
                continue
            if check_nfold and _has_high(data, a, e) and _has_nfold(data, a, e, nfold):
                unsure[r] = True
                continue
        c = 0
        last = e - m0  # the last start position
        s0 = a
        budget = KMP_AFTER * (e - a) + m0  # bytes the candidate compares may cost in this row
        done = False
        while s0 <= last and not unsure[r] and not done:
            L = min(BLOCK, last + 1 - s0)
            hits = _pair_block(data, s0, L, i1, b1, o1, i2, b2, o2, buf)
            if exact:
                c += hits
            elif hits:
                t = _memchr(buf, 0, 1, L)
                while t >= 0:
                    s = s0 + t
                    if words:
                        if budget < 0:  # repetitive: the rest of the row (from s) in one linear pass
                            c += _kmp_words(data, a, s, e, kpat, fail, lower, isword)
                            done = True
                            break
                        if _match_at(data, s, e, pat[:m0], lower):
                            got, end = _word_match(data, a, s, e, pat, wstart, lower, isword)
                            budget -= end - s + 1
                            c += got
                    else:
                        budget -= m0
                        if budget < 0:  # repetitive: the rest of the row (from s) in one linear pass
                            c += _kmp_count(data, s, e, pat, fail, lower)
                            done = True
                            break
                        if _match_at(data, s, e, pat, lower):
                            c += 1
                    if stop and c:
                        break
                    t = _memchr(buf, t + 1, 1, L)
            if stop and c:
                break
            s0 += L
        if not unsure[r]:
            counts[r] = c
    return counts, unsure
