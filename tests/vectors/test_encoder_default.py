"""The default encoder (``embed_backend='auto'``: ``onnx-int8-outlier`` for the packaged model and other
BERT mean-pooling folders, else torch) and indexes built before it was the default (``torch``, float32
``onnx``, the older int8 ``onnx``): each keeps being queried, and refreshed, by the encoder that made its
vectors."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_helpers import build, connect  # noqa: E402

SQL = "SELECT qualname, score FROM semantic_search('python.functions', 'docstring', 'compress data', k := 5)"


def meta_of(idx: Path) -> dict:
    return json.loads(next((idx / "embed").glob("*/meta.json")).read_text())


def entry_of(lake: Path, idx: Path):
    from lakeql.lake import discover
    from lakeql.store import Store

    store = Store.for_lake(discover(lake), idx)
    return store, store.find("embed", "python.functions", "docstring")


@pytest.fixture()
def backends_loaded(monkeypatch) -> list[str]:
    """The backends that queries (and builds) of this process ask ``lakeql.embedding`` for."""
    from lakeql import embedding

    seen: list[str] = []
    real = embedding.load_model

    def spy(name=None, backend="torch", device="cpu", pin=None):
        seen.append(backend)
        return real(name, backend, device, pin)

    monkeypatch.setattr(embedding, "load_model", spy)
    return seen


def query(lake: Path, idx: Path) -> tuple[list[tuple], list[warnings.WarningMessage]]:
    from lakeql.vectors.sql import EncoderMismatchWarning

    con = connect(lake, idx)
    try:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            rows = con.execute(SQL).fetchall()
    finally:
        con.close()
    return rows, [w for w in got if issubclass(w.category, EncoderMismatchWarning)]


def test_the_default_is_auto_and_picks_onnx_for_the_packaged_model(tmp_path):
    from lakeql.embedding import resolve_backend, resolve_model
    from lakeql.onnx_encoder import unsupported
    from lakeql.vectors.options import VectorOptions

    assert VectorOptions().embed_backend == "auto"
    want = "onnx-int8-outlier"
    assert resolve_backend(None) == want and resolve_backend(resolve_model(None), "auto") == want
    for explicit in ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-int8-token", "onnx-int8-outlier"):
        assert resolve_backend(None, explicit) == explicit
    # a model the ONNX encoder does not handle (CLS pooling here; a hub name; a folder without a
    # tokenizer.json) runs on torch under auto
    cls = tmp_path / "cls-model"
    cls.mkdir()
    (cls / "config.json").write_text(Path(resolve_model(None), "config.json").read_text())
    (cls / "1_Pooling").mkdir()
    (cls / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True})
    )
    assert "mean-pooling models only" in unsupported(cls) and resolve_backend(str(cls)) == "torch"
    assert unsupported(tmp_path / "nowhere") == "not a local model folder"
    assert resolve_backend("sentence-transformers/some-hub-name") == "torch"


def test_a_model_folder_given_as_a_path_builds_and_queries_with_onnx(lake, tmp_path, con, backends_loaded):
    """``--model PATH`` (the packaged model's folder, named by its path): auto picks onnx for it too,
    the index records the path and the backend, and its results are those of the default index."""
    from lakeql.embedding import resolve_model

    path = resolve_model(None)
    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], model=path)
    meta = meta_of(idx)
    assert meta["model"] == path and meta["backend"] == "onnx-int8-outlier"
    rows, mismatch = query(lake[0], idx)
    assert mismatch == [] and backends_loaded[-1] == "onnx-int8-outlier"
    ref = con.execute(SQL).fetchall()
    assert [r[0] for r in rows] == [r[0] for r in ref]


def test_any_sentence_transformers_folder_still_works_through_torch(lake, tmp_path, backends_loaded):
    """A folder the ONNX encoder does not handle (here: the packaged model with no tokenizer.json) is
    embedded by torch under the default, recorded as torch, and queried with torch."""
    from lakeql.embedding import resolve_model

    src = Path(resolve_model(None))
    folder = tmp_path / "model-without-fast-tokenizer"
    folder.mkdir()
    for p in src.iterdir():  # the same files (linked, not copied) but tokenizer.json
        if p.name != "tokenizer.json":
            (folder / p.name).symlink_to(p, target_is_directory=p.is_dir())
    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], model=str(folder))
    assert meta_of(idx)["backend"] == "torch" and "onnx_recipe" not in meta_of(idx)
    rows, mismatch = query(lake[0], idx)
    assert len(rows) == 5 and mismatch == [] and backends_loaded[-1] == "torch"


def test_an_index_built_with_torch_keeps_torch(lake, tmp_path, backends_loaded):
    """Every index built while torch was the default records ``backend: torch``: it is queried with torch
    (exactly its vectors' encoder), and neither a bare ``--refresh`` nor naming the column again under
    the new default re-embeds it."""
    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], embed_backend="torch")
    assert meta_of(idx)["backend"] == "torch"
    _, before = entry_of(lake[0], idx)
    rows, mismatch = query(lake[0], idx)
    assert len(rows) == 5 and mismatch == [] and backends_loaded[-1] == "torch"
    build(lake[0], idx, [], refresh=True)
    build(lake[0], idx, ["functions.docstring"], refresh=True)  # embed_backend 'auto': keeps torch
    _, after = entry_of(lake[0], idx)
    assert after.built_at == before.built_at and meta_of(idx)["backend"] == "torch"
    # asked for explicitly, onnx replaces it
    build(lake[0], idx, ["functions.docstring"], refresh=True, embed_backend="onnx")
    assert meta_of(idx)["backend"] == "onnx"


def test_a_default_index_records_the_outlier_recipe_and_an_fp32_onnx_index_keeps_fp32(
    lake, tmp_path, backends_loaded
):
    """A new index under the default records ``onnx-int8-outlier`` and its recipe (with the calibration
    text's hash); an index the float32 ``onnx`` made (the default before 2026-12-07) is queried with
    float32, and neither a bare ``--refresh`` nor naming the column again under ``auto`` re-embeds it."""
    from lakeql.onnx_encoder import RECIPE_FP32, recipe

    new = tmp_path / "new"
    build(lake[0], new, ["functions.docstring"])
    assert meta_of(new)["backend"] == "onnx-int8-outlier" and meta_of(new)["onnx_recipe"] == recipe("int8out")
    backends_loaded.clear()
    rows_new, mismatch = query(lake[0], new)
    assert len(rows_new) == 5 and mismatch == [] and backends_loaded == ["onnx-int8-outlier"]
    old = tmp_path / "old"
    build(lake[0], old, ["functions.docstring"], embed_backend="onnx")
    _, before = entry_of(lake[0], old)
    backends_loaded.clear()
    rows_old, mismatch = query(lake[0], old)
    assert len(rows_old) == 5 and mismatch == [] and backends_loaded == ["onnx"]
    build(lake[0], old, [], refresh=True)
    build(lake[0], old, ["functions.docstring"], refresh=True)  # embed_backend 'auto': keeps onnx
    _, after = entry_of(lake[0], old)
    assert after.built_at == before.built_at
    assert meta_of(old)["backend"] == "onnx" and meta_of(old)["onnx_recipe"] == RECIPE_FP32
    # nearly the same vectors (cosine 0.999): nearly the same top results
    assert len({r[0] for r in rows_new} & {r[0] for r in rows_old}) >= 4


def test_an_int8_index_of_an_older_lakeql_is_still_queried_with_int8(lake, tmp_path, backends_loaded):
    """Before 2026-12-07 ``embed_backend='onnx'`` was the int8 graph and indexes recorded ``backend:
    onnx`` with the int8 recipe: they are queried (and refreshed) with ``onnx-int8``, without a warning
    and without a rebuild."""
    from lakeql.onnx_encoder import RECIPE_INT8

    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], embed_backend="onnx-int8")
    rows_int8, _ = query(lake[0], idx)
    # rewrite the index as the older lakeql wrote it: backend 'onnx' in meta.json and in the manifest
    folder = next((idx / "embed").glob("*/meta.json")).parent
    meta = meta_of(idx)
    assert meta["backend"] == "onnx-int8" and meta["onnx_recipe"] == RECIPE_INT8
    (folder / "meta.json").write_text(json.dumps({**meta, "backend": "onnx"}))
    store, entry = entry_of(lake[0], idx)
    entry.params = json.dumps({**entry.params_dict, "backend": "onnx"}, sort_keys=True)
    entry.checksums = ""
    store.record(entry)
    backends_loaded.clear()
    rows, mismatch = query(lake[0], idx)
    assert mismatch == [] and backends_loaded == ["onnx-int8"]
    assert rows == rows_int8  # the same encoder as at build time: the same scores
    _, before = entry_of(lake[0], idx)
    build(lake[0], idx, [], refresh=True)
    build(lake[0], idx, ["functions.docstring"], refresh=True)
    _, after = entry_of(lake[0], idx)
    assert after.built_at == before.built_at and meta_of(idx)["backend"] == "onnx"


def test_an_int8_token_index_records_its_recipe_and_keeps_its_encoder(lake, tmp_path, backends_loaded):
    """``onnx-int8-token`` (int8, one activation scale per token) is its own backend with its own recipe:
    its index is queried with it, a refresh under ``auto`` keeps it, and a float32 ``onnx`` index beside
    it keeps the float32 graph."""
    from lakeql.onnx_encoder import RECIPE_FP32, RECIPE_INT8TOK

    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], embed_backend="onnx-int8-token")
    meta = meta_of(idx)
    assert meta["backend"] == "onnx-int8-token" and meta["onnx_recipe"] == RECIPE_INT8TOK
    backends_loaded.clear()
    rows, mismatch = query(lake[0], idx)
    assert len(rows) == 5 and mismatch == [] and backends_loaded == ["onnx-int8-token"]
    _, before = entry_of(lake[0], idx)
    build(lake[0], idx, [], refresh=True)
    build(lake[0], idx, ["functions.docstring"], refresh=True)  # embed_backend 'auto': keeps it
    _, after = entry_of(lake[0], idx)
    assert after.built_at == before.built_at and meta_of(idx)["backend"] == "onnx-int8-token"
    fp32 = tmp_path / "fp32"
    build(lake[0], fp32, ["functions.docstring"], embed_backend="onnx")
    assert meta_of(fp32)["backend"] == "onnx" and meta_of(fp32)["onnx_recipe"] == RECIPE_FP32
    backends_loaded.clear()
    rows32, mismatch = query(lake[0], fp32)
    assert mismatch == [] and backends_loaded == ["onnx"]
    # the same top results, from nearly the same vectors (cosine 0.998)
    assert len({r[0] for r in rows} & {r[0] for r in rows32}) >= 4


def test_an_explicit_switch_to_or_from_int8_token_re_embeds_and_queries_with_the_new_encoder(
    lake, tmp_path, backends_loaded
):
    """A named --embed-backend that differs from the recorded one re-embeds the column (never a mix of
    two encoders' vectors) and records it; queries then use the new encoder, both ways."""
    from lakeql.onnx_encoder import RECIPE_FP32, RECIPE_INT8TOK

    idx = tmp_path / "idx"
    build(lake[0], idx, ["functions.docstring"], embed_backend="onnx")
    _, first = entry_of(lake[0], idx)
    build(lake[0], idx, ["functions.docstring"], refresh=True, embed_backend="onnx-int8-token")
    _, second = entry_of(lake[0], idx)
    assert second.built_at != first.built_at
    assert meta_of(idx)["backend"] == "onnx-int8-token" and meta_of(idx)["onnx_recipe"] == RECIPE_INT8TOK
    backends_loaded.clear()
    rows, mismatch = query(lake[0], idx)
    assert len(rows) == 5 and mismatch == [] and backends_loaded == ["onnx-int8-token"]
    build(lake[0], idx, ["functions.docstring"], refresh=True, embed_backend="onnx")
    _, third = entry_of(lake[0], idx)
    assert third.built_at != second.built_at
    assert meta_of(idx)["backend"] == "onnx" and meta_of(idx)["onnx_recipe"] == RECIPE_FP32
    backends_loaded.clear()
    rows, mismatch = query(lake[0], idx)
    assert len(rows) == 5 and mismatch == [] and backends_loaded == ["onnx"]
