# Build time and size of the n-gram index: CJK against English on the same 148,687 messages
# (benchmarks/results/unitext.md). Needs /tmp/unitext/lake from mk.py; run from the project root.
set -e
export PYTHONPATH=$PWD
PY=${PYTHON:-/work/venv/bin/python}
$PY - <<'PYEOF'
import os
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
t = pq.read_table("/tmp/unitext/lake/i18n/messages.parquet")
f = t.filter(pc.is_in(t["lang"], pa.array(["ja", "zh_CN", "zh_TW", "ko"])))
for name, col in [("cjk2", "msgstr"), ("en2", "msgid")]:
    os.makedirs(f"/tmp/unitext/sp_{name}/t", exist_ok=True)
    pq.write_table(pa.table({"text": f[col]}), f"/tmp/unitext/sp_{name}/t/x.parquet")
PYEOF
for rep in 1 2; do for l in cjk2 en2; do
  rm -rf /tmp/unitext/sp_$l/.lakeql
  echo "== $l rep $rep $(uptime)"
  /usr/bin/time -f "wall %e user %U sys %S rss_kb %M" $PY -m lakeql index /tmp/unitext/sp_$l --only ngrams \
      --ngram t.x.text --ngram-jobs 1 -q 2>&1 | tail -1
  $PY -c "
import lakeql, json
con = lakeql.connect('/tmp/unitext/sp_$l')
r = con.execute('SELECT bytes, source_bytes, ratio, params FROM ngram_indexes()').fetchone()
p = json.loads(r[3]); print('bytes', r[0], 'source', r[1], 'ratio', r[2], {k: p.get(k) for k in ('text_bytes','build_seconds','build_cpu_seconds','peak_rss_mb')})
"
done; done
