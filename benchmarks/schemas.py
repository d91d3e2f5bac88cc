"""Benchmark of the context capability on Spider dev (../shared/data/spider).

* Lake: every Spider database (166, 876 tables) as empty Parquet tables with the right columns and
  types, one domain (folder) per database; and the same tables flattened (``<db>__<table>.parquet``,
  domains found by automatic partitioning).
* schema_context: for each of the 1,034 dev questions, the files picked with k = 3: share of gold tables
  and columns (extracted from the gold SQL with sqlglot) described in the returned files, share of
  questions fully covered, bytes returned vs the whole schema (all table files). Baseline in the same run:
  plain BM25 (same tokenizer) over one file per database (its table and column names), top 3 databases.
* check_sql: share of gold SQL that checks clean; share of single-identifier typos (one edit of a table
  or column name in the gold SQL) flagged with the intended name as the first suggestion.
* Generation time of the schema files for 1,000 and 10,000 tables (Spider schemas replicated), empty
  tables and tables with rows, plus an incremental re-run.

Run: ``python benchmarks/schemas.py`` (``--quick``: 200 questions, 1,000 tables only).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from lakeql.lake import quote_literal

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data/spider beside the repository, or $LAKEQL_SPIDER_DATA (e.g. from a git worktree)
SPIDER = Path(os.environ.get("LAKEQL_SPIDER_DATA") or ROOT / ".." / "shared" / "data" / "spider")
BACKEND = "auto"  # encoder of the schema embeddings (the product default); --backend torch: the old one
TYPES = {"text": "VARCHAR", "number": "DOUBLE", "time": "TIMESTAMP", "boolean": "BOOLEAN",
         "others": "VARCHAR"}


# --------------------------------------------------------------------------------------------- lakes
def spider_tables(spider: Path = SPIDER) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    """db_id -> [(table, [(column, DuckDB type)])] from Spider's tables.json."""
    dbs = json.loads((spider / "tables.json").read_text())
    out = {}
    for db in dbs:
        tables: list[tuple[str, list[tuple[str, str]]]] = [(t, []) for t in db["table_names_original"]]
        seen: list[set[str]] = [set() for _ in tables]
        for (ti, col), ty in zip(db["column_names_original"], db["column_types"], strict=True):
            if ti < 0 or col.lower() in seen[ti]:
                continue
            seen[ti].add(col.lower())
            tables[ti][1].append((col, TYPES.get(ty, "VARCHAR")))
        out[db["db_id"]] = tables
    return out


def _write_table(path: Path, cols: list[tuple[str, str]], rows: int, seed: int) -> None:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    gens = {"VARCHAR": "'v' || (hash(i + {s}) % 97)::VARCHAR", "DOUBLE": "(hash(i * 7 + {s}) % 1000)::DOUBLE",
            "TIMESTAMP": "TIMESTAMP '2020-01-01' + to_seconds(i * 3600)", "BOOLEAN": "i % 2 = 0"}
    sel = ", ".join(f"({gens[t].format(s=seed)})::{t} AS " + '"' + c.replace('"', '""') + '"'
                    for c, t in cols)
    src = f"SELECT {sel} FROM range({rows}) r(i)"
    con.execute(f"COPY ({src}) TO {quote_literal(str(path))} (FORMAT parquet)")
    con.close()


def _write_empty(path: Path, cols: list[tuple[str, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "TIMESTAMP": pa.timestamp("us"),
             "BOOLEAN": pa.bool_()}
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(c, arrow[t]) for c, t in cols])
    pq.write_table(schema.empty_table(), path)


def make_lake(root: Path, dbs, flat: bool = False, rows: int = 0, copies: int = 1,
              limit_tables: int | None = None) -> int:
    """Write Spider's schemas as a lake; ``copies`` replicates every database (``<db>_r<i>``)."""
    n = 0
    for c in range(copies):
        for db, tables in dbs.items():
            dname = db if c == 0 else f"{db}_r{c}"
            for t, cols in tables:
                if limit_tables is not None and n >= limit_tables:
                    return n
                path = root / (f"{dname}__{t}.parquet" if flat else f"{dname}/{t}.parquet")
                if rows:
                    _write_table(path, cols, rows, n)
                else:
                    _write_empty(path, cols)
                n += 1
    return n


# ------------------------------------------------------------------------------------------ gold SQL
def sqlite_to_duckdb(sql: str) -> str:
    """Spider's SQLite gold SQL with double-quoted string literals rewritten to single quotes."""
    return re.sub(r'"([^"]*)"', lambda m: "'" + m.group(1).replace("'", "''") + "'", sql)


