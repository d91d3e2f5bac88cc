"""The speed tables of unitext (CJK msgstr against English msgids of about the same bytes) from the
lake mk.py made: python mk2.py LAKE (benchmarks/results/unitext.md)."""

import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

root = sys.argv[1]
t = pq.read_table(f"{root}/i18n/messages.parquet")
cjk = t.filter(pc.is_in(t["lang"], pa.array(["ja", "zh_CN", "zh_TW"])))
s = cjk["msgstr"]
nb = sum(len(x.as_py().encode()) for x in s)
en = pc.unique(t["msgid"]).to_pylist()
out, tot = [], 0
for x in en:
    if tot >= nb:
        break
    out.append(x)
    tot += len(x.encode())
os.makedirs(f"{root}/speed", exist_ok=True)
pq.write_table(pa.table({"text": s}), f"{root}/speed/cjk.parquet")
pq.write_table(pa.table({"text": out}), f"{root}/speed/en.parquet")
print("cjk bytes", nb, "rows", len(s), "en bytes", tot, "rows", len(out))
