"""Every row of the foundation's index tables validates against its JSON Schema in schemas/."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from testutil import ROOT, require

import lakeql

jsonschema = require("jsonschema")


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


@pytest.mark.parametrize("schema, parquet", [
    ("indexes.schema.json", "indexes.parquet"),
    ("catalog_tables.schema.json", "catalog/tables.parquet"),
    ("catalog_columns.schema.json", "catalog/columns.parquet"),
    ("catalog_files.schema.json", "catalog/files.parquet"),
])
def test_index_tables_match_schemas(sample_copy: Path, tmp_path: Path, schema: str, parquet: str) -> None:
    store = lakeql.index(sample_copy, index_dir=tmp_path / "idx", progress=False, joins=False,
                         schemas=False).store
    spec = json.loads((ROOT / "schemas" / schema).read_text())
    rows = pq.read_table(store.path(parquet)).to_pylist()
    assert rows
    for row in rows:
        jsonschema.validate(_jsonable(row), spec)
