"""The command line: help speed, bad input as one-line errors with exit code 2, the shell via stdin."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testutil import SAMPLE_LAKE

LAKEQL = [sys.executable, "-m", "lakeql.cli"]


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LAKEQL, *args], input=stdin, capture_output=True, text=True, timeout=300,
                          cwd=cwd)


HEAVY = ("torch", "sentence_transformers", "faiss", "duckdb", "numpy", "pyarrow", "pandas", "scipy", "numba",
         "sqlglot", "prompt_toolkit", "transformers")


def imported_modules(*args: str) -> set[str]:
    """Top-level names of every module that `python -X importtime -m lakeql.cli ARGS` imports."""
    res = subprocess.run([sys.executable, "-X", "importtime", *LAKEQL[1:], *args], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    names = {line.split("|")[-1].strip().split(".")[0] for line in res.stderr.splitlines()
             if line.startswith("import time:")}
    assert "argparse" in names  # the parse worked: the list is not empty by accident
    return names


def test_help_imports_nothing_heavy() -> None:
    # what makes `lakeql --help` slow is importing heavy libraries: measured deterministically, not timed
    out = run("--help")
    assert out.returncode == 0 and "lakeql" in out.stdout
    assert not imported_modules("--help") & set(HEAVY)
    code = ("import sys, lakeql, lakeql.cli; lakeql.cli.build_parser(); "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(heavy)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


def test_help_lists_every_command() -> None:
    import lakeql.cli

    sub = next(a for a in lakeql.cli.build_parser()._actions if a.dest == "command")
    out = run("--help")
    missing = [name for name in sub.choices if name not in out.stdout]
    assert not missing, out.stdout
    assert {"index", "sql", "shell", "demo", "schemas", "check", "train-joiner", "mcp"} <= set(sub.choices)


@pytest.mark.parametrize("args, message", [
    (["index", "/nonexistent/lake"], "does not exist"),
    (["sql", "--lake", "/nonexistent/lake", "SELECT 1"], "does not exist"),
    (["sql", "--lake", str(SAMPLE_LAKE), "SELECT lakeql_rows_view('flihgts')"],
     "did you mean flights.flights"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_sql_error_is_duckdbs_full_text() -> None:
    out = run("sql", "--lake", str(SAMPLE_LAKE), "SELEC 1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == ['lakeql: error: Parser Error: syntax error at or near "SELEC"', "",
                                       "LINE 1: SELEC 1", "        ^^^^^"]


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
    ("ndjson", lambda s: [json.loads(x) for x in s.splitlines()] == [{"carrier": "9E",
                                                                      "name": "Endeavor Air Inc."}]),
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


def test_main_from_python_restores_the_quiet_state(tmp_path) -> None:
    """``main([..., '--quiet'])`` called from Python silenced every later status line of the process
    (a test calling it made another test's expected hint disappear)."""
    from lakeql import progress
    from lakeql.cli import main

    before = progress._QUIET
    try:
        progress.set_quiet(False)
        assert main(["sql", "--quiet", "--lake", str(tmp_path), "SELECT 1"]) in (0, 2)
        assert progress._QUIET is False
        progress.set_quiet(True)
        main(["sql", "--lake", str(tmp_path), "SELECT 1"])
        assert progress._QUIET is True
    finally:
        progress.set_quiet(before)


def test_main_from_python_leaves_the_callers_process_as_it_was(tmp_path) -> None:
    """``main(["index", ...])`` from Python: the caller's environment (``OPENBLAS_THREAD_TIMEOUT`` is set
    by the ``lakeql index`` command only), warning display (the one-line 'lakeql: warning:' form is the
    command's), working directory and ``sys.path`` are as before the call."""
    import os
    import warnings

    from lakeql.cli import main

    lake = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE / "flights", lake / "flights")
    env, show, cwd, path = dict(os.environ), warnings.showwarning, os.getcwd(), list(sys.path)
    assert main(["index", str(lake), "--index-dir", str(tmp_path / "idx"), "--quiet"]) == 0
    assert main(["index", str(lake), "--index-dir", str(tmp_path / "idx"), "--refresh", "--quiet"]) == 0
    assert dict(os.environ) == env
    assert warnings.showwarning is show
    assert os.getcwd() == cwd and sys.path == path


def test_python_dash_m_lakeql_is_the_command() -> None:
    """``python -m lakeql ...`` runs the ``lakeql`` command (was: "No module named lakeql.__main__")."""
    ok = subprocess.run([sys.executable, "-m", "lakeql", "sql", str(SAMPLE_LAKE), "--format", "csv",
                         "SELECT count(*) AS n FROM flights.airlines"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout == "n\n16\n", ok.stderr
    bad = subprocess.run([sys.executable, "-m", "lakeql", "sql", "/nonexistent/lake", "SELECT 1"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("lakeql: error:") and "does not exist" in bad.stderr
