"""connect()/register(): attached prebuilt views, staleness, file databases, capability subsets."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.connection import open_lake
from lakeql.demo import SAMPLE_LAKE


@pytest.fixture(autouse=True)
def copy_small_domains(monkeypatch) -> None:
    """The sample lake's one small domain has 2 views: copied from small.duckdb here all the same."""
    from lakeql import views

    monkeypatch.setattr(views, "SMALL_COPY_MIN", 0)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("connect")
    lake = root / "lake"
    shutil.copytree(SAMPLE_LAKE, lake)
    idx = root / "idx"
    lakeql.index(lake, index_dir=idx, capabilities=[], progress=False)
    return lake, idx


def test_fresh_index_attaches_every_domain(indexed) -> None:
    lake, idx = indexed
    con, ctx = open_lake(lake, index_dir=idx)
    # flights (5 tables) is attached from its file; python (2 tables) is copied from small.duckdb, checked
    assert ctx.views.attached == ["flights"] and ctx.views.small == ["python"] and ctx.views.live == []
    assert ctx.views.copied == ["python"]
    files = sorted(p.name for p in (idx / "views").iterdir())
    assert files == [".statements.json.z", "d00000.duckdb", "small.duckdb", "views.json"]
    cur = con.cursor()  # a cursor sees the attached views and the functions without any setup
    assert cur.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16
    assert cur.execute("SELECT count(*) FROM lakeql_tables()").fetchone()[0] == 7
    n = cur.execute("SELECT count(*) FROM python.modules").fetchone()[0]
    last = cur.execute("SELECT max(__rowid) FROM query_table(lakeql_rows_view('python.modules'))").fetchone()
    assert last[0] + 1 == n


@pytest.mark.parametrize("scan", [
    "read_parquet('x'); ATTACH '/tmp/evil.db' AS evil; SELECT 1",  # SQL text where data belongs
    {"format": "parquet; DROP TABLE t", "paths": ["p"], "hive": False},
    {"format": "parquet", "paths": "p.parquet", "hive": False},
    {"format": "parquet", "paths": [], "hive": False},
])
def test_small_domain_manifest_entries_are_data_not_sql(indexed, tmp_path, scan) -> None:
    """A views.json edited by someone else: a malformed small-domain entry gets live views (made from the
    lake as it is), its text is never run."""
    import json

    lake, idx = indexed
    work = tmp_path / "idx"
    shutil.copytree(idx, work)
    manifest = json.loads((work / "views" / "views.json").read_text())
    manifest["domains"]["python"]["views"]["modules"] = scan
    (work / "views" / "views.json").write_text(json.dumps(manifest))
    con, ctx = open_lake(lake, index_dir=work)
    assert ctx.views.small == [] and ctx.views.live == ["python"]
    assert con.execute("SELECT count(*) FROM python.modules").fetchone()[0] > 0
    dbs = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    assert "evil" not in dbs


def test_a_manifest_entry_naming_other_files_gets_live_views(indexed, tmp_path) -> None:
    """A small domain's entry that reads a file outside the table (here: another domain's) is malformed."""
    import json

    lake, idx = indexed
    work = tmp_path / "idx"
    shutil.copytree(idx, work)
    manifest = json.loads((work / "views" / "views.json").read_text())
    entry = manifest["domains"]["python"]["views"]["modules"]
    entry["paths"] = [str(lake / "flights" / "airlines.parquet")]
    (work / "views" / "views.json").write_text(json.dumps(manifest))
    con, ctx = open_lake(lake, index_dir=work)
    assert ctx.views.small == [] and ctx.views.live == ["python"]
    cols = [d[0] for d in con.execute("SELECT * FROM python.modules LIMIT 0").description]
    assert "carrier" not in cols


def _rewrite_small(path: Path, statements: list[str]) -> None:
    """Replace small.duckdb with a database made of ``statements`` (what a hostile index folder holds)."""
    path.unlink()
    con = duckdb.connect(str(path))
    for stmt in statements:
        con.execute(stmt)
    con.close()


