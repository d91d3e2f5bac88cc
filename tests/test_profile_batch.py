"""Small tables profiled together (lakeql.profile.profile_tables) give exactly the one-table profiles.

Checked on every column type the batch takes (edge values: NaN, -0.0, infinities, NULLs, empty and
padded strings, Unicode, ties for the frequent values, time zones, nanoseconds, decimals), on the
bundled sample lake and on real fivethirtyeight tables, end to end (the stored files byte for byte), and
with a broken file inside a batch (its error is its own, the other tables of the batch are profiled).
The sample lake's python.modules holds docstrings whose DuckDB hashes are equal (iso8859_4/_6, _7/_9):
tied top values keep profile_table's order (first appearance).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from testutil import SAMPLE_LAKE

from lakeql import profile
from lakeql.catalog import Catalog
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


def specs(root: Path) -> list[tuple]:
    lake = discover(root)
    cat = Catalog.open(lake, None)
    return [
        (t, [(c.column_name, c.type) for c in cat.columns(t)], cat.row_count(t))
        for _, t in sorted(lake.tables.items())
    ]


def assert_batch_equals_alone(items: list[tuple], alone: set[str] = frozenset()) -> list:
    """profile_tables(items) == profile_table of each; exactly the tables of ``alone`` are profiled alone."""
    con, batch_con = profile.connect(), profile.connect(threads=1)
    one_table, went_alone = profile.profile_table, []

    def spy(table, *args):
        went_alone.append(table.key)
        return one_table(table, *args)

    try:
        profile.profile_table = spy
        try:
            got = profile.profile_tables(items, batch_con, con)
        finally:
            profile.profile_table = one_table
        assert set(went_alone) == set(alone)
        for it, g in zip(items, got, strict=True):
            rows, hashes = profile.profile_table(*it, con)
            assert not isinstance(g, Exception), (it[0].key, g)
            assert g[0] == rows, it[0].key
            assert g[1].equals(hashes), it[0].key
        return got
    finally:
        con.close()
        batch_con.close()


def typed_lake(root: Path) -> Path:
    d = root / "d"
    d.mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # 60 rows: every batchable type, NULLs, ties among frequent values, special floats
    con.execute(
        """COPY (SELECT
            i::TINYINT AS ti, (i * 300)::SMALLINT AS si, (i % 7)::INTEGER AS ii, (i * 1e12)::BIGINT AS bi,
            i::UTINYINT AS uti, (i % 5)::USMALLINT AS usi, i::UINTEGER AS ui, (i * 7)::UBIGINT AS ubi,
            CASE WHEN i = 1 THEN -0.0 WHEN i = 2 THEN 0.0 WHEN i = 3 THEN 'nan'::DOUBLE
                 WHEN i = 4 THEN -'nan'::DOUBLE WHEN i = 5 THEN 'inf'::DOUBLE WHEN i = 6 THEN NULL
                 ELSE i / 7 END AS dbl,
            (i % 9)::FLOAT AS fl, (i / 3)::DECIMAL(9, 2) AS dec, (i * 1.5)::DECIMAL(20, 4) AS dec2,
            i % 2 = 0 AS bo, DATE '2020-01-01' + i::INTEGER AS da, TIME '00:00:00' + to_minutes(i) AS tm,
            TIMESTAMP '2021-03-04 05:06:07' + to_hours(i) AS ts,
            (TIMESTAMPTZ '2021-03-04 05:06:07+05:30' + to_days((i % 4)::INTEGER)) AS tz,
            (TIMESTAMP '2021-01-01' + to_seconds(i))::TIMESTAMP_NS + to_microseconds(i) AS tns,
            ['Alpha', ' alpha', 'ALPHA ', '', NULL, 'beta', 'Ünïcödé', '数据', 'b''q"', 'x'][i % 10 + 1] AS s,
            CASE WHEN i % 3 = 0 THEN NULL ELSE ('k' || (i % 4))::BLOB END AS bl,
            NULL::VARCHAR AS allnull, 'same' AS const, 'id' || i AS ident
          FROM range(60) t(i)) TO ? (FORMAT parquet)""",
        [str(d / "types.parquet")],
    )
    pq.write_table(
        pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.string())}), d / "empty.parquet"
    )
    pq.write_table(pa.table({"x": ["only"], "n": [1.5]}), d / "one.parquet")
    pq.write_table(pa.table({"n": pa.array([None, None], pa.float64())}), d / "nullfloat.parquet")
    # the names the batch's queries use for their own columns
    names = ["t", "col", "val", "raw", "r", "c", "v", "first", "h", "n"]
    pq.write_table(pa.table({k: [f"{k}{i % 3}" for i in range(9)] for k in names}), d / "own.parquet")
    pq.write_table(pa.table({"rowid": [3, 1, 2], "s": ["b", "a", "b"]}), d / "rowid.parquet")
    # two columns one name apart by case
    pq.write_table(
        pa.table([pa.array([1, 2]), pa.array(["x", "y"])], names=["Name", "name"]), d / "cc.parquet"
    )
    return root


def test_every_batch_type_equals_the_one_table_profile(tmp_path):
    items = specs(typed_lake(tmp_path / "lake"))
    types = {t for _, cols, _ in items for _, t in cols}
    assert {"TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "BLOB", "UBIGINT", "DECIMAL(20,4)", "TIME"} <= types
    by_key = {it[0].key: it for it in items}
    assert all(profile.batchable(*by_key[k]) for k in ("d.types", "d.one", "d.nullfloat", "d.cc", "d.own"))
    assert not profile.batchable(*by_key["d.rowid"])
    got = assert_batch_equals_alone(items, alone={"d.empty", "d.rowid"})  # no rows: no groups
    rows = {r["column_name"]: r for r in got[[it[0].key for it in items].index("d.types")][0]}
    # the profile itself, not only its equality: exact distinct counts, frequent values, lengths
    assert rows["ident"]["n_distinct"] == 60 and rows["const"]["top_counts"] == [60]
    assert rows["dbl"]["distinct_exact"] is False and rows["allnull"]["nonnull"] == 0
    assert rows["s"]["trimmed"] is False and rows["s"]["len_max"] == 7


def test_a_copy_unlike_its_catalog_columns_is_profiled_alone(tmp_path):
    """A file whose columns or types are not the catalog's (changed since) is profiled alone."""
    items = specs(typed_lake(tmp_path / "lake"))
    t, cols, n = next(it for it in items if it[0].key == "d.one")
    renamed = (t, [("y", cols[0][1]), cols[1]], n)
    retyped = (t, [cols[0], ("n", "FLOAT")], n)
    assert profile.batchable(*renamed) and profile.batchable(*retyped)
    assert_batch_equals_alone([retyped, *items], alone={"d.empty", "d.one", "d.rowid"})
    con = profile.connect()
    got = profile.profile_tables([renamed, *items], None, con)
    assert isinstance(got[0], duckdb.BinderException)  # as profile_table: no column y
    with pytest.raises(duckdb.BinderException):
        profile.profile_table(*renamed, con)
    assert not any(isinstance(g, Exception) for g in got[1:])


