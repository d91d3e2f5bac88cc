"""The ONNX encoders (``embed_backend='onnx'``, float32, the default; ``'onnx-int8'``): the exports of the
packaged model against torch, on real docstrings.

The exports are cached in the user cache (``~/.cache/lakeql/onnx``, or ``$LAKEQL_CACHE_DIR``): the first
run exports each (tens of seconds), later runs reuse them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testutil import python_last_line  # noqa: E402
from vectors_helpers import build  # noqa: E402

from lakeql.errors import LakeqlError  # noqa: E402


@pytest.fixture(scope="module")
def onnx_model():
    """The float32 ONNX encoder (what ``auto`` picks for the packaged model)."""
    from lakeql.embedding import load_model

    return load_model(None, "onnx")


@pytest.fixture(scope="module")
def int8_model():
    from lakeql.embedding import load_model

    return load_model(None, "onnx-int8")


@pytest.fixture(scope="module")
def texts(rows) -> list[str]:
    return [r["docstring"] for r in rows if r["docstring"] and r["docstring"].strip()][:80]


def test_tokenizer_ids_equal_transformers_fast_tokenizer(onnx_model, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(onnx_model.model_dir))
    sample = [*texts, "zip " * 600, "\u00fcn\u00efc\u00f6d\u00e9 \U0001f40d", "x"]
    ref = tok(sample, truncation=True, max_length=onnx_model.max_seq_length)["input_ids"]
    assert onnx_model.tokenize(sample) == ref


def test_fp32_onnx_vectors_equal_torch_and_do_not_depend_on_the_batch(onnx_model, model, texts):
    sample = [*texts, "x", "zip " * 600]  # short, long and truncated texts in the same call
    a = onnx_model.encode(sample, normalize_embeddings=True)
    b = model.encode(sample, normalize_embeddings=True, convert_to_numpy=True)
    assert onnx_model.precision == "fp32" and onnx_model.path.name == "model_fp32.onnx"
    # the same arithmetic as torch float32 up to summation order: measured max |difference| ~2e-7
    assert a.shape == b.shape and float(np.abs(a - b).max()) < 1e-5
    alone = np.stack([onnx_model.encode(t, normalize_embeddings=True) for t in sample])
    assert float(np.abs(a - alone).max()) < 1e-5  # batch invariant (measured ~7e-8)
    na = np.argsort(-(a @ a.T), axis=1, kind="stable")[:, 1:6]
    nb = np.argsort(-(b @ b.T), axis=1, kind="stable")[:, 1:6]
    assert np.mean([len(set(x) & set(y)) / 5 for x, y in zip(na, nb, strict=True)]) > 0.98


def test_int8_onnx_vectors_match_torch(int8_model, model, texts):
    assert int8_model.precision == "int8" and int8_model.path.name == "model_int8.onnx"
    onnx_model = int8_model
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


@pytest.fixture(scope="module")
def int8_token_model():
    from lakeql.embedding import load_model

    return load_model(None, "onnx-int8-token")


def test_int8_token_vectors_match_torch_and_do_not_depend_on_the_batch(int8_token_model, model, texts):
    """``onnx-int8-token``: int8 products with one activation scale per token. Its vectors are closer to
    torch's than ``onnx-int8``'s (one scale per call) and a text's vector does not depend on its batch."""
    from onnx import load

    m = int8_token_model
    assert m.precision == "int8tok" and m.path.name == "model_int8tok.onnx"
    ops = [n.op_type for n in load(str(m.path)).graph.node]
    # the 36 matrix products of MiniLM-L6 (6 layers x q, k, v, attention out, 2 feed-forward): all int8
    assert ops.count("MatMulInteger") == 36 and "DynamicQuantizeLinear" not in ops
    sample = [*texts, "x", "zip " * 600]
    a = m.encode(sample, normalize_embeddings=True)
    b = model.encode(sample, normalize_embeddings=True, convert_to_numpy=True)
    cos = np.sum(a * b, axis=1)
    # measured mean 0.998, min 0.996 on MS MARCO passages (onnx-int8: mean 0.9945, min 0.987)
    assert a.shape == b.shape and cos.mean() > 0.996 and cos.min() > 0.99
    alone = np.stack([m.encode(t, normalize_embeddings=True) for t in sample])
    assert float(np.abs(a - alone).max()) < 1e-5  # batch invariant (measured ~9e-8)
    na = np.argsort(-(a @ a.T), axis=1, kind="stable")[:, 1:6]
    nb = np.argsort(-(b @ b.T), axis=1, kind="stable")[:, 1:6]
    assert np.mean([len(set(x) & set(y)) / 5 for x, y in zip(na, nb, strict=True)]) > 0.95


