"""CSV header lines DuckDB's sniffer reads as data rows (lakeql.csvheader): taken as the header when the
first line gives evidence of being one, kept as data when it does not.

The real fivethirtyeight files are read from ../shared/data/fivethirtyeight (the path tests/test_csvenc.py
uses); a test that needs them fails, never skips, when they are missing.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import duckdb
import pytest

import lakeql
from lakeql import csvheader
from lakeql.catalog import profile_table
from lakeql.lake import discover, quote_ident, scan_sql

F538 = next(
    (
        p / "shared" / "data" / "fivethirtyeight"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "fivethirtyeight").is_dir()
    ),
    None,
)


def data_lines(path: Path) -> int:
    """Lines of a file after its first (none of these files has a quoted line break)."""
    return len(path.read_bytes().splitlines()) - 1


# table key -> (its files, first column names, header taken by lakeql)
F538_TABLES = {
    "cabinet-turnover.cabinet-turnover": (
        ["cabinet-turnover/cabinet-turnover.csv"],
        [
            "president",
            "position",
            "appointee",
            "start_date",
            "end_date",
            "length",
            "departure_day",
            "gender",
            "column8",
            "column9",
        ],
        True,
    ),
    "partisan-lean.2021": (
        [
            "partisan-lean/2021/fivethirtyeight_partisan_lean_DISTRICTS.csv",
            "partisan-lean/2021/fivethirtyeight_partisan_lean_STATES.csv",
        ],
        ["district", "2021", "state"],
        True,
    ),
    "partisan-lean.fivethirtyeight_partisan_lean_DISTRICTS": (
        ["partisan-lean/fivethirtyeight_partisan_lean_DISTRICTS.csv"],
        ["district", "2022"],
        True,
    ),
    "partisan-lean.fivethirtyeight_partisan_lean_STATES": (
        ["partisan-lean/fivethirtyeight_partisan_lean_STATES.csv"],
        ["state", "2022"],
        True,
    ),
    "most-common-name.adjusted-name-combinations-matrix": (
        ["most-common-name/adjusted-name-combinations-matrix.csv"],
        ["column00", "FirstName", "SMITH", "JOHNSON", "WILLIAMS"],
        True,
    ),
    # genuinely headerless: 101 lines of 12 shares each (no names anywhere in the file)
    "pew-religions.current": (
        ["pew-religions/current.csv"],
        [f"column{i:02d}" for i in range(12)],
        False,
    ),
}


@pytest.fixture(scope="module")
def f538():
    assert F538 is not None, "../shared/data/fivethirtyeight is missing (CI has it)"
    return discover(F538)


@pytest.mark.parametrize("key", sorted(F538_TABLES))
def test_f538_header(f538, key):
    files, names, header = F538_TABLES[key]
    table = f538.tables[key]
    assert [f.path for f in table.files] == files
    kept, cols, n, per_file, problems = profile_table(table)
    assert not problems
    assert [c for c, _ in cols][: len(names)] == names
    assert kept.csv_header is header
    want = [data_lines(F538 / f) + (0 if header else 1) for f in files]
    assert per_file == want and n == sum(want)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM {kept.scan_sql()}").fetchone()[0] == n
    # the header line is not a row any more
    first = quote_ident(names[0] if names[0] != "column00" else names[1])
    row = con.execute(f"SELECT count(*) FROM {kept.scan_sql()} WHERE {first}::VARCHAR = ?", [names[0]])
    assert row.fetchone()[0] == 0


def test_f538_cabinet_types_and_values(f538):
    kept, cols, *_ = profile_table(f538.tables["cabinet-turnover.cabinet-turnover"])
    got = (
        duckdb.connect()
        .execute(f"SELECT president, appointee, gender FROM {kept.scan_sql()} LIMIT 1")
        .fetchone()
    )
    assert got == ("Carter", "Bert Lance", "Male")
    kept, cols, *_ = profile_table(f538.tables["partisan-lean.fivethirtyeight_partisan_lean_STATES"])
    assert cols == [("state", "VARCHAR"), ("2022", "DOUBLE")]  # typed without the header line


# --------------------------------------------------------------------------------- the rule, by hand
PEOPLE = [
    (b"Alice", b"Paris"),
    (b"Bob", b"Rome"),
    (b"Carol", b"Oslo"),
    (b"Dan", b"Bern"),
    (b"Eve", b"Riga"),
    (b"Fay", b"Kyiv"),
    (b"Gus", b"Nice"),
    (b"Hal", b"Lyon"),
    (b"Ida", b"Graz"),
    (b"Jo", b"Lima"),
]
RULE = {  # file -> (bytes, header taken)
    # headerless, and DuckDB's sniffer says so: they stay so
    "numbers.csv": (b"1,2,3\n4,5,6\n7,8,9\n", False),
    "int_then_decimals.csv": (b"1,2\n1.5,2.5\n3.5,4.5\n", False),
    "names_empty_col.csv": (b"alice,,paris\nbob,,rome\ncarol,,oslo\n", False),
    "full_names_empty_col.csv": (b"Alice Smith,,Paris\nBob Jones,,Rome\nCarol Li,,Oslo\n", False),
    "one_row.csv": (b"name,,city\n", False),
    "repeated_value.csv": (b"Name,,City\nName,,Rome\nBob,,Oslo\n", False),
    "mostly_empty.csv": (b"a,,,\nX1,,,\nY2,,,\n", False),
    "same_shape.csv": (b"name,city,\nalice,paris,\nbob,rome,\n", False),  # no evidence: kept as data
    # headers DuckDB reads as data: taken
    "empty_trailing.csv": (b"name,city,,\n" + b"".join(b"%s,%s,,\n" % p for p in PEOPLE), True),
    "numeric_name.csv": (b"district,2021\nAK-1,-14.62\nAL-1,3.5\n", True),
    # names over numbers
    "na_column.csv": (b",first,SMITH,JONES\n1,Ann,30.5,NA\n2,Bob,NA,1.5\n3,Cyd,2.5,3\n", True),
    # a header that differs from the values below by case alone, over too few values: kept as data (a
    # first row of data often differs by case alone: the rows below lost their first row before review12)
    "case_only_few.csv": (b"name,city,,\nAlice,Paris,,\nBob,Rome,,\n", False),
    # headerless files whose first row differs from the rest by case alone: kept as data (review12)
    "codes.csv": (b"AB12,CD34,,\nef56,gh78,,\nij90,kl12,,\n", False),
    "upper_over_mixed.csv": (b"SMITH,JOHN,,\nJones,Mary,,\nBrown,Anne,,\n", False),
    "lower_over_upper.csv": (b"smith,john,,\nJONES,MARY,,\nBROWN,ANNE,,\n", False),
    "id_and_code.csv": (b"1,AB12\n2,cd34\n3,ef56\n", False),
    "id_and_word.csv": (b"1,Apple\n2,banana\n3,cherry\n", False),
    "bom_codes.csv": (b"\xef\xbb\xbfAB12,CD34,,\nef56,gh78,,\nij90,kl12,,\n", False),
    # one row after the first line is no sample: kept as data
    "one_data_row.csv": (b"first_name,city_code,,\nAlice,AK-1,,\n", False),
}
# one column of words or names: DuckDB already reads the first as the header (every column is text):
# the rule, asked, would keep them as data
WORDS = {"words.csv": b"apple\nbanana\ncherry\n", "names.csv": b"Alice\nBob\nCarol\nDave\n"}


@pytest.fixture(scope="module")
def rule_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("csvheader") / "lake"
    (root / "t").mkdir(parents=True)
    for name, (data, _) in RULE.items():
        (root / "t" / name).write_bytes(data)
    for name, data in WORDS.items():
        (root / "t" / name).write_bytes(data)
    return root


@pytest.mark.parametrize("name", sorted(RULE))
def test_rule(rule_lake, name):
    data, header = RULE[name]
    path = str(rule_lake / "t" / name)
    con = duckdb.connect()
    assert csvheader.sniff(con, path) == (False, 0)  # DuckDB reads the first line as data
    assert csvheader.has_header(con, path) is header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept, cols, n, _, problems = profile_table(discover(rule_lake).tables["t." + name[:-4]])
    assert not problems and kept.csv_header is header
    lines = len(data.splitlines())
    assert n == lines - header
    assert all(csvheader.generated([c]) for c, _ in cols) is not header


@pytest.mark.parametrize("name", sorted(WORDS))
def test_words_stay_as_duckdb_reads_them(rule_lake, name):
    path = str(rule_lake / "t" / name)
    con = duckdb.connect()
    assert csvheader.sniff(con, path)[0] is True  # DuckDB's own choice, not changed
    assert csvheader.has_header(con, path) is False  # the rule would not take it
    kept, cols, n, _, _ = profile_table(discover(rule_lake).tables["t." + name[:-4]])
    assert kept.csv_header is False and n == len(WORDS[name].splitlines()) - 1


def test_empty_header_fields_are_named_as_duckdb_names_them(rule_lake):
    kept, cols, *_ = profile_table(discover(rule_lake).tables["t.empty_trailing"])
    assert [c for c, _ in cols] == ["name", "city", "column2", "column3"]


def test_a_folder_with_a_headerless_file_is_read_as_duckdb_reads_it(tmp_path):
    (tmp_path / "d" / "t").mkdir(parents=True)
    (tmp_path / "d" / "t" / "1.csv").write_bytes(b"name,city,,\nAlice,Paris,,\nBob,Rome,,\n")
    (tmp_path / "d" / "t" / "2.csv").write_bytes(b"carol,oslo,,\ndave,bern,,\n")  # no header
    kept, cols, n, per_file, _ = profile_table(discover(tmp_path).tables["d.t"])
    assert kept.csv_header is False and per_file == [3, 2]


def test_rendered_view_with_header(tmp_path):
    from lakeql.views import _rendered

    p = tmp_path / "e.csv"
    p.write_bytes(b"a,,\nX,,\n")
    con = duckdb.connect()
    con.execute("CREATE SCHEMA d")
    con.execute(f"CREATE VIEW d.t AS SELECT * FROM {scan_sql('csv', [str(p)], False, True)}")
    sql = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchone()[0]
    assert sql in _rendered("d", "t", "csv", [str(p)], False, True)


# ------------------------------------------------------------------- end to end: index, views, refresh
def test_index_connect_refresh(tmp_path):
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    (lake / "d" / "cab.csv").write_bytes(
        b"president,term,code,,\nCarter,1977-81,AB-1,,\nReagan,1981-89,CD-2,,\n"
    )
    (lake / "d" / "nums.csv").write_bytes(b"1,2\n3,4\n")
    idx = tmp_path / "idx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx))
    tables = duckdb.sql(f"SELECT table_name, csv_header FROM read_parquet('{idx}/catalog/tables.parquet')")
    assert dict(tables.fetchall()) == {"d.cab": True, "d.nums": False}
    from lakeql.connection import open_lake

    for _ in range(2):  # the build, then a refresh that keeps the unchanged tables' catalog rows
        con, ctx = open_lake(str(lake), index_dir=str(idx))
        assert "d" in ctx.views.small and not ctx.views.live and ctx._catalog is None  # prebuilt views
        assert con.execute("SELECT president, term FROM d.cab ORDER BY 1").fetchall() == [
            ("Carter", "1977-81"),
            ("Reagan", "1981-89"),
        ]
        assert con.execute("SELECT count(*) FROM d.nums").fetchone()[0] == 2
        rows = con.execute("SELECT table_name, row_count FROM lakeql_tables() ORDER BY 1").fetchall()
        assert rows == [("d.cab", 2), ("d.nums", 2)]
        cols = con.execute(
            "SELECT column_name FROM lakeql_columns() WHERE table_name = 'd.cab' ORDER BY ordinal"
        ).fetchall()
        assert [c[0] for c in cols] == ["president", "term", "code", "column3", "column4"]
        con.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lakeql.index(str(lake), index_dir=str(idx), refresh=True)
    from lakeql.doctor import diagnose
    from lakeql.views import MANIFEST, VIEWS_DIR

    diag = diagnose(lake, idx)
    assert diag.healthy  # a note, not a problem
    assert "[header] d.cab (d/cab.csv): its first line is read as the header" in "\n".join(diag.lines())
    manifest = json.loads((idx / VIEWS_DIR / MANIFEST).read_text())
    assert manifest["domains"]["d"]["views"]["cab"]["header"] is True
    assert "header" not in manifest["domains"]["d"]["views"]["nums"]


def test_refresh_of_an_index_built_before_upgrades_every_index(tmp_path, monkeypatch):
    """An index built when the header line was a row (catalog format 3): ``--refresh`` catalogues the
    table again and remakes what was made from its old columns (profile, schema file, join index)."""
    from lakeql import catalog

    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    (lake / "d" / "cab.csv").write_bytes(
        b"president,term,code,,\nCarter,1977-81,AB-1,,\nReagan,1981-89,CD-2,,\n"
    )
    (lake / "d" / "ok.csv").write_bytes(b"a,b\n1,x\n")
    idx = tmp_path / "idx"
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.setattr(catalog, "_header_missed", lambda *a: False)
        m.setattr(catalog, "CATALOG_FORMAT", 3)
        lakeql.index(str(lake), index_dir=str(idx))
    assert "d.cab.column0:" in (idx / "schemas" / "d" / "cab.yaml").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), refresh=True)
    text = (idx / "schemas" / "d" / "cab.yaml").read_text()
    assert "d.cab.president:" in text and "column0" not in text and "rows: 2" in text
    con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.execute("SELECT * FROM find_tables('president')").fetchall()[0][2] == ["columns: president"]
    assert con.execute("SELECT count(*) FROM d.cab").fetchone()[0] == 2
    con.close()


def test_a_file_whose_header_duckdb_found_is_not_sniffed_again(tmp_path, monkeypatch):
    """A pandas ``to_csv`` file (an empty first header field: DuckDB names it ``column0``) is common: its
    one file's header was found by DuckDB, so no ``sniff_csv`` is added for it (review12: one per such
    file, ~7-50 ms each, on a lake of thousands of them)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "pandas.csv").write_bytes(b",name,score\n0,alice,1.5\n1,bob,2.5\n")
    calls = []
    real = csvheader.sniff
    monkeypatch.setattr(csvheader, "sniff", lambda con, path: calls.append(path) or real(con, path))
    kept, cols, n, *_ = profile_table(discover(tmp_path).tables["d.pandas"])
    assert [c for c, _ in cols] == ["column0", "name", "score"] and n == 2 and kept.csv_header is False
    assert calls == []


