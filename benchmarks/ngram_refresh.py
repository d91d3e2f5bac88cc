"""Benchmark of n-gram ``--refresh`` after appending a Parquet file (issue 10 item 4).

Target: indexing a file that adds 1% of a table's rows costs <= 5% of the table's full build.

Corpus: real Python sources (the stdlib, then this venv's site-packages; :func:`ngrams.corpus_files`), one
row per file, split into ``--files`` Parquet files of the table ``bench.files``; the rows after them are
held out and appended later, ``--trials`` files of 1% of the table's rows each.

Every build runs ``lakeql index`` in a child process (n-gram capability only, ``--ngram-jobs 2``), so
each figure includes Python start, imports, the catalog and the manifest, plus the n-gram stage alone
(``build_seconds`` in the manifest). Measured in the same run: the full build, a no-op ``--refresh``,
each append + ``--refresh``, and a full rebuild of the final table (it must answer the same counts and
row sets as the refreshed index: asserted). The load (``/proc/loadavg``) is printed beside every timing.

Usage: ``python benchmarks/ngram_refresh.py [--mb 40] [--files 10] [--trials 3] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ngrams import ONLY_NGRAMS, child_usage, corpus_files  # noqa: E402

PHRASES = ["def ", "import os", "self.assertEqual(", "return None", "e", "raise ValueError(", "zzqqxx"]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write(path: Path, rows: list[tuple[str, bytes]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "path": [p for p, _ in rows],
                "text": pa.array([b for _, b in rows], pa.binary()).cast(pa.string()),
            }
        ),
        path,
        row_group_size=256,
        compression="zstd",
    )


def index(lake: Path, idx: Path, *extra: str) -> dict:
    """``lakeql index`` in a child process: wall, CPU, peak RSS, and the manifest's n-gram stage."""
    import pyarrow.parquet as pq

    args = ["index", str(lake), "--index-dir", str(idx), "--ngram-jobs", "2", "--quiet", *extra]
    code = ONLY_NGRAMS + f"from lakeql.cli import main; import sys; sys.exit(main({args!r}))"
    before = load()
    wall, cpu, rss, _ = child_usage([sys.executable, "-c", code])
    row = [r for r in pq.read_table(idx / "indexes.parquet").to_pylist() if r["kind"] == "ngram"][0]
    prm = json.loads(row["params"])
    return {
        "wall": wall,
        "cpu": cpu,
        "rss_mb": rss,
        "stage": prm["build_seconds"],
        "stage_cpu": prm["build_cpu_seconds"],
        "built_shards": prm["built_shards"],
        "kept_shards": prm["kept_shards"],
        "refreshed": prm["refreshed"],
        "load_before": before,
        "load_after": load(),
        "built_at": str(row["built_at"]),
    }


