"""Benchmark of lakeql's text encoders side by side: torch float32, ONNX Runtime float32 and int8.

    /work/venv/bin/python benchmarks/encoders.py              # throughput, nDCG@10, first-query latency
    /work/venv/bin/python benchmarks/encoders.py --texts 200 --rounds 2
    /work/venv/bin/python benchmarks/encoders.py --backends torch,torch-int8,onnx,onnx-int8

For each backend (``lakeql.embedding.load_model(None, backend)``, the packaged all-MiniLM-L6-v2;
default ``torch``, ``onnx`` (float32), ``onnx-int8``, ``onnx-int8-token`` and ``onnx-int8-outlier``):

* **sentences/s** on real MS MARCO and DBpedia passages (title + text, as indexed), measured in
  interleaved rounds (torch, onnx, onnx-int8, torch, ...) so that the load of this shared machine hits
  every backend alike; the median round per backend is reported, with its ratio to torch float32;
* **exactness**: max |difference| and cosine of each backend's vectors to torch float32's on the same
  texts, and **batch invariance**: each text encoded alone against the same text encoded in one call
  with all the others;
* **nDCG@10 / Recall@10** on ../shared/data/ir (dbpedia, msmarco: 5,000 documents and 50 queries each)
  with corpus and queries both encoded by the backend (exact float search), and the ratio to torch,
  plus mean / min cosine to torch's vectors and the share of each query's top 10 shared with torch's
  (exact float search, and a 1-bit sign index by Hamming distance); vectors are cached in
  benchmarks/_work/ (gitignored);
* **first query in a fresh process**: wall time of a new ``python`` that imports lakeql, loads the
  encoder and embeds one query (and, for onnx, whether torch/sentence_transformers got imported), plus
  ``lakeql.connect`` + ``semantic_search`` on a small lake embedded with that backend, and with the
  default (``embed_backend`` not given: ``auto``).

No GPU is present on the benchmark machine: the CUDA path (``device='cuda'``) is not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import vectors  # noqa: E402
from vectors import WORK, load_ir, ndcg_at_k, recall_rel  # noqa: E402

#: the IR sets: ../shared/data/ir beside the repository, or $LAKEQL_IR_DATA (e.g. from a git worktree)
DATA = vectors.DATA = Path(os.environ.get("LAKEQL_IR_DATA") or vectors.DATA)

BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-int8-token", "onnx-int8-outlier")
TORCH_TOKENS = "torch, onnx's token-budget runs"
K = 10


def passages(name: str) -> list[str]:
    docs = [json.loads(line) for line in open(DATA / name / "corpus.jsonl", encoding="utf-8")]
    return [(d.get("title", "") + " " + d["text"]).strip() for d in docs]


class TokenBatchedTorch:
    """torch float32 given the ONNX encoder's runs (length-sorted, ~1,024 padded tokens, <= 128 texts):
    the fair comparison of the two engines, as opposed to torch as lakeql runs it (batches of 64)."""

    batches_by_tokens = True

    def __init__(self, model) -> None:
        self.model = model
        self.max_seq_length = model.max_seq_length

    def get_embedding_dimension(self) -> int:
        from lakeql.embedding import dimension

        return dimension(self.model)

    def encode(self, sentences: list[str], normalize_embeddings: bool = True, **_) -> np.ndarray:
        from lakeql.onnx_encoder import token_batches

        tok = self.model.tokenizer(list(sentences), truncation=True, max_length=self.max_seq_length)
        lengths = np.array([len(x) for x in tok["input_ids"]], np.int64)
        out = np.empty((len(sentences), self.get_embedding_dimension()), np.float32)
        for rows in token_batches(lengths):
            out[rows] = self.model.encode(
                [sentences[i] for i in rows],
                batch_size=len(rows),
                convert_to_numpy=True,
                normalize_embeddings=normalize_embeddings,
                show_progress_bar=False,
            )
        return out


def reference_by_tokens(name: str) -> None:
    """Write the vectors benchmark's torch cache of ``name`` (corpus + queries) using token-budget runs,
    after checking on 64 passages that they equal lakeql's default torch batches (float32: no batch effect).
    """
    from lakeql.embedding import encode, load_model

    cpath, qpath = WORK / f"{name}_corpus.npy", WORK / f"{name}_queries.npy"
    if cpath.exists() and qpath.exists():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    torch_model = load_model(None, "torch")
    tok = TokenBatchedTorch(torch_model)
    docs = passages(name)
    a, b = encode(docs[:64], torch_model), encode(docs[:64], tok)
    diff = float(np.abs(a - b).max())
    print(
        f"{name}: torch reference encoded in token-budget runs; max |difference| to batches of 64 on 64 "
        f"passages: {diff:.1e}\n",
        flush=True,
    )
    if diff > 1e-4:
        raise SystemExit(f"token-budget torch vectors differ from the default ones by {diff}")
    queries = [json.loads(line)["text"] for line in open(DATA / name / "queries.jsonl", encoding="utf-8")]
    np.save(qpath, encode(queries, tok))
    np.save(cpath, encode(docs, tok))


def throughput(
    texts: list[str], rounds: int, batch_size: int, backends: list[str], torch_tokens: bool
) -> dict[str, list[float]]:
    """sentences/s of each backend per round, rounds interleaved across backends."""
    from lakeql.embedding import encode, load_model

    models = {b: load_model(None, b) for b in backends}
    if torch_tokens:
        models[TORCH_TOKENS] = TokenBatchedTorch(models["torch"])
    for m in models.values():
        encode(texts[:8], m, batch_size=batch_size)  # warm-up
    out: dict[str, list[float]] = {b: [] for b in models}
    for _ in range(rounds):
        for b, m in models.items():
            t0 = time.perf_counter()
            encode(texts, m, batch_size=batch_size)
            out[b].append(len(texts) / (time.perf_counter() - t0))
    return out


def cache_tag(backend: str) -> str:
    """``backend`` in the cache file names; an ONNX backend adds its export recipe's hash, so vectors of
    another recipe (``onnx`` was int8 before 2026-12-07) are never reused."""
    import hashlib

    from lakeql import onnx_encoder
    from lakeql.embedding import ONNX_PRECISION

    if backend not in ONNX_PRECISION:
        return backend
    rec = onnx_encoder.recipe(ONNX_PRECISION[backend])
    return f"{backend}-{hashlib.sha256(rec.encode()).hexdigest()[:8]}-rows{onnx_encoder.MAX_ROWS}"


def vectors_of(ds: dict, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """(corpus, queries) embeddings of ``ds`` by ``backend`` (torch: the vectors benchmark's cache)."""
    from lakeql.embedding import encode, load_model

    if backend == "torch":
        return ds["C"], ds["Q"]
    tag = cache_tag(backend)
    cpath, qpath = WORK / f"{ds['name']}_corpus_{tag}.npy", WORK / f"{ds['name']}_queries_{tag}.npy"
    m = load_model(None, backend)
    if not cpath.exists():
        np.save(cpath, encode(passages(ds["name"]), m, report=True, desc=f"{ds['name']} {backend}"))
    if not qpath.exists():
        np.save(qpath, encode(ds["query_texts"], m))
    return np.load(cpath), np.load(qpath)


def top_k(C: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Each query's exact top ``K`` rows of ``C`` by inner product."""
    return np.argsort(-(Q @ C.T), axis=1, kind="stable")[:, :K]


def top_k_bits(C: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Each query's top ``K`` rows of ``C`` by Hamming distance of the sign bits (a 1-bit index)."""
    cb, qb = np.packbits(C > 0, axis=1), np.packbits(Q > 0, axis=1)
    ham = np.stack([np.unpackbits(cb ^ q[None, :], axis=1).sum(1) for q in qb])
    return np.argsort(ham, axis=1, kind="stable")[:, :K]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row of ``a`` (a query's top K) also in the same row of ``b``."""
    return float(np.mean([len(set(x) & set(y)) / K for x, y in zip(a, b, strict=True)]))


def quality(ds: dict, C: np.ndarray, Q: np.ndarray) -> tuple[float, float]:
    top = top_k(C, Q)
    ids = ds["doc_ids"]
    nd, rc = [], []
    for i, row in enumerate(top):
        rels = ds["qrels"].get(ds["query_ids"][i], {})
        ranked = [ids[p] for p in row]
        nd.append(ndcg_at_k(ranked, rels))
        rc.append(recall_rel(ranked, rels))
    return float(np.mean(nd)), float(np.mean(rc))


FIRST_QUERY = """
import os, sys, time
t0 = time.perf_counter()
from lakeql.embedding import load_model
m = load_model(None, {backend!r})
v = m.encode(["how do I read a parquet file"], convert_to_numpy=True, normalize_embeddings=True)
t1 = time.perf_counter()
cpu = sum(os.times()[:2])
print(t1 - t0, int("torch" in sys.modules), int("sentence_transformers" in sys.modules), cpu)
"""

FIRST_SEARCH = """
import sys, time
t0 = time.perf_counter()
import lakeql
con = lakeql.connect({lake!r}, index_dir={index!r}, capabilities=["vectors"])
rows = con.execute("SELECT module FROM semantic_search('python.modules', 'docstring', "
                   "'send an email', k := 3)").fetchall()
print(time.perf_counter() - t0, int("torch" in sys.modules), len(rows))
"""


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fresh(code: str) -> tuple[float, list[str]]:
    """(process wall seconds, printed fields) of ``code`` in a new interpreter."""
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LAKEQL_QUIET": "1"},
    )
    return time.perf_counter() - t0, res.stdout.strip().splitlines()[-1].split()  # last line: the figures


def first_query(backend: str, reps: int) -> dict:
    walls, inner, cpu, torch_loaded = [], [], [], 0
    for _ in range(reps):
        wall, out = fresh(FIRST_QUERY.format(backend=backend))
        walls.append(wall)
        inner.append(float(out[0]))
        cpu.append(float(out[3]))
        torch_loaded = max(torch_loaded, int(out[1]))
    return {
        "wall": statistics.median(walls),
        "inner": statistics.median(inner),
        "torch": torch_loaded,
        "cpu": statistics.median(cpu),
    }


def exactness(texts: list[str], backends: list[str]) -> list[dict]:
    """Per backend: its vectors against torch float32's (max |difference|, min and mean cosine), and
    batch invariance (each text encoded alone against the same text in one call with all the others)."""
    from lakeql.embedding import load_model

    def enc(m, x):
        return m.encode(x, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)

    ref = enc(load_model(None, "torch"), texts)
    out = []
    for b in backends:
        m = load_model(None, b)
        batch = enc(m, texts)
        alone = np.stack([enc(m, [t])[0] for t in texts])
        cos_ref, cos_alone = np.sum(batch * ref, axis=1), np.sum(batch * alone, axis=1)
        out.append(
            {
                "backend": b,
                "diff": float(np.abs(batch - ref).max()),
                "cos_min": float(cos_ref.min()),
                "cos_mean": float(cos_ref.mean()),
                "alone_diff": float(np.abs(batch - alone).max()),
                "alone_cos_min": float(cos_alone.min()),
            }
        )
    return out


def first_search(backend: str, tmp: Path, reps: int) -> dict:
    """Fresh-process connect + semantic_search on the sample lake's python.modules embedded by ``backend``
    (``default``: the option not given)."""
    import lakeql
    from lakeql.demo import SAMPLE_LAKE

    index = tmp / f"idx-{backend}"
    lakeql.index(
        SAMPLE_LAKE,
        index_dir=index,
        embed=["python.modules.docstring"],
        capabilities=["vectors"],
        progress=False,
        **({} if backend == "default" else {"embed_backend": backend}),
    )
    meta = json.loads(next((index / "embed").glob("*/meta.json")).read_text())
    walls, torch_loaded = [], 0
    for _ in range(reps):
        wall, out = fresh(FIRST_SEARCH.format(lake=str(SAMPLE_LAKE), index=str(index)))
        walls.append(wall)
        torch_loaded = max(torch_loaded, int(out[1]))
    return {"wall": statistics.median(walls), "torch": torch_loaded, "recorded": meta.get("backend")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=256, help="passages per throughput round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3, help="fresh processes per latency figure")
    ap.add_argument(
        "--backends",
        type=lambda s: [b for b in s.split(",") if b],
        default=list(BACKENDS),
        help="backends measured (comma-separated; torch is always the baseline)",
    )
    ap.add_argument(
        "--torch-tokens",
        action="store_true",
        help="also time torch given the ONNX token-budget runs",
    )
    ap.add_argument("--exact-texts", type=int, default=64, help="texts of the exactness / batch check")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true", help="quality only (no throughput, no latency)")
    ap.add_argument(
        "--quality",
        type=lambda s: [b for b in s.split(",") if b],
        default=["onnx", "onnx-int8", "onnx-int8-token", "onnx-int8-outlier"],
        help="backends compared with torch on the IR sets (comma-separated)",
    )
    ap.add_argument(
        "--ref-tokens",
        action="store_true",
        help="encode the torch float32 reference vectors of the IR sets in token-budget runs (faster on a "
        "loaded machine; float32 vectors do not depend on their batch: checked on 64 passages)",
    )
    args = ap.parse_args(argv)
    if "torch" not in args.backends:
        args.backends.insert(0, "torch")
    os.environ.setdefault("LAKEQL_QUIET", "1")
    import onnxruntime

    print(
        f"# lakeql encoders benchmark\n\nmachine: {platform.machine()}, {os.cpu_count()} cores (shared), "
        f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__} "
        f"(providers: {', '.join(onnxruntime.get_available_providers())}); no GPU: CUDA not measured\n"
    )
    if not args.skip_speed:
        rng = np.random.default_rng(0)
        pool = passages("msmarco") + passages("dbpedia")
        texts = [pool[i] for i in rng.choice(len(pool), args.texts, replace=False)]
        WORK.mkdir(parents=True, exist_ok=True)
        load0 = load_avg()
        tp = throughput(texts, args.rounds, args.batch_size, args.backends, args.torch_tokens)
        base = statistics.median(tp["torch"])
        print(
            f"## Throughput ({args.texts} real passages x {args.rounds} interleaved rounds, batch "
            f"{args.batch_size}; median round)\n"
        )
        print(f"load average (uptime) before: {load0}, after: {load_avg()}\n")
        fair = statistics.median(tp[TORCH_TOKENS]) if TORCH_TOKENS in tp else None
        print(
            "| backend | sentences/s (median) | rounds | vs torch float32 (batches of "
            f"{args.batch_size}) | vs torch given the same token-budget runs |\n|---|---|---|---|---|"
        )
        for b in tp:
            med = statistics.median(tp[b])
            print(
                f"| {b} | {med:.1f} | {', '.join(f'{x:.1f}' for x in tp[b])} | {med / base:.2f}x | "
                f"{f'{med / fair:.2f}x' if fair else '-'} |"
            )
        print(flush=True)
        print(
            f"## Exactness ({args.exact_texts} of those passages; vectors L2-normalized)\n\n"
            f"load average (uptime) before: {load_avg()}\n\n"
            "| backend | max abs diff to torch | min cos to torch | mean cos to torch | "
            "batch invariance: max abs diff alone vs in one call | min cos alone vs in one call |\n"
            "|---|---|---|---|---|---|"
        )
        for r in exactness(texts[: args.exact_texts], args.backends):
            print(
                f"| {r['backend']} | {r['diff']:.1e} | {r['cos_min']:.6f} | {r['cos_mean']:.6f} | "
                f"{r['alone_diff']:.1e} | {r['alone_cos_min']:.6f} |",
                flush=True,
            )
        print()
        print(f"## First query in a fresh process (median of {args.reps})\n")
        print(f"load average (uptime) before: {load_avg()}\n")
        print(
            "| backend | process wall (python start to vector) | inside (import lakeql + load + embed) | "
            "process CPU seconds | torch imported | connect + semantic_search, fresh process |\n"
            "|---|---|---|---|---|---|"
        )
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            for b in [*args.backends, "default"]:
                fs = first_search(b, Path(tmp), args.reps)
                if b == "default":
                    b = f"default (index built without embed_backend: recorded {fs['recorded']!r})"
                    fq = None
                else:
                    fq = first_query(b, args.reps)
                cells = "- | - | - | -"
                if fq:
                    torch_cell = "yes" if fq["torch"] else "no"
                    cells = f"{fq['wall']:.2f} s | {fq['inner']:.2f} s | {fq['cpu']:.2f} s | {torch_cell}"
                print(
                    f"| {b} | {cells} | "
                    f"{fs['wall']:.2f} s (torch {'imported' if fs['torch'] else 'not imported'}) |",
                    flush=True,
                )
        print()
    if not args.skip_quality:
        print("## Retrieval quality (exact float search; corpus and queries encoded by the backend)\n")
        print(
            "| dataset | backend | nDCG@10 | / torch | Recall@10 | / torch | mean cos to torch | min cos | "
            "top-10 overlap with torch | binary (sign-bit) top-10 overlap |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in ("dbpedia", "msmarco"):
            if args.ref_tokens:
                reference_by_tokens(name)
            ds = load_ir(name)
            ref = quality(ds, ds["C"], ds["Q"])
            ref_top, ref_bits = top_k(ds["C"], ds["Q"]), top_k_bits(ds["C"], ds["Q"])
            for b in ["torch", *args.quality]:
                C, Q = vectors_of(ds, b)
                nd, rc = quality(ds, C, Q)
                cos = np.concatenate([np.sum(C * ds["C"], axis=1), np.sum(Q * ds["Q"], axis=1)])
                print(
                    f"| {name} | {b} | {nd:.4f} | {nd / ref[0]:.3f} | {rc:.4f} | {rc / ref[1]:.3f} | "
                    f"{cos.mean():.4f} | {cos.min():.4f} | {overlap(top_k(C, Q), ref_top):.3f} | "
                    f"{overlap(top_k_bits(C, Q), ref_bits):.3f} |",
                    flush=True,
                )
        print(f"load average (uptime) after: {load_avg()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
