"""Per-file shards and ``--refresh`` (issue 10 item 4): after appending, removing or rewriting a Parquet file,
a refresh builds only the shards of new files, keeps (hard-links) the others, and every query answers
exactly as a full rebuild of the same files does; row ids are the table's ``__rowid`` now.

Real text: Python standard library sources, one row per file, split over several Parquet files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from ngramutil import brute_count, build, stdlib_files, write_text_table

import lakeql
from lakeql.errors import StaleIndexError

T, C = "code.files", "text"
PHRASES = [
    "def ",
    "import os",
    "self.",
    "return None",
    "raise ValueError(",
    "e",
    "Grüße",
    "ﬁ",
    "zzqqxx",
    "    def __init__(self",
]
WORD_PHRASES = ["return self", "import os", "if not", "the file"]


@pytest.fixture(scope="module")
def parts() -> list[list[tuple[str, bytes | None]]]:
    """Five files of real source (~0.25 MB each), with NULL, empty, invalid UTF-8 and Unicode rows."""
    rows: list[tuple[str, bytes | None]] = list(stdlib_files(1_300_000))
    rows.insert(2, ("null-row", None))
    rows.insert(5, ("empty-row", b""))
    rows.insert(9, ("bad-utf8", b"abc\xff\xfe def \xc3 broken \x00 nul inside"))
    rows.insert(40, ("unicode", "Grüße, naïve café — 日本語テキスト 🐍 Ǆ ﬁ".encode()))
    k = len(rows) // 5
    return [rows[i * k : (i + 1) * k] if i < 4 else rows[4 * k :] for i in range(5)]


def make_lake(root: Path, parts, names) -> Path:
    folder = root / "code" / "files"
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in zip(names, parts, strict=True):
        write_text_table(folder / f"{name}.parquet", rows)
    return root


def answers(con) -> dict:
    """Every kind of n-gram query, with the row columns joined back through ``__rowid``."""

    def q(sql: str, arg) -> list:  # $1, $2: the table and column; $3: the phrase(s)
        return con.execute(sql, [T, C, arg]).fetchall()

    out: dict = {}
    for p in PHRASES:
        out["count", p] = q("SELECT ngram_count($1, $2, $3), ngram_rows($1, $2, $3)", p)
        out["search", p] = q(
            "SELECT path, n, occurrences, snippet FROM ngram_search($1, $2, $3, k := 99999)", p
        )
        out["next", p] = q("SELECT next, count, share FROM ngram_next($1, $2, $3, k := 20)", p)
    for p in WORD_PHRASES:
        out["wcount", p] = q(
            "SELECT ngram_count($1, $2, $3, unit := 'word'), ngram_rows($1, $2, $3, unit := 'word')", p
        )
        out["wsearch", p] = q(
            "SELECT path, occurrences, snippet FROM ngram_search($1, $2, $3, k := 99999, unit := 'word')", p
        )
        out["wnext", p] = q(
            "SELECT next, count, share FROM ngram_next($1, $2, $3, k := 25, unit := 'word')", p
        )
    for ctx in ["if the file does not exist, raise", "zzqq return self", "for i in range(len("]:
        out["longest", ctx] = q("SELECT * FROM ngram_longest($1, $2, $3, k := 8)", ctx)
        out["longest-char", ctx] = q("SELECT * FROM ngram_longest($1, $2, $3, k := 8, unit := 'char')", ctx)
    for fn in ("ngram_rows_all", "ngram_rows_any"):
        for unit, phrases in (("char", ["import os", "def ", "e"]), ("word", ["return self", "import"])):
            out[fn, unit] = q(
                f"SELECT rowid, occurrences, total FROM {fn}($1, $2, $3, unit := '{unit}')", phrases
            )
    return out


def current_rows(lake: Path) -> list[tuple[str, bytes | None]]:
    """The table's rows in ``__rowid`` order (files in catalog order), by reading every file."""
    import pyarrow.parquet as pq

    rows = []
    for f in sorted((lake / "code" / "files").glob("*.parquet")):
        t = pq.read_table(f, columns=["path", "text"])
        texts = t.column("text").cast("binary").to_pylist()
        rows += list(zip(t.column("path").to_pylist(), texts, strict=True))
    return rows


