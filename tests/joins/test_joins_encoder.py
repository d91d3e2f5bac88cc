"""The encoder of semantic joins and find_tables: the vectors capability's (``auto``: ``onnx-int8-outlier``
for the packaged MiniLM), so a default build and its queries never import torch; indexes made by torch or
the float32 ``onnx`` (the defaults before) keep working with float32 queries and are not re-embedded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from testutil import python_last_line

from lakeql.demo import SAMPLE_LAKE

QUERY = (
    "SELECT candidate_table, candidate_column "
    "FROM joinable('flights.flights', 'carrier', k := 5, mode := 'semantic')"
)


def _sample(tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", root / "flights")
    return root


def _semantic_entry(idx):
    from lakeql.store import Store

    return Store(idx).find("join_semantic")


@pytest.fixture(scope="module")
def exported():
    """The ONNX exports of the packaged model, made once here if this machine lacks them (the export
    itself needs torch: it must not be what a subprocess below imports)."""
    from lakeql.embedding import load_model

    load_model(None, "onnx")
    load_model(None, "onnx-int8-outlier")


def test_default_semantic_build_and_queries_do_not_import_torch(tmp_path, exported):
    root, idx = _sample(tmp_path), tmp_path / "idx"
    code = (
        "import sys, lakeql\n"
        f"lakeql.index({str(root)!r}, index_dir={str(idx)!r}, capabilities=['joins'], progress=False, "
        "joins_semantic=True, discovery_embed=True)\n"
        "built = 'torch' in sys.modules\n"
        f"con = lakeql.connect({str(root)!r}, index_dir={str(idx)!r}, capabilities=['joins'])\n"
        f"rows = con.execute({QUERY!r}).fetchall()\n"
        "tables = con.execute(\"SELECT table_name FROM find_tables('aircraft manufacturers', k := 3)\")"
        ".fetchall()\n"
        "print(built, 'torch' in sys.modules, 'sentence_transformers' in sys.modules, len(rows), "
        "tables[0][0])\n"
    )
    built, queried, st, n_rows, top = python_last_line(code, timeout=600).split(" ")
    assert (built, queried, st) == ("False", "False", "False")
    assert int(n_rows) > 0 and top == "flights.planes"
    entry = _semantic_entry(idx)
    assert entry.params_dict["backend"] == "onnx-int8-outlier"
    import pyarrow.parquet as pq

    texts = pq.read_table(idx / "joins" / "semantic" / "texts.parquet").to_pydict()
    assert set(texts["encoder"]) == {"onnx-int8-outlier"}
    assert json.loads((idx / "discovery" / "tablevec.json").read_text())["backend"] == "onnx-int8-outlier"


def _build(root, idx, **options):
    """A joins-only build of ``root`` into ``idx`` with semantic column embeddings."""
    import lakeql

    lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=True, **options)


def _rank(root, idx):
    import lakeql

    con = lakeql.connect(root, index_dir=idx, capabilities=["joins"])
    try:
        return con.execute(QUERY).fetchall()
    finally:
        con.close()


def test_torch_built_index_is_kept_and_answers_like_onnx(tmp_path, exported):
    """An index whose column vectors torch made (every semantic index before the ONNX default) is not
    re-embedded by a default refresh and answers as a default-built one; an int8 encoder re-embeds."""

    root = _sample(tmp_path)
    torch_idx, onnx_idx = tmp_path / "torch_idx", tmp_path / "onnx_idx"
    _build(root, torch_idx, joins_embed_backend="torch")
    _build(root, onnx_idx, joins_embed_backend="onnx")  # the float32 default before 2026-12-07
    made = _semantic_entry(torch_idx)
    assert (
        made.params_dict["backend"] == "torch" and _semantic_entry(onnx_idx).params_dict["backend"] == "onnx"
    )
    a = np.load(torch_idx / "joins" / "semantic" / "vectors.npy")
    b = np.load(onnx_idx / "joins" / "semantic" / "vectors.npy")
    assert a.shape == b.shape and float(np.abs(a - b).max()) < 1e-5
    assert _rank(root, torch_idx) == _rank(root, onnx_idx)

    # a default refresh keeps the torch vectors (same family): the semantic index is not rebuilt
    _build(root, torch_idx, refresh=True)
    kept = _semantic_entry(torch_idx)
    assert kept.built_at == made.built_at and kept.params_dict["backend"] == "torch"
    # nor the float32 onnx one's (the default's outlier recipe is another family)
    onnx_made = _semantic_entry(onnx_idx)
    _build(root, onnx_idx, refresh=True)
    assert _semantic_entry(onnx_idx).built_at == onnx_made.built_at
    # an index without a recorded backend (older lakeql) is torch's: also kept
    assert _rank(root, torch_idx) == _rank(root, onnx_idx)

    # the int8 graph is another family: its vectors are made again, none reused
    _build(root, torch_idx, joins_embed_backend="onnx-int8", refresh=True)
    int8 = _semantic_entry(torch_idx)
    assert int8.params_dict["backend"] == "onnx-int8"
    assert int8.params_dict["embedded"] == int8.params_dict["n"] > 0
    # a plain refresh (what the joins' errors tell users to run) keeps the int8 family, as --embed does
    _build(root, torch_idx, refresh=True)
    again = _semantic_entry(torch_idx)
    assert again.built_at == int8.built_at and again.params_dict["backend"] == "onnx-int8"


def test_a_model_folder_replaced_in_place_is_embedded_again(tmp_path):
    """A second ``lakeql train-joiner`` writes its model over the first one's folder: the same path, so
    only the folder's fingerprint tells; the semantic index is rebuilt and nothing is reused."""
    from lakeql import embedding

    root = _sample(tmp_path)
    model = tmp_path / "joiner"
    shutil.copytree(embedding.resolve_model(None), model)
    idx = tmp_path / "idx"
    _build(root, idx, joiner_model=str(model), joins_embed_backend="torch")
    first = _semantic_entry(idx)
    _build(root, idx, joiner_model=str(model), joins_embed_backend="torch", refresh=True)
    assert _semantic_entry(idx).built_at == first.built_at  # the same folder: kept
    cfg = model / "sentence_bert_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "max_seq_length": 8}))
    embedding.load_model.cache_clear()  # this process loaded the old folder
    _build(root, idx, joiner_model=str(model), joins_embed_backend="torch", refresh=True)
    new = _semantic_entry(idx)
    assert new.built_at != first.built_at and new.params_dict["model_fp"] != first.params_dict["model_fp"]
    assert new.params_dict["embedded"] == new.params_dict["n"] > 0  # no vector of the old model reused


