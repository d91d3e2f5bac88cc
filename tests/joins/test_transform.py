"""Transformation joins (method = 'transform') on real names: the US presidents of the Auto-Join
benchmark (../shared/data/autojoin), and forms of them written as 'G. Washington' and
'Washington, George'; plus the learner on Auto-Join pairs directly."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lakeql.joins.transform import learn, program_sql

REPO = Path(__file__).resolve().parents[2]
AUTOJOIN = REPO / ".." / "shared" / "data" / "autojoin"
PRESIDENTS = AUTOJOIN / "us presidents 1" / "target.csv"


def _autojoin() -> Path:
    assert AUTOJOIN.is_dir(), f"shared data missing: {AUTOJOIN} (the Auto-Join benchmark)"
    return AUTOJOIN


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """(connection, lake root): people.presidents (real names) + derived initial/inverted/surname forms."""
    import duckdb

    import lakeql
    from lakeql.connection import open_lake
    from lakeql.progress import set_quiet

    _autojoin()
    set_quiet(True)
    root = tmp_path_factory.mktemp("transform_lake")
    d = root / "people"
    d.mkdir()
    con = duckdb.connect()
    con.execute("CREATE TABLE presidents AS SELECT * FROM read_csv(?, header = true, all_varchar = true)",
                [str(PRESIDENTS)])
    derived = {
        "presidents": "SELECT * FROM presidents",
        # 'F. Last' (the case): first initial, then the last word of the name
        "initials": "SELECT left(\"Name\", 1) || '. ' || split_part(\"Name\", ' ', -1) AS author, "
                    "\"State of Birth\" AS state FROM presidents",
        # 'Last, First'
        "inverted": "SELECT split_part(\"Name\", ' ', -1) || ', ' || split_part(\"Name\", ' ', 1) AS name "
                    "FROM presidents",
        # the distractor of the issue: a last-name column
        "surnames": "SELECT DISTINCT split_part(\"Name\", ' ', -1) AS last_name FROM presidents",
    }
    for name, sql in derived.items():
        con.execute(f"COPY ({sql}) TO '{d / (name + '.parquet')}' (FORMAT parquet)")
    idx = tmp_path_factory.mktemp("transform_idx")
    lakeql.index(root, index_dir=idx, capabilities=["joins"], progress=False, joins_semantic=False)
    c, _ = open_lake(root, index_dir=idx, capabilities=["joins"])
    return c, root


def joinable(con, table: str, col: str, mode: str = "auto", k: int = 5) -> list[dict]:
    cur = con.execute("FROM joinable(?, ?, k := ?, mode := ?)", [table, col, k, mode])
    names = [x[0] for x in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_initial_and_last_name_finds_the_full_names(lake):
    """'G. Washington' against 'George Washington': found, as a transformation, with a join that runs."""
    con, _ = lake
    got = joinable(con, "people.initials", "author")
    tr = [r for r in got if r["method"] == "transform" and r["candidate_table"] == "people.presidents"]
    assert tr, got
    r = tr[0]
    assert r["candidate_column"] == "Name"
    assert r["containment"] >= 0.9
    assert "split_part" in r["transform"] and "left(" in r["transform"]
    assert r["sample_matches"] and all("." in m["query_value"] for m in r["sample_matches"])
    # the join runs and pairs the right people (the state of birth agrees)
    sql = r["join_sql"].replace("SELECT *", 'SELECT q.state, c."State of Birth" AS born', 1)
    n, agree = con.execute(f"SELECT count(*), count(*) FILTER (WHERE state = born) FROM ({sql})").fetchone()
    total = con.execute("SELECT count(*) FROM people.initials").fetchone()[0]
    assert n >= total * 0.95
    assert agree / n >= 0.95


def test_last_comma_first(lake):
    con, _ = lake
    got = joinable(con, "people.inverted", "name", mode="transform")
    assert got and got[0]["candidate_table"] == "people.presidents"
    assert got[0]["method"] == "transform"
    assert got[0]["containment"] >= 0.9
    for r in got:
        con.execute(f"SELECT count(*) FROM ({r['join_sql']})").fetchone()


def test_every_join_sql_runs_and_joins(lake):
    con, _ = lake
    for table, col in (("people.initials", "author"), ("people.inverted", "name"),
                       ("people.surnames", "last_name")):
        for r in joinable(con, table, col, mode="transform"):
            n = con.execute(f"SELECT count(*) FROM ({r['join_sql']})").fetchone()[0]
            assert n > 0, r  # a transformation that joins nothing is never returned
            assert r["transform"]


def test_equi_rows_have_no_transform(lake):
    con, _ = lake
    got = joinable(con, "people.presidents", "Name", mode="equi")
    assert all(r["transform"] is None for r in got)


def test_unrelated_values_give_no_transformation(lake):
    con, _ = lake
    got = joinable(con, "people.initials", "state", mode="transform")
    assert all(r["candidate_column"] != "Name" for r in got)


def test_transform_mode_needs_one_column(lake):
    import duckdb

    con, _ = lake
    with pytest.raises(duckdb.Error, match="mode"):
        con.execute("FROM joinable('people.initials', 'author', mode := 'transfrom')").fetchall()
    with pytest.raises(duckdb.Error, match="one column"):
        con.execute("FROM joinable('people.initials', ['author', 'state'], mode := 'transform')").fetchall()


def _pair(name: str, source: str, target: str) -> tuple[list[str], list[str]]:
    root = _autojoin() / name

    def col(side: str, c: str) -> list[str]:
        with open(root / f"{side}.csv", newline="", encoding="utf-8") as fh:
            return [r[c] for r in csv.DictReader(fh) if r.get(c)]

    return col("source", source), col("target", target)


def test_learner_on_autojoin_pairs():
    """Programs learned from the real pairs: name before ';', e-mail from initial + last name."""
    q, c = _pair("us presidents 1", "President", "Name")
    lr = learn(q, c)
    assert lr is not None and lr.matched / lr.n_query >= 0.9
    assert lr.direction == "q->c" and program_sql(lr.programs[0], "v") == "split_part(v, ';', 1)"
    q, c = _pair("k12 name to email", "Name", "email")
    lr = learn(q, c)
    assert lr is not None and lr.matched / lr.n_query >= 0.8
    sql = program_sql(lr.programs[0], "v")
    assert sql.startswith("left(trim(split_part(v, ' ', 1)), 1) || split_part(v, ' ', -1)")


def test_learner_padding_and_case():
    """Zero-padded codes against plain numbers, and case changes (values of the sample lake's flights)."""
    nums = [str(n) for n in range(1, 400, 7)]
    padded = [n.zfill(6) for n in nums]
    lr = learn(padded, nums)
    assert lr is not None and lr.matched == len(nums)
    assert "ltrim" in program_sql(lr.programs[0], "v")
    assert learn(["Alpha Beta", "Gamma Delta"], ["zzz", "yyy"]) is None
