"""The MCP server's first calls: each waits only for the warm-up load it needs, bounded (h/mcpcold).

One event covered the whole warm-up: a freshly started server's first ``search_tables`` waited for the
model AND every embed, n-gram and join index (27-51 s at load 5-9, benchmarks/results/agent13.md), and a
client with a 30-60 s tool-call timeout failed its first question. Now (lakeql.mcp.readiness) a call
waits for its own key only, at most ``Limits.warm_wait`` s, then answers "warming up: retry"; a call that
comes before the warm-up reaches its key loads it itself and the warm-up skips it.

Driven through the SDK's own client (in-process, ``mcp.Client(server)``) on the indexed sample lake.
"""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from indexed_sample import EMBED, indexed_sample
from testutil import require

require("mcp")

TABLE, COLUMN = EMBED.rsplit(".", 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return indexed_sample(tmp_path_factory)


def text(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "text", None) is not None)


def held_warm_up(service, hold: str):
    """Start ``service``'s warm-up with its step whose SQL contains ``hold`` blocked until the returned
    event is set; returns (release event, the SQL the warm-up thread ran, the event set once it is held)."""
    real = service._rows
    release, holding = threading.Event(), threading.Event()
    ran: list[str] = []

    def rows(sql, params, *args, **kwargs):
        if threading.current_thread().name == "lakeql-mcp-warm":
            ran.append(sql)
            if hold in sql:
                holding.set()
                release.wait(120)
        return real(sql, params, *args, **kwargs)

    service._rows = rows
    service.warm(background=True)
    assert holding.wait(120), "the warm-up never reached the held step"
    return release, ran


def test_calls_wait_only_for_what_they_need_and_a_long_wait_says_retry(sample):
    """The model's warm-up step held: joinable, ngram_search, ngram_count and list_domains answer at once
    (they need no model: each starts its own index's warm-up step, which the held warm-up had not
    reached, and waits for it); search_tables and semantic_search, which need it, answer "warming up: retry"
    after the budget (1 s here) instead of blocking; once the model is loaded they answer. The n-gram
    index the call loaded is not loaded again by the warm-up."""
    from mcp import Client

    from lakeql.mcp.server import build_server
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    service = LakeService(lake, idx, Limits(warm_wait=1.0))
    try:
        release, ran = held_warm_up(service, "schema_context")
        server = build_server(service)

        async def main() -> None:
            async with Client(server) as client:
                service.limits.warm_wait = 120.0  # the loads these calls start themselves: not cut here
                for tool, args in (
                        ("joinable", {"table": "flights.flights", "column": "carrier"}),
                        ("ngram_search", {"table": TABLE, "column": COLUMN, "phrase": "email"}),
                        ("ngram_count", {"table": TABLE, "column": COLUMN, "phrase": "email"}),
                        ("list_domains", {})):
                    t0 = time.monotonic()
                    r = await client.call_tool(tool, args)
                    assert not r.is_error, (tool, text(r))
                    assert time.monotonic() - t0 < 60, tool  # no wait for the held model step
                assert "airlines" in text(await client.call_tool(
                    "joinable", {"table": "flights.flights", "column": "carrier"}))
                service.limits.warm_wait = 1.0
                for tool, args in (("search_tables", {"question": "which airline flew the most flights?"}),
                                   ("semantic_search", {"table": TABLE, "column": COLUMN,
                                                        "query": "send an email"}),
                                   ("query", {"sql": f"SELECT count(*) FROM semantic_search('{TABLE}', "
                                                     f"'{COLUMN}', 'send an email', k := 2)"})):
                    t0 = time.monotonic()
                    r = await client.call_tool(tool, args)
                    waited = time.monotonic() - t0
                    assert r.is_error, (tool, text(r))
                    assert "warming up" in text(r) and "embedding model" in text(r), text(r)
                    assert "Retry this call in about" in text(r)
                    assert 0.9 <= waited < 30, (tool, waited)
                release.set()
                deadline = time.monotonic() + 120
                while service._readiness.state("model") != "done" and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                r = await client.call_tool("search_tables", {"question": "which airline flew the most "
                                                                         "flights?"})
                assert not r.is_error and "flights" in text(r), text(r)
                while service._readiness.pending() and time.monotonic() < deadline:
                    await anyio.sleep(0.05)  # the embed index: next in the warm-up
                r = await client.call_tool("semantic_search", {"table": TABLE, "column": COLUMN,
                                                               "query": "send an email", "k": 2})
                assert not r.is_error, text(r)

        anyio.run(main)
        service._warm_thread.join(120)
        assert not service.warm_running()
        # the calls' loaders loaded the n-gram and join indexes first: the warm-up skipped them
        assert not any("ngram_count" in s for s in ran), ran
        assert not any("joinable(" in s for s in ran), ran
        assert service._readiness.pending() == []
    finally:
        service.close()


