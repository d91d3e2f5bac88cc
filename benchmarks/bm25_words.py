"""hybrid_search's keyword side, BM25 tokenizer version 1 (``\\w+``) against version 2 (Unicode words, CJK
pairs, case folding): nDCG@10 / Recall@10 of BM25 alone and the hybrid fusions on the BEIR subsets of
``benchmarks/vectors.py`` (its ``hybrid_rows``, run once per version in the same process).

    LAKEQL_SHARED_DATA=/work/shared/data python benchmarks/bm25_words.py [--work DIR]

``--work``: where ``benchmarks/vectors.py`` caches the document embeddings (default its own).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    import vectors as vb

    from lakeql.vectors import bm25

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.work:
        vb.WORK = args.work
    build, load = bm25.build, bm25.BM25Index.load
    rows = {}
    for ds in (vb.load_ir("dbpedia"), vb.load_ir("msmarco")):
        for version in (1, 2):
            bm25.build = functools.partial(build, version=version)
            bm25.BM25Index.load = functools.partial(load, version=version)
            for r in vb.hybrid_rows(ds):
                rows[(r["dataset"], r["method"], version)] = (r["ndcg"], r["recall"])
    bm25.build, bm25.BM25Index.load = build, load
    print("| dataset | method | nDCG@10 v1 | v2 | diff | Recall@10 v1 | v2 | diff |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for (name, method, version), (nd, rc) in rows.items():
        if version != 1:
            continue
        nd2, rc2 = rows[(name, method, 2)]
        worst = max(worst, abs(nd2 - nd), abs(rc2 - rc))
        print(
            f"| {name} | {method} | {nd:.4f} | {nd2:.4f} | {nd2 - nd:+.4f} | {rc:.4f} | {rc2:.4f} | "
            f"{rc2 - rc:+.4f} |"
        )
    print(f"\nlargest difference: {worst:.4f} (target: within 0.01)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
