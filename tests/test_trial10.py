"""Faults found by the trial10 pass (benchmarks/results/trial10.md): CSV files as people have them
(fivethirtyeight's, copied and damaged), Parquet files of every DuckDB type, hostile arguments."""

from __future__ import annotations

import re

import pytest
from testutil import shared_data

import lakeql

DRINKS = "alcohol-consumption/drinks.csv"
AIRLINES = "airline-safety/airline-safety.csv"


def fte(rel: str) -> bytes:
    return shared_data("fivethirtyeight", rel).read_bytes()


@pytest.fixture(scope="module")
def csv_lake(tmp_path_factory):
    """fivethirtyeight's drinks and airline-safety as people have them: with a BOM, in Latin-1, in
    UTF-16 with a BOM, with ``;`` delimiters."""
    root = tmp_path_factory.mktemp("csv_lake")
    (root / "csv").mkdir()
    drinks = fte(DRINKS)
    (root / "csv" / "bom.csv").write_bytes(b"\xef\xbb\xbf" + drinks)
    text = drinks.decode().replace("Cote d", "Côte d") + "Zürich,1,2,3,4.0\n"
    (root / "csv" / "latin1.csv").write_bytes(text.encode("latin-1"))
    (root / "csv" / "utf16.csv").write_bytes(drinks.decode().encode("utf-16"))
    (root / "csv" / "semi.csv").write_bytes(fte(AIRLINES).replace(b",", b";"))
    return root


def brute(con, table: str, column: str, phrase: str) -> tuple[int, int]:
    texts = [r[0] or "" for r in con.execute(f'SELECT "{column}" FROM {table}').fetchall()]
    occ = sum(len(re.findall(f"(?={re.escape(phrase)})", t)) for t in texts)
    return occ, sum(phrase in t for t in texts)


def test_ngram_index_of_csv_tables(csv_lake, tmp_path):
    """``--ngram`` of any CSV table was skipped: ``n-gram index of csv.bom.country skipped: Parquet magic
    bytes not found in footer`` (the text reader opened every file as Parquet). Now each is indexed
    (UTF-8 copies of Latin-1 / UTF-16 files included) and answers as a scan of the view."""
    targets = ["csv.bom.country", "csv.latin1.country", "csv.utf16.country", "csv.semi.airline"]
    with _no_skip_warning():
        lakeql.index(csv_lake, index_dir=tmp_path, ngram=targets, capabilities=["ngrams"], progress=False)
    con = lakeql.connect(csv_lake, index_dir=tmp_path)
    kinds = con.execute("SELECT count(*) FROM lakeql_indexes() WHERE kind = 'ngram'").fetchone()[0]
    assert kinds == len(targets)
    for target, phrase in [
        ("csv.latin1.country", "Côte"),
        ("csv.latin1.country", "Zürich"),
        ("csv.latin1.country", "an"),
        ("csv.bom.country", "ia"),
        ("csv.utf16.country", "Rep"),
        ("csv.semi.airline", "Air"),
    ]:
        table, column = target.rsplit(".", 1)
        got = con.execute(
            "SELECT ngram_count(?, ?, ?), ngram_rows(?, ?, ?)", [table, column, phrase, table, column, phrase]
        ).fetchone()
        assert got == brute(con, table, column, phrase), (target, phrase)
        assert got[1] > 0
        hits = con.execute(
            "SELECT count(*) FROM ngram_search(?, ?, ?, k := 1000)", [table, column, phrase]
        ).fetchone()[0]
        assert hits == got[1]


class _no_skip_warning:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self.seen = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        bad = [str(w.message) for w in self.seen if "skipped" in str(w.message)]
        assert not bad, bad
        return False


def _mixed(data: bytes, ends: tuple[bytes, ...]) -> bytes:
    lines = [ln for ln in data.split(b"\n") if ln]
    return b"".join(ln + ends[i % len(ends)] for i, ln in enumerate(lines))