def test_a_fallback_to_torch_during_a_refresh_re_embeds_every_text_never_mixes(tmp_path, monkeypatch):
    """An index made by the default (``onnx-int8-outlier``) refreshed where that encoder cannot load
    (``auto`` then falls back to torch: e.g. its calibration text is missing) gets torch vectors for
    every text, not torch vectors for the new texts beside int8 ones for the old."""
    from lakeql import embedding
    from lakeql.errors import LakeqlError
    from lakeql.joins import deepjoin

    rows = [
        {"col_id": 0, "indexed": True, "text": "carrier code of the airline"},
        {"col_id": 1, "indexed": True, "text": "tail number of the plane"},
    ]
    first = tmp_path / "first"
    first.mkdir()
    info = deepjoin.build(rows, first, None, None, "auto")
    assert info["backend"] == "onnx-int8-outlier"

    real = embedding.load_model

    def no_int8out(name=None, backend="torch", device="cpu", pin=None):
        if backend == "onnx-int8-outlier":
            raise LakeqlError("the calibration text of onnx-int8-outlier is missing (simulated)")
        return real(name, backend, device, pin)

    monkeypatch.setattr(embedding, "load_model", no_int8out)
    monkeypatch.setattr(embedding, "_ONNX_FAILED", {})  # this process's fallback, forgotten after the test
    second = tmp_path / "second"
    second.mkdir()
    more = [*rows, {"col_id": 2, "indexed": True, "text": "name of the destination airport"}]
    with pytest.warns(UserWarning, match="ONNX encoder unavailable"):
        info = deepjoin.build(more, second, None, first, "auto")
    assert info["backend"] == "torch"
    assert info["embedded"] == 3  # the two kept texts too: their int8 vectors are not torch's family
    vecs = np.load(second / "vectors.npy")
    ref = np.asarray(real(None, "torch").encode([r["text"] for r in more], normalize_embeddings=True))
    assert np.abs(vecs - ref).max() < 1e-4
