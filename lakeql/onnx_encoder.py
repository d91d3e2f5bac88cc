"""``embed_backend='onnx'`` (float32), ``'onnx-int8'``, ``'onnx-int8-token'`` and ``'onnx-int8-outlier'``
(the default encoder): the sentence-transformers model exported once to an ONNX graph, run by ONNX Runtime.

Why: torch float32 encodes 16-51 sentences/s on a 2-core CPU and a fresh process needs 6-25 s to import
torch and load the model before its first query. The exported graph (BERT + mean pooling) run by ONNX
Runtime is faster (its fused kernels), and a query process imports only ``onnxruntime`` and
``tokenizers`` (no torch, no sentence-transformers, no transformers). Two recipes (:func:`recipe`):

* ``fp32``: the exported graph as is. Same arithmetic as torch float32 up to summation order: vectors
  within ~1e-6 of torch's, and a text's vector does not depend on its batch companions.
* ``int8``: the matrix products dynamically quantized to int8 (faster still). Dynamic quantization scales
  activations per batch, so a text's vector moves slightly with its batch companions (cosine > 0.99
  between a text encoded alone and in a batch), and nDCG@10 is 0.99-1.01x torch's.
* ``int8tok``: int8 with one activation scale per token (batch invariant; :func:`quantize_per_token`).
* ``int8out``: ``int8tok`` with each input's outlier channels multiplied in float, found by running the
  float32 graph on a fixed calibration text (:func:`outlier_channels`); the default (``auto``).

The export runs locally, offline, once per model and recipe: it needs torch + transformers (present
wherever the model can be loaded at all) and writes ``<cache>/onnx/<fingerprint>/`` atomically (a temp
folder renamed into place), where ``<cache>`` is ``$LAKEQL_CACHE_DIR``, else ``$XDG_CACHE_HOME/lakeql``,
else ``~/.cache/lakeql``. The fingerprint hashes the recipe, the model folder's small config/tokenizer
files and the size + mtime of its weight files (hashing 90 MB of weights would cost every fresh process
~0.3 s). ``source.json`` beside the graph records the recipe, size and SHA-256 of the graph: a cached
export whose record does not match (an older recipe, a truncated or altered file, a missing record) is
rebuilt, never used.

Tokenization uses the model folder's own ``tokenizer.json`` through the ``tokenizers`` library (the
engine under transformers' fast tokenizer, identical ids; tests compare), truncated to the model's
``max_seq_length``. Texts are sorted by token count and run in batches of about :data:`TOKEN_BUDGET`
padded tokens (at most :data:`MAX_ROWS` texts), so batches pad little and short texts share a call.
Pooling (mean over the attention mask) is part of the graph; L2 normalization is done here, as
sentence-transformers does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lakeql.errors import LakeqlError

FORMAT = 3  # bump to invalidate every cached export
PRECISIONS = ("fp32", "int8", "int8tok", "int8out")
#: how the cached int8 graph is made: part of the cache key and checked against ``source.json`` on load,
#: so an export made by another recipe is rebuilt, never used. Quantizing only the MatMul weights, per
#: output channel, on the plain graph (no offline BERT fusions) leaves ONNX Runtime free to fuse the int8
#: products at load (MatMulIntegerToFloat); measured faster than fused Attention + int8 (see
#: benchmarks/results/encoders.md) at the same quality.
RECIPE_INT8 = (
    f"lakeql-onnx/{FORMAT}: torch.onnx TorchScript opset 17, transformer + mean pooling; plain graph; "
    "quantize_dynamic QInt8 per_channel op_types=MatMul; embeddings float"
)
#: the float32 graph: the same export, not quantized (ONNX Runtime fuses GELU, layer norms and the attention
#: products at load). ONNX Runtime's offline BERT fusions (fused Attention, SkipLayerNormalization,
#: EmbedLayerNormalization) were measured no faster per CPU-second on this graph (benchmarks/results/
#: encfuse.md), so the recipe stays the plain export.
RECIPE_FP32 = (
    f"lakeql-onnx/{FORMAT}: torch.onnx TorchScript opset 17, transformer + mean pooling; plain graph; "
    "float32, not quantized"
)
#: the int8 graph with per-token activation scales (``onnx-int8-token``): each MatMul's weights int8 per
#: output channel, its input quantized to uint8 row by row (one scale per token: ReduceMax of |x| over the
#: hidden axis) and multiplied by MatMulInteger (u8 x s8, ONNX Runtime's fast path). A token's scale depends
#: on that token only, so a text's vector does not depend on its batch-mates (unlike ``int8``, whose
#: per-call scale lets one outlier token coarsen every other text of the call), and no calibration text is
#: needed. Measured
#: mean cosine to torch float32 0.998 (``int8``: 0.9945) at 1.1x the CPU time of ``int8`` per run
#: (benchmarks/results/int8enc.md).
RECIPE_INT8TOK = (
    f"lakeql-onnx/{FORMAT}: torch.onnx TorchScript opset 17, transformer + mean pooling; plain graph; "
    "MatMul weights int8 per output channel (symmetric, 127), inputs uint8 per token (symmetric scale "
    "max|x|/127, zero point 128) by MatMulInteger; embeddings float"
)
#: ``onnx-int8-outlier``: :data:`RECIPE_INT8TOK` plus, for each quantized MatMul input, its outlier channels
#: (calibrated max |x| above :data:`OUTLIER_RATIO` x the input's median channel max, at most
#: :data:`OUTLIER_MAX` per input) kept out of the int8 product and multiplied in float. BERT's layer-norm
#: outputs carry a few channels ~15x larger than the rest (MiniLM: channel 99 of every layer); a per-token
#: scale set by such a channel leaves every other channel of the token coarse. The channels are found by
#: running the float32 graph on :data:`CALIBRATION` (fixed text shipped with lakeql, its SHA-256 part of
#: the recipe), so they are the model's own, never hard-coded. Measured mean cosine to torch 0.9993 at
#: the CPU time of ``int8tok`` (benchmarks/results/o4enc.md).
OUTLIER_RATIO = 4.0
OUTLIER_MAX = 8
#: the calibration text of ``int8out``: one paragraph per line, the first 256 prose paragraphs (20+ words,
#: mostly letters) of the module docstrings in lakeql's sample lake (``sample_lake/python/modules.parquet``,
#: Python's standard library), frozen into this file so the recipe never moves with the sample lake
CALIBRATION = Path(__file__).with_name("onnx_calibration.txt")
RECIPE_INT8OUT = (
    f"lakeql-onnx/{FORMAT}: torch.onnx TorchScript opset 17, transformer + mean pooling; plain graph; "
    "MatMul weights int8 per output channel (symmetric, 127), inputs uint8 per token (symmetric scale "
    "max|x|/127, zero point 128) by MatMulInteger; outlier input channels (calibrated max|x| > "
    f"{OUTLIER_RATIO:g}x the median channel, at most {OUTLIER_MAX} per input) zeroed and multiplied in "
    "float; calibration onnx_calibration.txt sha256 {calibration}, tokens of each text up to max_seq_length; "
    "embeddings float"
)
ONNX_FILES = {
    "int8": "model_int8.onnx",
    "fp32": "model_fp32.onnx",
    "int8tok": "model_int8tok.onnx",
    "int8out": "model_int8out.onnx",
}
RECORD = "source.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: padded tokens (rows x longest row) per ONNX Runtime call: small enough that activations stay in the
#: CPU caches, large enough that short texts share a call
TOKEN_BUDGET = 1024
#: texts per call at most, however short. Dynamic int8 quantization scales activations per call, so one
#: text's vector depends on its batch-mates: with 128 rows nDCG@10 on MS MARCO fell to 0.987x torch,
#: with 16 it is 0.990x (DBpedia 0.997x -> 1.010x), measured 2026-12-06 with benchmarks/encoders.py.
#: The float32 graph has no such effect; 16 rows of short texts is also about as fast as more.
MAX_ROWS = 16
_LOCK = threading.Lock()
#: the fix named by every error of a failed or unusable export
USE_TORCH = "pass --embed-backend torch (Python: embed_backend='torch')"


def cache_root() -> Path:
    """The user cache folder of lakeql (``$LAKEQL_CACHE_DIR`` > ``$XDG_CACHE_HOME/lakeql`` > ~/.cache)."""
    if os.environ.get("LAKEQL_CACHE_DIR"):
        return Path(os.environ["LAKEQL_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lakeql"


def recipe(precision: str = "fp32", pin: str | None = None) -> str:
    """The export recipe of ``precision`` (``fp32``, ``int8``, ``int8tok`` or ``int8out``):
    :data:`RECIPE_FP32`, :data:`RECIPE_INT8`, :data:`RECIPE_INT8TOK`, :data:`RECIPE_INT8OUT` (with the
    SHA-256 of :data:`CALIBRATION`: an edited calibration text is another recipe).

    ``pin`` (``int8out`` only): the outlier channels an index recorded (:func:`channels_text`), used
    instead of this machine's calibration: another graph, so another recipe (and cache folder)."""
    if precision not in PRECISIONS:
        raise LakeqlError(f"unknown ONNX precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "int8out":
        if pin is None:
            return RECIPE_INT8OUT.format(calibration=_calibration_sha())
        # the pinned graph is the float32 export and the channels: no calibration text read (it may be
        # missing where an index is queried)
        base = RECIPE_INT8OUT.format(calibration="(not used)")
        return f"{base}; outlier channels pinned (not calibrated), sha256 {channels_id(pin)}"
    return {"int8": RECIPE_INT8, "int8tok": RECIPE_INT8TOK}.get(precision, RECIPE_FP32)


_CALIBRATION_SHA: dict[tuple[int, int], str] = {}


def _missing_calibration() -> LakeqlError:
    """The error of an install without :data:`CALIBRATION` (``onnx-int8-outlier`` cannot be made)."""
    return LakeqlError(
        f"the calibration text of onnx-int8-outlier is missing ({CALIBRATION}): reinstall lakeql, "
        "or use embed_backend 'onnx-int8-token' or 'onnx'"
    )


def is_int8out_recipe(text: Any) -> bool:
    """Whether ``text`` is :data:`RECIPE_INT8OUT` calibrated by any text (an index's recorded recipe,
    checked where the calibration text is missing and the index's channels are pinned)."""
    import re

    pattern = re.escape(RECIPE_INT8OUT).replace(re.escape("{calibration}"), "[0-9a-f]{64}")
    return isinstance(text, str) and re.fullmatch(pattern, text) is not None


def _calibration_sha() -> str:
    """SHA-256 of :data:`CALIBRATION` (cached per size and mtime: ``recipe`` runs in every fresh process)."""
    try:
        st = CALIBRATION.stat()
    except OSError:
        raise _missing_calibration() from None
    key = (st.st_size, st.st_mtime_ns)
    if key not in _CALIBRATION_SHA:
        _CALIBRATION_SHA[key] = hashlib.sha256(CALIBRATION.read_bytes()).hexdigest()
    return _CALIBRATION_SHA[key]


def fingerprint(model_dir: Path, precision: str = "fp32", pin: str | None = None) -> str:
    """A cheap, stable id of a model folder's contents and the export recipe (see the module docstring)."""
    h = hashlib.sha256(recipe(precision, pin).encode())
    for p in sorted(model_dir.rglob("*")):
        if not p.is_file() or ".git" in p.parts or p.name.endswith(".md"):
            continue
        rel = p.relative_to(model_dir).as_posix()
        h.update(rel.encode())
        st = p.stat()
        if st.st_size <= 4_000_000:
            h.update(p.read_bytes())
        else:
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def read_settings(model_dir: Path) -> dict[str, Any]:
    """max_seq_length, dimension and pooling of a sentence-transformers folder (JSON only, no torch)."""
    sbert = model_dir / "sentence_bert_config.json"
    pooling = model_dir / "1_Pooling" / "config.json"
    cfg = json.loads((model_dir / "config.json").read_text())
    out = {"max_seq_length": 512, "dim": int(cfg["hidden_size"]), "normalize": False}
    if sbert.exists():
        out["max_seq_length"] = int(json.loads(sbert.read_text()).get("max_seq_length") or 512)
    out["max_seq_length"] = min(out["max_seq_length"], int(cfg.get("max_position_embeddings", 512)))
    if pooling.exists():
        pc = json.loads(pooling.read_text())
        other = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
        if not pc.get("pooling_mode_mean_tokens", False) or any(pc.get(k) for k in other):
            raise LakeqlError(
                f"the ONNX encoder supports mean-pooling models only ({model_dir}): {USE_TORCH}"
            )
        out["dim"] = int(pc["word_embedding_dimension"])
    modules = model_dir / "modules.json"
    if modules.exists():
        kinds = [m.get("type", "") for m in json.loads(modules.read_text())]
        out["normalize"] = any(k.endswith("Normalize") for k in kinds)
    if not (model_dir / "tokenizer.json").exists():
        raise LakeqlError(
            f"the ONNX encoder needs a fast tokenizer (tokenizer.json) in {model_dir}: {USE_TORCH}"
        )
    return out


#: ``config.json`` model types that ``embed_backend='auto'`` sends to the ONNX encoder: BERT and its
#: MiniLM distillations, whose export (inputs ids, mask and token types) is tested. Other models run on
#: torch under 'auto'; 'onnx' may still be asked for explicitly.
AUTO_MODEL_TYPES = ("bert",)


def unsupported(model_dir: str | os.PathLike) -> str | None:
    """Why ``embed_backend='auto'`` runs ``model_dir`` on torch (None: the ONNX encoder handles it).

    Reads the folder's JSON files only (no torch, no ONNX Runtime import)."""
    import importlib.util

    root = Path(model_dir)
    if not (root / "config.json").is_file():
        return "not a local model folder"
    try:
        model_type = json.loads((root / "config.json").read_text()).get("model_type")
        read_settings(root)
    except LakeqlError as exc:
        return str(exc).split(":")[0]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable config ({type(exc).__name__})"
    if model_type not in AUTO_MODEL_TYPES:
        return f"model type {model_type!r} (the ONNX export is tested on {', '.join(AUTO_MODEL_TYPES)})"
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
        return "onnxruntime is not installed"
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def problem(target: Path, deep: bool = False, precision: str = "fp32", pin: str | None = None) -> str | None:
    """Why the cached export in ``target`` must not be used (None: complete and made by the recipe).

    The quick check (every fresh process) compares the recipe and the graph's size and mtime with the
    record; ``deep`` also recomputes its SHA-256 (~0.15 s), done when ONNX Runtime cannot load it.
    """
    name = ONNX_FILES[precision]
    graph = target / name
    if not graph.exists():
        return f"{name} missing"
    try:
        record = json.loads((target / RECORD).read_text())
    except (OSError, ValueError):
        return f"{RECORD} missing or unreadable"
    if not isinstance(record, dict) or record.get("recipe") != recipe(precision, pin):
        return "made by another export recipe"
    st = graph.stat()
    if record.get("bytes") != st.st_size or record.get("mtime_ns") != st.st_mtime_ns:
        return f"{name} changed since it was written ({st.st_size} bytes, {record.get('bytes')} written)"
    if deep and record.get("sha256") != file_sha256(graph):
        return f"{name} changed since it was written (checksum)"
    return None


def convert(model_dir: Path, out: Path, precision: str = "fp32", pin: str | None = None) -> None:
    """Write the graph of ``model_dir`` (BERT-like + mean pooling) to the file ``out``, by the recipe of
    ``precision`` (:func:`recipe`): the float32 export, quantized to int8 for ``int8``. ``int8tok`` and
    ``int8out`` are made from this machine's cached float32 export when it is intact (no torch; a second,
    plus the calibration run for ``int8out``; the same bytes as from a fresh export), else from a fresh
    one. ``pin``: ``int8out`` with those outlier channels (:func:`quantize_pinned`), not calibrated."""
    if pin is not None:
        quantize_pinned(exported(model_dir, precision="fp32"), out, pin)
        return
    if precision in ("int8tok", "int8out"):
        cached = cache_root() / "onnx" / fingerprint(model_dir, "fp32")
        if problem(cached, deep=True, precision="fp32") is None:
            try:
                _quantize(model_dir, cached / ONNX_FILES["fp32"], out, precision)
                return
            except Exception:  # noqa: BLE001 - replaced or removed meanwhile: export afresh below
                out.unlink(missing_ok=True)
    import logging
    import warnings

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True)
    model = model.eval()

    class Pooled(torch.nn.Module):
        """The transformer plus mean pooling over the attention mask (sentence-transformers' Pooling)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: D102
            h = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    # Trace with padding present, so no "mask is all ones" shortcut is baked into the graph.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    fp32 = out if precision == "fp32" else out.with_name("model_fp32.onnx")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    axes["sentence_embedding"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model),
            (ids, mask, torch.zeros_like(ids)),
            str(fp32),
            input_names=list(INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    if precision == "fp32":
        return
    if precision in ("int8tok", "int8out"):
        _quantize(model_dir, fp32, out, precision)
        fp32.unlink()
        return
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's "consider pre-processing" hint
    # Per-channel int8 weights of the matrix products only (the embedding table, layer norms and
    # attention softmax stay float): mean cosine to torch float32 0.995.
    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    for p in out.parent.glob("model_fp32.onnx*"):
        p.unlink()


def _quantize(model_dir: Path, fp32: Path, out: Path, precision: str) -> None:
    """``int8tok`` / ``int8out`` graph ``out`` from the float32 graph ``fp32`` of ``model_dir``."""
    outliers = outlier_channels(model_dir, fp32) if precision == "int8out" else None
    quantize_per_token(fp32, out, outliers)


def quantized_input_names(graph: Any) -> list[str]:
    """Names of the tensors :func:`quantize_per_token` quantizes: the first input of every MatMul by a
    constant 2-D weight, each once, in graph order."""
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    out: list[str] = []
    for node in graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and len(shapes.get(node.input[1], ())) == 2:
            if node.input[0] not in out:
                out.append(node.input[0])
    return out


def outlier_channels(
    model_dir: Path, fp32: Path, texts: list[str] | None = None, ratio: float = OUTLIER_RATIO
) -> dict[str, list[int]]:
    """The outlier channels of each quantized MatMul input of the float32 graph ``fp32``: channels whose
    max |x| over every real token of ``texts`` (default: :data:`CALIBRATION`) exceeds ``ratio`` times the
    input's median channel max; the largest :data:`OUTLIER_MAX` of them, sorted. Inputs with none are
    left out.

    Deterministic: one ONNX Runtime thread, each text run alone (no padding, so no batch effect), the
    model folder's own tokenizer truncated to its ``max_seq_length``."""
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    if texts is None:
        try:
            texts = [t for t in CALIBRATION.read_text(encoding="utf-8").splitlines() if t.strip()]
        except OSError:
            raise _missing_calibration() from None
    m = onnx.load(str(fp32))
    names = quantized_input_names(m.graph)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    del m
    feeds = {i.name for i in session.get_inputs()}
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=read_settings(model_dir)["max_seq_length"])
    amax: dict[str, np.ndarray] = {}
    for enc in tok.encode_batch(texts, add_special_tokens=True):
        ids = np.asarray([enc.ids], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        got = session.run(names, {k: v for k, v in feed.items() if k in feeds})
        for name, x in zip(names, got, strict=True):
            a = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0)
            amax[name] = a if name not in amax else np.maximum(amax[name], a)
    out: dict[str, list[int]] = {}
    for name, a in amax.items():
        top = np.argsort(-a, kind="stable")[:OUTLIER_MAX]
        chosen = sorted(int(i) for i in top if a[i] > ratio * float(np.median(a)))
        if chosen:
            out[name] = chosen
    return out