def gold_refs(sql: str, tables: list[tuple[str, list[tuple[str, str]]]]
              ) -> tuple[set[str], set[tuple[str, str]]]:
    """(tables, (table, column)) the gold SQL references, lower-cased, resolved with the db's schema."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sqlite_to_duckdb(sql), read="duckdb")
    cols_of = {t.lower(): {c.lower() for c, _ in cols} for t, cols in tables}
    used_tables: set[str] = set()
    alias_map: dict[str, str] = {}
    for t in tree.find_all(exp.Table):
        name = t.name.lower()
        if name in cols_of:
            used_tables.add(name)
            alias_map[(t.alias_or_name or name).lower()] = name
            alias_map[name] = name
    used_cols: set[tuple[str, str]] = set()
    for c in tree.find_all(exp.Column):
        if isinstance(c.this, exp.Star):
            continue
        col = c.name.lower()
        if c.table and c.table.lower() in alias_map:
            used_cols.add((alias_map[c.table.lower()], col))
            continue
        owners = [t for t in sorted(used_tables) if col in cols_of[t]]
        if owners:
            used_cols.add((owners[0], col))
    return used_tables, used_cols


# --------------------------------------------------------------------------------------- retrieval
def eval_retrieval(out: Path, questions, dbs, flat: bool, units=("auto", "table", "domain"), k: int = 3):
    """Coverage of gold tables/columns by the files schema_context picks, per unit, plus timings."""
    import numpy as np

    from lakeql.context.retrieve import SchemaIndex
    from lakeql.embedding import encode

    t0 = time.perf_counter()
    idx = SchemaIndex.load(out, backend=BACKEND)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    qv = encode([q["question"] for q in questions], model=idx.model, desc="questions")
    t_qenc = time.perf_counter() - t0
    whole = sum(r["bytes"] for r in idx.tables)
    by_path = {r["path"]: r for r in idx.tables}
    domain_tables: dict[str, set[str]] = {}
    for r in idx.tables:
        domain_tables.setdefault(r["domain"], set()).add(r["table_name"])
    sizes = {r["path"]: r["bytes"] for r in idx.tables}
    sizes.update({r["path"]: r["bytes"] for r in idx.domains.values()})
    dom_path = {r["path"]: d for d, r in idx.domains.items()}
    res = {}
    for unit in units:
        tab_hit = tab_all = col_hit = col_all = full = 0
        nbytes = []
        t0 = time.perf_counter()
        for q, v in zip(questions, qv, strict=True):
            files = idx.pick(q["question"], k, unit, qvec=v)
            covered: set[str] = set()
            for p, _ in files:
                if p in by_path:
                    covered.add(by_path[p]["table_name"].lower())
                elif p in dom_path:
                    covered |= {t.lower() for t in domain_tables[dom_path[p]]}
            nbytes.append(sum(sizes[p] for p, _ in files))
            gt, gc = q["gold"]
            key = (lambda t, db=q["db_id"]: f"main.{db}__{t}".lower()) if flat else (
                lambda t, db=q["db_id"]: f"{db}.{t}".lower())
            th = sum(key(t) in covered for t in gt)
            ch = sum(key(t) in covered for t, _ in gc)
            tab_hit += th
            tab_all += len(gt)
            col_hit += ch
            col_all += len(gc)
            full += (th == len(gt) and ch == len(gc))
        secs = time.perf_counter() - t0
        res[unit] = {"table_recall": tab_hit / max(tab_all, 1), "column_recall": col_hit / max(col_all, 1),
                     "full": full / len(questions), "bytes_share": float(np.mean(nbytes)) / whole,
                     "ms_per_q": 1000 * secs / len(questions)}
    res["_timing"] = {"load_embed_s": t_load, "question_encode_s": t_qenc, "whole_bytes": whole,
                      "n_tables": len(idx.tables)}
    return res


def eval_baseline(questions, dbs, k: int = 3):
    """Plain BM25 over one document per database (its table and column names): db recall@k."""
    import numpy as np

    from lakeql.context.retrieve import Bm25
    from lakeql.context.text import tokens

    names = sorted(dbs)
    docs = []
    for db in names:
        words = [db]
        for t, cols in dbs[db]:
            words.append(t)
            words.extend(c for c, _ in cols)
        docs.append(" ".join(words))
    bm = Bm25([tokens(d) for d in docs])
    sizes = [len(d.encode()) for d in docs]
    whole = sum(sizes)
    hit, nbytes = 0, []
    for q in questions:
        s = bm.scores(tokens(q["question"]))
        top = np.argsort(-s, kind="stable")[:k]
        hit += q["db_id"] in {names[i] for i in top}
        nbytes.append(sum(sizes[i] for i in top))
    import bm25s

    plain = bm25s.BM25()
    plain.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    got, _ = plain.retrieve(bm25s.tokenize([q["question"] for q in questions], stopwords="en",
                                           show_progress=False), k=k, show_progress=False)
    plain_hit = sum(q["db_id"] in {names[i] for i in row} for q, row in zip(questions, got.tolist(),
                                                                              strict=True))
    return {"db_recall": hit / len(questions), "bytes_share": float(np.mean(nbytes)) / whole,
            "plain_db_recall": plain_hit / len(questions)}


def db_recall(out: Path, questions, k: int = 3) -> float:
    """Database-level recall@k of lakeql's domain ranking (domain lake), same measure as the baseline."""
    from lakeql.context.retrieve import SchemaIndex
    from lakeql.embedding import encode

    idx = SchemaIndex.load(out, backend=BACKEND)
    qv = encode([q["question"] for q in questions], model=idx.model, desc="questions")
    hit = 0
    for q, v in zip(questions, qv, strict=True):
        ds = idx.domain_scores(idx.table_scores(q["question"], v), q["question"], v)
        top = sorted(ds, key=lambda d: -ds[d])[:k]
        hit += q["db_id"] in top
    return hit / len(questions)


