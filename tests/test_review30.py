"""review30: a hard review of trial12's merge (benchmarks/results/review30.md).

Each test reproduces one defect of trial12's classification of faults (a write failure of a CSV's UTF-8
copy taken for a bad file, a row-count mismatch of a build's own taken for a writer at work) or of
``lakeql.interrupt`` (a Ctrl-C during its cleanup), on small real data; docs/robustness.md lists them.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import warnings
from pathlib import Path

import pytest
from testutil import shared_data

import lakeql
from lakeql import csvenc
from lakeql.store import IndexWriteError

ONLY = {"capabilities": ["context"], "progress": False}


def fte_lake(root: Path) -> Path:
    """LAKE/fte/polls.csv (UTF-8) and LAKE/fte/avengers.csv (Windows-1252: read through a UTF-8 copy)."""
    (root / "fte").mkdir(parents=True)
    shutil.copy(shared_data("fivethirtyeight", "ahca-polls", "ahca_polls.csv"), root / "fte" / "polls.csv")
    shutil.copy(shared_data("fivethirtyeight", "avengers", "avengers.csv"), root / "fte" / "avengers.csv")
    return root


def statuses(lake: Path) -> dict[str, tuple[str, str | None]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(lake)
    try:
        return {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT domain || '.' || name, status, error FROM lakeql_tables()").fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENAMETOOLONG, errno.ENOENT, errno.ESTALE])
def test_any_failed_write_of_a_csv_copy_stops_the_build(tmp_path, monkeypatch, code):
    """trial12 stopped the build only for the errnos of ``WRITE_ERRNOS``; any other error of *writing*
    the copy (too many open files, a name too long for the index dir's file system, the index dir's
    folder removed under the build, a stale NFS handle) was still taken for a bad file: the table was
    recorded unreadable ('fix or replace the file'), the build exited 0, and a refresh kept the good
    table out of the lake for good (its fingerprint had not changed)."""
    lake = fte_lake(tmp_path / "lake")
    real_open = open

    def failing_open(file, mode="r", *args, **kw):
        if "w" in mode and str(file).endswith(".tmp"):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kw)

    monkeypatch.setattr(csvenc, "open", failing_open, raising=False)
    with pytest.raises(IndexWriteError, match="cannot write") as got:
        lakeql.index(lake, **ONLY)
    assert "of CSV file 'fte/" in str(got.value)  # the copy's name is a hash: the source is named
    monkeypatch.undo()
    lakeql.index(lake, refresh=True, **ONLY)
    assert statuses(lake)["fte.avengers"] == ("ok", None)


def test_no_writable_folder_for_a_csv_copy_is_not_a_bad_file(tmp_path, monkeypatch):
    """Neither INDEX_DIR/csv_utf8 nor the user's cache can take the copy (here: the index dir's folder
    is a file, the cache's parent is a file; in life a full disk where mkdir fails and a read-only
    $HOME): the build recorded the good Windows-1252 table as unreadable ('no writable folder ...') and
    exited 0; the refresh after the fix kept it out of the lake. Now the build stops (IndexWriteError)
    and the refresh reads the table."""
    lake = fte_lake(tmp_path / "lake")
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    (lake / ".lakeql").mkdir()
    (lake / ".lakeql" / csvenc.DIR).write_text("not a folder")
    with pytest.raises(IndexWriteError, match="no writable folder"):
        lakeql.index(lake, **ONLY)
    (lake / ".lakeql" / csvenc.DIR).unlink()
    lakeql.index(lake, refresh=True, **ONLY)
    assert statuses(lake)["fte.avengers"] == ("ok", None)


def test_a_source_read_error_is_still_a_bad_file(tmp_path, monkeypatch):
    """The other side holds: an error *reading* the source while the copy is written (a failing disk of
    the lake) is the file's: the table is recorded, the build goes on."""
    lake = fte_lake(tmp_path / "lake")

    def bad_source(*args, **kw):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(csvenc, "_decoded", bad_source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, **ONLY)
    got = statuses(lake)  # (the build ended: no IndexWriteError; the disk still fails for the connection,
    monkeypatch.undo()  # which reads a file recorded for an I/O error again: row 157)
    assert got["fte.avengers"][0] != "ok" and "Input/output error" in got["fte.avengers"][1], got


