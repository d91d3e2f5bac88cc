"""Keyword and cross-lingual retrieval on non-English text: semantic_search (MiniLM),
hybrid_search, ngram-free.
hit@10 = a relevant row in the top 10. Keyword: query = a substring of a random row (ja/th: 2-6 chars; en: one
or two words); relevant = every row containing it (exact, Python `in`). Cross: query = the English msgid;
relevant = its own translated row."""

import json
import random
import re

import lakeql

random.seed(11)
con = lakeql.connect("/tmp/unitext/emb")
out = {}
for name in ["ja", "th", "en"]:
    t = f"m.{name}"
    rows = con.execute(
        f"SELECT id, text{', english' if name != 'en' else ''} FROM {t} ORDER BY id"
    ).fetchall()
    texts = {r[0]: r[1] for r in rows}
    pick = random.sample(rows, 40)
    res = {"semantic": 0, "hybrid": 0, "hybrid_unk_refused": 0, "semantic_refused": 0, "n": 0}
    for r in pick:
        s = r[1]
        if name == "en":
            ws = re.findall(r"\w+", s)
            ws = [w for w in ws if len(w) > 3] or ws
            i = random.randrange(len(ws))
            q = " ".join(ws[i : i + 2])
        else:
            s2 = re.sub(r"\s+", "", s)
            n = random.randint(2, 6)
            i = random.randrange(max(1, len(s2) - n))
            q = s2[i : i + n]
            if not q.strip() or q not in s:
                continue
        rel = {i for i, x in texts.items() if q in x}
        res["n"] += 1
        for fn, key in [("semantic_search", "semantic"), ("hybrid_search", "hybrid")]:
            try:
                got = [
                    x
                    for (x,) in con.execute(f"SELECT id FROM {fn}(?, 'text', ?, k := 10)", [t, q]).fetchall()
                ]
                res[key] += bool(rel & set(got))
            except Exception:
                res[key + "_refused" if key == "semantic" else "hybrid_unk_refused"] += 1
    for k in ("semantic", "hybrid"):
        res[k + "_hit10"] = round(res[k] / res["n"], 3)
    if name != "en":
        cross = {"semantic": 0, "hybrid": 0, "n": 0, "refused": 0}
        for r in pick:
            cross["n"] += 1
            for fn, key in [("semantic_search", "semantic"), ("hybrid_search", "hybrid")]:
                try:
                    got = [
                        x
                        for (x,) in con.execute(
                            f"SELECT id FROM {fn}(?, 'text', ?, k := 10)", [t, r[2]]
                        ).fetchall()
                    ]
                    cross[key] += r[0] in got
                except Exception:
                    cross["refused"] += 1
        res["cross_english_query"] = cross
    out[name] = res
    print(name, json.dumps(res, ensure_ascii=False), flush=True)
