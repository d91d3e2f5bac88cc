"""Fixtures for the n-gram tests: real text lakes (Python stdlib sources, sample-lake docstrings).

The n-gram capability is tested on its own: ``lakeql.plugins.CAPABILITIES`` is narrowed to
``lakeql.ngrams`` for this directory, so the tests neither pay for nor depend on other capabilities.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ngramutil import build, stdlib_files, write_text_table  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def only_ngrams() -> Iterator[None]:
    # Module scope: the narrowing is undone after each module of this folder, so tests elsewhere in the
    # same pytest session see every capability again.
    import lakeql.plugins as plugins

    saved = plugins.CAPABILITIES
    plugins.CAPABILITIES = ("lakeql.ngrams",)
    yield
    plugins.CAPABILITIES = saved


@pytest.fixture(scope="session")
def corpus() -> list[tuple[str, bytes | None]]:
    """~1.5 MB of real Python source, one row per file, plus odd rows (NULL, empty, bad UTF-8, Unicode)."""
    rows: list[tuple[str, bytes | None]] = list(stdlib_files(1_500_000))
    rows.insert(3, ("null-row", None))
    rows.insert(7, ("empty-row", b""))
    rows.insert(11, ("bad-utf8", b"abc\xff\xfe def \xc3 broken \x00 nul inside"))
    rows.insert(13, ("unicode", "Grüße, naïve café — 日本語テキスト 🐍 Ǆ ﬁ".encode()))
    return rows


@pytest.fixture(scope="session")
def text_lake(tmp_path_factory, corpus) -> Path:
    """A lake with table ``code.files`` split over two Parquet files."""
    root = tmp_path_factory.mktemp("nglake")
    half = len(corpus) // 2
    write_text_table(root / "code" / "files" / "part-0.parquet", corpus[:half])
    write_text_table(root / "code" / "files" / "part-1.parquet", corpus[half:])
    return root


@pytest.fixture(scope="session")
def indexed(text_lake, tmp_path_factory):
    """(connection, corpus lake) with code.files.text indexed in several shards (0.4 MB each)."""
    import lakeql

    idx = tmp_path_factory.mktemp("ngidx")
    build(text_lake, idx, "code.files.text", ngram_shard_mb=0.4, ngram_jobs=2)
    return lakeql.connect(text_lake, index_dir=idx), idx