def check_equal_to_rebuild(lake: Path, idx: Path, tmp: Path, **opts) -> dict:
    """The refreshed index answers exactly as a full rebuild; returns the answers."""
    fresh = tmp / f"rebuild-{len(list(tmp.iterdir()))}"
    build(lake, fresh, f"{T}.{C}", **opts)
    got = answers(lakeql.connect(lake, index_dir=idx))
    want = answers(lakeql.connect(lake, index_dir=fresh))
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key
    # row ids are the table's __rowid now: equal to a brute-force scan of the files in order
    rows = current_rows(lake)
    con = lakeql.connect(lake, index_dir=idx)
    for p in ("import os", "Grüße", "raise ValueError("):
        _, hit = brute_count(rows, p.encode())
        got_rows = {
            r for (r,) in con.execute(f"SELECT rowid FROM ngram_rows_any('{T}', '{C}', [?])", [p]).fetchall()
        }
        assert got_rows == hit, p
    return got


def meta_of(idx: Path) -> dict:
    return json.loads(next((idx / "ngram").glob("*/index.json")).read_text())


def params_of(idx: Path) -> dict:
    import pyarrow.parquet as pq

    rows = [r for r in pq.read_table(idx / "indexes.parquet").to_pylist() if r["kind"] == "ngram"]
    return json.loads(rows[0]["params"])


def inodes(idx: Path, shard_names: list[str]) -> dict[str, int]:
    root = next((idx / "ngram").glob("*/index.json")).parent
    return {
        f"{n}/{p.relative_to(root / n)}": p.stat().st_ino
        for n in shard_names
        for p in (root / n).rglob("*")
        if p.is_file()
    }


def test_append_refresh_builds_only_the_new_file(parts, tmp_path):
    lake = make_lake(tmp_path / "lake", parts[:3], ["part-0", "part-1", "part-2"])
    idx = tmp_path / "idx"
    opts = {"ngram_shard_mb": 0.1, "ngram_scan": True}  # several shards per file, and the scan tier
    build(lake, idx, f"{T}.{C}", **opts)
    before = meta_of(idx)
    assert [f["path"] for f in before["files"]] == [f"code/files/part-{i}.parquet" for i in range(3)]
    assert max(len(f["shards"]) for f in before["files"]) >= 2  # a big file is cut into several shards
    old_names = [n for f in before["files"] for n in f["shards"]]
    old_inodes = inodes(idx, old_names)

    write_text_table(lake / "code" / "files" / "part-3.parquet", parts[3])  # append a file
    # the index before it: lakeql's own error class and message (lakeql.connect presents UDF errors so)
    with pytest.raises(StaleIndexError, match="older than.*--refresh"):
        lakeql.connect(lake, index_dir=idx).execute(f"SELECT ngram_count('{T}', '{C}', 'def')").fetchall()
    build(lake, idx, refresh=True)
    after = meta_of(idx)
    assert after["files"][:3] == before["files"]  # same shards, rows and offsets
    new = after["files"][3]
    assert new["offset"] == sum(f["rows"] for f in before["files"]) and new["rows"] == len(parts[3])
    prm = params_of(idx)
    assert (
        prm["refreshed"]
        and prm["built_shards"] == len(new["shards"])
        and prm["kept_shards"] == len(old_names)
    )
    assert inodes(idx, old_names) == old_inodes  # kept shards are hard links of the old files
    assert not list(idx.rglob("*.tmp")) and not list(idx.rglob("*.old-*"))
    check_equal_to_rebuild(lake, idx, tmp_path, **opts)


