"""Whole rows below row-group granularity? (issue 14 items 8-9): what DuckDB, pyarrow and a page-level read
cost for the 10 hits of a search, at 1M rows, interleaved per query with the raw faiss binary scan.

    PYTHONPATH=. /work/venv/bin/python benchmarks/pagefetch.py --tmp /tmp/sqlover \\
        --base /tmp/lakeql-compare --work /tmp/wholerows [--queries 30]

Needs the finished 1M lake of ``vectors_sql_ann.py sql --tmp DIR`` (bench.titles: id, title; bench.docs:
id, title, vec FLOAT[384]; one Parquet file each, 9 row groups of 122,880 rows, zstd, pyarrow defaults:
no page index). Writes to ``--work`` copies of both files with a page index (``write_page_index=True``,
otherwise the same settings) once.

Per query (CPU time, ``time.process_time``; methods interleaved query by query): faiss
``IndexBinaryFlat`` (sign codes, k = 40, 1 thread), SQL (rowid, score) and SQL whole rows of bench.titles
(exact), and for the query's own 10 hits: DuckDB's fetch (``file_row_number IN (...)``) from the file
without and with a page index, pyarrow's ``read_row_groups`` of the row groups holding hits (titles
only), and a **page-level read**: each hit's data page of every column located through the file's
OffsetIndex (parsed here from the footer with a minimal Thrift compact-protocol reader: pyarrow exposes
only ``has_offset_index``), read with ``pread`` and decompressed, plus each touched column chunk's
dictionary page, once. It does not decode the pages (no reader for that exists in DuckDB 2.0.1 or
pyarrow 26), so it is a floor for what a page-level fetch would cost; the pages' row counts are checked
against the OffsetIndex on every read (flat columns: the header's ``num_values``; the 384-float list:
384 a row). Also, once: DuckDB's cost of one hit by its position in a row group, and whether the usual
writers write a page index.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def interleaved_cpu(methods: dict, queries: list, progress: bool = False) -> tuple[dict, list[float]]:
    """CPU seconds of every method on every query, the methods interleaved query by query so each sees
    the same machine load (after one warm-up call each), and the 1-minute load before and after each query."""
    for f in methods.values():
        f(queries[0])
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    loads = [os.getloadavg()[0]]
    for q in queries:
        for k, f in methods.items():
            c = time.process_time()
            f(q)
            cpu[k].append(time.process_time() - c)
        loads.append(os.getloadavg()[0])
        if progress:
            print(f"query {len(loads) - 1}/{len(queries)}, load {loads[-1]}", file=sys.stderr, flush=True)
    return cpu, loads


class _Thrift:
    """Thrift compact protocol, reading only: structs as {field id: value}."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.b, self.p = buf, pos

    def _byte(self) -> int:
        v = self.b[self.p]
        self.p += 1
        return v

    def _varint(self) -> int:
        shift = v = 0
        while True:
            x = self._byte()
            v |= (x & 0x7F) << shift
            shift += 7
            if not x & 0x80:
                return v

    def _zigzag(self) -> int:
        v = self._varint()
        return (v >> 1) ^ -(v & 1)

    def value(self, t: int):
        if t in (1, 2):
            return t == 1
        if t == 3:
            return self._byte()
        if t in (4, 5, 6):
            return self._zigzag()
        if t == 7:
            self.p += 8
            return struct.unpack_from("<d", self.b, self.p - 8)[0]
        if t == 8:
            n = self._varint()
            self.p += n
            return bytes(self.b[self.p - n : self.p])
        if t in (9, 10):
            h = self._byte()
            n, et = h >> 4, h & 15
            if n == 15:
                n = self._varint()
            if et in (1, 2):
                return [self._byte() == 1 for _ in range(n)]
            return [self.value(et) for _ in range(n)]
        if t == 11:
            n = self._varint()
            if not n:
                return {}
            kv = self._byte()
            return {self.value(kv >> 4): self.value(kv & 15) for _ in range(n)}
        if t == 12:
            return self.struct()
        raise ValueError(f"thrift type {t}")

    def struct(self) -> dict:
        out, last = {}, 0
        while True:
            h = self._byte()
            if not h:
                return out
            delta, t = h >> 4, h & 15
            fid = last + delta if delta else self._zigzag()
            out[fid] = self.value(t)
            last = fid


_CODECS = {0: None, 1: "snappy", 2: "gzip", 4: "brotli", 6: "zstd", 7: "lz4_raw"}


