"""ngram_rows_all / ngram_rows_any of 2-3 phrases (chars and words) vs brute force: exact row ids and
per-phrase occurrences (benchmarks/results/unitext.md)."""

import json
import random
import re
import sys
import time

import lakeql

lake, idxdir, table, col, folded, n, seed = sys.argv[1:8]
folded = folded == "1"
random.seed(int(seed))
con = lakeql.connect(lake, index_dir=idxdir)
rows = [
    "" if r is None else r
    for (r,) in con.execute(
        f'SELECT "{col}" FROM query_table(lakeql_rows_view(?)) ORDER BY __rowid', [table]
    ).fetchall()
]
F = (lambda s: s.casefold()) if folded else (lambda s: s)
W = re.compile(r"\w+")


def occ_char(r, p):
    r, p = F(r).encode(), F(p).encode()
    c, j = 0, r.find(p)
    while j >= 0:
        c += 1
        j = r.find(p, j + 1)
    return c


def occ_word(r, p):
    ws = [F(w) for w in W.findall(r)]
    pw = [F(w) for w in W.findall(p)]
    return sum(1 for i in range(len(ws) - len(pw) + 1) if ws[i : i + len(pw)] == pw)


nz = [r for r in rows if len(r) > 3]
bad = tot = 0
t0 = time.time()
for _ in range(int(n)):
    unit = random.choice(["char", "word"])
    ps = []
    for _ in range(random.randint(2, 3)):
        r = random.choice(nz)
        if unit == "char":
            k = random.randint(1, 5)
            i = random.randrange(max(1, len(r) - k))
            ps.append(r[i : i + k])
        else:
            ws = W.findall(r)
            if ws:
                ps.append(random.choice(ws))
    ps = [p for p in ps if p and (unit == "char" or W.findall(p))]
    if len(ps) < 2:
        continue
    f = occ_char if unit == "char" else occ_word
    per = {
        i: [f(r, p) for p in ps]
        for i, r in enumerate(rows)
        if any(
            q in F(r)
            for q in ([F(p) for p in ps] if unit == "char" else [F(w) for p in ps for w in W.findall(p)])
        )
    }
    for mode in ("all", "any"):
        want = {i: o for i, o in per.items() if (all(o) if mode == "all" else any(o))}
        got = {
            r: list(o)
            for r, o, _ in con.execute(
                f"SELECT rowid, occurrences, total FROM ngram_rows_{mode}(?, ?, ?, unit := ?)",
                [table, col, ps, unit],
            ).fetchall()
        }
        tot += 1
        if got != want:
            bad += 1
            print("MISMATCH", mode, unit, ps, len(got), len(want))
print(
    json.dumps(
        {
            "table": table,
            "folded": folded,
            "queries": tot,
            "mismatches": bad,
            "seconds": round(time.time() - t0, 1),
        }
    )
)
