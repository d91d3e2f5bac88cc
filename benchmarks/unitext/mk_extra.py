"""The other unitext tables, from the lake mk.py made (benchmarks/results/unitext.md):
python mk_extra.py LAKE BIG EMB

* LAKE/fold/f.parquet: Cherokee, Turkish, Azerbaijani, Greek and German UI strings as written, upper()
  and lower(), shuffled (frequent folded phrases: the scan paths);
* BIG/b/cell.parquet: one 50 MB cell of every message joined by newlines, among 5 small rows;
* EMB/m/{ja,th,en}.parquet: 3,000 distinct Japanese / Thai messages with their English msgid, and 3,000
  English msgids, for --embed and --embed-bm25.
"""

import gettext
import glob
import os
import random
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

lake, big, emb = sys.argv[1:4]
rows = []
for lang in ["chr", "tr", "az", "el", "de"]:
    for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(mo, "rb") as f:
                t = gettext.GNUTranslations(f)
        except Exception:  # noqa: BLE001 - a catalog Python cannot read: skipped
            continue
        for v in t._catalog.values():
            if isinstance(v, str) and v:
                rows += [v, v.upper(), v.lower()]
random.seed(5)
random.shuffle(rows)
os.makedirs(f"{lake}/fold", exist_ok=True)
pq.write_table(pa.table({"text": rows}), f"{lake}/fold/f.parquet", row_group_size=20000)

msgs = pq.read_table(f"{lake}/i18n/messages.parquet")
texts = msgs["msgstr"].to_pylist()
parts, n, i = [], 0, 0
while n < 50_000_000:
    s = texts[i % len(texts)] + "\n"
    parts.append(s)
    n += len(s.encode())
    i += 1
os.makedirs(f"{big}/b", exist_ok=True)
cell = ["short row 東京", "".join(parts), " \t \r\n ", "", None, "tail row ภาษาไทย"]
pq.write_table(pa.table({"id": list(range(len(cell))), "text": cell}), f"{big}/b/cell.parquet")

os.makedirs(f"{emb}/m", exist_ok=True)
random.seed(3)
for lang in ["ja", "th"]:
    f = msgs.filter(pc.equal(msgs["lang"], lang))
    d = {}
    for k, v in zip(f["msgid"].to_pylist(), f["msgstr"].to_pylist(), strict=True):
        if 8 <= len(v) <= 200 and 8 <= len(k) <= 200:
            d.setdefault(v, k)
    items = list(d.items())
    random.shuffle(items)
    items = items[:3000]
    pq.write_table(pa.table({"id": list(range(len(items))), "text": [v for v, _ in items],
                             "english": [k for _, k in items]}), f"{emb}/m/{lang}.parquet")
en = sorted({x for x in msgs.filter(pc.equal(msgs["lang"], "ja"))["msgid"].to_pylist() if 8 <= len(x) <= 200})
random.seed(3)
random.shuffle(en)
pq.write_table(pa.table({"id": list(range(3000)), "text": en[:3000]}), f"{emb}/m/en.parquet")
print("fold", len(rows), "cell bytes", n, "emb", len(items))
