"""Fixtures of the vectors tests: one small real lake (200 stdlib docstrings + bad rows), embedded once.

The lake is the bundled sample lake's ``python.functions`` (200 rows, docstrings cut to 200 characters so
encoding stays fast) plus rows with NULL, empty, blank, huge and odd-Unicode docstrings. The model is
loaded once per session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_helpers import build, connect, make_lake  # noqa: E402


@pytest.fixture(scope="session")
def model():
    from lakeql.embedding import load_model

    return load_model(None)


@pytest.fixture(scope="session")
def lake(tmp_path_factory, model) -> tuple[Path, Path]:
    """(lake folder, index dir) with python.functions.docstring embedded (rabitq, int8 tier, BM25)."""
    root = tmp_path_factory.mktemp("vectors")
    lk = make_lake(root)
    build(lk, root / "index", ["functions.docstring"], embed_bm25=True)
    return lk, root / "index"


@pytest.fixture(scope="session")
def con(lake):
    return connect(*lake)


@pytest.fixture(scope="session")
def rows(lake) -> list[dict]:
    """Every row of the test table with its __rowid (in rowid order)."""
    import duckdb

    path = lake[0] / "python" / "functions.parquet"
    sql = (f"SELECT file_row_number AS __rowid, * EXCLUDE (file_row_number) FROM "
           f"read_parquet('{path}', file_row_number = true) ORDER BY 1")
    con = duckdb.connect()  # not the module's shared default connection (other tests leave results on it)
    try:
        return con.sql(sql).to_arrow_table().to_pylist()
    finally:
        con.close()


@pytest.fixture(scope="session")
def default_model():
    """The encoder a default index (``embed_backend='auto'``) embeds with: ``onnx-int8-outlier`` for the
    packaged model (``model`` is torch float32, the reference of the encoder tests)."""
    from lakeql.embedding import load_model

    return load_model(None, "auto")


@pytest.fixture(scope="session")
def real(rows, default_model) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, float32 embeddings) of the rows with a non-blank docstring, by the encoder of the default
    index (``lake``): the NumPy reference."""
    from lakeql.embedding import encode

    keep = [r for r in rows if r["docstring"] is not None and r["docstring"].strip()]
    vecs = encode([r["docstring"][:25_600] for r in keep], default_model)
    return np.array([r["__rowid"] for r in keep], np.int64), vecs