#: the suffix of the initializer that lists one input's outlier channels in an ``int8out`` graph
_OUTLIER_IDX = "_lakeql_q_outlier_idx"


def channels_text(outliers: dict[str, list[int]]) -> str:
    """The canonical text of an outlier channel set (input name -> sorted channels; JSON, sorted keys, no
    spaces): what the cache record and every index embedded by ``onnx-int8-outlier`` store, and compare."""
    clean = {str(k): sorted({int(c) for c in v}) for k, v in outliers.items() if v}
    return json.dumps(clean, sort_keys=True, separators=(",", ":"))


def channels_id(text: str) -> str:
    """A short id of a channel set's canonical text (16 hex digits of its SHA-256), for recipes and
    messages."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_channels(text: Any, where: str = "the index") -> dict[str, list[int]]:
    """The channel set of ``text`` as an index recorded it (hostile: read from index files), checked:
    a JSON object of at most 10,000 input names, each a list of at most 64 channels in 0..2**20."""
    bad = LakeqlError(
        f"the onnx-int8-outlier channels recorded by {where} are unreadable: rebuild it "
        "('lakeql index LAKE --refresh' after deleting it, or build it again)"
    )
    try:
        data = json.loads(text) if isinstance(text, str) and len(text) <= 4_000_000 else None
    except (ValueError, RecursionError):
        raise bad from None
    if not isinstance(data, dict) or len(data) > 10_000:
        raise bad
    out: dict[str, list[int]] = {}
    for k, v in data.items():
        if not isinstance(v, list) or not 0 < len(v) <= 64 or len(k) > 10_000:
            raise bad
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**20 for c in v):
            raise bad
        out[k] = sorted(set(v))
    return out


def channels_of_graph(graph: Path) -> str:
    """The outlier channels an ``int8out`` graph keeps in float (read from its initializers), as
    :func:`channels_text`."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(graph))
    found = {
        t.name[: -len(_OUTLIER_IDX)]: numpy_helper.to_array(t).tolist()
        for t in m.graph.initializer
        if t.name.endswith(_OUTLIER_IDX)
    }
    return channels_text(found)