# ------------------------------------------------------------------------------------------ check_sql
def mutate(name: str, rng: random.Random) -> str:
    """One random edit (delete, insert, substitute, transpose) of a letter of ``name``."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = rng.randrange(len(name))
    op = rng.choice(["del", "ins", "sub", "swap"] if len(name) > 2 else ["ins", "sub"])
    if op == "del":
        return name[:i] + name[i + 1:]
    if op == "ins":
        return name[:i] + rng.choice(letters) + name[i:]
    if op == "sub":
        return name[:i] + rng.choice([c for c in letters if c != name[i].lower()]) + name[i + 1:]
    j = min(i, len(name) - 2)
    if name[j].lower() == name[j + 1].lower():
        return name[:j] + rng.choice(letters) + name[j + 1:]
    return name[:j] + name[j + 1] + name[j] + name[j + 2:]


def eval_check(lake_root: Path, questions, dbs, seed: int = 0):
    """Gold SQL clean rate and typo detection (right suggestion first) with lakeql's check()."""
    import sqlglot
    from sqlglot.tokens import TokenType

    from lakeql.catalog import Catalog
    from lakeql.context.check import SchemaInfo, check
    from lakeql.lake import discover

    lake = discover(lake_root)
    info = SchemaInfo.from_catalog(Catalog.open(lake, None))
    rng = random.Random(seed)
    clean = 0
    fails = []
    typo_total = typo_flag = typo_first = 0
    typo_fails = []
    t0 = time.perf_counter()
    n_checks = 0
    for q in questions:
        sql = sqlite_to_duckdb(q["query"])
        probs = check(sql, info, q["db_id"])
        n_checks += 1
        if not probs:
            clean += 1
        elif len(fails) < 5:
            fails.append((q["query"], probs[0].message))
        tables = {t.lower() for t, _ in dbs[q["db_id"]]}
        columns = {c.lower() for _, cols in dbs[q["db_id"]] for c, _ in cols}
        names = tables | columns
        toks = [t for t in sqlglot.tokenize(sql, read="duckdb")
                if t.token_type == TokenType.VAR and t.text.lower() in names]
        if not toks:
            continue
        tok = rng.choice(toks)
        for _ in range(20):
            new = mutate(tok.text, rng)
            if new and new.lower() not in names and re.fullmatch(r"[A-Za-z_]\w*", new) and \
                    not _is_keyword(new):
                break
        else:
            continue
        bad = sql[:tok.start] + new + sql[tok.end + 1:]
        typo_total += 1
        probs = check(bad, info, q["db_id"])
        n_checks += 1
        if probs:
            typo_flag += 1
            sugg = (probs[0].suggestion or "").rsplit(".", 1)[-1].strip('"').lower()
            if sugg == tok.text.lower():
                typo_first += 1
            elif len(typo_fails) < 8:
                typo_fails.append((tok.text, new, probs[0].message))
        elif len(typo_fails) < 8:
            typo_fails.append((tok.text, new, "not flagged"))
    secs = time.perf_counter() - t0
    return {"clean": clean / len(questions), "typo_n": typo_total,
            "typo_flagged": typo_flag / max(typo_total, 1),
            "typo_first": typo_first / max(typo_total, 1), "ms_per_check": 1000 * secs / max(n_checks, 1),
            "fails": fails, "typo_fails": typo_fails}


def _is_keyword(word: str) -> bool:
    import sqlglot

    toks = sqlglot.tokenize(word, read="duckdb")
    from sqlglot.tokens import TokenType

    return not (len(toks) == 1 and toks[0].token_type == TokenType.VAR)


