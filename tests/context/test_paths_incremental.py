"""Safe file names whatever the table names, and incremental regeneration (only changed files)."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeql.catalog import Catalog
from lakeql.context import formats
from lakeql.context.generate import OLD_STATE, STATE, generate, safe_name
from lakeql.lake import discover


@pytest.mark.parametrize("name", ["..", "../../etc/passwd", "/abs", "a/b", "a b", "ünï ✓", "CON", "",
                                  ".hidden", "x" * 300, "a\x00b", "tab\tname", "_DOMAIN"])
def test_safe_name_is_a_plain_component(name):
    taken: set[str] = set()
    s = safe_name(name, taken)
    assert s and "/" not in s and "\\" not in s and s not in (".", "..") and not s.startswith((".", "_"))
    assert len(s) <= 100 and s.lower() in taken


def test_safe_names_never_clash():
    taken: set[str] = set()
    names = ["a b", "a_b", "A_B", "a.b", "a/b", "a_b-" , "ab"]
    out = [safe_name(n, taken) for n in names]
    assert len({o.lower() for o in out}) == len(out)
    assert out[1] == "a_b"  # a clean name stays readable


def write(path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(data), path)


def test_odd_table_names_give_safe_distinct_paths(tmp_path):
    lake = tmp_path / "lake"
    for dom, tab in [("dom ain", "a b"), ("dom ain", "a_b"), ("dom ain", "a..b"), ("ünï", "✓ check"),
                     ("ünï", "Straße"), ("x", "INDEX"), ("x", "_DOMAIN_md"), ("dom_ain", "t")]:
        write(lake / dom / f"{tab}.parquet", {"c": [1, 2]})
    lk = discover(lake)
    out = tmp_path / "out"
    res = generate(lk, Catalog.open(lk, None), out, "md")
    assert len(res.files) == len(set(f.lower() for f in res.files))
    real = out.resolve()
    for rel in res.files:
        p = (out / rel).resolve()
        assert p.is_file() and real in p.parents and ".." not in rel.split("/") and not rel.startswith("/")
    tables = {formats.parse((out / r).read_text(), "md")["table"] for r in res.files
              if not r.endswith(("_DOMAIN.md", "INDEX.md"))}
    assert tables == set(lk.tables)


def test_incremental_rewrites_only_changed_tables(tmp_path):
    lake = tmp_path / "lake"
    for i in range(6):
        write(lake / "d" / f"t{i}.parquet", {"id": list(range(10)), "v": [f"x{i}"] * 10})
    out = tmp_path / "out"
    lk = discover(lake)
    first = generate(lk, Catalog.open(lk, None), out, "yaml")
    assert first.profiled == 6 and first.written == len(first.files)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in first.files}

    lk = discover(lake)
    again = generate(lk, Catalog.open(lk, None), out, "yaml")
    assert (again.profiled, again.written, again.removed) == (0, 0, 0)
    assert again.unchanged == len(first.files)

    time.sleep(0.01)
    write(lake / "d" / "t3.parquet", {"id": list(range(12)), "v": ["changed"] * 12})
    os.utime(lake / "d" / "t3.parquet", ns=(time.time_ns(), time.time_ns()))
    lk = discover(lake)
    third = generate(lk, Catalog.open(lk, None), out, "yaml")
    assert third.profiled == 1
    changed = {p for p in third.files if (out / p).stat().st_mtime_ns != mtimes.get(p)}
    # the table's file and its domain overview (row count changed); nothing else
    assert changed == {"d/t3.yaml", "d/_DOMAIN.md"}
    assert "changed" in (out / "d" / "t3.yaml").read_text()

    (lake / "d" / "t5.parquet").unlink()
    lk = discover(lake)
    fourth = generate(lk, Catalog.open(lk, None), out, "yaml")
    assert not (out / "d" / "t5.yaml").exists() and fourth.removed == 1 and fourth.profiled == 0

    fifth = generate(lk, Catalog.open(lk, None), out, "json")  # a format switch replaces every table file
    assert not list(out.rglob("*.yaml")) and len(list(out.glob("d/*.json"))) == 5 and fifth.profiled == 0
    assert (out / STATE).exists()


def test_state_is_gzipped_and_an_old_plain_state_is_still_used(tmp_path):
    """The state is gzipped JSON; a plain ``.lakeql-schemas.json`` of an older lakeql is read (nothing
    re-profiled) and replaced by the gzipped one."""
    import gzip
    import json

    lake = tmp_path / "lake"
    for i in range(3):
        write(lake / "d" / f"t{i}.parquet", {"id": list(range(10)), "v": [f"x{i}"] * 10})
    out = tmp_path / "out"
    lk = discover(lake)
    generate(lk, Catalog.open(lk, None), out, "yaml")
    state = json.loads(gzip.decompress((out / STATE).read_bytes()))
    assert sorted(state["tables"]) == sorted(lk.tables) and not (out / OLD_STATE).exists()
    (out / OLD_STATE).write_text(json.dumps(state))
    (out / STATE).unlink()
    again = generate(lk, Catalog.open(lk, None), out, "yaml")
    assert (again.profiled, again.written) == (0, 0)
    assert (out / STATE).exists() and not (out / OLD_STATE).exists()


def test_unwritable_out_dir_is_a_clear_error(tmp_path):
    from lakeql.errors import LakeqlError

    lake = tmp_path / "lake"
    write(lake / "t.parquet", {"a": [1]})
    (tmp_path / "file").write_text("x")
    lk = discover(lake)
    with pytest.raises(LakeqlError, match="--out"):
        generate(lk, Catalog.open(lk, None), tmp_path / "file" / "sub", "yaml")
    with pytest.raises(LakeqlError, match="unknown schema format"):
        generate(lk, Catalog.open(lk, None), tmp_path / "o", "xml")


def test_embeddings_are_cached_per_table_text(tmp_path, monkeypatch):
    import numpy as np

    import lakeql.embedding
    from lakeql.context.retrieve import ensure_embeddings

    calls: list[int] = []

    def fake_encode(texts, model=None, **kw):
        calls.append(len(texts))
        v = np.random.default_rng(len(texts)).standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(lakeql.embedding, "encode", fake_encode)
    lake = tmp_path / "lake"
    for i in range(4):
        write(lake / "d" / f"t{i}.parquet", {"id": [1, 2], "v": ["a", "b"]})
    out = tmp_path / "out"
    lk = discover(lake)
    generate(lk, Catalog.open(lk, None), out, "yaml")
    shas, mat = ensure_embeddings(out)
    assert calls == [4] and mat.shape == (4, 384)
    ensure_embeddings(out)
    assert calls == [4]  # nothing new to encode
    write(lake / "d" / "t2.parquet", {"id": [1, 2], "renamed": ["a", "b"]})
    lk = discover(lake)
    generate(lk, Catalog.open(lk, None), out, "yaml")
    shas2, mat2 = ensure_embeddings(out)
    assert calls == [4, 1] and len(shas2) == 4
    write(lake / "d" / "t1.parquet", {"id": [5, 6, 7], "v": ["x", "y", "z"]})  # new data, same names
    lk = discover(lake)
    generate(lk, Catalog.open(lk, None), out, "yaml")
    stats: dict = {}
    shas3, mat3 = ensure_embeddings(out, stats=stats)
    assert calls == [4, 1] and stats["encoded"] == 0  # keyed by the embedding text, not the file
    assert shas3 != shas2 and np.array_equal(mat3, mat2)


def test_corrupt_data_pages_warn_and_keep_names_and_types(tmp_path):
    lake = tmp_path / "lake"
    write(lake / "d" / "good.parquet", {"a": [1, 2, 3]})
    bad = lake / "d" / "bad.parquet"
    pq.write_table(pa.table({"txt": [f"value {i}" * 20 for i in range(2000)]}), bad, compression="none")
    raw = bytearray(bad.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    for i in range(8, len(raw) - footer - 8, 7):  # scramble the data pages, keep the footer readable
        raw[i] ^= 0x5A
    bad.write_bytes(bytes(raw))
    lk = discover(lake)
    cat = Catalog.open(lk, None)
    assert cat.row_count(lk.tables["d.bad"]) == 2000  # the footer still reads
    with pytest.warns(UserWarning, match="cannot profile table d.bad"):
        res = generate(lk, cat, tmp_path / "out", "yaml")
    doc = formats.parse((tmp_path / "out" / "d" / "bad.yaml").read_text(), "yaml")
    col = doc["columns"][0]
    assert doc["rows"] == 2000 and col["type"] == "VARCHAR" and col["nulls"] is None
    good = formats.parse((tmp_path / "out" / "d" / "good.yaml").read_text(), "yaml")
    assert good["columns"][0]["key"] == "unique" and res.tables == 2
