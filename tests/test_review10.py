"""review10: bugs found reviewing h/csvenc (UTF-8 copies of CSV files) and h/hostile5 (fuzz fixes)."""

from __future__ import annotations

import os
import warnings

import pytest

import lakeql
from lakeql import csvenc


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_object_rewritten_same_size_same_second_gets_a_new_copy(tmp_path):
    """S3 times are whole seconds: an object rewritten with the same size within the same second differs
    only by its ETag. The catalog sees the change (the fingerprint has the ETag) and reads the file again,
    but the UTF-8 copy was named from (path, size, mtime, encoding) only, so the old copy was found and
    read: the old rows came back. (A local file stands in for the object: same stamp but the ETag.)"""
    from lakeql.lake import FileStamp, Table

    lake = tmp_path / "lake"
    lake.mkdir()
    src = lake / "cp.csv"
    src.write_bytes(b"name\nJos\xe9\n")
    table = Table("d", "cp", lake, "cp.csv", [FileStamp("cp.csv", 10, 1_000_000_000, "etag-a")], format="csv")
    dirs = [tmp_path / "copies"]
    label, copy = csvenc.decode_file(table, table.files[0], None, dirs)
    assert label == "cp1252" and open(copy, encoding="utf-8").read() == "name\nJosé\n"
    src.write_bytes(b"name\nZo\xeb!\n")  # same size, same listed time: another ETag
    table2 = Table(
        "d", "cp", lake, "cp.csv", [FileStamp("cp.csv", 10, 1_000_000_000, "etag-b")], format="csv"
    )
    assert table2.fingerprint != table.fingerprint  # the catalog reads it again
    label2, copy2 = csvenc.decode_file(table2, table2.files[0], None, dirs)
    assert open(copy2, encoding="utf-8").read() == "name\nZoë!\n"
    assert copy2 != copy
    # a local file (no ETag) keeps the name it always had: existing copies stay valid
    local = FileStamp("cp.csv", 10, 1_000_000_000)
    assert csvenc.copy_name(str(src), 10, 1_000_000_000, "cp1252") == csvenc.copy_name(
        str(src), local.size, local.mtime_ns, "cp1252", local.etag
    )


def test_user_cache_keeps_one_copy_per_source(tmp_path):
    """A lake connected without an index keeps its copies in $XDG_CACHE_HOME, which no build prunes:
    each change of a file that is not UTF-8 left one more copy there, without bound (5 versions: 5
    copies). A new copy now replaces the older copies of the same file."""
    lake = tmp_path / "lake"
    lake.mkdir()
    src = lake / "cp.csv"
    for i in range(4):
        src.write_bytes(b"name\nJos\xe9 %d\n" % i)
        os.utime(src, ns=(1, (i + 1) * 10**9))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            con = lakeql.connect(str(lake))
        assert con.execute("SELECT * FROM cp").fetchall() == [(f"José {i}",)]
        con.close()
    assert not (lake / ".lakeql").exists()
    # a process killed while it wrote a copy left its temp file: removed with the file's next new copy
    (first,) = (tmp_path / "xdg" / "lakeql" / csvenc.DIR).iterdir()
    dead = first.parent / f".{first.name}.{2**22 + 7}-0123abcd.tmp"  # above pid_max: no such process
    live = first.parent / f".{first.name}.{os.getpid()}-0123abcd.tmp"  # being written now: kept
    dead.write_text("partial")
    live.write_text("partial")
    src.write_bytes(b"name\nJos\xe9 3\n")
    os.utime(src, ns=(1, 9 * 10**9))
    con = lakeql.connect(str(lake))
    assert con.execute("SELECT * FROM cp").fetchall() == [("José 3",)]
    con.close()
    assert not dead.exists() and live.exists()
    live.unlink()
    copies = list((tmp_path / "xdg" / "lakeql" / csvenc.DIR).iterdir())
    assert len(copies) == 1 and copies[0].read_text(encoding="utf-8") == "name\nJosé 3\n"
    # another file's copy is not touched by this one's
    (lake / "b.csv").write_bytes(b"x\n\xe9\n")
    con = lakeql.connect(str(lake))
    assert con.execute("SELECT * FROM cp").fetchall() == [("José 3",)]
    assert con.execute("SELECT * FROM b").fetchall() == [("é",)]
    con.close()
    assert len(list((tmp_path / "xdg" / "lakeql" / csvenc.DIR).iterdir())) == 2


