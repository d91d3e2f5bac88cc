"""Automatic domains for flat lakes: capped size, coherent clusters, stable re-assignment."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from lakeql.catalog import Catalog
from lakeql.context import partition
from lakeql.context.generate import generate
from lakeql.lake import discover

from .conftest import spider_lake


@pytest.fixture(scope="module")
def spider_docs(spider_dbs):
    names = sorted(spider_dbs)[:60]
    docs, truth = [], []
    for db in names:
        for t, cols in spider_dbs[db]:
            docs.append((f"{db}__{t}", [c for c, _ in cols]))
            truth.append(db)
    return docs, truth


@pytest.mark.parametrize(("cap", "min_intact"), [(10, 0.45), (40, 0.6), (250, 0.6)])
def test_domains_are_capped_named_and_coherent(spider_docs, cap, min_intact):
    docs, truth = spider_docs
    labels = partition.partition(docs, cap)
    sizes = Counter(labels)
    assert max(sizes.values()) <= cap
    assert all(name and name.replace("_", "").isalnum() for name in sizes)
    by_db = defaultdict(set)
    for lab, db in zip(labels, truth, strict=True):
        by_db[db].add(lab)
    intact = sum(len(v) == 1 for v in by_db.values()) / len(by_db)
    assert intact >= min_intact, intact  # most databases land whole in one domain
    assert labels == partition.partition(docs, cap)  # deterministic


def test_assign_keeps_previous_domains(spider_docs):
    docs, _ = spider_docs
    labels = partition.partition(docs, 40)
    prev = list(labels)
    prev[0] = None  # a new table
    again = partition.assign(docs, prev, 40)
    assert again[1:] == labels[1:]
    assert again[0] in set(labels)


def test_flat_lake_gets_automatic_domains(tmp_path, spider_dbs):
    names = sorted(spider_dbs)[:16]
    root = spider_lake(tmp_path / "lake", spider_dbs, names, flat=True)
    lake = discover(root)
    n = len(lake.tables)
    out = tmp_path / "out"
    res = generate(lake, Catalog.open(lake, None), out, "yaml", cap=10)
    assert res.domains >= -(-n // 10)
    folders = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert all(len([f for f in p.iterdir() if f.suffix == ".yaml"]) <= 10 for p in folders)
    assert "main" not in {p.name for p in folders}
    # the flat tables stay 'main.<name>' in SQL, whatever their schema-file domain
    text = next(folders[0].glob("*.yaml")).read_text()
    assert "table: main." in text
    # re-running does not move any file
    again = generate(discover(root), Catalog.open(discover(root), None), out, "yaml", cap=10)
    assert again.written == 0 and again.removed == 0


def test_assign_repartitions_when_a_domain_outgrew_the_cap(spider_docs):
    docs, _ = spider_docs
    again = partition.assign(docs, ["main"] * len(docs), 40)  # one flat domain, now over the cap
    assert max(Counter(again).values()) <= 40 and "main" not in again
