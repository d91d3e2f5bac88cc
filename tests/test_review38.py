"""Review of h/mcpcold (per-capability warm-up readiness of the MCP server): the defects found.

* a load a call started (``lakeql-mcp-load``) was not known to ``close()`` / ``warm_running()``: the
  server stopped as if idle with that thread still loading (inside native code: an abort at interpreter
  exit), and ``close()`` did not wait for it;
* a key was claimed one at a time: a caller holding the model while it waited for an embed index whose
  loader waited for the model answered "warming up" for nothing, or (the warm-up) deadlocked;
* an index spelled as the lake's functions also take it (``Python.Modules``, ``DOCSTRING``) found no
  planned key: no wait, the load inline next to the warm-up's;
* the ``query`` tool waited for the model only: ``semantic_search``/``ngram_search`` in SQL loaded their
  index inline under the query timeout.

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
    """Start the warm-up with its step whose SQL contains ``hold`` blocked until the returned event is
    set; a loader thread's n-gram load sleeps ``slow[0]`` s first; returns (release, loads by loaders)."""
    real = service._rows
    release, holding = threading.Event(), threading.Event()
    loads: list[str] = []
    slow = [0.0]

    def rows(sql, params, *args, **kwargs):
        name = threading.current_thread().name
        if name == "lakeql-mcp-warm" and hold in sql:
            holding.set()
            release.wait(120)
        if name == "lakeql-mcp-load" and "lakeql_columns" not in sql:
            loads.append(sql)
            time.sleep(slow[0])
        return real(sql, params, *args, **kwargs)

    service._rows = rows
    service.warm(background=True)
    assert holding.wait(120), "the warm-up never reached the held step"
    return release, loads, slow


def test_close_waits_for_a_load_a_call_started_and_says_it_still_runs(sample):
    """A call's own load (the warm-up had not reached its key) still running at close(): close() waits
    for it up to ``wait`` and ``warm_running()`` is True while it runs (serve() then ends the process at
    once instead of an interpreter exit under it); before, close() returned at once and said idle."""
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    service = LakeService(lake, idx, Limits(warm_wait=0.2))
    try:
        release, loads, slow = held_warm_up(service, "schema_context")
        slow[0] = 6.0
        with pytest.raises(Exception, match="warming up"):
            service.ngram_count(TABLE, COLUMN, "email")
        assert loads, "the call started no load of its own"
        t0 = time.monotonic()
        release.set()
        service.close(wait=1.0)
        took = time.monotonic() - t0
        assert service.warm_running(), "a load still running was not seen by close()"
        assert 0.9 <= took < 5, took
        deadline = time.monotonic() + 60
        while service.warm_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not service.warm_running()
    finally:
        service.close(wait=0)


def test_no_caller_holds_one_key_while_it_waits_for_another(sample):
    """The model's load failed (back to pending) while an embed index's loader, holding that index,
    waits for the model: the warm-up's step of that index waits for both. Claiming one key at a time, the
    warm-up could take the model and wait for the index for ever (the loader waiting for the model): a
    deadlock until the server stopped, every search_tables answering "warming up". Now keys are claimed
    together, only when none is loading: the loader goes on, then the warm-up."""
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    service = LakeService(lake, idx, Limits())
    try:
        ready = service._readiness
        for trial in range(12):
            key = ("embed", "t", f"c{trial}")
            model = ("embed", "model", f"m{trial}")  # the model's role (a fresh key each trial)
            ready.plan([model, key])
            assert ready.try_claim(model)  # the model's first load runs
            assert ready.try_claim(key)  # a call started the index's loader
            order: list[str] = []

            def loader(model=model, key=key, order=order) -> None:
                with service._first_use([model], None) as owner:
                    order.append("loader" + ("+model" if owner else ""))
                ready.release(key, True)

            def warm(model=model, key=key, order=order) -> None:
                with service._first_use([model, key], None) as owner:
                    order.append("warm" + ("+model" if owner else ""))

            threads = [threading.Thread(target=loader, daemon=True),
                       threading.Thread(target=warm, daemon=True)]
            for t in threads:
                t.start()
            time.sleep(0.05)
            ready.release(model, False)  # the model's load failed: the next one loads it
            for t in threads:
                t.join(10)
            assert not any(t.is_alive() for t in threads), f"deadlock in trial {trial}: {order}"
            assert order == ["loader+model", "warm"], order
    finally:
        service.close()


def test_an_index_in_another_spelling_waits_for_its_key_and_is_loaded_once(sample):
    """``ngram_count('Python.Modules', 'DOCSTRING', ...)`` names the planned index: the call starts its
    key's loader (not an inline load next to the warm-up's) and the key is done after; before, no key
    matched, the call waited for nothing and loaded the index in its own thread."""
    from mcp import Client

    from lakeql.mcp.server import build_server
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    service = LakeService(lake, idx, Limits(warm_wait=120.0))
    try:
        release, loads, _ = held_warm_up(service, "schema_context")
        server = build_server(service)
        key = ("ngram", TABLE, COLUMN)  # the key the warm-up planned

        async def main() -> None:
            async with Client(server) as client:
                for table, column in ((TABLE.title(), COLUMN.upper()), ('"python"."modules"', COLUMN)):
                    r = await client.call_tool("ngram_count", {"table": table, "column": column,
                                                               "phrase": "email"})
                    assert not r.is_error and "occurrences of 'email'" in text(r), text(r)

        anyio.run(main)
        assert service._readiness.state(key) == "done"
        assert len([s for s in loads if "ngram_count" in s]) == 1, loads
        release.set()
    finally:
        service.close()


def test_a_query_with_an_index_function_waits_for_that_index(sample):
    """The ``query`` tool with ``ngram_search('t', 'c', ...)`` in its SQL, the index not loaded yet: the
    call starts that index's load and waits for it (bounded: "warming up ... the ngram index of T.C"),
    as the ngram_search tool does; before, it waited for nothing and ran the first load (a numba compile:
    minutes on the first start after an install) under the 30 s query timeout."""
    from mcp import Client

    from lakeql.mcp.server import build_server
    from lakeql.mcp.service import LakeService, Limits

    lake, idx = sample
    service = LakeService(lake, idx, Limits(warm_wait=0.5))
    try:
        release, loads, slow = held_warm_up(service, "schema_context")
        slow[0] = 4.0
        server = build_server(service)
        sql = f"SELECT count(*) AS n FROM ngram_search('{TABLE}', '{COLUMN.upper()}', 'email', k := 5)"

        async def main() -> None:
            async with Client(server) as client:
                r = await client.call_tool("query", {"sql": sql})
                assert r.is_error and "warming up" in text(r), text(r)
                assert f"the ngram index of {TABLE}.{COLUMN}" in text(r), text(r)
                deadline = time.monotonic() + 120
                while service._readiness.state(("ngram", TABLE, COLUMN)) != "done" and \
                        time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                r = await client.call_tool("query", {"sql": sql})
                assert not r.is_error and "| 5 |" in text(r), text(r)

        anyio.run(main)
        assert len([s for s in loads if "ngram_count" in s]) == 1, loads
        release.set()
    finally:
        service.close()
