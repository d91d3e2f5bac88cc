"""leftovers6: small things the last reviews noticed that an agent or user would hit
(benchmarks/results/leftovers6.md; docs/robustness.md rows 170-)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from testutil import shared_data

import lakeql

QUICK = ["--no-joins-semantic", "--no-discovery", "--no-schemas", "--quiet"]


def _child(code: str, fsize: int | None = None, *args: str) -> subprocess.CompletedProcess:
    """``python -c code ARGS`` in a child; ``fsize``: its file size limit in bytes (``ulimit -f``)."""
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = dict(os.environ, PYTHONPATH=str(Path(lakeql.__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=300, env=env, preexec_fn=limit)


def test_a_table_a_connection_leaves_out_is_listed_for_agents(tmp_path):
    """A connection that cannot write a CSV table's UTF-8 copy (file size limit; a full disk the same)
    left the table out with a Python warning only: an MCP agent saw no such table in list_domains nor in
    lakeql_tables(). Now both name it, why, and the fix ('lakeql index LAKE --refresh'); querying it says
    the same instead of 'unknown table'."""
    lake = tmp_path / "lake"
    (lake / "fte").mkdir(parents=True)
    shutil.copy(shared_data("fivethirtyeight", "ahca-polls", "ahca_polls.csv"), lake / "fte" / "polls.csv")
    built = _child("import sys; from lakeql.cli import main; sys.exit(main(sys.argv[1:]))", None,
                   "index", str(lake), *QUICK)
    assert built.returncode == 0, built.stderr
    # Windows-1252 (27 KB): read through a UTF-8 copy the connection must write in the index dir
    shutil.copy(shared_data("fivethirtyeight", "avengers", "avengers.csv"), lake / "fte" / "avengers.csv")
    got = _child("""
        import sys, warnings
        warnings.simplefilter("ignore")
        import lakeql
        from lakeql.mcp.service import LakeService
        con = lakeql.connect(sys.argv[1])
        print("TABLES", con.execute("SELECT domain || '.' || name, status, error FROM lakeql_tables() "
                                    "ORDER BY 1").fetchall())
        print("POLLS", con.execute("SELECT count(*) FROM fte.polls").fetchone()[0])
        try:
            con.execute("SELECT count(*) FROM fte.avengers").fetchall()
        except Exception as exc:
            print("QUERY", exc)
        svc = LakeService(sys.argv[1])
        print("DOMAINS", svc.list_domains())
        svc.close()
        """, 16_384, str(lake))
    assert got.returncode == 0, got.stderr
    out = got.stdout
    assert "POLLS 15" in out, out
    tables = next(line for line in out.splitlines() if line.startswith("TABLES"))
    assert "('fte.polls', 'ok', None)" in tables, tables
    assert "'fte.avengers', 'error'" in tables and "UTF-8 copy cannot be written" in tables, tables
    assert "lakeql index LAKE --refresh" in tables, tables
    query = next(line for line in out.splitlines() if line.startswith("QUERY"))
    assert "fte.avengers" in query and "--refresh" in query and "UTF-8 copy" in query, query
    domains = out[out.index("DOMAINS"):]
    assert "avengers (left out" in domains, domains
    assert "| fte | 1 |" in domains.replace("  ", " "), domains  # counted once: only polls answers


def _dead_pid() -> int:
    """The id of a process that has ended (a child, waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_doctor_takes_a_dead_builds_kept_aside_copy_as_harmless(tmp_path):
    """A Ctrl-C early in 'lakeql index' left '..csv_utf8_sizes.json.old-PID' (the kept-aside copy of a file
    that is in place): doctor said 'temporary file of a dead build' and exited 1 until the next build.
    Now it is a note naming the dead pid and that nothing needs doing (exit 0); the same copy whose file is
    missing stays a problem (exit 1), and --repair puts it back."""
    from lakeql.cli import main
    from lakeql.csvenc import SIZES

    lake = tmp_path / "lake"
    (lake / "fte").mkdir(parents=True)
    shutil.copy(shared_data("fivethirtyeight", "avengers", "avengers.csv"), lake / "fte" / "avengers.csv")
    built = _child("import sys; from lakeql.cli import main; sys.exit(main(sys.argv[1:]))", None,
                   "index", str(lake), *QUICK)
    assert built.returncode == 0, built.stderr
    sizes = lake / ".lakeql" / SIZES
    assert sizes.is_file()
    pid = _dead_pid()
    kept = sizes.parent / f".{SIZES}.old-{pid}"
    os.link(sizes, kept)  # what Store.atomic_file leaves when stopped between its link and the manifest
    doctor = _child("import sys; from lakeql.cli import main; sys.exit(main(sys.argv[1:]))", None,
                    "doctor", str(lake))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "all well" in doctor.stdout.splitlines()[0], doctor.stdout
    assert f"[leftover] .{SIZES}.old-{pid}" in doctor.stdout, doctor.stdout
    assert f"pid {pid}, no longer running" in doctor.stdout, doctor.stdout
    assert "nothing to do" in doctor.stdout, doctor.stdout
    text = sizes.read_text()
    sizes.unlink()  # the file it was kept for is gone: the index lacks it
    doctor = _child("import sys; from lakeql.cli import main; sys.exit(main(sys.argv[1:]))", None,
                    "doctor", str(lake))
    assert doctor.returncode == 1 and "the file it was kept for is missing" in doctor.stdout, doctor.stdout
    assert main(["doctor", str(lake), "--repair", "--quiet"]) == 0
    assert sizes.read_text() == text and not kept.exists()


def test_a_mapped_ann_index_with_a_non_finite_factor_is_corrupt_not_wrong(tmp_path):
    """review31: ann.open_mapped checked the factors' shapes, not that they are numbers: a NaN in the
    list-order factors gave wrong hits silently. Now the first query that reads a list checks its factors
    (only what it reads: a query probing other lists answers as before) and a non-finite one is a
    CorruptIndexError naming the rebuild."""
    import numpy as np
    import pytest

    sys.path.insert(0, str(Path(__file__).resolve().parent / "vectors"))
    from vectors_helpers import build, make_lake

    from lakeql.embedding import encode
    from lakeql.errors import CorruptIndexError
    from lakeql.vectors import ann

    lake = make_lake(tmp_path)
    build(lake, tmp_path / "index", ["functions.docstring"], embed_ann=True, embed_ann_lists=16)
    (folder,) = list((tmp_path / "index" / "embed").iterdir())
    copy = tmp_path / "damaged"
    shutil.copytree(folder, copy)
    good = ann.open_mapped(folder, "python.functions.docstring")
    offsets = good._pos["ann"].offsets
    last = int(np.flatnonzero(np.diff(offsets) > 0)[-1])  # a list with rows: its rows get a NaN factor
    fac = np.load(copy / ann.FACTORS_FILE)
    fac[0, offsets[last]] = np.nan
    np.save(copy / ann.FACTORS_FILE, fac)
    queries = encode(["read a csv file", "compress data with zlib", "parse command line arguments",
                      "send an email message", "current date and time", "open a network socket"])
    answered = failed = 0
    for q in queries:
        bad = ann.open_mapped(copy, "python.functions.docstring")  # opens: nothing read but the shapes
        order, _ = bad._pos["ann"].rank(bad, q, None)
        want = ann.search(good, good._pos["ann"], q, 5, nprobe=1)
        if int(order[:1][0]) != last:  # the damaged list is not read: the same answer
            got = ann.search(bad, bad._pos["ann"], q, 5, nprobe=1)
            assert got[0].tolist() == want[0].tolist() and got[1].tobytes() == want[1].tobytes()
            answered += 1
        with pytest.raises(CorruptIndexError, match=r"ANN lists of python\.functions\.docstring are corrupt"
                           r".*not a number.*lakeql index LAKE --embed python\.functions\.docstring "
                           r"--embed-ann"):
            ann.search(bad, bad._pos["ann"], q, 5, nprobe=16)  # every list: the damaged one too
        failed += 1
    assert answered >= 1 and failed == len(queries)


def test_a_table_whose_view_fails_while_connecting_is_listed_as_left_out(tmp_path, monkeypatch):
    """A table whose file goes between the connection's catalog and its views (a writer) was left out
    with a SkippedViewWarning only, and lakeql_tables() still said 'ok'. Now it is listed as left out
    (status 'error', why, the fix), list_domains marks it, and a query of it says so."""
    import warnings

    import pyarrow.parquet as pq

    from lakeql import views
    from lakeql.mcp.service import LakeService

    sample = Path(lakeql.__file__).resolve().parent / "sample_lake" / "python" / "functions.parquet"
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    rows = pq.read_table(sample).slice(0, 50)
    pq.write_table(rows, lake / "d" / "gone.parquet")
    pq.write_table(rows.slice(0, 7), lake / "d" / "stays.parquet")
    built = _child("import sys; from lakeql.cli import main; sys.exit(main(sys.argv[1:]))", None,
                   "index", str(lake), *QUICK)
    assert built.returncode == 0, built.stderr
    pq.write_table(rows.slice(0, 40), lake / "d" / "gone.parquet")  # changed: its domain's views are made
    real = views._readable

    def writer_removes_it(ctx, tables):
        got = real(ctx, tables)
        (lake / "d" / "gone.parquet").unlink(missing_ok=True)  # after the catalog read it
        return got

    monkeypatch.setattr(views, "_readable", writer_removes_it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake)
    got = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT table_name, status, error FROM lakeql_tables()").fetchall()}
    assert got["d.stays"] == ("ok", None), got
    assert got["d.gone"][0] == "error" and "its view cannot be made" in got["d.gone"][1], got
    assert "lakeql index LAKE --refresh" in got["d.gone"][1], got
    assert con.execute("SELECT count(*) FROM d.stays").fetchone()[0] == 7
    import pytest

    with pytest.raises(Exception, match=r"d\.gone.*left out of this connection"):
        con.execute("SELECT count(*) FROM d.gone").fetchall()
    con.close()
    pq.write_table(rows.slice(0, 40), lake / "d" / "gone.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svc = LakeService(lake)  # (its connection: the writer removes the file again)
    try:
        listed = svc.list_domains()
    finally:
        svc.close()
    assert "gone (left out" in listed and "| d | 1 |" in listed.replace("  ", " "), listed
