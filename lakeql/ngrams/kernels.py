"""The numba hot loops of the FM-index: BWT from the suffix array, the RRR bitvector, the Huffman-shaped
wavelet tree over the BWT, backward search (count) and locate through the sampled suffix array.

Layout of one shard's rank structure (all plain numpy arrays, memory-mapped at query time):

* The BWT (without its ``$`` row, whose position ``p0`` is kept aside) is stored as a Huffman-shaped
  wavelet tree. Every internal node's bitvector is concatenated into ONE global bitvector; node ``v``
  owns bits ``[node_off[v], node_off[v] + node_len)`` and ``node_ones0[v]`` = 1-bits before it.
* That global bitvector is RRR-compressed with 64-bit blocks: ``classes[b]`` = popcount of block ``b``
  (uint8), ``offsets`` = the enumerative code of each block (``WIDTH[class]`` bits, bit-packed), and
  every ``SB`` blocks a superblock row ``sup[s] = (ones before, bit pointer into offsets)``.
  Runs in the BWT make most blocks all-0/all-1 (0 offset bits): that is where the compression below
  the zero-order entropy comes from.

Kept to a handful of jitted functions with ``cache=True`` so the compile cost is paid once per machine.
"""

from __future__ import annotations

import numpy as np

from lakeql.jit import njit

SB = 16  # blocks (of 64 bits) per superblock


def _binomials() -> tuple[np.ndarray, np.ndarray]:
    binom = np.zeros((65, 65), dtype=np.uint64)
    for n in range(65):
        binom[n, 0] = 1
        for k in range(1, n + 1):
            binom[n, k] = binom[n - 1, k - 1] + (binom[n - 1, k] if k <= n - 1 else 0)
    width = np.zeros(65, dtype=np.int64)
    for k in range(65):
        c = int(binom[64, k])
        width[k] = (c - 1).bit_length() if c > 1 else 0
    return binom, width


BINOM, WIDTH = _binomials()


