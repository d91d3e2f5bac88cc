"""CSV lakes read like users expect (lakeql.csvenc): files that are not UTF-8 are read through a UTF-8
copy under the index (never written into the lake), and CSV oddities are read right or refused with one
error naming the file and the fix.

The real fivethirtyeight files that are not UTF-8 are read from ../shared/data/fivethirtyeight (the path
tests/test_profile_batch.py uses); a test that needs them fails, never skips, when they are missing.
"""

from __future__ import annotations

import codecs
import os
import stat
import warnings
from pathlib import Path

import duckdb
import pytest

import lakeql
from lakeql import csvenc
from lakeql.catalog import Catalog, profile_table
from lakeql.lake import discover
from lakeql.store import Store

F538 = next(
    (
        p / "shared" / "data" / "fivethirtyeight"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "fivethirtyeight").is_dir()
    ),
    None,
)

BOM8 = codecs.BOM_UTF8


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    """Copies made without an index dir go to $XDG_CACHE_HOME: a temp folder here, not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


# ------------------------------------------------------------------------------- detection rules
@pytest.mark.parametrize(
    "data, label",
    [
        (b"id,name\n1,plain ascii\n", None),
        ("id,name\n1,café\n".encode(), None),
        (BOM8 + "id,name\n1,café\n".encode(), "utf-8-sig"),  # DuckDB reads it as it is
        ("id,name\n1,café\n".encode("cp1252"), "cp1252"),
        (b"id,name\n1,it\x92s \x93q\x94 \x80\n", "cp1252"),  # bytes DuckDB's latin-1 refuses
        (b"id,name\n1,\x81\x8d\x8f\x90\x9d\n", "cp1252"),  # undefined in cp1252: Latin-1
        ("id,name\n1,café ünï\n2,Zoë\n".encode() + b"3,it\x92s\n", "utf-8+cp1252"),
        (BOM8 + b"id,name\n1,caf\xe9\n", "utf-8+cp1252"),  # marked UTF-8: only its bad bytes are cp1252
        ("id,name\n1,café\n".encode("utf-16"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + "id,name\n1,café\n".encode("utf-16-be"), "utf-16-be"),
        ("id,name\n1,café\n2,x\n".encode("utf-16-le"), "utf-16-le"),  # no BOM: NULs in odd positions
        ("id,name\n1,café\n2,x\n".encode("utf-16-be"), "utf-16-be"),
        ("id,name\n1,café\n".encode("utf-32"), "utf-32-le"),
    ],
)
def test_detect(tmp_path, data, label):
    p = tmp_path / "f.csv"
    p.write_bytes(data)
    assert csvenc.detect(lambda: open(p, "rb")) == label


def test_undefined_cp1252_bytes_are_latin1():
    assert codecs.charmap_decode(b"\x81\x8d\x8f\x90\x9d\x80\x92", "strict", csvenc.CP1252)[0] == (
        "\x81\x8d\x8f\x90\x9d€’"
    )


# ------------------------------------------------------------------------- hostile files, one table each
ROWS = {  # file name -> bytes, (columns, rows) read, or the text of the error naming it and the fix
    "latin1.csv": (
        "id,name\n1,café\n2,naïve\n".encode("latin-1"),
        (["id", "name"], [(1, "café"), (2, "naïve")]),
    ),
    "cp1252.csv": (
        b"id,name\n1,it\x92s\n2,\x93q\x94 \x80 \x9d\n",
        (["id", "name"], [(1, "it’s"), (2, "“q” € \x9d")]),
    ),
    "mixed.csv": (
        "id,name\n1,café ünïcödé\n2,Zoë\n".encode() + b"3,it\x92s\n",
        (["id", "name"], [(1, "café ünïcödé"), (2, "Zoë"), (3, "it’s")]),
    ),
    "u16.csv": ("id,name\n1,café\n2,日本\n".encode("utf-16"), (["id", "name"], [(1, "café"), (2, "日本")])),
    "u16be.csv": (
        codecs.BOM_UTF16_BE + "id,name\n1,café\n".encode("utf-16-be"),
        (["id", "name"], [(1, "café")]),
    ),
    "u16nobom.csv": ("id,name\n1,café\n2,x\n".encode("utf-16-le"), (["id", "name"], [(1, "café"), (2, "x")])),
    "u32.csv": ("id,name\n1,café\n".encode("utf-32"), (["id", "name"], [(1, "café")])),
    "bom.csv": (BOM8 + "id,name\n1,café\n".encode(), (["id", "name"], [(1, "café")])),
    "bom_cp.csv": (BOM8 + b"id,name\n1,caf\xe9\n", (["id", "name"], [(1, "café")])),
    "crlf_cp.csv": (b"id,name\r\n1,caf\xe9\r\n2,x\r\n", (["id", "name"], [(1, "café"), (2, "x")])),
    "semi.csv": (b"id;name\n1;a,b\n2;c\n", (["id", "name"], [(1, "a,b"), (2, "c")])),
    "tab.tsv": (b"id\tname\n1\tx y\n2\tz\n", (["id", "name"], [(1, "x y"), (2, "z")])),
    "header_only.csv": (b"id,name\n", (["id", "name"], [])),
    "quoted_nl.csv": (
        b'id,text\n1,"line one\nline two"\n2,"say ""hi"""\n',
        (["id", "text"], [(1, "line one\nline two"), (2, 'say "hi"')]),
    ),
    "quoted_nl_cp.csv": (b'id,text\n1,"caf\xe9\r\nbar"\n', (["id", "text"], [(1, "café\r\nbar")])),
    "dupcols.csv": (b"a,a,b\n1,2,3\n", (["a", "a_1", "b"], [(1, 2, 3)])),
    "emptycol.csv": (b"a,,b\n1,2,3\n", (["a", "column1", "b"], [(1, 2, 3)])),
    "crlf.csv": (b"id,name\r\n1,x\r\n2,y\r\n", (["id", "name"], [(1, "x"), (2, "y")])),
    "empty.csv": (b"", "'t/empty.csv' is empty (0 bytes): write its header line, or remove the file"),
    "ragged.csv": (
        b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n",
        "the rows of 't/ragged.csv' do not all have the same number of fields",
    ),
    "ragged_long.csv": (
        b"a,b,c\n" + b"1,2,3\n" * 50 + b"4,5\n" + b"1,2,3\n" * 50,
        "DuckDB found no delimiter that splits every row of 't/ragged_long.csv'",
    ),
    "bad16.csv": (
        codecs.BOM_UTF16_LE + "id,name\n".encode("utf-16-le") + b"\x00\xd8\x41\x00",
        "the file starts like utf-16-le but is not valid utf-16-le",
    ),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_csv") / "lake"
    (root / "t").mkdir(parents=True)
    for name, (data, _) in ROWS.items():
        (root / "t" / name).write_bytes(data)
    return root


