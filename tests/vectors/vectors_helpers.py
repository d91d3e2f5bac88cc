"""Helpers of the vectors tests: the test lake, a vectors-only build and connection."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "lakeql" / "sample_lake" / "python" / "functions.parquet"
N_REAL = 200
ODD = ("Zeichenkette \u00fcn\u00efc\u00f6d\u00e9 \U0001f40d \u200b \u0645\u0631\u062d\u0628\u0627 "
       "\u4e2d\u6587 e\u0301")


def make_lake(root: Path) -> Path:
    """Write the test lake under ``root``; returns the lake folder."""
    import duckdb

    lake = root / "lake"
    (lake / "python").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE f AS SELECT module, qualname, kind, signature, lineno, left(docstring, 200) AS docstring
        FROM read_parquet('{SAMPLE}') WHERE docstring IS NOT NULL AND length(trim(docstring)) > 0
        ORDER BY module, qualname LIMIT {N_REAL}""")
    bad = [("bad", "null_doc", None), ("bad", "empty_doc", ""), ("bad", "blank_doc", "   \n\t "),
           ("bad", "huge_doc", "read and write zip archives " * 40_000), ("bad", "odd_doc", ODD)]
    for mod, name, doc in bad:
        con.execute("INSERT INTO f VALUES (?, ?, 'function', '()', 0, ?)", [mod, name, doc])
    con.execute(f"COPY (SELECT * FROM f) TO '{lake / 'python' / 'functions.parquet'}' (FORMAT parquet)")
    con.close()
    return lake


def build(lake: Path, index_dir: Path, embed: list[str], **options) -> None:
    """Index ``lake`` with the vectors capability only, through the Python API."""
    import lakeql

    lakeql.index(lake, index_dir=index_dir, embed=embed, capabilities=["vectors"], progress=False,
                 **options)


def connect(lake: Path, index_dir: Path):
    """A DuckDB connection with the lake's views, the core functions and the vectors functions."""
    import lakeql

    return lakeql.connect(lake, index_dir=index_dir, capabilities=["vectors"])
