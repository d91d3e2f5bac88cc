"""Refresh the join graph for the tables that changed, keeping every other column's edges.

The edges of a query column ``q`` (graph.py) are its best candidates among the columns that hold one of
``q``'s bottom ``PROBE`` hashes; each score depends only on ``q``, the candidate, and their names (and
DeepJoin vectors). So after a refresh, ``q``'s edges can change only when ``q``'s table changed, or when
one of its probe hashes is held by a column of a changed table (before or after the change), or (with
semantic joins) by a column whose DeepJoin text changed. Those columns are searched again; the edges of
every other column are copied from the previous graph, and the result equals a full rebuild's graph
(tests/joins/test_incremental.py compares them).

On a lake of common values (years, small integers, codes) that rule reaches nearly every column. With
the pools of the previous graph (``joins/pools.parquet``, graph.py: each column's candidate pool and its
admission bound) the rule is exact and narrow instead: ``q``'s edges depend only on its pool (the
``POOL`` candidates with the highest name-free bound, ties by column id, among those whose bound
reaches ``min_score``) and on ``q`` and the pool's
members themselves, so ``q`` is searched again only when its table changed, when a pool member's table
changed (or its DeepJoin text), or when a column of a changed table now enters its pool: scores above the
pool's bound (or level with it and before its last member). The bounds of every column against the
changed columns come from one sparse product over the changed columns' postings (:func:`_entrants`).
Without a matching pools file (an older index) the hash rule above is used.

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


def changed_tables(snap: Snapshot, new_tables: dict[str, str], damaged: Any = ()) -> set[str]:
    """The tables whose columns' edges must be searched again, for both rules (the hash rule of
    :func:`affected` and the pool rule of :func:`_update_by_pools`): every table added, removed or
    changed (another fingerprint) since the snapshot's index, plus the ``damaged`` ones (tables whose
    columns had no hashes in the previous index or have none in this one)."""
    changed = {t for t in set(snap.tables) | set(new_tables) if snap.tables.get(t) != new_tables.get(t)}
    return changed | set(damaged)


def text_changed(ix: Any, snap: Snapshot) -> Any:
    """Boolean mask of ``ix``'s columns whose DeepJoin text differs from the snapshot's (lake frequencies
    changed it: its similarity to every other column changed); all False without DeepJoin vectors."""
    import numpy as np

    if ix.vectors is None:
        return np.zeros(len(ix), dtype=bool)
    cur = ix.columns.column("text").to_pylist()
    return np.array(
        [
            snap.texts.get((t, c), None) != x
            for t, c, x in zip(ix.table_name, ix.column_name, cur, strict=True)
        ],
        dtype=bool,
    )


def affected(ix: Any, snap: Snapshot, new_tables: dict[str, str]) -> tuple[set[str], Any] | None:
    """(changed tables, boolean mask of the query columns to search again), or None when the previous
    index cannot tell (a changed table's old hashes were not read): then the whole graph is rebuilt."""
    import numpy as np

    from lakeql.joins.graph import PROBE

    changed = changed_tables(snap, new_tables)
    if any(t in snap.tables and t not in snap.read for t in changed):
        return None
    n = len(ix)
    in_changed = np.array([t in changed for t in ix.table_name], dtype=bool) if n else np.zeros(0, bool)
    touched = in_changed | text_changed(ix, snap)
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
    searcher: Any,
    old_edges: Path,
    out: Path,
    min_score: float,
    snap: Snapshot,
    new_tables: dict[str, str],
    pools: Path | None = None,
) -> tuple[int, int, Any] | None:
    """Write the refreshed graph to ``out``: (edges, query columns searched again, the new pools table or
    None), or None when the whole graph must be rebuilt (then nothing is written). ``pools``: the
    previous graph's pools file (graph.py), when there is one."""
    if pools is not None:
        if _older_pools(pools):  # rebuilt once by the prefix kernel, which writes pools of this format
            return None
        got = _update_by_pools(searcher, old_edges, out, min_score, snap, new_tables, pools)
        if got is not None:
            return got
    got = _update_by_hashes(searcher, old_edges, out, min_score, snap, new_tables)
    return None if got is None else (*got, None)


def _update_by_hashes(searcher, old_edges, out, min_score, snap, new_tables):
    import numpy as np

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
    n = _merge_edges(searcher, old, out, min_score, changed, redo, queries, None)
    return n, len(queries)


