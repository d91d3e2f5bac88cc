"""The float32 ONNX encoder runs its token-budget runs side by side on threads (one intra-op thread each):
the vectors are those of the runs done one after the other, and a text's vector does not depend on its
batch."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from lakeql.demo import SAMPLE_LAKE


def test_parallel_runs_give_the_serial_vectors():
    from lakeql.embedding import load_model
    from lakeql.onnx_encoder import cpu_cores

    texts = [
        t
        for t in pq.read_table(SAMPLE_LAKE / "python" / "functions.parquet").column("docstring").to_pylist()
        if t
    ][:120]
    model = load_model(None, "onnx")
    assert model.workers == (cpu_cores() if cpu_cores() > 1 else 1)
    together = model.encode(texts, normalize_embeddings=True)
    workers = model.workers
    try:
        model.workers = 1  # the same session, runs one after the other
        serial = model.encode(texts, normalize_embeddings=True)
    finally:
        model.workers = workers
    assert float(np.abs(together - serial).max()) < 1e-6
    alone = np.vstack([model.encode([t], normalize_embeddings=True) for t in texts[:12]])
    assert float(np.abs(together[:12] - alone).max()) < 1e-6
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_a_forked_child_gets_its_own_threads():
    """An engine worker forked after the encoder ran keeps working (its pool's threads are not inherited)."""
    import multiprocessing as mp

    from lakeql.embedding import load_model

    model = load_model(None, "onnx")
    texts = ["zlib compression of a buffer", "parse a date string", "open a socket"] * 6
    want = model.encode(texts, normalize_embeddings=True)
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_encode_in_child, (texts,)).get(timeout=120)
    assert float(np.abs(np.asarray(got) - want).max()) < 1e-6


def _encode_in_child(texts):
    from lakeql.embedding import load_model

    return load_model(None, "onnx").encode(texts, normalize_embeddings=True).tolist()
