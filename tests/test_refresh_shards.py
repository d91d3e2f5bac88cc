"""The schema step's profiles are kept in shards by domain (issue 10 item 4): a one-table change
rewrites the shard of its domain only, and the state file holds no profiles."""

from __future__ import annotations

import gzip
import json
import shutil

from testutil import SAMPLE_LAKE

import lakeql
from lakeql.context.generate import PROFILES, STATE, shard_of


def _stamps(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def test_one_table_change_rewrites_one_shard(tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE, lake)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"])
    out = idx / "schemas"
    state = json.loads(gzip.decompress((out / STATE).read_bytes()))
    assert state["tables"] and not any("profile" in t for t in state["tables"].values())
    flights, python = shard_of("flights"), shard_of("python")
    assert flights != python
    before = _stamps(out / PROFILES)
    assert set(before) == {f"{flights}.json.gz", f"{python}.json.gz"}
    shutil.copy(lake / "flights" / "airlines.parquet", lake / "flights" / "carriers.parquet")
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"], refresh=True)
    after = _stamps(out / PROFILES)
    assert after[f"{python}.json.gz"] == before[f"{python}.json.gz"]  # not rewritten
    assert after[f"{flights}.json.gz"][2] != before[f"{flights}.json.gz"][2]
    got = json.loads(gzip.decompress(after[f"{flights}.json.gz"][2]))
    assert (
        "flights.carriers" in got and got["flights.carriers"]["columns"] == got["flights.airlines"]["columns"]
    )
    # a shard lost: its tables are profiled again when their domain is rendered, the files stay the same
    text = (out / "flights" / "airlines.yaml").read_bytes()
    (out / PROFILES / f"{flights}.json.gz").unlink()
    (lake / "flights" / "carriers.parquet").unlink()
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"], refresh=True)
    assert (out / "flights" / "airlines.yaml").read_bytes() == text
    assert "flights.carriers" not in json.loads(
        gzip.decompress((out / PROFILES / f"{flights}.json.gz").read_bytes())
    )