def _merge_edges(searcher, old, out, min_score, changed, redo, queries, pools) -> int:
    """Write the edges of ``queries`` searched again with the edges of ``old`` of every column that is not
    in a changed table nor in ``redo``, in the full build's order; returns the edge count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.joins.graph import edge_schema, edges_of

    ix = searcher.ix
    fresh = pa.table(edges_of(searcher, queries, min_score, pools), schema=edge_schema())
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
    return both.num_rows


def tables_digest(tables: dict[str, str]) -> str:
    """What a pools file records of the table fingerprints its graph was built from."""
    import hashlib

    return hashlib.sha1(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def _older_pools(path: Path) -> bool:
    """True when ``path`` is a pools file of an earlier lakeql pools format (1: pools not restricted to
    ``min_score``). The hash rule would update such a graph without pools, and every later refresh too
    (it writes none); a full build by the prefix kernel (graph.py) costs about one wide update and writes
    the pools the next refresh needs. Unreadable or foreign files: False (the callers' checks apply)."""
    from lakeql.joins.graph import POOLS_FORMAT, POOLS_META

    try:
        from lakeql.sources import buildfs

        with buildfs.parquet_file(path) as f:
            fmt = json.loads(f.schema_arrow.metadata[POOLS_META]).get("format")
    except Exception:  # noqa: BLE001 - not a pools file we can read: _read_pools rejects it
        return False
    return type(fmt) is int and 1 <= fmt < POOLS_FORMAT


def _read_pools(path: Path, old_edges: Path, min_score: float, snap: Snapshot):
    """The previous pools table and its metadata when they belong to ``old_edges`` and to the index the
    snapshot read (same graph parameters and table fingerprints), else None."""
    from lakeql.joins.graph import POOL, POOLS_FORMAT, POOLS_META, PROBE, pools_schema
    from lakeql.store import file_checksum

    try:
        t = parquet_io.read_table(path)
        meta = json.loads(t.schema.metadata[POOLS_META])
        ok = (
            meta.get("format") == POOLS_FORMAT
            and meta.get("pool") == POOL
            and meta.get("probe") == PROBE
            and meta.get("min_score") == float(min_score)
            and meta.get("edges") == file_checksum(old_edges)
            and meta.get("tables") == tables_digest(snap.tables)
            and t.schema.remove_metadata().equals(pools_schema())
            and _members_sane(t)
        )
    except Exception:  # noqa: BLE001 - no usable pools: the hash rule
        return None
    return (t, meta) if ok else None


def _members_sane(t: Any) -> bool:
    """True when every pool lists at most ``MAX_POOL`` members, each a row of the file: a damaged or
    hand-edited pools file (its checksum recorded again) must not index past the columns or wrap around
    to other ones (numpy's negative indices) in the update."""
    import numpy as np

    from lakeql.joins.graph import MAX_POOL

    m = t.column("members").combine_chunks()
    if m.null_count or m.values.null_count:
        return False
    v = m.flatten().to_numpy(zero_copy_only=False)
    lens = np.diff(m.offsets.to_numpy())
    return bool((len(v) == 0 or (v.min() >= 0 and v.max() < t.num_rows))
                and (len(lens) == 0 or lens.max() <= MAX_POOL))


def _update_by_pools(searcher, old_edges, out, min_score, snap, new_tables, pools_path):
    import numpy as np

    from lakeql.joins.graph import pools_arrays

    ix = searcher.ix
    got = _read_pools(pools_path, old_edges, min_score, snap)
    if got is None:
        return None
    pt, meta = got
    try:
        old = parquet_io.read_table(old_edges)
    except Exception:  # noqa: BLE001 - unreadable previous graph: full rebuild
        return None
    n = len(ix)
    # damaged tables: their columns had no hashes then / now
    changed = changed_tables(snap, new_tables, {*meta.get("damaged", []), *ix.damaged})
    o_tab = pt.column("table_name").to_pylist()
    o_col = pt.column("column_name").to_pylist()
    n_old = len(o_tab)
    old2new = np.array([ix.by_name.get(k, -1) for k in zip(o_tab, o_col, strict=True)], dtype=np.int64)
    new2old = np.full(n, -1, dtype=np.int64)
    new2old[old2new[old2new >= 0]] = np.flatnonzero(old2new >= 0)
    in_changed = np.array([t in changed for t in ix.table_name], dtype=bool) if n else np.zeros(0, bool)
    o_changed = np.array([t in changed for t in o_tab], dtype=bool) if n_old else np.zeros(0, bool)
    # DeepJoin texts changed (lake frequencies): such a column's similarity to every other column changed
    texts = text_changed(ix, snap)
    o_texts = np.zeros(n_old, dtype=bool)
    o_texts[new2old[texts & (new2old >= 0)]] = True
    dirty = o_changed | o_texts | (old2new < 0)
    offsets = pt.column("members").combine_chunks().offsets.to_numpy().astype(np.int64)
    flat = pt.column("members").combine_chunks().values.to_numpy().astype(np.int64)
    lens = np.diff(offsets)
    bound = pt.column("bound").to_numpy(zero_copy_only=False).astype(np.float64)
    # a pool holding a dirty column: that query's edges may change
    hit = (
        np.bincount(np.repeat(np.arange(n_old), lens)[dirty[flat]], minlength=n_old) > 0
        if len(flat)
        else np.zeros(n_old, bool)
    )
    redo = in_changed | texts | (new2old < 0)
    redo[old2new[hit & (old2new >= 0)]] = True
    query = ix.indexed & (ix.n_distinct >= 2)
    # columns of changed tables entering a pool they were not in
    sizes = np.zeros(n, dtype=np.int64)
    nb = np.full(n, np.nan)
    last = np.full(n, -1, dtype=np.int64)
    has = new2old >= 0
    oq = new2old[has]
    nb[has] = bound[oq]
    sizes[has] = lens[oq]
    ends = offsets[1:] - 1
    lastold = np.where(lens > 0, flat[np.maximum(ends, 0)] if len(flat) else -1, -1)
    last[has] = np.where(lastold[oq] >= 0, old2new[np.maximum(lastold[oq], 0)], -1)
    cand = np.flatnonzero(in_changed & ix.indexed & (ix.n_hashes > 0) & ~ix.excluded)
    redo |= _entrants(ix, cand, query & ~redo, sizes, nb, last, min_score)
    queries = np.flatnonzero(redo & query).tolist()
    new_pools: dict[int, tuple] = {}
    n_edges = _merge_edges(searcher, old, out, min_score, changed, redo, queries, new_pools)
    # the kept columns' pools, their member ids mapped to the new index
    keep = np.flatnonzero(query & ~redo)
    k_old = new2old[keep]
    k_lens = lens[k_old]
    idx = np.repeat(offsets[k_old] - np.r_[0, np.cumsum(k_lens)[:-1]], k_lens) + np.arange(int(k_lens.sum()))
    k_flat = old2new[flat[idx]]
    table = pools_arrays(ix, keep, bound[k_old], k_lens, k_flat, new_pools, min_score, new_tables)
    return n_edges, len(queries), table


def _segment_count(ix: Any, cols: Any, t: Any, side: str) -> Any:
    """Per pair i: how many of column ``cols[i]``'s stored hashes are ``< t[i]`` (``side='left'``) or
    ``<= t[i]`` (``'right'``): a binary search within each column's sorted segment, vectorized."""
    import numpy as np

    lo = ix.offset[cols].copy()
    hi = lo + ix.n_hashes[cols]
    start = lo.copy()
    t = np.asarray(t, dtype=np.int64)
    while True:
        act = lo < hi
        if not act.any():
            break
        mid = (lo + hi) // 2
        v = ix.bycol[np.minimum(mid, len(ix.bycol) - 1)].astype(np.int64)
        go = act & ((v < t) if side == "left" else (v <= t))
        lo = np.where(go, mid + 1, lo)
        hi = np.where(act & ~go, mid, hi)
    return lo - start


def _entrants(ix: Any, cands: Any, open_q: Any, n_pool: Any, bound: Any, last: Any,
              min_score: float | None = None) -> Any:
    """Boolean mask of the query columns (among ``open_q``) that a column of ``cands`` would enter the
    pool of (sizes ``n_pool``): its name-free bound (as Searcher.equi_pool computes it from the query's
    bottom ``PROBE`` hashes) reaches ``min_score`` (graph pools hold no candidate below it) and is above
    the pool's ``bound`` (its ``POOL``-th member's), or level with it while the pool has room for ties or
    the id is below the last member's (``last``), or the pool holds fewer than ``POOL``. Overlaps of
    every query with every candidate at once: the candidates' hashes x the postings of those hashes
    restricted to each query's probe, one sparse product; no loop per column."""
    import numpy as np
    import scipy.sparse as sp

    from lakeql.joins import rank
    from lakeql.joins.graph import MAX_POOL, POOL, PROBE
    from lakeql.joins.joinindex import HASH_MAX

    n = len(ix)
    out = np.zeros(n, dtype=bool)
    if len(cands) == 0 or not open_q.any():
        return out
    cands = np.asarray(cands, dtype=np.int64)
    c_lens = ix.n_hashes[cands]
    idx = np.repeat(ix.offset[cands] - np.r_[0, np.cumsum(c_lens)[:-1]], c_lens) + np.arange(
        int(c_lens.sum())
    )
    c_hash = ix.bycol[idx]
    c_row = np.repeat(np.arange(len(cands)), c_lens)
    uh, inv = np.unique(c_hash, return_inverse=True)
    # every posting of those hashes: (hash row, query column)
    lo = np.searchsorted(ix.hh, uh, "left")
    cnt = np.searchsorted(ix.hh, uh, "right") - lo
    total = int(cnt.sum())
    if total == 0:
        return out
    pos = np.repeat(lo - np.r_[0, np.cumsum(cnt)[:-1]], cnt) + np.arange(total)
    p_row = np.repeat(np.arange(len(uh)), cnt)
    p_col = ix.hc[pos].astype(np.int64)
    # within the query's probe: its bottom PROBE stored hashes (positions, ties at the cut included)
    n_probe = np.minimum(ix.n_hashes, PROBE)
    cut = np.full(n, HASH_MAX, dtype=np.int64)
    over = np.flatnonzero(ix.n_hashes > PROBE)
    cut[over] = ix.bycol[ix.offset[over] + PROBE - 1]
    hv = uh[p_row].astype(np.int64)
    sel = open_q[p_col] & (hv <= cut[p_col])
    p_row, p_col, hv = p_row[sel], p_col[sel], hv[sel]
    if len(p_row) == 0:
        return out
    key = p_row * n + p_col  # a column holding a hash twice counts it twice (JoinIndex postings)
    ukey, first, mult = np.unique(key, return_index=True, return_counts=True)
    r, c, h = ukey // n, ukey % n, hv[first]
    edge = (ix.n_hashes[c] > PROBE) & (h == cut[c])
    if edge.any():  # copies of the cut hash beyond position PROBE are outside the probe
        mult[edge] = PROBE - _segment_count(ix, c[edge], h[edge], "left")
    probe_m = sp.csr_matrix((mult.astype(np.int64), (r, c)), shape=(len(uh), n))
    cand_m = sp.csr_matrix((np.ones(len(c_row), np.int64), (c_row, inv)), shape=(len(cands), len(uh)))
    counts = (cand_m @ probe_m).tocoo()
    b, q, k = cands[counts.row], counts.col.astype(np.int64), counts.data.astype(np.int64)
    ok = (k > 0) & (ix.table_id[b] != ix.table_id[q])
    b, q, k = b[ok], q[ok], k[ok]
    if len(b) == 0:
        return out
    # the containment as JoinIndex._overlaps_of estimates it: the shared sampled hashes over the query's
    # probed hashes at or below both thresholds (all of them when neither column is capped)
    tq = cut[q]
    t = np.minimum(ix.tau[b].astype(np.int64), tq)
    last_probe = ix.bycol[ix.offset[q] + n_probe[q] - 1].astype(np.int64)
    den = n_probe[q].astype(np.int64)
    part = t < last_probe
    if part.any():
        den[part] = np.minimum(_segment_count(ix, q[part], t[part], "right"), n_probe[q[part]])
    den = den.astype(np.float64)
    cont = np.where(den > 0, k / np.maximum(den, 1), 0.0)
    cont = np.minimum(cont, 1.0)
    ok = cont > 0
    b, q, cont = b[ok], q[ok], cont[ok]
    upper = rank.score(cont, ix.uniqueness[b], np.ones(len(b)))
    level = (upper == bound[q]) & ((n_pool[q] < MAX_POOL) | (b < last[q]))
    enter = (n_pool[q] < POOL) | (upper > bound[q]) | level
    if min_score is not None:
        enter &= upper >= min_score
    out[q[enter]] = True
    return out
