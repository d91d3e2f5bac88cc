"""review32: a hard review of h/leftovers6 (benchmarks/results/review32.md; docs/robustness.md rows 174-)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import lakeql

SAMPLE = Path(lakeql.__file__).resolve().parent / "sample_lake" / "python" / "functions.parquet"


def _lake_with_a_changed_table(tmp_path: Path) -> tuple[Path, object]:
    """A lake of two tables indexed, then ``d.gone`` rewritten (its domain's views are made while
    connecting, from the files)."""
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    rows = pq.read_table(SAMPLE).slice(0, 50)
    pq.write_table(rows, lake / "d" / "gone.parquet")
    pq.write_table(rows.slice(0, 7), lake / "d" / "stays.parquet")
    lakeql.index(lake, capabilities=["joins"], joins_semantic=False, progress=False)
    pq.write_table(rows.slice(0, 40), lake / "d" / "gone.parquet")
    return lake, rows


def test_a_view_failing_for_another_reason_keeps_its_error(tmp_path, monkeypatch):
    """leftovers6 recorded every view that failed while connecting as "its files no longer read as
    catalogued: changed while connecting?" and dropped DuckDB's error: a file turned into garbage (or a
    real bug, a type, a name) was relabelled as a writer's race, with 'reconnect' as the fix, and the
    agent never saw why. The reason now carries the view's error."""
    from lakeql import views

    lake, _ = _lake_with_a_changed_table(tmp_path)
    real = views._readable

    def writer_breaks_it(ctx, tables):
        got = real(ctx, tables)
        (lake / "d" / "gone.parquet").write_bytes(b"this is no parquet file at all, just hostile bytes")
        return got

    monkeypatch.setattr(views, "_readable", writer_breaks_it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake)
    try:
        got = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT table_name, status, error FROM lakeql_tables()").fetchall()}
        assert got["d.stays"] == ("ok", None), got
        # one row a table (the left-out one is not also listed 'ok'), and no columns of it
        assert con.execute("SELECT count(*), count(DISTINCT table_name) FROM lakeql_tables()").fetchone() \
            == (2, 2)
        assert con.execute("SELECT count(*) FROM lakeql_columns() WHERE table_name = 'd.gone'"
                           ).fetchone()[0] == 0
        status, error = got["d.gone"]
        assert status == "error" and "left out of this connection" in error, got
        # DuckDB's own reason is in it (the file is not Parquet), not only a guess about a writer
        assert "Error:" in error and "parquet" in error.lower(), error
        with pytest.raises(Exception, match=r"d\.gone.*left out of this connection.*Error:"):
            con.execute("SELECT count(*) FROM d.gone").fetchall()
        assert con.execute("SELECT count(*) FROM d.stays").fetchone()[0] == 7
    finally:
        con.close()


def _mapped_pair(tmp_path: Path):
    """A small bounded ANN index (int8 tier) and a copy of it to damage; the good one opened mapped."""
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "vectors"))
    from vectors_helpers import build, make_lake

    from lakeql.vectors import ann

    lake = make_lake(tmp_path)
    build(lake, tmp_path / "index", ["functions.docstring"], embed_ann=True, embed_ann_lists=16)
    (folder,) = list((tmp_path / "index" / "embed").iterdir())
    copy = tmp_path / "damaged"
    shutil.copytree(folder, copy)
    return folder, copy, ann.open_mapped(folder, "python.functions.docstring")


