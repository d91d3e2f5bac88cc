"""Typed options: one dataclass per capability, CLI flags and Python keywords generated from them."""

from __future__ import annotations

import dataclasses

import pytest

import lakeql
from lakeql import plugins
from lakeql.cli import build_parser, index_options
from lakeql.indexcache import IndexCache
from lakeql.options import IndexOptions, field_owners, fields_of, flag_of


def test_every_capability_has_options_and_names_are_unique() -> None:
    owners = field_owners()  # raises on a duplicate name
    assert {"embed", "ngram", "joins", "schemas_format"} <= set(owners)
    assert {m.NAME for m in plugins.capabilities()} == set(owners.values())


@pytest.mark.parametrize("argv, cap, field, value", [
    (["--no-joins"], "joins", "joins", False),
    (["--joins-min-score", "0.8"], "joins", "joins_min_score", 0.8),
    (["--embed", "a.b.c"], "vectors", "embed", ["a.b.c"]),
    (["--ngram", "x.y", "--ngram", "x.z"], "ngrams", "ngram", ["x.y", "x.z"]),
    (["--ngram-case", "insensitive"], "ngrams", "ngram_case", "insensitive"),
    (["--schemas-format", "md"], "context", "schemas_format", "md"),
    (["--no-schemas-embed"], "context", "schemas_embed", False),
    ([], "context", "schemas_domain_size", 250),
])
def test_cli_flags_become_typed_options(argv, cap, field, value) -> None:
    args = build_parser().parse_args(["index", "LAKE", *argv])
    assert getattr(index_options(args)[cap], field) == value


def test_cli_and_python_defaults_agree() -> None:
    from_cli = index_options(build_parser().parse_args(["index", "LAKE"]))
    from_py = IndexOptions.from_kwargs()
    for name, cls in ((m.NAME, m.OPTIONS) for m in plugins.capabilities()):
        assert dataclasses.asdict(from_cli[name]) == dataclasses.asdict(from_py[name]), name
        for f in fields_of(cls):
            assert f.metadata["help"] and flag_of(f).startswith("--")


@pytest.mark.parametrize("kwargs, message", [
    ({"embedd": ["t.c"]}, "unknown index option 'embedd'.*did you mean embed"),
    ({"embed_method": "nope"}, "embed_method = 'nope' is not one of"),
    ({"ngram_case": 3}, "ngram_case = 3 is not one of"),
])
def test_bad_python_options_are_clear(kwargs, message) -> None:
    with pytest.raises(lakeql.LakeqlError, match=message):
        IndexOptions.from_kwargs(**kwargs)


def test_one_string_is_a_list_of_one() -> None:
    assert IndexOptions.from_kwargs(embed="a.b.c")["vectors"].embed == ["a.b.c"]


def test_build_order_follows_requires() -> None:
    names = [m.NAME for m in plugins.capabilities()]
    assert names.index("joins") < names.index("context")
    assert [m.NAME for m in plugins.capabilities(["context", "joins"])] == ["joins", "context"]


def test_index_cache_evicts_least_recently_used_and_older_builds() -> None:
    class Blob:
        def __init__(self, n: int) -> None:
            self.nbytes = n

    cache = IndexCache(budget=100)
    a = cache.get_or_load(("k", "t", "a", "1"), lambda: Blob(60))
    cache.get_or_load(("k", "t", "b", "1"), lambda: Blob(30))
    assert cache.get_or_load(("k", "t", "a", "1"), lambda: Blob(1)) is a  # a hit: not reloaded
    cache.get_or_load(("k", "t", "c", "1"), lambda: Blob(30))  # over budget: b (least recent) goes
    assert len(cache) == 2 and cache.total_bytes == 90
    cache.get_or_load(("k", "t", "a", "2"), lambda: Blob(10))  # a rebuilt: its old version goes at once
    assert cache.total_bytes == 40
