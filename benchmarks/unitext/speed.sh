# Build-time and size of the n-gram index: CJK against English (benchmarks/results/unitext.md).
# Needs /tmp/unitext/sp_<name>/t/x.parquet (mk2.py, or the snippet in the results file); run from the worktree.
cd /work/wt/unitext; export PYTHONPATH=$PWD
for rep in 1 2; do for l in cjk2 en2; do
  rm -rf /tmp/unitext/sp_$l/.lakeql
  echo "== $l rep $rep $(uptime)"
  /usr/bin/time -f "wall %e user %U sys %S rss_kb %M" /work/venv/bin/python -m lakeql index /tmp/unitext/sp_$l --only ngrams --ngram t.x.text --ngram-jobs 1 -q 2>&1 | tail -1
  /work/venv/bin/python -c "
import lakeql, json
con = lakeql.connect('/tmp/unitext/sp_$l')
r = con.execute('SELECT bytes, source_bytes, ratio, params FROM ngram_indexes()').fetchone()
p = json.loads(r[3]); print('bytes', r[0], 'source', r[1], 'ratio', r[2], {k: p.get(k) for k in ('text_bytes','build_seconds','build_cpu_seconds','peak_rss_mb')})
"
done; done
