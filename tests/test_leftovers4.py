"""leftovers4: the "noticed, not done" list of the 2026-12-07 sessions (benchmarks/results/leftovers4.md).

1. ``onnx-int8-outlier`` picks its outlier channels by a threshold at first use on each machine; one
   channel of MiniLM sits 9e-5 (relative) from it, so another CPU / ONNX Runtime build may pick another
   set under the same recipe. Every index it embeds records the set, and queries and refreshes elsewhere
   run the graph of the index's channels. "Another machine" is simulated: its own cache folder (seeded
   with this machine's float32 export, so nothing is exported through torch) whose calibration picked one
   channel fewer.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "vectors"))
from vectors_helpers import make_lake  # noqa: E402

import lakeql  # noqa: E402
from lakeql import embedding, onnx_encoder  # noqa: E402
from lakeql.errors import LakeqlError  # noqa: E402

QUERIES = ["read a zip archive", "parse command line options", "x"]


@pytest.fixture(scope="module")
def here() -> tuple[Path, str]:
    """This machine's float32 export and the outlier channels its calibration picks."""
    model_dir = Path(embedding.resolve_model(None))
    fp32 = onnx_encoder.exported(model_dir, precision="fp32")
    return fp32, embedding.load_model(None, "onnx-int8-outlier").channels


def other_set(channels: str) -> dict[str, list[int]]:
    """The set another machine picks: one channel (the last of the last input that has two) left out."""
    other = onnx_encoder.parse_channels(channels)
    name = [k for k, v in other.items() if len(v) > 1][-1]
    other[name] = other[name][:-1]
    return other


@pytest.fixture()
def elsewhere(here, tmp_path, monkeypatch):
    """Switch this process to "another machine" (own cache, other calibration); returns (its channels,
    a function that switches back)."""
    fp32, channels = here
    theirs = other_set(channels)
    cache = tmp_path / "other-cache"
    shutil.copytree(fp32.parent, cache / "onnx" / fp32.parent.name)
    monkeypatch.setenv("LAKEQL_CACHE_DIR", str(cache))
    calibrated = {n: [*v] for n, v in theirs.items()}
    monkeypatch.setattr(onnx_encoder, "outlier_channels", lambda *a, **k: calibrated)
    embedding.load_model.cache_clear()

    def back() -> None:
        monkeypatch.undo()
        embedding.load_model.cache_clear()

    yield onnx_encoder.channels_text(theirs), back
    embedding.load_model.cache_clear()


def test_the_cache_records_its_channels(here):
    fp32, channels = here
    m = embedding.load_model(None, "onnx-int8-outlier")
    record = json.loads((m.path.parent / onnx_encoder.RECORD).read_text())
    assert onnx_encoder.channels_text(record["outlier_channels"]) == channels
    assert channels == onnx_encoder.channels_of_graph(m.path)
    assert len(onnx_encoder.parse_channels(channels)) >= 6
    assert embedding.channels(embedding.load_model(None, "onnx")) is None  # float32: nothing to pin