def test_a_call_on_a_key_pending_loads_it_and_the_warm_up_waits_for_it(sample):
    """A call that claims a key loads it with its own work; the warm-up reaching that key waits for it
    and does not load it again; a loader that fails puts the key back to pending for the next one."""
    from lakeql.errors import LakeqlError
    from lakeql.mcp.readiness import DONE, PENDING, RUNNING, Readiness, WarmingUp

    ready = Readiness()
    ready.plan(["model", ("ngram", "t", "c")])
    assert ready.state("never planned") == DONE  # --no-warm: nothing to wait for
    with pytest.raises(RuntimeError), ready.first_use("model", "the model") as owner:
        assert owner
        raise RuntimeError("interrupted")
    assert ready.state("model") == PENDING  # a failed load leaves it to the next one
    entered, leave = threading.Event(), threading.Event()
    loads: list[str] = []

    def call() -> None:
        with ready.first_use("model", "the model", budget=5) as owner:
            if owner:
                loads.append("call")
                entered.set()
                leave.wait(30)

    t = threading.Thread(target=call)
    t.start()
    assert entered.wait(30)
    assert ready.state("model") == RUNNING
    t0 = time.monotonic()
    with pytest.raises(WarmingUp, match=r"the model has been loading for \d+ s.*Retry this call in about"):
        with ready.first_use("model", "the model", budget=0.3):
            pass
    assert 0.25 <= time.monotonic() - t0 < 10
    stop = threading.Event()

    def warm() -> None:
        with ready.first_use("model", "the model", stop=stop) as owner:
            if owner:
                loads.append("warm-up")

    w = threading.Thread(target=warm)
    w.start()
    time.sleep(0.2)
    assert w.is_alive()  # the warm-up waits (no bound) for the call's load
    leave.set()
    t.join(30)
    w.join(30)
    assert loads == ["call"] and ready.state("model") == DONE
    assert ready.pending() == [("ngram", "t", "c")]
    # a waiting warm-up stops when the server closes
    with ready.first_use(("ngram", "t", "c"), "x") as owner:
        assert owner
        stop.set()
        with pytest.raises(LakeqlError, match="shutting down"):
            with ready.first_use(("ngram", "t", "c"), "x", stop=stop):
                pass


def test_warm_wait_is_validated():
    from lakeql.errors import LakeqlError
    from lakeql.mcp.service import Limits

    for bad in (-1, float("nan"), float("inf"), True, "5"):
        with pytest.raises(LakeqlError, match="warm_wait"):
            Limits(warm_wait=bad)
    assert Limits(warm_wait=0).warm_wait == 0


def test_a_slow_index_load_a_call_started_answers_warming_up_then_the_rows(sample):
    """A call whose index the warm-up has not reached starts that index's load in a thread of its own
    and waits for it at most ``warm_wait``: a slow load (numba compiling on the first start after an
    install: 53 s measured) gives "warming up ... the ngram index of T.C ... Retry" within the budget,
    the load goes on, and the same call answers rows once it is done. The index is loaded once."""
    from mcp import Client

    from lakeql.mcp.server import build_server
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    service = LakeService(lake, idx, Limits(warm_wait=1.0))
    try:
        release, _ = held_warm_up(service, "schema_context")  # the warm-up never reaches the n-gram step
        held_rows = service._rows
        loads: list[str] = []

        def rows(sql, params, *args, **kwargs):
            if threading.current_thread().name == "lakeql-mcp-load" and "ngram_count" in sql:
                loads.append(sql)
                time.sleep(4)  # a slow first load
            return held_rows(sql, params, *args, **kwargs)

        service._rows = rows
        server = build_server(service)
        args = {"table": TABLE, "column": COLUMN, "phrase": "email"}

        async def main() -> None:
            async with Client(server) as client:
                t0 = time.monotonic()
                r = await client.call_tool("ngram_search", args)
                assert r.is_error and "warming up" in text(r), text(r)
                assert f"the ngram index of {TABLE}.{COLUMN}" in text(r) and "Retry" in text(r)
                assert time.monotonic() - t0 < 30
                r = await client.call_tool("ngram_count", args)  # still loading: the same answer
                assert r.is_error and "warming up" in text(r), text(r)
                deadline = time.monotonic() + 120
                while service._readiness.state(("ngram", TABLE, COLUMN)) != "done" and \
                        time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                r = await client.call_tool("ngram_count", args)
                assert not r.is_error and "occurrences of 'email'" in text(r), text(r)

        anyio.run(main)
        assert len(loads) == 1  # one loader, though two calls asked while it ran
        release.set()
    finally:
        service.close()
