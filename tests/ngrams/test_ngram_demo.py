"""The n-gram part of ``lakeql demo`` runs on the sample lake and prints real answers.

The hook is called directly on an index of python.functions.docstring (what the demo builds for this
capability): the whole ``run_demo`` also embeds a column, which needs the vectors capability and the
embedding model, and this folder runs with the n-gram capability alone.
"""

from __future__ import annotations

import io

from ngramutil import build


def test_demo_prints_ngram_examples(tmp_path):
    from lakeql.connection import open_lake
    from lakeql.demo import SAMPLE_LAKE
    from lakeql.ngrams import demo

    build(SAMPLE_LAKE, tmp_path / "idx", "python.functions.docstring")
    con, ctx = open_lake(SAMPLE_LAKE, index_dir=tmp_path / "idx")
    out = io.StringIO()
    demo(con, ctx, out)
    text = out.getvalue()
    assert "ngram_search('python.functions', 'docstring', 'file descriptor', k := 3)" in text
    assert "socket.detach" in text  # the row with the most occurrences
    assert "ngram_next(" in text and "unit := 'word'" in text and "current" in text  # 'Return the current'
    assert "ngram_longest(" in text and "exist raise" in text  # the longest suffix that occurs
