"""Benchmark of exact n-gram search (lakeql.ngrams) on real text, with baselines measured in the same run.

Corpus: the Python standard library's .py files, then the .py files of this venv's site-packages, one
row per file (valid UTF-8 files only, so DuckDB's ``contains`` can scan them too), until ``--mb`` MB.

Measured (every number printed comes from this run):

* build: wall time, CPU time (all processes), peak RSS, MB/s of ``lakeql index --ngram`` in a child
  process, and CPU time of the PyPI ``fm-index`` package building an index of the same text;
* size: index bytes / text bytes (compressed and ``--ngram-mode fast``);
* exactness: every count equals a brute-force scan, every row set equals the brute-force row set, the
  fm-index package's count agrees too, and DuckDB's ``count(*) WHERE contains(text, ?)`` equals
  ``ngram_rows`` (asserted);
* latency by phrase length: count inside the engine (``NgramIndex.count``), ``ngram_count`` through
  SQL end to end, ``ngram_rows`` and ``ngram_search`` (k=10) through SQL, and the DuckDB scan baseline.

Then (``benchmarks/ngrams_words.py``, skipped with ``--no-words``): index size by part, word units and
the ∞-gram against a Python ``re`` scan, rows of frequent phrases and AND/OR queries against DuckDB's
``contains`` scan, and DuckDB ``fts`` / Lance's FM-index when they are available here.

Usage: ``python benchmarks/ngrams.py [--quick] [--mb 100] [--per-length 20] [--out FILE]``.

``--frequent-only``: just the rows of frequent phrases with the DEFAULT index (no scan tier: DuckDB
scans the column, :mod:`lakeql.ngrams.colscan`) against DuckDB's own ``contains`` scan, runs
interleaved (best of ``--repeat``), ``uptime`` load printed beside the table; ``--insensitive`` adds a
case-insensitive index.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

LENGTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
ONLY_NGRAMS = "import lakeql.plugins as P; P.CAPABILITIES = ('lakeql.ngrams',); "


# ------------------------------------------------------------------------------------------ corpus
def corpus_files(limit: int) -> list[tuple[str, bytes]]:
    """(path, bytes) of real .py files: stdlib first, then site-packages, until ``limit`` bytes."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    site = Path(sysconfig.get_path("purelib"))
    out, total = [], 0
    for root in (stdlib, site):
        for p in sorted(root.rglob("*.py")):
            if root == stdlib and "site-packages" in p.parts:
                continue
            try:
                b = p.read_bytes()
                b.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if b"\x00" in b:
                continue
            out.append((str(p), b))
            total += len(b)
            if total >= limit:
                return out
    return out