def test_a_vectors_index_made_elsewhere_is_queried_and_refreshed_with_its_own_channels(
    elsewhere, here, tmp_path
):
    theirs, back = elsewhere
    _, ours = here
    assert theirs != ours
    import duckdb

    lake = make_lake(tmp_path)
    folder = lake / "python" / "functions"  # a folder table: a refresh keeps the shard of each file
    folder.mkdir()
    (lake / "python" / "functions.parquet").rename(folder / "a.parquet")
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, embed=["python.functions.docstring"], capabilities=["vectors"],
                 progress=False)
    meta = json.loads(next((idx / "embed").glob("*/meta.json")).read_text())
    assert meta["backend"] == "onnx-int8-outlier" and meta["onnx_channels"] == theirs
    made_there = embedding.load_model(None, "onnx-int8-outlier")
    assert made_there.channels == theirs
    q_there = made_there.encode(QUERIES, normalize_embeddings=True)
    sql = "SELECT qualname, score FROM semantic_search('python.functions', 'docstring', ?, k := 5)"
    con = lakeql.connect(lake, index_dir=idx, capabilities=["vectors"])
    there = [con.execute(sql, [q]).fetchall() for q in QUERIES]
    con.close()

    back()  # this machine: its own cache and calibration
    mine = embedding.load_model(None, "onnx-int8-outlier")
    assert mine.channels == ours
    pinned = embedding.load_model(None, "onnx-int8-outlier", pin=theirs)
    assert pinned.channels == theirs and pinned.path != mine.path
    assert onnx_encoder.channels_of_graph(pinned.path) == theirs
    q_here = pinned.encode(QUERIES, normalize_embeddings=True)
    assert float(np.abs(q_here - q_there).max()) < 1e-6  # the same vectors on both machines
    assert float(np.abs(mine.encode(QUERIES, normalize_embeddings=True) - q_there).max()) > 1e-5
    con = lakeql.connect(lake, index_dir=idx, capabilities=["vectors"])
    here_rows = [con.execute(sql, [q]).fetchall() for q in QUERIES]
    con.close()
    assert [[r[0] for r in x] for x in here_rows] == [[r[0] for r in x] for x in there]
    assert np.allclose([[r[1] for r in x] for x in here_rows], [[r[1] for r in x] for x in there], atol=1e-5)

    # a refresh here (a file added) embeds the new rows with the index's channels and keeps the record
    duckdb.execute(f"COPY (SELECT * REPLACE (qualname || '_b' AS qualname) FROM '{folder / 'a.parquet'}' "
                   f"LIMIT 20) TO '{folder / 'b.parquet'}' (FORMAT parquet)")
    seen: list = []
    real = embedding.load_model

    def spy(name=None, backend="torch", device="cpu", pin=None):
        seen.append(pin)
        return real(name, backend, device, pin)

    embedding.load_model = spy
    try:
        lakeql.index(lake, index_dir=idx, refresh=True, capabilities=["vectors"], progress=False)
    finally:
        embedding.load_model = real
    meta = json.loads(next((idx / "embed").glob("*/meta.json")).read_text())
    assert meta["onnx_channels"] == theirs and theirs in seen and None not in seen


def test_joins_and_context_made_elsewhere_keep_their_channels(elsewhere, here, tmp_path):
    from lakeql.context import retrieve
    from lakeql.joins import deepjoin

    theirs, back = elsewhere
    _, ours = here
    rows = [{"col_id": 0, "indexed": True, "text": "flights - carrier - airline code"},
            {"col_id": 1, "indexed": True, "text": "airlines - name - airline name"}]
    first = tmp_path / "first"
    first.mkdir()
    assert deepjoin.build(rows, first, None, None, "auto")["backend"] == "onnx-int8-outlier"
    assert deepjoin.recorded_channels(first) == theirs
    schema = tmp_path / "schemas"
    schema.mkdir()
    model, label = retrieve.encoder("auto", schema)
    retrieve._save_cache(schema, {"k": np.zeros(384, np.float32)}, ["k"], embedding.channels(model))
    assert retrieve.cached_channels(schema) == theirs

    back()
    more = [*rows, {"col_id": 2, "indexed": True, "text": "airports - faa - airport code"}]
    second = tmp_path / "second"
    second.mkdir()
    info = deepjoin.build(more, second, None, first, "auto")
    assert info["embedded"] == 1 and deepjoin.recorded_channels(second) == theirs
    pinned = embedding.load_model(None, "onnx-int8-outlier", pin=theirs)
    want = pinned.encode([more[2]["text"]], normalize_embeddings=True)[0]
    assert float(np.abs(np.load(second / "vectors.npy")[2] - want).max()) < 1e-6
    model, _ = retrieve.encoder("auto", schema)
    assert model.channels == theirs
    assert retrieve.encoder("auto", tmp_path)[0].channels == ours  # a folder without a record: this machine's


def test_a_pin_this_export_cannot_make_or_cannot_read_is_a_clear_error(here):
    with pytest.raises(LakeqlError, match="input.s. this machine's ONNX export does not have.*re-embed"):
        embedding.load_model(None, "onnx-int8-outlier", pin='{"/not/a/tensor":[3]}')
    for bad in ("[1, 2", '{"a": "b"}', '{"a": [-1]}', "[]", '{"a": [true]}'):
        with pytest.raises(LakeqlError, match="channels recorded by the index are unreadable"):
            embedding.load_model(None, "onnx-int8-outlier", pin=bad)
    # under auto (joins, schema embeddings): torch with a warning (the callers then re-embed everything),
    # and the failure is this pin's only: a later load without it is the ONNX encoder again
    with pytest.warns(UserWarning, match="this machine's ONNX export does not have.*with torch"):
        assert embedding.load_or_torch(None, "auto", "joins embed", '{"/not/a/tensor":[3]}')[1] == "torch"
    assert embedding.load_or_torch(None, "auto", "joins embed")[1] == "onnx-int8-outlier"
    # a pin means nothing to the other encoders
    assert embedding.load_model(None, "onnx", pin="[1, 2").precision == "fp32"


