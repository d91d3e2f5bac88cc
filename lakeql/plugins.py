"""The one hook through which capabilities plug into lakeql (as datasette plugins do).

A capability is a subpackage listed in :data:`CAPABILITIES` whose ``__init__`` (importing nothing heavy)
may define:

``NAME``                                the capability's name ('vectors', 'ngrams', ...)
``OPTIONS``                             its options dataclass (see :mod:`lakeql.options`): the
                                        ``lakeql index`` flags and ``lakeql.index()`` keywords
``PROVIDES`` / ``REQUIRES``             manifest kinds it makes / reads if present: the host builds
                                        a capability after those that provide what it requires
``SQL_TEMPLATES``                       ``{name: fn}`` SQL generators for its ``udfs/<NAME>.sql``
``add_commands(subparsers)``            add CLI subcommands; each sets ``func(args) -> int``
``check_targets(ctx: BuildContext)``    check its named targets (``--embed T.C``) against the catalog;
                                        every capability's check runs before any builds
``build(ctx: BuildContext)``            build or refresh its indexes during ``lakeql index``
``register(con, ctx: LakeContext)``     bind its Python UDFs; the host then runs ``udfs/<NAME>.sql``
``demo(con, ctx, out)``                 print one worked example for ``lakeql demo``

Capabilities never import each other: they meet in the catalog, the store's manifest and in SQL. A new
capability is one subpackage, one options class and one SQL file, listed in :data:`CAPABILITIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType

CAPABILITIES = ("lakeql.joins", "lakeql.vectors", "lakeql.ngrams", "lakeql.context")


def capabilities(only: Iterable[str] | None = None) -> list[ModuleType]:
    """The installed capability modules in build order (a provider before those requiring it).

    ``only``: capability names to keep (``['joins', 'context']``); an unknown name is an error.
    """
    mods = []
    for name in CAPABILITIES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    if only is not None:
        wanted = [only] if isinstance(only, str) else list(only)  # 'joins': one name, not letters
        names = {getattr(m, "NAME", m.__name__) for m in mods}
        unknown = [w for w in wanted if w not in names]
        if unknown:
            from lakeql.errors import LakeqlError, did_you_mean

            raise LakeqlError(f"unknown capability {unknown[0]!r}{did_you_mean(unknown[0], names)}: "
                              f"choose from {', '.join(sorted(names))}")
        mods = [m for m in mods if getattr(m, "NAME", "") in wanted]
    return build_order(mods)


def build_order(mods: list[ModuleType]) -> list[ModuleType]:
    """Order capabilities so that each comes after the providers of what it ``REQUIRES`` (stable)."""
    provider = {kind: m for m in mods for kind in getattr(m, "PROVIDES", ())}
    done: list[ModuleType] = []
    visiting: set[str] = set()

    def visit(m: ModuleType) -> None:
        if m in done:
            return
        if m.__name__ in visiting:
            raise TypeError(f"capabilities require each other in a cycle at {m.__name__}")
        visiting.add(m.__name__)
        for kind in getattr(m, "REQUIRES", ()):
            p = provider.get(kind)
            if p is not None and p is not m:
                visit(p)
        visiting.discard(m.__name__)
        done.append(m)

    for m in mods:
        visit(m)
    return done


def hook(name: str, only: Iterable[str] | None = None) -> list[tuple[ModuleType, object]]:
    """Every capability's implementation of hook ``name``.

    A submodule with the same name as a hook (``lakeql.x.build``) replaces the package attribute once
    imported; that is a packaging bug, reported here instead of a puzzling "module is not callable".
    """
    out = []
    for m in capabilities(only):
        fn = getattr(m, name, None)
        if fn is None:
            continue
        if isinstance(fn, ModuleType):
            raise TypeError(f"{m.__name__}.{name} is a submodule, which hides the '{name}' hook: rename "
                            f"the module {fn.__name__} (e.g. to {m.__name__}.{name}er)")
        out.append((m, fn))
    return out