@pytest.fixture(scope="module")
def int8_outlier_model():
    from lakeql.embedding import load_model

    return load_model(None, "onnx-int8-outlier")


def test_int8_outlier_vectors_are_closest_to_torch_and_do_not_depend_on_the_batch(
    int8_outlier_model, int8_token_model, model, texts
):
    """``onnx-int8-outlier``: per-token int8 with the model's outlier channels multiplied in float. Still
    36 int8 products, batch invariant, and closer to torch than ``onnx-int8-token`` on the same texts."""
    from onnx import load

    m = int8_outlier_model
    assert m.precision == "int8out" and m.path.name == "model_int8out.onnx"
    ops = [n.op_type for n in load(str(m.path)).graph.node]
    assert ops.count("MatMulInteger") == 36 and "DynamicQuantizeLinear" not in ops
    # the float side products: one Gather per input with outlier channels, one small MatMul per product
    assert ops.count("Gather") >= 6 and ops.count("MatMul") > 12
    sample = [*texts, "x", "zip " * 600]
    a = m.encode(sample, normalize_embeddings=True)
    b = model.encode(sample, normalize_embeddings=True, convert_to_numpy=True)
    t = int8_token_model.encode(sample, normalize_embeddings=True)
    cos, cos_token = np.sum(a * b, axis=1), np.sum(t * b, axis=1)
    assert a.shape == b.shape and cos.mean() > 0.998 and cos.min() > 0.995
    assert cos.mean() > cos_token.mean() and np.mean(cos > cos_token) > 0.75
    alone = np.stack([m.encode(x, normalize_embeddings=True) for x in sample])
    assert float(np.abs(a - alone).max()) < 1e-5  # batch invariant
    na = np.argsort(-(a @ a.T), axis=1, kind="stable")[:, 1:6]
    nb = np.argsort(-(b @ b.T), axis=1, kind="stable")[:, 1:6]
    assert np.mean([len(set(x) & set(y)) / 5 for x, y in zip(na, nb, strict=True)]) > 0.95


def test_outlier_channels_are_calibrated_from_the_shipped_text_deterministically(onnx_model):
    """The channels come from running the float32 graph on the fixed calibration text: the same answer
    every time, MiniLM's known outlier (channel 99 of every attention-output layer norm) among them, a
    few per input at most, and the calibration text's SHA-256 is part of the recipe."""
    import hashlib

    from lakeql import onnx_encoder

    first = onnx_encoder.outlier_channels(onnx_model.model_dir, onnx_model.path)
    assert first == onnx_encoder.outlier_channels(onnx_model.model_dir, onnx_model.path)
    ln = [k for k in first if "attention/output/LayerNorm" in k]
    assert len(ln) == 6 and all(99 in first[k] for k in ln)
    assert all(0 < len(v) <= onnx_encoder.OUTLIER_MAX for v in first.values())
    lines = onnx_encoder.CALIBRATION.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 256 and all(len(x.split()) >= 20 for x in lines)
    sha = hashlib.sha256(onnx_encoder.CALIBRATION.read_bytes()).hexdigest()
    assert sha in onnx_encoder.recipe("int8out") and "{" not in onnx_encoder.recipe("int8out")


