"""Merge per-file column profiles (shards, :mod:`lakeql.profile_shards`) into one table profile.

A multi-file table's profile is the merge of its files' profiles (each computed exactly as
:func:`lakeql.profile.profile_table` computes a table's), so refreshing an appended file costs one file's
scan. The merge is a function of the *set* of file profiles, in catalog order: a full build and any
sequence of refreshes that ends with the same files give byte-for-byte the same profile.

Exact:

* ``row_count``, ``nonnull``, ``n_values``: sums;
* ``min``/``max``: compared in the column type's order (the texts are cast back to the type in DuckDB;
  types outside a plain-name whitelist are compared as text);
* ``len_min``/``len_max``, ``upper``/``lower``/``trimmed``: min/max, all;
* ``len_avg`` of value columns: the per-file averages weighted by their value counts;
* the stored value hashes: the bottom :data:`~lakeql.profile.HASH_CAP` of the union of the files'
  bottom ``HASH_CAP`` (the union of bottom-k sets holds the bottom-k of the union);
* ``n_distinct`` of value columns whose every file stored all its distinct hashes (at most ``HASH_CAP``
  distinct values per file): the size of the union of the files' hash sets. Two distinct values whose
  32-bit hashes collide count once (expected collisions ``n^2 / 2^33``: none below about 10,000
  distinct values, 12 at 330,000).

Approximate (documented in docs/joins.md):

* ``n_distinct`` of value columns with a file above ``HASH_CAP`` distinct values: the KMV estimate
  ``(m - 1) * 2^32 / (tau + 1)`` from the ``m`` union hashes at or below ``tau``, the smallest capped
  file's largest stored hash (``distinct_exact`` false; the stored hashes are still a uniform sample);
* ``top_values``/``top_counts`` (top :data:`~lakeql.profile.TOP_VALUES`): counts are summed over the
  files' own top lists, so they are exact when every file has at most ``TOP_VALUES`` distinct values in
  the column, otherwise a lower bound, and a value frequent overall but in no file's top list is missed;
* ``len_median`` (median length over distinct values, used to skip free text): the median of the files'
  medians weighted by their distinct counts;
* ``n_distinct`` of non-value columns (floats, booleans...: HyperLogLog per file): the largest per-file
  estimate, or their sum when every file's values are all distinct; never exact (so a merged table never
  claims a 'unique' float key);
* the 3 sample values of non-value columns: the values named by most files, first seen first.
"""

from __future__ import annotations

import re
from typing import Any

_SAFE_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\d+(, ?\d+)?\))?$")


def _typed_min_max(
    columns: list[tuple[str, str]], mins: list[list[str]], maxs: list[list[str]], con
) -> list[tuple[str | None, str | None]]:
    """Per column, (min, max) of the per-file texts compared in the column's type (text otherwise)."""
    out: list[tuple[str | None, str | None]] = []
    exprs: list[str] = []
    params: list[Any] = []
    slots: list[int] = []
    for i, (_, ctype) in enumerate(columns):
        lo, hi = [v for v in mins[i] if v is not None], [v for v in maxs[i] if v is not None]
        out.append((min(lo) if lo else None, max(hi) if hi else None))
        if len(lo) > 1 or len(hi) > 1:
            if _SAFE_TYPE.match(ctype) and ctype.upper() not in ("VARCHAR", "BLOB", "BOOLEAN"):
                exprs.append(
                    f"list_aggregate(list_transform(?::VARCHAR[], lambda x: TRY_CAST(x AS {ctype})), "
                    "'min')::VARCHAR"
                )
                exprs.append(
                    f"list_aggregate(list_transform(?::VARCHAR[], lambda x: TRY_CAST(x AS {ctype})), "
                    "'max')::VARCHAR"
                )
                params.extend([lo, hi])
                slots.append(i)
    if exprs:
        try:
            got = con.execute("SELECT " + ", ".join(exprs), params).fetchall()[0]
        except Exception:  # noqa: BLE001 - a type DuckDB cannot cast back: text order (documented)
            got = None
        if got is not None:
            for j, i in enumerate(slots):
                a, b = got[2 * j], got[2 * j + 1]
                out[i] = (a if a is not None else out[i][0], b if b is not None else out[i][1])
    return out


def _weighted_median(values: list[float], weights: list[int]) -> float | None:
    import numpy as np

    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None and w]
    if not pairs:
        return None
    v = np.array([p[0] for p in pairs], dtype=np.float64)
    w = np.array([p[1] for p in pairs], dtype=np.float64)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum = np.cumsum(w)
    return float(v[int(np.searchsorted(cum, cum[-1] / 2.0))])