def recorded_channels(target: Path) -> str:
    """The outlier channels of the cached ``int8out`` export in ``target`` (:func:`channels_text`), from
    its ``source.json``; a record written before lakeql recorded them is completed from the graph (once,
    atomically; a cache folder that cannot be written is read again next time)."""
    path = target / RECORD
    record = json.loads(path.read_text())
    if isinstance(record.get("outlier_channels"), dict):
        try:  # a damaged record (edited, another tool's): read from the graph below, and written again
            return channels_text(parse_channels(json.dumps(record["outlier_channels"]), str(path)))
        except (LakeqlError, TypeError, ValueError):
            pass
    text = channels_of_graph(target / ONNX_FILES["int8out"])
    record["outlier_channels"] = json.loads(text)
    tmp = target / f".{RECORD}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return text


def quantize_pinned(fp32: Path, out: Path, pin: str) -> None:
    """The ``int8out`` graph of the float32 graph ``fp32`` with the outlier channels ``pin`` (an index's
    record) instead of this machine's calibration: the graph the index's vectors were made by, so its
    queries and refreshes embed as its build did. A channel set naming inputs this export does not have
    (another torch / ONNX exporter names its tensors otherwise) is a clear error: nothing to pin."""
    import onnx

    outliers = parse_channels(pin)
    m = onnx.load(str(fp32))
    shapes = {t.name: tuple(t.dims) for t in m.graph.initializer}
    width = {
        n.input[0]: shapes[n.input[1]][0]
        for n in m.graph.node
        if n.op_type == "MatMul" and len(n.input) == 2 and len(shapes.get(n.input[1], ())) == 2
    }
    del m
    wrong = [k for k, v in outliers.items() if k not in width or max(v) >= width[k]]
    if wrong:
        raise LakeqlError(
            f"the index's onnx-int8-outlier channels ({channels_id(pin)}) name {len(wrong)} input(s) this "
            f"machine's ONNX export does not have (e.g. {wrong[0][:200]!r}: another torch / ONNX export): "
            "its vectors cannot be reproduced here; query it where it was built, or re-embed it here "
            "(delete the index and run 'lakeql index' again)"
        )
    quantize_per_token(fp32, out, outliers)


