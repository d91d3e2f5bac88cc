"""Counts, rows, search, next and the ∞-gram on a lake with one 50 MB cell (/tmp/unitext/big, see
benchmarks/results/unitext.md) against Python's counts."""

import json
import re
import time

import pyarrow.parquet as pq

import lakeql

rows = pq.read_table("/tmp/unitext/big/b/cell.parquet")["text"].to_pylist()
big = rows[1]
con = lakeql.connect("/tmp/unitext/big")
r = con.execute("SELECT bytes, source_bytes, params FROM ngram_indexes()").fetchone()
p = json.loads(r[2])
print(
    "index bytes",
    r[0],
    "source",
    r[1],
    {k: p.get(k) for k in ("build_seconds", "build_cpu_seconds", "peak_rss_mb", "shards")},
)
W = re.compile(r"\w+")
bw = W.findall(big)


def ovl(s, p):
    c, j = 0, s.find(p)
    while j >= 0:
        c += 1
        j = s.find(p, j + 1)
    return c


for ph in ["東京", "の", "ファイル", "ไฟล์", "  ", "\n\n", "file", "%s", "ภาษาไทย"]:
    t0 = time.process_time()
    c, rw = con.execute(
        "SELECT ngram_count('b.cell','text',?), ngram_rows('b.cell','text',?)", [ph, ph]
    ).fetchone()
    s = con.execute(
        "SELECT id, occurrences, snippet FROM ngram_search('b.cell','text',?, k := 3)", [ph]
    ).fetchall()
    dt = time.process_time() - t0
    want = sum(ovl(x.encode(), ph.encode()) for x in rows if x)
    print(
        repr(ph),
        "count",
        c,
        "ref",
        want,
        "rows",
        rw,
        "search",
        [(a, b, sn[:30]) for a, b, sn in s],
        f"cpu {dt:.2f}s",
    )
for ph in ["ファイル", "file", "the file"]:
    t0 = time.process_time()
    c = con.execute("SELECT ngram_count('b.cell','text',?, unit := 'word')", [ph]).fetchone()[0]
    pw = W.findall(ph)
    want = sum(
        1
        for x in [r for r in rows if r]
        for ws in [W.findall(x)]
        for i in range(len(ws) - len(pw) + 1)
        if ws[i : i + len(pw)] == pw
    )
    print("word", repr(ph), c, "ref", want, f"cpu {time.process_time() - t0:.2f}s")
print(con.execute("SELECT * FROM ngram_next('b.cell','text','東京', k := 3)").fetchall())
print(
    con.execute(
        "SELECT suffix_length, next, count "
        "FROM ngram_longest('b.cell','text','zzz東京タワー', k := 2, unit := 'char')"
    ).fetchall()
)
