"""review22: defects found reviewing h/refresh10k4 (one-table refresh at 10k tables, fourth pass).

* the verification record deferred to the end of a build: a reader that finds a damaged file voids the
  record by deleting it; when there was no record file at the integrity pass, that deletion left no trace
  and the build wrote its (now wrong) record at the end: the damaged file was trusted from then on.
"""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
from lakes import three_small_tables

import lakeql
from lakeql import store as store_mod
from lakeql.store import VERIFIED, Store


def _build(lake, idx, **kw):
    return lakeql.index(lake, index_dir=idx, progress=False, refresh=True, capabilities=["context"], **kw)


def test_a_reader_voiding_a_missing_record_during_the_build_is_not_lost(tmp_path, monkeypatch):
    """No record at the integrity pass (the first build after a reader voided it): a reader finding a
    damaged file during the build deletes the record; the build must not write one at its end that
    vouches for that file (the next integrity pass would trust it and never read it again)."""
    lake = three_small_tables(tmp_path)
    idx = tmp_path / "idx"
    _build(lake, idx)
    _build(lake, idx)
    (idx / VERIFIED).unlink()  # a reader voided it earlier: this build reads every file
    pq.write_table(pa.table({"id": [1, 2], "v": ["x", "y"]}), lake / "d" / "b.parquet")
    store_mod._VERIFIED.clear()
    store_mod._STAMPED.clear()
    real = store_mod.Store.drop_damaged
    real_checksum = store_mod._checksum_like
    found: list[str] = []

    def then_a_reader_finds_damage(self, verify=False, defer_record=False):
        got = real(self, verify, defer_record)
        # a reader in another process finds a schema file failing its checksum (bit rot: same stamp);
        # table a's schema file is not rewritten by this build
        reader = Store(self.root)
        entry = reader.find("schemas")

        def bad(path, want):
            if not str(path).endswith(os.path.join("d", "a.yaml")):
                return real_checksum(path, want)
            st = os.stat(path)
            found.append((str(path), [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]))
            return "0:00000000"

        with monkeypatch.context() as m:
            m.setattr(store_mod, "_VERIFIED", set())
            m.setattr(store_mod, "_checksum_like", bad)
            assert "checksum" in reader.damage(entry)
        return got

    monkeypatch.setattr(store_mod.Store, "drop_damaged", then_a_reader_finds_damage)
    _build(lake, idx)
    assert len(found) == 1
    damaged, stamp = found[0]
    label = damaged[len(str(idx)) + 1 :]
    rec = Store(idx)._load_verified()
    # the void stands: no record vouches for the damaged file as the reader found it (the next integrity
    # pass must read it again; a copy the build rewrote since has another stamp)
    assert rec is None or (rec.get(label) or [None] * 4)[:4] != stamp, label


def _catalog_state(idx):
    """The catalog files' rows (``indexed_at`` left out: a full build stamps every table now)."""
    from lakeql import parquet_io

    out = {}
    for name in ("tables", "columns", "files", "problems"):
        rows = parquet_io.read_table(idx / "catalog" / f"{name}.parquet").to_pylist()
        for r in rows:
            r.pop("indexed_at", None)
        out[name] = rows
    return out


def _schema_files(idx):
    root = idx / "schemas"
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".yaml", ".md")
    }


def _bump(p):
    """A new mtime for ``p`` (a rewrite within one timestamp tick is not what this test is about)."""
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def _change(lake, what):
    d = lake / "d"
    if what == "csv_reencode":  # same text, another encoding: a UTF-8 copy of another size
        (d / "people.csv").write_bytes("id,name\n1,Zoë\n2,José\n3,Ærø\n".encode("utf-16"))
    elif what == "csv_types":  # the same names, another type and another order
        (d / "people.csv").write_bytes("name,id\nZoë,1.5\nJosé,2.5\n".encode("cp1252"))
    elif what == "csv_rename":  # a column renamed, the file of the same size
        (d / "people.csv").write_bytes("id,nome\n1,Zoë\n2,José\n".encode("cp1252"))
    elif what == "csv_utf8":  # back to UTF-8: no copy any more
        (d / "people.csv").write_text("id,name\n1,Zoe\n", encoding="utf-8")
    elif what == "parquet_type":  # same column names, another type
        pq.write_table(pa.table({"id": [1.0, 2.0], "v": [b"x", b"y"]}), d / "a.parquet")
    elif what == "parquet_order":
        pq.write_table(pa.table({"v": ["x", "y"], "id": [1, 2]}), d / "a.parquet")
    elif what == "add":
        pq.write_table(pa.table({"z": [True]}), d / "aa.parquet")
    elif what == "remove":
        (d / "c.parquet").unlink()
    elif what == "rename_table":
        os.replace(d / "b.parquet", d / "bb.parquet")
    for p in d.iterdir():
        if (
            what.startswith("csv")
            and p.name == "people.csv"
            or what.startswith("parquet")
            and p.name == "a.parquet"
        ):
            _bump(p)


