"""The one hook through which capabilities plug into lakeql (as datasette plugins do).

A capability is a subpackage listed in :data:`CAPABILITIES` whose ``__init__`` (importing nothing heavy)
may define:

``NAME``                                the capability's name ('vectors', 'ngrams', ...)
``add_index_options(parser)``           add its ``lakeql index`` flags (e.g. ``--embed``)
``add_commands(subparsers)``            add CLI subcommands; each sets ``func(args) -> int``
``build(ctx: BuildContext)``            build or refresh its indexes during ``lakeql index``
``register(con, ctx: LakeContext)``     bind its Python UDFs and run its ``udfs/<NAME>.sql``
``demo(con, ctx, out)``                 print one worked example for ``lakeql demo``

Capabilities never import each other: they meet in the catalog and in SQL.
"""

from __future__ import annotations

import importlib
from types import ModuleType

CAPABILITIES = ("lakeql.joins", "lakeql.vectors", "lakeql.ngrams", "lakeql.context")


def capabilities() -> list[ModuleType]:
    """The installed capability modules, in build order (joins before context, which reads it)."""
    mods = []
    for name in CAPABILITIES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return mods


def hook(name: str) -> list[tuple[ModuleType, object]]:
    """Every capability's implementation of hook ``name``."""
    return [(m, getattr(m, name)) for m in capabilities() if hasattr(m, name)]
