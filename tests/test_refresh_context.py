"""``lakeql index --refresh`` renders only the schema files whose inputs changed (issue: refresh of a
10,000-table lake): a no-op refresh renders nothing, a change renders the domains of the tables it
touched. After each kind of change the refreshed schema folder equals a full build's byte for byte, and
the files of untouched domains are not rewritten (same inode and mtime)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from lakes import flights_lake, split_table
from testutil import SAMPLE_LAKE

import lakeql
from lakeql.context import generate as gen

CAPS = ["joins", "context"]
STATE = gen.STATE


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory):
    """(lake, held file): the sample week (flights in 8 files, the last held back) + the python domain."""
    root = tmp_path_factory.mktemp("ctx_refresh") / "lake"
    root.mkdir()
    flights_lake(root, full=False)
    held = split_table(root, "flights", "flights", 8, keep_last=1)
    shutil.copytree(SAMPLE_LAKE / "python", root / "python")
    return root, held[0]


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _stamps(d: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(d).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _state(d: Path) -> dict:
    st = json.loads(gzip.decompress((d / STATE).read_bytes()))
    st.pop("composite")  # the join-check cache: keys name files (a full build's has the same results)
    return st


def _same_as_full_build(lake: Path, idx: Path, full: Path, **opts) -> None:
    """The refreshed ``idx/schemas`` equals a full build's (in a new index dir) byte for byte."""
    lakeql.index(lake, index_dir=full, progress=False, capabilities=CAPS, **opts)
    got, want = _files(idx / "schemas"), _files(full / "schemas")
    assert got.keys() == want.keys()
    for k in want:
        if k != STATE:
            assert got[k] == want[k], k
    assert _state(idx / "schemas") == _state(full / "schemas")


def _rewrite(path: Path, sql_select: str) -> None:
    """Replace ``path`` by a new file holding ``sql_select`` over it (never edited in place)."""
    tmp = path.with_name("new.tmp")
    duckdb.sql(f"COPY ({sql_select.format(src=repr(str(path)))}) TO {str(tmp)!r} (FORMAT parquet)")
    os.replace(tmp, path)


def test_refresh_equals_full_build_after_each_kind_of_change(base_lake, tmp_path, monkeypatch):
    root, held = base_lake
    lake = tmp_path / "lake"
    shutil.copytree(root, lake)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=CAPS)
    schemas = idx / "schemas"
    calls: list[str] = []
    rendered: list[str] = []  # the tables whose file the last refresh rendered
    real = gen.table_doc
    monkeypatch.setattr(gen, "table_doc", lambda tp, *a, **k: calls.append(tp.key) or real(tp, *a, **k))

    def refresh(label: str) -> dict[str, tuple[int, int]]:
        calls.clear()
        before = _stamps(schemas)
        lakeql.index(lake, index_dir=idx, refresh=True, progress=False, capabilities=CAPS)
        rendered[:] = calls
        _same_as_full_build(lake, idx, tmp_path / f"full_{label}")
        return before

    # nothing changed: nothing rendered, nothing rewritten
    before = refresh("noop")
    assert rendered == []
    assert _stamps(schemas) == before

    # (a) a file appended to a folder table: its domain only (python's files untouched)
    shutil.copy(held, lake / "flights" / "flights" / held.name)
    before = refresh("append")
    assert "flights.flights" in rendered and all(k.startswith("flights.") for k in rendered)
    after = _stamps(schemas)
    assert {k: v for k, v in after.items() if k.startswith("python/")} == {
        k: v for k, v in before.items() if k.startswith("python/")
    }

    # (b) a new table in the python domain: that domain's files, INDEX.md; flights' untouched
    shutil.copy(lake / "python" / "modules.parquet", lake / "python" / "modules_copy.parquet")
    before = refresh("add")
    assert "python.modules_copy" in rendered and not any(k.startswith("flights.") for k in rendered)
    after = _stamps(schemas)
    assert {k: v for k, v in after.items() if k.startswith("flights/")} == {
        k: v for k, v in before.items() if k.startswith("flights/")
    }
    assert "modules_copy" in (schemas / "INDEX.md").read_text()

    # (c) a table deleted: its file goes, the listing and INDEX.md follow
    (lake / "python" / "modules_copy.parquet").unlink()
    refresh("delete")
    assert not (schemas / "python" / "modules_copy.yaml").exists()
    assert "modules_copy" not in (schemas / "INDEX.md").read_text()

    # (d) a table's schema changed (a column added): its file shows the column
    _rewrite(lake / "flights" / "airlines.parquet", "SELECT *, length(name) AS name_len FROM {src}")
    refresh("schema")
    assert "flights.airlines" in rendered
    assert "name_len" in (schemas / "flights" / "airlines.yaml").read_text()


