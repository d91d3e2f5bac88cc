"""Variants of the float32 ONNX encoder, side by side with torch float32 (benchmarks/results/encfuse.md).

    /work/venv/bin/python benchmarks/encoders_fp32.py --texts 192 --rounds 3 --torch
    /work/venv/bin/python benchmarks/encoders_fp32.py --variants plain,fused0,plain:1,par:plain:1:512:8

What it tries (none changes the vectors beyond float32 summation order):

* ``fusedN``: the cached float32 export run through ONNX Runtime's offline BERT fusions
  (``onnxruntime.transformers.optimizer.optimize_model(model_type='bert', num_heads=12,
  hidden_size=384, opt_level=N)``: EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu),
  written to a temp folder; ``plain`` is the export lakeql ships (ONNX Runtime fuses it at load);
* session options: intra-op threads and ``session.intra_op.allow_spinning``;
* the run sizes: token budget and rows per run (:func:`lakeql.onnx_encoder.token_batches`);
* ``par:``: runs handed to a pool of 2 Python threads, each ``session.run`` on 1 intra-op thread (the
  runs are independent, so the vectors do not change).

A variant is ``[par:]GRAPH[:THREADS[:BUDGET[:ROWS[:SPIN[:MODE]]]]]`` (MODE ``seq``, the default, or
``parallel``: ONNX Runtime's ``ORT_PARALLEL`` execution mode, 2 inter-op threads). Each round encodes
the same real passages (MS MARCO and DBpedia, alternating) with every variant in turn, so the load of
the shared machine hits all alike; wall sentences/s and sentences per CPU-second (process time) are
reported, the latter being the robust figure on a loaded machine. Exactness: max |difference| of
normalized vectors to the first variant and to torch, and batch invariance (each text alone vs in one
call).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LAKEQL_IR_DATA") or REPO.parent / "shared" / "data" / "ir")


def passages(name: str) -> list[str]:
    docs = [json.loads(line) for line in open(DATA / name / "corpus.jsonl", encoding="utf-8")]
    return [(d.get("title", "") + " " + d["text"]).strip() for d in docs]


def fused_graph(plain: Path, opt_level: int, folder: Path) -> Path:
    """The offline-fused copy of ``plain`` (BERT fusions of ONNX Runtime's transformers optimizer)."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    out = folder / f"fused{opt_level}.onnx"
    if not out.exists():
        m = optimize_model(
            str(plain), model_type="bert", num_heads=12, hidden_size=384, opt_level=opt_level, use_gpu=False
        )
        stats = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
        print(f"fused{opt_level}: {stats}", flush=True)
        m.save_model_to_file(str(out))
    return out


class Variant:
    """An ONNX float32 encoder with its own session, run sizes and threading (lakeql's tokenization)."""

    batches_by_tokens = True

    def __init__(
        self, base, path: Path, threads: int, budget: int, rows: int, spin: str, pool: int, mode: str = "seq"
    ) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        if mode == "parallel":
            so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            so.inter_op_num_threads = 2
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.names = {i.name for i in self.session.get_inputs()}
        self.base, self.budget, self.rows = base, budget, rows
        self.pool = ThreadPoolExecutor(pool) if pool else None

    def get_embedding_dimension(self) -> int:
        return self.base.dim

    def encode(self, sentences, normalize_embeddings: bool = True, **_) -> np.ndarray:
        from lakeql import onnx_encoder as oe

        texts = list(sentences)
        out = np.empty((len(texts), self.base.dim), np.float32)
        flat, starts, lengths = oe.flatten(self.base.tokenize(texts))

        def one(rows):
            arr, mask = oe.pad(flat, starts, lengths, rows)
            feed = {"input_ids": arr, "attention_mask": mask, "token_type_ids": np.zeros_like(arr)}
            out[rows] = self.session.run(None, {k: v for k, v in feed.items() if k in self.names})[0]

        runs = oe.token_batches(lengths, self.budget, self.rows)
        if self.pool is None:
            for rows in runs:
                one(rows)
        else:
            list(self.pool.map(one, runs))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default="plain,fused0,fused1,fused2,plain:1,par:plain:1")
    ap.add_argument("--torch", action="store_true", help="also torch float32 (lakeql's path, batches of 64)")
    ap.add_argument("--exact-texts", type=int, default=32)
    args = ap.parse_args(argv)

    from lakeql.embedding import encode, load_model
    from lakeql.onnx_encoder import cpu_cores

    ms, db = passages("msmarco"), passages("dbpedia")
    texts = [t for pair in zip(ms, db, strict=False) for t in pair][: args.texts]
    base = load_model(None, "onnx")
    folder = Path(tempfile.mkdtemp(prefix="lakeql-fp32-variants-"))
    models: dict[str, object] = {}
    for spec in args.variants.split(","):
        parts = spec.split(":")
        pool = 0
        if parts[0] == "par":
            pool, parts = 2, parts[1:]
        graph = parts[0]
        threads = int(parts[1]) if len(parts) > 1 else cpu_cores()
        budget = int(parts[2]) if len(parts) > 2 else 1024
        rows = int(parts[3]) if len(parts) > 3 else 16
        spin = parts[4] if len(parts) > 4 else "0"
        mode = parts[5] if len(parts) > 5 else "seq"
        path = base.path if graph == "plain" else fused_graph(base.path, int(graph[5:]), folder)
        models[spec] = Variant(base, path, threads, budget, rows, spin, pool, mode)
    if args.torch:
        models["torch"] = load_model(None, "torch")
    print(f"load average (uptime) before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for m in models.values():
        encode(texts[:8], m)  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in models}
    cpu: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for k, m in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            encode(texts, m)
            wall[k].append(len(texts) / (time.perf_counter() - t0))
            cpu[k].append(len(texts) / (time.process_time() - c0))
    print(f"load average (uptime) after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    first = next(iter(models))
    ref = "torch" if "torch" in models else first
    print(f"\n{len(texts)} passages x {args.rounds} interleaved rounds; ratios to {ref} (median rounds)\n")
    print("| variant | sentences/s (median) | rounds | per CPU-second (median) | wall ratio | CPU ratio |")
    print("|---|---|---|---|---|---|")
    for k in models:
        w, c = statistics.median(wall[k]), statistics.median(cpu[k])
        rw, rc = w / statistics.median(wall[ref]), c / statistics.median(cpu[ref])
        rounds = ", ".join(f"{x:.1f}" for x in wall[k])
        print(f"| {k} | {w:.1f} | {rounds} | {c:.1f} | {rw:.2f}x | {rc:.2f}x |")
    ex = texts[: args.exact_texts]
    vec = {k: encode(ex, m) for k, m in models.items()}
    print(f"\n| variant | max abs diff to {first} | to {ref} | batch invariance (alone vs in one call) |")
    print("|---|---|---|---|")
    for k, m in models.items():
        alone = np.vstack([encode([t], m) for t in ex])
        d1, d2 = np.abs(vec[k] - vec[first]).max(), np.abs(vec[k] - vec[ref]).max()
        print(f"| {k} | {d1:.1e} | {d2:.1e} | {np.abs(vec[k] - alone).max():.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
