"""``embed_backend='onnx'``: the sentence-transformers model exported once to an int8 ONNX graph, run by
ONNX Runtime.

Why: torch float32 encodes 16-51 sentences/s on a 2-core CPU and a fresh process needs ~10 s to import
torch and load the model before its first query. The exported graph (BERT + mean pooling) quantized to
int8 (``onnxruntime.quantization.quantize_dynamic``, after ONNX Runtime's BERT fusions) is several times
faster, and a query process imports only ``onnxruntime`` and ``tokenizers`` (no torch, no
sentence-transformers, no transformers).

The export runs locally, offline, once per model: it needs torch + transformers (present wherever the
model can be loaded at all) and writes ``<cache>/onnx/<fingerprint>/`` atomically (a temp folder
renamed into place), where ``<cache>`` is ``$LAKEQL_CACHE_DIR``, else ``$XDG_CACHE_HOME/lakeql``, else
``~/.cache/lakeql``. The fingerprint hashes the model folder's small config/tokenizer files and the
size + mtime of its weight files (hashing 90 MB of weights would cost every fresh process ~0.3 s).

Tokenization uses the model folder's own ``tokenizer.json`` through the ``tokenizers`` library (the
engine under transformers' fast tokenizer, identical ids; tests compare), truncated to the model's
``max_seq_length``; texts are sorted by token count so each batch pads little. Pooling (mean over the
attention mask) is part of the graph; L2 normalization is done here, as sentence-transformers does.
Dynamic quantization scales activations per batch, so a text's vector moves slightly with its batch
companions (cosine > 0.99 between a text encoded alone and in a batch; torch float32 is exact).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from lakeql.errors import LakeqlError

FORMAT = 2  # bump to invalidate every cached export
ONNX_FILE = "model_int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: texts per ONNX Runtime call, whatever the caller's batch size: measured on MS MARCO passages (2 cores,
#: shared) 67.7 sentences/s at 16 vs 42.0 at 64 (less padding, activations stay in cache), while torch
#: is fastest at 64 (15.3 vs 12.2 at 16)
RUN_BATCH = 16
_LOCK = threading.Lock()


def cache_root() -> Path:
    """The user cache folder of lakeql (``$LAKEQL_CACHE_DIR`` > ``$XDG_CACHE_HOME/lakeql`` > ~/.cache)."""
    if os.environ.get("LAKEQL_CACHE_DIR"):
        return Path(os.environ["LAKEQL_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lakeql"


def fingerprint(model_dir: Path) -> str:
    """A cheap, stable id of a model folder's contents (see the module docstring)."""
    h = hashlib.sha256(f"lakeql-onnx-{FORMAT}".encode())
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
        if not pc.get("pooling_mode_mean_tokens", False) or any(
                pc.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                    "pooling_mode_mean_sqrt_len_tokens")):
            raise LakeqlError(f"embed_backend='onnx' supports mean-pooling models only ({model_dir}): "
                              "use embed_backend='torch'")
        out["dim"] = int(pc["word_embedding_dimension"])
    modules = model_dir / "modules.json"
    if modules.exists():
        kinds = [m.get("type", "") for m in json.loads(modules.read_text())]
        out["normalize"] = any(k.endswith("Normalize") for k in kinds)
    if not (model_dir / "tokenizer.json").exists():
        raise LakeqlError(f"embed_backend='onnx' needs a fast tokenizer (tokenizer.json) in {model_dir}: "
                          "use embed_backend='torch'")
    return out