def merge(
    table_key: str, columns: list[tuple[str, str]], shards: list[tuple[list[dict[str, Any]], Any]], con=None
) -> tuple[list[dict[str, Any]], Any]:
    """Merge the profiles of a table's files (``[(column rows, hashes)]`` in catalog file order) into the
    table's (column rows, hashes), as :func:`lakeql.profile.profile_table` returns them."""
    import numpy as np
    import pyarrow as pa

    from lakeql.profile import HASH_CAP, TOP_VALUES, _empty_row, connect, hash_values, hashes_schema

    class _T:  # what _empty_row needs of a table
        key = table_key

    n_cols = len(columns)
    total_rows = sum(int(rows[0]["row_count"]) if rows else 0 for rows, _ in shards)
    out = [_empty_row(_T, n, t, o, total_rows) for o, (n, t) in enumerate(columns)]  # type: ignore[arg-type]
    if not n_cols:
        return out, hashes_schema().empty_table()
    own = con is None
    con = connect() if own else con
    try:
        per = [[rows[i] for rows, _ in shards] for i in range(n_cols)]
        mm = _typed_min_max(
            columns, [[r["min"] for r in p] for p in per], [[r["max"] for r in p] for p in per], con
        )
        # value hashes: union per column, below the smallest capped file's largest hash, bottom HASH_CAP
        tau = np.full(n_cols, (1 << 32) - 1, dtype=np.uint64)
        for i, p in enumerate(per):
            for (_, h), r in zip(shards, p, strict=True):
                if r["value_class"] is not None and int(r["n_hashes"] or 0) < int(r["n_distinct"] or 0):
                    sel = h.column("hash").to_numpy()[h.column("ordinal").to_numpy() == i]
                    if len(sel):
                        tau[i] = min(int(tau[i]), int(sel.max()))
        keys = [
            (h.column("ordinal").to_numpy().astype(np.uint64) << np.uint64(32))
            | h.column("hash").to_numpy().astype(np.uint64)
            for _, h in shards
            if h.num_rows
        ]
        u = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.uint64)
        ords = (u >> np.uint64(32)).astype(np.int64)
        hs = (u & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        below = hs.astype(np.uint64) <= tau[ords]
        ords, hs = ords[below], hs[below]
        m = np.bincount(ords, minlength=n_cols) if len(ords) else np.zeros(n_cols, np.int64)
        starts = np.r_[0, np.cumsum(m)[:-1]]
        rank = np.arange(len(ords)) - starts[ords] if len(ords) else np.zeros(0, np.int64)
        keep = rank < HASH_CAP
        # top values: summed over the files' top lists, grouped by value hash (one hashing call)
        tv_ord, tv_raw, tv_n = [], [], []
        for i, p in enumerate(per):
            if out[i]["value_class"] is None:
                continue
            for r in p:
                tv_raw.extend(r["top_values"])
                tv_n.extend(int(c) for c in r["top_counts"])
                tv_ord.extend([i] * len(r["top_values"]))
        tops: dict[int, tuple[list[str], list[int]]] = {}
        if tv_raw:
            th = hash_values(tv_raw, con)
            t = pa.table(
                {
                    "o": pa.array(tv_ord, pa.int32()),
                    "h": pa.array(th, pa.uint32()),
                    "raw": pa.array(tv_raw, pa.string()),
                    "n": pa.array(tv_n, pa.int64()),
                }
            )
            con.register("_lakeql_tops", t)
            try:
                g = con.execute(
                    "SELECT o, list(raw ORDER BY n DESC, h), list(n ORDER BY n DESC, h) FROM ("
                    "SELECT o, h, min(raw) AS raw, sum(n)::BIGINT AS n, "
                    "row_number() OVER (PARTITION BY o ORDER BY sum(n) DESC, h) AS k "
                    "FROM _lakeql_tops GROUP BY o, h) WHERE k <= ? GROUP BY o",
                    [TOP_VALUES],
                ).fetchall()
            finally:
                con.unregister("_lakeql_tops")
            tops = {int(o): (list(v), [int(x) for x in c]) for o, v, c in g}
        for i, (r, p) in enumerate(zip(out, per, strict=True)):
            nonnull = sum(int(x["nonnull"] or 0) for x in p)
            r.update(nonnull=nonnull, min=mm[i][0], max=mm[i][1])
            lmins = [x["len_min"] for x in p if x["len_min"] is not None]
            lmaxs = [x["len_max"] for x in p if x["len_max"] is not None]
            r["len_min"] = min(lmins) if lmins else None
            r["len_max"] = max(lmaxs) if lmaxs else None
            if r["value_class"] is None:
                est = [int(x["n_distinct"] or 0) for x in p]
                all_unique = all(int(x["n_distinct"] or 0) == int(x["nonnull"] or 0) for x in p)
                nd = sum(est) if all_unique else max(est, default=0)
                r.update(
                    n_distinct=min(nd, nonnull), distinct_exact=len(p) == 1 and bool(p[0]["distinct_exact"])
                )
                votes: dict[str, list[int]] = {}
                for j, x in enumerate(p):
                    for v in x["top_values"]:
                        votes.setdefault(v, [0, j])[0] += 1
                r["top_values"] = sorted(votes, key=lambda v: (-votes[v][0], votes[v][1]))[:3]
                continue
            nv = sum(int(x["n_values"] or 0) for x in p)
            r["n_values"] = nv
            if nv == 0:
                continue
            r["len_avg"] = float(sum(float(x["len_avg"] or 0) * int(x["n_values"] or 0) for x in p) / nv)
            r["len_median"] = _weighted_median(
                [x["len_median"] for x in p], [int(x["n_distinct"] or 0) for x in p]
            )
            has = [x for x in p if int(x["n_values"] or 0)]
            r["upper"] = all(bool(x["upper"]) for x in has)
            r["lower"] = all(bool(x["lower"]) for x in has)
            r["trimmed"] = all(bool(x["trimmed"]) for x in has)
            mi = int(m[i])
            if int(tau[i]) == (1 << 32) - 1:  # every file stored all its hashes: exact union
                r.update(n_distinct=mi, distinct_exact=True)
            else:
                est = int(round((mi - 1) * float(1 << 32) / (int(tau[i]) + 1))) if mi > 1 else mi
                r.update(n_distinct=max(min(est, nv), mi + 1), distinct_exact=False)
            r["n_hashes"] = int(min(mi, HASH_CAP))
            r["top_values"], r["top_counts"] = tops.get(i, ([], []))
        hashes = pa.table(
            {
                "table_name": pa.array([table_key] * int(keep.sum()), pa.string()).dictionary_encode(),
                "ordinal": ords[keep].astype(np.int32),
                "hash": hs[keep],
            },
            schema=hashes_schema(),
        )
        # columns not indexed by value keep no hashes (as profile_table)
        return out, hashes
    finally:
        if own:
            con.close()