def test_csv_with_mixed_line_ends_is_read(tmp_path):
    """A CSV file whose lines end in ``\\r\\n`` and ``\\n`` (edited on two systems, or concatenated) or
    also ``\\r`` was left out: DuckDB's sniffer refuses it (``Error when sniffing file``). It is now read
    through a copy with one line end, in UTF-8 and in Windows-1252, and doctor says why."""
    from lakeql import doctor

    lake = tmp_path / "lake"
    (lake / "m").mkdir(parents=True)
    drinks = fte(DRINKS)
    (lake / "m" / "crlf_lf.csv").write_bytes(_mixed(drinks, (b"\r\n", b"\n")))
    (lake / "m" / "three.csv").write_bytes(_mixed(drinks, (b"\r\n", b"\r", b"\n")))
    latin = drinks.decode().replace("Cote d", "Côte d").encode("cp1252")
    (lake / "m" / "latin.csv").write_bytes(_mixed(latin, (b"\n", b"\r\n")))
    (lake / "m" / "utf16.csv").write_bytes(_mixed(drinks, (b"\r\n", b"\n")).decode().encode("utf-16"))
    (lake / "m" / "plain.csv").write_bytes(drinks)
    lakeql.index(lake, progress=False, capabilities=[])
    con = lakeql.connect(lake)
    want = con.execute("SELECT count(*), count(DISTINCT country), sum(beer_servings) FROM m.plain").fetchone()
    assert want[0] == 193
    lakeql.index(lake, progress=False, capabilities=[], refresh=True)  # the copies are found again
    con = lakeql.connect(lake)
    for t in ("crlf_lf", "three", "latin", "utf16"):
        got = con.execute(
            f"SELECT count(*), count(DISTINCT country), sum(beer_servings) FROM m.{t}"
        ).fetchone()
        assert got == want, t
        assert con.execute(f"SELECT count(*) FROM m.{t} WHERE country LIKE '%\r%'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM m.latin WHERE country = 'Côte d''Ivoire'").fetchone()[0] == 1
    status = dict(con.execute("SELECT name, status FROM lakeql_tables()").fetchall())
    assert set(status.values()) == {"ok"}
    notes = "\n".join(str(n) for n in doctor.diagnose(lake).notes)
    assert "(m/crlf_lf.csv): lines ending in more than one way" in notes
    assert "read as utf-8+lf" in notes and "read as cp1252+lf" in notes and "read as utf-16-le+lf" in notes


def test_line_end_normalising_across_chunks(monkeypatch):
    """A ``\\r\\n`` split between two read chunks is one line end, not two."""
    import io

    from lakeql import csvenc

    monkeypatch.setattr(csvenc, "CHUNK", 4)
    data = b"ab\r\ncd\r\nef\ngh\rij\r\n"  # chunks: 'ab\r\n' 'cd\r\n' 'ef\ng' 'h\rij' '\r\n'
    assert csvenc.mixed_line_ends(lambda: io.BytesIO(data))
    assert not csvenc.mixed_line_ends(lambda: io.BytesIO(b"abc\r\ndef\r\n" * 3))
    assert not csvenc.mixed_line_ends(lambda: io.BytesIO(b"abc\ndef\n" * 3))
    out = "".join(csvenc._decoded(io.BytesIO(b"a\r\nb\rc\nd\r"), "utf-8+lf"))
    assert out == "a\nb\nc\nd\n"
    out = "".join(csvenc._decoded(io.BytesIO(b"abc\r\ndef"), "cp1252+lf"))
    assert out == "abc\ndef"


