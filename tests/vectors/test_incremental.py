"""Per-file shards and ``lakeql index --refresh`` (issue 10 item 4), on real tables made of several files.

Two tables, each split into Parquet files (``part-0`` ... ``part-3``):

* ``vecs.docs``: the real MiniLM embeddings of the test docstrings as a ``FLOAT[384]`` column (no model,
  deterministic), indexed with ``sign`` codes and a float32 tier, so a refreshed index must be *byte for
  byte* the index a full rebuild writes: after appending a file, removing one from the middle (every later
  rowid shifts) and rewriting one.
* ``docs.text``: the docstrings themselves (model, rabitq, int8 tier, BM25). A refresh embeds only the
  new file's rows, keeps the other shards (the same inodes) and the binarizer; BM25 equals a full
  rebuild's exactly, searches give the full rebuild's rows.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vectors_helpers import build, connect

PARTS = 4
Q = ["compress data with zlib", "open a file for reading", "socket connection", "parse a date string"]


def split_write(table: pa.Table, folder: Path, parts: int = PARTS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    out = []
    for i in range(parts):
        p = folder / f"part-{i}.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), p)
        out.append(p)
    return out


@pytest.fixture(scope="module")
def tables(rows, real) -> dict[str, pa.Table]:
    rowids, vecs = real
    texts = [r["docstring"] for r in rows]
    vec_tbl = pa.table({"id": pa.array(rowids, pa.int64()),
                        "title": pa.array([rows[i]["qualname"] for i in rowids]),
                        "kind": pa.array([rows[i]["kind"] for i in rowids]),
                        "v": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()),
                                                               384)})
    text_tbl = pa.table({"qualname": [r["qualname"] for r in rows], "kind": [r["kind"] for r in rows],
                         "docstring": [None if t is None else t[:300] for t in texts]})
    return {"vecs": vec_tbl, "text": text_tbl}


def lake_of_first_parts(tmp: Path, table: pa.Table, domain: str, name: str) -> tuple[Path, Path, list[Path]]:
    """(lake, the table's folder, all its part files): the lake holds the first 3 of the 4 parts, the
    last is kept aside to be appended."""
    lake = tmp / "lake"
    folder = lake / domain / name
    parts = split_write(table, tmp / "parts")
    folder.mkdir(parents=True)
    for p in parts[:3]:
        shutil.copy(p, folder)
    return lake, folder, parts


def index_files(index_dir: Path) -> dict[str, bytes]:
    """Every file of the embed indexes, by path below embed/ (the folder holding them is the slug)."""
    return {p.relative_to(index_dir / "embed").as_posix(): p.read_bytes()
            for p in sorted((index_dir / "embed").rglob("*")) if p.is_file()}


def inodes(index_dir: Path) -> dict[str, int]:
    return {p.relative_to(index_dir / "embed").as_posix(): p.stat().st_ino
            for p in sorted((index_dir / "embed").rglob("shards/*/*"))}


def fresh_full_build(lake: Path, tmp: Path, spec: str, **opts) -> Path:
    idx = tmp / f"full-{len(list(tmp.glob('full-*')))}"
    build(lake, idx, [spec], **opts)
    return idx


VEC_OPTS = {"embed_method": "sign", "embed_rescore": "float32"}


def vector_queries(lake: Path, idx: Path, real) -> list:
    con = connect(lake, idx)
    out = []
    sql = "SELECT id, score FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := {})"
    for i in (0, 57, 123, 199):
        q = real[1][i].tolist()
        out.append(con.execute(sql.format(7), [q]).fetchall())
        out.append(con.execute(sql.format("5, filter := 'kind = ''method'''"), [q]).fetchall())
    for (title,) in con.execute("SELECT title FROM vecs.docs ORDER BY id LIMIT 3").fetchall():
        out.append(con.execute("SELECT id, score FROM similar_rows('vecs.docs', 'v', 'title', ?, k := 6)",
                               [title]).fetchall())
    out.append(con.execute("SELECT count(*), sum(__rowid) FROM embed_codes('vecs.docs', 'v')").fetchall())
    con.close()
    return out


def test_vector_shards_refresh_equals_full_rebuild(tmp_path, tables, real):
    lake, folder, parts = lake_of_first_parts(tmp_path, tables["vecs"], "vecs", "docs")
    idx = tmp_path / "index"
    build(lake, idx, ["vecs.docs.v"], **VEC_OPTS)
    assert len(list((idx / "embed").glob("*/shards/*"))) == 3
    before = inodes(idx)

    def check(step: str, flags: bool = True) -> None:
        if flags:
            build(lake, idx, ["vecs.docs.v"], refresh=True, **VEC_OPTS)
        else:  # `lakeql index --refresh LAKE` alone: refreshed with the options it was built with
            build(lake, idx, [], refresh=True)
        full = fresh_full_build(lake, tmp_path, "vecs.docs.v", **VEC_OPTS)
        got, want = index_files(idx), index_files(full)
        assert got.keys() == want.keys(), step
        for name in want:
            if name.endswith("meta.json"):  # the same but for the rows the refresh kept its fit from
                skip = ("fit_rows",)
                a, b = json.loads(got[name]), json.loads(want[name])
                assert {k: a[k] for k in b if k not in skip} == {k: b[k] for k in b if k not in skip}, step
            else:
                assert got[name] == want[name], (step, name)
        assert vector_queries(lake, idx, real) == vector_queries(lake, full, real), step

    shutil.copy(parts[3], folder)  # append a file
    check("append")
    after = inodes(idx)
    kept = {k: v for k, v in before.items() if k in after}
    assert len(kept) == len(before) and all(after[k] == v for k, v in kept.items())  # hard links, not copies
    assert len({k.split("/")[2] for k in after}) == 4
    (folder / "part-1.parquet").unlink()  # remove a file from the middle: later rowids shift
    check("remove")
    assert len(list((idx / "embed").glob("*/shards/*"))) == 3
    t = pq.read_table(folder / "part-2.parquet")  # rewrite a file: other rows, a new shard
    pq.write_table(t.slice(0, t.num_rows // 2), folder / "part-2.parquet")
    check("rewrite", flags=False)
    (folder / "part-3.parquet").unlink()
    build(lake, idx, [], refresh=False)  # a full build without --embed keeps (rebuilds) the index too
    assert vector_queries(lake, idx, real) == vector_queries(lake, fresh_full_build(
        lake, tmp_path, "vecs.docs.v", **VEC_OPTS), real)


def test_text_refresh_embeds_only_the_new_file(tmp_path, tables, monkeypatch):
    from lakeql import embedding
    from lakeql.vectors.bm25 import BM25Index

    lake, folder, parts = lake_of_first_parts(tmp_path, tables["text"], "docs", "text")
    idx = tmp_path / "index"
    build(lake, idx, ["docs.text.docstring"], embed_bm25=True)
    (slug,) = [p.name for p in (idx / "embed").iterdir()]
    binarizer = (idx / "embed" / slug / "binarizer.npz").read_bytes()
    before = inodes(idx)

    encoded: list[str] = []
    orig = embedding.encode

    def spy(texts, *a, **kw):
        encoded.extend(texts)
        return orig(texts, *a, **kw)

    monkeypatch.setattr(embedding, "encode", spy)
    shutil.copy(parts[3], folder)
    build(lake, idx, ["docs.text.docstring"], refresh=True, embed_bm25=True)
    new_texts = [t[:300] for t in pq.read_table(parts[3]).column("docstring").to_pylist() if t and t.strip()]
    assert sorted(encoded) == sorted(new_texts)  # the new file's texts only
    monkeypatch.setattr(embedding, "encode", orig)
    after = inodes(idx)
    assert all(after[k] == v for k, v in before.items())
    assert (idx / "embed" / slug / "binarizer.npz").read_bytes() == binarizer  # not refit

    full = fresh_full_build(lake, tmp_path, "docs.text.docstring", embed_bm25=True)
    label = "docs.text.docstring"
    a = BM25Index.load(idx / "embed" / slug / "bm25", label)
    b = BM25Index.load(full / "embed" / slug / "bm25", label)
    assert a.vocab == b.vocab and a.n == b.n
    for x, y in ((a.indptr, b.indptr), (a.rows, b.rows), (a.weights, b.weights)):
        np.testing.assert_array_equal(x, y)
    ci, cf = connect(lake, idx), connect(lake, full)
    assert ci.execute("SELECT list(__rowid) FROM embed_codes('docs.text', 'docstring')").fetchall() == \
        cf.execute("SELECT list(__rowid) FROM embed_codes('docs.text', 'docstring')").fetchall()
    for q in Q:
        for fn in ("semantic_search", "hybrid_search"):
            sql = f"SELECT qualname, score FROM {fn}('docs.text', 'docstring', ?, k := 10)"
            got, want = ci.execute(sql, [q]).fetchall(), cf.execute(sql, [q]).fetchall()
            # a kept binarizer (fitted on 3/4 of the rows) against one refit on all: the same rows found
            assert len({g[0] for g in got} & {w[0] for w in want}) >= 8, (fn, q)
            if fn == "semantic_search":
                np.testing.assert_allclose([g[1] for g in got][:5], [w[1] for w in want][:5], atol=0.03)
        sql = ("SELECT qualname FROM semantic_search('docs.text', 'docstring', ?, k := 5, "
               "filter := 'kind = ''method''')")
        assert {r[0] for r in ci.execute(sql, [q]).fetchall()} <= set(
            tables["text"].filter(pa.compute.equal(tables["text"]["kind"], "method"))["qualname"].to_pylist())


def test_old_format_index_is_a_clear_error(tmp_path, tables):
    from lakeql.lake import discover
    from lakeql.store import Store

    lake = tmp_path / "lake"
    split_write(tables["vecs"], lake / "vecs" / "docs", parts=2)
    idx = tmp_path / "index"
    build(lake, idx, ["vecs.docs.v"], **VEC_OPTS)
    (folder,) = list((idx / "embed").iterdir())
    # what lakeql wrote before shards: one codes.parquet and rescore.npy beside meta.json (format 1)
    first = sorted((folder / "shards").iterdir())[0]
    for name in ("codes.parquet", "rescore.npy"):
        os.replace(first / name, folder / name)
    shutil.rmtree(folder / "shards")
    (folder / "shards.parquet").unlink()
    store = Store.for_lake(discover(lake), idx)
    entry = store.find("embed", "vecs.docs", "v")
    entry.params = entry.params.replace('"format": 2', '"format": 1')
    entry.checksums = ""
    store.record(entry)
    con = connect(lake, idx)
    with pytest.raises(duckdb.Error, match=r"older lakeql \(format 1.*lakeql index LAKE --embed vecs.docs.v"):
        con.execute("SELECT * FROM similar_rows('vecs.docs', 'v', 'title', 'x')").fetchall()
    build(lake, idx, ["vecs.docs.v"], refresh=True, **VEC_OPTS)  # --refresh rebuilds it in the new format
    n = connect(lake, idx).execute("SELECT count(*) FROM embed_codes('vecs.docs', 'v')").fetchone()[0]
    assert n == tables["vecs"].num_rows


def test_json_table_is_one_shard_rebuilt_on_change(tmp_path, tables, real):
    """JSON/CSV files have no row numbers of their own: the table is one shard, re-read when it changes."""
    lake = tmp_path / "lake"
    folder = lake / "vecs" / "docs"
    folder.mkdir(parents=True)
    t = tables["vecs"].slice(0, 60)
    rows = [{"id": r["id"], "title": r["title"], "kind": r["kind"], "v": [float(x) for x in r["v"]]}
            for r in t.to_pylist()]
    for i in range(2):
        (folder / f"part-{i}.json").write_text("\n".join(json.dumps(r) for r in rows[i * 20:(i + 1) * 20]))
    idx = tmp_path / "index"
    build(lake, idx, ["vecs.docs.v"], **VEC_OPTS)
    (folder / "part-2.json").write_text("\n".join(json.dumps(r) for r in rows[40:]))
    build(lake, idx, ["vecs.docs.v"], refresh=True, **VEC_OPTS)
    full = fresh_full_build(lake, tmp_path, "vecs.docs.v", **VEC_OPTS)
    got, want = index_files(idx), index_files(full)
    assert got.keys() == want.keys() and len([k for k in got if k.endswith("codes.parquet")]) == 1
    assert all(got[k] == want[k] for k in want if not k.endswith("meta.json"))
    con = connect(lake, idx)
    q = real[1][5].tolist()
    hits = con.execute("SELECT id FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := 3)",
                       [q]).fetchall()
    assert hits[0][0] == 5


REFINE_OPTS = {"embed_refine_bits": 2}


def test_refinement_planes_end_to_end(tmp_path, tables, real):
    """--embed-refine-bits 2: every shard holds its planes, SQL search returns the exact float top k, a
    refresh writes planes for the new file, and an index built without planes (as before them) turns
    into one with planes on --refresh with the option (and back)."""
    from lakeql.errors import LakeqlError

    lake, folder, parts = lake_of_first_parts(tmp_path, tables["vecs"], "vecs", "docs")
    idx = tmp_path / "index"
    build(lake, idx, ["vecs.docs.v"])  # no planes: what lakeql wrote before them
    assert not list((idx / "embed").rglob("refine.npy"))
    before = vector_queries(lake, idx, real)
    build(lake, idx, ["vecs.docs.v"], refresh=True, **REFINE_OPTS)  # the option changes the index: rebuilt
    assert len(list((idx / "embed").rglob("refine.npy"))) == 3
    (meta,) = [json.loads(p.read_text()) for p in (idx / "embed").glob("*/meta.json")]
    assert meta["refine_bits"] == 2 and meta["tier"] == "int8"
    jsonschema = pytest.importorskip("jsonschema")
    schema = Path(__file__).resolve().parents[2] / "schemas" / "vectors_meta.schema.json"
    jsonschema.validate(meta, json.loads(schema.read_text()))
    shutil.copy(parts[3], folder)
    build(lake, idx, ["vecs.docs.v"], refresh=True, **REFINE_OPTS)
    # the refresh keeps the binarizer (rabitq's centroid): kept shards are linked, the new one has planes
    assert len(list((idx / "embed").rglob("refine.npy"))) == 4
    con = connect(lake, idx)
    ids_all, vecs = real
    for i in (0, 57, 123, 199):
        res = con.execute("SELECT id FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := 7)",
                          [vecs[i].tolist()]).fetchall()
        assert [r[0] for r in res] == ids_all[np.argsort(-(vecs @ vecs[i]), kind="stable")[:7]].tolist()
    con.close()
    assert len(vector_queries(lake, idx, real)) == len(before)
    build(lake, idx, ["vecs.docs.v"], refresh=True)  # dropping the option rebuilds without planes
    assert not list((idx / "embed").rglob("refine.npy"))
    for bad, match in (({"embed_refine_bits": 5}, "0 to 4"),
                       ({"embed_refine_bits": 2, "embed_rescore": "float16"}, "--embed-rescore int8")):
        with pytest.raises(LakeqlError, match=match):
            build(lake, tmp_path / "bad", ["vecs.docs.v"], **bad)


def test_code_macros_refuse_a_stale_index_instead_of_naming_other_rows(tmp_path, tables):
    """After a file that sorts first is added, the table's view (which follows the lake) numbers every
    row anew while the stale code store keeps the old rowids: similar_codes / nearest_codes /
    embed_codes on a lakeql connection returned other rows' ids with no word. Now the error names
    --refresh; after it, the answers are right again."""
    lake, folder, parts = lake_of_first_parts(tmp_path, tables["vecs"], "vecs", "docs")
    idx = tmp_path / "index"
    build(lake, idx, ["vecs.docs.v"], **VEC_OPTS)
    sql = "SELECT id, distance FROM similar_codes('vecs.docs', 'v', 7, k := 4)"
    con = connect(lake, idx)
    fresh = con.execute(sql).fetchall()
    assert len(fresh) == 4
    con.close()
    shutil.copy(parts[3], folder / "a-first.parquet")  # sorts before part-0: every rowid shifts
    con = connect(lake, idx)
    for q in (sql, "SELECT count(*) FROM embed_codes('vecs.docs', 'v')",
              "SELECT count(*) FROM nearest_codes('vecs.docs', 'v', (SELECT code FROM embed_codes("
              "'vecs.docs', 'v') LIMIT 1))"):
        with pytest.raises(duckdb.Error, match=r"older than the Parquet files.*lakeql index --refresh"):
            con.execute(q).fetchall()
    con.close()
    build(lake, idx, ["vecs.docs.v"], refresh=True, **VEC_OPTS)
    con = connect(lake, idx)
    ids = dict(con.execute("SELECT __rowid, id FROM query_table(lakeql_rows_view('vecs.docs'))").fetchall())
    row7 = ids[7]
    got = con.execute(sql).fetchall()
    assert row7 not in [i for i, _ in got] and len(got) == 4
    con.close()


def test_long_lived_connection_after_refresh_refuses_instead_of_naming_other_rows(tmp_path, tables, real):
    """A connection open while a file that sorts first is added (every rowid shifts) and the index is
    refreshed: its view of the table still reads the old files, so the refreshed index's rowids name
    other rows of it. It returned the right scores with other rows' ids (an MCP server or notebook keeps
    its connection); now a clear error says to reconnect, and a new connection answers right."""
    lake, folder, parts = lake_of_first_parts(tmp_path, tables["vecs"], "vecs", "docs")
    idx = tmp_path / "index"
    build(lake, idx, ["vecs.docs.v"])  # default: rabitq (the bounded scan and its blocked copy)
    sql = "SELECT id, score FROM semantic_search_vector('vecs.docs', 'v', ?::FLOAT[384], k := 7)"
    qs = [real[1][i].tolist() for i in (0, 57, 123, 199)]
    con = connect(lake, idx)
    before = [con.execute(sql, [q]).fetchall() for q in qs]
    assert all(len(r) == 7 for r in before)
    shutil.copy(parts[3], folder / "a-first.parquet")  # sorts before part-0: every rowid shifts
    build(lake, idx, ["vecs.docs.v"], refresh=True)
    with pytest.raises(duckdb.Error, match=r"changed after this connection was opened.*new connection"):
        con.execute(sql, [qs[0]]).fetchall()
    con.close()
    con = connect(lake, idx)
    want = [con.execute(sql, [q]).fetchall() for q in qs]
    ids = [i for (i,) in con.execute("SELECT id FROM vecs.docs").fetchall()]
    con.close()
    assert want[0][0][1] > 0.999 and want[0][0][0] == real[0][0]  # the query's own row, by its id
    assert len(ids) == len(set(ids)) == tables["vecs"].num_rows
