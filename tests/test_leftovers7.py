"""leftovers7: defects earlier sessions noticed and left (benchmarks/results/leftovers7.md;
docs/robustness.md rows 178-)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql

QUICK = dict(joins_semantic=False, capabilities=["joins"], schemas_embed=False, progress=False)


def _join_lake(root: Path) -> tuple[Path, Path]:
    """Three tables whose ``id``/``*_id`` columns join: orders -> customers, orders -> shops."""
    lake, idx = root / "lake", root / "idx"
    (lake / "d").mkdir(parents=True)
    ids = pa.array(range(1, 201), pa.int64())
    pq.write_table(pa.table({"customer_id": ids, "name": [f"c{i}" for i in range(200)]}),
                   lake / "d" / "customers.parquet")
    pq.write_table(pa.table({"shop_id": ids, "city": [f"t{i}" for i in range(200)]}),
                   lake / "d" / "shops.parquet")
    pq.write_table(pa.table({"order_id": pa.array(range(1000, 1400), pa.int64()),
                             "cust": pa.array([i % 200 + 1 for i in range(400)], pa.int64())}),
                   lake / "d" / "orders.parquet")
    lakeql.index(lake, index_dir=idx, **QUICK)
    return lake, idx


JOINABLE = "SELECT candidate_table FROM joinable('d.orders', 'cust', k := 5) ORDER BY ALL"


def test_joinable_says_which_changed_tables_it_left_out(tmp_path):
    """A candidate table changed since the join index was built was dropped from joinable's answer with no
    word (trial12): the answer shrank and an agent could not tell. Now the SQL call warns (a
    ``StaleJoinsWarning``, the convention of the other stale cases in SQL functions; the answer's columns
    are unchanged) naming the tables and 'lakeql index --refresh', and the MCP tool adds the note."""
    lake, idx = _join_lake(tmp_path)
    con = lakeql.connect(lake, index_dir=idx)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        before = [r[0] for r in con.execute(JOINABLE).fetchall()]
    assert "d.customers" in before and "d.shops" in before, before
    assert not [w for w in seen if "joinable" in str(w.message)], [str(w.message) for w in seen]
    con.close()
    # customers changes (one more row, newer mtime): its candidate columns are stale
    pq.write_table(pa.table({"customer_id": pa.array(range(1, 202), pa.int64()),
                             "name": [f"c{i}" for i in range(201)]}), lake / "d" / "customers.parquet")
    future = time.time() + 5
    os.utime(lake / "d" / "customers.parquet", (future, future))
    con = lakeql.connect(lake, index_dir=idx)
    cols_before = None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cur = con.execute(JOINABLE)
        after = [r[0] for r in cur.fetchall()]
        cols_before = [d[0] for d in cur.description]
    assert "d.customers" not in after and "d.shops" in after, after
    assert cols_before == ["candidate_table"]
    notes = [str(w.message) for w in seen if w.category.__name__ == "StaleJoinsWarning"]
    assert len(notes) == 1, [str(w.message) for w in seen]
    assert "d.customers" in notes[0] and "lakeql index --refresh" in notes[0], notes[0]
    assert "d.shops" not in notes[0], notes[0]
    full = con.execute("SELECT * FROM joinable('d.orders', 'cust', k := 5)")
    assert [d[0] for d in full.description][:3] == ["candidate_table", "candidate_column", "score"]
    con.close()
    from lakeql.mcp.service import LakeService

    svc = LakeService(lake, index_dir=idx)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = svc.joinable("d.orders", "cust")
    finally:
        svc.close()
    assert "d.shops" in text and "d.customers" in text and "--refresh" in text, text
    # after the refresh: found again, no note
    lakeql.index(lake, index_dir=idx, refresh=True, **QUICK)
    con = lakeql.connect(lake, index_dir=idx)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        again = [r[0] for r in con.execute(JOINABLE).fetchall()]
    assert "d.customers" in again, again
    assert not [w for w in seen if w.category.__name__ == "StaleJoinsWarning"]
    con.close()


def test_a_view_the_build_could_not_make_is_listed_with_its_error(tmp_path, monkeypatch):
    """A view that failed while ``lakeql index`` wrote a domain's views file (a writer had the file
    broken for that moment; or a type or name DuckDB refuses) was missing from the file: the table was
    neither queryable nor listed (``lakeql_tables()`` said nothing of it). Now it is listed with status
    'error', DuckDB's error and the fix, and ``--refresh`` makes the view once the file reads."""
    from lakeql import dbutil

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "big").mkdir(parents=True)
    for i in range(5):  # more than views.SMALL_DOMAIN tables: the domain gets a views file of its own
        pq.write_table(pa.table({"k": pa.array(range(10 * i, 10 * i + 10), pa.int64())}),
                       lake / "big" / f"t{i}.parquet")
    victim = lake / "big" / "t3.parquet"
    good, st = victim.read_bytes(), victim.stat()
    real = dbutil.run_views

    def broken_while_views_are_written(con, statements, chunk=500, errors=None):
        victim.write_bytes(b"not a parquet file: a writer is halfway" + b"\0" * 40)
        try:
            return real(con, statements, chunk, errors)
        finally:  # the writer puts it back as it was (same bytes, size and time): the catalog's fingerprint
            victim.write_bytes(good)
            os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))

    monkeypatch.setattr(dbutil, "run_views", broken_while_views_are_written)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, index_dir=idx, capabilities=["joins"], joins_semantic=False, progress=False)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake, index_dir=idx)
    try:
        got = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT table_name, status, error FROM lakeql_tables()").fetchall()}
        assert got["big.t0"] == ("ok", None) and got["big.t4"] == ("ok", None), got
        assert "big.t3" in got, got
        status, error = got["big.t3"]
        assert status == "error", got
        assert "view" in error and "Error" in error and "lakeql index LAKE --refresh" in error, error
        assert con.execute("SELECT count(*) FROM lakeql_tables()").fetchone()[0] == 5
        with pytest.raises(Exception, match=r"big\.t3.*--refresh"):
            con.execute("SELECT count(*) FROM big.t3").fetchall()
        assert con.execute("SELECT count(*) FROM big.t4").fetchone()[0] == 10
    finally:
        con.close()
    lakeql.index(lake, index_dir=idx, refresh=True, capabilities=["joins"], joins_semantic=False,
                 progress=False)
    con = lakeql.connect(lake, index_dir=idx)
    try:
        assert con.execute("SELECT status FROM lakeql_tables() WHERE table_name = 'big.t3'").fetchall() \
            == [("ok",)]
        assert con.execute("SELECT count(*) FROM big.t3").fetchone()[0] == 10
    finally:
        con.close()


