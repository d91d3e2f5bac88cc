"""The DuckDB <-> Python boundary of a vector search UDF, measured with stubs (issue 14 item 9).

Every variant is a stub of ``semantic_search_vector_impl``'s shape: 7 arguments (tbl, col, a 384-float
query vector, k, oversample, filter NULL, exact), 10 fixed hits out, unnested to (rowid, score) rows by a
macro-like query. The stub does the Python-side work the real function needs at the boundary (the query
vector as a float32 numpy array) but no search, so the figures are the crossing alone. Methods run
interleaved query by query (order reversed every other round), CPU time (``time.process_time``).

    PYTHONPATH=. /work/venv/bin/python benchmarks/udf_boundary.py --rounds 400
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.func import ARROW, NATIVE, SPECIAL

DIM = 384
K = 10
ROWIDS = np.arange(1000, 1000 + K, dtype=np.int64)
SCORES = np.linspace(0.9, 0.8, K).astype(np.float32)
HIT = "STRUCT(rowid BIGINT, score FLOAT)[]"
PAIR = "STRUCT(rowid BIGINT[], score FLOAT[])"


def _vec(v) -> np.ndarray:
    return np.asarray(v, np.float32)


def native_dicts(tbl, col, vec, k, ov, flt, exact):
    """Today's shape: a Python list in, a list of dicts out (lakeql.vectors.sql.hits)."""
    q = _vec(vec)
    assert q.shape == (DIM,)
    return [{"rowid": int(r), "score": float(s)} for r, s in zip(ROWIDS, SCORES, strict=True)]


def native_pair(tbl, col, vec, k, ov, flt, exact):
    """Two parallel lists in one struct."""
    q = _vec(vec)
    assert q.shape == (DIM,)
    return {"rowid": ROWIDS.tolist(), "score": SCORES.tolist()}