@pytest.mark.parametrize("name", sorted(ROWS))
def test_hostile_csv(hostile, tmp_path, name):
    data, want = ROWS[name]
    lake = discover(hostile)
    key = "t." + name.rsplit(".", 1)[0]
    table = lake.tables[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept, cols, n, _, problems = profile_table(table, None, [tmp_path / "copies"])
    if isinstance(want, str):
        assert not kept.files and want in problems[-1].error, problems
        assert "UTF-8" in problems[-1].error or "header" in problems[-1].error  # the fix
        return
    assert not problems and [c for c, _ in cols] == want[0] and n == len(want[1])
    got = duckdb.connect().execute(f"SELECT * FROM {kept.scan_sql()}").fetchall()
    assert got == want[1]
    label = csvenc.detect(lambda: open(hostile / "t" / name, "rb"))
    if label in (None, "utf-8-sig"):
        assert kept.decoded == {}  # read by DuckDB as it is: no copy
    else:
        assert kept.decoded[f"t/{name}"][0] == label
        assert Path(kept.decoded[f"t/{name}"][1]).parent == tmp_path / "copies"


# ----------------------------------------------------------------- end to end: index, views, refresh
def test_index_reads_copies_never_writes_the_lake(tmp_path):
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    (lake / "d" / "cp.csv").write_bytes(b"name,city\nJos\xe9,S\xe3o Paulo\nit\x92s,\x93q\x94\n")
    (lake / "d" / "ok.csv").write_bytes(b"a,b\n1,2\n")
    (lake / "f").mkdir()  # a folder table of two files of different encodings
    (lake / "f" / "t").mkdir()
    (lake / "f" / "t" / "1.csv").write_bytes("k,v\n1,é\n".encode("utf-16"))
    (lake / "f" / "t" / "2.csv").write_bytes("k,v\n2,ü\n".encode())
    idx = tmp_path / "idx"
    mode = {p: p.stat().st_mode for p in [lake, *lake.rglob("*")] if p.is_dir()}
    for p in mode:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR)  # the lake is read-only
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lakeql.index(str(lake), index_dir=str(idx))
        con = lakeql.connect(str(lake), index_dir=str(idx))
        assert con.execute("SELECT * FROM d.cp").fetchall() == [("José", "São Paulo"), ("it’s", "“q”")]
        assert con.execute("SELECT * FROM f.t ORDER BY k").fetchall() == [(1, "é"), (2, "ü")]
        assert con.execute(
            "SELECT table_name, status, row_count FROM lakeql_tables() ORDER BY 1"
        ).fetchall() == [("d.cp", "ok", 2), ("d.ok", "ok", 1), ("f.t", "ok", 2)]
        con.close()
        # the small domain keeps its prebuilt views (their copy paths are checked), no catalog is loaded
        from lakeql.connection import open_lake

        con, ctx = open_lake(str(lake), index_dir=str(idx))
        assert "d" in ctx.views.small and not ctx.views.live and ctx._catalog is None
        assert con.execute("SELECT * FROM d.cp").fetchall() == [("José", "São Paulo"), ("it’s", "“q”")]
        con.close()
        enc = dict(
            duckdb.sql(
                f"SELECT table_name, file_encodings FROM read_parquet('{idx}/catalog/tables.parquet')"
            ).fetchall()
        )
        assert enc == {"d.cp": ["cp1252"], "d.ok": ["utf-8"], "f.t": ["utf-16-le", "utf-8"]}
        copies = sorted(p.name for p in (idx / csvenc.DIR).iterdir())
        assert len(copies) == 2 and all(c.endswith(".csv") for c in copies)
        assert sorted(p.name for p in lake.rglob("*")) == [
            "1.csv",
            "2.csv",
            "cp.csv",
            "d",
            "f",
            "ok.csv",
            "t",
        ]
        assert not (tmp_path / "xdg").exists()  # the index dir was writable: nothing in the user's cache
    finally:
        for p, m in mode.items():
            p.chmod(m)

    # a views manifest naming any other file of the index dir: views made from the catalog instead
    manifest = idx / "views" / "views.json"
    saved = manifest.read_bytes()
    planted = manifest.read_text().replace(csvenc.DIR + "/", csvenc.DIR + "/x")
    assert planted != saved.decode()
    for p in (idx / csvenc.DIR).iterdir():
        (idx / csvenc.DIR / ("x" + p.name)).write_bytes(b"name,city\nplanted,x\n")
    manifest.write_text(planted)
    con, ctx = open_lake(str(lake), index_dir=str(idx))
    assert "d" in ctx.views.live
    assert con.execute("SELECT * FROM d.cp").fetchall() == [("José", "São Paulo"), ("it’s", "“q”")]
    con.close()
    manifest.write_bytes(saved)
    for p in (idx / csvenc.DIR).glob("x*"):
        p.unlink()

    # the file changes: a refresh reads it again, makes a new copy and removes the old one
    (lake / "d" / "cp.csv").write_bytes(b"name,city\nZo\xeb,Li\xe8ge\n")
    os.utime(lake / "d" / "cp.csv", ns=(1, 2_000_000_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), refresh=True)
    con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.execute("SELECT * FROM d.cp").fetchall() == [("Zoë", "Liège")]
    assert len(list((idx / csvenc.DIR).iterdir())) == 2  # the old copy of cp.csv was pruned
    con.close()

    # a copy removed by hand is made again when the stored catalog is loaded
    for p in (idx / csvenc.DIR).iterdir():
        p.unlink()
    cat = Catalog.open(discover(lake), Store(idx))
    t = cat.lake.tables["d.cp"]
    assert Path(t.decoded["d/cp.csv"][1]).is_file() and t.decoded["d/cp.csv"][0] == "cp1252"
    assert duckdb.connect().execute(f"SELECT * FROM {t.scan_sql()}").fetchall() == [("Zoë", "Liège")]