# ----------------------------------------------------------------------------------------- build
@njit(cache=True)
def bwt_from_sa(text, sa, sample_rate, full_sa, isa_rate):
    """BWT of ``text + '$'`` without the ``$`` row, its position ``p0``, and the SA / ISA samples.

    Rows are the n+1 suffixes of ``text$``: row 0 is ``$`` (SA = n), row j+1 is ``sa[j]``.
    ``samples[r // s] = SA[r]`` for rows r divisible by s (SA-order sampling); ``isa[t // isa_rate]``
    = the row of text position t for t divisible by isa_rate (to extract text, e.g. snippets); with
    ``full_sa`` also the whole SA (rows 0..n) as uint32 for the fast mode.
    """
    n = text.shape[0]
    bwt = np.empty(n, dtype=np.uint8)
    nsamp = n // sample_rate + 1
    samples = np.empty(nsamp, dtype=np.uint32)
    isa = np.zeros((n - 1) // isa_rate + 1, dtype=np.uint32)
    full = np.empty(n + 1 if full_sa else 0, dtype=np.uint32)
    bwt[0] = text[n - 1]
    samples[0] = n
    if full_sa:
        full[0] = n
    k = 1
    p0 = 0
    for j in range(n):
        p = sa[j]
        r = j + 1
        if r % sample_rate == 0:
            samples[r // sample_rate] = p
        if p % isa_rate == 0:
            isa[p // isa_rate] = r
        if full_sa:
            full[r] = p
        if p == 0:
            p0 = r
        else:
            bwt[k] = text[p - 1]
            k += 1
    return bwt, p0, samples, full, isa


@njit(cache=True)
def wt_fill(bwt, code, code_len, path_node, node_off, nbits):
    """Write the wavelet-tree bits of every BWT symbol into one packed uint64 bitvector."""
    words = np.zeros((nbits + 63) // 64, dtype=np.uint64)
    cursor = node_off.copy()
    one = np.uint64(1)
    for i in range(bwt.shape[0]):
        c = bwt[i]
        ln = code_len[c]
        cd = code[c]
        for d in range(ln):
            v = path_node[c, d]
            pos = cursor[v]
            cursor[v] = pos + 1
            if (cd >> np.uint64(ln - 1 - d)) & one:
                words[pos >> 6] |= one << np.uint64(pos & 63)
    return words


@njit(cache=True)
def rrr_build(words, binom, width):
    """RRR-encode a packed bitvector: (classes, offsets bitstream, superblocks [ones, bitptr])."""
    nb = words.shape[0]
    classes = np.empty(nb, dtype=np.uint8)
    total = 0
    for b in range(nb):
        w = words[b]
        k = 0
        while w:
            w &= w - np.uint64(1)
            k += 1
        classes[b] = k
        total += width[k]
    offsets = np.zeros(total // 64 + 2, dtype=np.uint64)
    nsup = nb // SB + 2
    sup = np.zeros((nsup, 2), dtype=np.uint64)
    ptr = 0
    ones = 0
    for b in range(nb):
        if b % SB == 0:
            sup[b // SB, 0] = ones
            sup[b // SB, 1] = ptr
        k = np.int64(classes[b])
        wd = width[k]
        if wd > 0:
            w = words[b]
            off = np.uint64(0)
            i = 0
            for p in range(64):
                if (w >> np.uint64(p)) & np.uint64(1):
                    i += 1
                    off += binom[p, i]
            sh = ptr & 63
            offsets[ptr >> 6] |= off << np.uint64(sh)
            if sh + wd > 64:
                offsets[(ptr >> 6) + 1] |= off >> np.uint64(64 - sh)
            ptr += wd
        ones += k
    for s in range((nb + SB - 1) // SB, nsup):
        sup[s, 0] = ones
        sup[s, 1] = ptr
    return classes, offsets, sup


@njit(cache=True)
def pack_bits(values, w):
    """Bit-pack unsigned ``values`` at ``w`` bits each into a uint64 array (one spare word at the end)."""
    out = np.zeros((values.shape[0] * w) // 64 + 2, dtype=np.uint64)
    for i in range(values.shape[0]):
        p = i * w
        v = np.uint64(values[i])
        sh = p & 63
        out[p >> 6] |= v << np.uint64(sh)
        if sh + w > 64:
            out[(p >> 6) + 1] |= v >> np.uint64(64 - sh)
    return out


# ----------------------------------------------------------------------------------------- query
@njit(cache=True, inline="always")
def _unpack(packed, i, w):
    p = i * w
    sh = p & 63
    v = packed[p >> 6] >> np.uint64(sh)
    if sh + w > 64:
        v |= packed[(p >> 6) + 1] << np.uint64(64 - sh)
    return np.int64(v & ((np.uint64(1) << np.uint64(w)) - np.uint64(1)))


@njit(cache=True, inline="always")
def _rank1(pos, classes, offsets, sup, binom, width, want_bit):
    """(1-bits in [0, pos), bit at pos if want_bit else 0) of the RRR bitvector."""
    blk = pos >> 6
    sb = blk // SB
    r = np.int64(sup[sb, 0])
    ptr = np.int64(sup[sb, 1])
    for b in range(sb * SB, blk):
        k = classes[b]
        r += k
        ptr += width[k]
    j = pos & 63
    if j == 0 and not want_bit:
        return r, 0
    k = np.int64(classes[blk]) if blk < classes.shape[0] else np.int64(0)
    if k == 0:
        return r, 0
    if k == 64:
        return r + j, 1
    wd = width[k]
    sh = ptr & 63
    off = offsets[ptr >> 6] >> np.uint64(sh)
    if sh + wd > 64:
        off |= offsets[(ptr >> 6) + 1] << np.uint64(64 - sh)
    if wd < 64:
        off &= (np.uint64(1) << np.uint64(wd)) - np.uint64(1)
    rem = k
    bit = 0
    p = 63
    while p >= j and rem > 0:
        c = binom[p, rem]
        if c <= off:
            off -= c
            rem -= 1
            if p == j:
                bit = 1
        p -= 1
    return r + rem, bit


@njit(cache=True, inline="always")
def _rank_c(c, i, p0, code, code_len, path_node, node_off, node_ones0, classes, offsets, sup, binom,
            width):
    """Occurrences of byte c in BWT rows [0, i) (the $ row excluded)."""
    if i > p0:
        i -= 1
    ln = code_len[c]
    cd = code[c]
    for d in range(ln):
        if i == 0:
            return 0
        v = path_node[c, d]
        r, _ = _rank1(node_off[v] + i, classes, offsets, sup, binom, width, False)
        ones = r - node_ones0[v]
        if (cd >> np.uint64(ln - 1 - d)) & np.uint64(1):
            i = ones
        else:
            i = i - ones
    return i


@njit(cache=True)
def backward_search(pat, C, p0, code, code_len, path_node, node_off, node_ones0, classes, offsets, sup,
                    binom, width, n):
    """The SA range [sp, ep) of rows prefixed by ``pat`` (ep - sp = occurrences)."""
    sp = 0
    ep = n + 1
    for t in range(pat.shape[0] - 1, -1, -1):
        c = pat[t]
        if code_len[c] == 0:
            return 0, 0
        sp = C[c] + _rank_c(c, sp, p0, code, code_len, path_node, node_off, node_ones0, classes,
                            offsets, sup, binom, width)
        ep = C[c] + _rank_c(c, ep, p0, code, code_len, path_node, node_off, node_ones0, classes,
                            offsets, sup, binom, width)
        if sp >= ep:
            return 0, 0
    return sp, ep


@njit(cache=True)
def next_counts(pat, C, p0, code, code_len, path_node, node_off, node_ones0, classes, offsets, sup,
                binom, width, n):
    """For every byte c: occurrences of ``pat + c`` (one backward search per present byte)."""
    out = np.zeros(256, dtype=np.int64)
    m = pat.shape[0]
    ext = np.empty(m + 1, dtype=np.uint8)
    ext[:m] = pat
    for c in range(256):
        if code_len[c] == 0:
            continue
        ext[m] = c
        sp, ep = backward_search(ext, C, p0, code, code_len, path_node, node_off, node_ones0, classes,
                                 offsets, sup, binom, width, n)
        out[c] = ep - sp
    return out


@njit(cache=True, inline="always")
def _lf(i, C, p0, child, root, node_off, node_ones0, classes, offsets, sup, binom, width):
    """(BWT byte at row i, LF(i)) for a row i != p0: one wavelet-tree descent with access + rank."""
    pos = i - 1 if i > p0 else i
    v = root
    while True:
        r, bit = _rank1(node_off[v] + pos, classes, offsets, sup, binom, width, True)
        ones = r - node_ones0[v]
        if bit:
            pos = ones
        else:
            pos = pos - ones
        nxt = child[v, bit]
        if nxt < 0:
            c = -1 - nxt
            return c, C[c] + pos
        v = nxt


@njit(cache=True)
def locate(sp, ep, C, p0, child, root, samples, sample_w, sample_rate, node_off, node_ones0, classes,
           offsets, sup, binom, width):
    """Text positions of SA rows [sp, ep): walk LF until a sampled row (or the row of position 0)."""
    out = np.empty(ep - sp, dtype=np.int64)
    for q in range(sp, ep):
        i = q
        steps = 0
        while True:
            if i == p0:
                out[q - sp] = steps
                break
            if i % sample_rate == 0:
                out[q - sp] = _unpack(samples, i // sample_rate, sample_w) + steps
                break
            _, i = _lf(i, C, p0, child, root, node_off, node_ones0, classes, offsets, sup, binom, width)
            steps += 1
    return out


@njit(cache=True)
def extract(a, b, n, isa, isa_w, isa_rate, C, p0, child, root, node_off, node_ones0, classes, offsets,
            sup, binom, width):
    """The text bytes [a, b) (0 <= a <= b <= n), read backwards by LF from the next ISA sample."""
    out = np.empty(b - a, dtype=np.uint8)
    t = ((b + isa_rate - 1) // isa_rate) * isa_rate
    if t >= n:
        t = n
        i = 0  # row 0 is the suffix '$' at position n
    else:
        i = _unpack(isa, t // isa_rate, isa_w)
    while t > a:  # invariant: SA[i] = t, so BWT[i] = text[t - 1]
        c, i = _lf(i, C, p0, child, root, node_off, node_ones0, classes, offsets, sup, binom, width)
        t -= 1
        if t < b:
            out[t - a] = c
    return out


@njit(cache=True)
def scan_rows(buf, starts, pat):
    """Brute force: overlapping occurrences of ``pat`` in each row and the first offset (-1 if none).

    Row r is ``buf[starts[r] : starts[r + 1]]`` (Arrow offsets, no separators). Used when a phrase
    is so frequent that locating every occurrence through the sampled SA would cost more than a scan.
    """
    nr = starts.shape[0] - 1
    m = pat.shape[0]
    counts = np.zeros(nr, dtype=np.int64)
    first = np.full(nr, -1, dtype=np.int64)
    p0 = pat[0]
    for r in range(nr):
        a = starts[r]
        e = starts[r + 1] - m
        c = 0
        for i in range(a, e + 1):
            if buf[i] != p0:
                continue
            ok = True
            for t in range(1, m):
                if buf[i + t] != pat[t]:
                    ok = False
                    break
            if ok:
                if c == 0:
                    first[r] = i - a
                c += 1
        counts[r] = c
    return counts, first


@njit(cache=True)
def group_rows(rowids, offsets, n_rows):
    """Per row: occurrences and first offset of the hits (rowids < n_rows); O(hits + n_rows), no sort."""
    counts = np.zeros(n_rows, dtype=np.int64)
    first = np.full(n_rows, np.iinfo(np.int64).max, dtype=np.int64)
    for i in range(rowids.shape[0]):
        r = rowids[i]
        counts[r] += 1
        if offsets[i] < first[r]:
            first[r] = offsets[i]
    return counts, first


@njit(cache=True)
def interleave(data, offs, out):
    """Copy row i = ``data[offs[i]-offs[0] : offs[i+1]-offs[0]]`` into ``out`` with a 0 byte after each."""
    base = offs[0]
    k = 0
    for i in range(offs.shape[0] - 1):
        for j in range(offs[i] - base, offs[i + 1] - base):
            out[k] = data[j]
            k += 1
        out[k] = 0
        k += 1


@njit(cache=True)
def reverse_segments(text, starts, out):
    """``out`` = every row ``text[starts[r]:starts[r+1]]`` with its bytes before the final NUL reversed."""
    for r in range(starts.shape[0] - 1):
        a = starts[r]
        b = starts[r + 1] - 1  # the NUL
        for i in range(a, b):
            out[a + b - 1 - i] = text[i]
        out[b] = text[b]


@njit(cache=True)
def backward_step(c, sp, ep, C, p0, code, code_len, path_node, node_off, node_ones0, classes, offsets,
                  sup, binom, width):
    """SA range of ``c + P`` from the range [sp, ep) of ``P`` (one backward-search step)."""
    if code_len[c] == 0 or sp >= ep:
        return 0, 0
    a = C[c] + _rank_c(c, sp, p0, code, code_len, path_node, node_off, node_ones0, classes, offsets, sup,
                       binom, width)
    b = C[c] + _rank_c(c, ep, p0, code, code_len, path_node, node_off, node_ones0, classes, offsets, sup,
                       binom, width)
    if a >= b:
        return 0, 0
    return a, b


@njit(cache=True)
def range_children(sp, ep, C, p0, child, root, node_off, node_ones0, classes, offsets, sup, binom, width):
    """Every byte c in BWT rows [sp, ep) with the SA range of ``c + P``: int64 [k, 3] (c, sp', ep').

    One wavelet-tree walk that only enters nodes whose sub-range is non-empty (``O(k log sigma)``
    ranks), instead of one backward step per possible byte.
    """
    out = np.empty((256, 3), dtype=np.int64)
    k = 0
    if ep <= sp or child.shape[0] == 0:
        return out[:0]
    a0 = sp - 1 if sp > p0 else sp
    b0 = ep - 1 if ep > p0 else ep
    if b0 <= a0:
        return out[:0]
    stack_v = np.empty(600, dtype=np.int64)
    stack_a = np.empty(600, dtype=np.int64)
    stack_b = np.empty(600, dtype=np.int64)
    top = 0
    stack_v[0] = root
    stack_a[0] = a0
    stack_b[0] = b0
    top = 1
    while top > 0:
        top -= 1
        v = stack_v[top]
        a = stack_a[top]
        b = stack_b[top]
        ra, _ = _rank1(node_off[v] + a, classes, offsets, sup, binom, width, False)
        rb, _ = _rank1(node_off[v] + b, classes, offsets, sup, binom, width, False)
        ra -= node_ones0[v]
        rb -= node_ones0[v]
        for bit in (1, 0):  # pushed right first, so bytes pop in ascending code order
            if bit == 1:
                x, y = ra, rb
            else:
                x, y = a - ra, b - rb
            if y <= x:
                continue
            nxt = child[v, bit]
            if nxt < 0:
                c = -1 - nxt
                out[k, 0] = c
                out[k, 1] = C[c] + x
                out[k, 2] = C[c] + y
                k += 1
            else:
                stack_v[top] = nxt
                stack_a[top] = x
                stack_b[top] = y
                top += 1
    return out[:k]


@njit(cache=True, inline="always")
def _utf8_char(text, i, end):
    """(code point, byte length) of the UTF-8 sequence at ``text[i]`` (strict, like Python's decoder),
    or (-1, 1) for a byte that does not start a valid sequence."""
    b0 = np.int64(text[i])
    if b0 < 0x80:
        return b0, 1
    if 0xC2 <= b0 <= 0xDF:
        if i + 1 < end and 0x80 <= text[i + 1] <= 0xBF:
            return ((b0 & 0x1F) << 6) | (np.int64(text[i + 1]) & 0x3F), 2
        return -1, 1
    if 0xE0 <= b0 <= 0xEF:
        if i + 2 >= end:
            return -1, 1
        b1 = np.int64(text[i + 1])
        lo, hi = 0x80, 0xBF
        if b0 == 0xE0:
            lo = 0xA0
        elif b0 == 0xED:
            hi = 0x9F
        if lo <= b1 <= hi and 0x80 <= text[i + 2] <= 0xBF:
            return ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (np.int64(text[i + 2]) & 0x3F), 3
        return -1, 1
    if 0xF0 <= b0 <= 0xF4:
        if i + 3 >= end:
            return -1, 1
        b1 = np.int64(text[i + 1])
        lo, hi = 0x80, 0xBF
        if b0 == 0xF0:
            lo = 0x90
        elif b0 == 0xF4:
            hi = 0x8F
        if lo <= b1 <= hi and 0x80 <= text[i + 2] <= 0xBF and 0x80 <= text[i + 3] <= 0xBF:
            return (((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((np.int64(text[i + 2]) & 0x3F) << 6)
                    | (np.int64(text[i + 3]) & 0x3F)), 4
        return -1, 1
    return -1, 1


@njit(cache=True)
def word_stream(text, starts, isword, sep):
    """Each row ``text[starts[r]:starts[r+1]]`` (its last byte the NUL separator) as its word stream
    ``sep w1 sep w2 ... wn sep NUL`` (``sep NUL`` without words): words are the maximal runs of code
    points with ``isword[cp]``; invalid UTF-8 bytes separate words. Returns (bytes, row starts)."""
    nr = starts.shape[0] - 1
    out = np.empty(text.shape[0] + 3 * nr + 1, dtype=np.uint8)
    new_starts = np.zeros(nr + 1, dtype=np.int64)
    k = 0
    for r in range(nr):
        i = starts[r]
        end = starts[r + 1] - 1
        out[k] = sep
        k += 1
        in_word = False
        while i < end:
            cp, ln = _utf8_char(text, i, end)
            if cp >= 0 and isword[cp]:
                for t in range(ln):
                    out[k] = text[i + t]
                    k += 1
                in_word = True
            elif in_word:
                out[k] = sep
                k += 1
                in_word = False
            i += ln
        if in_word:
            out[k] = sep
            k += 1
        out[k] = 0
        k += 1
        new_starts[r + 1] = k
    return out[:k], new_starts


@njit(cache=True, nogil=True)
def verify_candidates(buf, starts, pat, anchor, cand, need_counts):
    """Per row: occurrences and first offset of ``pat``, given ``cand`` = the ascending positions of
    ``pat[anchor]`` in ``buf`` (found by a SIMD numpy compare). Rows end with a NUL, never matched.
    Without ``need_counts`` a row stops at its first match (count 1)."""
    nr = starts.shape[0] - 1
    m = pat.shape[0]
    counts = np.zeros(nr, dtype=np.int64)
    first = np.full(nr, -1, dtype=np.int64)
    r = 0
    for j in range(cand.shape[0]):
        i = cand[j] - anchor
        if i < 0:
            continue
        while r < nr and starts[r + 1] <= i:
            r += 1
        if r >= nr:
            break
        if i + m > starts[r + 1] - 1 or (counts[r] > 0 and not need_counts):
            continue
        ok = True
        for t in range(m):
            if buf[i + t] != pat[t]:
                ok = False
                break
        if ok:
            if counts[r] == 0:
                first[r] = i - starts[r]
            counts[r] += 1
    return counts, first


@njit(cache=True, nogil=True)
def count_byte_rows(buf, starts, b, need_counts):
    """Per row (each ending with a NUL): occurrences and first offset of the single byte ``b``.

    One-byte phrases have millions of occurrences: counting is SWAR, 8 bytes per step (XOR with the
    byte repeated, then the exact zero-byte count of the word); without ``need_counts`` each row stops
    at its first match and its count is 1.
    """
    nr = starts.shape[0] - 1
    counts = np.zeros(nr, dtype=np.int64)
    first = np.full(nr, -1, dtype=np.int64)
    words = buf[: (buf.shape[0] // 8) * 8].view(np.uint64)
    rep = np.uint64(b) * np.uint64(0x0101010101010101)
    m7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    ones = np.uint64(0x0101010101010101)
    for r in range(nr):
        a = starts[r]
        e = starts[r + 1] - 1
        for i in range(a, e):
            if buf[i] == b:
                first[r] = i - a
                break
        if first[r] < 0:
            continue
        if not need_counts:
            counts[r] = 1
            continue
        i = a + first[r]
        c = 0
        while i < e and (i & 7) != 0:
            c += buf[i] == b
            i += 1
        for w in range(i >> 3, e >> 3):
            y = words[w] ^ rep
            t = ~(((y & m7) + m7) | y | m7)  # 0x80 in every byte of y that is zero
            c += np.int64(((t >> np.uint64(7)) * ones) >> np.uint64(56))
        i = max(i, (e >> 3) << 3)
        while i < e:
            c += buf[i] == b
            i += 1
        counts[r] = c
    return counts, first
