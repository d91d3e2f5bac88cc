"""The first schema_context call embeds every table file (minutes on a 10,000-table lake). It does so
before taking the index's shared swap lock: under it, a concurrent 'lakeql index --refresh' waited for the
whole encode (measured on the 9,763-table benchmark lake, benchmarks/results/scale10k.md)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import lakeql
from lakeql.store import SWAP_LOCK

from .conftest import SAMPLE


def _swap_lock_held(root: Path) -> bool:
    fd = os.open(root / SWAP_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops a lock this probe took
    return False


def test_first_schema_context_encodes_outside_the_swap_lock(tmp_path: Path, monkeypatch) -> None:
    import lakeql.embedding as embedding

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    shutil.copytree(SAMPLE, lake)
    lakeql.index(lake, index_dir=idx, progress=False, joins=False)
    assert not list((idx / "schemas").glob(".lakeql-embeddings*"))  # the default build embeds nothing
    real, calls = embedding.encode, []

    def spy(texts, *args, **kwargs):
        calls.append((len(texts), _swap_lock_held(idx)))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(embedding, "encode", spy)
    con = lakeql.connect(lake, index_dir=idx)
    paths = [r[0] for r in con.execute(
        "SELECT path FROM schema_context('which airline flew the most flights?', k := 2)").fetchall()]
    assert paths and any("flights" in p for p in paths)
    tables = [c for c in calls if c[0] > 1]  # the table files (the question is encoded alone)
    assert tables, calls
    assert not any(held for _, held in tables), calls
    assert list((idx / "schemas").glob(".lakeql-embeddings*"))  # cached for later calls and processes