def export(model_dir: Path, target: Path) -> None:
    """Export ``model_dir`` (BERT-like + mean pooling) to ``target/model_int8.onnx``, atomically."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

        class Pooled(torch.nn.Module):
            """The transformer plus mean pooling over the attention mask (sentence-transformers' Pooling)."""

            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: D102
                h = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

        # Trace with padding present, so no "mask is all ones" shortcut is baked into the graph.
        ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
        mask = (ids != 0).long()
        fp32 = tmp / "model_fp32.onnx"
        axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
        axes["sentence_embedding"] = {0: "batch"}
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Pooled(model), (ids, mask, torch.zeros_like(ids)), str(fp32),
                              input_names=list(INPUTS), output_names=["sentence_embedding"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        src = fp32
        cfg = model.config
        try:  # ONNX Runtime's BERT fusions (attention, layer norm, GELU): fewer, faster int8 kernels
            from onnxruntime.transformers.optimizer import optimize_model

            opt = optimize_model(str(fp32), model_type="bert", num_heads=int(cfg.num_attention_heads),
                                 hidden_size=int(cfg.hidden_size), opt_level=1)
            src = tmp / "model_opt.onnx"
            opt.save_model_to_file(str(src))
        except Exception:  # noqa: BLE001 - fusions are an optimization; the plain graph is still correct
            src = fp32
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's "consider pre-processing" hint
        import onnx

        # Per-channel int8 weights of the matrix products and attention only (the embedding table stays
        # float): mean cosine to torch float32 0.995 (0.957 per-tensor with quantized embeddings).
        quantize_dynamic(str(src), str(tmp / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        for p in tmp.glob("model_fp32.onnx*"):
            p.unlink()
        for p in tmp.glob("model_opt.onnx*"):
            p.unlink()
        (tmp / "source.json").write_text(json.dumps({"model_dir": str(model_dir), "format": FORMAT}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep its (identical) export
            if not (target / ONNX_FILE).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exported(model_dir: Path) -> Path:
    """The cached int8 ONNX file of ``model_dir``, exporting it first if needed."""
    target = cache_root() / "onnx" / fingerprint(model_dir)
    path = target / ONNX_FILE
    if not path.exists():
        with _LOCK:
            if not path.exists():
                try:
                    export(model_dir, target)
                except LakeqlError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one clear line for a failed export
                    raise LakeqlError(f"cannot export {model_dir} to ONNX ({type(exc).__name__}: {exc}): "
                                      "use embed_backend='torch'") from None
    return path


def providers(device: str) -> list[str]:
    """ONNX Runtime execution providers for ``device`` (auto | cpu | cuda); cuda without a GPU: error."""
    import onnxruntime as ort

    have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not have_cuda:
        raise LakeqlError("device 'cuda': no CUDA GPU is usable by ONNX Runtime on this machine "
                          "(needs an NVIDIA GPU and onnxruntime-gpu): use device 'auto' or 'cpu'")
    if device in ("cuda", "auto") and have_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEncoder:
    """A sentence-transformers look-alike (``encode``, ``max_seq_length``, dimension) over ONNX Runtime."""

    def __init__(self, model_dir: str | os.PathLike, device: str = "auto") -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise LakeqlError("embed_backend='onnx' needs ONNX Runtime: pip install 'lakeql[onnx]'") from None
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").exists():
            raise LakeqlError(f"embed_backend='onnx' needs a local model folder, got {str(model_dir)!r}: "
                              "pass --model PATH or use embed_backend='torch'")
        settings = read_settings(self.model_dir)
        self.max_seq_length = settings["max_seq_length"]
        self.dim = settings["dim"]
        self.normalize_default = settings["normalize"]
        self.providers = providers(device)
        self.device = "cuda" if self.providers[0].startswith("CUDA") else "cpu"
        self.path = exported(self.model_dir)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # No busy-waiting worker threads: on a shared machine spinning threads steal the cores they wait for.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), so, providers=self.providers)
        self.input_names = {i.name for i in self.session.get_inputs()}
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer = tok

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    get_embedding_dimension = get_sentence_embedding_dimension

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([str(t) for t in texts], add_special_tokens=True)]

    def encode(self, sentences: str | list[str], batch_size: int = 64, convert_to_numpy: bool = True,
               normalize_embeddings: bool | None = None, show_progress_bar: bool = False,
               **_: Any) -> np.ndarray:
        """Float32 embeddings ``(n, dim)`` of ``sentences``, in input order."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        lengths = np.fromiter((len(x) for x in ids), np.int64, len(ids))
        order = np.argsort(-lengths, kind="stable")
        step = max(min(int(batch_size), RUN_BATCH), 1)
        for start in range(0, len(order), step):
            part = order[start:start + step]
            width = int(lengths[part].max())
            arr = np.zeros((len(part), width), np.int64)
            for row, i in enumerate(part):  # one row copy per text: the tokenizer returns lists
                arr[row, :lengths[i]] = ids[i]
            mask = (np.arange(width)[None, :] < lengths[part][:, None]).astype(np.int64)
            feed = {"input_ids": arr, "attention_mask": mask, "token_type_ids": np.zeros_like(arr)}
            res = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]
            out[part] = res
        norm = self.normalize_default if normalize_embeddings is None else normalize_embeddings
        if norm:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out
