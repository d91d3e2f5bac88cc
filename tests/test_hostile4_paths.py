"""File names and lake folders holding glob characters (benchmarks/results/hostile4.md).

DuckDB reads every path it is given as a glob pattern: a table file ``star*.parquet`` also read
``starbig.parquet``, and a lake at ``lk[1]`` read the files (and the index) of a folder ``lk1`` beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import lakeql
from lakeql.cli import main


def index(lake: Path, *args: str) -> None:
    assert main(["index", str(lake), "--quiet", *args]) == 0


def test_file_names_with_glob_characters_read_only_themselves(tmp_path):
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2, 3]}), lake / "d" / "star*.parquet")
    pq.write_table(pa.table({"id": list(range(100))}), lake / "d" / "starbig.parquet")
    pq.write_table(pa.table({"id": [1, 2]}), lake / "d" / "q?.parquet")
    pq.write_table(pa.table({"id": list(range(50))}), lake / "d" / "qX.parquet")
    pq.write_table(pa.table({"id": [7]}), lake / "d" / "b[1].parquet")
    pq.write_table(pa.table({"id": list(range(20))}), lake / "d" / "b1.parquet")
    index(lake, "--only", "joins", "--no-joins-semantic", "--no-discovery")
    con = lakeql.connect(lake)
    counts = {
        t: con.execute(f'SELECT count(*) FROM d."{t}"').fetchone()[0]
        for t in ("star*", "starbig", "q?", "qX", "b[1]", "b1")
    }
    assert counts == {"star*": 3, "starbig": 100, "q?": 2, "qX": 50, "b[1]": 1, "b1": 20}
    rows = dict(con.execute("SELECT table_name, row_count FROM lakeql_tables()").fetchall())
    assert rows["d.star*"] == 3 and rows["d.q?"] == 2 and rows["d.b[1]"] == 1


def test_a_lake_folder_with_brackets_never_reads_its_neighbour(tmp_path):
    lake = tmp_path / "lk[1]"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"k": ["a", "b", "c"]}), lake / "d" / "p.parquet")
    pq.write_table(pa.table({"k": ["a", "b", "c", "a"], "x": [1, 2, 3, 4]}), lake / "d" / "c.parquet")
    index(lake, "--only", "joins", "--no-joins-semantic", "--no-discovery")
    shutil.copytree(lake, tmp_path / "lk1")  # the folder the pattern lk[1] matches
    pq.write_table(pa.table({"k": ["z"]}), tmp_path / "lk1" / "d" / "p.parquet")
    edges = tmp_path / "lk1" / ".lakeql" / "joins" / "edges.parquet"
    pq.write_table(pq.read_table(edges).slice(0, 0), edges)
    con = lakeql.connect(lake)
    assert con.execute("SELECT count(*) FROM d.p").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM join_graph()").fetchone()[0] > 0
    assert con.execute("SELECT candidate_table FROM joinable('d.c', 'k', k := 1)").fetchone() == ("d.p",)


def test_mcp_serves_a_lake_folder_with_brackets(tmp_path):
    """With paths glob-escaped, the MCP server's allowed_directories (checked against the text DuckDB is
    given, the pattern) refused every read of a lake at 'lk[1]': 'Cannot access file .../lk[[]1]/...'."""
    from lakeql.mcp.service import LakeService

    lake = tmp_path / "lk[1]"
    (lake / "d").mkdir(parents=True)
    pq.write_table(pa.table({"k": ["a", "b", "c"]}), lake / "d" / "p.parquet")
    index(lake, "--only", "joins", "--no-joins-semantic", "--no-discovery")
    (tmp_path / "lk1" / "d").mkdir(parents=True)
    pq.write_table(pa.table({"k": ["z"]}), tmp_path / "lk1" / "d" / "p.parquet")
    service = LakeService(lake)
    try:
        assert "| 3 |" in service.query("SELECT count(*) AS n FROM d.p")
        assert "d.p" in service.query("SELECT table_name FROM lakeql_tables()")
    finally:
        service.close()