# ----------------------------------------------------------------------------- 2. no calibration text
def test_a_missing_calibration_text_makes_auto_float32_onnx_not_torch(tmp_path, monkeypatch):
    """Without ``lakeql/onnx_calibration.txt``, ``auto`` ran torch (import torch, 30-60 s first query).
    Now: the float32 ONNX encoder, one warning naming the file, and an index that records ``onnx``."""
    import warnings

    monkeypatch.setattr(onnx_encoder, "CALIBRATION", tmp_path / "onnx_calibration.txt")
    monkeypatch.setattr(embedding, "_NO_CALIBRATION", set())
    monkeypatch.setattr(embedding, "_ONNX_FAILED", {})
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert embedding.resolve_backend(None, "auto") == "onnx"
        model, used = embedding.load_or_torch(None, "auto", "joins embed")
        assert embedding.resolve_backend(None, "auto") == "onnx"  # warned once per process
    assert used == "onnx" and model.precision == "fp32"
    msgs = [str(w.message) for w in got if "calibration" in str(w.message)]
    assert len(msgs) == 1 and str(tmp_path / "onnx_calibration.txt") in msgs[0]
    assert "float32 'onnx'" in msgs[0] and "reinstall" in msgs[0]
    assert embedding.resolve_backend(None, "auto-fp32") == "onnx"
    embedding.load_model.cache_clear()  # (a process that loaded the encoder before keeps it)
    with pytest.raises(LakeqlError, match="calibration text of onnx-int8-outlier is missing.*reinstall"):
        embedding.load_model(None, "onnx-int8-outlier")  # named: the error, as before
    lake = make_lake(tmp_path)
    idx = tmp_path / "idx"
    with pytest.warns(UserWarning, match="calibration text"):
        monkeypatch.setattr(embedding, "_NO_CALIBRATION", set())
        lakeql.index(lake, index_dir=idx, embed=["python.functions.docstring"], capabilities=["vectors"],
                     progress=False)
    meta = json.loads(next((idx / "embed").glob("*/meta.json")).read_text())
    assert meta["backend"] == "onnx" and "onnx_channels" not in meta


# ----------------------------------------------------------------------------- 3. S3: CSV named .parquet
def test_a_csv_file_named_parquet_on_s3_names_the_file_and_the_fix(tmp_path):
    """On S3 the skipped file said pyarrow's ``Parquet magic bytes not found in footer``; the local path
    has named what the file is and the fix since trial10. Now S3 says the same."""
    from testutil import moto_s3_sample, shared_data

    drinks = shared_data("fivethirtyeight", "alcohol-consumption", "drinks.csv").read_bytes()
    with moto_s3_sample() as client:
        client.put_object(Bucket="lake", Key="sample/d/csv_named.parquet", Body=drinks)
        with pytest.warns(Warning, match="not a Parquet file"):
            lakeql.index("s3://lake/sample", index_dir=tmp_path / "idx", progress=False, capabilities=[])
        con = lakeql.connect("s3://lake/sample", index_dir=tmp_path / "idx")
        errors = dict(con.execute("SELECT name, error FROM lakeql_tables() WHERE status <> 'ok'").fetchall())
        assert con.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16  # the rest is read
        con.close()
    assert "not a Parquet file (it does not start with PAR1 but with the text 'country,beer" in errors[
        "csv_named"
    ]
    assert "rename it after its format (csv_named.csv, .json)" in errors["csv_named"]
    assert "magic bytes" not in errors["csv_named"]


