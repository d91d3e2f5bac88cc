"""Exact n-gram (substring) search over text columns with a compressed, sharded FM-index.

``lakeql index LAKE --ngram TABLE.COLUMN`` builds the index; SQL gets ``ngram_count``, ``ngram_rows``,
``ngram_search`` and ``ngram_next`` (see docs/ngrams.md). This module imports nothing heavy: numpy,
numba and pyarrow load inside the functions, so ``lakeql --help`` stays instant.
"""

from __future__ import annotations

from typing import Any

from lakeql.ngrams.options import NgramOptions

NAME = "ngrams"
OPTIONS = NgramOptions
PROVIDES = ("ngram",)


def check_targets(ctx: Any) -> None:
    """Every ``--ngram`` target must be a text column of the catalog (before any build)."""
    specs = ctx.options["ngrams"].ngram
    if specs:
        ctx.catalog.check_specs(specs, "--ngram",
                                lambda t, c: ctx.catalog.text_column(t, c, "n-gram search"))


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