def test_noop_refresh_skips_generate_and_changes_reach_it(base_lake, tmp_path, monkeypatch):
    """With nothing changed the schema step does not run :func:`generate` (the manifest row's inputs key
    matches); a new per-column index, a deleted schema file or another format do run it."""
    root, _ = base_lake
    lake = tmp_path / "lake"
    shutil.copytree(root, lake)
    idx = tmp_path / "idx"
    caps = [*CAPS, "ngrams"]
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=caps)
    calls = []
    real = gen.generate  # index_build imports it on each call: the patched one is used
    monkeypatch.setattr(gen, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False, capabilities=caps)
    assert calls == []

    # an n-gram index on a column: its table's file gets the usage SQL
    lakeql.index(
        lake,
        index_dir=idx,
        refresh=True,
        progress=False,
        capabilities=caps,
        ngram=["python.modules.docstring"],
    )
    assert calls == [1]
    text = (idx / "schemas" / "python" / "modules.yaml").read_text()
    assert "ngram_search('python.modules', 'docstring'" in text

    # a schema file deleted by hand: the store drops the damaged row, the refresh writes the files again
    (idx / "schemas" / "flights" / "planes.yaml").unlink()
    lakeql.index(
        lake,
        index_dir=idx,
        refresh=True,
        progress=False,
        capabilities=caps,
        ngram=["python.modules.docstring"],
    )
    assert calls == [1, 1]
    assert (idx / "schemas" / "flights" / "planes.yaml").exists()
    lakeql.index(
        lake,
        index_dir=tmp_path / "full",
        progress=False,
        capabilities=caps,
        ngram=["python.modules.docstring"],
    )
    got, want = _files(idx / "schemas"), _files(tmp_path / "full" / "schemas")
    assert {k: v for k, v in got.items() if k != STATE} == {k: v for k, v in want.items() if k != STATE}

    # another format: everything again
    calls.clear()
    lakeql.index(
        lake,
        index_dir=idx,
        refresh=True,
        progress=False,
        capabilities=caps,
        ngram=["python.modules.docstring"],
        schemas_format="md",
    )
    assert calls == [1]
    assert (idx / "schemas" / "flights" / "planes.md").exists()


def test_automatic_domains_stay_put_when_a_table_is_added(base_lake, tmp_path):
    """With domains of at most 3 tables the flights folder is split automatically; one new table joins
    a domain and no other table moves, and the refreshed files equal a full build over the same previous
    assignment (``lakeql index`` without ``--refresh`` on the same index dir)."""
    root, _ = base_lake
    lake = tmp_path / "lake"
    shutil.copytree(root, lake)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=CAPS, schemas_domain_size=3)
    doms = {k: v["domain"] for k, v in _state(idx / "schemas")["tables"].items()}
    assert len({d for k, d in doms.items() if k.startswith("flights.")}) >= 2  # split
    shutil.copy(lake / "flights" / "airports.parquet", lake / "python" / "airports.parquet")
    shutil.copy(lake / "flights" / "planes.parquet", lake / "flights" / "planes2.parquet")
    full = tmp_path / "full"
    shutil.copytree(idx, full)
    lakeql.index(lake, index_dir=idx, refresh=True, progress=False, capabilities=CAPS, schemas_domain_size=3)
    after = {k: v["domain"] for k, v in _state(idx / "schemas")["tables"].items()}
    assert {k: after[k] for k in doms} == doms  # no table moved
    assert {"flights.planes2", "python.airports"} <= after.keys()
    lakeql.index(lake, index_dir=full, progress=False, capabilities=CAPS, schemas_domain_size=3)
    got, want = _files(idx / "schemas"), _files(full / "schemas")
    assert {k: v for k, v in got.items() if k != STATE} == {k: v for k, v in want.items() if k != STATE}
