"""--refresh of an embed index whose BM25 words were cut by tokenizer 1 (benchmarks/results/leftovers.md).

Usage: PYTHONPATH=TREE python benchmarks/leftovers_bm25_refresh.py WORKDIR

The sample lake's python.functions docstrings in 4 Parquet files, embedded with --embed-bm25 as lakeql
wrote it before tokenizer 2 (``bm25: true``), then ``lakeql index --refresh`` with no table changed:
its seconds, and whether the codes files are byte-identical after it.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import duckdb

import lakeql
from lakeql.vectors import builder

SAMPLE = Path(lakeql.__file__).parent / "sample_lake" / "python" / "functions.parquet"


def main(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    lake = root / "lake"
    folder = lake / "python" / "functions"
    folder.mkdir(parents=True)
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet(?)", [str(SAMPLE)]).fetchone()[0]
    for i in range(4):
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{SAMPLE}') WHERE hash(qualname) % 4 = {i}) TO "
            f"'{folder / f'p{i}.parquet'}' (FORMAT parquet)"
        )
    idx = root / "idx"
    now = builder.bm25_version
    builder.bm25_version = lambda: True  # what lakeql wrote before tokenizer 2
    t = time.perf_counter()
    lakeql.index(
        lake,
        index_dir=idx,
        embed=["functions.docstring"],
        embed_bm25=True,
        capabilities=["vectors"],
        progress=False,
    )
    build_s = time.perf_counter() - t
    builder.bm25_version = now
    codes = {p.relative_to(idx).as_posix(): p.read_bytes() for p in (idx / "embed").rglob("codes.parquet")}
    t, c = time.perf_counter(), time.process_time()
    lakeql.index(lake, index_dir=idx, refresh=True, capabilities=["vectors"], progress=False)
    print(
        f"rows {n}; old-tokenizer build {build_s:.1f} s; refresh {time.perf_counter() - t:.1f} s wall "
        f"{time.process_time() - c:.1f} s cpu"
    )
    after = {p.relative_to(idx).as_posix(): p.read_bytes() for p in (idx / "embed").rglob("codes.parquet")}
    print("codes byte-identical:", codes == after, len(after), "shards")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