@pytest.mark.parametrize("evil", [
    # a view of the right name reading another file
    ["CREATE SCHEMA python", "CREATE VIEW python.modules AS SELECT * FROM read_csv('/etc/hostname')",
     "CREATE VIEW python.functions AS SELECT 1 AS x"],
    # a macro shadowing a function, next to views that would pass
    ["CREATE MACRO main.read_parquet(x) AS TABLE SELECT 42 AS evil"],
    # a table with data, a view in main
    ["CREATE TABLE main.notes AS SELECT 1 AS x"],
    ["CREATE VIEW main.modules AS SELECT 1 AS x"],
    # an extra domain's schema, and a view too many
    ["CREATE SCHEMA flights", "CREATE VIEW flights.airlines AS SELECT 'ZZ' AS carrier"],
    ["CREATE SCHEMA python", "CREATE VIEW python.extra AS SELECT 1 AS x"],
])
def test_small_file_views_are_checked_not_trusted(indexed, tmp_path, evil) -> None:
    """small.duckdb is copied only after its entries are checked against views made from data: any
    other entry (another query, a macro, a table, an extra view or schema) is never used."""
    lake, idx = indexed
    work = tmp_path / "idx"
    shutil.copytree(idx, work)
    src = duckdb.connect()
    good = [r[0] for r in src.execute(
        f"ATTACH '{work / 'views' / 'small.duckdb'}' AS s (READ_ONLY); "
        "SELECT sql FROM duckdb_views() WHERE database_name = 's' AND NOT internal").fetchall()]
    src.close()
    keep = [] if evil[0].startswith("CREATE SCHEMA python") else ["CREATE SCHEMA python", *good]
    _rewrite_small(work / "views" / "small.duckdb", keep + evil)
    con, ctx = open_lake(lake, index_dir=work)
    assert ctx.views.small == ["python"]  # made from the manifest's data instead
    # an extra schema beside the good ones: python is copied, flights dropped at once (a big domain here)
    assert ctx.views.copied == (["python"] if evil[0].startswith("CREATE SCHEMA flights") else [])
    n = con.execute("SELECT count(*) FROM python.modules").fetchone()[0]
    parquet = lake / "python" / "modules.parquet"
    assert n == duckdb.connect().execute(f"SELECT count(*) FROM '{parquet}'").fetchone()[0]
    schemas = con.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'memory'"
                          ).fetchall()
    assert ("flights",) not in schemas
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'notes'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'read_parquet' "
                       "AND NOT internal").fetchone()[0] == 0
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'python'"
                                       ).fetchall()}
    assert views == {"modules", "functions"}


def test_a_format_3_index_still_connects(indexed, tmp_path) -> None:
    """An index written before small.duckdb (format 3): its small domains' views are made from data."""
    import json

    lake, idx = indexed
    work = tmp_path / "idx"
    shutil.copytree(idx, work)
    manifest = json.loads((work / "views" / "views.json").read_text())
    manifest["format"] = 3
    del manifest["small_file"]
    (work / "views" / "views.json").write_text(json.dumps(manifest))
    (work / "views" / "small.duckdb").unlink()
    con, ctx = open_lake(lake, index_dir=work)
    assert ctx.views.attached == ["flights"] and ctx.views.small == ["python"] and ctx.views.copied == []
    assert con.execute("SELECT count(*) FROM python.modules").fetchone()[0] > 0
    assert con.cursor().execute("SELECT count(*) FROM python.functions").fetchone()[0] > 0


def test_register_twice_on_one_connection(indexed) -> None:
    lake, idx = indexed
    con, ctx = open_lake(lake, index_dir=idx)
    again = lakeql.register(con, lake, index_dir=idx)
    assert again.views.small == ["python"] and again.views.copied == []  # already there: made again
    assert con.execute("SELECT count(*) FROM python.modules").fetchone()[0] > 0


@pytest.mark.parametrize("kind", ["TABLE", "VIEW"])
def test_register_leaves_the_callers_own_schema_alone(indexed, kind) -> None:
    """A schema of the caller's database named like a small domain is neither replaced nor in the way:
    the domain gets a catalog of its own."""
    lake, idx = indexed
    con = duckdb.connect()
    con.execute("CREATE SCHEMA python")
    con.execute(f"CREATE {kind} python.modules AS SELECT 'mine' AS module")
    lakeql.register(con, lake, index_dir=idx)
    assert con.execute("SELECT module FROM memory.python.modules").fetchall() == [("mine",)]
    assert con.execute("SELECT count(*) FROM python.main.functions").fetchone()[0] > 0
    lakeql.register(con, lake, index_dir=idx)  # again: still the caller's
    assert con.execute("SELECT module FROM memory.python.modules").fetchall() == [("mine",)]


