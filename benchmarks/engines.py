"""Local engine vs Ray engine (2 workers) on the same lakes, and the per-item costs behind the estimate
in docs/engines.md (issue 10, items 5 and 7).

Three measurements, each local vs Ray (``ray.init(num_cpus=2)``, started once), one run each:

(a) joins build (``capabilities=["joins"]``, default options) of the 489 fivethirtyeight tables, made
    into Parquet as ``benchmarks/build.py`` does: wall seconds, and the column-profile stage's seconds
    per table and per MB of Parquet (the per-file cost that Ray distributes);
(b) n-gram index of the Python standard library's source (``--ngram``, one row per ``.py`` file,
    ``TEXT_MB`` MB, shards of ``SHARD_MB`` MB, 2 jobs): seconds and seconds per MB of text;
(c) encoder throughput: ``N_TEXTS`` MS MARCO passages (../shared/data/ir/msmarco) encoded by the
    default torch encoder in this process vs by 2 Ray actors (``lakeql.engine_tasks.encode_batches``),
    sentences per second, and the seconds to load the model.

    python benchmarks/engines.py --workdir /tmp/engines --out benchmarks/results/engines.json
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
TEXT_MB = 24
SHARD_MB = 4.0
N_TEXTS = 1000


def capture_say() -> list[str]:
    """Record every status line of lakeql (the stage lines carry the per-stage seconds)."""
    import lakeql.indexer
    import lakeql.joins.builder
    import lakeql.ngrams.builder
    import lakeql.progress as progress
    import lakeql.vectors.builder  # noqa: F401 - imported so that their ``say`` is patched below

    lines: list[str] = []
    orig = progress.say

    def say(msg: str, *a, **k):
        lines.append(str(msg))
        return orig(msg, *a, **k)

    progress.say = say
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("lakeql") and getattr(mod, "say", None) is orig:
            mod.say = say
    return lines


def stdlib_lake(root: Path) -> tuple[Path, int]:
    target = root / "code" / "stdlib.parquet"
    if not target.exists():
        target.parent.mkdir(parents=True)
        paths, texts, size = [], [], 0
        for p in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
            if "site-packages" in p.parts:
                continue
            try:
                t = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            paths.append(p.name)
            texts.append(t)
            size += len(t.encode())
            if size > TEXT_MB * 1_000_000:
                break
        pq.write_table(pa.table({"path": paths, "text": texts}), target)
    n = pq.read_table(target, columns=["text"]).column(0)
    return root, sum(len(s.as_py().encode()) for s in n)


def timed_index(lake: Path, idx: Path, lines: list[str], **kw) -> dict:
    import shutil

    import lakeql

    if idx.exists():
        shutil.rmtree(idx)
    start = len(lines)
    t0 = time.perf_counter()
    rep = lakeql.index(lake, index_dir=idx, progress=True, **kw)
    secs = time.perf_counter() - t0
    return {"seconds": round(secs, 2), "stages": rep.stages, "lines": lines[start:]}


def profile_seconds(lines: list[str]) -> float | None:
    import re

    for line in lines:
        m = re.search(r"column profiles.*? in ([\d.]+) s", line)
        if m:
            return float(m.group(1))
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lakeql-engines"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "engines.json")
    ap.add_argument("--skip", action="append", default=[], choices=("joins", "ngrams", "encoder"))
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    import ray

    lines = capture_say()
    out: dict = {"machine": "2 cores, shared with 7 other engineers' jobs (load average 10-20)"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        if "joins" not in args.skip:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from build import lake_stats, make_538

            lake = args.workdir / "f538"
            if not lake.exists():
                make_538(lake)
                for p in lake.rglob("*.parquet"):  # lake.duckdb's views fail on a column named "filename"
                    if "filename" in [n.lower() for n in pq.read_schema(p).names]:  # (at the time of writing)
                        p.unlink()
            n_tables, n_bytes = lake_stats(lake)
            res = {"tables": n_tables, "parquet_bytes": n_bytes}
            for engine in ("local", "ray"):
                r = timed_index(lake, args.workdir / f"f538-{engine}", lines, engine=engine,
                                capabilities=["joins"])
                ps = profile_seconds(r["lines"])
                r.update(profile_seconds=ps, profile_s_per_table=ps / n_tables if ps else None,
                         profile_s_per_mb=ps / (n_bytes / 1e6) if ps else None)
                res[engine] = r
                print(engine, "joins", r["seconds"], "s; profiles", ps, "s", flush=True)
            out["joins_538"] = res
        if "ngrams" not in args.skip:
            lake, text_bytes = stdlib_lake(args.workdir / "stdlib")
            res = {"text_bytes": text_bytes, "shard_mb": SHARD_MB}
            for engine in ("local", "ray"):
                r = timed_index(lake, args.workdir / f"stdlib-{engine}", lines, engine=engine,
                                capabilities=["ngrams"], ngram=["code.stdlib.text"], ngram_shard_mb=SHARD_MB,
                                ngram_jobs=2)
                ng = next(s["seconds"] for s in r["stages"] if s["stage"] == "ngrams")
                r.update(ngram_seconds=ng, s_per_mb=ng / (text_bytes / 1e6))
                res[engine] = r
                print(engine, "ngrams", ng, "s", flush=True)
            out["ngrams_stdlib"] = res
        if "encoder" not in args.skip:
            from lakeql import embedding
            from lakeql.engine import RayEngine
            from lakeql.engine_tasks import encode_batches

            texts = []
            with open(SHARED / "ir" / "msmarco" / "corpus.jsonl") as f:
                for line in f:
                    texts.append(json.loads(line)["text"])
                    if len(texts) >= N_TEXTS:
                        break
            t0 = time.perf_counter()
            model = embedding.load_model(None, "torch")
            load = time.perf_counter() - t0
            t0 = time.perf_counter()
            embedding.encode(texts, model, batch_size=64)
            local = time.perf_counter() - t0
            batches = [(None, texts[i:i + 250]) for i in range(0, len(texts), 250)]
            t0 = time.perf_counter()
            encode_batches(RayEngine(), batches, None, "torch", 64)
            on_ray = time.perf_counter() - t0
            out["encoder_msmarco"] = {
                "texts": len(texts), "model_load_seconds": round(load, 2),
                "local_seconds": round(local, 2), "local_sentences_per_s": round(len(texts) / local, 1),
                "ray_2_actors_seconds_incl_model_loads": round(on_ray, 2),
                "ray_sentences_per_s": round(len(texts) / on_ray, 1)}
            print(out["encoder_msmarco"], flush=True)
    finally:
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("local", "ray")} if isinstance(v, dict)
                      else v for k, v in out.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
