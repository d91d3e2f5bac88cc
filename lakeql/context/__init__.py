"""The ``context`` capability: schema files for agents, question -> files retrieval, and SQL checking.

* ``lakeql schemas LAKE --out DIR --format yaml|md|json|toon`` (also run by ``lakeql index`` into
  ``INDEX_DIR/schemas``): ``INDEX.md``, one folder per domain, one file per table (see
  :mod:`lakeql.context.generate`).
* ``schema_context(question, k := 3)``: the files to open for a question (:mod:`.retrieve`).
* ``check_sql(sql, schema := NULL)`` and ``lakeql check``: problems in SQL text (:mod:`.check`).

Nothing heavy is imported here: ``lakeql --help`` stays instant.
"""

from __future__ import annotations

NAME = "context"
KIND = "schemas"


def add_index_options(parser) -> None:
    g = parser.add_argument_group("schema files (context)")
    g.add_argument("--schemas-format", default="yaml", choices=["yaml", "md", "json", "toon"],
                   help="format of the table files written into INDEX_DIR/schemas (default yaml)")
    g.add_argument("--no-schemas", action="store_true", help="do not write schema files")
    g.add_argument("--no-schemas-embed", action="store_true",
                   help="skip embedding the schema files at index time (schema_context then embeds "
                        "them on first use)")
    g.add_argument("--schemas-domain-size", type=int, default=250, metavar="N",
                   help="split flat lakes (and bigger domains) into domains of at most N tables")


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
