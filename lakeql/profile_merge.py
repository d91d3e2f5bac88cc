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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql import arrays

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


_MAX_HASH = (1 << 32) - 1
_SCALARS = (
    "rc",
    "nonnull",
    "nvals",
    "len_total",
    "nd_max",
    "nd_sum",
    "all_unique",
    "exact_first",
    "upper",
    "lower",
    "trimmed",
)


@dataclass
class MergeState:
    """The merge of a run of files' profiles before it is turned into the table profile: every field as
    an associative summary, so ``combine(state(A), state(B)) == state(A + B)`` exactly (B's files after
    A's in catalog order). A refresh that appends files merges the stored state of the table with the
    new files' states alone (:func:`lakeql.profile_shards.finish`), never reading the other files' shards.

    Per column: integer sums (rows, non-NULL, values, total value length), the min/max texts (compared in
    the column's type), length range (NaN: none), the case/trim flags over files with values, the
    non-value distinct estimates (largest, sum, every file all-distinct), ``tau`` (the smallest capped
    file's largest stored hash) with the union of every file's value hashes at or below it (sorted by
    ordinal, hash: not capped, so the union's size stays exact), the (ordinal, hash, min raw, summed
    count) of every value in a file's top list, the (ordinal, median, summed weight) of the files'
    median lengths, and the (ordinal, value, files naming it, first such file) of non-value samples."""

    ids: list[str]
    n_files: int
    scal: dict[str, Any]  # name -> int64/float64 array per column (see _SCALARS, plus lmin/lmax)
    mins: list[str | None]
    maxs: list[str | None]
    tau: Any  # uint64 per column
    union_o: Any  # int32
    union_h: Any  # uint32
    tops: Any  # Arrow table: o int32, h uint32, raw string, n int64 (one row per (o, h))
    medians: list[dict[float, int]]  # per column: median length -> summed weight
    samples: list[dict[str, list[int]]]  # per column: value -> [files naming it, first such file]
    columns: list[tuple[str, str]] = field(default_factory=list)


def _tops_schema():
    import pyarrow as pa

    return pa.schema([("o", pa.int32()), ("h", pa.uint32()), ("raw", pa.string()), ("n", pa.int64())])


def _group_tops(tt: Any, con) -> Any:
    """One row per (ordinal, hash): the smallest raw text and the summed count (sorted by o, h)."""
    if not tt.num_rows:
        return _tops_schema().empty_table()
    con.register("_lakeql_tops", tt)
    try:
        return (
            con.sql(
                "SELECT o::INTEGER AS o, h::UINTEGER AS h, min(raw) AS raw, sum(n)::BIGINT AS n "
                "FROM _lakeql_tops GROUP BY o, h ORDER BY o, h"
            )
            .to_arrow_table()
            .cast(_tops_schema())
        )
    finally:
        con.unregister("_lakeql_tops")


