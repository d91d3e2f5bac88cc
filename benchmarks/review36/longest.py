"""ngram_longest(unit := 'char') against brute force on CPython's CJK sample texts + case-folding rows
(case-sensitive index): random contexts (a random substring of a row, often with a random prefix of
characters that never occur), the longest suffix that occurs followed by a character, its count, and the
top next characters. Usage: longest.py WORKDIR N"""
from __future__ import annotations

import random
import sys
import sysconfig
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import lakeql

work, n = Path(sys.argv[1]), int(sys.argv[2])
base = Path(sysconfig.get_path("stdlib")) / "test" / "cjkencodings"
rows = [x for p in sorted(base.glob("*-utf8.txt"))
        for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
rows += ["İstanbul ISPARTA ıspanak", "Straße STRASSE ẞ", "ΣΊΣΥΦΟΣ σίσυφος", "ᏣᎳᎩ ꮳꮃꭹ", "👍🏽 👨‍👩‍👧 🇯🇵"]
lake = work / "lake"
(lake / "t").mkdir(parents=True, exist_ok=True)
pq.write_table(pa.table({"text": rows}), lake / "t" / "x.parquet")
lakeql.index(lake, index_dir=work / "idx", ngram=["t.x.text"], capabilities=["ngrams"], progress=False)
con = lakeql.connect(lake, index_dir=work / "idx")


def ref(ctx: str):
    for i in range(len(ctx) + 1):  # longest suffix first
        suf = ctx[i:]
        nxt = Counter()
        for r in rows:
            j = r.find(suf) if suf else 0
            if not suf:
                nxt.update(r)
                continue
            while j != -1:
                if j + len(suf) < len(r):
                    nxt[r[j + len(suf)]] += 1
                j = r.find(suf, j + 1)
        if nxt:
            occ = sum(r.count(suf) for r in rows) if suf else sum(nxt.values())
            # overlapping count
            if suf:
                occ = 0
                for r in rows:
                    j = r.find(suf)
                    while j != -1:
                        occ += 1
                        j = r.find(suf, j + 1)
            return suf, occ, nxt
    return "", 0, Counter()


rng = random.Random(0)
bad = 0
for _ in range(n):
    r = rng.choice(rows)
    a = rng.randrange(len(r))
    ctx = r[a:a + rng.randint(1, 12)]
    if rng.random() < 0.5:
        ctx = "\U0001f999" + ctx
    if rng.random() < 0.2:
        ctx = ctx + rng.choice("\U0001f999zq")
    suf, occ, nxt = ref(ctx)
    got = con.execute("SELECT suffix, suffix_length, suffix_count, next, count FROM "
                      "ngram_longest('t.x', 'text', ?, k := 1000000, unit := 'char')", [ctx]).fetchall()
    gs = {(g[0], g[1], g[2]) for g in got}
    gn = Counter({g[3]: g[4] for g in got})
    if gs != {(suf, len(suf), occ)} or gn != nxt:
        bad += 1
        print("MISMATCH", repr(ctx), gs, (suf, len(suf), occ), (gn - nxt).most_common(3),
              (nxt - gn).most_common(3))
print(f"{n} contexts, {bad} mismatches")
