"""Compare lakeql n-gram answers with a brute-force Python reference on one indexed column.
usage: probe.py LAKE INDEX_DIR TABLE COLUMN FOLDED(0/1) N_RANDOM SEED"""

import collections
import json
import random
import re
import sys
import time

import numpy as np

import lakeql

lake, idxdir, table, col, folded, nrand, seed = sys.argv[1:8]
folded = folded == "1"
nrand = int(nrand)
random.seed(int(seed))
con = lakeql.connect(lake, index_dir=idxdir)
rows = [
    r
    for (r,) in con.execute(
        f'SELECT "{col}" FROM query_table(lakeql_rows_view(?)) ORDER BY __rowid', [table]
    ).fetchall()
]
rows = ["" if r is None else r for r in rows]
F = (lambda s: s.casefold()) if folded else (lambda s: s)
W = re.compile(r"\w+")


def wstream(s):  # words cut, then folded (documented)
    return "\x01" + "\x01".join(F(w) for w in W.findall(s)) + "\x01"


def build(stream):
    bs = [s.encode("utf-8", "surrogatepass") for s in stream]
    starts = np.zeros(len(bs) + 1, np.int64)
    np.cumsum([len(b) + 1 for b in bs], out=starts[1:])
    return b"\x00".join(bs) + b"\x00", starts


CH = build([F(r) for r in rows])
WD = build([wstream(r) for r in rows])


def occ(layer, pat):
    data, starts = layer
    out = []
    p = data.find(pat)
    while p >= 0:
        r = int(np.searchsorted(starts, p, "right") - 1)
        if p + len(pat) <= starts[r + 1] - 1:
            out.append((r, p))
        p = data.find(pat, p + 1)
    return out


def nextchar(data, q):
    b = data[q]
    n = (
        1
        if b < 0x80
        else 2
        if b >= 0xC0 and b < 0xE0
        else 3
        if b >= 0xE0 and b < 0xF0
        else 4
        if b >= 0xF0
        else 1
    )
    return data[q : q + n].decode("utf-8", "replace")


def ref(phrase, unit):
    if unit == "char":
        pat = F(phrase).encode("utf-8")
        L = CH
    else:
        ws = [F(w) for w in W.findall(phrase)]
        if not ws:
            return None
        pat = ("\x01" + "\x01".join(ws) + "\x01").encode()
        L = WD
    o = occ(L, pat)
    per = collections.Counter(r for r, _ in o)
    nxt = collections.Counter()
    for r, p in o:
        q = p + len(pat)
        if unit == "char":
            c = nextchar(L[0], q) if q < int(L[1][r + 1]) - 1 else None
            if c == "\x00" and q >= int(L[1][r + 1]) - 1:
                c = None
            if c is not None:
                nxt[c] += 1
        else:
            e = L[0].find(b"\x01", q, int(L[1][r + 1]) - 1)
            if e > q:
                nxt[L[0][q:e].decode()] += 1
    return len(o), per, nxt


def picks():
    hand = [
        "İ",
        "i̇",
        "ı",
        "I",
        "i",
        "istanbul",
        "İstanbul",
        "ISTANBUL",
        "ß",
        "ẞ",
        "ss",
        "STRASSE",
        "σ",
        "ς",
        "Σ",
        "ΣΊΣΥΦΟΣ",
        "ᏣᎳᎩ",
        "ꮳꮃꭹ",
        "café",
        "cafe\u0301",
        "\u0301",
        "\u200d",
        "👩‍👩",
        "👍",
        "🏽",
        "🇯",
        "東京",
        "東京都",
        "の",
        "、",
        "ภาษา",
        "ไทย",
        "ที่",
        "ा",
        "ि",
        "क्ष",
        "की",
        "के",
        "\u212a",
        "K",
        "k",
        "Å",
        "\x00",
        "nul\x00in",
        "ǅ",
        "ǆ",
        "ﬁ",
        "fi",
        "\u202b",
        "\u2028",
        "\u3000",
        "ＡＢＣ",
        "abc",
        "ｶﾀｶﾅ",
        "ファイル",
        "文件",
        "ملف",
        "فایل",
        "קובץ",
        "파일",
        "файл",
        "αρχείο",
        "dosya",
        "Datei",
        "\r\n",
        "\r",
        "  ",
        "\t",
        "\x1b[",
        "ä",
        "a\u0308",
        "ΐ",
        "ΰ",
        "ᾳ",
        "ᾼ",
        "ꭰ",
        "Ꭰ",
        "%s",
        "%d",
        "_",
        "…",
        "«",
        "»",
        "ـ",
        "\u200c",
        "\u200f",
        "ё",
        "Ё",
        "ẞ",
        "ǰ",
        "ŉ",
    ]
    out = [(h, u) for h in hand for u in ("char", "word")]
    nz = [r for r in rows if len(r) > 2]
    for _ in range(nrand):
        r = random.choice(nz)
        n = random.randint(1, 12)
        i = random.randint(0, max(0, len(r) - n))
        out.append((r[i : i + n], "char"))
        ws = W.findall(r)
        if ws:
            n = random.randint(1, 3)
            i = random.randint(0, max(0, len(ws) - n))
            sep = random.choice([" ", ", ", "\n  "])
            out.append((sep.join(ws[i : i + n]), "word"))
    return out


bad = 0
n = 0
t0 = time.time()
for phrase, unit in picks():
    if not phrase:
        continue
    rr = ref(phrase, unit)
    if rr is None:
        continue
    cnt, per, nxt = rr
    n += 1
    try:
        c = con.execute(
            "SELECT ngram_count(?, ?, ?, unit := ?), ngram_rows(?, ?, ?, unit := ?)",
            [table, col, phrase, unit] * 2,
        ).fetchone()
        top = con.execute(
            "SELECT next, count FROM ngram_next(?, ?, ?, k := 5, unit := ?)", [table, col, phrase, unit]
        ).fetchall()
        s = con.execute(
            "SELECT occurrences FROM ngram_search(?, ?, ?, k := 5, unit := ?)", [table, col, phrase, unit]
        ).fetchall()
        ra = con.execute(
            "SELECT rowid FROM ngram_rows_all(?, ?, [?], unit := ?)", [table, col, phrase, unit]
        ).fetchall()
    except Exception as e:
        bad += 1
        print("ERR", repr(phrase), unit, str(e)[:200])
        continue
    exp_top = sorted(nxt.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:5]
    exp_s = sorted(per.values(), reverse=True)[:5]
    prob = []
    if c[0] != cnt:
        prob.append(f"count {c[0]} != {cnt}")
    if c[1] != len(per):
        prob.append(f"rows {c[1]} != {len(per)}")
    if [x for _, x in top] != [x for _, x in exp_top] or (
        top and set(top) - set(exp_top) and len(set(x for _, x in exp_top)) == len(exp_top)
    ):
        prob.append(f"next {top} != {exp_top}")
    if [x for (x,) in s] != exp_s:
        prob.append(f"search {[x for (x,) in s]} != {exp_s}")
    if sorted(x for (x,) in ra) != sorted(per):
        prob.append(f"rows_all {len(ra)} != {len(per)}")
    if prob:
        bad += 1
        print("MISMATCH", repr(phrase), unit, "; ".join(prob)[:400])
print(
    json.dumps(
        {
            "table": table,
            "folded": folded,
            "probes": n,
            "mismatches": bad,
            "seconds": round(time.time() - t0, 1),
        }
    )
)
