"""What an agent gets for a very wide table (benchmarks/results/widetables.md).

Builds, in a temp folder, a lake with one table of ``--width`` real columns (the fivethirtyeight CSVs'
columns side by side, first 30 rows each, as tests/context/test_wide.py) and one small real table, indexes
it, and prints the bytes of ``_DOMAIN.md`` / ``INDEX.md`` / the table file, the longest overview line,
what MCP ``read_schema`` shows on its first call, and what ``schema_context`` returns for a question about
a column deep in the table. Run it with ``PYTHONPATH`` at a checkout to compare versions.

    PYTHONPATH=. python benchmarks/widetables.py [--width 1500]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "context"))


def main(argv: list[str] | None = None) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import test_wide
    from testutil import shared_data

    import lakeql
    from lakeql.mcp.service import LakeService, Limits

    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=1, help="the real columns again (suffix _r2, _r3...)")
    args = ap.parse_args(argv)
    test_wide.WIDTH = args.width
    deep = "nba_raptor__raptor_total"
    question = "which nba player has the highest total raptor rating?"
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lake, idx = Path(tmp) / "lake", Path(tmp) / "idx"
        (lake / "features").mkdir(parents=True)
        cols = test_wide._real_columns()
        cols += [(f"{n}_r{r}", c) for r in range(2, args.repeat + 1) for n, c in cols]
        names = [n for n, _ in cols]
        pq.write_table(pa.table(dict(cols)), lake / "features" / "wide.parquet")
        small = pacsv.read_csv(shared_data("fivethirtyeight", "airline-safety", "airline-safety.csv"))
        pq.write_table(small, lake / "features" / "airline_safety.parquet")
        lakeql.index(lake, index_dir=idx, progress=False)
        s = idx / "schemas"
        dom = (s / "features" / "_DOMAIN.md").read_text()
        out["width"] = len(names)
        out["deep column position"] = names.index(deep) if deep in names else None
        out["_DOMAIN.md bytes"] = len(dom.encode())
        out["_DOMAIN.md longest line"] = max(len(x) for x in dom.splitlines())
        out["INDEX.md bytes"] = (s / "INDEX.md").stat().st_size
        out["table file bytes"] = (s / "features" / "wide.yaml").stat().st_size
        svc = LakeService(lake, idx, Limits(max_chars=50_000))
        try:
            first = svc.read_schema("features/wide.yaml")
            seen, calls, offset, longest = 0, 0, 0, 0
            while True:  # follow the note's next-page offsets (a version without paging: one call)
                page = svc.read_schema("features/wide.yaml", offset=offset) if offset else first
                calls, longest = calls + 1, max(longest, len(page))
                seen += len(re.findall(r"^  \"?features\.wide\.", page, re.M))
                m = re.search(r"offset=(\d+)", page.rstrip().splitlines()[-1])
                if not m:
                    break
                offset = int(m.group(1))
            out["read_schema pages to read every column"] = calls
            out["read_schema columns seen over all pages"] = seen
            out["read_schema longest page chars"] = longest
        finally:
            svc.close()
        out["read_schema first call chars"] = len(first)
        out["read_schema first call columns"] = len(re.findall(r"^  \"?features\.wide\.", first, re.M))
        out["read_schema last line"] = first.rstrip().splitlines()[-1][:200]
        con = lakeql.connect(lake, index_dir=idx)
        try:
            for unit in ("auto", "table"):
                path, content = con.execute(
                    "SELECT path, content FROM schema_context(?, k := 1, unit := ?)", [question, unit]
                ).fetchone()
                out[f"schema_context {unit}: file"] = Path(path).name
                out[f"schema_context {unit}: bytes"] = len(content.encode())
                out[f"schema_context {unit}: has {deep}"] = f"features.wide.{deep}" in content
        finally:
            con.close()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
