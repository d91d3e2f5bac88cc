"""Typed options: one dataclass per capability plus :class:`CoreOptions`, every default in one place.

An option is a dataclass field made with :func:`option`, which records its help text, its CLI flag
and its choices. From these fields:

* the CLI builds its ``lakeql index`` flags (:func:`add_arguments`) and turns parsed arguments back into
  dataclasses (:func:`from_namespace`): no module reads argparse objects;
* the Python API maps keyword arguments onto them (:func:`IndexOptions.from_kwargs`):
  ``lakeql.index(lake, embed=["t.c"], embed_method="sign")``.

Field names are unique across capabilities, so a keyword argument names exactly one option. Nothing
heavy is imported here.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lakeql.errors import LakeqlError


def option(default: Any, help: str, *, flag: str | None = None, choices: Sequence[Any] | None = None,
           metavar: str | None = None, repeat: bool = False, cli: bool = True,
           bounds: tuple[float, float] | None = None) -> Any:
    """A dataclass field that is also a documented option.

    ``repeat``: a list option given once per value on the command line (``--embed A --embed B``).
    ``cli=False``: settable from Python only. ``bounds``: a number option's smallest and largest values
    (NaN and infinities are refused too).
    """
    meta = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None,
            "metavar": metavar, "repeat": repeat, "cli": cli, "bounds": bounds}
    if repeat or isinstance(default, list | dict):
        return field(default_factory=lambda d=default: list(d) if d is not None else [], metadata=meta)
    return field(default=default, metadata=meta)


def fields_of(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def validate(obj: Any) -> None:
    """Check the choices and list options of an options object; raise a :class:`LakeqlError` naming it."""
    for f in fields_of(type(obj)):
        value = getattr(obj, f.name)
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise LakeqlError(f"option {f.name} = {value!r} is not one of {', '.join(map(str, choices))}")
        if f.metadata.get("repeat") and value is not None and not isinstance(value, list | tuple):
            raise LakeqlError(f"option {f.name} takes a list, e.g. {f.name}=[{value!r}]")
        bounds = f.metadata.get("bounds")
        if bounds and value is not None:
            lo, hi = bounds
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                raise LakeqlError(f"{flag_of(f)} must be a number from {lo:g} to {hi:g}, got {value!r}")


@dataclass
class CoreOptions:
    """Options of the host: where the index goes, how it is built, how it reports."""

    index_dir: str | None = option(None, "where to write the indexes (default: LAKE/.lakeql)",
                                   metavar="DIR", cli=False)
    refresh: bool = option(False, "re-index only new or changed tables, rebuild missing or damaged "
                                  "indexes, drop removed ones", cli=False)
    verify: bool = option(False, "before building, read every index file and check its checksum (default: "
                                 "only files whose size, times or inode changed since the last check)",
                          cli=False)
    progress: bool = option(True, "show progress bars and stage lines", cli=False)
    capabilities: list[str] | None = option(None, "build only these capabilities (default: all)",
                                            cli=False)
    csv_encoding: list[str] = option([], "the encoding of CSV files that are not UTF-8, instead of the "
                                         "guessed one: ENC for every CSV table, TABLE=ENC for one "
                                         "(repeatable; any Python text codec: cp1251, latin-9, ...; 'auto' "
                                         "to detect again); kept by later builds", repeat=True, cli=False)
    wait: bool = option(True, "when another lakeql index runs on the lake, wait for it (else fail)",
                        cli=False)  # lakeql.store build lock (issue 12)
    # lakeql.engine (issue 10): where the builders' per-table/per-shard work runs
    engine: str = option("local", "where builders run their per-table/per-shard work: local (this "
                                  "machine) or ray (Ray tasks; needs lakeql[ray])", choices=("local", "ray"),
                         cli=False)
    ray_address: str | None = option(None, "Ray cluster to run on with engine 'ray' (ray://HOST:10001 or "
                                           "HOST:6379; default: start Ray on this machine)", cli=False)


@dataclass
class IndexOptions:
    """Every option of a build: the core's and one object per capability (``opts["joins"]``)."""

    core: CoreOptions = field(default_factory=CoreOptions)
    capabilities: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        """The options object of capability ``name`` (its defaults when it was not configured)."""
        if name not in self.capabilities:
            cls = option_classes().get(name)
            if cls is None:
                raise KeyError(f"no capability named {name!r}")
            self.capabilities[name] = cls()
        return self.capabilities[name]

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> IndexOptions:
        """Map keyword arguments onto the option fields that carry their names (unknown names fail)."""
        owners = field_owners()
        core_names = {f.name for f in fields_of(CoreOptions)}
        core: dict[str, Any] = {}
        per_cap: dict[str, dict[str, Any]] = {}
        for key, value in kwargs.items():
            if key in core_names:
                repeat = any(f.metadata.get("repeat") for f in fields_of(CoreOptions) if f.name == key)
                core[key] = as_list(value) if repeat else value
            elif key in owners:
                per_cap.setdefault(owners[key], {})[key] = value
            else:
                from lakeql.errors import did_you_mean

                known = sorted(core_names | set(owners))
                raise LakeqlError(f"unknown index option {key!r}{did_you_mean(key, known)}")
        caps = {}
        for name, cls_ in option_classes().items():
            values = per_cap.get(name, {})
            for f in fields_of(cls_):
                if f.metadata.get("repeat") and f.name in values:
                    values[f.name] = as_list(values[f.name])
            caps[name] = cls_(**values)
        out = cls(CoreOptions(**core), caps)
        out.validate()
        return out

    def validate(self) -> None:
        validate(self.core)
        for obj in self.capabilities.values():
            validate(obj)
        unbuilt_options(self)

    def to_dict(self) -> dict[str, Any]:
        """Every option value by field name (for reports and logs)."""
        out = dataclasses.asdict(self.core)
        for obj in self.capabilities.values():
            out.update(dataclasses.asdict(obj))
        return out


