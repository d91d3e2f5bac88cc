"""`lakeql demo`, the quick start's main job, end to end on the bundled sample lake."""

from __future__ import annotations

import io

from lakeql.demo import run_demo


def test_demo_runs_every_capability() -> None:
    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    assert "failed" not in text, text
    expected = [
        "python.functions │      4307",            # the catalog
        "JetBlue Airways",                          # plain SQL over the lake
        "joinable('flights.flights', 'origin'",     # joins: the referenced key first
        "│ flights.airports │ faa",
        "semantic_search('python.modules'",         # vectors
        "│ csv ",
        "ngram_count('python.functions'",           # n-grams
        "check_sql(",                               # context
        "unknown column 'carier'",
        "schema_context(",
    ]
    for needle in expected:
        assert needle in text, f"{needle!r} missing from the demo output:\n{text}"