def _arrow_vec(col) -> np.ndarray:
    """Row 0's query vector from an Arrow list/fixed-size-list column, no Python floats."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(arr.type, pa.FixedSizeListType):
        return arr.values.to_numpy(zero_copy_only=False)[: arr.type.list_size]
    lo, hi = arr.offsets[0].as_py(), arr.offsets[1].as_py()
    return arr.values.to_numpy(zero_copy_only=False)[lo:hi]


def arrow_hits(tbl, col, vec, k, ov, flt, exact):
    """Arrow UDF: a batch of rows in; one LIST<STRUCT> per row built from numpy arrays."""
    n = len(tbl)
    q = _arrow_vec(vec)
    assert q.shape == (DIM,)
    structs = pa.StructArray.from_arrays([pa.array(np.tile(ROWIDS, n)), pa.array(np.tile(SCORES, n))],
                                         names=["rowid", "score"])
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * K), structs)


def arrow_pair(tbl, col, vec, k, ov, flt, exact):
    n = len(tbl)
    q = _arrow_vec(vec)
    assert q.shape == (DIM,)
    off = pa.array(np.arange(n + 1, dtype=np.int32) * K)
    return pa.StructArray.from_arrays([pa.ListArray.from_arrays(off, pa.array(np.tile(ROWIDS, n))),
                                       pa.ListArray.from_arrays(off, pa.array(np.tile(SCORES, n)))],
                                      names=["rowid", "score"])


def build(con) -> dict[str, str]:
    args = ["VARCHAR", "VARCHAR", "FLOAT[]", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"]
    fixed = ["VARCHAR", "VARCHAR", f"FLOAT[{DIM}]", "BIGINT", "BIGINT", "VARCHAR", "BOOLEAN"]
    reg = [  # name, fn, params, returns, type, side_effects
        ("s_native", native_dicts, args, HIT, NATIVE, True),
        ("s_native_pure", native_dicts, args, HIT, NATIVE, False),
        ("s_native_fixed", native_dicts, fixed, HIT, NATIVE, True),
        ("s_native_pair", native_pair, args, PAIR, NATIVE, True),
        ("s_arrow", arrow_hits, args, HIT, ARROW, True),
        ("s_arrow_fixed", arrow_hits, fixed, HIT, ARROW, True),
        ("s_arrow_pair", arrow_pair, args, PAIR, ARROW, True),
    ]
    for name, fn, params, ret, kind, fx in reg:
        con.create_function(name, fn, [duckdb.sqltype(p) for p in params], duckdb.sqltype(ret), type=kind,
                            null_handling=SPECIAL, side_effects=fx)
    vec = "$v::FLOAT[]"
    fvec = f"$v::FLOAT[{DIM}]"
    call = "('t', 'c', {v}, 10, 4, NULL, false)"

    def hits(fn, v=vec):
        return (f"SELECT h.__hit.rowid AS rowid, h.__hit.score AS score FROM "
                f"(SELECT unnest({fn}{call.format(v=v)}) AS __hit) h")

    def pair(fn, v=vec):
        return (f"SELECT unnest(p.rowid) AS rowid, unnest(p.score) AS score "
                f"FROM (SELECT {fn}{call.format(v=v)} AS p)")

    con.execute("CREATE MACRO m_rowids(tbl, col, vec, k := 10, oversample := 4, filter := NULL, "
                "exact := false) AS TABLE SELECT h.__hit.rowid AS rowid, h.__hit.score AS score FROM "
                "(SELECT unnest(s_native(tbl, col, vec, k, oversample, filter, exact)) AS __hit) h")
    con.execute("CREATE MACRO m_pair(tbl, col, vec, k := 10, oversample := 4, filter := NULL, "
                "exact := false) AS TABLE SELECT unnest(p.rowid) AS rowid, unnest(p.score) AS score FROM "
                "(SELECT s_native_pair(tbl, col, vec, k, oversample, filter, exact) AS p)")
    return {
        "SELECT 1": "SELECT 1",
        "bind the FLOAT[] vector only": "SELECT len($v::FLOAT[])",
        "native, no unnest (the list fetched)": f"SELECT s_native{call.format(v=vec)}",
        "table macro over native (as semantic_search_vector_rowids)":
            "SELECT * FROM m_rowids('t', 'c', $v::FLOAT[], k := 10, exact := false)",
        "table macro over native pair":
            "SELECT * FROM m_pair('t', 'c', $v::FLOAT[], k := 10, exact := false)",
        "native, FLOAT[], LIST<STRUCT> + unnest (today)": hits("s_native"),
        "native, unnest(recursive := true)": (f"SELECT unnest(s_native{call.format(v=vec)}, "
                                              "recursive := true)"),
        "native, side_effects=False": hits("s_native_pure"),
        f"native, FLOAT[{DIM}] arg": hits("s_native_fixed", fvec),
        "native, STRUCT of two lists": pair("s_native_pair"),
        "arrow, FLOAT[], LIST<STRUCT>": hits("s_arrow"),
        f"arrow, FLOAT[{DIM}] arg": hits("s_arrow_fixed", fvec),
        "arrow, STRUCT of two lists": pair("s_arrow_pair"),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    queries = build(con)
    rng = np.random.default_rng(0)
    v = rng.standard_normal(DIM).astype(np.float32).tolist()
    want = sorted(zip(ROWIDS.tolist(), SCORES.tolist(), strict=True))
    for name, sql in queries.items():  # warm up and check every variant returns the same rows
        rows = con.execute(sql, {"v": v} if "$v" in sql else None).fetchall()
        if name.startswith(("native", "arrow", "table")) and "no unnest" not in name:
            assert sorted(rows) == want, (name, rows[:3])
    names = list(queries)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    for r in range(a.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            sql = queries[n]
            p = {"v": v} if "$v" in sql else None
            t = time.process_time()
            con.execute(sql, p).fetchall()
            cpu[n].append(time.process_time() - t)
    load.append(os.getloadavg()[0])
    # the Python-side conversion of the query vector alone
    arr = pa.array([v], pa.list_(pa.float32()))
    conv = {}
    for label, fn in [("np.asarray(list of 384 floats, float32)", lambda: np.asarray(v, np.float32)),
                      ("arrow list -> numpy (values slice)", lambda: _arrow_vec(arr))]:
        t = time.process_time()
        for _ in range(20000):
            fn()
        conv[label] = (time.process_time() - t) / 20000 * 1e3
    base = statistics.median(cpu["SELECT 1"])
    out = {"rounds": a.rounds, "threads": a.threads, "load_1min": load, "duckdb": duckdb.__version__,
           "cpu_ms_median": {n: round(statistics.median(cpu[n]) * 1e3, 3) for n in names},
           "above_select1_ms": {n: round((statistics.median(cpu[n]) - base) * 1e3, 3) for n in names},
           "conversion_ms": {k: round(x, 4) for k, x in conv.items()}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
