"""Exact n-gram (substring) search over text columns with a compressed, sharded FM-index.

``lakeql index LAKE --ngram TABLE.COLUMN`` builds the index; SQL gets ``ngram_count``, ``ngram_rows``,
``ngram_search`` and ``ngram_next`` (see docs/ngrams.md). This module imports nothing heavy: numpy,
numba and pyarrow load inside the functions, so ``lakeql --help`` stays instant.
"""

from __future__ import annotations

import argparse
from typing import Any

NAME = "ngrams"


def add_index_options(parser: argparse.ArgumentParser) -> None:
    """The ``lakeql index`` flags of this capability."""
    g = parser.add_argument_group("exact n-gram search (FM-index)")
    g.add_argument("--ngram", action="append", metavar="TABLE.COLUMN", default=None,
                   help="build an exact substring index of this text column (repeatable)")
    g.add_argument("--ngram-case", choices=["sensitive", "insensitive"], default="sensitive",
                   help="insensitive: index an ASCII-lower-cased copy (default: sensitive)")
    g.add_argument("--ngram-mode", choices=["compressed", "fast"], default="compressed",
                   help="fast: also keep the full suffix array (about 4 bytes per text byte) for "
                        "instant row lookups (default: compressed, about 0.4x the text)")
    g.add_argument("--ngram-jobs", type=int, default=0, metavar="N",
                   help="shards built in parallel (default: number of CPUs)")
    g.add_argument("--ngram-shard-mb", type=float, default=64, metavar="N",
                   help="text per shard in MB (default 64)")


def build(ctx: Any) -> None:
    """Build the n-gram indexes requested with --ngram (and refresh existing ones)."""
    from lakeql.ngrams.builder import build as _build

    _build(ctx)


def register(con: Any, ctx: Any) -> None:
    """Bind the n-gram UDFs and run udfs/ngrams.sql."""
    from lakeql.ngrams.sql import register as _register

    _register(con, ctx)


def demo(con: Any, ctx: Any, out: Any) -> None:
    """Worked examples on the sample lake (python.functions.docstring is indexed by the demo)."""
    from lakeql.ngrams.sql import demo as _demo

    _demo(con, ctx, out)