def unbuilt_options(opts: IndexOptions) -> None:
    """Refuse an option set for a capability that this build leaves out (``ngram=`` with
    ``capabilities=['joins']``, ``--embed`` with ``--only context``): the build would silently do none of
    what the option asks. An error rather than a warning: a warning scrolls past in a build's output and
    the index then lacks what was asked for, where the fix (name the capability, or drop the option) is
    one word and certain. An option left at its default is never refused, nor one that switches a part
    off (``joins=False``, ``--no-discovery``): what it asks is met when the capability is not built, and
    "add it to capabilities" would be the wrong fix. An unknown capability name is reported first (the
    typo is the error, not the options it would take)."""
    only = opts.core.capabilities
    if only is None:
        return
    from lakeql import plugins

    plugins.capabilities(only)  # raises on an unknown name ('ngram' for 'ngrams'), with did-you-mean
    wanted = set(only)
    for name, obj in opts.capabilities.items():
        if name in wanted:
            continue
        cls = type(obj)
        defaults = cls()
        given = [f for f in fields_of(cls) if getattr(obj, f.name) != getattr(defaults, f.name)
                 and not _switched_off(getattr(obj, f.name), getattr(defaults, f.name))]
        if not given:
            continue
        shown = ", ".join(f"{f.name}= ({flag_of(f)})" for f in given)
        listed = ", ".join(repr(c) for c in only)
        verb = "configures" if len(given) == 1 else "configure"
        raise LakeqlError(
            f"{shown} {verb} the {name!r} capability, which this build leaves out "
            f"(capabilities=[{listed}], --only {' --only '.join(only)}): add {name!r} to capabilities "
            f"(--only {name}), or drop {'it' if len(given) == 1 else 'them'}")


def _switched_off(value: Any, default: Any) -> bool:
    """Whether an option turns off a part that is on by default (``joins=False``, ``--no-schemas``)."""
    return default is True and value is False


def option_classes() -> dict[str, type]:
    """``{capability name: options dataclass}`` for every installed capability."""
    from lakeql import plugins

    return {m.NAME: m.OPTIONS for m in plugins.capabilities() if hasattr(m, "OPTIONS")}


def field_owners() -> dict[str, str]:
    """``{field name: capability name}``; a name used by two capabilities is a packaging bug."""
    owners: dict[str, str] = {}
    for name, cls in option_classes().items():
        for f in fields_of(cls):
            if f.name in owners:
                raise TypeError(f"option {f.name!r} is defined by both {owners[f.name]} and {name}")
            owners[f.name] = name
    return owners


# ----------------------------------------------------------------------------- argparse bridge
def add_arguments(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """Add one flag per CLI field of ``cls`` (defaults shown in the help come from the dataclass)."""
    group = parser.add_argument_group(title) if title else parser
    for f in fields_of(cls):
        if not f.metadata.get("cli", True):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        kw: dict[str, Any] = {"dest": f.name, "help": _help(f, default)}
        if f.metadata.get("metavar"):
            kw["metavar"] = f.metadata["metavar"]
        if f.metadata.get("repeat"):
            kw.update(action="append", default=None)
        elif isinstance(default, bool):
            kw.update(action=argparse.BooleanOptionalAction, default=default)
            kw.pop("metavar", None)
        else:
            kw["default"] = default
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            if isinstance(default, int | float) and not isinstance(default, bool):
                kw["type"] = type(default)
        group.add_argument(flag_of(f), **kw)


def _help(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata["help"]
    if default not in (None, [], False) and not f.metadata.get("repeat"):
        text += f" (default: {default})"
    return text


def from_namespace(ns: argparse.Namespace, core: Mapping[str, Any] | None = None) -> IndexOptions:
    """Turn parsed ``lakeql index`` arguments into :class:`IndexOptions` (the only argparse reader)."""
    caps: dict[str, Any] = {}
    for name, cls in option_classes().items():
        values = {}
        for f in fields_of(cls):
            if hasattr(ns, f.name):
                value = getattr(ns, f.name)
                values[f.name] = as_list(value) if f.metadata.get("repeat") else value
        caps[name] = cls(**values)
    out = IndexOptions(CoreOptions(**dict(core or {})), caps)
    out.validate()
    return out


def as_list(value: str | Iterable[str] | None) -> list[str]:
    """Accept one string or an iterable of strings (``embed='t.c'`` or ``embed=['t.c']``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