def test_sample_lake_and_batch_sizes(tmp_path):
    items = [it for it in specs(SAMPLE_LAKE) if profile.batchable(*it)]
    assert len(items) >= 5
    assert_batch_equals_alone(items)
    assert_batch_equals_alone(items[:1])


@pytest.mark.skipif(F538 is None, reason="../shared/data/fivethirtyeight missing")
def test_real_fivethirtyeight_tables(tmp_path):
    con = duckdb.connect()
    csvs = sorted(F538.rglob("*.csv"))[::12][:40]
    for i, csv in enumerate(csvs):
        target = tmp_path / "lake" / "f" / f"t{i:02d}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            con.execute(
                "COPY (SELECT * FROM read_csv(?, header = true)) TO ? (FORMAT parquet)",
                [str(csv), str(target)],
            )
        except duckdb.Error:
            target.unlink(missing_ok=True)
    items = [it for it in specs(tmp_path / "lake") if profile.batchable(*it)]
    assert len(items) >= 20
    assert_batch_equals_alone(items)


def corrupt(path: Path) -> None:
    """Scramble the data pages of a Parquet file, keep its footer readable (the catalog still reads it)."""
    pq.write_table(pa.table({"txt": [f"value {i}" * 20 for i in range(2000)]}), path, compression="none")
    raw = bytearray(path.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    for i in range(8, len(raw) - footer - 8, 7):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_broken_file_in_a_batch_is_its_own_problem(tmp_path, capsys, monkeypatch):
    from lakeql import progress

    monkeypatch.setattr(progress, "_QUIET", False)  # other suites silence status lines process-wide
    monkeypatch.delenv("LAKEQL_QUIET", raising=False)
    root = typed_lake(tmp_path / "lake")
    corrupt(root / "d" / "bad.parquet")
    items = specs(root)
    keys = [it[0].key for it in items]
    assert all(profile.batchable(*it) for it in items if it[0].key in ("d.bad", "d.types", "d.one"))
    con, batch_con = profile.connect(), profile.connect(threads=1)
    got = profile.profile_tables(items, batch_con, con)
    bad = got[keys.index("d.bad")]
    assert isinstance(bad, Exception)
    with pytest.raises(type(bad)):
        profile.profile_table(*items[keys.index("d.bad")], con)
    for it, g in zip(items, got, strict=True):
        if it[0].key != "d.bad":
            rows, hashes = profile.profile_table(*it, con)
            assert g[0] == rows and g[1].equals(hashes)

    # end to end: ensure() records the broken table's error and stores every other table
    lake = discover(root)
    store = Store(tmp_path / "ix", lake)
    capsys.readouterr()
    done, failed = profile.ensure(store, lake, Catalog.open(lake, None), sorted(lake.tables))
    assert "warning: cannot profile table d.bad, left out" in capsys.readouterr().err
    assert set(failed) == {"d.bad"} and set(done) == set(lake.tables) - {"d.bad"}


def test_stored_files_equal_byte_for_byte(tmp_path, monkeypatch):
    """ensure() with batches writes the very files it writes with every table alone."""
    root = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE, root)
    typed_lake(tmp_path / "typed")
    shutil.copytree(tmp_path / "typed" / "d", root / "typed")
    lake = discover(root)
    stored = {}
    for name, cells in (("batched", profile.BATCH_CELLS), ("alone", 0)):
        monkeypatch.setattr(profile, "BATCH_CELLS", cells)
        store = Store(tmp_path / name, lake)
        done, failed = profile.ensure(store, lake, Catalog.open(lake, None), sorted(lake.tables))
        assert not failed and len(done) == len(lake.tables)
        stored[name] = {
            p.relative_to(store.root / profile.KIND): p.read_bytes()
            for p in (store.root / profile.KIND).rglob("*.parquet")
        }
    assert len(stored["batched"]) >= 2 * len(lake.tables)
    assert stored["batched"] == stored["alone"]


