"""Per-capability readiness of the MCP server's warm-up: a call waits only for what it needs, never twice.

The server loads slow things once, in a background warm-up, before agents ask for them: the embedding
model and the schema index (``search_tables``), each embed index (``semantic_search``), each n-gram index
(``ngram_search``/``ngram_count``), the join index (``joinable``). Each of these is a *key* with a state:

* ``pending``: nobody loaded it yet. The first one to need it (the warm-up, or a call that comes first)
  *claims* it and loads it by doing its own work; everyone else who needs it meanwhile waits;
* ``running``: being loaded. A call that needs it waits, at most ``budget`` seconds, then gets
  :class:`WarmingUp` ("warming up: retry in N s") rather than blocking past a client's tool-call timeout
  (30-60 s in common MCP clients); the warm-up thread waits without a bound;
* ``done``: loaded. Nobody waits.

Before, one event covered the whole warm-up: the first ``search_tables`` of a freshly started server waited
for the model AND every embed and n-gram index and the join index (27-51 s on a 2-core machine at load
5-9, benchmarks/results/agent13.md). A key nobody planned (no warm-up: ``--no-warm``; an index spelled
otherwise) is treated as done: the call loads what it needs itself, as without a warm-up.

A loader that fails (a bad argument, an interrupted call) puts its key back to ``pending``, so the next one
that needs it loads it; it never leaves waiters blocked behind a load that will not come.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager

from lakeql.errors import LakeqlError

PENDING, RUNNING, DONE = "pending", "running", "done"
RETRY_SECONDS = 10  # the wait the "warming up" message suggests (the loads measured take seconds to ~1 min)


class WarmingUp(LakeqlError):
    """A call waited its budget for a load the warm-up (or another call) is still making."""


class Readiness:
    """The state of each warm-up key, shared by the warm-up thread and the calls."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state: dict[Hashable, str] = {}
        self._since: dict[Hashable, float] = {}  # when the running load of a key started (monotonic)

    def plan(self, keys: Iterable[Hashable]) -> None:
        """Mark ``keys`` pending (a key already known keeps its state)."""
        with self._cond:
            for key in keys:
                self._state.setdefault(key, PENDING)

    def state(self, key: Hashable) -> str:
        """``pending``, ``running`` or ``done`` (a key never planned is ``done``: nothing to wait for)."""
        with self._cond:
            return self._state.get(key, DONE)

    def pending(self) -> list[Hashable]:
        """Keys not loaded yet (pending or running), in plan order."""
        with self._cond:
            return [k for k, s in self._state.items() if s != DONE]

    def try_claim(self, key: Hashable) -> bool:
        """Claim a pending ``key`` for a loader (True), without waiting; :meth:`release` ends the claim."""
        with self._cond:
            if self._state.get(key, DONE) != PENDING:
                return False
            self._state[key] = RUNNING
            self._since[key] = time.monotonic()
            return True

    def release(self, key: Hashable, ok: bool) -> None:
        """End a claim: ``done`` when the load worked, else ``pending`` again (the next one loads it)."""
        with self._cond:
            self._state[key] = DONE if ok else PENDING
            self._since.pop(key, None)
            self._cond.notify_all()

    @contextmanager
    def first_use(self, key: Hashable | list[Hashable], what: str | Callable[[Hashable], str],
                  budget: float | None = None, stop: threading.Event | None = None) -> Iterator[bool]:
        """Run the ``with`` body once ``key`` (or each of a list of keys) is loaded, or as its loader.

        Yields True when this caller claimed a key (its body loads it: ``done`` after a body that ends
        normally, ``pending`` again after one that raises), False when every key was loaded already. While
        another loads one of them, waits up to ``budget`` seconds (None: until it ends, or ``stop`` is set)
        and then raises :class:`WarmingUp` naming ``what`` is being loaded (a text, or a function of the
        key).

        Several keys are claimed at once, and only when none of them is being loaded: a caller never holds
        one key while it waits for another (review38: a call that claimed the model, then waited for an
        embed index whose loader waited for the model, answered "warming up" for nothing; the warm-up doing
        the same deadlocked with that loader until the server stopped).
        """
        keys = list(key) if isinstance(key, list) else [key]
        name = what if callable(what) else (lambda _k: what)
        deadline = None if budget is None else time.monotonic() + budget
        with self._cond:
            while True:
                states = [self._state.get(k, DONE) for k in keys]
                busy = [k for k, st in zip(keys, states, strict=True) if st == RUNNING]
                if not busy:
                    claimed = list(dict.fromkeys(k for k, st in zip(keys, states, strict=True)
                                                 if st == PENDING))
                    now = time.monotonic()
                    for k in claimed:
                        self._state[k] = RUNNING
                        self._since[k] = now
                    break
                if stop is not None and stop.is_set():
                    raise LakeqlError("the lake server is shutting down")
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    since = time.monotonic() - self._since.get(busy[0], time.monotonic())
                    raise WarmingUp(f"the server is still warming up: {name(busy[0])} has been loading for "
                                    f"{since:.0f} s (once, after the server starts). Retry this call in "
                                    f"about {RETRY_SECONDS} s; tools that do not need it (list_domains, "
                                    "read_schema, find_tables, query) answer now")
                self._cond.wait(left)
        if not claimed:
            yield False
            return
        ok = False
        try:
            yield True
            ok = True
        finally:
            for k in claimed:
                self.release(k, ok)