def test_a_non_finite_rescoring_scale_of_a_mapped_ann_index_is_corrupt_not_a_dropped_hit(tmp_path):
    """leftovers6 checked the probed lists' scan factors only: a NaN int8 rescoring scale (ann_scales.npy,
    mapped like them) made the best hit vanish from the answer, silently. Now it is the same
    CorruptIndexError, and an index whose other lists are sound still answers queries that do not read
    the damaged one (a failed check poisons nothing: several threads at once)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from lakeql.errors import CorruptIndexError
    from lakeql.vectors import ann

    folder, copy, good = _mapped_pair(tmp_path)
    ivf = good._pos["ann"]  # the queries: the lists' centroids (no model to load: the test stays fast)
    full = np.flatnonzero(np.diff(ivf.offsets) > 0)
    cents = np.asarray(ivf.centroids, np.float32)[full]
    queries = cents / np.linalg.norm(cents, axis=1, keepdims=True)
    q = queries[0]
    want = ann.search(good, good._pos["ann"], q, 5, nprobe=16)
    rowids = np.load(copy / ann.ROWIDS_FILE)[0]
    pos = int(np.flatnonzero(rowids == want[0][0])[0])  # the best hit's list-order row
    scales = np.load(copy / ann.SCALES_FILE)
    assert scales.dtype == np.float32  # the default tier is int8 (a scale per row)
    scales[0, pos] = np.nan
    np.save(copy / ann.SCALES_FILE, scales)
    bad = ann.open_mapped(copy, "python.functions.docstring")
    with pytest.raises(CorruptIndexError, match=r"corrupt \(a value that is not a number: int8 rescoring "
                       r"scales.*--embed-ann"):
        ann.search(bad, bad._pos["ann"], q, 5, nprobe=16)
    # the queries that never read the damaged list still answer (the failure marked nothing), from
    # several threads at once
    def reads_it(qq) -> bool:
        try:
            ann.search(bad, bad._pos["ann"], qq, 3, nprobe=1)
            return False
        except CorruptIndexError:
            return True

    away = [qq for qq in queries if not reads_it(qq)]
    assert away, "every query reads the damaged list"

    def one(qq):
        got = ann.search(bad, bad._pos["ann"], qq, 3, nprobe=1)
        ref = ann.search(good, good._pos["ann"], qq, 3, nprobe=1)
        return got[0].tolist() == ref[0].tolist() and got[1].tobytes() == ref[1].tobytes()

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(one, away * 4))
    with pytest.raises(CorruptIndexError):  # still refused: nothing marked it checked
        ann.search(bad, bad._pos["ann"], q, 5, nprobe=16)


def test_doctor_does_not_call_a_running_builds_files_ended(tmp_path):
    """leftovers6 made a temp file of a process whose pid is not running here a note: "left by a lakeql
    process that ended ... 'lakeql doctor LAKE --repair' removes it now". A build running in another
    container (or host) on a shared index folder holds the build lock with a pid this machine does not
    see: its files were called ended and offered for removal. While the lock is held they are not."""
    import fcntl
    import os
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from lakeql.doctor import diagnose
    from lakeql.store import BUILD_LOCK

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pq.read_table(SAMPLE).slice(0, 20), lake / "d" / "t.parquet")
    lakeql.index(lake, capabilities=["joins"], joins_semantic=False, progress=False)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    other = child.pid  # a pid not running here: the other container's build
    root = lake / ".lakeql"
    temp = root / f".catalog.{other}-0123abcd.tmp"
    temp.write_bytes(b"half written")
    before = diagnose(lake)
    assert any("no longer running" in f.problem for f in before.notes)  # no build: a dead process's
    (root / BUILD_LOCK).write_text(str(other))
    fd = os.open(root / BUILD_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the other build holds the lock (an flock of another file handle)
        during = diagnose(lake)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    (left,) = [f for f in during.notes + during.findings if f.area == "leftover"]
    assert "no longer running" not in left.problem and "removes it now" not in left.fix, left
    assert f"running now (pid {other}" in left.problem, left
    assert any(f.area == "build" for f in during.findings)  # the running build is still reported
    assert temp.exists()


def test_doctor_names_the_left_out_reasons_fix_not_the_files(tmp_path, monkeypatch):
    """A table doctor's own read leaves out because its UTF-8 copy cannot be written (a full disk) was a
    'lake' finding whose fix said "replace or remove its files": its files are fine. The fix now points
    at the reason (which names the index folder's space or limit)."""
    import pyarrow.parquet as pq

    from lakeql import catalog
    from lakeql.doctor import diagnose
    from lakeql.store import IndexWriteError

    lake, _ = _lake_with_a_changed_table(tmp_path)
    pq.write_table(pq.read_table(SAMPLE).slice(0, 3), lake / "d" / "gone.parquet")

    def disk_full(table, *args, **kwargs):
        raise IndexWriteError("[Errno 28] No space left on device: '.lakeql/csv_utf8/x'")

    monkeypatch.setattr(catalog, "profile_table", disk_full)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diag = diagnose(lake)
    (f,) = [f for f in diag.findings if f.area == "lake"]
    assert "UTF-8 copy cannot be written" in f.problem and "free space" in f.problem, f
    assert "replace or remove its files" not in f.fix and "as the reason says" in f.fix, f
