"""Ctrl-C (SIGINT) stops a running DuckDB query in the CLI: ``lakeql sql`` and ``lakeql shell``.

DuckDB's Python client runs a query with the main thread inside C++: Python's SIGINT handler (which
raises ``KeyboardInterrupt``) only runs when the query returns, and the client's own check for signals
is not reached by every query (DuckDB 2.0.1: a scan of ``range(2e10)`` ignored SIGINT for minutes; a
cross join noticed after ~50 s), so Ctrl-C often did nothing (trial12). :func:`interrupt_on_sigint`
registers a wake-up file descriptor for signals (written by the C-level handler at once, whatever the
main thread does) and a watcher thread that calls ``con.interrupt()`` when SIGINT arrives: DuckDB stops
at its next interrupt check, and the pending ``KeyboardInterrupt`` (or DuckDB's interrupt error, which
:func:`is_interrupt` recognises) ends the statement as an interrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB reporting an interrupted query (``con.interrupt()`` or its own SIGINT
    check: ``RuntimeError('Query interrupted')``), not an error of the SQL."""
    if type(exc).__name__ == "InterruptException":
        return True
    return isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted"


class _Held:
    """SIGINT's Python handler while the watcher runs: ``KeyboardInterrupt`` as Python's own, except while
    the watcher is set up or torn down (``holding``): then the Ctrl-C is noted and raised once that is
    done. Cut in half by a ``KeyboardInterrupt`` (a second Ctrl-C, or the first one whose handler Python
    runs late, in the cleanup after DuckDB returned), the cleanup left the signal wake-up fd on the pipe
    and both its ends open, or closed with the wake-up fd still on the number (reused by the next file
    opened, Python's C handler then writes the signal byte into it) and the watcher running (review30).
    Blocking SIGINT in the main thread cannot do it: another thread (DuckDB's) takes the signal."""

    def __init__(self) -> None:
        self.holding = True
        self.pending = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.pending = True
            return
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_on_sigint(con: Callable[[], Any] | Any) -> Iterator[None]:
    """While the block runs, SIGINT interrupts the query running on ``con`` (a connection, or a callable
    returning the current one). Does nothing off the main thread or when SIGINT is not Python's default
    handler (ignored, as in a background job of a non-interactive shell, or handled by someone else).
    Gives back the wake-up fd in place before (a host's event loop) and Python's handler at the end, also
    when a Ctrl-C lands while it sets up or tears down (then raised once that is done: :class:`_Held`)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    held = _Held()
    signal.signal(signal.SIGINT, held)
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):  # not the main thread of the main interpreter
        os.close(r)
        os.close(w)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if held.pending:
            raise KeyboardInterrupt from None
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_watch, args=(r, stop, con, previous), name="lakeql-sigint",
                              daemon=True)
    thread.start()
    try:
        held.holding = False
        if held.pending:  # pressed while the watcher was set up
            raise KeyboardInterrupt
        yield
    finally:
        held.holding = True  # (first: no call before it, where Python could run a handler)
        stop.set()
        signal.set_wakeup_fd(previous)
        os.close(w)  # the watcher's read returns b"" and it ends
        thread.join(timeout=1)
        os.close(r)
        if signal.getsignal(signal.SIGINT) is held:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if held.pending:
            raise KeyboardInterrupt


def _watch(r: int, stop: threading.Event, con: Callable[[], Any] | Any, previous: int = -1) -> None:
    """Read the wake-up pipe ``r``; on SIGINT's byte call ``interrupt()`` on ``con``'s connection. Every
    byte is passed on to the wake-up fd in place before (``previous``: a host's event loop, which learns
    of its signals, a SIGCHLD of its child processes, only so: review30)."""
    while not stop.is_set():
        try:
            data = os.read(r, 64)
        except OSError:
            return
        if not data:
            return
        if previous >= 0:
            with contextlib.suppress(OSError):
                os.write(previous, data)
        if stop.is_set():
            return
        if signal.SIGINT in data:
            target = con() if callable(con) else con
            with contextlib.suppress(Exception):
                target.interrupt()
