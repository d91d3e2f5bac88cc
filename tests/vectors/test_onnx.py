"""``embed_backend='onnx'``: the int8 ONNX export of the packaged model against torch, on real docstrings.

The export is cached in the user cache (``~/.cache/lakeql/onnx``, or ``$LAKEQL_CACHE_DIR``): the first run
exports it (tens of seconds), later runs reuse it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_helpers import build  # noqa: E402

from lakeql.errors import LakeqlError  # noqa: E402


@pytest.fixture(scope="module")
def onnx_model():
    from lakeql.embedding import load_model

    return load_model(None, "onnx")


@pytest.fixture(scope="module")
def texts(rows) -> list[str]:
    return [r["docstring"] for r in rows if r["docstring"] and r["docstring"].strip()][:80]


def test_tokenizer_ids_equal_transformers_fast_tokenizer(onnx_model, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(onnx_model.model_dir))
    sample = [*texts, "zip " * 600, "\u00fcn\u00efc\u00f6d\u00e9 \U0001f40d", "x"]
    ref = tok(sample, truncation=True, max_length=onnx_model.max_seq_length)["input_ids"]
    assert onnx_model.tokenize(sample) == ref


def test_onnx_vectors_match_torch(onnx_model, model, texts):
    a = onnx_model.encode(texts, normalize_embeddings=True)
    b = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    cos = np.sum(a * b, axis=1)
    assert a.shape == b.shape and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert cos.mean() > 0.99 and cos.min() > 0.97
    # Same neighbours: recall@5 of each text's onnx neighbours against its torch neighbours.
    na = np.argsort(-(a @ a.T), axis=1)[:, 1:6]
    nb = np.argsort(-(b @ b.T), axis=1)[:, 1:6]
    assert np.mean([len(set(x) & set(y)) / 5 for x, y in zip(na, nb, strict=True)]) > 0.9
    one = onnx_model.encode(texts[0], normalize_embeddings=True)  # a single string: one vector
    # Dynamic int8 quantizes activations with one scale per batch, so a text's vector moves slightly with
    # its batch companions (not bit-identical, unlike torch float32).
    assert one.shape == (384,) and float(one @ a[0]) > 0.99


def test_export_is_cached_atomically(onnx_model):
    folder = onnx_model.path.parent
    assert onnx_model.path.exists() and (folder / "source.json").exists()
    assert not list(folder.parent.glob(".export-*"))  # no temp folder left behind
    from lakeql.onnx_encoder import fingerprint

    assert folder.name == fingerprint(onnx_model.model_dir)


def test_cuda_without_a_gpu_is_a_clear_error():
    import onnxruntime as ort

    from lakeql.embedding import load_model

    if "CUDAExecutionProvider" in ort.get_available_providers():  # pragma: no cover - GPU machines
        assert load_model(None, "onnx", "cuda").device == "cuda"
        return
    with pytest.raises(LakeqlError, match="no CUDA GPU .* use device 'auto' or 'cpu'"):
        load_model(None, "onnx", "cuda")
    assert load_model(None, "onnx", "auto").device == "cpu"
    with pytest.raises(LakeqlError, match="unknown device 'tpu'"):
        load_model(None, "onnx", "tpu")


def test_onnx_index_answers_queries_without_torch(lake, tmp_path, con):
    build(lake[0], tmp_path / "idx", ["functions.docstring"], embed_backend="onnx")
    code = (
        "import sys, lakeql\n"
        f"con = lakeql.connect({str(lake[0])!r}, index_dir={str(tmp_path / 'idx')!r}, "
        "capabilities=['vectors'])\n"
        "rows = con.execute(\"SELECT qualname FROM semantic_search('python.functions', 'docstring', "
        "'compress data with zlib', k := 5)\").fetchall()\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules, "
        "'|'.join(r[0] for r in rows))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "LAKEQL_QUIET": "1"})
    assert out.returncode == 0, out.stderr
    torch_loaded, st_loaded, names = out.stdout.strip().splitlines()[-1].split(" ", 2)
    assert (torch_loaded, st_loaded) == ("False", "False")
    ref = [r[0] for r in con.execute("SELECT qualname FROM semantic_search('python.functions', 'docstring', "
                                     "'compress data with zlib', k := 5)").fetchall()]
    assert len(set(names.split("|")) & set(ref)) >= 4
