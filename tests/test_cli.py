"""The command line: help speed, bad input as one-line errors with exit code 2, the shell via stdin."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testutil import SAMPLE_LAKE

LAKEQL = [sys.executable, "-m", "lakeql.cli"]


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LAKEQL, *args], input=stdin, capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    t0 = time.perf_counter()
    out = run("--help")
    assert out.returncode == 0 and "lakeql" in out.stdout
    assert time.perf_counter() - t0 < 1.5  # includes the interpreter's own start-up
    code = ("import sys, lakeql, lakeql.cli; lakeql.cli.build_parser(); "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'faiss', 'duckdb', 'numpy') "
            "if m in sys.modules]; print(heavy)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


@pytest.mark.parametrize("args, message", [
    (["index", "/nonexistent/lake"], "does not exist"),
    (["sql", "--lake", "/nonexistent/lake", "SELECT 1"], "does not exist"),
    (["sql", "--lake", str(SAMPLE_LAKE), "SELECT lakeql_rows_view('flihgts')"],
     "did you mean flights.flights"),
    (["sql", "--lake", str(SAMPLE_LAKE), "SELEC 1"], "syntax error"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_empty_folder_is_not_a_lake(tmp_path: Path) -> None:
    out = run("index", str(tmp_path))
    assert out.returncode == 2 and "no Parquet files" in out.stderr


def test_debug_shows_traceback() -> None:
    out = run("index", "/nonexistent/lake", "--debug")
    assert out.returncode != 0 and "Traceback" in out.stderr


@pytest.mark.parametrize("fmt, check", [
    ("json", lambda s: json.loads(s) == [{"carrier": "9E", "name": "Endeavor Air Inc."}]),
    ("csv", lambda s: s.splitlines() == ["carrier,name", "9E,Endeavor Air Inc."]),
    ("table", lambda s: "│ 9E      │ Endeavor Air Inc. │" in s and s.startswith("┌")),
])
def test_sql_formats(fmt: str, check) -> None:
    out = run("sql", "--lake", str(SAMPLE_LAKE), "--format", fmt,
              "SELECT * FROM flights.airlines ORDER BY carrier LIMIT 1")
    assert out.returncode == 0, out.stderr
    assert check(out.stdout), out.stdout


SHELL_SCRIPT = """\
.tables
SELECT carrier,
       name
FROM flights.airlines
WHERE name LIKE '%;%' OR carrier = 'AA'
;
.mode csv
SELECT 'a;b' AS s; SELECT 2 AS n;
.schema airlines
.timer on
SELECT count(*) AS n FROM python.modules;
.timer off
SELECT * FROM no_such_table;
.mode nonsense
.help
.quit
SELECT 'after quit';
"""


def test_shell_through_stdin() -> None:
    out = run("shell", "--lake", str(SAMPLE_LAKE), stdin=SHELL_SCRIPT)
    assert out.returncode == 1  # one statement failed, as `duckdb < script` reports
    text = out.stdout
    assert "flights.airlines" in text and "python.functions" in text and "lakeql_rows" not in text
    assert "│ AA      │ American Airlines Inc. │" in text
    assert "s\na;b\nn\n2\n" in text
    assert 'CREATE VIEW "flights"."airlines"("carrier" VARCHAR, "name" VARCHAR);' in text
    assert "Run Time (s): real" in text
    assert ".schema [TABLE]" in text
    assert "after quit" not in text
    assert "no_such_table does not exist" in out.stderr
    assert "unknown mode 'nonsense'" in out.stderr


def test_shell_clean_script_exits_0() -> None:
    out = run("shell", "--lake", str(SAMPLE_LAKE), stdin="SELECT 1 AS one;\n")
    assert out.returncode == 0 and "one" in out.stdout