def test_refreshed_catalog_and_schemas_equal_a_full_build_after_each_kind_of_change(tmp_path):
    """A lake of Parquet tables and a cp1252 CSV (read through a UTF-8 copy, ``file_copy_bytes``): after
    each change (a CSV re-encoded, its columns retyped and reordered, renamed, made UTF-8; a Parquet
    table's types and column order; a table added, removed, renamed) the refreshed index's catalog rows,
    schema files and views equal a fresh full build's."""
    from test_refresh_database import CAPS, _norm, objects

    def same_as_full_build(lake, idx, full):
        lakeql.index(lake, index_dir=full, progress=False, capabilities=CAPS)
        for mine, theirs in [
            (idx / "lake.duckdb", full / "lake.duckdb"),
            *zip(
                sorted((idx / "views").glob("*.duckdb")),
                sorted((full / "views").glob("*.duckdb")),
                strict=True,
            ),
        ]:
            assert mine.name == theirs.name
            got, want = objects(mine), objects(theirs)
            # macros and the views of CSV tables read through a UTF-8 copy name their index dir
            for k in ("views", "macros"):
                want[k] = sorted(
                    tuple(_norm(str(x).replace(str(full), str(idx))) for x in m) for m in want[k]
                )
                got[k] = sorted(tuple(_norm(str(x)) for x in m) for m in got[k])
            assert got == want

        # (the hash of a views file's SQL names the index dir of a UTF-8 copy: left out)
        def listing(i):
            got = json.loads((i / "views" / "views.json").read_text())
            for d in got["domains"].values():
                d.pop("sql", None)
            return got

        assert listing(idx) == listing(full)

    lake = three_small_tables(tmp_path)
    (lake / "d" / "people.csv").write_bytes("id,name\n1,Zoë\n2,José\n".encode("cp1252"))
    idx = tmp_path / "idx"
    _build(lake, idx)
    kinds = [
        "csv_reencode",
        "csv_types",
        "csv_rename",
        "csv_utf8",
        "parquet_type",
        "parquet_order",
        "add",
        "remove",
        "rename_table",
    ]
    for n, what in enumerate(kinds):
        _change(lake, what)
        _build(lake, idx)
        full = tmp_path / f"full{n}"
        same_as_full_build(lake, idx, full)
        got, want = _catalog_state(idx), _catalog_state(full)
        # the UTF-8 copies live in each index dir: the same names
        assert got == want, what
        assert _schema_files(idx) == _schema_files(full), what
        _record_is_sound(idx)
        shutil.rmtree(full)
    # the UTF-8 copies deleted from the index dir (a user cleaning up): made again, the same rows
    (lake / "d" / "people.csv").write_bytes("id,name\n1,Zoë\n".encode("cp1252"))
    _build(lake, idx)
    shutil.rmtree(idx / "csv_utf8")
    _build(lake, idx)
    same_as_full_build(lake, idx, tmp_path / "full_last")
    assert _catalog_state(idx) == _catalog_state(tmp_path / "full_last")
    assert lakeql.connect(lake, index_dir=idx).sql("SELECT name FROM d.people").fetchall() == [("Zoë",)]


def test_stored_columns_of_a_table_left_out_are_not_found_through_the_shared_cache():
    """``StoredColumns.keep`` shares the made ``Column`` lists with the mapping it came from: a table left
    out (removed, or unreadable now) whose columns the stored catalog had made (``_appended`` asks for
    them) must not be found in the new mapping by ``[]`` / ``get`` while ``in`` says it is not there."""
    import pytest

    from lakeql.catalog import Column, StoredColumns

    m = StoredColumns.from_lists(["a", "b"], ["x", "y"], [0, 0], ["T", "T"])
    assert m["b"] == [Column("b", "y", 0, "T")]  # made (cached in the shared ``_made``)
    kept = m.keep(["a"], {})
    assert "b" not in kept and list(kept) == ["a"]
    assert kept.get("b") is None and kept.get("b", []) == []
    with pytest.raises(KeyError):
        kept["b"]
    assert kept["a"] == m["a"] and m["b"] == [Column("b", "y", 0, "T")]


def _record_is_sound(idx):
    """Every file the verification record vouches for with its current stamp has the checksum recorded
    (a record that vouched for a file it never read would let damage through)."""
    from lakeql.store import file_checksum

    rec = Store(idx)._load_verified() or {}
    for label, stamp in rec.items():
        p = idx / label
        if not p.is_file():
            continue
        st = os.stat(p)
        if stamp[:4] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]:
            assert stamp[4] == file_checksum(p), label
    return rec


def test_kill_9_before_the_end_of_build_record_then_damage_is_found(tmp_path):
    """A build killed after its data writes, before the verification record is written at its end (the
    record is deferred there): the previous record stays; a schema file damaged afterwards is found by
    the next refresh's integrity pass and rebuilt, and the index then equals a full build's."""
    import subprocess
    import sys
    from pathlib import Path

    lake = three_small_tables(tmp_path)
    idx = tmp_path / "idx"
    _build(lake, idx)
    _build(lake, idx)
    assert (idx / VERIFIED).is_file()
    pq.write_table(pa.table({"id": [1, 2], "v": ["x", "y"]}), lake / "d" / "b.parquet")
    code = (
        "import os, signal, sys\nimport lakeql\nimport lakeql.store as S\n"
        "S.Store.remember_checksummed = lambda self: os.kill(os.getpid(), signal.SIGKILL)\n"
        "lakeql.index(sys.argv[1], index_dir=sys.argv[2], progress=False, capabilities=['context'], "
        "refresh=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(lakeql.__file__).parents[1]), *sys.path]))
    proc = subprocess.run([sys.executable, "-c", code, str(lake), str(idx)], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    _record_is_sound(idx)
    # damage a file the killed build did not rewrite (same size: only its checksum tells)
    target = idx / "schemas" / "d" / "a.yaml"
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x20
    target.write_bytes(bytes(data))
    store_mod._VERIFIED.clear()
    store_mod._STAMPED.clear()
    _build(lake, idx)
    assert target.read_bytes() != bytes(data)  # found and rebuilt
    full = tmp_path / "full"
    lakeql.index(lake, index_dir=full, progress=False, capabilities=["context"])
    assert _catalog_state(idx) == _catalog_state(full)
    assert _schema_files(idx) == _schema_files(full)
    assert _record_is_sound(idx)
