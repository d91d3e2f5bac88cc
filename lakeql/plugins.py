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
    """Every capability's implementation of hook ``name``.

    A submodule with the same name as a hook (``lakeql.x.build``) replaces the package attribute once
    imported; that is a packaging bug, reported here instead of a puzzling "module is not callable".
    """
    out = []
    for m in capabilities():
        fn = getattr(m, name, None)
        if fn is None:
            continue
        if isinstance(fn, ModuleType):
            raise TypeError(f"{m.__name__}.{name} is a submodule, which hides the '{name}' hook: rename "
                            f"the module {fn.__name__} (e.g. to {m.__name__}.{name}er)")
        out.append((m, fn))
    return out