def answers(lake: Path, idx: Path) -> list:
    import lakeql

    con = lakeql.connect(lake, index_dir=idx)
    out = []
    for p in PHRASES:
        out.append(
            con.execute(
                "SELECT ngram_count($1, $2, $3), ngram_rows($1, $2, $3)", ["bench.files", "text", p]
            ).fetchone()
        )
        out.append(
            con.execute(
                "SELECT list(rowid ORDER BY rowid) FROM ngram_rows_any($1, $2, [$3])",
                ["bench.files", "text", p],
            ).fetchone()
        )
    out.append(
        con.execute(
            "SELECT list(next), list(count) FROM ngram_next('bench.files', 'text', "
            "'return', k := 10, unit := 'word')"
        ).fetchone()
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=40.0, help="text of the table before the appends")
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--trials", type=int, default=3, help="appends of 1%% of the rows, one refresh each")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ngram-refresh-", dir=a.tmp))
    try:
        rows = corpus_files(int(a.mb * 1e6 * (1 + 0.03 * a.trials)))
        base = rows[: int(len(rows) / (1 + 0.03 * a.trials))]
        while sum(len(b) for _, b in base) > a.mb * 1e6 and len(base) > a.files:
            base.pop()
        step = max(1, round(len(base) / 100))  # 1% of the table's rows per appended file
        extra = [rows[len(base) + i * step : len(base) + (i + 1) * step] for i in range(a.trials)]
        lake, idx = tmp / "lake", tmp / "idx"
        k = len(base) // a.files
        for i in range(a.files):
            write(
                lake / "bench" / "files" / f"part-{i:03d}.parquet",
                base[i * k : (i + 1) * k] if i < a.files - 1 else base[i * k :],
            )
        text_mb = sum(len(b) for _, b in base) / 1e6
        print(
            f"table: {len(base)} rows, {text_mb:.1f} MB text in {a.files} files; appends of {step} rows "
            f"({100 * step / len(base):.2f}% of the rows); {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            flush=True,
        )
        res: dict = {"rows": len(base), "text_mb": text_mb, "files": a.files, "append_rows": step}
        res["full"] = full = index(lake, idx, "--ngram", "bench.files.text")
        print(
            f"full build: wall {full['wall']:.2f} s, n-gram stage {full['stage']:.2f} s, "
            f"CPU {full['cpu']:.1f} s "
            f"(load {full['load_before']} -> {full['load_after']})",
            flush=True,
        )
        res["noop"] = noop = index(lake, idx, "--refresh")
        print(f"no-op refresh: wall {noop['wall']:.2f} s (load {noop['load_before']})", flush=True)
        res["appends"] = []
        for i, part in enumerate(extra):
            write(lake / "bench" / "files" / f"part-{a.files + i:03d}.parquet", part)
            r = index(lake, idx, "--refresh")
            r["append_mb"] = sum(len(b) for _, b in part) / 1e6
            res["appends"].append(r)
            print(
                f"append {i + 1} ({len(part)} rows, {r['append_mb']:.2f} MB) + refresh: "
                f"wall {r['wall']:.2f} s "
                f"= {r['wall'] / full['wall']:.3f}x the full build; n-gram stage {r['stage']:.2f} s = "
                f"{r['stage'] / full['stage']:.3f}x; built {r['built_shards']} shard(s), kept "
                f"{r['kept_shards']} (load {r['load_before']} -> {r['load_after']})",
                flush=True,
            )
        fresh = tmp / "rebuild"
        res["rebuild"] = rb = index(lake, fresh, "--ngram", "bench.files.text")
        print(
            f"full rebuild of the final table: wall {rb['wall']:.2f} s, n-gram stage {rb['stage']:.2f} s "
            f"(load {rb['load_before']} -> {rb['load_after']})",
            flush=True,
        )
        same = answers(lake, idx) == answers(lake, fresh)
        assert same, "the refreshed index answers differently from a full rebuild"
        res["equal_to_rebuild"] = same
        walls = [r["wall"] for r in res["appends"]]
        stages = [r["stage"] for r in res["appends"]]
        ref_wall = (full["wall"] + rb["wall"]) / 2
        ref_stage = (full["stage"] + rb["stage"]) / 2
        res["ratio_wall"] = [w / ref_wall for w in walls]
        res["ratio_stage"] = [s / ref_stage for s in stages]
        ref_cpu = (full["cpu"] + rb["cpu"]) / 2
        res["ratio_cpu"] = [r["cpu"] / ref_cpu for r in res["appends"]]
        cpus = ", ".join(f"{r['cpu']:.1f}" for r in res["appends"])
        print(
            f"CPU seconds (process + workers): full {full['cpu']:.1f} / {rb['cpu']:.1f}, no-op refresh "
            f"{noop['cpu']:.1f}, refreshes {cpus} = {min(res['ratio_cpu']):.3f}-{max(res['ratio_cpu']):.3f}x"
        )
        print(
            f"refresh / full build (mean of the two full builds): wall {min(res['ratio_wall']):.3f}-"
            f"{max(res['ratio_wall']):.3f}x, n-gram stage {min(res['ratio_stage']):.3f}-"
            f"{max(res['ratio_stage']):.3f}x (target <= 0.05); answers equal to the rebuild: {same}"
        )
        if a.out:
            Path(a.out).write_text(json.dumps(res, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
