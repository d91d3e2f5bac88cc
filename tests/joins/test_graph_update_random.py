"""Randomized differential test of the join graph's update by candidate pools (joins/incremental.py).

From the sample lake plus copies of ``airlines`` (level candidates beyond a pool's room for ties), a
folder table and a column near the KMV cap, a seeded random sequence of changes (a table added under a
name sorting anywhere, deleted, rows dropped, a column renamed / added / dropped, a column crossing the
KMV cap either way, a column left with one distinct value, a file appended / removed); after each step
``--refresh`` must write exactly the edges and pools of a fresh full build, through the pools.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from lakes import index_joins

from lakeql.joins import incremental

STEPS = 10


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Lake:
    def __init__(self, root: Path, rnd: random.Random):
        self.root, self.rnd = root, rnd
        self.dom = root / "flights"
        self.con = duckdb.connect()

    def write(self, path: Path, sql: str, params=None) -> None:
        self.con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)", params or [])

    def tables(self) -> list[Path]:
        """The lake's single-file tables, the copies of airlines (a pool's level candidates) but two left
        out, so that every kind of table is picked as often."""
        ps = sorted(self.dom.glob("*.parquet"))
        copies = [p for p in ps if p.name.startswith("airlines_c")]
        return [p for p in ps if p not in copies] + copies[:2]

    def name(self) -> Path:
        return (
            self.dom
            / f"{self.rnd.choice(['a', 'airlines_c', 'm', 'z'])}{self.rnd.randrange(1000):03d}.parquet"
        )

    def rewrite(self, sql_of) -> str | None:
        p = self.rnd.choice(self.tables())
        self.con.execute("CREATE OR REPLACE TABLE x AS SELECT * FROM read_parquet(?)", [str(p)])
        cols = [r[0] for r in self.con.execute("DESCRIBE x").fetchall()]
        sql = sql_of(cols)
        if sql is None:
            return None
        self.con.execute("CREATE OR REPLACE TABLE y AS " + sql)
        p.unlink()
        self.write(p, "SELECT * FROM y")
        return p.name

    # the changes
    def copy(self):
        src = self.rnd.choice(self.tables())
        dst = self.name()
        shutil.copy(src, dst)
        return f"copy {src.name} -> {dst.name}"

    def delete(self):
        ts = self.tables()
        if len(ts) < 4:
            return None
        p = self.rnd.choice(ts)
        p.unlink()
        return f"delete {p.name}"

    def rows(self):
        return self.rewrite(lambda cols: "SELECT * FROM x WHERE hash(rowid) % 3 <> 0")

    def rename(self):
        return self.rewrite(lambda cols: f"SELECT * RENAME ({_q(cols[0])} AS {_q(cols[0] + '_r')}) FROM x")

    def add_column(self):
        m = self.rnd.choice([2, 7, 31, 5000])
        return self.rewrite(lambda cols: f"SELECT *, (rowid % {m})::VARCHAR AS extra_{m} FROM x")

    def drop_column(self):
        return self.rewrite(
            lambda cols: None if len(cols) < 2 else f"SELECT * EXCLUDE ({_q(cols[-1])}) FROM x"
        )

    def constant(self):
        return self.rewrite(
            lambda cols: f"SELECT * REPLACE (first({_q(cols[0])}) OVER () AS {_q(cols[0])}) FROM x"
        )

    def cap(self):  # 4,096 distinct values are stored per column: cross the cap either way
        n = self.rnd.choice([4000, 4097, 9000])
        self.write(self.dom / "numbers.parquet", f"SELECT i AS n, i % 7 AS weekday FROM range(1, {n}) t(i)")
        return f"numbers {n}"

    def append(self):
        lo, n = self.rnd.randrange(0, 8000), self.rnd.choice([10, 500, 3000])
        self.write(
            self.dom / "parts" / f"p{self.rnd.randrange(1, 10**6)}.parquet",
            f"SELECT i AS k, (i % 13)::VARCHAR AS code FROM range({lo}, {lo + n}) t(i)",
        )
        return f"append {lo} {n}"

    def remove_file(self):
        ps = sorted((self.dom / "parts").glob("*.parquet"))
        if len(ps) < 2:
            return None
        self.rnd.choice(ps).unlink()
        return "remove a file"


@pytest.mark.parametrize("seed", [1, 2])
def test_random_changes_equal_full_rebuild(tmp_path, monkeypatch, seed):
    rnd = random.Random(seed)
    root = tmp_path / "lake"
    shutil.copytree(Path(__file__).resolve().parents[2] / "lakeql" / "sample_lake", root)
    lake = _Lake(root, rnd)
    for i in range(24):
        shutil.copy(lake.dom / "airlines.parquet", lake.dom / f"airlines_c{i:02d}.parquet")
    (lake.dom / "parts").mkdir()
    lake.write(
        lake.dom / "parts" / "p0.parquet", "SELECT i AS k, (i % 13)::VARCHAR AS code FROM range(3000) t(i)"
    )
    lake.cap()
    used: list[bool] = []
    orig = incremental._update_by_pools

    def spy(*args):
        got = orig(*args)
        used.append(got is not None)
        return got

    monkeypatch.setattr(incremental, "_update_by_pools", spy)
    idx, full = tmp_path / "idx", tmp_path / "full"
    index_joins(root, idx)
    changes = [
        lake.copy,
        lake.copy,
        lake.delete,
        lake.rows,
        lake.rename,
        lake.add_column,
        lake.drop_column,
        lake.constant,
        lake.cap,
        lake.append,
        lake.remove_file,
    ]
    for step in range(STEPS):
        what = None
        while what is None:
            what = rnd.choice(changes)()
        used.clear()
        index_joins(root, idx, refresh=True)
        assert used == [True], f"step {step} ({what}): the graph was not updated through the pools"
        shutil.rmtree(full, ignore_errors=True)
        index_joins(root, full)
        a, b = pq.read_table(idx / "joins" / "edges.parquet"), pq.read_table(full / "joins" / "edges.parquet")
        assert a.num_rows > 0 and a.equals(b), f"step {step} ({what}): edges differ from a full rebuild"
        pa_, pb = (
            pq.read_table(p / "joins" / "pools.parquet").replace_schema_metadata(None) for p in (idx, full)
        )
        assert pa_.equals(pb), f"step {step} ({what}): pools differ from a full rebuild"