def write_lake(files: list[tuple[str, bytes]], lake: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (lake / "bench").mkdir(parents=True, exist_ok=True)
    path = lake / "bench" / "files.parquet"
    pq.write_table(pa.table({"path": [f for f, _ in files],
                             "text": pa.array([b for _, b in files], pa.binary()).cast(pa.string())}),
                   path, row_group_size=256, compression="zstd")
    return path


# ------------------------------------------------------------------------------------------ phrases
def sample_phrases(files: list[tuple[str, bytes]], per_length: int, seed: int) -> list[str]:
    """Phrases cut from random rows (whole UTF-8 characters), plus absent variants of some."""
    rng = random.Random(seed)
    weights = [len(b) for _, b in files]
    out: list[str] = []
    for length in LENGTHS:
        made = 0
        while made < per_length:
            _, b = rng.choices(files, weights)[0]
            if len(b) < length:
                continue
            start = rng.randrange(0, len(b) - length + 1)
            piece = b[start:start + length].decode("utf-8", "ignore")
            if not piece:
                continue
            if made % 5 == 4 and length >= 4:  # every fifth: make it (very likely) absent
                piece = piece[: len(piece) // 2] + "\u2603\u00a7" + piece[len(piece) // 2:]
            out.append(piece)
            made += 1
    return out


class Brute:
    """Exact answers by scanning the concatenated text (numpy for frequent phrases, bytes.find else)."""

    def __init__(self, files: list[tuple[str, bytes]]) -> None:
        self.raw = b"".join(b + b"\x00" for _, b in files)
        self.arr = np.frombuffer(self.raw, np.uint8)
        self.starts = np.zeros(len(files) + 1, np.int64)
        self.starts[1:] = np.cumsum([len(b) + 1 for _, b in files])

    def positions(self, pat: bytes) -> np.ndarray:
        if self.raw.count(pat) <= 20000:
            out, j = [], self.raw.find(pat)
            while j >= 0:
                out.append(j)
                j = self.raw.find(pat, j + 1)
            return np.asarray(out, np.int64)
        m = len(pat)
        p = np.frombuffer(pat, np.uint8)
        mask = self.arr[: len(self.arr) - m + 1] == p[0]
        for t in range(1, m):
            mask &= self.arr[t: len(self.arr) - m + 1 + t] == p[t]
        return np.nonzero(mask)[0].astype(np.int64)

    def answer(self, pat: bytes) -> tuple[int, np.ndarray]:
        pos = self.positions(pat)
        rows = np.unique(np.searchsorted(self.starts, pos, side="right") - 1)
        return len(pos), rows


# ------------------------------------------------------------------------------------------ builds
def child_usage(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run ``cmd``; (wall s, CPU s of it and its children, peak RSS MB of the largest, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, res.stdout + res.stderr


def build_lakeql(lake: Path, idx: Path, mode: str, jobs: int) -> tuple[float, float, float]:
    code = (ONLY_NGRAMS + "from lakeql.cli import main; import sys; "
            f"sys.exit(main(['index', {str(lake)!r}, '--index-dir', {str(idx)!r}, '--ngram', "
            f"'bench.files.text', '--ngram-mode', {mode!r}, '--ngram-jobs', '{jobs}', '--quiet']))")
    wall, cpu, rss, _ = child_usage([sys.executable, "-c", code])
    return wall, cpu, rss


FM_SCRIPT = r"""
import json, sys, time
import numpy as np
from fm_index import FMIndex
text = open(sys.argv[1], 'rb').read().decode('utf-8')
phrases = json.load(open(sys.argv[2]))
c0 = time.process_time(); w0 = time.perf_counter()
fm = FMIndex(text)
cpu = time.process_time() - c0; wall = time.perf_counter() - w0
counts, lat = [], []
for p in phrases:
    t = time.perf_counter(); c = fm.count(p); lat.append(time.perf_counter() - t); counts.append(c)
print(json.dumps({"cpu": cpu, "wall": wall, "counts": counts, "lat": lat}))
"""


def build_fm_index(files: list[tuple[str, bytes]], phrases: list[str], tmp: Path) -> dict:
    textfile, phrasefile = tmp / "fm_text.txt", tmp / "fm_phrases.json"
    textfile.write_bytes(b"".join(b + b"\x00" for _, b in files))
    phrasefile.write_text(json.dumps(phrases))
    wall, cpu, rss, out = child_usage([sys.executable, "-c", FM_SCRIPT, str(textfile), str(phrasefile)])
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = rss
    textfile.unlink()
    return res


# ------------------------------------------------------------------------------------------ timing
def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """Best of ``repeat`` runs (seconds) and the result."""
    best, val = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        val = fn()
        best = min(best, time.perf_counter() - t)
    return best, val


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_ms(s: float) -> str:
    if s != s:
        return "-"
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="~10 MB corpus, fewer phrases")
    ap.add_argument("--mb", type=float, default=None, help="corpus size in MB (default 100, quick 10)")
    ap.add_argument("--per-length", type=int, default=None, help="phrases per length (default 20, quick 6)")
    ap.add_argument("--baseline-per-length", type=int, default=None,
                    help="phrases per length timed with the DuckDB scan baseline (default 4, quick 3)")
    ap.add_argument("--jobs", type=int, default=2, help="--ngram-jobs for the build")
    ap.add_argument("--no-fast", action="store_true", help="skip the --ngram-mode fast build")
    ap.add_argument("--no-fm-index", action="store_true", help="skip the PyPI fm-index comparison")
    ap.add_argument("--no-words", action="store_true",
                    help="skip the issue-14 tables (benchmarks/ngrams_words.py)")
    ap.add_argument("--reuse", action="store_true", help="reuse the indexes already in --workdir")
    ap.add_argument("--workdir", help="where to put the lake and indexes (default: a temp dir)")
    ap.add_argument("--out", help="also write the Markdown report to this file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frequent-only", action="store_true",
                    help="only rows of frequent phrases (default index, no scan tier) vs DuckDB contains")
    ap.add_argument("--insensitive", action="store_true",
                    help="with --frequent-only: also an --ngram-case insensitive index")
    ap.add_argument("--repeat", type=int, default=5, help="with --frequent-only: interleaved runs per query")
    ap.add_argument("--corpus", choices=["python", "ir"], default="python",
                    help="with --frequent-only: Python sources (default) or the natural text of "
                         "../shared/data (ir/dbpedia + ir/msmarco documents, gsm8k problems; one row each)")
    a = ap.parse_args()
    if a.frequent_only:
        return frequent_only(a)
    mb = a.mb or (10 if a.quick else 100)
    per = a.per_length or (6 if a.quick else 20)
    base_per = a.baseline_per_length or (3 if a.quick else 4)

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="ngram-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    lake, idx, idx_fast = work / "lake", work / "idx", work / "idx_fast"
    log = print

    files = ir_files() if a.corpus == "ir" else corpus_files(int(mb * 1e6))
    text_bytes = sum(len(b) for _, b in files)
    parquet = write_lake(files, lake)
    log(f"corpus: {len(files)} files, {text_bytes / 1e6:.1f} MB text, "
        f"parquet {parquet.stat().st_size / 1e6:.1f} MB", file=sys.stderr)

    wall, cpu, rss = (float("nan"),) * 3 if a.reuse and (idx / "indexes.parquet").exists() \
        else build_lakeql(lake, idx, "compressed", a.jobs)
    log(f"lakeql build: {wall:.1f} s wall, {cpu:.1f} s CPU, peak {rss:.0f} MB", file=sys.stderr)
    fast = None
    if not a.no_fast:
        fast = (float("nan"),) * 3 if a.reuse and (idx_fast / "indexes.parquet").exists() \
            else build_lakeql(lake, idx_fast, "fast", a.jobs)
        log(f"lakeql fast build: {fast[0]:.1f} s wall", file=sys.stderr)

    phrases = sample_phrases(files, per, a.seed)
    fm = None if a.no_fm_index else build_fm_index(files, phrases, work)
    if fm:
        log(f"fm-index build: {fm['wall']:.1f} s wall, {fm['cpu']:.1f} s CPU", file=sys.stderr)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import duckdb

    import lakeql.plugins as plugins

    plugins.CAPABILITIES = ("lakeql.ngrams",)
    from lakeql.connection import register
    from lakeql.ngrams import query as Q

    def open_con(index_dir: Path):
        con = duckdb.connect()
        ctx = register(con, lake, index_dir=index_dir)
        return con, ctx

    con, ctx = open_con(idx)
    entry = ctx.store.find("ngram", "bench.files", "text")
    index_bytes = entry.bytes
    nidx = Q.load(ctx, "bench.files", "text")
    fast_con = fast_bytes = None
    if fast:
        fast_con, fctx = open_con(idx_fast)
        fast_bytes = fctx.store.find("ngram", "bench.files", "text").bytes

    brute = Brute(files)
    T, C = "bench.files", "text"
    pq_lit = "'" + str(parquet).replace("'", "''") + "'"
    bare, _ = timed(lambda: con.execute("SELECT ?::BIGINT", [1]).fetchone(), 20)
    # warm up (JIT cache load, first mmap touches)
    con.execute("SELECT ngram_count(?, ?, 'def'), ngram_rows(?, ?, 'def')", [T, C, T, C]).fetchall()
    con.execute("SELECT * FROM ngram_search(?, ?, 'def', k := 10)", [T, C]).fetchall()

    per_len: dict[int, dict[str, list[float]]] = {}
    n_checked = 0
    for i, ph in enumerate(phrases):
        pat = ph.encode()
        L = LENGTHS[i // per]
        d = per_len.setdefault(L, {k: [] for k in ("engine", "sql", "rows", "search", "duck", "fm",
                                                   "fast_rows", "fast_search", "occ")})
        want, want_rows = brute.answer(pat)
        arr = nidx.encode(ph)
        t_eng, got = timed(lambda arr=arr: nidx.count(arr), 5)
        assert got == want, (ph, got, want)
        t_sql, got = timed(lambda ph=ph: con.execute("SELECT ngram_count(?, ?, ?)", [T, C, ph]).fetchone()[0])
        assert got == want
        rows = nidx.row_counts(arr)[0]
        assert np.array_equal(rows, want_rows), (ph, len(rows), len(want_rows))
        t_rows, got = timed(
            lambda ph=ph: con.execute("SELECT ngram_rows(?, ?, ?)", [T, C, ph]).fetchone()[0], 1)
        assert got == len(want_rows)
        t_search, res = timed(lambda ph=ph: con.execute(
            "SELECT path, occurrences FROM ngram_search(?, ?, ?, k := 10)", [T, C, ph]).fetchall(), 1)
        assert len(res) == min(10, len(want_rows))
        if fm:
            assert fm["counts"][i] == want, ("fm-index disagrees", ph, fm["counts"][i], want)
            d["fm"].append(fm["lat"][i])
        if fast_con is not None:
            tf, got = timed(
                lambda ph=ph: fast_con.execute("SELECT ngram_rows(?, ?, ?)", [T, C, ph]).fetchone()[0], 1)
            assert got == len(want_rows)
            d["fast_rows"].append(tf)
            tfs, res2 = timed(lambda ph=ph: fast_con.execute(
                "SELECT path, occurrences FROM ngram_search(?, ?, ?, k := 10)", [T, C, ph]).fetchall(), 1)
            assert res2 == res
            d["fast_search"].append(tfs)
        if (i % per) < base_per:
            t_duck, got = timed(lambda ph=ph: con.execute(
                f"SELECT count(*) FROM read_parquet({pq_lit}) WHERE contains(text, ?)", [ph]
            ).fetchone()[0], 1)
            assert got == len(want_rows)
            d["duck"].append(t_duck)
        d["engine"].append(t_eng)
        d["sql"].append(t_sql)
        d["rows"].append(t_rows)
        d["search"].append(t_search)
        d["occ"].append(want)
        n_checked += 1
        if n_checked % 20 == 0:
            log(f"{n_checked}/{len(phrases)} phrases checked", file=sys.stderr)

    # ----------------------------------------------------------------------------------- report
    lines = []
    out = lines.append
    out(f"### Exact n-gram search — corpus {text_bytes / 1e6:.1f} MB ({len(files)} .py files, "
        "one row per file)")
    out("")
    out(f"Machine: {os.cpu_count()}-core {platform.machine()}, python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}. Latencies: p50 over phrases (count: best of 5 runs per phrase, "
        f"SQL count best of 3, rows/search one run). Bare `SELECT ?::BIGINT` through DuckDB: "
        f"{fmt_ms(bare)} ms. Every count and row set below was asserted equal to brute force "
        f"({n_checked} phrases){', and to the fm-index package' if fm else ''}.")
    out("")
    out("| metric | lakeql ngram | baseline | ratio |")
    out("|---|---|---|---|")
    out(f"| index size / text | {index_bytes / text_bytes:.3f} | target ≤ 0.5 | "
        f"{'met' if index_bytes <= 0.5 * text_bytes else 'MISSED'} |")
    if fast:
        out(f"| index size / text, `--ngram-mode fast` | {fast_bytes / text_bytes:.2f} | | |")
    out(f"| build wall (jobs={a.jobs}) | {wall:.1f} s ({text_bytes / 1e6 / wall:.1f} MB/s) | "
        f"{'fm-index {:.1f} s'.format(fm['wall']) if fm else '-'} | |")
    if fm:
        out(f"| build CPU | {cpu:.1f} s | fm-index {fm['cpu']:.1f} s | {cpu / fm['cpu']:.2f}x "
            "(target ≤ 0.5) |")
    out(f"| build peak RSS (largest process) | {rss:.0f} MB | "
        f"{'fm-index {:.0f} MB'.format(fm['peak_rss_mb']) if fm else '-'} | |")
    short = [x for L in LENGTHS if L <= 64 for x in per_len[L]["engine"]]
    short_sql = [x for L in LENGTHS if L <= 64 for x in per_len[L]["sql"]]
    duck_all = [x for L in LENGTHS for x in per_len[L]["duck"]]
    out(f"| count p50, ≤ 64 B, in engine | {fmt_ms(p50(short))} ms | target ≤ 0.1 ms | |")
    out(f"| count p50, ≤ 64 B, SQL end to end | {fmt_ms(p50(short_sql))} ms | target ≤ 1 ms | |")
    sql_all = [x for L in LENGTHS for x in per_len[L]["sql"]]
    out(f"| `ngram_count` SQL vs DuckDB `contains` scan (p50, all lengths) | {fmt_ms(p50(sql_all))} ms | "
        f"{fmt_ms(p50(duck_all))} ms | {p50(duck_all) / p50(sql_all):.0f}x faster |")
    if fm:
        fm_short = [x for L in LENGTHS if L <= 64 for x in per_len[L]["fm"]]
        out(f"| count p50, ≤ 64 B, Python call | {fmt_ms(p50(short))} ms | fm-index "
            f"{fmt_ms(p50(fm_short))} ms | {p50(fm_short) / p50(short):.2f}x |")
    out("")
    out("Latency by phrase length (ms, p50; occurrences = median true count):")
    out("")
    head = "| bytes | occurrences | count engine | ngram_count SQL | ngram_rows SQL | ngram_search k=10 SQL |"
    sep = "|---|---|---|---|---|---|"
    if fast:
        head += " rows (fast mode) | search (fast mode) |"
        sep += "---|---|"
    head += " DuckDB contains scan | speed-up of ngram_count |"
    sep += "---|---|"
    if fm:
        head += " fm-index count |"
        sep += "---|"
    out(head)
    out(sep)
    for L in LENGTHS:
        d = per_len[L]
        row = (f"| {L} | {int(statistics.median(d['occ']))} | {fmt_ms(p50(d['engine']))} | "
               f"{fmt_ms(p50(d['sql']))} | {fmt_ms(p50(d['rows']))} | {fmt_ms(p50(d['search']))} |")
        if fast:
            row += f" {fmt_ms(p50(d['fast_rows']))} | {fmt_ms(p50(d['fast_search']))} |"
        row += f" {fmt_ms(p50(d['duck']))} | {p50(d['duck']) / p50(d['sql']):.0f}x |"
        if fm:
            row += f" {fmt_ms(p50(d['fm']))} |"
        out(row)
    if not a.no_words:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from ngrams_words import run as run_words

        run_words(files, con, lake, parquet, idx / "ngram", text_bytes, out, seed=a.seed)
    report = "\n".join(lines)
    print(report)
    if a.out:
        Path(a.out).write_text(report + "\n")
    return 0


FREQUENT_CHARS = ["e", " ", "self", "return", "import", "def __init__(self"]
FREQUENT_WORDS = ["self", "the", "return self", "import os"]
FREQUENT_FOLDED = ["SELF", "Return", "straße"]
FREQUENT_FOLDED_WORDS = ["SELF", "The"]
# natural text (--corpus ir)
IR_CHARS = ["e", " ", "the", "of the", "and", "in the"]
IR_WORDS = ["the", "of the", "is a"]
IR_FOLDED = ["THE", "Of The"]
IR_FOLDED_WORDS = ["THE", "of THE"]


def ir_files() -> list[tuple[str, bytes]]:
    """(id, UTF-8 text) of every document of ../shared/data/ir (dbpedia, msmarco: title + text) and every
    gsm8k test problem (question + answer): real natural text, one row each."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not root.exists():
        root = Path("/work/shared/data")
    out = []
    for name in ("dbpedia", "msmarco"):
        with open(root / "ir" / name / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                out.append((f"{name}/{d['_id']}", (d.get("title", "") + "\n" + d["text"]).encode("utf-8")))
    with open(root / "gsm8k" / "test.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            d = json.loads(line)
            out.append((f"gsm8k/{i}", (d["question"] + "\n" + d["answer"]).encode("utf-8")))
    return out


def load_avg() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def frequent_only(a) -> int:
    """Rows of frequent phrases with the default index (no scan tier) vs DuckDB's ``contains`` scan."""
    import re

    mb = a.mb or (10 if a.quick else 100)
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="ngram-freq-"))
    work.mkdir(parents=True, exist_ok=True)
    lake = work / "lake"
    files = ir_files() if a.corpus == "ir" else corpus_files(int(mb * 1e6))
    text_bytes = sum(len(b) for _, b in files)
    parquet = lake / "bench" / "files.parquet"
    if not (a.reuse and parquet.exists()):
        write_lake(files, lake)
    cases = ["sensitive"] + (["insensitive"] if a.insensitive else [])
    for case in cases:
        idx = work / f"idx_{case}"
        if not (a.reuse and (idx / "indexes.parquet").exists()):
            code = (ONLY_NGRAMS + "from lakeql.cli import main; import sys; "
                    f"sys.exit(main(['index', {str(lake)!r}, '--index-dir', {str(idx)!r}, '--ngram', "
                    f"'bench.files.text', '--ngram-case', {case!r}, '--ngram-jobs', '{a.jobs}', '--quiet']))")
            wall, _, _, _ = child_usage([sys.executable, "-c", code])
            print(f"built the {case} index in {wall:.1f} s", file=sys.stderr)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import duckdb

    import lakeql.plugins as plugins

    plugins.CAPABILITIES = ("lakeql.ngrams",)
    from lakeql.connection import register

    T, C = "bench.files", "text"
    pq_lit = "'" + str(parquet).replace("'", "''") + "'"
    duck_cs_sql = f"SELECT count(*) FROM read_parquet({pq_lit}) WHERE contains(text, ?)"
    duck_ci_sql = f"SELECT count(*) FROM read_parquet({pq_lit}) WHERE contains(lower(text), lower(?))"
    top_sql = (f"SELECT path, (strlen(text) - strlen(replace(text, $1, ''))) // strlen($1) AS n "
               f"FROM read_parquet({pq_lit}) WHERE contains(text, $1) ORDER BY n DESC LIMIT 10")
    rows_text = None
    lines = []
    out = lines.append
    what = "../shared/data ir + gsm8k documents" if a.corpus == "ir" else "Python source files"
    out(f"### Frequent phrases, default index (no scan tier) — {text_bytes / 1e6:.1f} MB, {len(files)} rows "
        f"({what})")
    out("")
    out(f"{os.cpu_count()}-core {platform.machine()}, duckdb {duckdb.__version__}; best of {a.repeat} "
        "interleaved runs per query; ratio = lakeql / DuckDB `count(*) WHERE contains(text, ?)`; "
        "'DuckDB top-10' = the DuckDB query a user would write for ngram_search's answer (non-overlapping "
        "counts via `replace`).")
    out("")
    out("'main': the same function with the page decoder off (`ParquetColumn.pages = False`: pyarrow's "
        "reader + the count kernel, sparse case-sensitive phrases ranked by DuckDB's RE2 count: the code of "
        "`results/ngramcount.md`); 'DuckDB-only': the Parquet count kernel off altogether (DuckDB's scan "
        "with its native counts: the path of `results/ngramsearch.md`). All in the same run, interleaved.")
    out("")
    out("Case-insensitive rows: the baseline is `count(*) WHERE contains(lower(text), lower(?))` (DuckDB has "
        "no casefold); all others: `count(*) WHERE contains(text, ?)`. The baseline returns ONE number (rows "
        "holding the phrase); `ngram_rows` returns the same number (exact: words, casefold); "
        "`ngram_search` returns the 10 rows with the most (overlapping) occurrences, their counts, a "
        "snippet and the whole row: more work than the baseline on the same scan.")
    out("Ratios are against DuckDB's `contains` count: CPU time of the process (every thread, best of the "
        "runs; steadier on a loaded machine) and wall time (best of the runs).")
    out("")
    out("| index | unit | phrase | rows | `ngram_rows` | main | `ngram_search` k=10 | main | DuckDB-only | "
        "DuckDB `contains` count | DuckDB top-10 | rows CPU ratio | main | search CPU ratio | main | "
        "DuckDB-only | rows wall ratio | search wall ratio | load (1/5/15 min) |")
    out("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    import lakeql.ngrams.colscan as colscan_mod
    import lakeql.ngrams.pqcount as pqcount_mod

    pq_top, pq_rows = colscan_mod.ColumnScan._pq_top, colscan_mod.ColumnScan._pq_rows

    def old_path(on: bool) -> None:
        """'before': the Parquet count kernel (lakeql.ngrams.pqcount) off: DuckDB's scan as in
        results/ngramsearch.md."""
        colscan_mod.ColumnScan._pq_top = (lambda *x: None) if on else pq_top
        colscan_mod.ColumnScan._pq_rows = (lambda *x: None) if on else pq_rows

    for case in cases:
        con = duckdb.connect()
        register(con, lake, index_dir=work / f"idx_{case}")
        con.execute("SELECT ngram_rows(?, ?, 'def'), ngram_rows(?, ?, 'def', unit := 'word')", [T, C, T, C])
        con.execute("SELECT * FROM ngram_search(?, ?, 'def', k := 10)", [T, C]).fetchall()
        ir = a.corpus == "ir"
        if case == "sensitive":
            todo = [("char", p) for p in (IR_CHARS if ir else FREQUENT_CHARS)]
            todo += [("word", p) for p in (IR_WORDS if ir else FREQUENT_WORDS)]
        else:
            todo = [("char", p) for p in (IR_FOLDED if ir else FREQUENT_FOLDED)]
            todo += [("word", p) for p in (IR_FOLDED_WORDS if ir else FREQUENT_FOLDED_WORDS)]
        search_sql = "SELECT path, occurrences, snippet FROM ngram_search(?, ?, ?, k := 10, unit := ?)"
        # the baseline: what a DuckDB user would write (case-insensitive: contains over lower())
        duck_sql = duck_ci_sql if case == "insensitive" else duck_cs_sql
        for unit, ph in todo:
            t: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}

            def run(name, sql, params, t=t, cpu=cpu, con=con):
                """Wall and process CPU seconds (every thread: DuckDB's and ours) of one query."""
                t0, c0 = time.perf_counter(), time.process_time()
                res = con.execute(sql, params).fetchall()
                t.setdefault(name, []).append(time.perf_counter() - t0)
                cpu.setdefault(name, []).append(time.process_time() - c0)
                return res

            rows_sql = "SELECT ngram_rows(?, ?, ?, unit := ?)"
            for _ in range(a.repeat):
                n_duck = run("duck", duck_sql, [ph])[0][0]
                n_rows = run("rows", rows_sql, [T, C, ph, unit])[0][0]
                got = run("search", search_sql, [T, C, ph, unit])
                run("top", top_sql, [ph])
                pqcount_mod.ParquetColumn.pages = False
                try:
                    n_main = run("rows_main", rows_sql, [T, C, ph, unit])[0][0]
                    got_main = run("search_main", search_sql, [T, C, ph, unit])
                finally:
                    pqcount_mod.ParquetColumn.pages = True
                old_path(True)
                try:
                    n_old = run("rows_old", rows_sql, [T, C, ph, unit])[0][0]
                    got_old = run("search_old", search_sql, [T, C, ph, unit])
                finally:
                    old_path(False)
                # same answer, rows and order
                assert n_old == n_rows == n_main and got_old == got == got_main, (ph, unit, case)
            if unit == "char" and case == "sensitive":
                assert n_rows == n_duck, (ph, n_rows, n_duck)
            elif unit == "char" and n_rows != n_duck:  # lower() is not casefold: say so, the check is below
                print(f"note: {ph!r}: DuckDB lower() finds {n_duck} rows, casefold {n_rows}", file=sys.stderr)
            else:  # exact against a Python scan of the same rows
                if rows_text is None:
                    rows_text = [b.decode("utf-8") for _, b in files]
                if unit == "word" and case == "sensitive":
                    pat = re.compile(r"(?<!\w)" + r"\W+".join(re.escape(w) for w in re.findall(r"\w+", ph))
                                     + r"(?!\w)")
                    want = sum(1 for r in rows_text if pat.search(r))
                elif unit == "word":  # words cut, then case-folded (the index's rule)
                    ws = [w.casefold() for w in re.findall(r"\w+", ph)]
                    want = 0
                    for r in rows_text:
                        f = r.casefold()
                        if all(w in f for w in ws):  # necessary; then the exact word-sequence test
                            rw = [w.casefold() for w in re.findall(r"\w+", r)]
                            want += any(rw[i:i + len(ws)] == ws for i in range(len(rw) - len(ws) + 1))
                else:
                    f = ph.casefold()
                    want = sum(1 for r in rows_text if f in r.casefold())
                assert n_rows == want, (ph, unit, n_rows, want)
            b = {k: min(v) for k, v in t.items()}
            c = {k: min(v) for k, v in cpu.items()}
            out(f"| {case} | {unit} | `{ph!r}` | {n_rows} | {fmt_ms(b['rows'])} ms | "
                f"{fmt_ms(b['rows_main'])} ms | "
                f"{fmt_ms(b['search'])} ms | {fmt_ms(b['search_main'])} ms | {fmt_ms(b['search_old'])} ms | "
                f"{fmt_ms(b['duck'])} ms | {fmt_ms(b['top'])} ms | "
                f"**{c['rows'] / c['duck']:.2f}x** | {c['rows_main'] / c['duck']:.2f}x | "
                f"**{c['search'] / c['duck']:.2f}x** | {c['search_main'] / c['duck']:.2f}x | "
                f"{c['search_old'] / c['duck']:.2f}x | {b['rows'] / b['duck']:.2f}x | "
                f"{b['search'] / b['duck']:.2f}x | {load_avg()} |")
            print(lines[-1], file=sys.stderr)
        con.close()
    report = "\n".join(lines)
    print(report)
    if a.out:
        Path(a.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