def test_first_rowid_view_reads_one_table_of_the_stored_catalog(indexed) -> None:
    """An unchanged table's rowid view is made from its rows of the stored catalog (the whole catalog is
    not loaded), and is the one the loaded catalog makes."""
    from lakeql.rows import rowid_scan_of

    lake, idx = indexed
    con, ctx = open_lake(lake, index_dir=idx)
    sql = "SELECT * FROM query_table(lakeql_rows_view('flights.flights')) ORDER BY __rowid"
    light = con.execute(sql).fetchall()
    assert ctx._catalog is None  # not loaded
    full = con.execute(f"SELECT * FROM ({rowid_scan_of(ctx.catalog, ctx.table('flights.flights'))}) "
                       "ORDER BY __rowid").fetchall()
    assert light == full and [r[0] for r in light[:5]] == list(range(5))


def test_changed_table_gets_live_views_and_stays_stale(indexed, tmp_path) -> None:
    lake, idx = indexed
    work = tmp_path / "lake"
    shutil.copytree(lake, work)
    shutil.copytree(idx, tmp_path / "idx")
    lakeql.index(work, index_dir=tmp_path / "idx", capabilities=[], progress=False)
    pq.write_table(pa.table({"carrier": ["ZZ"], "name": ["Zeta Air"]}), work / "flights" / "airlines.parquet")
    con, ctx = open_lake(work, index_dir=tmp_path / "idx")
    assert ctx.views.live == ["flights"] and ctx.views.attached == [] and ctx.views.small == ["python"]
    assert con.execute("SELECT * FROM flights.airlines").fetchall() == [("ZZ", "Zeta Air")]
    rows = con.execute("SELECT __rowid, carrier FROM query_table(lakeql_rows_view('flights.airlines'))"
                       ).fetchall()
    assert rows == [(0, "ZZ")] and ctx._catalog is not None  # changed: from the catalog as it is now
    stale = dict(con.execute("SELECT table_name, stale FROM lakeql_indexes() WHERE kind = 'catalog' "
                             "OR table_name IS NOT NULL").fetchall())
    assert all(v is False for k, v in stale.items() if k and k != "flights.airlines")


def test_register_on_a_file_database_leaves_nothing_behind(indexed, tmp_path) -> None:
    lake, idx = indexed
    db = tmp_path / "mine.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE notes AS SELECT 1 AS id")
    lakeql.register(con, lake, index_dir=idx)
    assert con.execute("SELECT count(*) FROM lakeql_tables()").fetchone()[0] == 7
    assert con.execute("SELECT count(*) FROM flights.flights f JOIN notes ON true").fetchone()[0] > 0
    con.close()
    again = duckdb.connect(str(db))
    mine = again.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables()").fetchall()
    assert mine == [("mine", "main", "notes")]
    assert again.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0] == 0
    assert again.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'lakeql%'"
                         ).fetchone()[0] == 0
    lakeql.register(again, lake, index_dir=idx)  # and it can be registered again
    assert again.execute("SELECT count(*) FROM lakeql_tables()").fetchone()[0] == 7


def test_capability_subset(indexed) -> None:
    lake, idx = indexed
    con = lakeql.connect(lake, index_dir=idx, capabilities=["ngrams"])
    names = {r[0] for r in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()}
    assert "ngram_count" in names and "joinable" not in names and "semantic_search" not in names
    with pytest.raises(lakeql.LakeqlError, match="unknown capability 'vector'.*did you mean vectors"):
        lakeql.connect(lake, index_dir=idx, capabilities=["vector"])


def test_no_index_still_connects() -> None:
    con, ctx = open_lake(SAMPLE_LAKE, index_dir=Path("/nonexistent/idx"))
    assert sorted(ctx.views.live) == ["flights", "python"]
    assert con.execute("SELECT count(*) FROM flights.airlines").fetchone()[0] == 16