def test_another_calibration_text_is_another_recipe_and_a_missing_one_a_clear_error(
    onnx_model, tmp_path, monkeypatch
):
    from lakeql import onnx_encoder

    before = onnx_encoder.fingerprint(onnx_model.model_dir, "int8out")
    edited = tmp_path / "onnx_calibration.txt"
    edited.write_text(onnx_encoder.CALIBRATION.read_text(encoding="utf-8") + "One more paragraph.\n")
    monkeypatch.setattr(onnx_encoder, "CALIBRATION", edited)
    assert onnx_encoder.fingerprint(onnx_model.model_dir, "int8out") != before
    assert onnx_encoder.fingerprint(onnx_model.model_dir, "int8tok") == onnx_encoder.fingerprint(
        onnx_model.model_dir, "int8tok"
    )
    monkeypatch.setattr(onnx_encoder, "CALIBRATION", tmp_path / "gone.txt")
    with pytest.raises(LakeqlError, match="calibration text of onnx-int8-outlier is missing.*reinstall"):
        onnx_encoder.recipe("int8out")


def test_outlier_channels_follow_the_model_not_fixed_numbers(
    int8_outlier_model, onnx_model, tmp_path, monkeypatch
):
    """The same MiniLM with its hidden channels permuted (an equivalent model whose outlier channel is
    no longer 99): the recipe finds the permuted channel, and its vectors, un-permuted, are the
    original's. Nothing in the recipe knows channel numbers."""
    import shutil

    import torch
    from transformers import AutoModel

    from lakeql import onnx_encoder
    from lakeql.embedding import load_model

    src = onnx_model.model_dir
    dst = tmp_path / "permuted"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx", "*.md"))
    bert = AutoModel.from_pretrained(str(src), local_files_only=True).eval()
    hidden = bert.config.hidden_size
    perm = torch.from_numpy(np.random.default_rng(7).permutation(hidden))
    with torch.no_grad():
        emb = bert.embeddings
        for table in (emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings):
            table.weight.copy_(table.weight[:, perm])
        norms = [emb.LayerNorm]
        for layer in bert.encoder.layer:
            att = layer.attention
            for lin in (att.self.query, att.self.key, att.self.value, layer.intermediate.dense):
                lin.weight.copy_(lin.weight[:, perm])  # inputs: the hidden channels
            for lin in (att.output.dense, layer.output.dense):
                lin.weight.copy_(lin.weight[perm, :])  # outputs: the hidden channels
                lin.bias.copy_(lin.bias[perm])
            norms += [att.output.LayerNorm, layer.output.LayerNorm]
        for norm in norms:
            norm.weight.copy_(norm.weight[perm])
            norm.bias.copy_(norm.bias[perm])
    bert.save_pretrained(str(dst))
    sample = ["how do I read a parquet file", "send an email with an attachment", "zip " * 300]
    ours = int8_outlier_model.encode(sample, normalize_embeddings=True)
    monkeypatch.setenv("LAKEQL_CACHE_DIR", str(tmp_path / "cache"))  # the user cache stays untouched
    chans = onnx_encoder.outlier_channels(dst, onnx_encoder.exported(dst))  # one float32 export (torch)
    permuted = load_model(str(dst), "onnx-int8-outlier")  # made from it: no second export
    where = int(np.flatnonzero(perm.numpy() == 99)[0])
    ln = [k for k in chans if "attention/output/LayerNorm" in k]
    assert where != 99 and len(ln) == 6 and all(where in chans[k] and 99 not in chans[k] for k in ln)
    theirs = permuted.encode(sample, normalize_embeddings=True)
    unpermuted = np.empty_like(theirs)
    unpermuted[:, perm.numpy()] = theirs
    # equal up to float summation order (a rounding step that flips in one layer moves the rest a little):
    # measured max |difference| 1e-8 on the two sentences, 1e-3 on the 300 repeated tokens
    assert float(np.sum(unpermuted * ours, axis=1).min()) > 0.9999


