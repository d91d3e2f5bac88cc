"""Upgrades of the default schema encoder: a schema folder that the previous default (``auto`` -> the
float32 ``onnx``, cache label ``onnx-fp32``) embedded keeps its vectors and encoder under the new
default (``auto`` -> ``onnx-int8-outlier``): no query re-embeds every table (17 s for 2,000 tables at
load 6, minutes for 10,000; every process for a read-only folder), and a refresh never mixes encoders."""

from __future__ import annotations

import shutil

import numpy as np

import lakeql
from lakeql.context.retrieve import EMB, encoder, ensure_embeddings

from .conftest import SAMPLE

QUESTION = "which airline flew the most flights?"


def _keys(schemas):
    with np.load(schemas / EMB, allow_pickle=False) as z:
        return set(z["keys"].tolist())


def _ask(lake, idx):
    con = lakeql.connect(lake, index_dir=idx)
    try:
        return con.execute(
            "SELECT path FROM schema_context(?, k := 3, unit := 'table')", [QUESTION]
        ).fetchall()
    finally:
        con.close()


def test_a_schema_folder_the_float32_default_embedded_keeps_its_encoder(tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE, lake)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False)  # records backend 'auto', embeds nothing yet
    schemas = idx / "schemas"
    # what the first query of the previous lakeql did: 'auto' was the float32 ONNX export
    model, label = encoder("onnx")
    assert label.endswith(":onnx-fp32")
    ensure_embeddings(schemas, model, label=label)
    old = _keys(schemas)
    stamp = (schemas / EMB).stat().st_mtime_ns

    top = _ask(lake, idx)
    assert top
    assert _keys(schemas) == old  # queried with the recorded float32 vectors, nothing re-embedded
    assert (schemas / EMB).stat().st_mtime_ns == stamp

    # a refresh that embeds at index time under the default keeps the float32 family: never mixed
    lakeql.index(lake, index_dir=idx, refresh=True, schemas_embed=True, progress=False)
    assert _keys(schemas) == old
    assert _ask(lake, idx) == top

    # naming the new encoder moves the whole folder to it, then queries use it
    lakeql.index(
        lake,
        index_dir=idx,
        refresh=True,
        schemas_embed=True,
        schemas_embed_backend="onnx-int8-outlier",
        progress=False,
    )
    new = _keys(schemas)
    assert not new & old
    model, label = encoder("onnx-int8-outlier")
    stats: dict = {}
    ensure_embeddings(schemas, model, stats=stats, label=label)
    assert stats["encoded"] == 0 and _keys(schemas) == new
    _ask(lake, idx)
    assert _keys(schemas) == new


def test_a_new_schema_folder_uses_the_new_default(tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE, lake)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False)
    _ask(lake, idx)
    model, label = encoder("auto")
    assert label.endswith(":onnx-int8-outlier")
    stats: dict = {}
    ensure_embeddings(idx / "schemas", model, stats=stats, label=label)
    assert stats["encoded"] == 0