@pytest.mark.parametrize("names", [["filename", "x"], ["file_row_number", "x"], ["__rowid_like", "filename"]])
def test_columns_named_like_duckdbs_virtual_columns(tmp_path, names) -> None:
    """Columns called ``filename`` or ``file_row_number`` index and connect; __rowid is still the position."""
    lake = tmp_path / "lake" / "d"
    lake.mkdir(parents=True)
    for i in range(2):  # two files: the rowid needs the file name too
        (lake / "t").mkdir(exist_ok=True)
        pq.write_table(pa.table({names[0]: [f"v{i}{j}" for j in range(3)], names[1]: list(range(3))}),
                       lake / "t" / f"part{i}.parquet")
    lakeql.index(lake.parent, index_dir=tmp_path / "idx", capabilities=[], progress=False)
    con = lakeql.connect(lake.parent, index_dir=tmp_path / "idx")
    rows = con.execute(f"SELECT __rowid, \"{names[0]}\" FROM query_table(lakeql_rows_view('d.t')) "
                       "ORDER BY __rowid").fetchall()
    assert rows == [(k, f"v{k // 3}{k % 3}") for k in range(6)]
    assert con.execute('SELECT count(*) FROM d.t').fetchone()[0] == 6


def test_few_small_views_are_made_from_data(indexed, monkeypatch) -> None:
    """Below SMALL_COPY_MIN views, checking small.duckdb would cost more than making them."""
    from lakeql import views

    monkeypatch.setattr(views, "SMALL_COPY_MIN", 3)
    con, ctx = open_lake(*indexed[:1], index_dir=indexed[1])
    assert ctx.views.small == ["python"] and ctx.views.copied == []
    assert con.execute("SELECT count(*) FROM python.modules").fetchone()[0] > 0


@pytest.mark.parametrize("fmt,names,hive", [
    ("parquet", ["b'c.parquet", "x\ny \u00e9 z.parquet"], False),
    ("csv", ["e.csv"], True),
    ("json", ["e.json", "f.json"], False),
])
@pytest.mark.parametrize("domain,name", [("d", "t"), ("Odd Domain", 'se"lect'), ("select", "from")])
def test_rendered_views_are_duckdbs_rendering(tmp_path, fmt, names, hive, domain, name) -> None:
    """The check of small.duckdb compares a stored view with _rendered(): the same text as DuckDB's."""
    from lakeql.lake import quote_ident, quote_literal, scan_sql
    from lakeql.views import _rendered

    con = duckdb.connect()
    paths = [str(tmp_path / n) for n in names]
    for p in paths:
        opts = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "json": "FORMAT json"}[fmt]
        con.execute(f"COPY (SELECT 1 AS x) TO {quote_literal(p)} ({opts})")
    con.execute(f"CREATE SCHEMA {quote_ident(domain)}")
    con.execute(f"CREATE VIEW {quote_ident(domain)}.{quote_ident(name)} AS SELECT * FROM "
                f"{scan_sql(fmt, paths, hive)}")
    sql = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchone()[0]
    assert sql in _rendered(domain, name, fmt, paths, hive)


def test_refresh_records_views_missing_from_the_manifest(tmp_path: Path) -> None:
    """A build killed between swapping ``views/`` in and recording it leaves the folder without its
    manifest row. With no database files to write (no attachable domain), the refresh's "nothing
    changed" early return skipped the record, so the row stayed missing; it is recorded again now."""
    from lakeql.store import Store

    lake = tmp_path / "lake"
    (lake / "main").mkdir(parents=True)  # a reserved domain name: no views, no files, an empty manifest
    pq.write_table(pa.table({"x": [1]}), lake / "main" / "t.parquet")
    idx = tmp_path / "idx"
    lakeql.index(lake, index_dir=idx, capabilities=[], progress=False)
    store = Store(idx)
    assert store.find("views") is not None
    assert sorted(p.name for p in (idx / "views").iterdir()) == ["views.json"]
    store.drop("views", delete_files=False)  # the killed build: files swapped in, never recorded
    assert Store(idx).find("views") is None
    lakeql.index(lake, index_dir=idx, capabilities=[], progress=False, refresh=True)
    entry = Store(idx).find("views")
    assert entry is not None and Store(idx).intact(entry)


