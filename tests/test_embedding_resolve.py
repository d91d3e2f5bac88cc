"""``embed_backend='auto'`` is resolved once per process and model folder (it used to read the folder's
JSON files on every ``load_model`` call, i.e. per embedded batch), and again when the folder changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lakeql import embedding, onnx_encoder


@pytest.fixture
def calls(monkeypatch):
    """The folders :func:`lakeql.onnx_encoder.unsupported` was asked about, with a clear cache."""
    seen: list[str] = []
    real = onnx_encoder.unsupported

    def counting(model_dir):
        seen.append(str(model_dir))
        return real(model_dir)

    monkeypatch.setattr(onnx_encoder, "unsupported", counting)
    embedding.resolve_backend.cache_clear()
    yield seen
    embedding.resolve_backend.cache_clear()


def test_auto_is_resolved_once_per_folder(calls):
    for _ in range(5):
        assert embedding.resolve_backend(None) == embedding.AUTO_ONNX == "onnx-int8-outlier"
        assert embedding.resolve_backend(embedding.resolve_model(None), "auto") == embedding.AUTO_ONNX
        assert embedding.resolve_backend(None, embedding.AUTO_FP32) == "onnx"  # the float32 family
    assert calls == [embedding.resolve_model(None)]
    assert embedding.resolve_backend(None, "torch") == "torch" and len(calls) == 1  # explicit: no lookup


def test_a_changed_folder_is_resolved_again(calls, tmp_path):
    src = Path(embedding.resolve_model(None))
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json"):
        shutil.copy(src / name, model / name)
    (model / "1_Pooling").mkdir()
    shutil.copy(src / "1_Pooling" / "config.json", model / "1_Pooling" / "config.json")
    assert embedding.resolve_backend(str(model)) == embedding.AUTO_ONNX
    assert embedding.resolve_backend(str(model)) == embedding.AUTO_ONNX and len(calls) == 1
    # the pooling config rewritten in place (the folder's own mtime does not change): CLS pooling
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True}))
    st = pooling.stat()
    os.utime(pooling, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert embedding.resolve_backend(str(model)) == "torch" and len(calls) == 2
    assert embedding.resolve_backend(str(model), embedding.AUTO_FP32) == "torch" and len(calls) == 2
    # a removed tokenizer.json changes the folder too
    shutil.copy(src / "1_Pooling" / "config.json", pooling)
    (model / "tokenizer.json").unlink()
    assert embedding.resolve_backend(str(model)) == "torch" and len(calls) == 3
    assert "tokenizer.json" in onnx_encoder.unsupported(model)


def test_an_edit_that_keeps_the_mtime_is_resolved_again(calls, tmp_path):
    """``cp -p`` / ``rsync -t`` / ``touch -r`` keep a file's mtime: the key holds its ctime and size too."""
    src = Path(embedding.resolve_model(None))
    model = tmp_path / "model"
    shutil.copytree(src, model, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
    assert embedding.resolve_backend(str(model)) == embedding.AUTO_ONNX
    config = model / "config.json"
    st = config.stat()
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "roberta"}))
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime put back
    assert embedding.resolve_backend(str(model)) == "torch" and len(calls) == 2


def test_a_name_that_is_no_folder_is_not_cached(calls):
    for _ in range(2):
        assert embedding.resolve_backend("sentence-transformers/some-hub-name") == "torch"
    assert len(calls) == 2


def test_an_onnx_encoder_that_cannot_load_is_tried_once_per_process(monkeypatch):
    """Under ``auto``, a failed ONNX export falls back to torch with one warning; later calls (every
    ``find_tables`` query) go to torch at once instead of attempting the export again."""
    import warnings

    from lakeql.errors import LakeqlError

    tried = []

    def fake_load(name=None, backend="torch", device="cpu", pin=None):
        tried.append(backend)
        if backend.startswith("onnx"):
            raise LakeqlError("cannot export the model")
        return f"model:{backend}"

    embedding.load_model.cache_clear()
    monkeypatch.setattr(embedding, "load_model", fake_load)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [embedding.load_or_torch(None, "auto", "joins embed") for _ in range(3)]
    assert got == [("model:torch", "torch")] * 3
    assert tried.count(embedding.AUTO_ONNX) == 1 and len(caught) == 1
    assert "joins embed with torch" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as caught:  # the float32 family's auto falls back alike
        warnings.simplefilter("always")
        got = [embedding.load_or_torch(None, embedding.AUTO_FP32, "joins embed") for _ in range(2)]
    assert got == [("model:torch", "torch")] * 2 and tried.count("onnx") == 1 and len(caught) == 1
    with pytest.raises(LakeqlError):  # asked for by name: the error, no fallback
        embedding.load_or_torch(None, "onnx", "joins embed")
    embedding._ONNX_FAILED.clear()