def test_files_whose_extension_lies_or_whose_line_is_too_long(tmp_path):
    """Unclear errors before: a Parquet file named ``.csv`` (``DecodedReadError: ... Error when sniffing
    file ".../csv_utf8/....csv" (the file was read as cp1252)``, or a one-column table of binary text),
    a CSV file named ``.parquet`` (``Parquet magic bytes not found in footer``), a gzip file without
    ``.gz``, a CSV value of 3 MB (``CSV Error on Line: 1``: DuckDB's reason was on a later line). Each
    now says what the file is and the fix; the good tables are read."""
    import duckdb

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    src = shared_data("fivethirtyeight", AIRLINES)
    duckdb.execute(f"COPY (FROM read_csv('{src}')) TO '{lake / 'd' / 'pq_named.csv'}' (FORMAT parquet)")
    duckdb.execute(f"COPY (FROM read_csv('{src}')) TO '{lake / 'd' / 'pq_named2.json'}' (FORMAT parquet)")
    (lake / "d" / "csv_named.parquet").write_bytes(fte(DRINKS))
    import gzip

    (lake / "d" / "gz_named.csv").write_bytes(gzip.compress(fte(DRINKS)))
    words = fte("avengers/avengers.csv").decode("latin-1").replace('"', "").split()
    cell = " ".join(words * (3_000_000 // len(" ".join(words)) + 1))[:3_000_000]
    (lake / "d" / "big_cell.csv").write_text(f'id,txt\n1,"short"\n2,"{cell}"\n', encoding="utf-8")
    (lake / "d" / "good.csv").write_bytes(fte(DRINKS))
    with pytest.warns(Warning):
        lakeql.index(lake, progress=False, capabilities=[])
    con = lakeql.connect(lake)
    errors = dict(con.execute("SELECT name, error FROM lakeql_tables() WHERE status <> 'ok'").fetchall())
    assert (
        "the file is Parquet (it starts with PAR1), not CSV: rename it to pq_named.parquet"
        in errors["pq_named"]
    )
    assert "not JSON: rename it to pq_named2.parquet" in errors["pq_named2"]
    assert (
        "not a Parquet file (it does not start with PAR1 but with the text 'country,beer"
        in errors["csv_named"]
    )
    assert "rename it after its format (csv_named.csv, .json)" in errors["csv_named"]
    assert "the file is gzip-compressed: rename it to gz_named.csv.gz" in errors["gz_named"]
    assert (
        "a line of 3,000," in errors["big_cell"]
        and "over DuckDB's limit of 2,000,000 bytes" in errors["big_cell"]
    )
    assert "store the table as Parquet" in errors["big_cell"]
    assert set(errors) == {"pq_named", "pq_named2", "csv_named", "gz_named", "big_cell"}
    assert con.execute("SELECT count(*) FROM d.good").fetchone()[0] == 193


def test_truncated_utf8_copy_is_made_again(csv_lake, tmp_path):
    """The UTF-8 copy of a Latin-1 CSV file in ``INDEX_DIR/csv_utf8`` truncated after indexing: every
    query read it silently short (87 rows of 194), ``lakeql doctor`` saw nothing and ``--refresh`` kept
    it. The catalog records each copy's size; a copy of another size is made again, with a warning."""
    from lakeql.catalog import DamagedCatalogWarning

    lakeql.index(csv_lake, index_dir=tmp_path, progress=False, capabilities=[])
    con = lakeql.connect(csv_lake, index_dir=tmp_path)
    want = con.execute("SELECT count(*), count(DISTINCT country) FROM csv.latin1").fetchone()
    assert want[0] == 194
    con.close()
    copies = [p for p in (tmp_path / "csv_utf8").iterdir() if "Zürich" in p.read_text(encoding="utf-8")]
    assert len(copies) == 1
    size = copies[0].stat().st_size
    with open(copies[0], "r+b") as f:
        f.truncate(size // 2)
    with pytest.warns(
        DamagedCatalogWarning, match=r"has [\d,]+ bytes, [\d,]+ expected \(damaged\): made again"
    ):
        con = lakeql.connect(csv_lake, index_dir=tmp_path)
        got = con.execute("SELECT count(*), count(DISTINCT country) FROM csv.latin1").fetchone()
    assert got == want
    assert copies[0].stat().st_size == size
    with open(copies[0], "r+b") as f:  # and a build makes it again too
        f.truncate(size // 3)
    with pytest.warns(DamagedCatalogWarning):
        lakeql.index(csv_lake, index_dir=tmp_path, progress=False, capabilities=[], refresh=True)
    assert copies[0].stat().st_size == size


def test_stale_index_of_a_csv_table_names_csv_files(tmp_path):
    """An index older than a CSV table's file said it was "older than the Parquet files of table
    csv.t" (every table was assumed Parquet); it names the table's format now."""
    import os

    import duckdb

    lake = tmp_path / "lake"
    (lake / "csv").mkdir(parents=True)
    src = lake / "csv" / "t.csv"
    src.write_bytes(fte(DRINKS))
    lakeql.index(lake, index_dir=tmp_path / "idx", ngram=["csv.t.country"], progress=False)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    con = lakeql.connect(lake, index_dir=tmp_path / "idx")
    with pytest.raises(
        duckdb.Error, match=r"older than the CSV files of table csv\.t: run 'lakeql index --refresh"
    ):
        con.execute("SELECT ngram_count('csv.t', 'country', 'an')").fetchall()
    with pytest.raises(duckdb.Error, match=r"older than the CSV files of table csv\.t"):
        con.execute("FROM joinable('csv.t', 'country')").fetchall()


def test_doctor_on_a_read_only_lake_names_index_dir(tmp_path, monkeypatch):
    """``lakeql doctor`` of a lake never indexed whose folder is not writable (a read-only mount) said
    ``run 'lakeql index LAKE'``, which fails there (``cannot write the index dir ... (Read-only file
    system)``). It names ``--index-dir`` now. (Permission bits do not stop root: ``os.access`` is made to
    answer as on a read-only mount.)"""
    import os

    from lakeql import doctor

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "drinks.csv").write_bytes(fte(DRINKS))
    real = os.access
    monkeypatch.setattr(doctor.os, "access", lambda p, m: False if str(p) == str(lake) else real(p, m))
    found = [str(f) for f in doctor.diagnose(lake).findings]
    assert any(
        "no index -> run 'lakeql index LAKE --index-dir DIR' with a writable DIR" in f for f in found
    ), found
    monkeypatch.setattr(doctor.os, "access", real)
    found = [str(f) for f in doctor.diagnose(lake).findings]
    assert any(f.endswith("no index -> run 'lakeql index LAKE'") for f in found), found
