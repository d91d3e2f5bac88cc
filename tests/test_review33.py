"""review33: defects found reviewing h/leftovers7 (benchmarks/results/review33.md; docs/robustness.md
rows 183-)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import lakeql


def _small_lake(root: Path) -> tuple[Path, Path]:
    lake, idx = root / "lake", root / "idx"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"id": pa.array(range(50), pa.int64())}), lake / "d" / "t.parquet")
    lakeql.index(lake, index_dir=idx, capabilities=["joins"], joins_semantic=False, progress=False)
    return lake, idx


def test_a_host_serve_keeps_its_stop_signals_while_it_waits_for_a_stuck_warm_up(tmp_path):
    """``serve()`` in a host program waits up to 30 s for a warm-up still in native code (leftovers7).
    It waited with SIGTERM/SIGINT/SIGHUP ignored (its closing state): a supervisor's SIGTERM or a Ctrl-C
    in that window did nothing, and was lost once the host's handlers came back. Now the host's own
    handlers are back before the wait: the signal reaches the host at once."""
    lake, idx = _small_lake(tmp_path)
    code = textwrap.dedent(f"""
        import signal, sys, threading, time
        from lakeql.mcp import server
        from lakeql.mcp.service import LakeService

        def warm(self, background=True):  # a warm-up that outlives close()'s wait by far
            self._warm_thread = threading.Thread(target=time.sleep, args=(25,), daemon=True)
            self._warm_thread.start()

        class Fake:
            def run(self, *a, **k):
                print("RUN", flush=True)

        LakeService.warm = warm
        server.build_server = lambda service: Fake()
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))  # the host's own stop handler
        server.serve({str(lake)!r}, {str(idx)!r})
        print("HOST GOES ON", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(lakeql.__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "RUN"
        time.sleep(3.0)  # close(wait=1.5) is over: serve() now waits for the warm-up
        sent = time.monotonic()
        proc.send_signal(15)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 7, (proc.returncode, out, err[-2000:])
    assert "HOST GOES ON" not in out
    assert took < 10, took


def test_a_row_equal_to_the_centroid_is_found_by_the_bounded_scan(tmp_path):
    """RaBitQ (the default method) codes a row by its residual from the centroid; a row equal to the
    centroid (a one-row table, a column whose vectors are all the same) has an exact estimate: error 0,
    so its upper bound equals the k-th lower bound (the floor). The bounded scans kept only rows whose
    upper bound was strictly above the floor: such rows were never candidates and ``semantic_search``
    answered no rows at all (found on main too). Ties with the floor are kept now."""
    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"v": [[0.0, 2.0, 0.0, 0.0]]}), lake / "d" / "one.parquet")
    pq.write_table(pa.table({"v": [[1.0, 0.0, 0.0, 0.0]] * 40}), lake / "d" / "same.parquet")
    lakeql.index(lake, index_dir=idx, embed=["d.one.v", "d.same.v"], capabilities=["vectors"], progress=False)
    con = lakeql.connect(lake, index_dir=idx, capabilities=["vectors"])
    try:
        q = "[1.0, 0.5, 0.0, 0.0]::FLOAT[]"
        one = con.execute(f"SELECT v, round(score::DOUBLE, 4) FROM semantic_search_vector('d.one', 'v', {q}, "
                          "k := 3)").fetchall()
        assert one == [([0.0, 2.0, 0.0, 0.0], 0.4472)], one
        same = con.execute("SELECT count(*), min(round(score::DOUBLE, 4)) FROM "
                           f"semantic_search_vector('d.same', 'v', {q}, k := 5)").fetchone()
        assert same == (5, 0.8944), same
        exact = con.execute(f"SELECT count(*) FROM semantic_search_vector('d.same', 'v', {q}, k := 5, "
                            "exact := true)").fetchone()
        assert exact == (5,), exact
    finally:
        con.close()


