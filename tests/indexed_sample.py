"""One indexed copy of the sample lake per test session, shared by test_safety and test_mcp.

Building it loads the embedding model (``python.modules.docstring`` is embedded and n-gram indexed), so
it is built once into pytest's session temp dir and reused by every module that asks for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from testutil import SAMPLE_LAKE

EMBED = "python.modules.docstring"


def indexed_sample(tmp_path_factory) -> tuple[Path, Path]:
    """(lake, index dir): a private copy of the sample lake with its indexes (built on first use)."""
    root = tmp_path_factory.getbasetemp() / "indexed-sample"
    lake, idx = root / "lake", root / "idx"
    if (idx / "indexes.parquet").exists():
        return lake, idx
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(SAMPLE_LAKE, lake)
    import lakeql

    if hasattr(lakeql, "index"):
        lakeql.index(lake, index_dir=idx, embed=[EMBED], ngram=[EMBED], progress=False)
    else:  # before the Python API: the CLI's builder
        from lakeql.indexer import build_index, default_options

        build_index(lake, idx, options=default_options(embed=[EMBED], ngram=[EMBED], quiet=True))
    return lake, idx