def test_export_is_cached_atomically(onnx_model):
    folder = onnx_model.path.parent
    assert onnx_model.path.exists() and (folder / "source.json").exists()
    # (no temp folder left behind: checked in a private cache below; this one is shared with other processes)
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


def test_a_default_index_answers_queries_without_torch(lake, tmp_path, con):
    """No ``embed_backend``: the index records ``onnx-int8-outlier`` and its queries never import torch."""
    import json

    from lakeql.onnx_encoder import recipe

    build(lake[0], tmp_path / "idx", ["functions.docstring"])
    meta = json.loads(next((tmp_path / "idx" / "embed").glob("*/meta.json")).read_text())
    assert meta["backend"] == "onnx-int8-outlier" and meta["onnx_recipe"] == recipe("int8out")
    code = (
        "import sys, lakeql\n"
        f"con = lakeql.connect({str(lake[0])!r}, index_dir={str(tmp_path / 'idx')!r}, "
        "capabilities=['vectors'])\n"
        "rows = con.execute(\"SELECT qualname FROM semantic_search('python.functions', 'docstring', "
        "'compress data with zlib', k := 5)\").fetchall()\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules, "
        "'|'.join(r[0] for r in rows))\n"
    )
    torch_loaded, st_loaded, names = python_last_line(code).split(" ", 2)
    assert (torch_loaded, st_loaded) == ("False", "False")
    ref = [
        r[0]
        for r in con.execute(
            "SELECT qualname FROM semantic_search('python.functions', 'docstring', "
            "'compress data with zlib', k := 5)"
        ).fetchall()
    ]
    assert len(set(names.split("|")) & set(ref)) >= 4


