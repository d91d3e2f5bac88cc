"""Per-file column profiles (shards) of multi-file tables, and their refresh (issue 10 item 4).

A table of several files keeps, beside its merged ``columns.parquet``/``hashes.parquet``
(:mod:`lakeql.profile`), the profile of each file:

``shards.parquet``        one row per (file, column): the columns of ``columns.parquet`` plus ``shard``
                          (:func:`lakeql.shards.shard_id` of the file: path, size, mtime) and ``file``
``shard_hashes.parquet``  ``shard``, ``ordinal``, ``hash``: each file's bottom ``HASH_CAP`` value hashes
``shards.N.parquet``, ``shard_hashes.N.parquet``  the same for the files appended by the N-th refresh
``merge_state.json``, ``merge_union.parquet``, ``merge_tops.parquet``  the merge state of all the files
                          (:class:`lakeql.profile_merge.MergeState`)

A full build profiles every file in one scan (``filename`` column, GROUP BY file); ``--refresh`` reads the
stored shards, profiles only the files without one (new or rewritten) and drops the shards of files
that are gone; either way the table profile is :func:`lakeql.profile_merge.merge` of the shards, so a
refresh gives exactly what a full build of the same files gives. When files were only appended (after
the stored ones in catalog order) the stored merge state is combined with the new files' states alone:
no stored shard is read, the stored shard files are hard-linked and only the new files' are written.
Single-file tables keep the plain layout (no shard files: their build time and size do not grow).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql.lake import FileStamp, Table, quote_ident, quote_literal
from lakeql.shards import shard_id

SHARDS = "shards.parquet"
SHARD_HASHES = "shard_hashes.parquet"
_FILE_COL = "_lakeql_shard_file"


def sharded(table: Table) -> bool:
    """Whether ``table`` keeps per-file profile shards (more than one file)."""
    return len(table.files) > 1


def _file_col(columns: list[tuple[str, str]]) -> str:
    names = {n.lower() for n, _ in columns}
    name = _FILE_COL
    while name.lower() in names:
        name += "_"
    return name


def profile_files(
    table: Table, files: list[FileStamp], columns: list[tuple[str, str]], con=None, row_count: int = 0
) -> list[tuple[str, list[dict[str, Any]], Any]]:
    """Profile each of ``files`` of ``table`` on its own, from one grouped scan of them all:
    ``[(shard id, column rows, hashes)]`` in the order of ``files`` (each as
    :func:`lakeql.profile.profile_table` of that file alone would give, with the table's columns)."""
    import numpy as np
    import pyarrow as pa

    from lakeql import profile
    from lakeql.profile import (
        MEMORY_CELLS,
        _empty_row,
        _grouped_stats,
        _native_sql,
        arrow_copy_exact,
        maybe_unique,
        set_native,
        value_class,
    )
    from lakeql.shards import shard_id

    if not files:
        return []
    # CSV/JSON types are sniffed from the files read together: read them all (as the table's view does)
    # and keep the rows of ``files``, so a file's profile never depends on which files came with it
    whole = table.format != "parquet" and len(files) < len(table.files)
    sub = table if whole else table.with_files(files)
    wanted = {shard_id(f) for f in files}
    scan = sub.scan_sql()
    if any(n.lower() == "file_index" for n, _ in columns):  # a real column shadows the virtual one
        fcol = _file_col(columns)
        scan = scan[:-1] + f", filename = {quote_literal(fcol)})"
        by_path = {p: f for p, f in zip(sub.paths, sub.files, strict=True) if shard_id(f) in wanted}
        keep = ", ".join(quote_literal(p) for p in by_path)
    else:  # DuckDB's virtual file_index: the position of the file in the list (cheaper than names)
        fcol = "file_index"
        by_path = {i: f for i, f in enumerate(sub.files) if shard_id(f) in wanted}
        keep = ", ".join(str(i) for i in by_path)
    where = f" WHERE {quote_ident(fcol)} IN ({keep})" if whole else ""
    out_rows = {
        shard_id(f): [_empty_row(table, n, t, o, 0) for o, (n, t) in enumerate(columns)] for f in files
    }
    out_hashes = {shard_id(f): profile.hashes_schema().empty_table() for f in files}
    if not columns:
        return [(shard_id(f), out_rows[shard_id(f)], out_hashes[shard_id(f)]) for f in files]
    own = con is None
    con = profile.connect() if own else con
    try:
        present = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        present.pop(fcol, None)
        proj = [f"{quote_ident(fcol)} AS _f"]
        for n, t in columns:
            q = quote_ident(n)
            if n not in present:
                proj.append(f"NULL AS {q}")
            elif present[n] != t and profile_merge_safe(t):
                proj.append(f"TRY_CAST({q} AS {t}) AS {q}")
            else:
                proj.append(q)
        select = f"SELECT {', '.join(proj)} FROM {scan}{where}"
        if row_count * len(columns) <= MEMORY_CELLS and arrow_copy_exact(columns):
            data = con.sql(select).to_arrow_table()
            con.register("_lakeql_shard_t", data)
            source = "_lakeql_shard_t"
        else:
            source = f"({select})"
        try:
            exprs = ["_f", "count(*)"]
            for n, t in columns:
                exprs.extend(_native_sql(n, t))
            native = con.execute(f"SELECT {', '.join(exprs)} FROM {source} GROUP BY _f").fetchall()
            for rec in native:
                sid = shard_id(by_path[rec[0]])
                rows = out_rows[sid]
                n_rows = int(rec[1])
                for i, r in enumerate(rows):
                    r["row_count"] = n_rows
                    set_native(r, rec[2 + 7 * i : 9 + 7 * i])
            maybe: dict[int, list[str]] = {}  # ordinal -> files where HyperLogLog says 'maybe unique'
            for path, f in by_path.items():
                rows = out_rows[shard_id(f)]
                for r in rows:
                    if maybe_unique(r, r["row_count"]):
                        maybe.setdefault(r["ordinal"], []).append(path)
            if maybe:
                ords = sorted(maybe)
                got = con.execute(
                    "SELECT _f, "
                    + ", ".join(f"count(DISTINCT {quote_ident(columns[o][0])})" for o in ords)
                    + f" FROM {source} GROUP BY _f"
                ).fetchall()
                for rec in got:
                    rows = out_rows[shard_id(by_path[rec[0]])]
                    for o, d in zip(ords, rec[1:], strict=True):
                        if rec[0] in maybe[o]:
                            rows[o]["n_distinct"], rows[o]["distinct_exact"] = int(d), True
            grouped = [o for o, (_, t) in enumerate(columns) if value_class(t) is not None]
            if grouped:
                sel = ", ".join(f'CAST({quote_ident(columns[o][0])} AS VARCHAR) AS "{o}"' for o in grouped)
                on = ", ".join(f'"{o}"' for o in grouped)
                g = con.sql(
                    "SELECT _f, CAST(col AS INTEGER) AS col, (hash(v) >> 32)::UINTEGER AS h, "
                    "count(*)::BIGINT AS n, length(v)::INTEGER AS len, min(raw) AS raw, "
                    "bool_and(raw = upper(raw)) AS up, bool_and(raw = lower(raw)) AS lo, "
                    "bool_and(raw = trim(raw)) AS tr "
                    "FROM (SELECT _f, col, raw, nullif(lower(trim(raw)), '') AS v "
                    f"FROM (UNPIVOT (SELECT _f, {sel} FROM {source}) ON {on} INTO NAME col VALUE raw)) "
                    "WHERE v IS NOT NULL GROUP BY _f, col, v"
                ).to_arrow_table()
                if g.num_rows:
                    fcodes = g.column("_f").dictionary_encode()
                    codes = fcodes.combine_chunks().indices.to_numpy()
                    names = fcodes.combine_chunks().dictionary.to_pylist()
                    order = np.argsort(codes, kind="stable")
                    g = g.drop_columns(["_f"]).take(pa.array(order))
                    codes = codes[order]
                    bounds = np.searchsorted(codes, np.arange(len(names) + 1))
                    for c, path in enumerate(names):
                        part = g.slice(int(bounds[c]), int(bounds[c + 1] - bounds[c]))
                        if part.num_rows:
                            sid = shard_id(by_path[path])
                            out_hashes[sid] = _grouped_stats(table, out_rows[sid], part, np, pa)
        finally:
            if source == "_lakeql_shard_t":
                con.unregister(source)
        add_top_hashes([r for rows in out_rows.values() for r in rows], con)
        return [(shard_id(f), out_rows[shard_id(f)], out_hashes[shard_id(f)]) for f in files]
    finally:
        if own:
            con.close()


def add_top_hashes(rows: list[dict[str, Any]], con) -> None:
    """Set each row's ``top_hashes`` (the stored hashes of its top values), in one DuckDB call, so a
    merge never hashes the values of files it did not profile."""
    from lakeql.profile import hash_values

    vals = [v for r in rows for v in r["top_values"] if r["value_class"] is not None]
    hs = hash_values(vals, con).tolist()
    pos = 0
    for r in rows:
        if r["value_class"] is None:
            r["top_hashes"] = []
            continue
        n = len(r["top_values"])
        r["top_hashes"] = hs[pos : pos + n]
        pos += n


def profile_merge_safe(ctype: str) -> bool:
    from lakeql.profile_merge import _SAFE_TYPE

    return bool(_SAFE_TYPE.match(ctype))


# ------------------------------------------------------------------------------ stored shards
def shards_schema():
    import pyarrow as pa

    from lakeql.profile import columns_schema

    return (
        columns_schema()
        .append(pa.field("top_hashes", pa.list_(pa.uint32())))
        .append(pa.field("shard", pa.string()))
        .append(pa.field("file", pa.string()))
    )


def shard_hashes_schema():
    import pyarrow as pa

    return pa.schema(
        [("shard", pa.dictionary(pa.int32(), pa.string())), ("ordinal", pa.int32()), ("hash", pa.uint32())]
    )


@dataclass
class Shards:
    """A table's file profiles: ``rows`` (``shards.parquet``: one row per file and column, by file then
    ordinal), ``ids`` (shard id per file, in that order) and ``hashes`` (per file: ordinals, hashes)."""

    rows: Any
    ids: list[str]
    hashes: list[tuple[Any, Any]]
    src: Path | None = None  # the folder the stored hash files were read from
    src_files: list[str] = field(default_factory=list)  # their names
    src_ids: set[str] = field(default_factory=set)  # the shard ids they hold
    state: Any = None  # their lakeql.profile_merge.MergeState once merged (stored for the next append)

    def take(self, ids: list[str]) -> Shards:
        """The shards of ``ids`` (all present), in that order."""
        import pyarrow as pa

        n_cols = self.rows.num_rows // max(1, len(self.ids))
        pos = {sid: i for i, sid in enumerate(self.ids)}
        parts = [self.rows.slice(pos[s] * n_cols, n_cols) for s in ids]
        rows = pa.concat_tables(parts) if parts else self.rows.slice(0, 0)
        return Shards(
            rows, list(ids), [self.hashes[pos[s]] for s in ids], self.src, self.src_files, self.src_ids
        )


def from_profiles(table: Table, new: list[tuple[str, list[dict[str, Any]], Any]]) -> Shards:
    """:class:`Shards` of freshly profiled files (:func:`profile_files` output)."""
    import pyarrow as pa

    files = {shard_id(f): f.path for f in table.files}
    recs = [{**r, "shard": sid, "file": files.get(sid, "")} for sid, rows, _ in new for r in rows]
    hs = [(h.column("ordinal").to_numpy(), h.column("hash").to_numpy()) for _, _, h in new]
    return Shards(pa.Table.from_pylist(recs, schema=shards_schema()), [sid for sid, _, _ in new], hs)


def read(d: Path, columns: list[tuple[str, str]]) -> Shards | None:
    """The stored shards in profile folder ``d``, or None when there are none or they were made for other
    columns/types (then every file is profiled again)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names_h = sorted(p.name for p in d.glob("shard_hashes*.parquet")) if d.is_dir() else []
    names_r = _numbered(d, "shards") if d.is_dir() else []
    if SHARDS not in names_r or SHARD_HASHES not in names_h:
        return None
    try:
        rows = pa.concat_tables([pq.read_table(d / n, schema=shards_schema()) for n in names_r])
        parts = [pq.read_table(d / n) for n in names_h]
    except Exception:  # noqa: BLE001 - damaged shards: profile every file again
        return None
    n_cols = len(columns)
    if n_cols == 0 or rows.num_rows % n_cols:
        return None
    ids = rows.column("shard").to_pylist()[::n_cols]
    n_sh = len(ids)
    want_names = [n for n, _ in columns] * n_sh
    want_types = [t for _, t in columns] * n_sh
    if rows.column("column_name").to_pylist() != want_names or rows.column("type").to_pylist() != want_types:
        return None
    if rows.column("shard").to_pylist() != [s for s in ids for _ in range(n_cols)]:
        return None
    got = {}
    held: set[str] = set()
    for hs in parts:  # the base file, then the files appended by refreshes (shard_hashes.N.parquet)
        if not hs.num_rows:
            continue
        shard = hs.column("shard").combine_chunks()
        names = shard.dictionary.to_pylist()
        held.update(names)
        codes = shard.indices.to_numpy()
        ords, vals = hs.column("ordinal").to_numpy(), hs.column("hash").to_numpy()
        bounds = np.flatnonzero(np.diff(codes)) + 1
        starts, ends = np.r_[0, bounds], np.r_[bounds, len(codes)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            got[names[int(codes[s])]] = (ords[s:e], vals[s:e])
    empty = (np.empty(0, np.int32), np.empty(0, np.uint32))
    hashes = [got.get(sid, empty) for sid in ids]
    n_h = pc.fill_null(rows.column("n_hashes"), 0).to_numpy().reshape(n_sh, n_cols).sum(axis=1)
    if any(len(h[0]) != int(n) for h, n in zip(hashes, n_h, strict=True)):
        return None
    return Shards(rows, ids, hashes, d, names_h, set(ids) | held)


def _numbered(d: Path, stem: str) -> list[str]:
    """``<stem>.parquet``, ``<stem>.1.parquet``, ``<stem>.2.parquet``... present in ``d``, in that order
    (the base file, then the files appended by refreshes)."""
    out = []
    for p in d.glob(f"{stem}*.parquet"):
        mid = p.name[len(stem) : -len(".parquet")]
        if mid == "":
            out.append((0, p.name))
        elif mid[:1] == "." and mid[1:].isdigit():
            out.append((int(mid[1:]), p.name))
    return [n for _, n in sorted(out)]


MAX_HASH_FILES = 16  # appended shard hash (and row) files before a refresh rewrites them into one


@dataclass
class Appended:
    """What an append-only refresh keeps (:func:`plan`): the stored merge state of the table's first
    files (all still there, first in catalog order) and the names of their stored shard files."""

    state: Any  # lakeql.profile_merge.MergeState
    src: Path
    row_files: list[str]
    hash_files: list[str]
    ids: list[str] = field(default_factory=list)  # after finish: every file's shard id


@dataclass
class AppendShards:
    """:func:`finish` of an append: the new files' shards and the merged state, for :func:`write`."""

    kept: Appended
    fresh: Shards
    state: Any


def _appendable(d: Path, table: Table, columns: list[tuple[str, str]]) -> Appended | None:
    """The stored state of profile folder ``d`` when ``table`` only gained files after the stored ones
    (and not too many shard files are stored yet), else None."""
    from lakeql.profile_merge import read_state

    if not d.is_dir():
        return None
    rows_f, hash_f = _numbered(d, "shards"), _numbered(d, "shard_hashes")
    if SHARDS not in rows_f or SHARD_HASHES not in hash_f:
        return None
    if len(rows_f) >= MAX_HASH_FILES or len(hash_f) >= MAX_HASH_FILES:
        return None
    st = read_state(d, columns)
    if st is None or not st.ids:
        return None
    now = [shard_id(f) for f in table.files]
    k = len(st.ids)
    if now[:k] != st.ids or len(now) <= k:
        return None
    return Appended(st, d, rows_f, hash_f)


def _write_hashes(path: Path, ids: list[str], hashes: list[tuple[Any, Any]]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = [len(o) for o, _ in hashes]
    sids = np.repeat(np.arange(len(n), dtype=np.int32), n)
    dictionary = pa.array(ids, pa.string())
    ords = np.concatenate([o for o, _ in hashes]) if n else np.empty(0, np.int32)
    hs = np.concatenate([h for _, h in hashes]) if n else np.empty(0, np.uint32)
    t = pa.table(
        {
            "shard": pa.DictionaryArray.from_arrays(pa.array(sids, pa.int32()), dictionary),
            "ordinal": pa.array(ords, pa.int32()),
            "hash": pa.array(hs, pa.uint32()),
        },
        schema=shard_hashes_schema(),
    )
    pq.write_table(
        t,
        path,
        compression="zstd",
        use_dictionary=["shard"],
        column_encoding={"ordinal": "DELTA_BINARY_PACKED", "hash": "DELTA_BINARY_PACKED"},
        row_group_size=1 << 20,
    )


def _link(src: Path, dst: Path, names: list[str]) -> None:
    """Hard-link (or copy) ``names`` from ``src`` into ``dst``: stored shard files kept unchanged."""
    import shutil

    for f in names:
        try:
            os.link(src / f, dst / f)
        except OSError:
            shutil.copy2(src / f, dst / f)


def write(d: Path, table: Table, shards: Shards | AppendShards) -> None:
    """Write the shards (in the table's file order) and their merge state into profile folder ``d``."""
    import pyarrow.parquet as pq

    from lakeql.profile_merge import write_state

    if isinstance(shards, AppendShards):  # an append: link the stored files, write the new files' only
        k = shards.kept
        _link(k.src, d, k.row_files + k.hash_files)
        if shards.fresh.ids:
            pq.write_table(shards.fresh.rows, d / f"shards.{len(k.row_files)}.parquet", compression="zstd")
            _write_hashes(
                d / f"shard_hashes.{len(k.hash_files)}.parquet", shards.fresh.ids, shards.fresh.hashes
            )
        write_state(d, shards.state)
        return
    pq.write_table(shards.rows, d / SHARDS, compression="zstd")
    if shards.state is not None:
        write_state(d, shards.state)
    ids, hashes, name = shards.ids, shards.hashes, SHARD_HASHES
    if (
        shards.src is not None
        and shards.src_files
        and shards.src_ids <= set(ids)
        and len(shards.src_files) < MAX_HASH_FILES
    ):
        # an append: link the stored hash files (unchanged bytes) and write only the new files' hashes
        try:
            for f in shards.src_files:
                os.link(shards.src / f, d / f)
        except OSError:
            for f in shards.src_files:
                (d / f).unlink(missing_ok=True)
        else:
            new = [i for i, sid in enumerate(ids) if sid not in shards.src_ids]
            if not new:
                return
            ids, hashes = [ids[i] for i in new], [hashes[i] for i in new]
            name = f"shard_hashes.{len(shards.src_files)}.parquet"
    _write_hashes(d / name, ids, hashes)


# ------------------------------------------------------------------------------ plan / finish
def plan(
    store: Any, table: Table, columns: list[tuple[str, str]], reuse: bool
) -> tuple[Shards | Appended | None, list[FileStamp]]:
    """(the stored shards of ``table`` still valid, or None; the files to profile). ``reuse`` False (a
    full build) profiles every file. When files were only appended (after the stored ones, in catalog
    order) the stored merge state stands for the stored shards (:class:`Appended`): nothing else of
    theirs is read."""
    from lakeql import profile
    from lakeql.shards import diff

    prev = None
    if reuse:
        e = store.find(profile.KIND, table.key)
        if e is not None and e.params == profile.params(table):
            fast = _appendable(store.root / e.path, table, columns) if columns else None
            if fast is not None:
                return fast, list(table.files[len(fast.state.ids) :])
            prev = read(store.root / e.path, columns)
    d = diff(table, prev.ids if prev is not None else [])
    if prev is not None:
        prev = prev.take([shard_id(f) for f in d.kept])
    return prev, list(d.added)


def finish(
    table: Table,
    columns: list[tuple[str, str]],
    kept: Shards | Appended | None,
    new: list[tuple[str, list[dict[str, Any]], Any]],
    con=None,
) -> tuple[list[dict[str, Any]], Any, Shards | AppendShards]:
    """Merge kept and new shards (in the table's file order): (column rows, hashes, shards)."""
    from lakeql import profile
    from lakeql.profile_merge import combine, finalize, state_of

    fresh = from_profiles(table, new)
    own = con is None and columns
    con = profile.connect() if own else con
    try:
        if isinstance(kept, Appended):  # the stored state + the new files' states only
            todo = [shard_id(f) for f in table.files[len(kept.state.ids) :]]
            if sorted(fresh.ids) != sorted(todo):
                raise ValueError(f"{table.key}: profiles of {len(fresh.ids)} files for {len(todo)} new files")
            fresh = fresh.take(todo)  # in catalog order (an engine returns chunks as they finish)
            add = state_of(columns, fresh.rows, fresh.hashes, fresh.ids, con)
            st = combine(kept.state, add, con) if fresh.ids else kept.state
            if st.ids != [shard_id(f) for f in table.files]:
                raise ValueError(f"{table.key}: appended shards out of catalog order")
            rows, hashes = finalize(table.key, st, con)
            return rows, hashes, AppendShards(kept, fresh, st)
        return _finish_all(table, columns, kept, fresh, con)
    finally:
        if own:
            con.close()


def _finish_all(
    table: Table, columns: list[tuple[str, str]], kept: Shards | None, fresh: Shards, con
) -> tuple[list[dict[str, Any]], Any, Shards]:
    import pyarrow as pa

    from lakeql.profile_merge import finalize, merge_columnar, state_of

    if kept is not None and kept.ids:
        both = Shards(
            pa.concat_tables([kept.rows, fresh.rows]),
            kept.ids + fresh.ids,
            kept.hashes + fresh.hashes,
            kept.src,
            kept.src_files,
            kept.src_ids,
        )
    else:
        both = fresh
    shards = both.take([shard_id(f) for f in table.files])
    if not columns:
        rows, hashes = merge_columnar(table.key, columns, shards.rows, shards.hashes, con)
        return rows, hashes, shards
    shards.state = state_of(columns, shards.rows, shards.hashes, shards.ids, con)
    rows, hashes = finalize(table.key, shards.state, con)
    return rows, hashes, shards


def profile_sharded(
    store: Any,
    table: Table,
    columns: list[tuple[str, str]],
    reuse: bool,
    con=None,
    file_rows: list[int] | None = None,
) -> tuple[list[dict[str, Any]], Any, Shards, int]:
    """Profile a multi-file table from its shards, profiling only files without a stored shard when
    ``reuse``: (column rows, hashes, shards, files profiled now)."""
    kept, todo = plan(store, table, columns, reuse)
    rows_of = dict(zip([f.path for f in table.files], file_rows or [], strict=False))
    n_new = sum(int(rows_of.get(f.path, 0)) for f in todo)
    # a refresh's few new rows: one DuckDB thread (the same results; a second one only added overhead)
    with one_thread(con) if (kept is not None and n_new <= ONE_THREAD_ROWS) else nullcontext():
        new = profile_files(table, todo, columns, con, n_new)
        rows, hashes, shards = finish(table, columns, kept, new, con)
    return rows, hashes, shards, len(todo)


#: at most this many new rows (one DuckDB row group: a single scan task) are profiled, and merged
#: into the stored state, on one DuckDB thread by a refresh (:func:`one_thread`)
ONE_THREAD_ROWS = 122_880


@contextmanager
def one_thread(con) -> Iterator[None]:
    """Run the block with ``con``'s DuckDB database on one thread, then restore its thread count. A
    refresh profiling a 1% append (3,368 rows) spent 0.02-0.2 CPU s more, mostly system time, with the
    default thread per core: the second worker only waits and wakes on such small scans. ``con`` must
    be private to the caller (the setting is its database's); None: nothing to set."""
    if con is None:
        yield
        return
    before = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    if before == 1:
        yield
        return
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {before}")