# ----------------------------------------------------------------------------- 4. --csv-encoding
def _cyrillic_phrases() -> list[str]:
    """Real Cyrillic text: the distinct phrases of 12+ letters in the Python standard library's sources
    (its tests' Russian, Bulgarian and Uzbek strings), those Windows-1251 can hold."""
    import re
    import sysconfig

    found: set[str] = set()
    pat = re.compile(r"[А-яЁё][А-яЁё ,.]{11,}")
    for p in sorted(Path(sysconfig.get_path("stdlib")).rglob("*.py")):
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "Ж" in text or "ж" in text or "е" in text:
            found.update(m.strip() for m in pat.findall(text))
    out = []
    for s in sorted(found):
        try:
            s.encode("cp1251")
        except UnicodeEncodeError:
            continue
        out.append(s.replace(",", " "))
    return out


def _cyrillic_lake(root: Path) -> tuple[Path, list[str]]:
    from testutil import shared_data

    phrases = _cyrillic_phrases()
    assert len(phrases) >= 8
    lake = root / "lake"
    (lake / "d").mkdir(parents=True)
    body = "id,phrase\n" + "".join(f"{i},{p}\n" for i, p in enumerate(phrases))
    (lake / "d" / "ru.csv").write_bytes(body.encode("cp1251"))
    (lake / "d" / "drinks.csv").write_bytes(
        shared_data("fivethirtyeight", "alcohol-consumption", "drinks.csv").read_bytes()
    )
    return lake, phrases


def _phrases(lake: Path, idx: Path) -> list[str]:
    con = lakeql.connect(lake, index_dir=idx)
    try:
        assert con.execute("SELECT count(*) FROM d.drinks").fetchone()[0] == 193  # UTF-8: as is, always
        return [r[0] for r in con.execute("SELECT phrase FROM d.ru ORDER BY id").fetchall()]
    finally:
        con.close()


def test_a_named_csv_encoding_reads_what_detection_cannot_tell(tmp_path):
    """A Windows-1251 (Cyrillic) CSV file cannot be told from Windows-1252 by its bytes: it was read as
    Windows-1252 (``Ïîçíàíèå``), and the only fix was to convert it first (iconv). ``csv_encoding``
    (``--csv-encoding``) names it: for the lake or one table, kept by later builds, ``auto`` to detect."""
    lake, phrases = _cyrillic_lake(tmp_path)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=[])
    guessed = _phrases(lake, idx)
    assert guessed != phrases and guessed[0] == phrases[0].encode("cp1251").decode("cp1252")

    lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], refresh=True,
                 csv_encoding="windows-1251")
    assert _phrases(lake, idx) == phrases
    import duckdb

    got = duckdb.execute("SELECT file_encodings FROM read_parquet(?) WHERE table_name = 'd.ru'",
                         [str(idx / "catalog" / "tables.parquet")]).fetchone()
    assert got == (["cp1251"],)  # recorded (lakeql doctor lists it)
    from lakeql.connection import open_lake

    con, ctx = open_lake(lake, index_dir=idx)  # the prebuilt views are attached: no table looks changed
    assert ctx.views.changed_tables == set() and con.execute("SELECT count(*) FROM d.ru").fetchone()[0]
    con.close()
    # a refresh without the option keeps it; 'auto' drops it (the table is read again: detected)
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], refresh=True)
    assert _phrases(lake, idx) == phrases
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], refresh=True, csv_encoding="auto")
    assert _phrases(lake, idx) == guessed
    # one table's own encoding
    lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], refresh=True,
                 csv_encoding=["d.ru=cp1251"])
    assert _phrases(lake, idx) == phrases


def test_a_wrong_csv_encoding_is_a_clear_error(tmp_path, capsys):
    import subprocess

    from lakeql.lake import UnknownTableError

    lake, phrases = _cyrillic_lake(tmp_path)
    idx = tmp_path / "idx"
    for bad in ("klingon", "rot13", "base64", ""):
        with pytest.raises(LakeqlError, match="is not a text encoding Python knows.*cp1251"):
            lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], csv_encoding=bad)
    with pytest.raises(UnknownTableError, match="nope"):
        lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], csv_encoding="d.nope=cp1251")
    with pytest.raises(LakeqlError, match="two encodings for the whole lake"):
        lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], csv_encoding=["cp1251", "koi8-r"])
    # bytes that are not the named encoding: the file is left out, naming the encoding and the flag
    with pytest.warns(Warning, match="not valid ascii, the encoding named by --csv-encoding"):
        lakeql.index(lake, index_dir=idx, progress=False, capabilities=[], csv_encoding="d.ru=ascii")
    # the command line
    import os

    env = {**os.environ, "PYTHONPATH": str(Path(lakeql.__file__).parents[1])}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakeql", "index", str(lake), *args],
                              capture_output=True, text=True, env=env)

    out = cli("--index-dir", str(idx), "--csv-encoding", "cp1251", "--only", "joins", "--quiet")
    assert out.returncode == 0, out.stderr
    assert _phrases(lake, idx) == phrases
    out = cli("--index-dir", str(idx), "--csv-encoding", "nope")
    assert out.returncode != 0 and "--csv-encoding 'nope' is not a text encoding" in out.stderr


