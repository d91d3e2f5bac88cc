"""``lakeql demo`` runs the n-gram examples on the sample lake without errors."""

from __future__ import annotations

import io


def test_demo_prints_ngram_examples(tmp_path):
    from lakeql.demo import run_demo

    out = io.StringIO()
    assert run_demo(keep=str(tmp_path / "demo"), out=out) == 0
    text = out.getvalue()
    assert "demo failed" not in text
    assert "ngram_search('python.functions', 'docstring', 'file descriptor', k := 3)" in text
    assert "socket.detach" in text  # the row with the most occurrences
    assert "ngram_next(" in text