def quantize_per_token(src: Path, dst: Path, outliers: dict[str, list[int]] | None = None) -> int:
    """Write ``src`` (a float32 graph) to ``dst`` with every MatMul by a constant 2-D weight made int8 with
    per-token activation scales (:data:`RECIPE_INT8TOK`); returns how many MatMuls were quantized.

    ``y = x @ W`` becomes ``s_x * s_w * ((q_x - 128) @ q_w)`` with ``s_x = max|x| / 127`` per row of ``x``
    (its last axis), ``q_x = round(x / s_x) + 128`` (uint8), ``s_w = max|W| / 127`` per column of ``W`` and
    ``q_w = round(W / s_w)`` (int8). MatMuls reading the same input (query, key, value) share its
    quantization. Vectorized in NumPy, about a second for MiniLM-L6.

    ``outliers`` (:data:`RECIPE_INT8OUT`, :func:`outlier_channels`): input name -> channels of that input
    kept in float: they are zeroed before the input is quantized (so they do not set its per-token scale)
    and ``x[..., c] @ W[c, :]`` (a float MatMul of those few rows) is added to the int8 product."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    consts = [
        numpy_helper.from_array(np.array(127.0, np.float32), "lakeql_q_127"),
        numpy_helper.from_array(np.array(128.0, np.float32), "lakeql_q_128"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "lakeql_q_tiny"),
        numpy_helper.from_array(np.array(128, np.uint8), "lakeql_q_zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "lakeql_q_axes"),
    ]
    # ReduceMax takes its axes as an attribute up to opset 17, as an input from opset 18 on
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=17)
    axes_in, axes_attr = (["lakeql_q_axes"], {}) if opset >= 18 else ([], {"axes": [-1]})
    nodes: list[Any] = []
    quantized_inputs: dict[str, str] = {}
    quantized_weights: set[str] = set()
    count = 0
    for node in g.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        w = numpy_helper.to_array(weight) if weight is not None else None
        if w is None or w.ndim != 2:
            nodes.append(node)
            continue
        x = node.input[0]
        chosen = (outliers or {}).get(x) or []
        if x not in quantized_inputs:
            p = f"{x}_lakeql_q"
            src_x = x
            if chosen:  # the outlier channels: zeroed here, gathered for the float product below
                mask = np.ones(w.shape[0], np.float32)
                mask[chosen] = 0.0
                consts += [
                    numpy_helper.from_array(mask, f"{p}_inlier_mask"),
                    numpy_helper.from_array(np.asarray(chosen, np.int64), f"{x}{_OUTLIER_IDX}"),
                ]
                src_x = f"{p}_inliers"
                nodes += [
                    helper.make_node("Mul", [x, f"{p}_inlier_mask"], [src_x]),
                    helper.make_node("Gather", [x, f"{x}{_OUTLIER_IDX}"], [f"{p}_outliers"], axis=-1),
                ]
            nodes += [
                helper.make_node("Abs", [src_x], [f"{p}_abs"]),
                helper.make_node("ReduceMax", [f"{p}_abs", *axes_in], [f"{p}_max"], keepdims=1, **axes_attr),
                helper.make_node("Max", [f"{p}_max", "lakeql_q_tiny"], [f"{p}_max1"]),
                helper.make_node("Div", [f"{p}_max1", "lakeql_q_127"], [f"{p}_scale"]),
                helper.make_node("Div", [src_x, f"{p}_scale"], [f"{p}_div"]),
                helper.make_node("Round", [f"{p}_div"], [f"{p}_round"]),
                helper.make_node("Add", [f"{p}_round", "lakeql_q_128"], [f"{p}_shift"]),
                helper.make_node("Cast", [f"{p}_shift"], [f"{p}_u8"], to=TensorProto.UINT8),
            ]
            quantized_inputs[x] = p
        p = quantized_inputs[x]
        wname = f"{node.input[1]}_lakeql_q8"
        if wname not in quantized_weights:  # a weight shared by several MatMuls (ALBERT): quantized once
            w = w.astype(np.float32)
            w_scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
            w_q = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
            consts += [
                numpy_helper.from_array(w_q, wname),
                numpy_helper.from_array(w_scale, f"{wname}_scale"),
            ]
            quantized_weights.add(wname)
        y = node.output[0]
        nodes += [
            helper.make_node("MatMulInteger", [f"{p}_u8", wname, "lakeql_q_zero"], [f"{y}_i32"]),
            helper.make_node("Cast", [f"{y}_i32"], [f"{y}_f32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{y}_f32", f"{wname}_scale"], [f"{y}_w"]),
            helper.make_node("Mul", [f"{y}_w", f"{p}_scale"], [f"{y}_int8" if chosen else y]),
        ]
        if chosen:  # y = int8 product of the other channels + float product of the outlier channels
            consts.append(numpy_helper.from_array(w[chosen, :].astype(np.float32), f"{y}_lakeql_outlier_w"))
            nodes += [
                helper.make_node("MatMul", [f"{p}_outliers", f"{y}_lakeql_outlier_w"], [f"{y}_float"]),
                helper.make_node("Add", [f"{y}_int8", f"{y}_float"], [y]),
            ]
        count += 1
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(consts)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.save(m, str(dst))
    return count


def export(model_dir: Path, target: Path, precision: str = "fp32", pin: str | None = None) -> None:
    """Export ``model_dir`` to ``target/model_<precision>.onnx`` (:func:`convert`) with its ``source.json``.

    Written to a temp folder beside ``target`` and renamed into place; an existing ``target`` (a stale or
    damaged export) is replaced.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        graph = tmp / ONNX_FILES[precision]
        convert(model_dir, graph, precision, pin)
        st = graph.stat()
        record = {
            "recipe": recipe(precision, pin),
            "model_dir": str(model_dir),
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": file_sha256(graph),
        }
        if precision == "int8out":  # the channels the graph keeps in float, for indexes to record
            record["outlier_channels"] = json.loads(channels_of_graph(graph))
        (tmp / RECORD).write_text(json.dumps(record, indent=1))
        _replace_dir(tmp, target, precision, pin)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path, precision: str = "fp32", pin: str | None = None) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=".stale-", dir=target.parent))
        try:
            os.replace(target, old / "export")
        except FileNotFoundError:  # another process moved it first
            pass
    try:
        os.replace(new, target)
    except OSError:  # another process renamed its (identical) export into place in between: keep it
        if problem(target, precision=precision, pin=pin) is not None:
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _export_lock(target: Path) -> Iterator[None]:
    """One export of a model at a time across processes of this machine (and threads of this one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(target.parent / f".{target.name}.lock", "a+") as f:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX: the atomic rename still guards the result
            pass
        yield


def exported(model_dir: Path, rebuild: bool = False, precision: str = "fp32", pin: str | None = None) -> Path:
    """The cached ONNX file of ``model_dir`` by the recipe of ``precision``, exporting it first (or
    re-exporting a stale one) when needed: the first use on a machine prints one line, as it takes
    tens of seconds and imports torch.

    ``rebuild``: the cached file failed to load: re-export it when its checksum shows it was damaged.
    ``pin``: the ``int8out`` graph with those outlier channels (:func:`recipe`), cached apart.
    """
    target = cache_root() / "onnx" / fingerprint(model_dir, precision, pin)
    graph = target / ONNX_FILES[precision]
    if not rebuild and problem(target, precision=precision, pin=pin) is None:
        return graph
    with _export_lock(target):
        why = problem(target, deep=rebuild, precision=precision, pin=pin)
        if why is not None:  # still: nobody re-exported it while we waited
            import time

            from lakeql.progress import say

            t0 = time.perf_counter()
            what = f"{precision}, the outlier channels {channels_id(pin)} of an index" if pin else precision
            say(
                f"onnx: exporting {model_dir} to an ONNX Runtime graph ({what}; once per machine and "
                f"model, about 20-60 s, cached in {target})"
            )
            try:
                export(model_dir, target, precision, pin)
            except LakeqlError:
                raise
            except Exception as exc:  # noqa: BLE001 - one clear line for a failed export
                raise LakeqlError(
                    f"cannot export {model_dir} to ONNX in {target} ({type(exc).__name__}: {exc}): "
                    f"{USE_TORCH}"
                ) from None
            say(f"onnx: export done in {time.perf_counter() - t0:.1f} s")
        why = problem(target, precision=precision, pin=pin)
        if why is not None:
            raise LakeqlError(
                f"the ONNX export in {target} is unusable right after writing it ({why}): "
                f"delete {target} and retry, or {USE_TORCH}"
            )
    return graph


def providers(device: str) -> list[str]:
    """ONNX Runtime execution providers for ``device`` (auto | cpu | cuda); cuda without a GPU: error."""
    import onnxruntime as ort

    have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not have_cuda:
        raise LakeqlError(
            "device 'cuda': no CUDA GPU is usable by ONNX Runtime on this machine "
            "(needs an NVIDIA GPU and onnxruntime-gpu): use device 'auto' or 'cpu'"
        )
    if device in ("cuda", "auto") and have_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


def token_batches(
    lengths: np.ndarray, budget: int | None = None, max_rows: int | None = None
) -> list[np.ndarray]:
    """Row indices of each run: texts longest first, as many per run as fit ``budget`` padded tokens.

    A run's width is its first (longest) text, so it holds ``budget // width`` texts (at least one, at
    most ``max_rows``); the runs cover every index once. Defaults: :data:`TOKEN_BUDGET`, :data:`MAX_ROWS`.
    """
    budget = TOKEN_BUDGET if budget is None else budget
    max_rows = MAX_ROWS if max_rows is None else max_rows
    order = np.argsort(-lengths, kind="stable")
    runs = []
    start, n = 0, len(order)
    while start < n:  # one step per run, not per text
        width = max(int(lengths[order[start]]), 1)
        rows = min(max(budget // width, 1), max_rows)
        runs.append(order[start : start + rows])
        start += rows
    return runs


def pad(
    flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 matrices of ``rows``, right-padded with 0 to the longest.

    ``flat`` holds every text's ids end to end, text ``i`` at ``flat[starts[i]:starts[i] + lengths[i]]``.
    """
    lens = lengths[rows]
    width = int(lens.max())
    mask = np.arange(width)[None, :] < lens[:, None]
    at = np.minimum(starts[rows][:, None] + np.arange(width)[None, :], max(len(flat) - 1, 0))
    return np.where(mask, flat[at], 0), mask.astype(np.int64)


