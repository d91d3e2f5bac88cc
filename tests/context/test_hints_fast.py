"""The fast paths of the join hints (Arrow filters, the first MAX_CHECKS composite candidates found by
visiting edges strongest first) equal the plain Python definitions on random join graphs: ties, NaN,
NULL and zero scores, mixed-case and same-named columns of other types, edges to tables not in the lake."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeql.context import generate, hints


def _reference_candidates(edges, lake, catalog):
    """_candidates as written before the fast path: every edge, every column of the source table."""
    out = {}
    for e in edges:
        if (e.get("containment") or 0.0) < hints.MIN_CONTAINMENT:
            continue
        if (e.get("candidate_uniqueness") or 0.0) >= hints.SINGLE_UNIQUE:
            continue
        a, b = e["table_name"], e["candidate_table"]
        if a == b:
            continue
        acols = {c.column_name: c.type for c in catalog.columns(lake.tables[a])}
        order = {n: i for i, n in enumerate(acols)}
        bcols = {c.column_name.lower(): (c.column_name, c.type) for c in catalog.columns(lake.tables[b])}
        for c2, t2 in acols.items():
            if c2 == e["column_name"] or c2.lower() not in bcols:
                continue
            d2, u2 = bcols[c2.lower()]
            if d2 == e["candidate_column"] or u2 != t2:
                continue
            pair = sorted([(e["column_name"], e["candidate_column"]), (c2, d2)], key=lambda p: order[p[0]])
            key = (a, b, (pair[0][0], pair[1][0]), (pair[0][1], pair[1][1]))
            prio = float(e.get("score") or 0.0) + float(e.get("containment") or 0.0)
            out[key] = max(out.get(key, 0.0), prio)
    return sorted(((p, *k) for k, p in out.items()), key=lambda x: (-x[0], x[1:]))


def _reference_hints(rows, lake, per_column=3):
    found = {}
    for r in rows:
        if r["table_name"] not in lake.tables or r["candidate_table"] not in lake.tables:
            continue
        if (r.get("score") or 0.0) < generate.MIN_HINT_SCORE or r.get("candidate_uniqueness", 1.0) < (
            generate.MIN_HINT_UNIQUE
        ):
            continue
        found.setdefault((r["table_name"], r["column_name"]), []).append(
            (-(r["score"] or 0.0), f"-> {r['candidate_table']}.{r['candidate_column']}")
        )
    return {k: [s for _, s in sorted(set(v))[:per_column]] for k, v in found.items()}


def _graph(seed: int, tmp_path):
    rnd = random.Random(seed)
    names = ["id", "ID", "code", "Code", "year", "name", "origin", "dest", "x"]
    types = ["BIGINT", "VARCHAR", "DOUBLE"]
    tables = [f"d{rnd.randint(0, 3)}.t{i}" for i in range(rnd.randint(3, 25))]
    tables = sorted(set(tables))
    columns = {}
    for t in tables:
        cols = rnd.sample(names, rnd.randint(1, len(names)))
        columns[t] = [SimpleNamespace(column_name=c, type=rnd.choice(types)) for c in cols]
    lake = SimpleNamespace(tables={t: t for t in tables if rnd.random() < 0.85})
    catalog = SimpleNamespace(columns=lambda t: columns[t])
    values = [0.0, 0.5, 0.8, 0.85, 0.9, 0.95, 1.0, float("nan"), None]
    rows = []
    for _ in range(rnd.randint(0, 300)):
        a, b = rnd.choice(tables), rnd.choice(tables)
        rows.append(
            {
                "table_name": a,
                "column_name": rnd.choice(columns[a]).column_name,
                "candidate_table": b,
                "candidate_column": rnd.choice(columns[b]).column_name,
                "score": rnd.choice(values),
                "containment": rnd.choice(values),
                "candidate_uniqueness": rnd.choice([v for v in values if v is not None]),
                "method": "value",
            }
        )
    return _finish(lake, catalog, rows, tmp_path)


SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("column_name", pa.string()),
        ("candidate_table", pa.string()),
        ("candidate_column", pa.string()),
        ("score", pa.float64()),
        ("containment", pa.float64()),
        ("candidate_uniqueness", pa.float64()),
        ("method", pa.string()),
    ]
)


def _write(rows, tmp_path):
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp_path / "edges.parquet")


def _finish(lake, catalog, rows, tmp_path):
    _write(rows, tmp_path)
    store = SimpleNamespace(root=tmp_path, find=lambda kind: SimpleNamespace(path="edges.parquet"))
    return lake, catalog, store, rows


def _same(x, y):
    """Equal lists of candidates (NaN priorities equal each other)."""
    assert len(x) == len(y)
    for p, q in zip(x, y, strict=True):
        assert p[1:] == q[1:]
        assert p[0] == q[0] or (math.isnan(p[0]) and math.isnan(q[0]))


@pytest.mark.parametrize("seed", range(40))
def test_fast_hints_equal_the_plain_definitions(seed, tmp_path):
    lake, catalog, store, rows = _graph(seed, tmp_path)
    in_lake = [r for r in rows if r["table_name"] in lake.tables and r["candidate_table"] in lake.tables]
    full = _reference_candidates(in_lake, lake, catalog)
    _same(hints._candidates(in_lake, lake, catalog), full)
    edges = hints.candidate_edges(store, lake)
    _same(hints._candidates(edges, lake, catalog), full)
    for limit in (1, 2, 5, 64):
        _same(hints._candidates(edges, lake, catalog, limit), full[:limit])
    # hints: NaN scores have no order (sorted() of NaN keys depends on the input order), so none here
    rows = [
        dict(r, score=0.7 if r["score"] is not None and math.isnan(r["score"]) else r["score"]) for r in rows
    ]
    _write(rows, tmp_path)
    assert generate.read_join_hints(store, lake) == _reference_hints(rows, lake)
