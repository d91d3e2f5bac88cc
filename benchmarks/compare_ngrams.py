"""lakeql n-gram search side by side with what users would pick instead (issue 14, item 11).

    /work/venv/bin/python benchmarks/compare_ngrams.py            # ~20 MB of real text
    /work/venv/bin/python benchmarks/compare_ngrams.py --mb 2     # a quick check

Corpus: the Python standard library's .py files (``benchmarks/ngrams.py``'s corpus: real text already on
every machine, one row per file) up to ``--mb`` MB, as one Parquet table. Phrases: cut from random rows,
1 to 512 bytes, every fifth made absent (``benchmarks/ngrams.py``'s sampler). Exact answers (occurrences,
rows) come from a brute-force scan of the same bytes.

Systems (one row each: build time, index bytes, latency p50/p95 of a count and of the matching rows,
how many answers were exact):

* lakeql ``--ngram`` (built by ``lakeql index`` in a child process; ``ngram_count`` / ``ngram_rows``
  through SQL);
* DuckDB ``contains`` (no index; a scan of the Parquet with lakeql's duckdb);
* Lance (``--lance-venv``, a subprocess): the FM-index if the installed ``pylance`` has one (else the
  row says why), and the ``NGRAM`` scalar index (trigram bitmaps) that serves ``contains()`` filters;
* DuckDB ``fts`` (``--vss-venv`` with duckdb 1.5.5 and the PyPI ``duckdb-extension-fts`` package,
  loaded offline): BM25 over words, so it can answer only "rows holding all these words"; its row
  counts are compared with the exact rows of the phrase (a superset at best: it ignores order,
  punctuation and adjacency).

A missing side venv gives a "skipped: <why>" row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def stats(ts: list[float]) -> tuple[float | None, float | None]:
    if not ts:
        return None, None
    ms = np.asarray(ts) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def row(system, config, build=None, nbytes=None, count_ts=None, rows_ts=None, exact="", note="") -> dict:
    c50, c95 = stats(count_ts or [])
    r50, r95 = stats(rows_ts or [])
    return {
        "system": system,
        "config": config,
        "build_s": build,
        "bytes": nbytes,
        "count_p50": c50,
        "count_p95": c95,
        "rows_p50": r50,
        "rows_p95": r95,
        "exact": exact,
        "note": note,
    }


def words(phrase: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", phrase)


# ------------------------------------------------------------------------------------------ workers
def worker_lance(a) -> list[dict]:
    import lance
    import pyarrow.parquet as pq

    phrases = json.loads(Path(a.phrases).read_text())
    want = json.loads(Path(a.truth).read_text())["rows"]
    root = Path(a.workdir) / "lance"
    shutil.rmtree(root, ignore_errors=True)
    ds = lance.write_dataset(pq.read_table(a.parquet, columns=["text"]), root / "t.lance")
    out = []
    t0 = time.perf_counter()
    try:
        ds.create_scalar_index("text", index_type="FM")
        out.append(
            row(
                f"Lance {lance.__version__}",
                "FM-index",
                time.perf_counter() - t0,
                note="FM index built; not measured further",
            )
        )
    except Exception as exc:  # noqa: BLE001 - the installed pylance has no FM index: say so
        out.append(
            row(
                f"Lance {lance.__version__}",
                "FM-index",
                note=(
                    f"skipped: pylance {lance.__version__} has no FM index type ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:120]})"
                ),
            )
        )

    def query(label, build, nbytes, note):
        ts, ok, failed = [], 0, 0
        for ph, w in zip(phrases, want, strict=True):
            esc = ph.replace("'", "''")
            t = time.perf_counter()
            try:
                got = ds.count_rows(filter=f"contains(text, '{esc}')")
            except Exception:  # noqa: BLE001 - a phrase the filter parser rejects
                failed += 1
                continue
            ts.append(time.perf_counter() - t)
            ok += got == w
        return row(
            f"Lance {lance.__version__}",
            label,
            build,
            nbytes,
            rows_ts=ts,
            exact=f"rows {ok}/{len(phrases)}" + (f" ({failed} filters rejected)" if failed else ""),
            note=note,
        )

    out.append(
        query(
            "no index: count_rows(contains(text, ...)) scan",
            None,
            dir_bytes(root / "t.lance"),
            "bytes = the Lance table itself",
        )
    )
    before = dir_bytes(root / "t.lance")
    t0 = time.perf_counter()
    ds.create_scalar_index("text", index_type="NGRAM")
    build = time.perf_counter() - t0
    ds = lance.dataset(root / "t.lance")
    idx = root / "t.lance" / "_indices"
    nbytes = dir_bytes(idx) if idx.exists() else dir_bytes(root / "t.lance") - before
    out.append(
        query(
            "NGRAM scalar index (trigram bitmaps) + contains()",
            build,
            nbytes,
            "candidates from trigrams, then the rows are re-checked; no occurrence counts",
        )
    )
    shutil.rmtree(root, ignore_errors=True)
    return out


def ext_path(name: str) -> str:
    """The extension file that the PyPI ``duckdb-extension-<name>`` package ships (loaded offline)."""
    import importlib

    import duckdb

    base = Path(next(iter(importlib.import_module(f"duckdb_extension_{name}").__path__)))
    files = sorted(base.glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension")) or sorted(
        base.rglob(f"{name}.duckdb_extension")
    )
    if not files:
        raise FileNotFoundError(f"no {name}.duckdb_extension under {base}")
    return str(files[0])


def worker_fts(a) -> list[dict]:
    import duckdb

    phrases = json.loads(Path(a.phrases).read_text())
    want = json.loads(Path(a.truth).read_text())["rows"]
    dbf = Path(a.workdir) / "fts.duckdb"
    dbf.unlink(missing_ok=True)
    con = duckdb.connect(str(dbf))
    con.execute(f"LOAD '{ext_path('fts')}'")
    con.execute(
        "CREATE TABLE docs AS SELECT row_number() OVER () AS id, text FROM read_parquet(?)", [a.parquet]
    )
    con.execute("CHECKPOINT")
    base = dbf.stat().st_size
    t0 = time.perf_counter()
    # No stemming and no stop words: the closest fts gets to exact words.
    con.execute("PRAGMA create_fts_index('docs', 'id', 'text', stemmer = 'none', stopwords = 'none')")
    build = time.perf_counter() - t0
    con.execute("CHECKPOINT")
    nbytes = dbf.stat().st_size - base
    ts, answerable, equal, superset_extra = [], 0, 0, []
    for ph, w in zip(phrases, want, strict=True):
        ws = words(ph)
        if not ws:
            continue
        answerable += 1
        t = time.perf_counter()
        got = con.execute(
            "SELECT count(*) FROM (SELECT fts_main_docs.match_bm25(id, ?, conjunctive := 1) AS s "
            "FROM docs) WHERE s IS NOT NULL",
            [" ".join(ws)],
        ).fetchone()[0]
        ts.append(time.perf_counter() - t)
        equal += got == w
        superset_extra.append(got - w)
    con.close()
    dbf.unlink(missing_ok=True)
    return [
        row(
            f"DuckDB {duckdb.__version__} fts",
            "BM25 index, all words of the phrase (conjunctive)",
            build,
            nbytes,
            rows_ts=ts,
            exact=f"rows equal {equal}/{len(phrases)} ({len(phrases) - answerable} phrases have no word)",
            note=f"answers 'rows holding all the words' (order, adjacency and punctuation ignored); its rows "
            f"minus the phrase's rows: median {int(np.median(superset_extra))}, min {min(superset_extra)}, "
            f"max {max(superset_extra)}; no occurrence counts",
        )
    ]


def side(venv: Path, worker: str, argv: list[str], label: str) -> list[dict]:
    from sidevenv import run_worker

    rows, why = run_worker(venv, __file__, worker, argv)
    return rows if rows is not None else [row(label, "-", note=why)]


# ------------------------------------------------------------------------------------------ main
def fmt(rows: list[dict]) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [
        "| system | config | build s | index bytes (/ text) | count p50 / p95 ms | rows p50 / p95 ms | "
        "exact answers | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = "-" if r["bytes"] is None else f"{r['bytes']:,} ({r['bytes'] / TEXT_BYTES[0]:.2f}x)"
        lines.append(
            f"| {r['system']} | {r['config']} | {f(r['build_s'], '.1f')} | {size} | "
            f"{f(r['count_p50'], '.2f')} / {f(r['count_p95'], '.2f')} | {f(r['rows_p50'], '.2f')} / "
            f"{f(r['rows_p95'], '.2f')} | {r['exact']} | {r['note']} |"
        )
    return "\n".join(lines)


TEXT_BYTES = [1]


def uptime() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=20.0, help="MB of text (default 20)")
    ap.add_argument(
        "--per-length",
        type=int,
        default=5,
        help="phrases per length (10 lengths, 1-512 B; every fifth of 4 B+ made absent)",
    )
    ap.add_argument("--workdir", default="/tmp/lakeql-compare-ngrams")
    ap.add_argument("--lance-venv", default="/work/venv-lance")
    ap.add_argument("--vss-venv", default="/work/venv-vss")
    ap.add_argument("--jobs", type=int, default=2, help="--ngram-jobs of the lakeql build")
    ap.add_argument("--out", help="also write the Markdown table here")
    ap.add_argument("--worker", choices=("lance", "fts"), help=argparse.SUPPRESS)
    ap.add_argument("--parquet", help=argparse.SUPPRESS)
    ap.add_argument("--phrases", help=argparse.SUPPRESS)
    ap.add_argument("--truth", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker_lance(a) if a.worker == "lance" else worker_fts(a)))
        return 0
    sys.path.insert(0, str(HERE))
    import ngrams as nb

    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    loads = [uptime()]
    files = nb.corpus_files(int(a.mb * 1e6))
    TEXT_BYTES[0] = sum(len(b) for _, b in files)
    lake, idx = work / "lake", work / "idx"
    parquet = nb.write_lake(files, lake)
    phrases = nb.sample_phrases(files, a.per_length, 1)
    brute = nb.Brute(files)
    truth = [brute.answer(p.encode()) for p in phrases]
    want_rows = [len(r) for _, r in truth]
    (work / "phrases.json").write_text(json.dumps(phrases))
    (work / "truth.json").write_text(json.dumps({"rows": want_rows, "count": [c for c, _ in truth]}))
    rows = []
    # lakeql
    wall, cpu, rss = nb.build_lakeql(lake, idx, "compressed", a.jobs)
    import duckdb

    import lakeql.plugins as plugins

    plugins.CAPABILITIES = ("lakeql.ngrams",)
    from lakeql.connection import register

    con = duckdb.connect()
    ctx = register(con, lake, index_dir=idx)
    nbytes = ctx.store.find("ngram", "bench.files", "text").bytes
    T, C = "bench.files", "text"
    con.execute("SELECT ngram_count(?, ?, 'def'), ngram_rows(?, ?, 'def')", [T, C, T, C]).fetchall()  # warm
    cts, rts, ok_c, ok_r = [], [], 0, 0
    for ph, (want_c, want_r) in zip(phrases, truth, strict=True):
        t = time.perf_counter()
        got = con.execute("SELECT ngram_count(?, ?, ?)", [T, C, ph]).fetchone()[0]
        cts.append(time.perf_counter() - t)
        ok_c += got == want_c
        t = time.perf_counter()
        got = con.execute("SELECT ngram_rows(?, ?, ?)", [T, C, ph]).fetchone()[0]
        rts.append(time.perf_counter() - t)
        ok_r += got == len(want_r)
    rows.append(
        row(
            "lakeql",
            "`--ngram` (character FM-index + word index), ngram_count / ngram_rows SQL",
            wall,
            nbytes,
            cts,
            rts,
            f"counts {ok_c}/{len(phrases)}, rows {ok_r}/{len(phrases)}",
            f"build {cpu:.0f} s CPU, peak RSS {rss:.0f} MB (child process, --ngram-jobs {a.jobs})",
        )
    )
    # DuckDB contains (no index)
    lit = "'" + str(parquet).replace("'", "''") + "'"
    dts, ok = [], 0
    for ph, w in zip(phrases, want_rows, strict=True):
        t = time.perf_counter()
        got = con.execute(
            f"SELECT count(*) FROM read_parquet({lit}) WHERE contains(text, ?)", [ph]
        ).fetchone()[0]
        dts.append(time.perf_counter() - t)
        ok += got == w
    rows.append(
        row(
            f"DuckDB {duckdb.__version__}",
            "contains() scan of the Parquet, no index",
            0.0,
            parquet.stat().st_size,
            rows_ts=dts,
            exact=f"rows {ok}/{len(phrases)}",
            note="bytes = the Parquet itself (zstd); no occurrence counts",
        )
    )
    con.close()
    loads.append(uptime())
    args = [
        "--parquet",
        str(parquet),
        "--phrases",
        str(work / "phrases.json"),
        "--truth",
        str(work / "truth.json"),
        "--workdir",
        str(work),
    ]
    rows += side(Path(a.lance_venv), "lance", args, "Lance")
    loads.append(uptime())
    rows += side(Path(a.vss_venv), "fts", args, "DuckDB fts")
    loads.append(uptime())
    head = (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
        f"corpus {TEXT_BYTES[0] / 1e6:.1f} MB of Python stdlib source in {len(files):,} rows; "
        f"{len(phrases)} phrases of 1-512 bytes ({sum(1 for w in want_rows if w == 0)} absent); "
        f"load average (1/5/15) at start and after each stage: {'; '.join(loads)}"
    )
    report = head + "\n\n" + fmt(rows)
    print(report)
    if a.out:
        Path(a.out).write_text(report + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