class PageMap:
    """Each row group's column chunks of a Parquet file with a page index: codec, dictionary page offset,
    and the OffsetIndex's (page offset, compressed size, first row) list."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 - kept open for the timed reads
        size = os.fstat(self.fh.fileno()).st_size
        tail = os.pread(self.fh.fileno(), 8, size - 8)
        n = struct.unpack("<i", tail[:4])[0]
        meta = _Thrift(os.pread(self.fh.fileno(), n, size - 8 - n)).struct()
        self.groups = []
        for rg in meta[4]:
            cols = []
            for cc in rg[1]:
                if 4 not in cc:
                    raise ValueError(f"{path}: no offset index")
                md = cc[3]
                oi = _Thrift(os.pread(self.fh.fileno(), cc[5], cc[4])).struct()
                cols.append((md.get(11), _CODECS[md[4]], [(p[1], p[2], p[3]) for p in oi[1]], md[1]))
            self.groups.append((rg[3], cols))
        self.starts = np.cumsum([0] + [g[0] for g in self.groups])

    def _page(self, off: int, codec: str | None):
        import pyarrow as pa

        head = _Thrift(os.pread(self.fh.fileno(), 256, off))
        h = head.struct()
        body = os.pread(self.fh.fileno(), h[3], off + head.p)
        if h[1] == 3 or codec is None:  # v2 pages: levels uncompressed (not in these files)
            return h, body
        return h, pa.decompress(body, h[2], codec=codec)

    def fetch(self, rows) -> tuple[int, int]:
        """Read and decompress the pages holding ``rows`` (+ dictionary pages), each once:
        (pages, decompressed bytes)."""
        seen, nbytes = set(), 0
        for row in rows:
            g = int(np.searchsorted(self.starts, row, side="right") - 1)
            local = int(row - self.starts[g])
            nrows = self.groups[g][0]
            for dict_off, codec, locs, ptype in self.groups[g][1]:
                i = bisect.bisect_right([loc[2] for loc in locs], local) - 1
                offs = [locs[i][0]] if dict_off is None else [dict_off, locs[i][0]]
                for off in offs:
                    if off in seen:
                        continue
                    seen.add(off)
                    h, body = self._page(off, codec)
                    nbytes += len(body)
                    if h[1] == 0:  # a data page: its rows are the offset index's
                        end = locs[i + 1][2] if i + 1 < len(locs) else nrows
                        per_row = 384 if ptype == 4 else 1  # FLOAT: the vector column's list elements
                        assert h[5][1] == per_row * (end - locs[i][2]), (h, locs[i], end)
        return len(seen), nbytes


def _with_page_index(src: Path, dst: Path) -> Path:
    import pyarrow.parquet as pq

    if dst.exists():
        return dst
    f = pq.ParquetFile(src)
    tmp = dst.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, f.schema_arrow, compression="zstd", write_page_index=True) as w:
        for i in range(f.num_row_groups):
            w.write_table(f.read_row_group(i), row_group_size=f.metadata.row_group(i).num_rows)
    tmp.rename(dst)
    return dst


def _writers(work: Path) -> dict:
    """Whether pyarrow, pandas and DuckDB write a page index by default."""
    import duckdb
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    t = pa.table({"id": np.arange(1000), "s": [str(i) for i in range(1000)]})
    pq.write_table(t, work / "w_pa.parquet")
    t.to_pandas().to_parquet(work / "w_pd.parquet")
    dd = str(work / "w_dd.parquet").replace("'", "''")
    duckdb.connect().execute(f"COPY (SELECT * FROM range(1000)) TO '{dd}' (FORMAT parquet)")
    for name, p in (
        ("pyarrow " + pa.__version__, "w_pa"),
        ("pandas " + pd.__version__, "w_pd"),
        ("duckdb " + duckdb.__version__, "w_dd"),
    ):
        c = pq.ParquetFile(work / f"{p}.parquet").metadata.row_group(0).column(0)
        out[name] = {"offset_index": c.has_offset_index, "column_index": c.has_column_index}
    return out


def _position(con, path: Path, reps: int = 9) -> dict:
    """DuckDB CPU ms to fetch one row of ``path`` by its position in the first row group, vs all of it."""
    res: dict[str, list[float]] = {}
    scan = "FROM read_parquet(?, file_row_number = true) WHERE file_row_number"
    qs = {f"row {r}": f"SELECT * {scan} = {r}" for r in (1000, 30000, 60000, 90000, 120000)}
    qs["rows 1000 and 120000"] = f"SELECT * {scan} IN (1000, 120000)"
    qs["whole row group (count, sums)"] = f"SELECT count(title), sum(id), sum(len(vec)) {scan} < 122880"
    for _ in range(reps):
        for k, q in qs.items():
            c = time.process_time()
            con.execute(q, [str(path)]).fetchall()
            res.setdefault(k, []).append(time.process_time() - c)
    return {k: 1000 * statistics.median(v) for k, v in res.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tmp", default="/tmp/sqlover")
    ap.add_argument("--base", default="/tmp/lakeql-compare")
    ap.add_argument("--work", default="/tmp/wholerows")
    ap.add_argument("--queries", type=int, default=30)
    a = ap.parse_args(argv)
    import duckdb
    import faiss
    import pyarrow.parquet as pq
    import vectors as bv
    from vectors_sql_ann import base_vectors, sign_flat

    from lakeql.connection import open_lake

    out: dict = {"load_before": os.getloadavg()}
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    lake = Path(a.tmp) / "lake1000000"
    docs, titles = lake / "bench" / "docs.parquet", lake / "bench" / "titles.parquet"
    docs_pi = _with_page_index(docs, work / "docs_pi.parquet")
    titles_pi = _with_page_index(titles, work / "titles_pi.parquet")
    out["writers_page_index_by_default"] = _writers(work)
    faiss.omp_set_num_threads(1)
    base, Q, _ = base_vectors(Path(a.base))
    vecs = bv.synth(base, 1_000_000)[1]
    sign, bflat = sign_flat(vecs)
    del vecs
    con, ctx = open_lake(lake, index_dir=lake / ".lakeql", capabilities=["vectors"])
    s = ctx.cache["vectors.searcher"]
    s.index("bench.titles", "title")[2].blocked()
    raw = duckdb.connect()
    raw.execute("SET threads = 1")
    pm = {"docs": PageMap(docs_pi), "titles": PageMap(titles_pi)}
    pf = {"docs": pq.ParquetFile(docs), "titles": pq.ParquetFile(titles)}
    args = "'bench.titles', 'title', ?::FLOAT[], k := 10, exact := true"
    rowids = f"SELECT * FROM semantic_search_vector_rowids({args})"
    whole = f"SELECT * FROM semantic_search_vector({args})"
    qs = [Q[i % len(Q)] for i in range(a.queries)]
    hits = {id(q): sorted(r[0] for r in con.execute(rowids, [q.tolist()]).fetchall()) for q in qs}

    def duck(path):
        def fetch(q):
            listed = ",".join(str(int(r)) for r in hits[id(q)])  # integers only
            sql = f"SELECT * FROM read_parquet(?, file_row_number = true) WHERE file_row_number IN ({listed})"
            return raw.execute(sql, [str(path)]).fetchall()

        return fetch

    def groups(f):
        size = f.metadata.row_group(0).num_rows  # equal row groups but the last
        return lambda q: f.read_row_groups(sorted({r // size for r in hits[id(q)]}))

    methods = {
        "faiss IndexBinaryFlat (sign, k=40)": lambda q: bflat.search(sign.query_code(q)[None, :], 40),
        "SQL (rowid, score) exact, titles": lambda q: con.execute(rowids, [q.tolist()]).fetchall(),
        "SQL whole rows exact, titles (id, title)": lambda q: con.execute(whole, [q.tolist()]).fetchall(),
    }
    for t, path, path_pi in (("titles", titles, titles_pi), ("docs", docs, docs_pi)):
        methods[f"{t}: DuckDB fetch of the 10 hits, no page index"] = duck(path)
        methods[f"{t}: DuckDB fetch of the 10 hits, page index"] = duck(path_pi)
        if t == "titles":  # (docs: 6 row groups of 384-float lists are GBs of Arrow memory a query)
            methods[f"{t}: pyarrow read_row_groups of the hits' row groups"] = groups(pf[t])
        methods[f"{t}: page-level read + decompress (OffsetIndex), no decode"] = lambda q, t=t: pm[t].fetch(
            hits[id(q)]
        )
    pages = {t: [pm[t].fetch(hits[id(q)]) for q in qs] for t in pm}
    out["page_level_pages_and_decompressed_bytes_median"] = {
        t: [statistics.median(p[0] for p in v), statistics.median(p[1] for p in v)] for t, v in pages.items()
    }
    out["row_groups_touched_median"] = statistics.median(len({r // 122880 for r in hits[id(q)]}) for q in qs)
    same = [sorted(duck(docs)(q)) == sorted(duck(docs_pi)(q)) for q in qs[:5]]
    out["docs_rows_equal_with_and_without_page_index"] = f"{sum(same)}/{len(same)}"
    cpu, loads = interleaved_cpu(methods, qs, progress=True)
    ref = statistics.median(cpu["faiss IndexBinaryFlat (sign, k=40)"])
    out["cpu_ms_median"] = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
    out["vs_faiss"] = {k: statistics.median(v) / ref for k, v in cpu.items()}
    out["load_1min_during"] = [min(loads), max(loads)]
    out["duckdb_one_row_by_position_docs_cpu_ms"] = _position(raw, docs)
    out["duckdb_one_row_by_position_docs_page_index_cpu_ms"] = _position(raw, docs_pi)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