# ----------------------------------------------------------------------------- the export cache
@pytest.fixture()
def cache(tmp_path, monkeypatch, onnx_model):
    """An empty cache dir; ``convert`` copies the real float32 graph (no slow re-export) and counts."""
    import shutil

    from lakeql import onnx_encoder

    monkeypatch.setenv("LAKEQL_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[Path] = []

    def fake_convert(model_dir: Path, out: Path, precision: str = "fp32", pin: str | None = None) -> None:
        calls.append(out)
        shutil.copyfile(onnx_model.path, out)

    monkeypatch.setattr(onnx_encoder, "convert", fake_convert)
    target = tmp_path / "cache" / "onnx" / onnx_encoder.fingerprint(onnx_model.model_dir)
    return onnx_model.model_dir, target, calls


def test_the_recipe_keys_the_cache(onnx_model, monkeypatch):
    import json

    from lakeql import onnx_encoder

    record = json.loads((onnx_model.path.parent / "source.json").read_text())
    assert (
        record["recipe"] == onnx_encoder.RECIPE_FP32 and onnx_encoder.problem(onnx_model.path.parent) is None
    )
    before = onnx_encoder.fingerprint(onnx_model.model_dir)
    assert onnx_encoder.fingerprint(onnx_model.model_dir, "int8") != before  # another recipe, another key
    assert onnx_encoder.problem(onnx_model.path.parent, precision="int8") == "model_int8.onnx missing"
    keys = {onnx_encoder.fingerprint(onnx_model.model_dir, p) for p in onnx_encoder.PRECISIONS}
    assert len(keys) == len(onnx_encoder.PRECISIONS) == 4  # int8tok, int8out: a cache key each
    monkeypatch.setattr(onnx_encoder, "RECIPE_FP32", onnx_encoder.RECIPE_FP32 + "; something else")
    assert onnx_encoder.fingerprint(onnx_model.model_dir) != before
    assert onnx_encoder.problem(onnx_model.path.parent) == "made by another export recipe"


def test_an_export_of_another_recipe_is_rebuilt_not_used(cache):
    import json

    from lakeql import onnx_encoder

    model_dir, target, calls = cache
    target.mkdir(parents=True)  # what an older lakeql left at this key: another recipe, another graph
    (target / "model_fp32.onnx").write_bytes(b"old graph")
    (target / "source.json").write_text(json.dumps({"model_dir": str(model_dir), "format": 2}))
    assert onnx_encoder.problem(target) == "made by another export recipe"
    path = onnx_encoder.exported(model_dir)
    assert len(calls) == 1 and path == target / "model_fp32.onnx"
    assert onnx_encoder.problem(target, deep=True) is None
    assert json.loads((target / "source.json").read_text())["recipe"] == onnx_encoder.RECIPE_FP32
    assert onnx_encoder.exported(model_dir) == path and len(calls) == 1  # now reused, not rebuilt
    # no temp or stale folder left behind: the lock file and the export only
    assert sorted(p.name for p in target.parent.iterdir()) == [f".{target.name}.lock", target.name]


def test_a_truncated_or_unrecorded_export_is_rebuilt(cache):
    from lakeql import onnx_encoder

    model_dir, target, calls = cache
    path = onnx_encoder.exported(model_dir)
    with open(path, "r+b") as f:  # cut short (a full disk, a killed copy)
        f.truncate(path.stat().st_size // 2)
    assert "changed since it was written" in onnx_encoder.problem(target)
    onnx_encoder.exported(model_dir)
    assert len(calls) == 2 and onnx_encoder.problem(target, deep=True) is None
    (target / "source.json").write_text("{not json")
    assert onnx_encoder.problem(target) == "source.json missing or unreadable"
    onnx_encoder.exported(model_dir)
    assert len(calls) == 3 and onnx_encoder.problem(target) is None


def test_a_damaged_graph_of_the_same_size_is_rebuilt_when_it_fails_to_load(cache):
    import os

    from lakeql.onnx_encoder import OnnxEncoder, exported, problem

    model_dir, target, calls = cache
    path = exported(model_dir)
    st = path.stat()
    with open(path, "r+b") as f:  # overwritten in place: same size, same mtime, garbage header
        f.write(b"\xff" * 4096)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert problem(target) is None and "checksum" in problem(target, deep=True)
    enc = OnnxEncoder(model_dir, "cpu")
    assert len(calls) == 2 and problem(target, deep=True) is None
    assert enc.encode("rebuilt", normalize_embeddings=True).shape == (384,)


def test_a_graph_onnx_runtime_cannot_load_is_a_clear_error(cache, monkeypatch):
    from lakeql import onnx_encoder

    model_dir, target, calls = cache

    def broken(model_dir: Path, out: Path, precision: str = "fp32", pin: str | None = None) -> None:
        calls.append(out)
        out.write_bytes(b"\xff" * 4096)  # written as recorded, yet not an ONNX graph

    monkeypatch.setattr(onnx_encoder, "convert", broken)
    with pytest.raises(
        LakeqlError, match=r"(?s)cannot load the cached export .*: delete .* --embed-backend torch"
    ):
        onnx_encoder.OnnxEncoder(model_dir, "cpu")
    assert len(calls) == 1  # the file is as written: no pointless re-export


def test_a_failed_export_is_a_clear_error_and_leaves_no_temp_folder(cache, monkeypatch, capsys):
    from lakeql import onnx_encoder, progress

    model_dir, target, _ = cache

    def failing(model_dir: Path, out: Path, precision: str = "fp32", pin: str | None = None) -> None:
        out.write_bytes(b"partial")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(onnx_encoder, "convert", failing)
    monkeypatch.delenv("LAKEQL_QUIET", raising=False)
    monkeypatch.setattr(progress, "_QUIET", False)  # status lines on, whatever an earlier test set
    with (
        pytest.raises(LakeqlError, match=r"(?s)cannot export .*exporter crashed.*pass --embed-backend torch"),
    ):
        onnx_encoder.exported(model_dir)
    assert not target.exists() and not list(target.parent.glob(".export-*"))
    # the first use said what it was doing before it failed: one line naming the model and the cache
    err = capsys.readouterr().err
    assert f"onnx: exporting {model_dir} to an ONNX Runtime graph (fp32; once per machine" in err
    assert str(target) in err


def test_the_first_use_prints_one_export_line_then_nothing(cache, monkeypatch, capsys):
    from lakeql import onnx_encoder, progress

    model_dir, target, calls = cache
    monkeypatch.delenv("LAKEQL_QUIET", raising=False)
    monkeypatch.setattr(progress, "_QUIET", False)  # status lines on, whatever an earlier test set
    onnx_encoder.exported(model_dir)
    first = capsys.readouterr().err
    onnx_encoder.exported(model_dir)
    again = capsys.readouterr().err
    assert "onnx: exporting" in first and "onnx: export done in" in first and len(calls) == 1
    assert again == ""


# ----------------------------------------------------------------------------- token-budget runs
def test_token_batches_cover_every_text_once_within_the_budget():
    from lakeql.onnx_encoder import MAX_ROWS, TOKEN_BUDGET, token_batches

    rng = np.random.default_rng(3)
    lengths = np.concatenate([rng.integers(3, 257, 500), np.full(300, 4), [256, 1]]).astype(np.int64)
    runs = token_batches(lengths)
    flat = np.concatenate(runs)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert np.all(np.diff(lengths[flat]) <= 0)  # longest first, so each run pads little
    for run in runs:
        width = int(lengths[run].max())
        assert len(run) <= MAX_ROWS and (len(run) == 1 or len(run) * width <= TOKEN_BUDGET)
    assert max(len(r) for r in runs) == MAX_ROWS  # 4-token texts: 128 per run, not 256
    assert token_batches(np.zeros(0, np.int64)) == []


def test_pad_matches_row_by_row_padding():
    from lakeql.onnx_encoder import flatten, pad

    ids = [[101, 5, 6, 102], [101, 102], [101, 7, 8, 9, 10, 102], [101, 3, 102]]
    flat, starts, lengths = flatten(ids)
    rows = np.array([2, 0, 3])
    arr, mask = pad(flat, starts, lengths, rows)
    want = np.zeros((3, 6), np.int64)
    for r, i in enumerate(rows):
        want[r, : len(ids[i])] = ids[i]
    assert arr.dtype == np.int64 and np.array_equal(arr, want)
    assert np.array_equal(mask, (want != 0).astype(np.int64))


def test_token_budget_runs_give_the_vectors_of_one_text_at_a_time(int8_model, model, texts, monkeypatch):
    from lakeql import onnx_encoder
    from lakeql.embedding import encode

    onnx_model = int8_model

    sample = [*texts[:40], "x", "zip " * 600]  # short, long and truncated texts in the same call
    batched = onnx_model.encode(sample, normalize_embeddings=True)
    alone = np.stack([onnx_model.encode(t, normalize_embeddings=True) for t in sample])
    cos = np.sum(batched * alone, axis=1)
    # Dynamic int8 scales activations per run (one scale per tensor), so a vector moves slightly with its
    # run companions: measured mean 0.993, min 0.97-0.98 (a 3-token text beside longer ones).
    assert cos.mean() > 0.99 and cos.min() > 0.95
    # ... and no further from torch float32 than the one-at-a-time vectors are.
    ref = model.encode(sample, normalize_embeddings=True, convert_to_numpy=True)
    to_torch_batched, to_torch_alone = np.sum(batched * ref, axis=1), np.sum(alone * ref, axis=1)
    assert to_torch_batched.mean() > 0.99 and to_torch_batched.mean() > to_torch_alone.mean() - 0.003
    monkeypatch.setattr(onnx_encoder, "TOKEN_BUDGET", 1)  # one text per run: exactly the one-at-a-time path
    assert np.allclose(onnx_model.encode(sample, normalize_embeddings=True), alone, atol=1e-5)
    monkeypatch.undo()
    # lakeql.embedding.encode hands this encoder many texts per call (not batch_size): the same runs up to
    # the order of equal-length texts.
    via = encode(sample, onnx_model, batch_size=4)
    assert via.shape == batched.shape and np.sum(via * batched, axis=1).mean() > 0.995


# ----------------------------------------------------------------------------- the recipe of an index
def test_an_index_records_its_onnx_recipe_and_a_query_under_another_warns(lake, tmp_path, monkeypatch):
    """An index built with one export recipe and queried by a lakeql with another: a warning naming the
    rebuild; ``--refresh`` then rebuilds it (the recipe is part of its params) and the warning is gone."""
    import json
    import warnings

    import lakeql
    from lakeql import onnx_encoder
    from lakeql.vectors.sql import EncoderMismatchWarning

    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], embed_backend="onnx")
    meta = json.loads(next((idx / "embed").glob("*/meta.json")).read_text())
    assert meta["backend"] == "onnx" and meta["onnx_recipe"] == onnx_encoder.RECIPE_FP32
    sql = "SELECT qualname FROM semantic_search('python.functions', 'docstring', 'zlib', k := 3)"

    def query() -> list[warnings.WarningMessage]:
        con = lakeql.connect(lake[0], index_dir=idx, capabilities=["vectors"])
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            assert len(con.execute(sql).fetchall()) == 3
            assert len(con.execute(sql).fetchall()) == 3  # warned once per index and connection
        con.close()
        return [w for w in got if issubclass(w.category, EncoderMismatchWarning)]

    assert query() == []
    monkeypatch.setattr(onnx_encoder, "RECIPE_FP32", onnx_encoder.RECIPE_FP32 + "; a newer export")
    got = query()
    assert len(got) == 1
    msg = str(got[0].message)
    assert "python.functions.docstring" in msg and "another ONNX export recipe" in msg
    assert f"lakeql index {lake[0]} --refresh --embed python.functions.docstring --embed-backend onnx" in msg
    # a bare refresh (no --embed) rebuilds it too: the recipe is recorded as the one that made the vectors
    lakeql.index(lake[0], index_dir=idx, refresh=True, capabilities=["vectors"], progress=False)
    meta = json.loads(next((idx / "embed").glob("*/meta.json")).read_text())
    assert meta["onnx_recipe"] == onnx_encoder.RECIPE_FP32
    assert query() == []
    monkeypatch.setattr(onnx_encoder, "RECIPE_FP32", onnx_encoder.RECIPE_FP32 + "; and another")
    lakeql.index(
        lake[0],
        index_dir=idx,
        embed=["functions.docstring"],
        embed_backend="onnx",
        refresh=True,
        capabilities=["vectors"],
        progress=False,
    )
    meta = json.loads(next((idx / "embed").glob("*/meta.json")).read_text())
    assert meta["onnx_recipe"] == onnx_encoder.RECIPE_FP32
    assert query() == []


