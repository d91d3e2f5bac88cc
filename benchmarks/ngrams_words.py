"""The issue-14 part of the n-gram benchmark: word units, the ∞-gram, AND/OR queries, the scan tier of
frequent phrases, index size by part, and the systems users would pick instead (DuckDB fts, Lance FM).

Called from ``benchmarks/ngrams.py`` with the corpus, the open connection and the lake; every answer is
checked against a brute-force Python ``re`` scan of the same text (words) or DuckDB's ``contains``
(characters) in the same run.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections import Counter
from pathlib import Path

SEP = r"[^\w\x00]+"  # what separates two words of one row (the rows are joined with NULs)


def ms(s: float) -> str:
    v = s * 1e3
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def best(fn, repeat: int = 3):
    t_best, val = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        val = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, val


def word_phrases(files: list[tuple[str, bytes]], n: int, seed: int) -> list[list[str]]:
    """``n`` word sequences (1-3 words) cut from random files, weighted by size."""
    rng = random.Random(seed)
    weights = [len(b) for _, b in files]
    out = []
    while len(out) < n:
        _, b = rng.choices(files, weights)[0]
        start = rng.randrange(max(1, len(b) - 400))
        ws = re.findall(r"\w+", b[start:start + 400].decode("utf-8", "ignore"))[1:-1]
        if len(ws) < 3:
            continue
        m = rng.randint(1, 3)
        i = rng.randrange(len(ws) - m + 1)
        out.append(ws[i:i + m])
    return out


def brute_next(text: str, ws: list[str]) -> tuple[int, Counter]:
    """(occurrences of the word sequence, next-word counts) by one ``re`` scan of the NUL-joined text."""
    body = SEP.join(re.escape(w) for w in ws)
    pat = re.compile(rf"(?<!\w)(?=({body})(?!\w)(?:{SEP}(\w+))?)")
    total, nxt = 0, Counter()
    for m in pat.finditer(text):
        total += 1
        if m.group(2):
            nxt[m.group(2)] += 1
    return total, nxt


def run(files, con, lake: Path, parquet: Path, idx_root: Path, text_bytes: int, out, seed: int = 7,
        n_words: int = 12) -> None:
    """Measure and print (through ``out``) the issue-14 tables."""
    T, C = "bench.files", "text"
    pq_lit = "'" + str(parquet).replace("'", "''") + "'"
    text = "\x00".join(b.decode("utf-8") for _, b in files)

    # ------------------------------------------------------------------ sizes by part
    parts = {"char FM-index": 0, "word FM-index": 0, "scan tier (chars)": 0, "scan tier (words)": 0}
    for f in idx_root.rglob("*"):
        if not f.is_file():
            continue
        in_words = "words" in f.parts
        tier = f.name in ("scan.lz4", "scan_blocks.npy")
        key = ("scan tier (words)" if in_words else "scan tier (chars)") if tier else \
            ("word FM-index" if in_words else "char FM-index")
        if f.parent.name.startswith("shard-") or f.parent.name == "words":
            parts[key] += f.stat().st_size
    out("")
    out("Index size by part (default build: words and scan tier on):")
    out("")
    out("| part | bytes | / text |")
    out("|---|---|---|")
    for k, v in parts.items():
        out(f"| {k} | {v / 1e6:.1f} MB | {v / text_bytes:.3f} |")
    tot = sum(parts.values())
    out(f"| total | {tot / 1e6:.1f} MB | {tot / text_bytes:.3f} |")

    # ------------------------------------------------------------------ words
    phrases = word_phrases(files, n_words, seed)
    rows = []
    for ws in phrases:
        ph = " ".join(ws)
        t_re, (want, nxt) = best(lambda ws=ws: brute_next(text, ws), 1)
        t_cnt, got = best(lambda ph=ph: con.execute("SELECT ngram_count(?, ?, ?, unit := 'word')",
                                                    [T, C, ph]).fetchone()[0])
        assert got == want, (ws, got, want)
        t_next, got_next = best(lambda ph=ph: con.execute(
            "SELECT next, count FROM ngram_next(?, ?, ?, k := 10, unit := 'word')", [T, C, ph]).fetchall())
        top = sorted(nxt.items(), key=lambda t: (-t[1], t[0].encode()))[:10]
        assert got_next == top, (ws, got_next[:3], top[:3])
        rows.append((len(ws), want, len(nxt), t_cnt, t_next, t_re))
    t_long = []
    rng = random.Random(seed)
    for ws in phrases:
        ctx = " ".join(["zqxv"] + ws + [rng.choice(["the", "self", "return", "x"])])
        t, got = best(lambda c=ctx: con.execute("SELECT * FROM ngram_longest(?, ?, ?, k := 10)",
                                                [T, C, c]).fetchall())
        assert got, ctx
        t_long.append(t)
    out("")
    out(f"Word units ({len(phrases)} phrases of 1-3 words cut from the corpus; every count and top-10 "
        "next-word list asserted equal to a Python `re` scan of the text in this run):")
    out("")
    out("| measure | p50 | max |")
    out("|---|---|---|")
    out(f"| occurrences of the phrase | {int(statistics.median(r[1] for r in rows))} | "
        f"{max(r[1] for r in rows)} |")
    out(f"| distinct next words | {int(statistics.median(r[2] for r in rows))} | {max(r[2] for r in rows)} |")
    out(f"| `ngram_count(unit := 'word')` SQL | {ms(statistics.median(r[3] for r in rows))} ms | "
        f"{ms(max(r[3] for r in rows))} ms |")
    out(f"| `ngram_next(k := 10, unit := 'word')` SQL | {ms(statistics.median(r[4] for r in rows))} ms | "
        f"{ms(max(r[4] for r in rows))} ms |")
    out(f"| `ngram_longest(k := 10)` SQL | {ms(statistics.median(t_long))} ms | {ms(max(t_long))} ms |")
    out(f"| baseline: Python `re` scan for count + next words | "
        f"{ms(statistics.median(r[5] for r in rows))} ms | {ms(max(r[5] for r in rows))} ms |")

    # ------------------------------------------------------------------ frequent phrases
    out("")
    out("Rows of frequent phrases (the scan tier) vs DuckDB's own scan in the same run (best of 3; the "
        "row counts asserted equal):")
    out("")
    out("| phrase | occurrences | `ngram_rows` | `ngram_search` k=10 | DuckDB `count(*) WHERE contains` | "
        "ratio rows / DuckDB |")
    out("|---|---|---|---|---|---|")
    for ph in ["e", " ", "self", "return", "import", "def __init__(self"]:
        occ = con.execute("SELECT ngram_count(?, ?, ?)", [T, C, ph]).fetchone()[0]
        t_rows, n_rows = best(lambda ph=ph: con.execute("SELECT ngram_rows(?, ?, ?)",
                                                        [T, C, ph]).fetchone()[0])
        t_search, _ = best(lambda ph=ph: con.execute(
            "SELECT path, occurrences FROM ngram_search(?, ?, ?, k := 10)", [T, C, ph]).fetchall())
        t_duck, n_duck = best(lambda ph=ph: con.execute(
            f"SELECT count(*) FROM read_parquet({pq_lit}) WHERE contains(text, ?)", [ph]).fetchone()[0])
        assert n_rows == n_duck, (ph, n_rows, n_duck)
        out(f"| `{ph!r}` | {occ} | {ms(t_rows)} ms | {ms(t_search)} ms | {ms(t_duck)} ms | "
            f"{t_rows / t_duck:.2f}x |")

    word_rows_table(con, text, out)

    # ------------------------------------------------------------------ AND / OR
    out("")
    out("AND / OR over rows vs DuckDB `count(*) WHERE contains(a) AND/OR contains(b)` (row counts asserted "
        "equal):")
    out("")
    out("| phrases | mode | rows | lakeql | DuckDB scan |")
    out("|---|---|---|---|---|")
    for group in (["os.fspath", "sys.argv"], ["def __init__(self", "raise ValueError", "isinstance"],
                  ["os.fspath", "self"]):
        for mode, op in (("all", " AND "), ("any", " OR ")):
            t_l, n_l = best(lambda g=group, m=mode: con.execute(
                f"SELECT count(*) FROM ngram_rows_{m}(?, ?, ?)", [T, C, g]).fetchone()[0])
            cond = op.join(["contains(text, ?)"] * len(group))
            t_d, n_d = best(lambda g=group, c=cond: con.execute(
                f"SELECT count(*) FROM read_parquet({pq_lit}) WHERE {c}", g).fetchone()[0])
            assert n_l == n_d, (group, mode, n_l, n_d)
            out(f"| {', '.join(repr(g) for g in group)} | {mode} | {n_l} | {ms(t_l)} ms | {ms(t_d)} ms |")

    # ------------------------------------------------------------------ other systems
    out("")
    out("Other systems on the same text:")
    out("")
    out("| system | status here | build | query |")
    out("|---|---|---|---|")
    out(_duckdb_fts(parquet))
    out(_lance_fm(parquet, ["self", "def __init__(self", "os.fspath"]))


def word_rows_table(con, text: str, out) -> None:
    """Rows of frequent word phrases (word scan tier) vs the Python ``re`` scan that answers the same."""
    T, C = "bench.files", "text"
    rows_text = text.split("\x00")
    out("")
    out("Rows of frequent word phrases (`unit := 'word'`, the word stream's scan tier; row counts asserted "
        "equal to a Python `re` scan, which is also the baseline: DuckDB has no Unicode `\\w` word match):")
    out("")
    out("| words | occurrences | `ngram_rows` | `ngram_search` k=10 | Python `re` scan |")
    out("|---|---|---|---|---|")
    for ph in ["self", "the", "return self", "import os"]:
        occ = con.execute("SELECT ngram_count(?, ?, ?, unit := 'word')", [T, C, ph]).fetchone()[0]
        t_rows, n = best(lambda ph=ph: con.execute("SELECT ngram_rows(?, ?, ?, unit := 'word')",
                                                   [T, C, ph]).fetchone()[0])
        t_search, _ = best(lambda ph=ph: con.execute(
            "SELECT path FROM ngram_search(?, ?, ?, k := 10, unit := 'word')", [T, C, ph]).fetchall())
        pat = re.compile(r"(?<!\w)" + SEP.join(re.escape(w) for w in ph.split()) + r"(?!\w)")
        t_re, want = best(lambda pat=pat: sum(1 for r in rows_text if pat.search(r)), 1)
        assert n == want, (ph, n, want)
        out(f"| `{ph}` | {occ} | {ms(t_rows)} ms | {ms(t_search)} ms | {ms(t_re)} ms |")


def _duckdb_fts(parquet: Path) -> str:
    """DuckDB's fts extension (BM25 over stemmed words: no exact phrases, no counts) if it loads."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("LOAD fts")
    except duckdb.Error:
        try:
            con.execute("INSTALL fts")
            con.execute("LOAD fts")
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0][:120]
            return (f"| DuckDB `fts` {duckdb.__version__} | not available offline: `{msg}` (the PyPI "
                    "`duckdb-extension-fts` wheels are built for duckdb 1.5.x) | - | - |")
    t = time.perf_counter()
    con.execute("CREATE TABLE docs AS SELECT row_number() OVER () AS id, text FROM read_parquet(?)",
                [str(parquet)])
    con.execute("PRAGMA create_fts_index('docs', 'id', 'text')")
    build = time.perf_counter() - t
    q, _ = best(lambda: con.execute("SELECT count(*) FROM (SELECT fts_main_docs.match_bm25(id, 'fspath') s "
                                    "FROM docs) WHERE s IS NOT NULL").fetchone())
    return f"| DuckDB `fts` | loaded | {build:.1f} s | BM25 'fspath' {ms(q)} ms (ranked words, not exact) |"