def test_doctor_names_each_decoded_file(tmp_path):
    from lakeql.doctor import diagnose

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "cp.csv").write_bytes(b"a\ncaf\xe9\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(tmp_path / "idx"))
    diag = diagnose(lake, tmp_path / "idx")
    assert diag.healthy  # a note, not a problem
    assert "[encoding] main.cp (cp.csv): not UTF-8: read as cp1252 through a UTF-8 copy" in "\n".join(
        diag.lines()
    )


# ------------------------------------------------------------------------ the real fivethirtyeight files
#: the fivethirtyeight CSVs that are not UTF-8 (a scan of the folder for invalid UTF-8), and one cell of
#: each as read (most were written as Mac Roman, some double-encoded, at the source; the letters of three
#: say Mac Roman, e.g. 'Chlo\x91' is Mac Roman's 'Chloë', Windows-1252's 'Chlo‘'; the rest read as cp1252)
F538_MAC_ROMAN = {
    "mad-men/performer-scores.csv",
    "mad-men/show-data.csv",
    "twitter-ratio/realDonaldTrump.csv",
}
F538_CELLS = {
    "ahca-polls/ahca_polls.csv": None,
    "avengers/avengers.csv": None,
    "biopics/biopics.csv": None,
    "food-world-cup/food-world-cup-data.csv": None,
    "hip-hop-candidate-lyrics/genius_hip_hop_lyrics.csv": None,
    "mad-men/performer-scores.csv": ("Performer", "Chloë Sevigny"),
    "mad-men/show-data.csv": ("Performer", "Alexander Skarsgård"),
    "next-bechdel/nextBechdel_crewGender.csv": None,
    "police-killings/police_killings.csv": None,
    "potential-candidates/2015_01_30/events.csv": (
        "Event",
        "Family Leader's “Celebrate the Family” fundraising dinner.",
    ),
    "primary-candidates-2018/rep_candidates.csv": None,
    "sleeping-alone-data/sleeping-alone-data.csv": None,
    "star-wars-survey/StarWars.csv": None,
    "tenth-circuit/tenth-circuit.csv": None,
    "twitter-ratio/BarackObama.csv": None,
    "twitter-ratio/realDonaldTrump.csv": None,
}


def test_f538_non_utf8_files_are_the_ones_listed():
    assert F538 is not None, "../shared/data/fivethirtyeight is missing (CI has it)"
    bad = []
    for p in sorted(F538.rglob("*.csv")):
        try:
            p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            bad.append(p.relative_to(F538).as_posix())
    assert bad == sorted(F538_CELLS)


@pytest.fixture(scope="module")
def f538_read(tmp_path_factory):
    assert F538 is not None, "../shared/data/fivethirtyeight is missing (CI has it)"
    lake = discover(F538)
    cache = [tmp_path_factory.mktemp("f538_copies")]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in lake.tables.values():
            paths = [f.path for f in t.files if f.path in F538_CELLS]
            if paths:
                kept, cols, n, per_file, problems = profile_table(t, None, cache)
                for p in paths:
                    out[p] = (kept, cols, n, per_file, problems)
    return out


@pytest.mark.parametrize("rel", sorted(F538_CELLS))
def test_f538_file_is_read(f538_read, rel):
    kept, cols, n, per_file, problems = f538_read[rel]
    assert not problems, problems
    label, copy = kept.decoded[rel]
    # no fivethirtyeight file is mostly UTF-8
    assert label == ("mac_roman" if rel in F538_MAC_ROMAN else "cp1252")
    raw = (F538 / rel).read_bytes()
    text = (
        raw.decode("mac_roman")
        if label == "mac_roman"
        else codecs.charmap_decode(raw, "strict", csvenc.CP1252)[0]
    )
    assert Path(copy).read_bytes().decode("utf-8") == text  # the copy is exactly the decoded bytes
    con = duckdb.connect()
    i = [f.path for f in kept.files].index(rel)
    assert con.execute("SELECT count(*) FROM read_csv(?)", [copy]).fetchone()[0] == per_file[i]
    cell = F538_CELLS[rel]
    if cell is not None:
        col, value = cell
        got = con.execute(
            f"SELECT count(*) FROM {kept.scan_sql()} WHERE {duckdb_ident(col)} = ?", [value]
        ).fetchone()[0]
        assert got >= 1
    # every non-ASCII character of the file is in the table as read (none lost or replaced)
    rows = con.execute("SELECT * FROM read_csv(?, all_varchar = true, header = false)", [copy]).fetchall()
    seen = "".join(str(v) for r in rows for v in r if v is not None)
    assert {ch for ch in text if ord(ch) > 127} <= set(seen)
    assert "\ufffd" not in seen


def duckdb_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------ a lake on S3
def test_s3_lake_reads_copies(tmp_path):
    """A CSV object that is not UTF-8 is fetched once and read through a local copy under the index."""
    from testutil import moto_s3_sample

    with moto_s3_sample() as client:
        client.put_object(Bucket="lake", Key="csv/d/cp.csv", Body=b"name\nJos\xe9\nit\x92s\n")
        client.put_object(Bucket="lake", Key="csv/d/u16.csv", Body="k,v\n1,日本\n".encode("utf-16"))
        client.put_object(Bucket="lake", Key="csv/d/ok.csv", Body=b"a\n1\n")
        idx = tmp_path / "idx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lakeql.index("s3://lake/csv", index_dir=str(idx), capabilities=[])
            con = lakeql.connect("s3://lake/csv", index_dir=str(idx), capabilities=[])
        assert con.execute("SELECT * FROM d.cp").fetchall() == [("José",), ("it’s",)]
        assert con.execute("SELECT * FROM d.u16").fetchall() == [(1, "日本")]
        assert con.execute("SELECT * FROM d.ok").fetchall() == [(1,)]
        con.close()
        assert len(list((idx / csvenc.DIR).iterdir())) == 2