@pytest.fixture
def format_hints(indexed, tmp_path, capsys, monkeypatch):
    """(lake, index) copies of the indexed sample and ``hints()``: the 'hint:' lines a connect prints."""
    from lakeql import progress

    lake, idx = indexed
    work_lake, work = tmp_path / "lake", tmp_path / "idx"
    shutil.copytree(lake, work_lake)
    shutil.copytree(idx, work)
    monkeypatch.delenv("LAKEQL_QUIET", raising=False)
    monkeypatch.setattr(progress, "_QUIET", False)  # tests/joins set quiet process-wide

    def hints() -> list[str]:
        capsys.readouterr()
        open_lake(work_lake, index_dir=work)[0].close()
        return [line for line in capsys.readouterr().err.splitlines() if "hint:" in line]

    return work_lake, work, hints


def test_an_index_of_an_older_format_gets_a_hint_once(format_hints) -> None:
    """An index whose catalog (or views) an older lakeql wrote is not reused: every connection read the
    Parquet footers again with no word. Now connecting says so once, on stderr (silenced by quiet), and
    names 'lakeql index --refresh', after which the hint is gone."""
    import dataclasses
    import json

    from lakeql.progress import quiet_while
    from lakeql.store import Store

    work_lake, work, hints = format_hints
    assert hints() == []
    store = Store(work)
    store.record(dataclasses.replace(store.find("catalog"), params="{}"))  # as written before formats
    manifest = json.loads((work / "views" / "views.json").read_text())
    manifest["format"] = 3
    (work / "views" / "views.json").write_text(json.dumps(manifest))
    got = hints()
    assert len(got) == 1, got
    from lakeql.catalog import CATALOG_FORMAT

    want = f"written by an older lakeql (catalog format 1, now {CATALOG_FORMAT}; views of an older format"
    assert want in got[0]
    assert "run 'lakeql index --refresh LAKE'" in got[0]
    with quiet_while(True):
        assert hints() == []
    lakeql.index(work_lake, index_dir=work, capabilities=[], refresh=True, progress=False)
    assert hints() == []
    assert json.loads(store.find("catalog").params)["format"] == CATALOG_FORMAT


def test_an_index_of_a_newer_format_is_not_called_older(format_hints) -> None:
    """A catalog or views.json of a format newer than this lakeql's: the hint said 'written by an older
    lakeql' and to refresh it (which rewrites it in the older format); it says newer and to upgrade."""
    import dataclasses
    import json

    from lakeql.catalog import CATALOG_FORMAT
    from lakeql.store import Store
    from lakeql.views import FORMAT

    work_lake, work, hints = format_hints
    store = Store(work)
    store.record(dataclasses.replace(store.find("catalog"),
                                     params=json.dumps({"format": CATALOG_FORMAT + 1})))
    got = hints()
    assert len(got) == 1 and "written by a newer lakeql" in got[0] and "upgrade lakeql" in got[0], got
    assert f"catalog format {CATALOG_FORMAT + 1}, now {CATALOG_FORMAT}" in got[0]
    store.record(dataclasses.replace(store.find("catalog"), params=json.dumps({"format": CATALOG_FORMAT})))
    manifest = json.loads((work / "views" / "views.json").read_text())
    manifest["format"] = FORMAT + 1
    (work / "views" / "views.json").write_text(json.dumps(manifest))
    got = hints()
    assert len(got) == 1 and "newer lakeql" in got[0] and f"views format {FORMAT + 1}" in got[0], got


def test_an_index_option_passed_to_connect_is_named_not_duckdbs_argument_error(tmp_path) -> None:
    """``lakeql.connect(lake, embed_backend=...)`` reached duckdb.connect, whose error ("incompatible
    function arguments") named neither the argument nor where it belongs."""
    import pytest

    import lakeql

    with pytest.raises(TypeError, match=r"'embed_backend'.*lakeql\.index\(\)"):
        lakeql.connect(None, embed_backend="onnx")
    con = lakeql.connect(None, config={"threads": 1})  # duckdb.connect's own arguments still pass
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    con.close()