def test_a_store_failing_under_the_header_check_stops_the_build(tmp_path, monkeypatch):
    """On an s3:// lake, a store failing under the rule's read (DuckDB's IOException hides it) was taken
    for "no header": the catalog recorded the table as DuckDB reads it (its header line a row, columns
    ``column<N>``) and kept that until the file changed. The store's error must stop the build, as it does
    under the catalog's row counts (review12)."""
    from lakeql import catalog
    from lakeql.errors import RemoteStoreError
    from lakeql.sources import snapshot

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cab.csv").write_bytes(
        b"president,term,code,,\nCarter,1977-81,AB-1,,\nReagan,1981-89,CD-2,,\n"
    )
    table = discover(tmp_path).tables["d.cab"]
    fs = object()  # the remote lake's filesystem (the files themselves are read locally here)
    failing: list[RemoteStoreError] = []
    real = catalog._type_connection
    monkeypatch.setattr(catalog, "_type_connection", lambda fs=None: real(None))
    monkeypatch.setattr(snapshot, "store_failure", lambda f: failing[0] if f is fs and failing else None)

    def store_fails(con, path):
        failing.append(RemoteStoreError(f"cannot read {path}: the store kept failing"))
        raise duckdb.IOException("HTTP GET error")

    monkeypatch.setattr(csvheader, "has_header", store_fails)
    with pytest.raises(RemoteStoreError, match="kept failing"):
        profile_table(table, fs)