def test_encoder_mismatch_of_older_and_other_indexes(tmp_path):
    from lakeql.onnx_encoder import RECIPE_FP32, RECIPE_INT8
    from lakeql.vectors.builder import encoder_backend, encoder_mismatch, encoder_params

    assert encoder_params("torch") == {} and encoder_params("onnx") == {"onnx_recipe": RECIPE_FP32}
    assert encoder_params("onnx-int8") == {"onnx_recipe": RECIPE_INT8}
    assert encoder_mismatch({"backend": "torch"}, "d.t.c", tmp_path) is None
    assert encoder_mismatch({}, "d.t.c", tmp_path) is None  # written before backends: torch
    assert encoder_mismatch({"backend": "onnx", "onnx_recipe": RECIPE_FP32}, "d.t.c", tmp_path) is None
    assert encoder_mismatch({"backend": "onnx-int8", "onnx_recipe": RECIPE_INT8}, "d.t.c", tmp_path) is None
    # before 2026-12-07 'onnx' was the int8 graph: such an index is still int8, with no mismatch
    legacy = {"backend": "onnx", "onnx_recipe": RECIPE_INT8}
    assert encoder_backend(legacy) == "onnx-int8" and encoder_mismatch(legacy, "d.t.c", tmp_path) is None
    assert (
        encoder_backend({}) == "torch"
        and encoder_backend({"backend": "onnx", "onnx_recipe": RECIPE_FP32}) == "onnx"
    )
    old = encoder_mismatch({"backend": "onnx"}, "d.t.c", tmp_path)  # written before the recipe was recorded
    assert old is not None and "was not recorded" in old
    assert f"'lakeql index {tmp_path} --refresh --embed d.t.c --embed-backend onnx-int8'" in old


