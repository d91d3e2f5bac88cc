"""trial12: time, concurrency and the lifecycle of files and processes (benchmarks/results/trial12.md).

Each test reproduces one defect found by the trial on small real data (fivethirtyeight CSVs, the sample
lake) and asserts the fixed behaviour; docs/robustness.md lists them (rows 148-152).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from testutil import shared_data

import lakeql

LAKEQL = [sys.executable, "-m", "lakeql.cli"]
QUICK = ["--no-joins-semantic", "--no-discovery", "--no-schemas", "--quiet"]


def run(*args: str, fsize: int | None = None) -> subprocess.CompletedProcess:
    """``lakeql ARGS`` in a child; ``fsize``: its file size limit in bytes (``ulimit -f``)."""
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = dict(os.environ, PYTHONPATH=str(Path(lakeql.__file__).resolve().parents[1]))
    return subprocess.run([*LAKEQL, *args], capture_output=True, text=True, timeout=300, env=env,
                          preexec_fn=limit)


def statuses(lake: Path) -> dict[str, tuple[str, str | None]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake)
    try:
        return {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT domain || '.' || name, status, error FROM lakeql_tables()").fetchall()}
    finally:
        con.close()


def test_a_failed_write_of_a_csv_copy_is_not_a_bad_file(tmp_path):
    """A CSV that is not UTF-8 arrives; the refresh cannot write its UTF-8 copy (file size limit; a full
    disk or a quota the same): before, the good table was recorded as unreadable ('no readable file
    (OSError: [Errno 27] File too large)', blaming the file) and stayed out of the lake after a refresh
    with room again (its fingerprint had not changed). Now the build stops with the write error (exit 2,
    previous index kept) and the next refresh reads the table."""
    lake = tmp_path / "lake"
    (lake / "fte").mkdir(parents=True)
    shutil.copy(shared_data("fivethirtyeight", "ahca-polls", "ahca_polls.csv"), lake / "fte" / "polls.csv")
    assert run("index", str(lake), *QUICK).returncode == 0
    # avengers.csv is Windows-1252 (27 KB): read through a UTF-8 copy the build writes in the index dir
    shutil.copy(shared_data("fivethirtyeight", "avengers", "avengers.csv"), lake / "fte" / "avengers.csv")
    full = run("index", "--refresh", str(lake), *QUICK, fsize=16_384)
    assert full.returncode == 2, full.stderr
    assert "cannot write" in full.stderr and "file size limit" in full.stderr, full.stderr
    assert "unreadable" not in full.stderr, full.stderr  # the file is fine: the index dir is not
    # a connection under the same limit: the other tables answer, the new one is left out with a warning
    reader = run("sql", str(lake), "SELECT count(*) FROM fte.polls", "--format", "csv", fsize=16_384)
    assert reader.returncode == 0 and reader.stdout.split() == ["count_star()", "15"], reader
    assert "fte.avengers is left out of this connection" in reader.stderr, reader.stderr
    assert "fte.avengers" not in statuses(lake) or statuses(lake)["fte.avengers"][0] == "ok"
    again = run("index", "--refresh", str(lake), *QUICK)
    assert again.returncode == 0, again.stderr
    got = statuses(lake)
    assert got["fte.avengers"] == ("ok", None), got
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM fte.avengers").fetchone()[0] == 173
    con.close()


def gsm_lake(root: Path, extra: int = 0) -> Path:
    """LAKE/text/gsm.parquet: the 1,319 GSM8K test questions (+ ``extra`` rows naming a marker)."""
    import duckdb

    (root / "text").mkdir(parents=True, exist_ok=True)
    src = shared_data("gsm8k", "test.jsonl")
    more = (f" UNION ALL SELECT 10000 + i, 'trial twelve marker ' || i FROM range({extra}) t(i)" if extra
            else "")
    tmp = root / "text" / ".gsm.tmp"
    duckdb.sql(f"COPY (SELECT row_number() OVER () AS id, question FROM read_json_auto('{src}'){more}) "
               f"TO '{tmp}' (FORMAT parquet)")
    os.replace(tmp, root / "text" / "gsm.parquet")
    return root


def test_a_table_rewritten_during_a_build_does_not_fail_the_build(tmp_path, monkeypatch):
    """A writer replaces a table's file while ``lakeql index`` runs, after the catalog read it and before
    its n-gram index did: before, the whole build failed at that index (`the row counts of text.gsm's
    files (1322) differ from the catalog's (1319)`, exit 2, later stages not run), so a build of a lake
    that is being written to could not finish. Now that index is skipped with a warning, every other index
    is built, the table's old n-gram index stays (stale: queries say so) and a refresh brings it up to
    date."""
    from lakeql.ngrams import fileshards

    lake = gsm_lake(tmp_path / "lake")
    opts = {"capabilities": ["ngrams"], "ngram": ["text.gsm.question"]}
    lakeql.index(lake, **opts)
    real, calls = fileshards._file_batches, []

    def cut_after_a_write(*args, **kw):
        if not calls:
            gsm_lake(lake, extra=3)  # the writer's new version lands now
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(fileshards, "_file_batches", cut_after_a_write)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lakeql.index(lake, **opts)  # before: CorruptIndexError
    assert any("changed during the build" in str(w.message) for w in caught), [str(w.message) for w in caught]
    monkeypatch.setattr(fileshards, "_file_batches", real)
    import pytest

    con = lakeql.connect(lake)
    with pytest.raises(lakeql.LakeqlError, match="older than|rebuilt"):
        con.execute("SELECT ngram_count('text.gsm', 'question', 'trial twelve marker')").fetchone()
    con.close()
    lakeql.index(lake, refresh=True)
    con = lakeql.connect(lake)
    assert con.execute("SELECT ngram_count('text.gsm', 'question', 'trial twelve marker')").fetchone()[0] == 3
    con.close()


def test_ctrl_c_during_a_query_is_an_interrupt_not_a_sql_error(tmp_path):
    """SIGINT (Ctrl-C) while `lakeql sql` runs a query: DuckDB's client turns it into 'Query interrupted'
    (a RuntimeError), which was reported as a SQL error (`lakeql: error: Query interrupted`, exit 2, as a
    failed statement). Now it is the interrupt it is: `interrupted`, exit 130, as before or after a query."""
    import signal
    import time

    from lakeql.demo import SAMPLE_LAKE

    env = dict(os.environ, PYTHONPATH=str(Path(lakeql.__file__).resolve().parents[1]))
    p = subprocess.Popen([*LAKEQL, "sql", str(SAMPLE_LAKE),
                          "SELECT count(*) FROM range(20000000000) t(i) WHERE i % 7 = 3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4)  # imports and connect (~1-2 s), then the query (minutes)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    assert err.strip().splitlines()[-1] == "interrupted", err


def _mcp_child(lake: Path, *extra: str) -> subprocess.Popen:
    """`lakeql mcp` over stdio, initialized (raw JSON-RPC lines)."""
    import json

    env = dict(os.environ, PYTHONPATH=str(Path(lakeql.__file__).resolve().parents[1]), HF_HUB_OFFLINE="1")
    p = subprocess.Popen([*LAKEQL, "mcp", "--lake", str(lake), *extra], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for msg in (init, {"jsonrpc": "2.0", "method": "notifications/initialized"}):
        p.stdin.write((json.dumps(msg) + "\n").encode())
        p.stdin.flush()
        if "id" in msg:
            assert b'"result"' in p.stdout.readline()
    return p


def test_mcp_server_stops_on_sigterm_during_a_query_and_on_ctrl_c_when_idle(tmp_path):
    """A stdio client stops its server with SIGTERM (then SIGKILL a few seconds later); a person running
    `lakeql mcp` in a terminal presses Ctrl-C. Before: SIGTERM during a long query waited for the query
    (no exit in 30 s: the worker thread held the event loop's shutdown), and SIGINT when idle waited for
    the next line on stdin (no exit in 30 s). Now both interrupt the queries and exit within seconds
    (exit 0, as for every stop signal)."""
    import json
    import signal
    import time

    lake = gsm_lake(tmp_path / "lake")
    lakeql.index(lake, capabilities=["ngrams"], ngram=["text.gsm.question"])
    busy = _mcp_child(lake, "--timeout", "300")
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "query", "arguments": {
        "sql": "SELECT count(*) FROM range(20000000000) t(i) WHERE i % 7 = 3"}}}
    busy.stdin.write((json.dumps(call) + "\n").encode())
    busy.stdin.flush()
    idle = _mcp_child(lake)
    time.sleep(3)
    busy.send_signal(signal.SIGTERM)
    idle.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        assert busy.wait(timeout=15) == 0
        assert idle.wait(timeout=15) == 0
    finally:
        for p in (busy, idle):
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert time.monotonic() - t0 < 15