def test_a_row_count_mismatch_with_unchanged_files_is_not_taken_for_a_writer(tmp_path, monkeypatch):
    """trial12 took every difference between the n-gram reader's row counts and the catalog's for a
    writer at work: the index was skipped with a warning ('changed during the build ... once the writes
    are done'), the build exited 0, and with no writer at all (an inconsistency of the build's own, here a
    catalog count off by one) the index was never built and the warning blamed a writer that did not
    exist. With the files as the catalog listed them, the build stops as before trial12."""
    from test_trial12 import gsm_lake

    from lakeql.errors import CorruptIndexError
    from lakeql.ngrams import fileshards

    lake = gsm_lake(tmp_path / "lake")
    real = fileshards._catalog_rows
    monkeypatch.setattr(fileshards, "_catalog_rows",
                        lambda ctx, table: [n + 1 for n in real(ctx, table)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorruptIndexError, match="while its files are unchanged"):
            lakeql.index(lake, capabilities=["ngrams"], ngram=["text.gsm.question"], progress=False)


class _FakeCon:
    def __init__(self) -> None:
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_a_ctrl_c_during_the_interrupt_watchers_cleanup_restores_everything(monkeypatch):
    """A Ctrl-C (a second one, or the first seen late: Python runs its handler at the next bytecode,
    often in the ``finally`` after DuckDB returned) that lands while ``interrupt_on_sigint`` cleans up
    raised KeyboardInterrupt there: the signal wake-up fd stayed set to the pipe's write end, which was
    then left open (or, later closed, its number reused: Python's C handler writes the signal byte into
    whatever file gets it) and the watcher thread ran on. The cleanup now runs with SIGINT blocked; the
    interrupt is delivered after it."""
    import threading

    from lakeql import interrupt

    before_fds = _open_fds()
    before_wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before_wakeup)

    class CtrlCOnSet(threading.Event):
        def set(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C (again) now
            for _ in range(1000):  # bytecodes: Python runs the handler here unless SIGINT is blocked
                pass
            super().set()

    monkeypatch.setattr(interrupt.threading, "Event", CtrlCOnSet)
    con = _FakeCon()
    with pytest.raises(KeyboardInterrupt):
        with interrupt.interrupt_on_sigint(con):
            pass
    monkeypatch.undo()
    now = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before_wakeup)
    assert now == before_wakeup  # the wake-up fd given back
    assert not [t for t in threading.enumerate() if t.name == "lakeql-sigint"]  # the watcher ended
    assert _open_fds() - before_fds == set()  # no pipe end left open
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO])
def test_a_file_unreadable_for_its_permissions_is_read_again_by_a_refresh(tmp_path, monkeypatch, code):
    """A data file the build could not open for its permissions (mode 000, an ACL) or an I/O error of
    the lake's disk was recorded against the file's fingerprint (path, size, mtime): ``chmod`` (or the
    disk back) changes no mtime, so every later ``--refresh`` took the table as 'still unreadable: not
    read again' although the warning said 'fix or replace the file, then run lakeql index LAKE
    --refresh'. Only a full rebuild brought it back. A file recorded for such an error is read again
    by the next refresh. (Simulated: the tests run as root, which reads a mode-000 file.)"""
    from lakeql import catalog

    lake = tmp_path / "lake"
    (lake / "fte").mkdir(parents=True)
    shutil.copy(shared_data("fivethirtyeight", "ahca-polls", "ahca_polls.csv"), lake / "fte" / "polls.csv")
    shutil.copy(shared_data("fivethirtyeight", "airline-safety", "airline-safety.csv"),
                lake / "fte" / "safety.csv")
    real = catalog._count_rows

    def denied(table, stamp, fs, cache=None):
        if stamp.path.endswith("safety.csv"):
            raise OSError(code, os.strerror(code), str(Path(table.root) / stamp.path))
        return real(table, stamp, fs, cache)

    monkeypatch.setattr(catalog, "_count_rows", denied)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, **ONLY)
    assert statuses(lake)["fte.safety"][0] != "ok"
    monkeypatch.undo()  # the permissions fixed (the disk back): no mtime changes
    lakeql.index(lake, refresh=True, **ONLY)
    assert statuses(lake)["fte.safety"] == ("ok", None)
    assert statuses(lake)["fte.polls"] == ("ok", None)


def test_the_interrupt_watcher_passes_signals_on_to_the_hosts_wakeup_fd():
    """A host program with an event loop (asyncio registers a wake-up fd for its signal handlers, its
    child watcher hears SIGCHLD so) that runs ``lakeql.cli.main(['sql', ...])``: while the query ran the
    wake-up fd was lakeql's pipe and the signals that arrived never reached the host's (a child's exit
    lost). The watcher now passes every byte on; the host's fd is given back after."""
    import time

    from lakeql import interrupt

    r, w = os.pipe()
    os.set_blocking(w, False)
    os.set_blocking(r, False)
    old_handler = signal.signal(signal.SIGUSR1, lambda *_: None)
    before = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    try:
        with interrupt.interrupt_on_sigint(_FakeCon()):
            os.kill(os.getpid(), signal.SIGUSR1)
            got = b""
            for _ in range(200):
                time.sleep(0.01)
                try:
                    got += os.read(r, 64)
                except BlockingIOError:
                    continue
                break
        assert bytes([signal.SIGUSR1]) in got
        assert signal.set_wakeup_fd(w, warn_on_full_buffer=False) == w  # given back
    finally:
        signal.set_wakeup_fd(before)
        signal.signal(signal.SIGUSR1, old_handler)
        os.close(r)
        os.close(w)


def test_one_file_unreadable_for_its_permissions_is_read_again_by_a_refresh(tmp_path, monkeypatch):
    """The same for one file of a folder table (the table kept without it): the refresh after the fix
    read the table's other files only ('file' problem kept against the unchanged fingerprint)."""
    from lakeql import catalog

    lake = tmp_path / "lake"
    (lake / "fte" / "polls").mkdir(parents=True)
    src = shared_data("fivethirtyeight", "ahca-polls", "ahca_polls.csv")
    shutil.copy(src, lake / "fte" / "polls" / "a.csv")
    shutil.copy(src, lake / "fte" / "polls" / "b.csv")
    real = catalog._count_rows

    def denied(table, stamp, fs, cache=None):
        if stamp.path.endswith("b.csv"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(Path(table.root) / stamp.path))
        return real(table, stamp, fs, cache)

    def rows() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            con = lakeql.connect(lake)
        try:
            return con.execute("SELECT count(*) FROM fte.polls").fetchone()[0]
        finally:
            con.close()

    monkeypatch.setattr(catalog, "_count_rows", denied)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(lake, **ONLY)
    monkeypatch.undo()
    assert rows() == 15  # a.csv only
    lakeql.index(lake, refresh=True, **ONLY)
    assert rows() == 30