def _union(parts_o: list[Any], parts_h: list[Any], tau: Any) -> tuple[Any, Any]:
    """The sorted unique (ordinal, hash) pairs of the parts at or below each ordinal's ``tau``."""
    import numpy as np

    keys = [
        (o.astype(np.uint64) << np.uint64(32)) | h.astype(np.uint64)
        for o, h in zip(parts_o, parts_h, strict=True)
        if len(o)
    ]
    u = arrays.unique(np.concatenate(keys)) if keys else np.empty(0, np.uint64)
    ords = (u >> np.uint64(32)).astype(np.int64)
    hs = (u & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    below = hs.astype(np.uint64) <= tau[ords] if len(ords) else np.zeros(0, bool)
    return ords[below].astype(np.int32), hs[below]


def state_of(
    columns: list[tuple[str, str]], t: Any, hashes: list[tuple[Any, Any]], ids: list[str], con
) -> MergeState:
    """The :class:`MergeState` of files given as shard rows ``t`` (one per file and column, by file in
    catalog order, then ordinal) and each file's ``(ordinals, hashes)``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakeql.profile import hash_values, value_class

    n_cols, n_sh = len(columns), len(hashes)
    if t.num_rows != n_cols * n_sh:
        raise ValueError(f"{t.num_rows} shard rows for {n_sh} files of {n_cols} columns")
    valcls = np.array([value_class(ty) is not None for _, ty in columns], dtype=bool)
    rc = _num(t, "row_count", n_sh, n_cols)
    nonnull = _num(t, "nonnull", n_sh, n_cols)
    nvals = _num(t, "n_values", n_sh, n_cols)
    ndist = _num(t, "n_distinct", n_sh, n_cols)
    nhash = _num(t, "n_hashes", n_sh, n_cols)
    lmin = _num(t, "len_min", n_sh, n_cols, np.nan)
    lmax = _num(t, "len_max", n_sh, n_cols, np.nan)
    lavg = _num(t, "len_avg", n_sh, n_cols)
    lmed = _num(t, "len_median", n_sh, n_cols, np.nan)

    def flag(name: str):
        return _num(
            t.set_column(t.schema.get_field_index(name), name, pc.cast(t.column(name), pa.int8())),
            name,
            n_sh,
            n_cols,
            1.0,
        )

    has = nvals > 0
    scal: dict[str, Any] = {
        "rc": rc.sum(axis=0).astype(np.int64),
        "nonnull": nonnull.sum(axis=0).astype(np.int64),
        "nvals": nvals.sum(axis=0).astype(np.int64),
        # each file's average length times its value count is its (integer) total length
        "len_total": np.rint(lavg * nvals).sum(axis=0).astype(np.int64),
        "nd_max": ndist.max(axis=0, initial=0).astype(np.int64),
        "nd_sum": ndist.sum(axis=0).astype(np.int64),
        "all_unique": (ndist == nonnull).all(axis=0).astype(np.int64),
        "exact_first": (
            _num(
                t.set_column(
                    t.schema.get_field_index("distinct_exact"),
                    "distinct_exact",
                    pc.cast(t.column("distinct_exact"), pa.int8()),
                ),
                "distinct_exact",
                n_sh,
                n_cols,
            )[0]
            != 0
        ).astype(np.int64)
        if n_sh
        else np.zeros(n_cols, np.int64),
        "lmin": np.fmin.reduce(lmin, axis=0, initial=np.nan) if n_sh else np.full(n_cols, np.nan),
        "lmax": np.fmax.reduce(lmax, axis=0, initial=np.nan) if n_sh else np.full(n_cols, np.nan),
    }
    for f in ("upper", "lower", "trimmed"):
        scal[f] = ((flag(f) != 0) | ~has).all(axis=0).astype(np.int64)
    mins = np.array(t.column("min").to_pylist(), dtype=object).reshape(n_sh, n_cols)
    maxs = np.array(t.column("max").to_pylist(), dtype=object).reshape(n_sh, n_cols)
    mm = _typed_min_max(
        columns, [list(mins[:, i]) for i in range(n_cols)], [list(maxs[:, i]) for i in range(n_cols)], con
    )
    # value hashes: union per column, below the smallest capped file's largest hash
    tau = np.full(n_cols, _MAX_HASH, dtype=np.uint64)
    span = np.arange(n_cols)
    capped_all = (nhash < ndist) & valcls[None, :]
    for j, (o, hv) in enumerate(hashes):
        capped = capped_all[j]
        if not capped.any() or not len(o):
            continue
        lo, hi = np.searchsorted(o, span, "left"), np.searchsorted(o, span, "right")
        ok = capped & (hi > lo)
        tau[ok] = np.minimum(tau[ok], hv[hi[ok] - 1].astype(np.uint64))
    uo, uh = _union([o for o, _ in hashes], [h for _, h in hashes], tau)
    # top values of value columns: (ordinal, hash) -> smallest raw, summed count
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
    tops = _group_tops(
        pa.table(
            {
                "o": pa.array(np.repeat(ordinal[vrows], lens), pa.int32()),
                "h": pc.cast(th, pa.uint32()),
                "raw": pc.cast(raw, pa.string()),
                "n": pc.cast(cnt, pa.int64()),
            }
        ),
        con,
    )
    medians: list[dict[float, int]] = [{} for _ in range(n_cols)]
    for i in np.flatnonzero(valcls).tolist():
        for v, w in zip(lmed[:, i].tolist(), ndist[:, i].tolist(), strict=True):
            if not np.isnan(v) and w:
                medians[i][v] = medians[i].get(v, 0) + int(w)
    samples: list[dict[str, list[int]]] = [{} for _ in range(n_cols)]
    other = np.flatnonzero(~valcls[ordinal])
    vals = t.column("top_values").take(pa.array(other)).to_pylist() if len(other) else []
    for k, idx in enumerate(other.tolist()):
        j, i = divmod(idx, n_cols)
        for v in vals[k] or []:
            samples[i].setdefault(v, [0, j])[0] += 1
    return MergeState(
        list(ids),
        n_sh,
        scal,
        [a for a, _ in mm],
        [b for _, b in mm],
        tau,
        uo,
        uh,
        tops,
        medians,
        samples,
        list(columns),
    )


def combine(a: MergeState, b: MergeState, con) -> MergeState:
    """The state of ``a``'s files followed by ``b``'s (equal to :func:`state_of` of all of them)."""
    import numpy as np
    import pyarrow as pa

    cols = a.columns
    if [tuple(c) for c in b.columns] != [tuple(c) for c in cols]:
        raise ValueError("cannot combine the profiles of files with other columns")
    sa, sb = a.scal, b.scal
    scal = {k: sa[k] + sb[k] for k in ("rc", "nonnull", "nvals", "len_total", "nd_sum")}
    scal["nd_max"] = np.maximum(sa["nd_max"], sb["nd_max"])
    for k in ("all_unique", "upper", "lower", "trimmed"):
        scal[k] = sa[k] & sb[k]
    scal["exact_first"] = sa["exact_first"] if a.n_files else sb["exact_first"]
    scal["lmin"] = np.fmin(sa["lmin"], sb["lmin"])
    scal["lmax"] = np.fmax(sa["lmax"], sb["lmax"])
    mm = _typed_min_max(
        cols,
        [[x, y] for x, y in zip(a.mins, b.mins, strict=True)],
        [[x, y] for x, y in zip(a.maxs, b.maxs, strict=True)],
        con,
    )
    tau = np.minimum(a.tau, b.tau)
    uo, uh = _union([a.union_o, b.union_o], [a.union_h, b.union_h], tau)
    tops = _group_tops(pa.concat_tables([a.tops, b.tops]), con)
    medians = []
    for ma, mb in zip(a.medians, b.medians, strict=True):
        m = dict(ma)
        for v, w in mb.items():
            m[v] = m.get(v, 0) + w
        medians.append(m)
    samples = []
    for xa, xb in zip(a.samples, b.samples, strict=True):
        x = {v: list(c) for v, c in xa.items()}
        for v, (n, first) in xb.items():
            if v in x:
                x[v][0] += n
            else:
                x[v] = [n, a.n_files + first]
        samples.append(x)
    return MergeState(
        a.ids + b.ids,
        a.n_files + b.n_files,
        scal,
        [x for x, _ in mm],
        [y for _, y in mm],
        tau,
        uo,
        uh,
        tops,
        medians,
        samples,
        list(cols),
    )


def finalize(table_key: str, st: MergeState, con) -> tuple[list[dict[str, Any]], Any]:
    """The table profile (column rows, capped hashes) of a :class:`MergeState`."""
    import numpy as np
    import pyarrow as pa

    from lakeql.profile import HASH_CAP, TOP_VALUES, _empty_row, hashes_schema

    class _T:  # what _empty_row needs of a table
        key = table_key

    columns, s = st.columns, st.scal
    n_cols = len(columns)
    rows_total = int(s["rc"][0]) if n_cols else 0
    out = [_empty_row(_T, n, ty, o, rows_total) for o, (n, ty) in enumerate(columns)]  # type: ignore[arg-type]
    m = np.bincount(st.union_o, minlength=n_cols) if len(st.union_o) else np.zeros(n_cols, np.int64)
    starts = np.r_[0, np.cumsum(m)[:-1]] if n_cols else np.zeros(0, np.int64)
    rank = np.arange(len(st.union_o)) - starts[st.union_o] if len(st.union_o) else np.zeros(0, np.int64)
    keep = rank < HASH_CAP
    tops: dict[int, tuple[list[str], list[int]]] = {}
    if st.tops.num_rows:
        con.register("_lakeql_tops", st.tops)
        try:
            g = con.execute(
                "SELECT o, list(raw ORDER BY n DESC, h), list(n ORDER BY n DESC, h) FROM ("
                "SELECT o, h, raw, n, row_number() OVER (PARTITION BY o ORDER BY n DESC, h) AS k "
                "FROM _lakeql_tops) WHERE k <= ? GROUP BY o",
                [TOP_VALUES],
            ).fetchall()
        finally:
            con.unregister("_lakeql_tops")
        tops = {int(o): (list(v), [int(x) for x in c]) for o, v, c in g}
    for i, r in enumerate(out):
        nn = int(s["nonnull"][i])
        r.update(nonnull=nn, min=st.mins[i], max=st.maxs[i])
        r["len_min"] = None if np.isnan(s["lmin"][i]) else int(s["lmin"][i])
        r["len_max"] = None if np.isnan(s["lmax"][i]) else int(s["lmax"][i])
        if r["value_class"] is None:
            nd = int(s["nd_sum"][i]) if s["all_unique"][i] else int(s["nd_max"][i])
            r.update(n_distinct=min(nd, nn), distinct_exact=st.n_files == 1 and bool(s["exact_first"][i]))
            votes = st.samples[i]
            r["top_values"] = sorted(votes, key=lambda v: (-votes[v][0], votes[v][1]))[:3]
            continue
        nv = int(s["nvals"][i])
        r["n_values"] = nv
        if nv == 0:
            continue
        r["len_avg"] = float(int(s["len_total"][i]) / nv)
        med = st.medians[i]
        if med:
            v = np.array(sorted(med), dtype=np.float64)
            cum = np.cumsum(np.array([med[x] for x in v.tolist()], dtype=np.float64))
            r["len_median"] = float(v[int(np.searchsorted(cum, cum[-1] / 2.0))])
        r["upper"], r["lower"], r["trimmed"] = (bool(s[f][i]) for f in ("upper", "lower", "trimmed"))
        mi = int(m[i])
        if int(st.tau[i]) == _MAX_HASH:  # every file stored all its hashes: exact union
            r.update(n_distinct=mi, distinct_exact=True)
        else:
            est = int(round((mi - 1) * float(1 << 32) / (int(st.tau[i]) + 1))) if mi > 1 else mi
            r.update(n_distinct=max(min(est, nv), mi + 1), distinct_exact=False)
        r["n_hashes"] = int(min(mi, HASH_CAP))
        r["top_values"], r["top_counts"] = tops.get(i, ([], []))
    hashes_t = pa.table(
        {
            "table_name": pa.array([table_key] * int(keep.sum()), pa.string()).dictionary_encode(),
            "ordinal": st.union_o[keep].astype(np.int32),
            "hash": st.union_h[keep],
        },
        schema=hashes_schema(),
    )
    return out, hashes_t


def merge_columnar(
    table_key: str, columns: list[tuple[str, str]], t: Any, hashes: list[tuple[Any, Any]], con=None
) -> tuple[list[dict[str, Any]], Any]:
    """:func:`merge` on the shards as one Arrow table ``t`` (``shards.parquet`` rows: one per file and
    column, by file in catalog order, then ordinal) and each file's ``(ordinals, hashes)``."""
    from lakeql.profile import connect, hashes_schema

    if not columns:
        return [], hashes_schema().empty_table()
    if t.num_rows != len(columns) * len(hashes):
        raise ValueError(
            f"{table_key}: {t.num_rows} shard rows for {len(hashes)} files of {len(columns)} columns"
        )
    own = con is None
    con = connect() if own else con
    try:
        return finalize(table_key, state_of(columns, t, hashes, [""] * len(hashes), con), con)
    finally:
        if own:
            con.close()


# ------------------------------------------------------------------------------ stored state
STATE = "merge_state.json"
STATE_UNION = "merge_union.parquet"
STATE_TOPS = "merge_tops.parquet"


def write_state(d: Any, st: MergeState) -> None:
    """Store ``st`` in profile folder ``d`` (what the next append-only refresh starts from)."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def num(a: Any) -> list:
        return [None if isinstance(x, float) and np.isnan(x) else x for x in np.asarray(a).tolist()]

    doc = {
        "ids": st.ids,
        "n_files": st.n_files,
        "columns": [list(c) for c in st.columns],
        "scal": {k: num(v) for k, v in st.scal.items()},
        "mins": st.mins,
        "maxs": st.maxs,
        "tau": [int(x) for x in st.tau.tolist()],
        "medians": [[[v, w] for v, w in m.items()] for m in st.medians],
        "samples": [[[v, c[0], c[1]] for v, c in x.items()] for x in st.samples],
    }
    (Path(d) / STATE).write_text(json.dumps(doc))
    small = {"compression": "zstd", "write_statistics": False, "store_schema": False}
    pq.write_table(
        pa.table({"ordinal": pa.array(st.union_o, pa.int32()), "hash": pa.array(st.union_h, pa.uint32())}),
        Path(d) / STATE_UNION,
        use_dictionary=False,
        column_encoding={"ordinal": "DELTA_BINARY_PACKED", "hash": "DELTA_BINARY_PACKED"},
        **small,
    )
    pq.write_table(st.tops, Path(d) / STATE_TOPS, **small)


def read_state(d: Any, columns: list[tuple[str, str]]) -> MergeState | None:
    """The stored :class:`MergeState` in profile folder ``d`` for ``columns``, or None (none stored,
    unreadable, or made for other columns/types)."""
    import json

    import numpy as np

    from lakeql import parquet_io

    d = Path(d)
    try:
        doc = json.loads((d / STATE).read_text())
        if [tuple(c) for c in doc["columns"]] != [tuple(c) for c in columns]:
            return None
        u = parquet_io.read_table(d / STATE_UNION)
        tops = parquet_io.read_table(d / STATE_TOPS).cast(_tops_schema())
        n = len(columns)
        scal = {}
        for k, v in doc["scal"].items():
            if k in ("lmin", "lmax"):
                scal[k] = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
            else:
                scal[k] = np.array(v, dtype=np.int64)
        if any(len(v) != n for v in scal.values()) or set(scal) != {*_SCALARS, "lmin", "lmax"}:
            return None
        st = MergeState(
            list(doc["ids"]),
            int(doc["n_files"]),
            scal,
            list(doc["mins"]),
            list(doc["maxs"]),
            np.array(doc["tau"], dtype=np.uint64),
            u.column("ordinal").to_numpy(),
            u.column("hash").to_numpy(),
            tops,
            [{float(v): int(w) for v, w in m} for m in doc["medians"]],
            [{v: [int(c), int(f)] for v, c, f in x} for x in doc["samples"]],
            [(a, b) for a, b in doc["columns"]],
        )
        if len(st.tau) != n or len(st.mins) != n or len(st.medians) != n or len(st.samples) != n:
            return None
        return st
    except Exception:  # noqa: BLE001 - no usable state: the shards are merged again
        return None
