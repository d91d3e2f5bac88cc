"""The Ray engine (``lakeql index --engine ray``) builds the same indexes as the local engine.

One local Ray (``ray.init(num_cpus=2)``) for the module; one lake (a copy of the sample lake's python
domain plus two flights tables) indexed with both engines: equal column profiles, equal ``joinable``
candidates, equal n-gram counts, equal embedding codes. Then: a worker killed mid-build is retried by Ray
(same counts), a local worker killed mid-build fails the build cleanly and leaves the previous index
usable, and a Ray address that does not answer is one clear error with nothing written.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from testutil import SAMPLE_LAKE, require

import lakeql
from lakeql.engine import LocalEngine, RayEngine, WorkerDied
from lakeql.errors import LakeqlError

ray = require("ray")

EMBED = "flights.airlines.name"
NGRAM = "python.functions.docstring"
PHRASES = ["the", "Return", "file descriptor", "self", "None", "Return the", "zzqqx"]
SHARD_MB = 0.2  # about 5 shards of the 0.9 MB of docstrings
OPTS = {"embed": [EMBED], "ngram": [NGRAM], "ngram_shard_mb": SHARD_MB, "ngram_jobs": 2, "progress": False,
        "joins_semantic": False, "discovery": False, "capabilities": ["joins", "ngrams", "vectors"]}


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engine") / "lake"
    shutil.copytree(SAMPLE_LAKE / "python", root / "python")
    (root / "flights").mkdir()
    for t in ("airlines", "airports"):
        shutil.copy(SAMPLE_LAKE / "flights" / f"{t}.parquet", root / "flights")
    return root


@pytest.fixture(scope="module")
def built(lake: Path, ray_local) -> dict[str, Path]:
    """The lake indexed by both engines; the Ray build must really map the three builders' work."""
    mapped: list[str] = []
    orig = RayEngine.map

    def spy(self, fn, items, **kw):
        mapped.append(fn.__name__)
        return orig(self, fn, items, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RayEngine, "map", spy)
        lakeql.index(lake, index_dir=lake.parent / "ray", engine="ray", **OPTS)
    assert {"profile_task", "run_job", "encode_task"} <= set(mapped)
    lakeql.index(lake, index_dir=lake.parent / "local", **OPTS)
    return {"local": lake.parent / "local", "ray": lake.parent / "ray"}


def counts(lake: Path, idx: Path) -> list[int]:
    con = lakeql.connect(lake, index_dir=idx)
    try:
        table, col = NGRAM.rsplit(".", 1)
        return [con.execute("SELECT ngram_count(?, ?, ?)", [table, col, p]).fetchone()[0] for p in PHRASES]
    finally:
        con.close()


def joinable(lake: Path, idx: Path) -> list[tuple]:
    con = lakeql.connect(lake, index_dir=idx)
    try:
        return con.execute("SELECT * FROM joinable('python.functions', 'module', k := 20)").fetchall()
    finally:
        con.close()


def test_profiles_equal(built: dict[str, Path]) -> None:
    tables = {}
    for engine, idx in built.items():
        files = sorted((idx / "column_profile").rglob("columns.parquet"))
        assert len(files) == 4
        tables[engine] = [pq.read_table(f).sort_by("ordinal") for f in files]
    for a, b in zip(tables["local"], tables["ray"], strict=True):
        assert a.equals(b)


def test_joinable_equal(lake: Path, built: dict[str, Path]) -> None:
    local = joinable(lake, built["local"])
    assert any("python.modules" in str(r) for r in local)  # functions.module joins modules.module
    assert joinable(lake, built["ray"]) == local


def test_ngram_counts_equal(lake: Path, built: dict[str, Path]) -> None:
    local = counts(lake, built["local"])
    assert local[0] > 1000 and local[-1] == 0
    assert counts(lake, built["ray"]) == local
    shards = {e: len(list((idx / "ngram").rglob("shard-*"))) for e, idx in built.items()}
    assert shards["ray"] == shards["local"] > 2


def test_embedding_codes_equal(built: dict[str, Path]) -> None:
    codes = {e: pq.read_table(next((idx / "embed").rglob("codes.parquet")), columns=["file_row", "code"])
             for e, idx in built.items()}  # airlines is one file: one shard
    assert codes["local"].num_rows == 16
    assert codes["ray"].equals(codes["local"])


