"""review22: defects found reviewing h/refresh10k4 (one-table refresh at 10k tables, fourth pass).

* the verification record deferred to the end of a build: a reader that finds a damaged file voids the
  record by deleting it; when there was no record file at the integrity pass, that deletion left no trace
  and the build wrote its (now wrong) record at the end: the damaged file was trusted from then on.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

import lakeql
from lakeql import store as store_mod
from lakeql.store import VERIFIED, Store


def _lake(tmp_path):
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    for name in ("a", "b", "c"):
        pq.write_table(
            pa.table({"id": list(range(20)), "v": [f"{name}{i}" for i in range(20)]}),
            lake / "d" / f"{name}.parquet",
        )
    return lake


def _build(lake, idx, **kw):
    return lakeql.index(lake, index_dir=idx, progress=False, refresh=True, capabilities=["context"], **kw)


def test_a_reader_voiding_a_missing_record_during_the_build_is_not_lost(tmp_path, monkeypatch):
    """No record at the integrity pass (the first build after a reader voided it): a reader finding a
    damaged file during the build deletes the record; the build must not write one at its end that
    vouches for that file (the next integrity pass would trust it and never read it again)."""
    lake = _lake(tmp_path)
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
