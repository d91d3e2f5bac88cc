"""``build_discovery(ctx)``: the per-column and per-table features of union search, table search and
transformation blocking, written to ``<index_dir>/discovery/`` (manifest kind ``discovery``).

It reads the join profiles through the store (``joins/lake/columns.parquet``: top values, MinHash
sketches, distinct counts) and the DeepJoin vectors (``joins/semantic/vectors.npy``) when they exist,
and the Parquet footers (descriptions, numeric min/max) itself; it never reads table rows. Files:

``columns.parquet``  one row per lake column (tables contiguous, in table order): type class, distinct
                     count, uniqueness, numeric range, description, a few sample values
``tables.parquet``   one row per table: its column range, row count, description, fingerprint
``colvec.zst``       sparse TF-IDF of each column's values + header + description (hashed features)
``namevec.zst``      sparse TF-IDF of each column's header (character 3-grams and words)
``sketch_values.zst`` uint64: every column's bottom-k MinHash sketch (k <= 256), concatenated in column
                     order (lengths: ``sketch_len`` in columns.parquet)
``deepjoin.zst``     float32 (columns x d) DeepJoin vectors (zero rows where none); only when built
``bm25_<field>.zst`` BM25 weights (tables x terms) of ``name``, ``description``, ``columns``, ``values``
``vocab.parquet``    the BM25 terms
``tablevec.npy``     float32 table-summary embeddings (only with ``--discovery-embed``)
``tok_hash.zst``/``tok_col.zst``  value-word postings (CRC32, sorted) of text columns, for blocking

The arrays and matrices are zstd-compressed (:mod:`lakeql.packed`; format 2: 25.6 MB of ``.npy``/``.npz``
became 7.0 MB on a 2,339-table lake); an index of format 1 is refused with "rebuild with lakeql index".
``union_edges.parquet``  ``union_graph()``: each table's best unionable tables (lakes up to
                     ``UNION_GRAPH_MAX_TABLES`` tables; larger lakes compute it on demand)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from lakeql import packed, parquet_io
from lakeql.joins import union_text as tx
from lakeql.progress import progress, say
from lakeql.sources import buildfs
from lakeql.store import IndexEntry, dir_bytes

FORMAT = 2  # 2: arrays zstd-packed (.zst, lakeql.packed); 1: .npy/.npz
# a field name of a STRUCT (or UNION) type as DuckDB prints it: after 'STRUCT(' or ', ', before its type
_FIELD = re.compile(r'(?:(?:STRUCT|UNION)\(|, )("(?:[^"]|"")*"|\w+) ')
MAX_FIELDS = 200  # field names taken per column (a wide nested schema's words are not all worth keeping)


def struct_fields(duck_type: str) -> list[str]:
    """The field names of the STRUCTs (at any depth) of a DuckDB type (unquoted): Spark and Arrow tables
    keep much of their schema in nested fields, which table search should find like columns."""
    if "STRUCT(" not in duck_type and "UNION(" not in duck_type:
        return []
    names = [m.group(1) for m in _FIELD.finditer(duck_type)][:MAX_FIELDS]
    return [n[1:-1].replace('""', '"') if n.startswith('"') else n for n in names]
KIND = "discovery"
SKETCH_K = 256
SAMPLE_VALUES = 50  # top values per column used for features
BM25_VALUES = 10  # top values per text column indexed for table search
UNION_GRAPH_MAX_TABLES = 2000
BM25_FIELDS = ("name", "description", "columns", "values")
PARTS = "parts.json"  # per table: the digest of its inputs and its BM25 term counts (kept by a refresh)
RAW_VEC, RAW_NAME = "raw_colvec.zst", "raw_namevec.zst"  # feature counts before TF-IDF, per column
K1, B = 1.2, 0.75
_NUM = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
        "UBIGINT", "UHUGEINT")


def type_class(duck_type: str) -> str:
    """'text', 'int', 'float', 'date', 'bool' or 'other' (union compatibility classes)."""
    t = duck_type.upper().strip()
    if t in ("VARCHAR", "UUID") or t.startswith("ENUM("):
        return "text"
    if t in _NUM:
        return "int"
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return "float"
    if t.startswith(("DATE", "TIMESTAMP", "TIME")):
        return "date"
    if t == "BOOLEAN":
        return "bool"
    return "other"


def _meta_text(meta: dict | None) -> str:
    """The ``description`` or ``comment`` of a Parquet key-value metadata dict (bytes keys), or ''."""
    if not meta:
        return ""
    for key in (b"description", b"comment", b"DESCRIPTION", b"COMMENT"):
        v = meta.get(key)
        if v:
            return v.decode("utf-8", "replace")[:2000]
    return ""


def footer_info(table) -> tuple[str, dict[str, str], dict[str, tuple[float, float]]]:
    """(table description, column descriptions, numeric (min, max) per column) from Parquet footers."""

    desc, cdesc, ranges = "", {}, {}
    for path in table.paths[:4]:
        try:
            pf = buildfs.parquet_file(path)
        except Exception:  # noqa: BLE001 - the catalog already warned about unreadable files
            continue
        schema = pf.schema_arrow
        desc = desc or _meta_text(schema.metadata)
        for f in schema:
            if f.name not in cdesc:
                d = _meta_text(f.metadata)
                if d:
                    cdesc[f.name] = d
        md = pf.metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        for rg in range(min(md.num_row_groups, 16)):
            g = md.row_group(rg)
            for i, name in enumerate(names):
                col = g.column(i)
                if col.physical_type not in _NUMERIC_PHYSICAL:  # only numeric ranges are used; a text
                    continue  # statistic is not even decoded (invalid UTF-8 in it raised and aborted builds)
                st = col.statistics
                if st is None or not st.has_min_max:
                    continue
                try:
                    lo, hi = st.min, st.max
                except (ValueError, ArithmeticError, NotImplementedError):  # a nanosecond timestamp
                    continue  # that datetime cannot hold (pandas writes them) raised and aborted builds
                if not isinstance(lo, int | float) or isinstance(lo, bool):
                    continue
                a, b = ranges.get(name, (math.inf, -math.inf))
                ranges[name] = (min(a, float(lo)), max(b, float(hi)))
    return desc, cdesc, ranges


_NUMERIC_PHYSICAL = frozenset({"INT32", "INT64", "FLOAT", "DOUBLE"})


def _csr(rows: list[Any], n_dims: int):
    """CSR (float32) of rows given as {feature: count} dicts or as kept (ids, counts) arrays."""
    import numpy as np
    import scipy.sparse as sp

    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, r in enumerate(rows):
        indptr[i + 1] = indptr[i] + len(r if isinstance(r, dict) else r[0])
    if all(isinstance(r, dict) for r in rows):
        idx = np.fromiter((k for r in rows for k in r), dtype=np.int32, count=int(indptr[-1]))
        val = np.fromiter((v for r in rows for v in r.values()), dtype=np.float32, count=int(indptr[-1]))
    else:
        idx = np.concatenate([np.fromiter(r, dtype=np.int32, count=len(r)) if isinstance(r, dict)
                              else np.asarray(r[0], dtype=np.int32) for r in rows] or [np.empty(0, np.int32)])
        val = np.concatenate([np.fromiter(r.values(), dtype=np.float32, count=len(r)) if isinstance(r, dict)
                              else np.asarray(r[1], dtype=np.float32) for r in rows]
                             or [np.empty(0, np.float32)])
    return sp.csr_matrix((val, idx, indptr), shape=(len(rows), n_dims))


UNIQUE_BELOW = 8  # tfidf_csr: features present found by np.unique below n_dims / 8 entries, else bincount


def tfidf_csr(m):
    """Sublinear TF-IDF of the raw counts CSR ``m`` (changed in place), L2-normalized rows, as CSR
    (float32).

    The products run on the features present only (columns renumbered in their order, then numbered back):
    scipy's row norms (``multiply``) and row scaling (a sparse product) allocate dense arrays as wide as
    the matrix (3 x 2**20 entries, ~17 ms per call whatever the row count: most of a small refresh's
    discovery index). A renumbering that keeps the columns' order keeps each row's entries, their order
    and every float operation as they were: the result is byte-equal to the products over all 2**20
    columns (tests/test_refresh_floor.py compares them)."""
    import numpy as np
    import scipy.sparse as sp

    n_rows, n_dims = m.shape
    m.data = 1.0 + np.log(np.maximum(m.data, 1e-9), dtype=np.float32)
    m.data = np.maximum(m.data, 0.1).astype(np.float32)
    if m.nnz < n_dims // UNIQUE_BELOW:
        # few entries: the features present by a sort of the entries (a dense array over all 2**20
        # hashed features is 3 x 8 MB of fresh pages per call)
        used, at = np.unique(m.indices, return_inverse=True)
        df = np.bincount(at, minlength=len(used))
    else:  # np.unique sorts the indices: 2.5x (200k entries) to 12x (5M) slower than the dense count
        dense = np.bincount(m.indices, minlength=n_dims)
        used = np.flatnonzero(dense)
        at = (np.cumsum(dense > 0) - 1)[m.indices]
        df = dense[used]
    at = at.astype(np.int32 if len(used) < (1 << 31) else np.int64, copy=False)
    idf = np.log((n_rows + 1) / (df + 1), dtype=np.float64) + 1.0
    c = sp.csr_matrix(((m.data * idf[at]).astype(np.float32), at, m.indptr),
                      shape=(n_rows, max(len(used), 1)))
    norms = np.sqrt(np.asarray(c.multiply(c).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    out = sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ c, dtype=np.float32)
    idx = used[out.indices].astype(m.indices.dtype) if len(used) else out.indices.astype(m.indices.dtype)
    return sp.csr_matrix((out.data, idx, out.indptr), shape=(n_rows, n_dims))


def column_features(name: str, desc: str, tclass: str, values: list[str], rng: tuple[float, float] | None
                    ) -> tuple[dict[int, float], dict[int, float]]:
    """(value+header+description features, header features) of one column, hashed."""
    feats: list[tuple[str, float]] = [("t:" + tclass, 1.0)]
    for w in tx.words(name):
        feats.append(("w:" + w, 2.0))
    for w in tx.words(desc)[:40]:
        feats.append(("w:" + w, 0.5))
    counts = Counter()
    shapes = Counter()
    for v in values[:SAMPLE_VALUES]:
        for w in tx.words(v):
            counts[w] += 1
        shapes[tx.shape(v)] += 1
    for w, c in counts.items():
        feats.append(("v:" + w, 1.0 + math.log(c)))
    for s, c in shapes.most_common(3):
        feats.append(("s:" + s, 0.5 + 0.5 * c / max(1, len(values[:SAMPLE_VALUES]))))
    if rng is not None and all(math.isfinite(x) for x in rng):
        for x in rng:
            feats.append((f"m:{_magnitude(x)}", 1.0))
    head: list[tuple[str, float]] = [("g:" + g, 1.0) for g in tx.char_grams(name)]
    head += [("w:" + w, 1.0) for w in tx.words(name)]
    return tx.hashed(feats), tx.hashed(head)


def _magnitude(x: float) -> str:
    if x == 0:
        return "0"
    return ("-" if x < 0 else "") + str(int(math.floor(math.log10(abs(x)))))


def join_profiles(store) -> tuple[dict[tuple[str, str], dict[str, Any]], Any]:
    """The join profile row of every column (read through the store) and the DeepJoin vectors, if any."""
    import numpy as np

    entry = store.find("join_index")
    if entry is None or not (store.root / entry.path / "columns.parquet").exists():
        return {}, None
    cols = ["table_name", "column_name", "indexed", "n_distinct", "uniqueness", "top_values", "sketch"]
    try:
        rows = parquet_io.read_table(store.root / entry.path / "columns.parquet", columns=cols).to_pylist()
    except Exception as exc:  # noqa: BLE001 - another format: build without value features
        say(f"joins: discovery: join profiles unreadable ({type(exc).__name__}); no value features")
        return {}, None
    out = {}
    for i, r in enumerate(rows):
        r["join_col"] = i
        out[(r["table_name"], r["column_name"])] = r
    vecs = None
    sem = store.find("join_semantic")
    if sem is not None and (store.root / sem.path / "vectors.npy").exists():
        try:
            v = np.load(store.root / sem.path / "vectors.npy", mmap_mode="r")
            if v.ndim == 2 and v.shape[0] == len(rows):
                vecs = v
        except Exception:  # noqa: BLE001 - optional evidence
            vecs = None
    return out, vecs


def digest_of(ctx) -> str:
    lake = ctx.lake
    je = ctx.store.find("join_index")
    se = ctx.store.find("join_semantic")
    opts = ctx.options["joins"]
    parts = {"format": FORMAT, "tables": {k: lake.tables[k].fingerprint for k in sorted(lake.tables)},
             "join_index": str(je.built_at) if je else None,
             "join_semantic": str(se.built_at) if se else None,
             "embed": bool(getattr(opts, "discovery_embed", False)), "words": tx.WORDS_VERSION}
    if parts["embed"]:  # an int8 encoder re-embeds; torch <-> float32 ONNX (same vectors) does not
        from lakeql.embedding import resolve_backend
        from lakeql.joins.deepjoin import family

        kind = family(resolve_backend(None, table_backend(ctx)))
        if kind != "fp32":
            parts["embed_family"] = kind
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def table_backend(ctx) -> str:
    """The encoder backend of the table summaries for this build: ``--joins-embed-backend``, where
    ``auto`` keeps the int8 family the current summaries were made by (:func:`deepjoin.effective_backend`)."""
    from lakeql.joins.deepjoin import effective_backend
    from lakeql.joins.union_store import DiscoveryIndex

    recorded = DiscoveryIndex.recorded_backend(ctx.store.path(KIND)) if ctx.store is not None else None
    return effective_backend(ctx.options["joins"].joins_embed_backend, recorded)


def build_discovery(ctx) -> None:
    """Build (or keep, when nothing changed) the discovery index of the lake; see the module docstring."""
    opts = ctx.options["joins"]
    if not getattr(opts, "joins", True) or not getattr(opts, "discovery", True):
        return
    store = ctx.store
    digest = digest_of(ctx)
    old = store.find(KIND)
    out = store.path(KIND)
    if old is not None and old.params_dict.get("digest") == digest and (out / "tables.parquet").exists():
        return
    t0, c0 = time.perf_counter(), time.process_time()
    same_format = old is not None and old.params_dict.get("format") == FORMAT
    prev = out if (same_format and store.intact(old)) else None
    with store.atomic_dir(out) as tmp:
        info = write_discovery(ctx, tmp, prev)
        if info["tables"] <= UNION_GRAPH_MAX_TABLES:
            from lakeql.joins.union import write_union_graph

            info["union_edges"] = write_union_graph(tmp)
    info["digest"] = digest
    info["words"] = tx.WORDS_VERSION  # queries are stemmed as this index was (union_store.words_version)
    store.record(IndexEntry(KIND, "", "", KIND, dir_bytes(out),
                            sum(t.source_bytes for t in ctx.lake.tables.values()), "",
                            params=json.dumps(info, sort_keys=True)))
    say(f"joins: discovery index of {info['tables']} tables ({info.get('reused', 0)} tables' features "
        f"kept), {info['columns']} columns in {time.perf_counter() - t0:.1f} s "
        f"({time.process_time() - c0:.1f} CPU s)")


def table_digest(key: str, t, cols: list, row_count: int | None, prof: dict) -> str:
    """A hash of everything the discovery features of table ``key`` are made from: its files (the
    footers' descriptions and ranges), name, catalog columns and row count, and its columns' join
    profile rows (top values, sketch, distinct count, uniqueness, indexed). Equal digests: equal
    features, so a refresh keeps them (:class:`Previous`)."""
    h = hashlib.sha1()
    head = [FORMAT, tx.WORDS_VERSION, key, t.name, t.domain, t.fingerprint, row_count,
            [[c.column_name, c.ordinal, c.type] for c in cols]]
    h.update(json.dumps(head).encode())
    for c in cols:
        p = prof.get((key, c.column_name), {})
        h.update(json.dumps([bool(p.get("indexed")), int(p.get("n_distinct") or 0),
                             float(p.get("uniqueness") or 0.0), p.get("top_values") or [],
                             [int(x) for x in (p.get("sketch") or [])]], default=str)
                 .encode())
    return h.hexdigest()


class Previous:
    """The per-table parts of the previous discovery index (``prev``) that a refresh can keep: a table
    whose :func:`table_digest` is unchanged gets back its column rows, raw (pre-TF-IDF) feature rows,
    sketches, value-word postings and BM25 term counts exactly as they were computed. The lake-wide
    parts (TF-IDF weights, BM25 statistics, vocabulary, union graph) are always recomputed from them."""

    def __init__(self, prev: Path) -> None:
        import numpy as np

        self.parts = json.loads((prev / PARTS).read_text())["tables"]
        self.cols = parquet_io.read_table(prev / "columns.parquet").to_pylist()
        tabs = parquet_io.read_table(prev / "tables.parquet").to_pylist()
        self.tables = {r["table_name"]: r for r in tabs}
        lens = np.asarray([r["sketch_len"] for r in self.cols], dtype=np.int64)
        self.sketch_start = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        self.sketch = packed.load(prev / "sketch_values.zst")
        self.vec = _raw_rows(packed.load_sparse(prev / RAW_VEC))
        self.name = _raw_rows(packed.load_sparse(prev / RAW_NAME))
        th, tc = packed.load(prev / "tok_hash.zst"), packed.load(prev / "tok_col.zst")
        order = np.argsort(tc, kind="stable")
        self.tok_hash, self.tok_col = th[order], tc[order]

    def get(self, key: str, digest: str) -> dict[str, Any] | None:
        import numpy as np

        part, tab = self.parts.get(key), self.tables.get(key)
        if part is None or tab is None or part.get("digest") != digest:
            return None
        a, b = int(tab["col_start"]), int(tab["col_end"])
        lo, hi = (int(x) for x in np.searchsorted(self.tok_col, [a, b]))
        return {"tab": tab, "cols": self.cols[a:b], "vec": self.vec[a:b], "name": self.name[a:b],
                "sketches": [self.sketch[self.sketch_start[i]:self.sketch_start[i + 1]].tolist()
                             for i in range(a, b)],
                "tok": (self.tok_hash[lo:hi], self.tok_col[lo:hi] - a), "bm25": part["bm25"]}


def _raw_rows(m) -> list[tuple[Any, Any]]:
    """The (feature ids, counts) of each row of a CSR matrix, as :func:`_csr` made it."""
    return [(m.indices[m.indptr[i]:m.indptr[i + 1]], m.data[m.indptr[i]:m.indptr[i + 1]])
            for i in range(m.shape[0])]


def write_discovery(ctx, out: Path, prev: Path | None = None) -> dict[str, Any]:
    """Write every discovery file into ``out``; returns counts for the manifest. ``prev``: the previous
    discovery folder, whose unchanged tables' parts are kept (see :class:`Previous`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake, cat, store = ctx.lake, ctx.catalog, ctx.store
    prof, dj = join_profiles(store)
    embed = bool(getattr(ctx.options["joins"], "discovery_embed", False))
    old = None
    if prev is not None and dj is None and not embed and (prev / PARTS).exists():
        try:
            old = Previous(prev)
        except Exception as exc:  # noqa: BLE001 - an unreadable previous index: compute every table
            say(f"joins: discovery: previous parts unreadable ({type(exc).__name__}); computing all")
            old = None
    col_rows: list[dict[str, Any]] = []
    vec_rows: list[Any] = []  # per column: a feature dict, or the (ids, counts) arrays kept
    name_rows: list[Any] = []
    sketches: list[list[int]] = []
    dj_idx: list[int] = []
    tab_rows: list[dict[str, Any]] = []
    summaries: list[str] = []
    fields: dict[str, list[Counter]] = {f: [] for f in BM25_FIELDS}
    tok_pairs: list[tuple[int, int]] = []
    tok_kept: list[tuple[Any, Any]] = []
    parts: dict[str, Any] = {}
    reused = 0
    for key in progress(sorted(lake.tables), desc="joins: discovery", unit="table"):
        t = lake.tables[key]
        cols = cat.columns(t)
        row_count = int(cat.row_count(t)) if key in cat.table_rows else 0
        digest = table_digest(key, t, cols, row_count, prof)
        kept = old.get(key, digest) if old is not None else None
        if kept is not None:
            reused += 1
            start = len(col_rows)
            col_rows += kept["cols"]
            vec_rows += kept["vec"]
            name_rows += kept["name"]
            sketches += kept["sketches"]
            dj_idx += [-1] * len(kept["cols"])
            tok_kept.append((kept["tok"][0], kept["tok"][1] + start))
            for f in BM25_FIELDS:
                fields[f].append(Counter(kept["bm25"][f]))
            tab_rows.append({**kept["tab"], "col_start": start, "col_end": len(col_rows)})
            parts[key] = {"digest": digest, "bm25": kept["bm25"]}
            continue
        desc, cdesc, ranges = footer_info(t)
        start = len(col_rows)
        colwords: list[str] = []
        valwords: list[str] = []
        for c in cols:
            p = prof.get((key, c.column_name), {})
            tclass = type_class(c.type)
            values = [v for v in (p.get("top_values") or []) if v is not None]
            rng = ranges.get(c.column_name) if tclass in ("int", "float") else None
            cd = cdesc.get(c.column_name, "")
            v, h = column_features(c.column_name, cd, tclass, values, rng)
            vec_rows.append(v)
            name_rows.append(h)
            sk = sorted(int(x) for x in (p.get("sketch") or []))[:SKETCH_K]
            sketches.append(sk)
            dj_idx.append(int(p["join_col"]) if (dj is not None and p.get("indexed")) else -1)
            nd = int(p.get("n_distinct") or 0)
            col_rows.append({
                "table_name": key, "column_name": c.column_name, "ordinal": c.ordinal, "type": c.type,
                "tclass": tclass, "indexed": bool(p.get("indexed")), "n_distinct": nd,
                "uniqueness": float(p.get("uniqueness") or 0.0), "sketch_len": len(sk),
                "vmin": rng[0] if rng else None, "vmax": rng[1] if rng else None, "description": cd,
                "sample": [str(x)[:100] for x in values[:5]]})
            colwords += tx.words(c.column_name) + tx.words(cd)
            for field in struct_fields(c.type):  # nested names: info.loc.lat is found by 'lat' (trial13)
                colwords += tx.words(field)
            if tclass == "text" and p.get("indexed"):
                for x in values[:BM25_VALUES]:
                    valwords += tx.words(x)
                toks = {w for x in values for w in tx.value_words(x) if len(w) >= 2}
                ci = len(col_rows) - 1
                tok_pairs.extend((zlib.crc32(w.encode()), ci) for w in toks)
        counts = {"name": Counter(tx.words(t.name) + tx.words(t.domain)),
                  "description": Counter(tx.words(desc)), "columns": Counter(colwords),
                  "values": Counter(valwords)}
        for f in BM25_FIELDS:
            fields[f].append(counts[f])
        parts[key] = {"digest": digest, "bm25": {f: dict(counts[f]) for f in BM25_FIELDS}}
        tab_rows.append({"table_name": key, "col_start": start, "col_end": len(col_rows),
                         "row_count": row_count, "description": desc, "fingerprint": t.fingerprint})
        summaries.append(f"{t.name.replace('_', ' ')}. {desc[:300]} Columns: "
                         + ", ".join(c.column_name for c in cols[:40]))
    n = len(col_rows)
    pq.write_table(pa.Table.from_pylist(col_rows, schema=_columns_schema()), out / "columns.parquet",
                   compression="zstd")
    pq.write_table(pa.Table.from_pylist(tab_rows, schema=_tables_schema()), out / "tables.parquet",
                   compression="zstd")
    raw_vec, raw_name = _csr(vec_rows, 1 << tx.DIM_BITS), _csr(name_rows, 1 << tx.DIM_BITS)
    packed.save_sparse(out / "colvec.zst", tfidf_csr(raw_vec.copy()))
    packed.save_sparse(out / "namevec.zst", tfidf_csr(raw_name.copy()))
    # the parts a refresh keeps per unchanged table (raw features, BM25 counts): see Previous
    packed.save_sparse(out / RAW_VEC, raw_vec)
    packed.save_sparse(out / RAW_NAME, raw_name)
    (out / PARTS).write_text(json.dumps({"format": FORMAT, "tables": parts}))
    # ragged on disk (most columns of a real lake hold far fewer than SKETCH_K distinct values): the
    # padded matrix of 36k columns was 73 MB; the loader pads it again in memory
    flat = [x for s in sketches for x in s]
    packed.save(out / "sketch_values.zst", np.asarray(flat, dtype=np.uint64), delta=True)
    if dj is not None and any(i >= 0 for i in dj_idx):
        idx = np.asarray(dj_idx)
        m = np.zeros((n, dj.shape[1]), dtype=np.float32)
        ok = idx >= 0
        m[ok] = np.asarray(dj[idx[ok]], dtype=np.float32)
        packed.save(out / "deepjoin.zst", m)
    write_bm25(fields, out)
    if tok_kept:  # the kept tables' postings (hash, column), in the new column numbering
        kept_arr = np.stack([np.concatenate([h.astype(np.int64) for h, _ in tok_kept]),
                             np.concatenate([c.astype(np.int64) for _, c in tok_kept])], axis=1)
        arr = np.concatenate([np.array(tok_pairs, dtype=np.int64).reshape(-1, 2), kept_arr])
    else:
        arr = np.array(tok_pairs, dtype=np.int64).reshape(-1, 2)
    if len(arr):
        order = np.lexsort((arr[:, 1], arr[:, 0]))
        packed.save(out / "tok_hash.zst", arr[order, 0].astype(np.uint32), delta=True)
        packed.save(out / "tok_col.zst", arr[order, 1].astype(np.int32))
    else:
        packed.save(out / "tok_hash.zst", np.empty(0, np.uint32))
        packed.save(out / "tok_col.zst", np.empty(0, np.int32))
    if getattr(ctx.options["joins"], "discovery_embed", False) and summaries:
        from lakeql import embedding
        from lakeql.joins.deepjoin import encoder

        model, backend = encoder(None, table_backend(ctx))
        np.save(out / "tablevec.npy", embedding.encode(summaries, model, desc="discovery: table summaries"))
        # the encoder that made them: find_tables embeds its queries with the same family (and, for
        # onnx-int8-outlier, the same outlier channels on any machine)
        made_by = {"model": embedding.model_id(None), "backend": backend}
        if embedding.channels(model) is not None:
            made_by["onnx_channels"] = embedding.channels(model)
        (out / "tablevec.json").write_text(json.dumps(made_by))
    return {"format": FORMAT, "tables": len(tab_rows), "columns": n, "deepjoin": dj is not None,
            "embed": (out / "tablevec.npy").exists(), "reused": reused}


def write_bm25(fields: dict[str, list[Counter]], out: Path) -> None:
    """One vocabulary; per field a (tables x terms) matrix of BM25 weights (CSC, for column slicing)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    vocab: dict[str, int] = {}
    for docs in fields.values():
        for d in docs:
            for w in d:
                if w not in vocab:
                    vocab[w] = len(vocab)
    for f, docs in fields.items():
        rows = [{vocab[w]: float(c) for w, c in d.items()} for d in docs]
        m = _csr(rows, max(len(vocab), 1))
        n_docs = max(len(docs), 1)
        dl = np.asarray(m.sum(axis=1)).ravel()
        avg = float(dl.mean()) if len(dl) and dl.mean() > 0 else 1.0
        df = np.bincount(m.indices, minlength=m.shape[1])
        idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        tf = m.data.astype(np.float64)
        norm = tf + K1 * (1 - B + B * dl[row_of] / avg)
        m.data = (idf[m.indices] * tf * (K1 + 1) / norm).astype(np.float32)
        packed.save_sparse(out / f"bm25_{f}.zst", m.tocsc())
    terms = sorted(vocab, key=vocab.get)
    pq.write_table(pa.table({"term": pa.array(terms, pa.string())}), out / "vocab.parquet")


def _columns_schema():
    import pyarrow as pa

    return pa.schema([("table_name", pa.string()), ("column_name", pa.string()), ("ordinal", pa.int32()),
                      ("type", pa.string()), ("tclass", pa.string()), ("indexed", pa.bool_()),
                      ("n_distinct", pa.int64()), ("uniqueness", pa.float64()), ("sketch_len", pa.int32()),
                      ("vmin", pa.float64()), ("vmax", pa.float64()), ("description", pa.string()),
                      ("sample", pa.list_(pa.string()))])


def _tables_schema():
    import pyarrow as pa

    return pa.schema([("table_name", pa.string()), ("col_start", pa.int64()), ("col_end", pa.int64()),
                      ("row_count", pa.int64()), ("description", pa.string()), ("fingerprint", pa.string())])