def test_ray_retries_a_killed_worker(lake: Path, built: dict[str, Path], ray_local) -> None:
    """A shard worker that kills its own process once: Ray re-runs the task, the index is the same."""
    marker = lake.parent / "killed-once"
    orig = RayEngine.map

    def dying_once(self, fn, items, **kw):
        def once(item):
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(item)

        return orig(self, once if fn.__name__ == "run_job" else fn, items, **kw)

    idx = lake.parent / "ray-retry"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RayEngine, "map", dying_once)
        lakeql.index(lake, index_dir=idx, engine="ray", ngram=[NGRAM], ngram_shard_mb=SHARD_MB,
                     capabilities=["ngrams"], progress=False)
    assert marker.exists()
    assert counts(lake, idx) == counts(lake, built["local"])


def test_local_worker_death_fails_cleanly(lake: Path, built: dict[str, Path]) -> None:
    """A local shard worker killed mid-build: WorkerDied, and the previous index still answers."""
    idx = lake.parent / "local"
    before = counts(lake, idx)
    orig = LocalEngine.map

    def dying(self, fn, items, **kw):
        if fn.__name__ == "run_job":  # every worker kills itself: the pool breaks
            return orig(self, signal.raise_signal, [signal.SIGKILL] * len(items), **kw)
        return orig(self, fn, items, **kw)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(WorkerDied, match="worker process died"):
        mp.setattr(LocalEngine, "map", dying)
        mp.setattr("lakeql.ngrams.fileshards.IN_PROCESS_BYTES", 0)  # small builds run in-process otherwise
        lakeql.index(lake, index_dir=idx, ngram=[NGRAM], ngram_shard_mb=SHARD_MB, ngram_jobs=2,
                     capabilities=["ngrams"], progress=False)
    assert counts(lake, idx) == before


def test_unanswering_address_is_a_clear_error(lake: Path, tmp_path: Path) -> None:
    """Nothing listens on port 1: one LakeqlError naming the fix, and no index dir is created."""
    idx = tmp_path / "never"
    with pytest.raises(LakeqlError, match="no Ray cluster answers at ray://127.0.0.1:1"):
        lakeql.index(lake, index_dir=idx, engine="ray", ray_address="ray://127.0.0.1:1", progress=False)
    assert not idx.exists()
    with pytest.raises(LakeqlError, match="not HOST:PORT"):
        lakeql.index(lake, index_dir=idx, engine="ray", ray_address="nohostport", progress=False)
    with pytest.raises(LakeqlError, match="needs --engine ray"):
        lakeql.index(lake, index_dir=idx, ray_address="127.0.0.1:1", progress=False)
    assert not idx.exists()


def test_cli_flags(lake: Path, tmp_path: Path) -> None:
    """``lakeql index --engine ray --ray-address ADDR``: exit code 2 and one line on stderr."""
    idx = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "lakeql.cli", "index", str(lake), "--index-dir", str(idx),
                        "--engine", "ray", "--ray-address", "127.0.0.1:1", "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "no Ray cluster answers at 127.0.0.1:1" in r.stderr
    assert not idx.exists()


def test_silent_address_is_a_clear_error_in_bounded_time(lake: Path, tmp_path: Path, ray_local) -> None:
    """A port that accepts connections but never answers (another service, a half-dead node): ray.init()
    retried for more than 5 minutes (hostile4). Now the gRPC hello of check_address fails within seconds,
    nothing is written; a real GCS address still passes it."""
    import socket

    from lakeql.engine import check_address

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    addr = f"127.0.0.1:{silent.getsockname()[1]}"
    idx = tmp_path / "never"
    try:
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "lakeql.cli", "index", str(lake), "--index-dir", str(idx),
                            "--engine", "ray", "--ray-address", addr, "-q"],
                           capture_output=True, text=True, timeout=90)
        assert r.returncode == 2, r.stderr
        assert f"{addr} accepts connections but is not a Ray cluster" in r.stderr
        assert time.monotonic() - start < 60 and not idx.exists()
    finally:
        silent.close()
    check_address(ray_local.get_runtime_context().gcs_address)