# ------------------------------------------------------------------------------------------ generation
def time_generation(dbs, n_tables: int, rows: int, tmp: Path, fmt: str = "yaml") -> dict:
    """Seconds to catalogue and write schema files for ``n_tables`` replicated Spider tables."""
    from lakeql.catalog import Catalog
    from lakeql.context.generate import generate
    from lakeql.lake import discover
    from lakeql.store import Store

    per_copy = sum(len(t) for t in dbs.values())
    copies = -(-n_tables // per_copy)
    lake_root = tmp / f"gen_{n_tables}_{rows}"
    t0 = time.perf_counter()
    n = make_lake(lake_root, dbs, rows=rows, copies=copies, limit_tables=n_tables)
    t_make = time.perf_counter() - t0
    lake = discover(lake_root)
    store = Store.for_lake(lake, tmp / f"idx_{n_tables}_{rows}")
    store.ensure_writable()
    t0 = time.perf_counter()
    cat = Catalog.build(lake, store, refresh=True)
    t_cat = time.perf_counter() - t0
    out = tmp / f"schemas_{n_tables}_{rows}"
    res = generate(lake, cat, out, fmt, store=store)
    t0 = time.perf_counter()
    again = generate(lake, cat, out, fmt, store=store)
    t_again = time.perf_counter() - t0
    # one table changes: rewrite its file with other data, refresh the catalog, regenerate
    key = sorted(lake.tables)[0]
    t = lake.tables[key]
    cols = [(c.column_name, c.type if c.type in ("VARCHAR", "DOUBLE", "BOOLEAN") else "VARCHAR")
            for c in cat.columns(key)]
    path = t.root / t.files[0].path
    path.unlink()
    _write_table(path, cols, rows + 7, 12345)
    lake = discover(lake_root)
    cat = Catalog.build(lake, store, refresh=True)
    t0 = time.perf_counter()
    one = generate(lake, cat, out, fmt, store=store)
    t_one = time.perf_counter() - t0
    shutil.rmtree(lake_root, ignore_errors=True)
    return {"tables": n, "rows": rows, "make_s": t_make, "catalog_s": t_cat, "schemas_s": res.seconds,
            "files": len(res.files), "domains": res.domains, "rerun_s": t_again,
            "rerun_written": again.written, "one_s": t_one, "one_written": one.written,
            "one_profiled": one.profiled}


# ----------------------------------------------------------------------------- tuning on a split
def split_dbs(questions) -> tuple[set[str], set[str]]:
    """Spider dev databases split in two halves (sorted db ids, alternating): (tune, held-out)."""
    names = sorted({q["db_id"] for q in questions})
    return set(names[0::2]), set(names[1::2])


def score_parts(out: Path, questions, qv):
    """Per question, the fusion's parts: table BM25/max, table cosine, domain BM25/max, domain cosine."""
    import numpy as np

    from lakeql.context.retrieve import SchemaIndex
    from lakeql.context.text import tokens

    idx = SchemaIndex.load(out, backend=BACKEND)
    tb, tc, db, dc = [], [], [], []
    for q, v in zip(questions, qv, strict=True):
        toks = tokens(q["question"])
        s = idx.bm25.scores(toks)
        tb.append(s / s.max() if s.max() > 0 else s)
        tc.append(idx.emb @ v)
        b = idx.dom_bm25.scores(toks)
        db.append(b / b.max() if b.max() > 0 else b)
        dc.append(idx.dom_emb @ v)
    return idx, np.asarray(tb), np.asarray(tc), np.asarray(db), np.asarray(dc)


def db_recall_with(idx, parts, gold_dom, w, k: int = 3):
    """Database recall@k of the domain ranking with weights ``w`` (vectorized over questions)."""
    import numpy as np

    tb, tc, db, dc = parts
    ts = tb + w.emb * tc
    nd = len(idx.dom_names)
    best = np.full((len(ts), nd), -np.inf)
    for d in range(nd):
        cols = np.flatnonzero(idx.dom_of_table == d)
        best[:, d] = ts[:, cols].max(axis=1)
    score = best + w.domain_bm25 * db + w.domain_emb * dc
    top = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return float(np.mean([g in top_row for g, top_row in zip(gold_dom, top, strict=True)]))


def tune_and_hold_out(out: Path, questions, dbs, k: int = 3) -> dict:
    """Grid-search the fusion weights on half of Spider dev's databases; report both halves."""
    import itertools

    import numpy as np

    from lakeql.context.retrieve import Weights
    from lakeql.embedding import encode

    tune_dbs, held_dbs = split_dbs(questions)
    from lakeql.context.retrieve import encoder

    qv = encode([q["question"] for q in questions], model=encoder(BACKEND)[0], desc="questions")
    idx, *parts = score_parts(out, questions, qv)
    pos = {d: i for i, d in enumerate(idx.dom_names)}
    gold = np.asarray([pos[q["db_id"]] for q in questions])
    tune = np.asarray([q["db_id"] in tune_dbs for q in questions])
    sub = lambda m: [p[m] for p in parts]  # noqa: E731
    grid = list(itertools.product([0.5, 1.0, 2.0, 3.0, 4.0], [0.0, 0.25, 0.5, 1.0],
                                  [0.0, 1.0, 2.0, 3.0, 4.0]))
    default = Weights()
    results = []
    for we, wb, wd in grid:
        w = Weights(emb=we, domain_bm25=wb, domain_emb=wd)
        dist = abs(we - default.emb) + abs(wb - default.domain_bm25) + abs(wd - default.domain_emb)
        results.append((db_recall_with(idx, sub(tune), gold[tune], w, k), -dist, w))
    best = max(results, key=lambda r: (r[0], r[1]))[2]
    out_r = {"tune_dbs": sorted(tune_dbs), "held_dbs": sorted(held_dbs),
             "n_tune": int(tune.sum()), "n_held": int((~tune).sum()), "grid": len(grid),
             "tuned": best.__dict__, "default": default.__dict__}
    for name, w in (("default", default), ("tuned", best)):
        out_r[name + "_tune_db"] = db_recall_with(idx, sub(tune), gold[tune], w, k)
        out_r[name + "_held_db"] = db_recall_with(idx, sub(~tune), gold[~tune], w, k)
        idx.weights = w
        held_q = [q for q, t in zip(questions, tune, strict=True) if not t]
        held_v = qv[~tune]
        r = _coverage(idx, held_q, held_v, k)
        out_r[name + "_held_col"] = r["column_recall"]
        out_r[name + "_held_full"] = r["full"]
    idx.weights = default
    return out_r


def _coverage(idx, questions, qv, k: int = 3, unit: str = "auto") -> dict:
    """Column recall and fully-covered share of ``unit`` picks on the domain lake."""
    covered_by: dict[str, set[str]] = {}
    for r in idx.tables:
        covered_by[r["path"]] = {r["table_name"].lower()}
        ov = idx.domains.get(r["domain"])
        if ov is not None:
            covered_by.setdefault(ov["path"], set()).add(r["table_name"].lower())
    col_hit = col_all = full = 0
    for q, v in zip(questions, qv, strict=True):
        cov = set().union(*(covered_by.get(p, set()) for p, _ in idx.pick(q["question"], k, unit, qvec=v)))
        gt, gc = q["gold"]
        th = sum(f"{q['db_id']}.{t}".lower() in cov for t in gt)
        ch = sum(f"{q['db_id']}.{t}".lower() in cov for t, _ in gc)
        col_hit += ch
        col_all += len(gc)
        full += th == len(gt) and ch == len(gc)
    return {"column_recall": col_hit / max(col_all, 1), "full": full / max(len(questions), 1)}


# ------------------------------------------------- a multi-domain lake: fivethirtyeight + Spider
FIVE38 = ROOT / ".." / "shared" / "data" / "fivethirtyeight"
_LINK = re.compile(r"(!?)\[([^\]]+)\]\(([^)]*)\)")
_DEF_ROW = re.compile(r"^\s*`?([^`|]+?)`?\s*\|\s*(.+?)\s*\|?\s*$")


def _plain(md: str) -> str:
    """Markdown to plain text: links become their text, images and backticks go, whitespace collapsed."""
    md = _LINK.sub(lambda m: "" if m.group(1) else m.group(2), md)
    return " ".join(md.replace("`", "").replace("*", "").split())


def parse_readme(text: str) -> dict:
    """Title, story title, first sentence, column definitions and paragraphs of a fivethirtyeight README."""
    lines = text.splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("# ")), "")
    story = None
    for ln in lines:
        if re.search(r"data behind|story|interactive|article", ln, re.I):
            m = next((m for m in _LINK.finditer(ln) if not m.group(1)), None)
            if m and not m.group(2).startswith("http") and len(m.group(2).split()) >= 3:
                story = m.group(2).strip()
                break
    paras, cur = [], []
    for ln in lines + [""]:
        if ln.strip() and not ln.startswith("#") and "|" not in ln:
            cur.append(ln.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    first = _plain(paras[0]) if paras else ""
    first = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0] if first else ""
    defs: dict[str, str] = {}
    in_table = False
    for ln in lines:
        if re.match(r"^\s*-{2,}\s*\|", ln):
            in_table = True
            continue
        if in_table:
            m = _DEF_ROW.match(ln)
            if not m or "|" not in ln:
                in_table = False
                continue
            defs.setdefault(m.group(1).strip().lower(), _plain(m.group(2).split("|")[0]))
    return {"title": title, "story": story, "first": first, "defs": defs, "paras": paras}