def test_encoding_at_interpreter_exit_runs_the_batches_in_turn():
    """The float32 encoder runs batches on a thread pool; an ``atexit`` handler (or a thread outliving the
    main one) cannot start threads any more: it encodes the runs one after another, the same vectors."""
    code = (
        "import atexit, numpy as np\n"
        "from lakeql.embedding import load_model\n"
        "m = load_model(None, 'onnx')\n"
        "texts = [f'sentence {i} about flights and airports ' * (1 + i % 7) for i in range(59)]\n"
        "ref = m.encode(texts)\n"
        "atexit.register(lambda: print('exit', float(np.abs(m.encode(texts) - ref).max())))\n"
    )
    assert python_last_line(code) == "exit 0.0"


@pytest.mark.parametrize("opset", [17, 18])
def test_per_token_quantization_of_a_weight_shared_by_two_matmuls_is_a_valid_graph(tmp_path, opset):
    """A weight read by several MatMuls (ALBERT shares every layer's weights) is quantized once: before,
    each MatMul added its own copy under the same name, an invalid graph (onnx.checker: 'initializer name
    is not unique'; ONNX Runtime warned and kept the duplicates as non-constant inputs). From opset 18 on,
    ReduceMax takes its axes as an input: before, the graph of an opset-18 source failed to load."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from lakeql.onnx_encoder import quantize_per_token

    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "W"], ["y"]),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 16]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "shared", io[:1], io[1:], [numpy_helper.from_array(w, "W")])
    src, dst = tmp_path / "f32.onnx", tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(src))
    assert quantize_per_token(src, dst) == 2
    q = onnx.load(str(dst))
    names = [t.name for t in q.graph.initializer]
    assert len(names) == len(set(names)) and names.count("W_lakeql_q8") == 1
    onnx.checker.check_model(q)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = np.maximum(x @ w, 0) @ w
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()  # int8 products, not float


def test_the_int8_token_graph_is_made_from_the_cached_float32_export_without_torch(
    tmp_path, monkeypatch, onnx_model
):
    """With this machine's float32 export cached and intact, ``onnx-int8-token``'s first use quantizes it
    (about a second) instead of exporting the model again through torch (measured 35-41 s at load ~7):
    here torch's exporter fails, and the graph is still made, byte for byte what a fresh export gives."""
    import shutil

    import torch

    from lakeql import onnx_encoder

    monkeypatch.setenv("LAKEQL_CACHE_DIR", str(tmp_path / "cache"))
    real_convert = onnx_encoder.convert
    monkeypatch.setattr(
        onnx_encoder, "convert", lambda m, out, p="fp32", pin=None: shutil.copyfile(onnx_model.path, out)
    )
    fp32 = onnx_encoder.exported(onnx_model.model_dir)  # the float32 export, cached with its record
    monkeypatch.setattr(onnx_encoder, "convert", real_convert)

    def no_export(*a, **k):
        raise RuntimeError("torch export must not run")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    graph = onnx_encoder.exported(onnx_model.model_dir, precision="int8tok")
    assert (
        graph.name == "model_int8tok.onnx" and onnx_encoder.problem(graph.parent, precision="int8tok") is None
    )
    fresh = tmp_path / "fresh.onnx"
    assert onnx_encoder.quantize_per_token(fp32, fresh) == 36
    assert onnx_encoder.file_sha256(graph) == onnx_encoder.file_sha256(fresh)