# ----------------------------------------------------------------------------- 5. the mapped ANN rows
def test_the_mapped_ann_rows_are_charged_what_they_map_not_the_folder(tmp_path):
    """A new connection's unfiltered ANN search maps the list-order rows only (annfirst.md), but the
    connection's cache charged it the whole index folder (Parquet codes, table-order tier, BM25 it never
    reads), so it evicted other indexes early. It is charged the files it maps and the arrays it holds."""
    from lakeql.connection import open_lake
    from lakeql.store import dir_bytes
    from lakeql.vectors import ann

    lake = make_lake(tmp_path)
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, embed=["python.functions.docstring"], capabilities=["vectors"],
                 progress=False, embed_ann=True, embed_ann_lists=16, embed_bm25=True)
    (folder,) = list((idx / "embed").iterdir())
    con, ctx = open_lake(lake, index_dir=idx, capabilities=["vectors"])
    sql = "SELECT rowid FROM semantic_search_rowids('python.functions', 'docstring', ?, k := 10)"
    assert len(con.execute(sql, [QUERIES[0]]).fetchall()) == 10
    ((key, (obj, charged)),) = list(ctx.indexes._items.items())
    assert key[0] == "embed:ann"
    maps = sum((folder / n).stat().st_size for n in (ann.WORDS_FILE, ann.FACTORS_FILE, ann.ROWIDS_FILE,
                                                     ann.TIER_FILE, ann.SCALES_FILE,
                                                     ann.BLOCKS_FILE, ann.BLOCKF_FILE))
    held = sum(int(a.nbytes) for a in (obj._pos["ann"].centroids, obj._pos["ann"].offsets))
    with np.load(folder / "binarizer.npz") as z:
        held += sum(int(z[k].nbytes) for k in z.files)
    assert charged == maps + held
    assert charged < 0.8 * dir_bytes(folder) and ctx.indexes.total_bytes == charged
    # the whole index, once a filter loads it, is charged as before (its folder's size)
    con.execute(sql.replace("k := 10", "k := 10, filter := 'lineno > 0'"), [QUERIES[0]]).fetchall()
    ((key, (_, whole)),) = list(ctx.indexes._items.items())
    assert key[0] == "embed" and whole == ctx.store.find("embed", "python.functions", "docstring").bytes
    con.close()


# ----------------------------------------------------------------------------- 6. the stale schema message
def test_the_stale_schema_message_names_the_lakes_own_file_formats(tmp_path):
    """``schema_context`` on schema files older than the lake said "older than the lake's Parquet files"
    for a lake of CSV files too: it names the lake's formats."""
    import os
    import time

    import duckdb

    lake, _ = _cyrillic_lake(tmp_path)
    (lake / "d" / "ru.csv").unlink()
    idx = tmp_path / "idx"
    sql = "SELECT * FROM schema_context('alcohol consumption')"

    def stale_message() -> str:
        lakeql.index(lake, index_dir=idx, progress=False, capabilities=["context"], schemas_embed=False)
        later = time.time_ns() + 5_000_000_000
        os.utime(lake / "d" / "drinks.csv", ns=(later, later))
        con = lakeql.connect(lake, index_dir=idx)
        try:
            with pytest.raises(duckdb.Error) as got:
                con.execute(sql).fetchall()
        finally:
            con.close()
        return str(got.value)

    msg = stale_message()
    assert "older than the lake's CSV files: run 'lakeql index --refresh LAKE'" in msg
    assert "Parquet" not in msg
    duckdb.execute(f"COPY (SELECT 1 AS a) TO '{lake / 'd' / 'p.parquet'}' (FORMAT parquet)")
    assert "older than the lake's CSV and Parquet files: run" in stale_message()
