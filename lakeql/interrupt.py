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


@contextlib.contextmanager
def interrupt_on_sigint(con: Callable[[], Any] | Any) -> Iterator[None]:
    """While the block runs, SIGINT interrupts the query running on ``con`` (a connection, or a callable
    returning the current one). Does nothing off the main thread or when SIGINT is not Python's default
    handler (ignored, as in a background job of a non-interactive shell, or handled by someone else)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):  # not the main thread of the main interpreter
        os.close(r)
        os.close(w)
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data or stop.is_set():
                return
            if signal.SIGINT in data:
                target = con() if callable(con) else con
                with contextlib.suppress(Exception):
                    target.interrupt()

    thread = threading.Thread(target=watch, name="lakeql-sigint", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        signal.set_wakeup_fd(previous)
        os.close(w)  # the watcher's read returns b"" and it ends
        thread.join(timeout=1)
        os.close(r)