def _loaded_pair(tmp_path: Path, **options):
    """A small embed index (vectors only) and a copy of it to damage: (folder, copy, label)."""
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "vectors"))
    from vectors_helpers import build, make_lake

    lake = make_lake(tmp_path)
    build(lake, tmp_path / "index", ["functions.docstring"], **options)
    (folder,) = list((tmp_path / "index" / "embed").iterdir())
    copy = tmp_path / "damaged"
    shutil.copytree(folder, copy)
    return folder, copy, "python.functions.docstring"


def test_the_loaded_index_refuses_non_finite_factors_and_scales_like_the_mapped_one(tmp_path):
    """The mapped ANN path refuses a NaN/inf scan factor or rescoring scale (leftovers6, review32); the
    loaded index (``CodeIndex.load``: exact search, filtered search, indexes without list-order files)
    trusted them: a NaN scale dropped the best hit silently, a NaN factor gave wrong candidates. Now its
    load refuses them alike (CorruptIndexError naming the rebuild), before any query."""
    import numpy as np
    import pyarrow.compute as pc

    from lakeql.errors import CorruptIndexError
    from lakeql.vectors.codes import CodeIndex

    folder, copy, label = _loaded_pair(tmp_path)
    good = CodeIndex.load(folder, label)
    assert good.scales is not None and np.isfinite(good.scales).all()
    (shard,) = list((copy / "shards").iterdir())
    scales = np.load(shard / "scales.npy")
    for bad in (np.nan, np.inf):
        damaged = scales.copy()
        damaged[len(damaged) // 2] = bad
        np.save(shard / "scales.npy", damaged)
        with pytest.raises(CorruptIndexError, match=r"embed index of python\.functions\.docstring is corrupt "
                           r"\(a value that is not a number: int8 rescoring scales.*lakeql index LAKE "
                           r"--embed python\.functions\.docstring"):
            CodeIndex.load(copy, label)
    np.save(shard / "scales.npy", scales)
    CodeIndex.load(copy, label)  # restored: loads
    codes = pq.read_table(shard / "codes.parquet")
    name = "factor" if "factor" in codes.column_names else "add"
    col = codes.column(name).to_numpy().astype(np.float32)
    col[3] = np.nan
    fixed = pa.array(col).cast(codes.schema.field(name).type)
    pq.write_table(codes.set_column(codes.column_names.index(name), name, fixed), shard / "codes.parquet")
    with pytest.raises(CorruptIndexError, match=r"not a number: scan factors"):
        CodeIndex.load(copy, label)
    assert pc.sum(pc.is_nan(pq.read_table(shard / "codes.parquet").column(name))).as_py() == 1


def test_a_loaded_float_tier_with_a_nan_is_refused_when_read(tmp_path):
    """A float rescoring tier (``--embed-rescore float16``) is memory-mapped, not read at load (reading
    it whole is what the index avoids): the rows a query rescores are checked as they are read, so a NaN
    there is a CorruptIndexError naming the rebuild instead of a dropped hit."""
    import numpy as np

    from lakeql.errors import CorruptIndexError
    from lakeql.vectors import search as vsearch
    from lakeql.vectors.codes import CodeIndex

    folder, copy, label = _loaded_pair(tmp_path, embed_rescore="float16")
    good = CodeIndex.load(folder, label)
    assert good.scales is None and good.tier.dtype == np.float16
    q = np.asarray(good.vectors(np.array([7]))[0], np.float32)
    q /= np.linalg.norm(q)
    want = vsearch.search(good, q, 5)
    assert want[0][0] == good.rowids[7]
    (shard,) = list((copy / "shards").iterdir())
    rescore = np.load(shard / "rescore.npy")
    rescore[7, 5] = np.nan
    np.save(shard / "rescore.npy", rescore)
    bad = CodeIndex.load(copy, label)  # loads: the tier is not read
    with pytest.raises(CorruptIndexError, match=r"embed index of python\.functions\.docstring is corrupt "
                       r"\(a value that is not a number: rescoring tier.*--embed python\.functions"):
        vsearch.search(bad, q, 5)
    others = np.array([0, 1, 2, good.n - 1])  # rows without the NaN score as before, to the bit
    assert bad.score(others, q).tobytes() == good.score(others, q).tobytes()
    with pytest.raises(CorruptIndexError, match="rescoring tier of code row 7"):
        bad.score(np.array([3, 7]), q)


def test_serve_in_a_host_program_does_not_end_it_when_the_warm_up_is_stuck(tmp_path):
    """``serve()`` called ``os._exit`` when its warm-up was still running at the stop: a Python program
    embedding the server (calling ``serve``) was ended on the spot, its own code after ``serve`` never
    ran, its ``finally`` blocks and exit handlers skipped. Now only ``lakeql mcp`` (``exit_process``)
    ends the process; ``serve()`` waits for the warm-up, closes, and returns to the host."""
    import subprocess
    import sys
    import textwrap

    lake, idx = _join_lake(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    code = textwrap.dedent(f"""
        import atexit, threading, time
        from lakeql.mcp import server
        from lakeql.mcp.service import LakeService

        def warm(self, background=True):  # a warm-up that outlives close()'s wait (a model load, an encode)
            self._warm_thread = threading.Thread(target=time.sleep, args=(2.5,), daemon=True)
            self._warm_thread.start()

        class Fake:
            def run(self, *a, **k):  # the client went away at once
                return None

        LakeService.warm = warm
        server.build_server = lambda service: Fake()
        atexit.register(lambda: print("HOST EXIT HANDLER RAN", flush=True))
        server.serve({str(lake)!r}, {str(idx)!r})
        print("HOST GOES ON", flush=True)
    """)
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=str(Path(lakeql.__file__).resolve().parents[1]))
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert got.returncode == 0, got.stderr[-2000:]
    assert "HOST GOES ON" in got.stdout and "HOST EXIT HANDLER RAN" in got.stdout, (got.stdout, got.stderr)
    assert not [p for p in temp.iterdir() if p.name.startswith("lakeql-mcp-")]


def test_a_column_stored_decomposed_says_so_where_agents_read_columns(tmp_path):
    """A CSV header written on macOS ('Cafe' + U+0301) needs that spelling in plain SQL; lakeql's functions
    take the composed one. The views keep the stored name (an NFC alias is not safe: see
    ``colnames.stored_form_note``), so the schema file and ``lakeql_columns()`` now say the name is
    stored decomposed and how to write it, before an agent's first failed query. Ordinary columns: no
    note, their schema lines as before."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Café")
    assert nfd != "Café"
    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "shop").mkdir(parents=True)
    (lake / "shop" / "menu.csv").write_text(f"id,{nfd},price\n1,black coffee,2.5\n2,green tea,3.0\n"
                                            "3,flat white,3.5\n", encoding="utf-8")
    lakeql.index(lake, index_dir=idx, capabilities=["context"], schemas_embed=False, progress=False)
    con = lakeql.connect(lake, index_dir=idx)
    try:
        rows = {r[0]: r[1] for r in con.execute(
            "SELECT column_name, note FROM lakeql_columns() WHERE table_name = 'shop.menu'").fetchall()}
        assert rows["id"] is None and rows["price"] is None, rows
        note = rows[nfd]
        assert "NFD" in note and ascii(nfd) in note and f'"{nfd}"' in note, note
        # the spelling the note gives binds; the composed one does not (DuckDB compares bytes)
        assert con.execute(f'SELECT count("{nfd}") FROM shop.menu').fetchone()[0] == 3
        with pytest.raises(Exception, match="stored as"):
            con.execute('SELECT count("Café") FROM shop.menu').fetchall()
        files = [r[0] for r in con.execute("SELECT path FROM schema_files() WHERE kind = 'table'").fetchall()]
    finally:
        con.close()
    (path,) = [Path(p) for p in files if "menu" in p]
    text = (path if path.is_absolute() else idx / "schemas" / path).read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if "NFD" in x)
    assert "shop.menu." in line and ascii(nfd).strip("'") in line.replace("\\\\", "\\"), line
    others = [x for x in text.splitlines() if "shop.menu.id" in x or "shop.menu.price" in x]
    assert others and not [x for x in others if "NFD" in x or "Unicode" in x], others