def flatten(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat ids, start of each text, length of each text) of the tokenizer's lists, for :func:`pad`."""
    import itertools

    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    starts = np.zeros(len(ids), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(lengths.sum()))
    return flat, starts, lengths


class OnnxEncoder:
    """A sentence-transformers look-alike (``encode``, ``max_seq_length``, dimension) over ONNX Runtime."""

    #: :func:`lakeql.embedding.encode` may hand over many texts per call: this encoder batches by tokens
    batches_by_tokens = True

    def __init__(
        self,
        model_dir: str | os.PathLike,
        device: str = "auto",
        precision: str = "fp32",
        pin: str | None = None,
    ) -> None:
        """``pin`` (``int8out``): the outlier channels an index recorded (:func:`channels_text`); when this
        machine's calibration picked others, the graph is made with the index's (cached apart), so the
        index's queries and refreshes get the vectors its build made. :attr:`channels`: the set in use."""
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise LakeqlError(
                "the ONNX encoder needs ONNX Runtime (a dependency of lakeql): pip install onnxruntime "
                f"onnx, or {USE_TORCH}"
            ) from None
        recipe(precision, pin if precision == "int8out" else None)  # a clear error for an unknown precision
        self.precision = precision
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").exists():
            raise LakeqlError(
                f"the ONNX encoder needs a local model folder, got {str(model_dir)!r}: "
                f"pass --model PATH or {USE_TORCH}"
            )
        settings = read_settings(self.model_dir)
        self.max_seq_length = settings["max_seq_length"]
        self.dim = settings["dim"]
        self.normalize_default = settings["normalize"]
        self.providers = providers(device)
        self.device = "cuda" if self.providers[0].startswith("CUDA") else "cpu"
        #: the outlier channels of an ``int8out`` graph (:func:`channels_text`), else None
        self.channels: str | None = None
        self.pin: str | None = None
        if precision == "int8out" and pin is not None and not CALIBRATION.is_file():
            # no calibration text (a packager dropped it): the index's graph needs none, its channels are
            # recorded; made from the float32 export, so the index is still queried and refreshed
            self.path = exported(self.model_dir, precision=precision, pin=pin)
            self.channels = self.pin = pin
        else:
            self.path = exported(self.model_dir, precision=precision)
        if precision == "int8out" and self.pin is None:
            self.channels = recorded_channels(self.path.parent)
            if pin is not None and pin != self.channels:  # calibrated otherwise here: the index's graph
                self.path = exported(self.model_dir, precision=precision, pin=pin)
                self.channels = self.pin = pin
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        cores = cpu_cores()
        #: float32 and int8tok (batch invariant) on the CPU: each run on one intra-op thread, the runs spread
        #: over ``cores`` Python threads
        #: (a run's vector does not depend on the thread). Measured 1.04-1.25x the sentences/s of runs on
        #: ``cores`` intra-op threads each, 4-20% more work per CPU-second, on this shared 2-core machine
        #: (benchmarks/results/encfuse.md): two intra-op threads wait for each other at every operator.
        self.workers = (
            cores
            if (precision in ("fp32", "int8tok", "int8out") and self.device == "cpu" and cores > 1)
            else 1
        )
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        so.intra_op_num_threads = 1 if self.workers > 1 else cores
        so.log_severity_level = 3
        # No busy-waiting worker threads: on a shared machine spinning threads steal the cores they wait for.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=self.providers)
        except Exception:  # noqa: BLE001 - damaged in the cache (same size and mtime): rebuild once
            self.path = exported(self.model_dir, rebuild=True, precision=precision, pin=self.pin)
            try:
                self.session = ort.InferenceSession(str(self.path), so, providers=self.providers)
            except Exception as exc:  # noqa: BLE001 - one clear line, naming the folder
                raise LakeqlError(
                    f"ONNX Runtime cannot load the cached export {self.path} ({type(exc).__name__}: "
                    f"{exc}): delete {self.path.parent} (it is rebuilt on next use) or {USE_TORCH}"
                ) from None
        self.input_names = {i.name for i in self.session.get_inputs()}
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer = tok

    def pool(self) -> Any:
        """The threads that run the float32 graph's runs side by side (created on first use)."""
        with self._pool_lock:
            # a forked child (an engine worker) inherits the pool object but not its threads: a new pool
            if self._pool is None or self._pool[0] != os.getpid():
                from concurrent.futures import ThreadPoolExecutor

                self._pool = (os.getpid(), ThreadPoolExecutor(self.workers, thread_name_prefix="lakeql-onnx"))
            return self._pool[1]

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    get_embedding_dimension = get_sentence_embedding_dimension

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([str(t) for t in texts], add_special_tokens=True)]

    def encode(
        self,
        sentences: str | list[str],
        batch_size: int = 64,
        convert_to_numpy: bool = True,
        normalize_embeddings: bool | None = None,
        show_progress_bar: bool = False,
        **_: Any,
    ) -> np.ndarray:
        """Float32 embeddings ``(n, dim)`` of ``sentences``, in input order.

        ``batch_size`` is accepted for sentence-transformers compatibility; runs are sized by
        :data:`TOKEN_BUDGET` and :data:`MAX_ROWS` instead.
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        flat, starts, lengths = flatten(self.tokenize(texts))

        def run(rows: np.ndarray) -> None:
            arr, mask = pad(flat, starts, lengths, rows)
            feed = {"input_ids": arr, "attention_mask": mask, "token_type_ids": np.zeros_like(arr)}
            out[rows] = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]

        runs = token_batches(lengths)
        if self.workers > 1 and len(runs) > 1 and not sys.is_finalizing():
            try:  # disjoint rows of ``out``; ONNX Runtime runs are thread-safe
                list(self.pool().map(run, runs))
                runs = []
            except RuntimeError:  # no new threads at interpreter shutdown: the runs one after another
                pass
        for rows in runs:
            run(rows)
        norm = self.normalize_default if normalize_embeddings is None else normalize_embeddings
        if norm:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out