def _words(text: str) -> int:
    """Words with at least one letter (a question needs some)."""
    return sum(any(ch.isalpha() for ch in w) for w in text.split())


def file_sentences(info: dict, filename: str) -> list[str]:
    """README sentences that name ``filename``, as plain text with the file name removed."""
    out = []
    own = re.compile(r"(?<![\w-])" + re.escape(filename))
    for para in info["paras"]:
        if not own.search(para):
            continue
        for sent in re.split(r"(?<=[.!?])\s+", para):
            if own.search(sent):
                rest = own.sub(" ", sent)
                if re.search(r"\.(csv|tsv|xlsx?|json)\b", rest, re.I) or "|" in rest:
                    continue  # names another file too, or a table row: not about this file alone
                text = _plain(rest)
                text = re.sub(r"^(the |in |this )?(file|data file|data set|dataset)?\s*", "", text,
                              flags=re.I)
                if _words(text) >= 4:
                    out.append(text)
    return out


def make_538_lake(root: Path, dbs) -> tuple[list[dict], dict]:
    """The fivethirtyeight tables (CSV -> Parquet with descriptions in the metadata) and Spider's empty
    tables in one lake (``538__<story>/``, ``<db>/``); returns (questions, stats).

    Descriptions written into the Parquet files: the table's is ``<README title>. Data behind the story
    "<story title>". <README sentences naming the file>``; a column's is its README definition.

    Questions (never from a file or folder name; a text that two tables would share is dropped), one rule
    per kind:
    * ``story``: the story title, for folders with one CSV (the right table is that CSV);
    * ``file``: a README sentence naming the file (and no other file), with the file name removed,
      prefixed by "Which table"; for folders with several CSVs;
    * ``column``: the longest column definition (>= 5 words, naming no file) of a one-CSV folder,
      prefixed by "Which table has".
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    questions: list[dict] = []
    stats = {"csv": 0, "converted": 0, "failed": 0, "with_description": 0, "columns_described": 0,
             "csv_bytes": 0}
    con = duckdb.connect()
    for folder in sorted(p for p in FIVE38.iterdir() if p.is_dir()):
        csvs = sorted(folder.rglob("*.csv"))
        if not csvs:
            continue
        readme = folder / "README.md"
        info = parse_readme(readme.read_text(encoding="utf-8", errors="replace")) if readme.exists() else \
            {"title": folder.name, "story": None, "first": "", "defs": {}, "paras": []}
        dom = f"538__{folder.name.replace('-', '_')}"
        taken: set[str] = set()
        for csv in csvs:
            stats["csv"] += 1
            stats["csv_bytes"] += csv.stat().st_size
            name = re.sub(r"\W+", "_", csv.stem).strip("_").lower() or "t"
            while name in taken:
                name += "_2"
            taken.add(name)
            try:
                lit = "'" + str(csv).replace("'", "''") + "'"  # a path of the shared data set, not user text
                tab = con.sql(f"SELECT * FROM read_csv({lit}, ignore_errors = true, sample_size = 20000)"
                              ).to_arrow_table()
            except duckdb.Error:
                stats["failed"] += 1
                continue
            sents = file_sentences(info, csv.name)
            desc = info["title"] + "."
            if info["story"]:
                desc += f' Data behind the story "{info["story"]}".'
            if sents:
                desc += " " + " ".join(sents)
            fields = []
            for f in tab.schema:
                d = info["defs"].get(f.name.lower())
                stats["columns_described"] += bool(d)
                fields.append(f.with_metadata({"description": d}) if d else f)
            tab = tab.cast(pa.schema(fields)).replace_schema_metadata({"description": desc})
            path = root / dom / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(tab, path)
            stats["converted"] += 1
            stats["with_description"] += 1
            key = f"{dom}.{name}"
            if len(csvs) == 1:
                if info["story"]:
                    questions.append({"kind": "story", "question": info["story"], "table": key})
                long = [d for d in info["defs"].values() if _words(d) >= 5 and ".csv" not in d]
                if long:
                    questions.append({"kind": "column", "table": key,
                                      "question": "Which table has " + max(long, key=len).rstrip(".") + "?"})
            elif sents:
                questions.append({"kind": "file", "table": key,
                                  "question": "Which table " + sents[0].rstrip(".") + "?"})
    con.close()
    texts = Counter(q["question"] for q in questions)
    stats["ambiguous_dropped"] = sum(n for n in texts.values() if n > 1)
    questions = [q for q in questions if texts[q["question"]] == 1]  # same text, several tables: unfair
    n_spider = make_lake(root, dbs)
    stats["spider_tables"] = n_spider
    return questions, stats


def eval_tables(out: Path, questions, k: int = 3) -> dict:
    """Share of questions whose right table's file is among the ``k`` table files picked, per kind,
    with a plain BM25 baseline (lakeql's tokenizer, table files' search text, no embeddings)."""
    import numpy as np

    from lakeql.context.retrieve import SchemaIndex
    from lakeql.context.text import tokens
    from lakeql.embedding import encode

    idx = SchemaIndex.load(out, backend=BACKEND)
    qv = encode([q["question"] for q in questions], model=idx.model, desc="questions")
    by_kind: dict[str, list[int]] = {}
    base: dict[str, list[int]] = {}
    misses = []
    for q, v in zip(questions, qv, strict=True):
        got = [p for p, _ in idx.pick(q["question"], k, "table", qvec=v)]
        want = next(r["path"] for r in idx.tables if r["table_name"] == q["table"])
        hit = want in got
        by_kind.setdefault(q["kind"], []).append(hit)
        s = idx.bm25.scores(tokens(q["question"]))
        top = [idx.tables[i]["path"] for i in np.argsort(-s, kind="stable")[:k]]
        base.setdefault(q["kind"], []).append(want in top)
        if not hit and len(misses) < 8:
            misses.append((q["question"][:90], q["table"], got[0]))
    allq = [h for v in by_kind.values() for h in v]
    allb = [h for v in base.values() for h in v]
    return {"n": len(allq), "top3": float(np.mean(allq)), "bm25_top3": float(np.mean(allb)),
            "kinds": {kd: (len(v), float(np.mean(v)), float(np.mean(base[kd]))) for kd, v in by_kind.items()},
            "misses": misses, "n_tables": len(idx.tables)}


def run_538(tmp: Path, dbs, fmt: str) -> dict:
    """Build the multi-domain lake, write its schema files (stage times), embed lazily, evaluate."""
    from lakeql.catalog import Catalog
    from lakeql.context.generate import generate
    from lakeql.context.retrieve import ensure_embeddings
    from lakeql.lake import discover
    from lakeql.store import Store

    root = tmp / "lake538"
    t0 = time.perf_counter()
    questions, stats = make_538_lake(root, dbs)
    stats["make_s"] = time.perf_counter() - t0
    lake = discover(root)
    store = Store.for_lake(lake, tmp / "idx538")
    store.ensure_writable()
    t0 = time.perf_counter()
    cat = Catalog.build(lake, store, refresh=True)
    stats["catalog_s"] = time.perf_counter() - t0
    out = tmp / "out538"
    g = generate(lake, cat, out, fmt, store=store)
    stats.update(tables=g.tables, domains=g.domains, schemas_s=g.seconds, stages=dict(g.stages))
    from lakeql.context.retrieve import encoder

    emb: dict = {}
    model, label = encoder(BACKEND)
    ensure_embeddings(out, model, stats=emb, label=label)
    stats["embed_s"] = emb["seconds"]
    r = eval_tables(out, questions)
    r["build"] = stats
    return r


def default_build_cost(tmp: Path, dbs, fmt: str) -> dict:
    """Spider domain lake: schema files (default build, no model) vs embedding them (at index time with
    --schemas-embed, or on the first schema_context call), and a warm second call."""
    from lakeql.catalog import Catalog
    from lakeql.context.generate import generate
    from lakeql.context.retrieve import SchemaIndex
    from lakeql.embedding import encode
    from lakeql.lake import discover

    root = tmp / "cost_lake"
    make_lake(root, dbs)
    lake = discover(root)
    cat = Catalog.open(lake, None)
    out = tmp / "cost_out"
    g = generate(lake, cat, out, fmt)
    t0 = time.perf_counter()
    from lakeql.context.retrieve import encoder

    encode(["warm up"], model=encoder(BACKEND)[0])
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx = SchemaIndex.load(out, backend=BACKEND)  # first call: embeds every table file and caches the vectors
    idx.pick("How many singers do we have?", 3)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx = SchemaIndex.load(out, backend=BACKEND)  # a new connection: reads the cache
    idx.pick("How many singers do we have?", 3)
    t_second = time.perf_counter() - t0
    return {"tables": g.tables, "schemas_s": g.seconds, "stages": dict(g.stages), "model_load_s": t_model,
            "first_call_s": t_first, "cached_call_s": t_second}


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 questions, generation at 1,000 tables only")
    ap.add_argument("--questions", type=int, default=None, help="use only the first N dev questions")
    ap.add_argument("--format", default="yaml", choices=["yaml", "md", "json", "toon"])
    ap.add_argument("--skip-gen", action="store_true", help="skip the generation-time runs")
    ap.add_argument("--gen-only", action="store_true", help="only the generation-time runs")
    ap.add_argument("--check-only", action="store_true", help="only the check_sql measures")
    ap.add_argument("--sizes", default=None, help="comma-separated table counts for the generation runs")
    ap.add_argument("--gen-rows", type=int, default=100, help="rows per table in the 'with rows' runs")
    ap.add_argument("--split", action="store_true", help="only: tune the fusion weights on half of Spider "
                                                         "dev's databases, report the held-out half")
    ap.add_argument("--lake538", action="store_true", help="only: fivethirtyeight + Spider lake (>= 1,000 "
                                                           "tables with descriptions), table top-3")
    ap.add_argument("--build-cost", action="store_true", help="only: default build vs embedding cost")
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "onnx-int8", "onnx-int8-token",
                                                          "onnx-int8-outlier", "torch", "torch-int8"],
                    help="encoder of the schema embeddings (default auto, as the product: "
                         "onnx-int8-outlier for MiniLM)")
    args = ap.parse_args(argv)
    global BACKEND
    BACKEND = args.backend
    if not (SPIDER / "tables.json").exists():
        print(f"Spider data not found at {SPIDER}", file=sys.stderr)
        return 2
    from lakeql.catalog import Catalog
    from lakeql.context.generate import generate
    from lakeql.lake import discover
    from lakeql.progress import set_quiet

    set_quiet(True)
    dbs = spider_tables()
    dev = json.loads((SPIDER / "dev.json").read_text())
    nq = args.questions or (200 if args.quick else len(dev))
    questions = dev[:nq] if not args.quick else random.Random(1).sample(dev, nq)
    for q in questions:
        q["gold"] = gold_refs(q["query"], dbs[q["db_id"]])
    tmp = Path(tempfile.mkdtemp(prefix="lakeql-bench-schemas-"))
    report: dict = {"questions": nq, "format": args.format}
    try:
        if args.split or args.lake538 or args.build_cost:
            return run_new(args, dbs, questions, tmp)
        if args.check_only:
            root = tmp / "domains"
            make_lake(root, dbs)
            c = eval_check(root, questions, dbs)
            print_check(c)
            return 0
        for flat in (() if args.gen_only else (False, True)):
            root = tmp / ("flat" if flat else "domains")
            make_lake(root, dbs, flat=flat)
            lake = discover(root)
            cat = Catalog.open(lake, None)
            out = tmp / ("out_flat" if flat else "out_domains")
            g = generate(lake, cat, out, args.format)
            r = eval_retrieval(out, questions, dbs, flat)
            r["_gen"] = {"seconds": g.seconds, "domains": g.domains}
            report["flat" if flat else "domains"] = r
            if not flat:
                report["lakeql_db_recall"] = db_recall(out, questions)
                report["check"] = eval_check(root, questions, dbs)
        if not args.gen_only:
            report["baseline"] = eval_baseline(questions, dbs)
        gens = []
        if not args.skip_gen:
            sizes = [1000] if args.quick else [1000, 10000]
            if args.sizes:
                sizes = [int(x) for x in args.sizes.split(",")]
            for n in sizes:
                gens.append(time_generation(dbs, n, 0, tmp, args.format))
                gens.append(time_generation(dbs, n, args.gen_rows, tmp, args.format))
        report["generation"] = gens
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_report(report)
    return 0


def _stages(d: dict) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in d.items())


def run_new(args, dbs, questions, tmp: Path) -> int:
    """The measurements of issue 11 item 6 and issue 10 item 1 (each printed as a Markdown table)."""
    if args.build_cost:
        c = default_build_cost(tmp, dbs, args.format)
        print(f"## Build cost of the schema files ({c['tables']} Spider tables)\n")
        print("| step | seconds |\n|---|---|")
        print(f"| schema files, default build (no model): {_stages(c['stages'])} | {c['schemas_s']:.1f} |")
        print(f"| model load + first encode (once per process) | {c['model_load_s']:.1f} |")
        print(f"| first schema_context: embed every table file, cache, answer | {c['first_call_s']:.1f} |")
        print(f"| a later connection: read the cache, answer | {c['cached_call_s']:.2f} |")
    if args.split:
        root = tmp / "domains"
        make_lake(root, dbs)
        from lakeql.catalog import Catalog
        from lakeql.context.generate import generate
        from lakeql.lake import discover

        lake = discover(root)
        out = tmp / "out_domains"
        generate(lake, Catalog.open(lake, None), out, args.format)
        r = tune_and_hold_out(out, questions, dbs)
        print(f"## Fusion weights tuned on half of Spider dev, reported on the other half\n\n"
              f"Tune: {len(r['tune_dbs'])} databases, {r['n_tune']} questions; held out: "
              f"{len(r['held_dbs'])} databases ({', '.join(r['held_dbs'])}), {r['n_held']} questions. "
              f"Grid: {r['grid']} weight triples (table embedding, domain BM25, domain embedding).\n")
        print("| weights | db recall@3 tune | db recall@3 held out | column recall held out (auto) "
              "| fully covered held out |\n|---|---|---|---|---|")
        for name in ("default", "tuned"):
            w = r[name]
            got = [r[name + s] for s in ("_tune_db", "_held_db", "_held_col", "_held_full")]
            print(f"| {name} ({w['emb']}, {w['domain_bm25']}, {w['domain_emb']}) | "
                  + " | ".join(f"{x:.3f}" for x in got) + " |")
    if args.lake538:
        r = run_538(tmp, dbs, args.format)
        b = r["build"]
        print("## Table retrieval on a multi-domain lake: fivethirtyeight + Spider "
              f"({r['n_tables']} tables)\n")
        print(f"Lake: {b['converted']} fivethirtyeight CSVs ({b['csv_bytes'] / 1e6:.1f} MB) as Parquet with "
              f"descriptions ({b['columns_described']} column descriptions), {b['spider_tables']} Spider "
              f"tables (no descriptions); {b['domains']} domains. {r['n']} questions "
              f"({b['ambiguous_dropped']} ambiguous dropped). Lake written in {b['make_s']:.1f} s, catalog "
              f"{b['catalog_s']:.1f} s, schema files {b['schemas_s']:.1f} s "
              f"({_stages(b['stages'])}), embeddings {b['embed_s']:.1f} s.\n")
        print("| questions | n | lakeql schema_context top-3 (unit table) | BM25 only top-3 |\n"
              "|---|---|---|---|")
        for kd, (n, v, bb) in sorted(r["kinds"].items()):
            print(f"| {kd} | {n} | {v:.3f} | {bb:.3f} |")
        print(f"| **all** | {r['n']} | **{r['top3']:.3f}** | {r['bm25_top3']:.3f} |")
        for q, want, got in r["misses"]:
            print(f"- miss: {q!r}: want {want}, first {got}")
    return 0


def print_report(r: dict) -> None:
    if "domains" in r:
        print_quality(r)
    if r["generation"]:
        print_generation(r)


def print_quality(r: dict) -> None:
    print(f"## schema_context on Spider dev ({r['questions']} questions, k = 3 files, {r['format']}, "
          f"encoder {BACKEND})\n")
    print("| lake | unit | table recall | column recall | fully covered | bytes / whole schema "
          "| ms/question |")
    print("|---|---|---|---|---|---|---|")
    for lake in ("domains", "flat"):
        for unit, m in r[lake].items():
            if unit.startswith("_"):
                continue
            print(f"| {lake} | {unit} | {m['table_recall']:.3f} | {m['column_recall']:.3f} "
                  f"| {m['full']:.3f} | "
                  f"{100 * m['bytes_share']:.2f}% | {m['ms_per_q']:.1f} |")
    b = r["baseline"]
    print(f"\nDatabase-level recall@3 (one file per database): plain BM25 (bm25s, default tokenizer) "
          f"{b['plain_db_recall']:.3f}; BM25 with lakeql's tokenizer (identifier splitting, plurals) "
          f"{b['db_recall']:.3f}; lakeql hybrid domain ranking {r['lakeql_db_recall']:.3f} "
          f"({r['lakeql_db_recall'] / max(b['plain_db_recall'], 1e-9):.2f}x plain BM25).")
    for lake in ("domains", "flat"):
        t = r[lake]["_timing"]
        g = r[lake]["_gen"]
        print(f"- {lake}: {t['n_tables']} tables, {g['domains']} domains, "
              f"schema files {t['whole_bytes']} bytes, "
              f"written in {g['seconds']:.1f} s; index load + table embeddings {t['load_embed_s']:.1f} s; "
              f"question encoding {t['question_encode_s']:.1f} s")
    print_check(r["check"])


def print_check(c: dict) -> None:
    print(f"\n## check_sql on Spider dev gold SQL\n\n| measure | value |\n|---|---|\n"
          f"| gold SQL clean | {c['clean']:.3f} |\n"
          f"| typos flagged ({c['typo_n']}) | {c['typo_flagged']:.3f} |\n"
          f"| typos with the right suggestion first | {c['typo_first']:.3f} |\n"
          f"| ms per check | {c['ms_per_check']:.2f} |")
    for q, m in c["fails"]:
        print(f"- not clean: `{q}`: {m}")
    for orig, new, m in c["typo_fails"]:
        print(f"- typo {orig} -> {new}: {m}")


def print_generation(r: dict) -> None:
    print("\n## Schema-file generation (Spider schemas replicated)\n")
    print("| tables | rows/table | catalog (s) | schema files (s) | files | domains "
          "| re-run, nothing changed (s) | re-run, one table changed (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for g in r["generation"]:
        print(f"| {g['tables']} | {g['rows']} | {g['catalog_s']:.1f} | {g['schemas_s']:.1f} | {g['files']} "
              f"| {g['domains']} | {g['rerun_s']:.1f} ({g['rerun_written']} written) "
              f"| {g['one_s']:.1f} ({g['one_profiled']} profiled, {g['one_written']} written) |")


if __name__ == "__main__":
    sys.exit(main())
