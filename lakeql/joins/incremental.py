"""Refresh the join graph for the tables that changed, keeping every other column's edges.

The edges of a query column ``q`` (graph.py) are its best candidates among the columns that hold one of
``q``'s bottom ``PROBE`` hashes; each score depends only on ``q``, the candidate, and their names (and
DeepJoin vectors). So after a refresh, ``q``'s edges can change only when ``q``'s table changed, or when
one of its probe hashes is held by a column of a changed table (before or after the change), or (with
semantic joins) by a column whose DeepJoin text changed. Those columns are searched again; the edges of
every other column are copied from the previous graph, and the result equals a full rebuild's graph
(tests/joins/test_incremental.py compares them).

:func:`snapshot` is taken before the profiles are refreshed (it reads the changed tables' old hashes);
:func:`update` then writes the new graph from the new index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql import arrays, parquet_io


@dataclass
class Snapshot:
    """What the join index looked like before this refresh."""

    tables: dict[str, str]  # table -> fingerprint of the previous index
    hashes: Any  # sorted unique value hashes of the tables that changed since (their old profiles)
    read: set[str]  # the changed tables whose old hashes are in ``hashes``
    texts: dict[tuple[str, str], str | None] = field(default_factory=dict)  # DeepJoin text per column


def snapshot(store: Any, lake: Any) -> Snapshot | None:
    """The previous join index's tables and the old hashes of the tables changed since, or None when
    there is no previous graph to update."""
    import numpy as np

    from lakeql.joins.lakeindex import read_hashes

    entry, graph = store.find("join_index"), store.find("join_graph")
    if entry is None or graph is None or not (store.root / graph.path).exists():
        return None
    root = store.root / entry.path
    try:
        state = json.loads((root / "tables.json").read_text())
        texts = parquet_io.read_table(root / "columns.parquet", columns=["table_name", "column_name", "text"])
    except Exception:  # noqa: BLE001 - no readable previous index: full graph
        return None
    tables: dict[str, str] = dict(state.get("tables", {}))
    profiles: dict[str, str] = dict(state.get("profiles", {}))
    parts, read = [], set()
    for t, fp in tables.items():
        now = lake.tables.get(t)
        if now is not None and now.fingerprint == fp:
            continue
        try:
            parts.append(read_hashes(store.root / profiles[t])[1])
            read.add(t)
        except Exception:  # noqa: BLE001 - its old hashes are unknown: update() rebuilds the whole graph
            continue
    hs = arrays.unique(np.concatenate(parts)) if parts else np.empty(0, np.uint32)
    d = texts.to_pydict()
    txt = dict(zip(zip(d["table_name"], d["column_name"], strict=True), d["text"], strict=True))
    return Snapshot(tables, hs, read, txt)


def affected(ix: Any, snap: Snapshot, new_tables: dict[str, str]) -> tuple[set[str], Any] | None:
    """(changed tables, boolean mask of the query columns to search again), or None when the previous
    index cannot tell (a changed table's old hashes were not read): then the whole graph is rebuilt."""
    import numpy as np

    from lakeql.joins.graph import PROBE

    changed = {t for t in set(snap.tables) | set(new_tables) if snap.tables.get(t) != new_tables.get(t)}
    if any(t in snap.tables and t not in snap.read for t in changed):
        return None
    n = len(ix)
    in_changed = np.array([t in changed for t in ix.table_name], dtype=bool) if n else np.zeros(0, bool)
    texts = np.zeros(n, dtype=bool)
    if ix.vectors is not None:  # DeepJoin texts changed (lake frequencies): their similarities changed
        cur = ix.columns.column("text").to_pylist()
        texts = np.array(
            [
                snap.texts.get((t, c), None) != x
                for t, c, x in zip(ix.table_name, ix.column_name, cur, strict=True)
            ],
            dtype=bool,
        )
    touched = in_changed | texts
    hot = [snap.hashes] + [np.asarray(ix.hashes(c)) for c in np.flatnonzero(touched)]
    hot_hashes = arrays.unique(np.concatenate(hot)) if hot else np.empty(0, np.uint32)
    colrep = np.repeat(np.arange(n, dtype=np.int64), ix.n_hashes)
    rank = np.arange(len(colrep)) - np.repeat(ix.offset, ix.n_hashes)
    probe = rank < PROBE
    hit = np.zeros(n, dtype=bool)
    if len(hot_hashes) and len(colrep):
        sel = np.flatnonzero(probe)
        found = np.isin(ix.bycol[sel], hot_hashes)
        hit[arrays.unique(colrep[sel[found]])] = True
    return changed, touched | hit


def update(
    searcher: Any, old_edges: Path, out: Path, min_score: float, snap: Snapshot, new_tables: dict[str, str]
) -> tuple[int, int] | None:
    """Write the refreshed graph to ``out``: (edges, query columns searched again), or None when the
    whole graph must be rebuilt (then nothing is written)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.joins.graph import edge_schema, edges_of

    ix = searcher.ix
    got = affected(ix, snap, new_tables)
    if got is None:
        return None
    changed, redo = got
    try:
        old = parquet_io.read_table(old_edges)
    except Exception:  # noqa: BLE001 - unreadable previous graph: full rebuild
        return None
    queries = [q for q in np.flatnonzero(redo).tolist() if ix.indexed[q] and ix.n_distinct[q] >= 2]
    fresh = pa.table(edges_of(searcher, queries, min_score), schema=edge_schema())
    redo_names = {(ix.table_name[q], ix.column_name[q]) for q in np.flatnonzero(redo).tolist()}
    od = old.select(["table_name", "column_name"]).to_pydict()
    keep = np.array(
        [
            t not in changed and (t, c) not in redo_names and (t, c) in ix.by_name
            for t, c in zip(od["table_name"], od["column_name"], strict=True)
        ],
        dtype=bool,
    )
    kept = old.filter(pa.array(keep)) if len(keep) else old
    both = pa.concat_tables([kept.cast(edge_schema()), fresh])
    bd = both.select(["table_name", "column_name"]).to_pydict()
    col = np.array(
        [ix.by_name[(t, c)] for t, c in zip(bd["table_name"], bd["column_name"], strict=True)], dtype=np.int64
    )
    # the full build's order: by query column id; each column's edges stay in their ranked order
    src = np.r_[np.zeros(kept.num_rows, np.int64), np.ones(fresh.num_rows, np.int64)]
    pos = np.arange(both.num_rows)
    order = np.lexsort((pos, src, col))
    both = both.take(pa.array(order))
    pq.write_table(both, out, compression="zstd")
    return both.num_rows, len(queries)