def test_a_refresh_decides_again_what_an_older_rule_read_with_a_header(tmp_path, monkeypatch):
    """An index built by the first rule (d948299: case alone was evidence) read a headerless file of
    names with its first row as the header; its files unchanged, a refresh kept that (the row lost, the
    columns named ``SMITH``, ``JOHN``). The catalog records its rule: a refresh decides again the tables an
    older rule read with ``header = true``, and only those (review12)."""
    lake = tmp_path / "lake"
    (lake / "d").mkdir(parents=True)
    (lake / "d" / "names.csv").write_bytes(b"SMITH,JOHN,,\nJones,Mary,,\nBrown,Anne,,\n")
    (lake / "d" / "ok.csv").write_bytes(b"a,b\n1,x\n")
    idx = tmp_path / "idx"
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.setattr(csvheader, "has_header", lambda con, path: True)  # as the first rule decided this file
        m.setattr(csvheader, "RULE", 1)
        lakeql.index(str(lake), index_dir=str(idx))

    def catalogued():
        sql = "SELECT table_name, csv_header, row_count, indexed_at FROM read_parquet(?)"
        rows = duckdb.connect().execute(sql, [str(idx / "catalog" / "tables.parquet")]).fetchall()
        return {r[0]: r[1:] for r in rows}

    before = catalogued()
    assert before["d.names"][:2] == (True, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakeql.index(str(lake), index_dir=str(idx), refresh=True)
    after = catalogued()
    assert after["d.names"][:2] == (False, 3)  # the first row is a row again
    assert after["d.ok"] == before["d.ok"]  # not catalogued again
    con = lakeql.connect(str(lake), index_dir=str(idx))
    assert con.execute("SELECT column0 FROM d.names ORDER BY 1").fetchall() == [
        ("Brown",),
        ("Jones",),
        ("SMITH",),
    ]
    con.close()
