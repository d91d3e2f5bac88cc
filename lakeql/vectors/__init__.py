"""vectors: semantic search over text columns, stored as 1-bit codes in Parquet, searched from SQL.

``lakeql index LAKE --embed TABLE.COLUMN`` embeds a text column (sentence-transformers or its int8 ONNX
export, offline default all-MiniLM-L6-v2) or takes a column of stored vectors as they are, binarizes it
(``sign``, ``median`` or ``rabitq``) and writes a code store; SQL ``semantic_search(table, column,
query)`` scans every code, rescores the candidates RaBitQ's error bound cannot rule out against an int8
tier and returns whole rows; ``hybrid_search`` fuses it with BM25. See docs/vectors.md.

Nothing heavy is imported here (``lakeql --help`` stays instant): submodules load on first use.
"""

from __future__ import annotations

from lakeql.vectors.options import VectorOptions

NAME = "vectors"
OPTIONS = VectorOptions
PROVIDES = ("embed",)


def check_targets(ctx) -> None:
    """Every ``--embed`` target must be a text or vector column of the catalog (before any build)."""
    specs = ctx.options["vectors"].embed
    if specs:
        from lakeql.vectors.columns import embed_column

        ctx.catalog.check_specs(specs, "--embed", lambda t, c: embed_column(ctx.catalog, t, c, "--embed"))


def build(ctx) -> None:
    if not ctx.options["vectors"].embed and not ctx.store.entries(PROVIDES[0]):
        return  # nothing asked for and nothing built before: no builder, model or Arrow imports (a refresh)
    from lakeql.vectors.builder import build as _build

    _build(ctx)


def register(con, ctx) -> None:
    from lakeql.vectors.sql import register as _register

    _register(con, ctx)


def demo(con, ctx, out) -> None:
    """Two worked examples on the sample lake (indexed with --embed python.modules.docstring)."""
    from lakeql.render import show

    show(con, "SELECT module, round(score, 3) AS score, left(docstring, 60) AS docstring\n"
              "FROM semantic_search('python.modules', 'docstring', 'read and write spreadsheet files', "
              "k := 5)", out, "Semantic search (1-bit RaBitQ codes, asymmetric scan + int8 rescoring)")
    show(con, "SELECT module, lines, round(score, 3) AS score\n"
              "FROM semantic_search('python.modules', 'docstring', 'send an email', k := 5,\n"
              "                     filter := 'lines > 500')", out,
         "Filter first, then search: still k rows")
