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

_SAFE_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\d+(, ?\d+)?\))?\Z")


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
    import pyarrow as pa

    from lakeql.profile_shards import shards_schema

    recs = [{**r, "shard": "", "file": ""} for rows, _ in shards for r in rows]
    table = pa.Table.from_pylist(recs, schema=shards_schema())
    hashes = [(h.column("ordinal").to_numpy(), h.column("hash").to_numpy()) for _, h in shards]
    return merge_columnar(table_key, columns, table, hashes, con)


def _num(t: Any, name: str, n_shards: int, n_cols: int, fill: float = 0.0):
    """Column ``name`` of the shard rows as a float matrix [file, column] (NULL -> ``fill``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = pc.fill_null(pc.cast(t.column(name), pa.float64()), fill)
    return np.asarray(col.to_numpy(), dtype=np.float64).reshape(n_shards, n_cols)


def merge_columnar(
    table_key: str, columns: list[tuple[str, str]], t: Any, hashes: list[tuple[Any, Any]], con=None
) -> tuple[list[dict[str, Any]], Any]:
    """:func:`merge` on the shards as one Arrow table ``t`` (``shards.parquet`` rows: one per file and
    column, by file in catalog order, then ordinal) and each file's ``(ordinals, hashes)``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakeql.profile import HASH_CAP, TOP_VALUES, _empty_row, connect, hash_values, hashes_schema

    class _T:  # what _empty_row needs of a table
        key = table_key

    n_cols, n_sh = len(columns), len(hashes)
    if not n_cols:
        return [], hashes_schema().empty_table()
    if t.num_rows != n_cols * n_sh:
        raise ValueError(f"{table_key}: {t.num_rows} shard rows for {n_sh} files of {n_cols} columns")
    rc = _num(t, "row_count", n_sh, n_cols)
    out = [_empty_row(_T, n, ty, o, int(rc[:, 0].sum())) for o, (n, ty) in enumerate(columns)]  # type: ignore[arg-type]
    valcls = np.array([r["value_class"] is not None for r in out], dtype=bool)
    own = con is None
    con = connect() if own else con
    try:
        nonnull = _num(t, "nonnull", n_sh, n_cols)
        nvals = _num(t, "n_values", n_sh, n_cols)
        ndist = _num(t, "n_distinct", n_sh, n_cols)
        nhash = _num(t, "n_hashes", n_sh, n_cols)
        lmin = _num(t, "len_min", n_sh, n_cols, np.nan)
        lmax = _num(t, "len_max", n_sh, n_cols, np.nan)
        lavg = _num(t, "len_avg", n_sh, n_cols)
        lmed = _num(t, "len_median", n_sh, n_cols, np.nan)
        flags = {
            f: _num(
                t.set_column(t.schema.get_field_index(f), f, pc.cast(t.column(f), pa.int8())),
                f,
                n_sh,
                n_cols,
                1.0,
            )
            for f in ("upper", "lower", "trimmed")
        }
        exact = _num(
            t.set_column(
                t.schema.get_field_index("distinct_exact"),
                "distinct_exact",
                pc.cast(t.column("distinct_exact"), pa.int8()),
            ),
            "distinct_exact",
            n_sh,
            n_cols,
        )
        mins = np.array(t.column("min").to_pylist(), dtype=object).reshape(n_sh, n_cols)
        maxs = np.array(t.column("max").to_pylist(), dtype=object).reshape(n_sh, n_cols)
        mm = _typed_min_max(
            columns, [list(mins[:, i]) for i in range(n_cols)], [list(maxs[:, i]) for i in range(n_cols)], con
        )
        # value hashes: union per column, below the smallest capped file's largest hash, bottom HASH_CAP
        tau = np.full(n_cols, (1 << 32) - 1, dtype=np.uint64)
        span = np.arange(n_cols)
        capped_all = (nhash < ndist) & valcls[None, :]
        for j, (o, hv) in enumerate(hashes):
            capped = capped_all[j]
            if not capped.any() or not len(o):
                continue
            lo, hi = np.searchsorted(o, span, "left"), np.searchsorted(o, span, "right")
            ok = capped & (hi > lo)
            tau[ok] = np.minimum(tau[ok], hv[hi[ok] - 1].astype(np.uint64))
        keys = [(o.astype(np.uint64) << np.uint64(32)) | hv.astype(np.uint64) for o, hv in hashes if len(o)]
        u = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.uint64)
        ords = (u >> np.uint64(32)).astype(np.int64)
        hs = (u & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        below = hs.astype(np.uint64) <= tau[ords]
        ords, hs = ords[below], hs[below]
        m = np.bincount(ords, minlength=n_cols) if len(ords) else np.zeros(n_cols, np.int64)
        starts = np.r_[0, np.cumsum(m)[:-1]]
        rank = np.arange(len(ords)) - starts[ords] if len(ords) else np.zeros(0, np.int64)
        keep = rank < HASH_CAP
        # top values of value columns: counts summed over the files' top lists, grouped by value hash
        ordinal = np.tile(np.arange(n_cols, dtype=np.int32), n_sh)
        vrows = np.flatnonzero(valcls[ordinal])
        tv = t.select(["top_values", "top_counts", "top_hashes"]).take(pa.array(vrows))
        lens = pc.list_value_length(tv.column("top_values")).to_numpy(zero_copy_only=False)
        lens = np.nan_to_num(lens.astype(np.float64)).astype(np.int64)
        raw = pc.list_flatten(tv.column("top_values"))
        cnt = pc.list_flatten(tv.column("top_counts"))
        th_lens = pc.list_value_length(tv.column("top_hashes")).to_numpy(zero_copy_only=False)
        if len(raw) and np.array_equal(np.nan_to_num(th_lens.astype(np.float64)).astype(np.int64), lens):
            th = pc.list_flatten(tv.column("top_hashes"))
        else:  # shards without stored top hashes: hash them now
            th = pa.array(hash_values(raw.to_pylist(), con), pa.uint32())
        tops: dict[int, tuple[list[str], list[int]]] = {}
        if len(raw):
            tt = pa.table(
                {
                    "o": pa.array(np.repeat(ordinal[vrows], lens), pa.int32()),
                    "h": th,
                    "raw": raw,
                    "n": pc.cast(cnt, pa.int64()),
                }
            )
            con.register("_lakeql_tops", tt)
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
        other = np.flatnonzero(~valcls[ordinal])
        samples = t.column("top_values").take(pa.array(other)).to_pylist() if len(other) else []
        by_col: dict[int, list[list[str]]] = {}
        for k, idx in enumerate(other.tolist()):
            by_col.setdefault(idx % n_cols, []).append(samples[k] or [])
        for i, r in enumerate(out):
            nn = int(nonnull[:, i].sum())
            r.update(nonnull=nn, min=mm[i][0], max=mm[i][1])
            a, b = lmin[:, i], lmax[:, i]
            r["len_min"] = int(np.nanmin(a)) if not np.isnan(a).all() else None
            r["len_max"] = int(np.nanmax(b)) if not np.isnan(b).all() else None
            if not valcls[i]:
                est = ndist[:, i]
                all_unique = bool((ndist[:, i] == nonnull[:, i]).all())
                nd = int(est.sum()) if all_unique else int(est.max())
                r.update(n_distinct=min(nd, nn), distinct_exact=n_sh == 1 and bool(exact[0, i]))
                votes: dict[str, list[int]] = {}
                for j, vals in enumerate(by_col.get(i, [])):
                    for v in vals:
                        votes.setdefault(v, [0, j])[0] += 1
                r["top_values"] = sorted(votes, key=lambda v: (-votes[v][0], votes[v][1]))[:3]
                continue
            nv = int(nvals[:, i].sum())
            r["n_values"] = nv
            if nv == 0:
                continue
            r["len_avg"] = float(sum(float(lavg[j, i]) * float(nvals[j, i]) for j in range(n_sh)) / nv)
            r["len_median"] = _weighted_median(
                [None if np.isnan(x) else float(x) for x in lmed[:, i]], [int(x) for x in ndist[:, i]]
            )
            has = nvals[:, i] > 0
            r["upper"] = bool((flags["upper"][has, i] != 0).all())
            r["lower"] = bool((flags["lower"][has, i] != 0).all())
            r["trimmed"] = bool((flags["trimmed"][has, i] != 0).all())
            mi = int(m[i])
            if int(tau[i]) == (1 << 32) - 1:  # every file stored all its hashes: exact union
                r.update(n_distinct=mi, distinct_exact=True)
            else:
                est = int(round((mi - 1) * float(1 << 32) / (int(tau[i]) + 1))) if mi > 1 else mi
                r.update(n_distinct=max(min(est, nv), mi + 1), distinct_exact=False)
            r["n_hashes"] = int(min(mi, HASH_CAP))
            r["top_values"], r["top_counts"] = tops.get(i, ([], []))
        hashes_t = pa.table(
            {
                "table_name": pa.array([table_key] * int(keep.sum()), pa.string()).dictionary_encode(),
                "ordinal": ords[keep].astype(np.int32),
                "hash": hs[keep],
            },
            schema=hashes_schema(),
        )
        return out, hashes_t
    finally:
        if own:
            con.close()
