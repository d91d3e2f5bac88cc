"""The ``context`` capability: schema files for agents, question -> files retrieval, and SQL checking.

* ``lakeql schemas LAKE --out DIR --format yaml|md|json|toon`` (also run by ``lakeql index`` into
  ``INDEX_DIR/schemas``): ``INDEX.md``, one folder per domain, one file per table (see
  :mod:`lakeql.context.generate`).
* ``schema_context(question, k := 3)``: the files to open for a question (:mod:`.retrieve`).
* ``check_sql(sql, schema := NULL)`` and ``lakeql check``: problems in SQL text (:mod:`.check`).

Nothing heavy is imported here: ``lakeql --help`` stays instant.
"""

from __future__ import annotations

from lakeql.context.options import ContextOptions

NAME = "context"
KIND = "schemas"
OPTIONS = ContextOptions
PROVIDES = (KIND,)
#: built after these (join hints from the join graph, per-column index capabilities; all optional)
REQUIRES = ("join_graph", "embed", "ngram")


def add_commands(subparsers) -> None:
    from lakeql.context.cli import add_commands as add

    add(subparsers)


def build(ctx) -> None:
    from lakeql.context.index_build import build as run

    run(ctx)


def register(con, ctx) -> None:
    from lakeql.context.sqlfns import register as run

    run(con, ctx)


def demo(con, ctx, out) -> None:
    from lakeql.context.sqlfns import demo as run

    run(con, ctx, out)