def test_text_columns_null_in_every_row_are_profiled(tmp_path: Path) -> None:
    """A table whose text columns are NULL in every row (fivethirtyeight's polls/old_model tables keep
    empty 'lo'/'hi' columns) gives no value groups at all; profile_table failed on it ("zip() argument 3 is
    longer than arguments 1-2") and the build left the table out. Alone and batched, it is profiled."""
    lake = tmp_path / "lake"
    (lake / "polls").mkdir(parents=True)
    duckdb.execute("COPY (SELECT range * 0.5 AS pct, CAST(NULL AS VARCHAR) AS lo, "
                   f"CAST(NULL AS VARCHAR) AS hi FROM range(50)) TO '{lake / 'polls' / 'old_model.parquet'}' "
                   "(FORMAT parquet)")
    duckdb.execute(f"COPY (SELECT 'a' || range AS k FROM range(5)) TO '{lake / 'polls' / 'other.parquet'}' "
                   "(FORMAT parquet)")
    cat = Catalog.open(discover(lake), None)
    t = cat.lake.table("polls.old_model")
    cols = [(c.column_name, c.type) for c in cat.columns(t.key)]
    rows, _ = profile.profile_table(t, cols, 50)
    by = {r["column_name"]: r for r in rows}
    empty = [(by[c]["nonnull"], by[c]["n_distinct"], by[c]["top_values"]) for c in ("lo", "hi")]
    assert empty == [(0, 0, [])] * 2
    assert by["pct"]["n_distinct"] == 50 and by["pct"]["row_count"] == 50
    other = cat.lake.table("polls.other")
    items = [(t, cols, 50), (other, [(c.column_name, c.type) for c in cat.columns(other.key)], 5)]
    con = profile.connect()
    got = profile.profile_tables(items, con, con)
    assert [g[0] for g in got] == [rows, profile.profile_table(*items[1])[0]]