def test_a_long_decomposed_column_name_is_not_spelled_out_three_times_in_its_note(tmp_path):
    """leftovers7's note of a column stored in NFD repeats the name three times (quoted, escaped with
    ``ascii``: 7 characters a mark, composed). A long name (hostile, generated) made a note many times
    its size in ``lakeql_columns()`` and in every schema file format, where names are cut at 200
    characters. A name over 200 characters now gets a short note that points at ``column_name``."""
    import unicodedata

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    long = unicodedata.normalize("NFD", "\u00e9" * 3000)  # 6,000 code points, e + U+0301 each
    short = unicodedata.normalize("NFD", "Caf\u00e9")
    pq.write_table(pa.table({long: [1, 2], short: [3, 4], "plain": [5, 6]}), lake / "d" / "t.parquet")
    con = lakeql.connect(lake, index_dir=tmp_path / "idx")
    try:
        notes = dict(con.execute("SELECT column_name, note FROM lakeql_columns()").fetchall())
    finally:
        con.close()
    assert notes["plain"] is None
    assert "NFD" in notes[short] and '"Cafe\u0301"' in notes[short], notes[short]
    assert "NFD" in notes[long] and "lakeql_columns().column_name" in notes[long], notes[long][:300]
    assert len(notes[long]) < 400, len(notes[long])


def test_the_stale_joins_warning_names_only_tables_an_equi_answer_could_have_held(tmp_path):
    """leftovers7 warned about every table changed since the join index was built, on every joinable
    call: a log table appended to all day, sharing no value with the query column, was named in every
    answer (and in every MCP joinable note). In 'equi' mode (the MCP tool's default) only the changed
    tables with a column sharing values with the query column (as built) are named now; other modes
    match values that only mean the same, so they still name every changed table."""
    import warnings

    from lakeql.mcp.service import LakeService

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "d").mkdir(parents=True)
    ids = pa.array(range(1, 201), pa.int64())
    pq.write_table(pa.table({"customer_id": ids}), lake / "d" / "customers.parquet")
    pq.write_table(pa.table({"cust": ids}), lake / "d" / "orders.parquet")
    pq.write_table(pa.table({"note": [f"zz{i}" for i in range(50)]}), lake / "d" / "log.parquet")
    lakeql.index(lake, index_dir=idx, capabilities=["joins"], joins_semantic=False, progress=False)

    def touch(name: str, table: pa.Table) -> None:
        pq.write_table(table, lake / "d" / f"{name}.parquet")
        future = time.time() + 5
        os.utime(lake / "d" / f"{name}.parquet", (future, future))

    def ask(mode: str) -> tuple[list[str], list[str]]:
        con = lakeql.connect(lake, index_dir=idx)
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                got = [r[0] for r in con.execute(
                    "SELECT candidate_table FROM joinable('d.orders', 'cust', mode := ?)", [mode]).fetchall()]
        finally:
            con.close()
        return got, [str(w.message) for w in seen if "joinable left out" in str(w.message)]

    def mcp_note() -> str:
        service = LakeService(lake, idx)
        try:
            return service.joinable("d.orders", "cust")
        finally:
            service.close(wait=5)

    touch("log", pa.table({"note": [f"zz{i}" for i in range(51)]}))  # shares no value with orders.cust
    got, said = ask("equi")
    assert got == ["d.customers"] and said == [], (got, said)
    assert "Note:" not in mcp_note()
    got, said = ask("auto")  # may match values that only mean the same: still said
    assert "d.customers" in got and len(said) == 1 and "'d.log'" in said[0], (got, said)
    touch("customers", pa.table({"customer_id": pa.array(range(1, 202), pa.int64())}))
    got, said = ask("equi")
    assert got == [] and len(said) == 1 and "'d.customers'" in said[0] and "'d.log'" not in said[0], said
    text = mcp_note()
    assert "Note: joinable left out 1 table(s)" in text and "'d.customers'" in text, text
