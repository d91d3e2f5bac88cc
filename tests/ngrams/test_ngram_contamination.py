"""Contamination check: GSM8K questions planted (whole and in part) into real docstrings are all found
with ngram_count over sliding 10-word windows, and no other question is flagged."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
from ngramutil import build
from testutil import SAMPLE_LAKE, shared_data

import lakeql

WINDOW_SQL = """
WITH q AS (SELECT qid, string_split(question, ' ') AS words FROM probe),
w AS (SELECT qid, array_to_string(list_slice(words, i, i + 9), ' ') AS win
      FROM (SELECT qid, words, unnest(range(1, len(words) - 8)) AS i FROM q))
SELECT qid, count(*) FILTER (WHERE ngram_count('corpus.docs', 'text', win) > 0) AS hit_windows,
       count(*) AS windows
FROM w GROUP BY qid HAVING hit_windows > 0 ORDER BY qid
"""


def test_planted_gsm8k_questions_are_found(tmp_path):
    path = shared_data("gsm8k", "test.jsonl")
    questions = [json.loads(line)["question"] for line in path.read_text().splitlines()[:400]]
    docs = pq.read_table(SAMPLE_LAKE / "python" / "functions.parquet", columns=["docstring"]).column(0)
    texts = [t or "" for t in docs.to_pylist()]
    rng = random.Random(7)
    planted = rng.sample(range(len(questions)), 12)
    where = rng.sample(range(len(texts)), 12)
    for n, (qid, row) in enumerate(zip(planted, where, strict=True)):
        q = questions[qid]
        if n % 2:  # in part: 14 consecutive words from the middle
            words = q.split(" ")
            q = " ".join(words[3:17])
        cut = len(texts[row]) // 2
        texts[row] = texts[row][:cut] + " " + q + " " + texts[row][cut:]
    lake = tmp_path / "lake"
    (lake / "corpus").mkdir(parents=True)
    pq.write_table(pa.table({"text": texts}), lake / "corpus" / "docs.parquet")
    build(lake, tmp_path / "idx", "corpus.docs.text")
    con = lakeql.connect(lake, index_dir=tmp_path / "idx")
    con.execute("CREATE TABLE probe AS SELECT generate_subscripts(?::VARCHAR[], 1) - 1 AS qid, "
                "unnest(?::VARCHAR[]) AS question", [questions, questions])
    flagged = con.execute(WINDOW_SQL).fetchall()
    assert sorted(q for q, _, _ in flagged) == sorted(planted)
    for qid, hits, windows in flagged:
        if planted.index(qid) % 2 == 0:  # verbatim: every window is found
            assert hits == windows
        else:  # 14 words planted: the 5 windows inside them
            assert hits >= 5