def _lance_fm(parquet: Path, phrases: list[str]) -> str:
    """Lance's FM scalar index (``contains`` filters), if the installed ``pylance`` has it."""
    try:
        import lance
    except ImportError:
        return ("| Lance FM-index (`pylance`) | not installed in this venv (PyPI has pylance 14.0.2, whose "
                "docs list an `FM` scalar index; not installed for this run) | - | - |")
    import tempfile

    import pyarrow.parquet as pq

    d = Path(tempfile.mkdtemp(prefix="lance-fm-")) / "t.lance"
    ds = lance.write_dataset(pq.read_table(parquet, columns=["text"]), d)
    t = time.perf_counter()
    try:
        ds.create_scalar_index("text", index_type="FM")
    except Exception as exc:  # noqa: BLE001 - an older pylance without the FM index type
        return f"| Lance `{lance.__version__}` | no FM index: {str(exc)[:100]} | - | - |"
    build = time.perf_counter() - t
    lat = []
    for ph in phrases:
        esc = ph.replace("'", "''")
        t_q, _ = best(lambda e=esc: ds.count_rows(filter=f"contains(text, '{e}')"))
        lat.append(f"{ph!r} {ms(t_q)} ms")
    return f"| Lance `{lance.__version__}` FM | installed | {build:.1f} s | rows: {', '.join(lat)} |"