def test_insert_remove_and_rewrite_files(parts, tmp_path):
    lake = make_lake(tmp_path / "lake", parts[:4], ["part-0", "part-1", "part-3", "part-4"])
    idx = tmp_path / "idx"
    build(lake, idx, f"{T}.{C}", ngram_shard_mb=0.2)
    folder = lake / "code" / "files"

    # a file that sorts between two others: the offsets of the files after it move
    write_text_table(folder / "part-2.parquet", parts[4])
    build(lake, idx, refresh=True)
    assert params_of(idx)["built_shards"] == len(meta_of(idx)["files"][2]["shards"])
    check_equal_to_rebuild(lake, idx, tmp_path, ngram_shard_mb=0.2)

    # a removed file drops its shards; nothing is built
    gone = [f for f in meta_of(idx)["files"] if f["path"].endswith("part-1.parquet")][0]
    (folder / "part-1.parquet").unlink()
    build(lake, idx, refresh=True)
    meta, prm = meta_of(idx), params_of(idx)
    assert prm["built_shards"] == 0 and prm["removed_files"] == 1
    root = next((idx / "ngram").glob("*/index.json")).parent
    assert not any((root / n).exists() for n in gone["shards"])
    assert [f["path"].rsplit("/", 1)[1] for f in meta["files"]] == [
        "part-0.parquet",
        "part-2.parquet",
        "part-3.parquet",
        "part-4.parquet",
    ]
    check_equal_to_rebuild(lake, idx, tmp_path, ngram_shard_mb=0.2)

    # a rewritten file (fewer rows): its shards are rebuilt under a new shard id, the rest kept
    old_id = meta["files"][0]["shard_id"]
    write_text_table(folder / "part-0.parquet", parts[0][: len(parts[0]) // 3])
    os.utime(folder / "part-0.parquet", ns=(1, 1))  # a different stamp even on a coarse clock
    build(lake, idx, refresh=True)
    meta, prm = meta_of(idx), params_of(idx)
    assert meta["files"][0]["shard_id"] != old_id and meta["files"][0]["rows"] == len(parts[0]) // 3
    assert prm["built_shards"] == len(meta["files"][0]["shards"]) and prm["removed_files"] == 1
    check_equal_to_rebuild(lake, idx, tmp_path, ngram_shard_mb=0.2)


def test_changed_options_and_older_index_make_a_full_build(parts, tmp_path):
    """A refresh with other options, or of an index without a file list (built before per-file
    shards), rebuilds the whole column; an older index still answers until then."""
    lake = make_lake(tmp_path / "lake", parts[:1], ["part-0"])
    idx = tmp_path / "idx"
    build(lake, idx, f"{T}.{C}")
    want = answers(lakeql.connect(lake, index_dir=idx))
    # turn it into the layout of an index built before per-file shards: shard-NNNNN, no file list
    root = next((idx / "ngram").glob("*/index.json")).parent
    meta = json.loads((root / "index.json").read_text())
    for k, name in enumerate(n for f in meta.pop("files") for n in f["shards"]):
        (root / name).rename(root / f"shard-{k:05d}")
    (root / "index.json").write_text(json.dumps(meta))
    from lakeql.store import Store

    st = Store(idx)
    entry = st.find("ngram", T, C)
    entry.checksums = ""
    st.record(entry)  # re-stamp the checksums of the converted files
    assert answers(lakeql.connect(lake, index_dir=idx)) == want  # the older layout still answers

    write_text_table(lake / "code" / "files" / "part-1.parquet", parts[1])
    build(lake, idx, refresh=True)
    prm = params_of(idx)
    assert not prm["refreshed"] and prm["built_shards"] == prm["shards"] == 2  # full build, per file
    assert len(meta_of(idx)["files"]) == 2
    check_equal_to_rebuild(lake, idx, tmp_path)

    # other options (--ngram-case insensitive) on refresh: a full build too
    write_text_table(lake / "code" / "files" / "part-2.parquet", parts[2])
    build(lake, idx, f"{T}.{C}", refresh=True, ngram_case="insensitive")
    prm = params_of(idx)
    assert prm["case"] == "insensitive" and not prm["refreshed"] and prm["built_shards"] == 3


def test_damaged_file_list_is_a_clear_error(parts, tmp_path):
    lake = make_lake(tmp_path / "lake", parts[:2], ["part-0", "part-1"])
    idx = tmp_path / "idx"
    build(lake, idx, f"{T}.{C}")
    root = next((idx / "ngram").glob("*/index.json")).parent
    name = meta_of(idx)["files"][1]["shards"][0]
    shutil.rmtree(root / name)
    with pytest.raises(Exception, match="missing.*--refresh|shard folders"):
        lakeql.connect(lake, index_dir=idx).execute(f"SELECT ngram_count('{T}', '{C}', 'def')").fetchall()
    build(lake, idx, refresh=True)  # the damaged index is rebuilt
    assert (
        lakeql.connect(lake, index_dir=idx).execute(f"SELECT ngram_count('{T}', '{C}', 'def')").fetchone()[0]
        > 0
    )