def test_join_files_check_is_not_repeated_per_table_on_every_query(tmp_path, monkeypatch):
    """joins_lookup / joins_containment in a Python connection check the column profiles first
    (lakeql_join_files): verify_once skipped the file walk, but still built a key (str of a datetime)
    for every table's profile on every query: ~3.6 us a table, 36 ms a query at 10,000 tables. With an
    unchanged manifest, the second query makes no per-table check at all; a rebuild is checked again."""
    from lakeql.store import Store

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a.csv").write_text("code,n\nAA,1\nBB,2\nCC,3\n")
    (lake / "b.csv").write_text("carrier,m\nAA,x\nBB,y\nDD,z\n")
    idx = tmp_path / "idx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), capabilities=["joins"])
    calls = []
    real = Store.verify_once
    monkeypatch.setattr(Store, "verify_once", lambda self, e: (calls.append(e.kind), real(self, e))[1])
    con = lakeql.connect(str(lake), index_dir=str(idx))
    want = con.execute("SELECT table_name, column_name FROM joins_lookup('AA')").fetchall()
    assert sorted(want) == [("main.a", "code"), ("main.b", "carrier")]
    assert calls.count("column_profile") == 2  # the first query checks each table's profile
    calls.clear()
    for _ in range(3):
        assert con.execute("SELECT table_name, column_name FROM joins_lookup('AA')").fetchall() == want
        con.execute("SELECT * FROM joins_containment('main.a', 'code')").fetchall()
    assert calls == []
    # a damaged profile after a rebuild (a new manifest) is still found
    (lake / "a.csv").write_text("code,n\nAA,1\nEE,2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), capabilities=["joins"], refresh=True)
    (prof,) = (idx / "column_profile").glob("main.a*/hashes.parquet")
    prof.write_bytes(prof.read_bytes()[:10])
    with pytest.raises(lakeql.LakeqlError, match="lakeql index"):
        con.execute("SELECT * FROM joins_lookup('AA')").fetchall()
    con.close()


def test_index_dir_copies_stay_until_the_next_build(tmp_path):
    """In INDEX_DIR/csv_utf8 the copy the last build made stays (lake.duckdb's views read it in the stock
    duckdb CLI) when a connection reads a changed file through a new copy: builds prune that folder."""
    lake = tmp_path / "lake"
    lake.mkdir()
    src = lake / "cp.csv"
    src.write_bytes(b"name\nJos\xe9\n")
    idx = tmp_path / "idx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), capabilities=[])
    (built,) = (idx / csvenc.DIR).iterdir()
    src.write_bytes(b"name\nZo\xeb!\n")
    os.utime(src, ns=(1, 5 * 10**9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.execute("SELECT * FROM cp").fetchall() == [("Zoë!",)]
    con.close()
    assert built.is_file() and len(list((idx / csvenc.DIR).iterdir())) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), capabilities=[], refresh=True)
    (left,) = (idx / csvenc.DIR).iterdir()
    assert left.read_text(encoding="utf-8") == "name\nZoë!\n"


def test_a_non_utf8_byte_past_duckdbs_sniff_sample_is_found(tmp_path):
    """DuckDB validates UTF-8 only in the columns a query reads: ``count(*)`` (the catalog's row count)
    read none, so a Windows-1252 byte past the sniffer's sample (row 50,001 here) passed, the file was
    recorded as UTF-8, and every query of the table failed ('Invalid unicode ... not utf-8 encoded')."""
    import duckdb

    lake = tmp_path / "lake"
    lake.mkdir()
    rows = b"".join(b"%d,plain\n" % i for i in range(50_000))
    (lake / "late.csv").write_bytes(b"id,name\n" + rows + b"50000,caf\xe9\n")
    (lake / "bad.csv").write_bytes(
        b"id,n\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(50_000)) + b"x,oops\n"
    )
    idx = tmp_path / "idx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), capabilities=[])
        con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.execute("SELECT count(*), max(name) FROM late").fetchall() == [(50_001, "plain")]
    assert con.execute("SELECT name FROM late WHERE id = 50000").fetchall() == [("café",)]
    # a UTF-8 file whose late value does not fit the sniffed type stays a table, as before (its query
    # fails on that value, naming it): the stricter count does not drop it
    assert (
        con.execute("SELECT count(*) FROM lakeql_tables() WHERE table_name = 'main.bad'").fetchone()[0] == 1
    )
    con.close()
    enc = dict(
        duckdb.sql(
            f"SELECT table_name, file_encodings FROM read_parquet('{idx}/catalog/tables.parquet')"
        ).fetchall()
    )
    assert enc["main.late"] == ["cp1252"]


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b'"Name, full"\n"Smith, John"\n"Doe, Jane"\n', ("Name, full", [("Smith, John",), ("Doe, Jane",)])),
        (b'"x;y"\n"1;2"\n', ("x;y", [("1;2",)])),
        (b'"x\ty"\n"1\t2"\n"3"\n', ("x\ty", [("1\t2",), ("3",)])),
        (b"a,b\n1,2,3\n4\n", None),
        (b"a,b,c\n" + b"1,2,3\n" * 50 + b"4,5\n" + b"1,2,3\n" * 50, None),
        (b'"a","b","c"\n' + b'1,"x",3\n' * 50 + b"4,5\n" + b'1,"y",3\n' * 50, None),
    ],
)
def test_one_quoted_column_holding_a_comma_is_not_ragged(tmp_path, data, want):
    """A one-column CSV whose quoted header holds a comma (``"Name, full"``) was refused as rows of
    different lengths (the check looked at the column name only); ragged files are still refused."""
    from lakeql.catalog import profile_table
    from lakeql.lake import discover

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "t.csv").write_bytes(data)
    table = discover(lake).tables["main.t"]
    kept, cols, n, _, problems = profile_table(table, None, [tmp_path / "copies"])
    if want is None:
        assert not kept.files and "same number of fields" in problems[-1].error, problems
        return
    import duckdb

    assert not problems and [c for c, _ in cols] == [want[0]] and n == len(want[1])
    assert duckdb.connect().execute(f"SELECT * FROM {kept.scan_sql()}").fetchall() == want[1]
