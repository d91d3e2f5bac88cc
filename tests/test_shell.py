"""`lakeql shell` through its Python API on the sample lake: dot-commands, full DuckDB errors, `.read`,
output redirection, the public-function list, tab completion and per-statement history."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from testutil import require

import lakeql
from lakeql.demo import SAMPLE_LAKE
from lakeql.functions import macro_params, public_functions
from lakeql.shell import Shell, ready_to_run
from lakeql.sqlfiles import udfs_dir


@pytest.fixture(scope="module")
def con():
    c = lakeql.connect(SAMPLE_LAKE)
    yield c
    c.close()


def run_script(con, script: str) -> tuple[int, str, str]:
    """Run ``script`` as piped input (no terminal); (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    rc = Shell(con=con, stdin=io.StringIO(script), stdout=out, stderr=err).run()
    return rc, out.getvalue(), err.getvalue()


def test_schema_of_a_quoted_name_with_spaces_and_unicode(tmp_path) -> None:
    """``.schema "odd types"."表格"`` (a domain with a space, a Unicode table) finds the table; before only
    the unquoted key ``odd types.表格`` did ("no table")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import lakeql

    (tmp_path / "odd types").mkdir()
    pq.write_table(pa.table({"名前": ["一"]}), tmp_path / "odd types" / "表格.parquet")
    con = lakeql.connect(tmp_path)
    for name in ('"odd types"."表格"', "odd types.表格", '"表格"', '"odd types" . 表格'):
        rc, out, err = run_script(con, f".schema {name}\n")
        assert rc == 0 and out == 'CREATE VIEW "odd types"."表格"("名前" VARCHAR);\n', (name, out, err)


@pytest.mark.parametrize("script, in_out, not_in_out, in_err", [
    (".mode\n", ["current output mode: box"], [], []),
    (".mode duckbox\nSELECT carrier FROM flights.airlines WHERE carrier = 'AA';\n.mode\n",
     ["│ AA      │", "current output mode: box"], [], []),
    (".mode csv\n.headers off\nSELECT carrier, name FROM flights.airlines WHERE carrier = 'AA';\n",
     ["AA,American Airlines Inc.\n"], ["carrier,name"], []),
    (".mode csv\nSELECT carrier FROM flights.airlines WHERE carrier = 'AA';\n", ["carrier\nAA\n"], [], []),
    (".maxrows 4\nSELECT * FROM range(10);\n.maxrows\n", ["10 rows (4 shown)", "current max rows: 4"],
     ["│      5 │"], []),
    (".maxrows 0\nSELECT * FROM range(50);\n", ["│     25 │", "50 rows\n"], ["shown"], []),
    (".mode ndjson\nSELECT 'nan'::DOUBLE AS x, 1 AS n;\n", ['{"x": null, "n": 1}\n'], [], []),
    # INTERVALs as DuckDB writes them (its Python values count a month as 30 days: '32 days')
    (".mode csv\nSELECT INTERVAL '1 month 2 days' AS i, 'x' s;\n", ["i,s\n1 month 2 days,x\n"], ["32"], []),
    (".mode ndjson\nSELECT INTERVAL '14 months -1 day' AS i;\n", ['{"i": "P1Y2M-1D"}\n'], [], []),
    (".tables\n", ["flights.airlines", "python.modules"], ["lakeql_rows", "__rowid"], []),
    (".maxrows 2\n.tables\n", ["flights.airlines", "flights.planes", "python.modules"], ["shown"], []),
    (".tables python.%\n", ["python.functions", "python.modules"], ["flights."], []),
    (".schema airlines\n", ['CREATE VIEW "flights"."airlines"("carrier" VARCHAR, "name" VARCHAR);'],
     ["__rowid"], []),
    # the name as SQL writes it (quoted, any part): what .tables lists is not the only spelling
    ('.schema "flights"."airlines"\n.schema flights."AIRLINES"\n.schema "python" . modules\n',
     ['CREATE VIEW "flights"."airlines"("carrier" VARCHAR, "name" VARCHAR);',
      'CREATE VIEW "python"."modules"'], [], []),
    ('.schema "flights"."nothere"\n', [], [], ['.schema: no table \'"flights"."nothere"\'']),
    ("CREATE TEMP TABLE IF NOT EXISTS shell_s AS SELECT 1.5 AS x;\n.schema shell_s\n",
     ['CREATE TABLE "shell_s"("x" DECIMAL(2,1));'], [], []),
    (".mode list\nSELECT 0.1::DOUBLE + 0.2 AS x, '\\xAA'::BLOB AS b;\n", ["x|b\n0.30000000000000004|\\xaa\n"],
     [], []),
    (".maxrows lots\n", [], [], [".maxrows: expected a number"]),
    (".headers maybe\n", [], [], [".headers: use '.headers on' or '.headers off'"]),
    (".frobnicate\n", [], [], ["unknown command '.frobnicate'"]),
    (".once\n", [], [], [".once: name the file"]),
])
def test_dot_commands(con, script: str, in_out: list[str], not_in_out: list[str], in_err: list[str]) -> None:
    rc, out, err = run_script(con, script)
    for needle in in_out:
        assert needle in out, out
    for needle in not_in_out:
        assert needle not in out, out
    for needle in in_err:
        assert needle in err, err
    assert rc == (1 if in_err else 0), err


@pytest.mark.parametrize("sql, lines", [
    # DuckDB's whole message: the candidates and the caret under the bad name
    ("SELECT carier FROM flights.airlines;",
     ['Error: Binder Error: Referenced column "carier" not found in FROM clause!',
      'Candidate bindings: "carrier"', "LINE 1: SELECT carier FROM flights.airlines;", "       ^^^^^^"]),
    ("SELECT * FROM flights.airlinez;", ["Table with name airlinez does not exist!", "Did you mean",
                                          "LINE 1: SELECT * FROM flights.airlinez;"]),
    ("SELEC 1;", ['syntax error at or near "SELEC"', "LINE 1: SELEC 1;", "^^^^^"]),
])
def test_duckdb_errors_are_shown_in_full(con, sql: str, lines: list[str]) -> None:
    rc, _, err = run_script(con, sql + "\n")
    assert rc == 1
    for line in lines:
        assert line in err, err


def test_lakeql_errors_stay_one_line(con) -> None:
    rc, _, err = run_script(con, "SELECT lakeql_rows_view('flihgts');\n")
    assert rc == 1
    assert err.strip().splitlines() == [
        "Error: unknown table 'flihgts' (did you mean flights.flights, flights.planes, flights.weather?)"]


def test_statements_after_an_error_still_run(con) -> None:
    rc, out, err = run_script(con, "SELECT 1 AS a; SELECT nope; SELECT 3 AS c;\n")
    assert rc == 1 and "nope" in err
    assert "│ a       │" in out and "│ c       │" in out


def test_read_runs_dot_commands_and_sql(con, tmp_path: Path) -> None:
    inner = tmp_path / "inner.sql"
    inner.write_text(".mode csv\nSELECT carrier\nFROM flights.airlines\nWHERE carrier = 'UA';\n")
    outer = tmp_path / "outer.sql"
    outer.write_text(f".headers off\n.read {inner}\nSELECT 'after' AS s;\n")
    rc, out, err = run_script(con, f".read {outer}\n")
    assert (rc, err) == (0, "")
    assert out == "UA\nafter\n"


def test_read_of_itself_stops(con, tmp_path: Path) -> None:
    loop = tmp_path / "loop.sql"
    loop.write_text(f"SELECT 1 AS one;\n.read {loop}\n")
    rc, out, err = run_script(con, f".read {loop}\n")
    assert rc == 1 and "nested more than 16 deep" in err
    assert out.count("│ one     │") == 16


def test_read_of_missing_file(con, tmp_path: Path) -> None:
    rc, _, err = run_script(con, f".read {tmp_path / 'nope.sql'}\nSELECT 1;\n")
    assert rc == 1 and "cannot read" in err and "No such file" in err


def test_read_of_a_file_that_is_not_utf8_names_the_byte(con, tmp_path: Path) -> None:
    # was read with errors="replace": the query ran with U+FFFD in place of the byte, a silent wrong answer
    latin = tmp_path / "latin.sql"
    latin.write_bytes(b"SELECT 'caf\xe9' AS s;\nSELECT 2 AS two;\n")
    rc, out, err = run_script(con, f".read {latin}\n")
    assert rc == 1 and "the SQL text is not UTF-8 (byte 0xe9 at character 11): save it as UTF-8" in err
    assert "\ufffd" not in out and "│ two     │" in out


@pytest.mark.parametrize("locale_env", [{"LC_ALL": "C.UTF-8"}, {"LANG": "en_US.UTF-8"}])
def test_piped_script_that_is_not_utf8_names_the_byte(locale_env) -> None:
    # under PYTHONIOENCODING=utf-8 sys.stdin is strict: the shell stopped at the line with
    # "lakeql: error: 'utf-8' codec can't decode byte 0xff"; under C.UTF-8 the statement failed with pybind's
    # "extract_statements(): incompatible function arguments"
    import os
    import subprocess
    import sys

    from test_mcp import child_env

    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONUTF8")}
    env = {**env, **child_env(), **locale_env, "PYTHONIOENCODING": "utf-8"}
    res = subprocess.run([sys.executable, "-m", "lakeql.cli", "shell", str(SAMPLE_LAKE)],
                         input=b"SELECT '\xff' AS s;\nSELECT 2 AS two;\n", capture_output=True, env=env,
                         timeout=300)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 1, err
    assert "the SQL text is not UTF-8 (byte 0xff at character 8): save it as UTF-8" in err
    assert "codec can't decode" not in err and "incompatible function arguments" not in err
    assert "│ two     │" in res.stdout.decode("utf-8")


def test_output_and_once_redirect_results(con, tmp_path: Path) -> None:
    every, once = tmp_path / "every.csv", tmp_path / "once.csv"
    script = (f".mode csv\n.output {every}\nSELECT 1 AS a;\nSELECT 2 AS b;\n.output\nSELECT 3 AS c;\n"
              f".once {once}\nSELECT 4 AS d;\nSELECT 5 AS e;\n")
    rc, out, err = run_script(con, script)
    assert (rc, err) == (0, "")
    assert every.read_text() == "a\n1\nb\n2\n"
    assert once.read_text() == "d\n4\n"
    assert out == "c\n3\ne\n5\n"


def test_output_to_unwritable_path(con, tmp_path: Path) -> None:
    rc, out, err = run_script(con, f".output {tmp_path / 'no' / 'dir.txt'}\nSELECT 1 AS a;\n")
    assert rc == 1 and "cannot write" in err
    assert "│ a       │" in out  # results stay on the screen


def test_ddl_prints_nothing_and_quit_stops(con) -> None:
    rc, out, err = run_script(con, "CREATE OR REPLACE TEMP TABLE shell_t AS SELECT 1 AS x;\n"
                                   "SET threads = 1;\n.quit\nSELECT 'after quit';\n")
    assert (rc, out, err) == (0, "", "")


def test_piped_failure_exit_code(con) -> None:
    assert run_script(con, "SELECT 1;\n")[0] == 0
    assert run_script(con, "SELECT * FROM nowhere;\nSELECT 1;\n")[0] == 1


@pytest.mark.parametrize("text, ready", [
    ("", True), (".tables", True), ("SELECT 1", False), ("SELECT 1;", True), ("SELECT ';'", False),
    ("SELECT 1 -- ;", False), ("SELECT 1; /* open", False), ("SELECT\n1\n;", True),
])
def test_enter_runs_only_complete_input(text: str, ready: bool) -> None:
    assert ready_to_run(text) is ready


# ---------------------------------------------------------------------------------------------- functions
def test_public_functions_come_from_the_registered_surface(con) -> None:
    funcs = public_functions(con)
    names = {n for n, _, _ in funcs}
    assert {"embed", "binarize", "ngram_count", "ngram_rows", "lakeql_table_key"} <= names  # scalar UDFs
    assert {"lakeql_tables", "joinable", "semantic_search", "ngram_search", "bit_hamming"} <= names
    assert not any(n.endswith("_impl") or n.startswith("_") for n in names)
    assert not names & {"sum", "count", "read_parquet", "unnest", "query_table"}  # DuckDB built-ins
    # every public macro of udfs/*.sql that is registered is listed, nothing else
    macros = set(macro_params(tuple(udfs_dir().glob("*.sql"))))
    registered = {r[0] for r in con.execute("SELECT function_name FROM duckdb_functions() "
                                            "WHERE function_type LIKE '%macro'").fetchall()}
    expected = {m for m in macros & registered if not m.endswith("_impl") and not m.startswith("_")}
    assert expected <= names
    kinds = {n: k for n, k, _ in funcs}
    sigs = {n: s for n, _, s in funcs}
    assert kinds["joinable"] == "table" and kinds["embed"] == "scalar" and kinds["bit_hamming"] == "scalar"
    assert sigs["ngram_count"] == "ngram_count(tbl, col, phrase, unit := 'char')"  # a macro over the UDF now
    assert not re.search(r"[(, ]_\w", " ".join(sigs.values()))  # hidden parameters (_path) of pure macros


def test_dot_functions_lists_exactly_the_public_functions(con) -> None:
    rc, out, _ = run_script(con, ".mode csv\n.functions\n")
    assert rc == 0
    listed = [line.split(",", 1)[0] for line in out.splitlines()[1:]]
    assert listed == [n for n, _, _ in public_functions(con)]


def test_macro_params_keep_defaults(tmp_path: Path) -> None:
    f = tmp_path / "x.sql"
    f.write_text("CREATE OR REPLACE MACRO f(a, b := 'x,(y)', c := [1, 2]) AS TABLE SELECT 1;\n"
                 "create macro g() as 1;\n-- CREATE MACRO broken(a\n")
    assert macro_params((f,)) == {"f": [["a", "b := 'x,(y)'", "c := [1, 2]"]], "g": [[]]}


# ---------------------------------------------------------------------------------------------- completion
@pytest.fixture(scope="module")
def completer(con):
    require("prompt_toolkit")
    from lakeql.completion import SqlCompleter, load_vocabulary
    from lakeql.shell import ALIASES, COMMANDS

    return SqlCompleter(load_vocabulary(con, [*COMMANDS, *ALIASES]))


def complete(completer, text: str) -> list[str]:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    cursor = text.find("|") if "|" in text else len(text)  # '|' marks the cursor
    doc = Document(text.replace("|", ""), cursor)
    return [c.text for c in completer.get_completions(doc, CompleteEvent(completion_requested=True))]


@pytest.mark.parametrize("text, wanted, unwanted", [
    ("SELECT * FROM fli", ["flights.flights", "flights.airlines"], ["python.modules"]),
    ("SELECT * FROM mod", ["python.modules"], ["flights.flights"]),
    ("SELECT * FROM sema", ["semantic_search"], ["embed"]),          # table functions after FROM
    ("SELECT dep_d", ["dep_delay"], []),
    ("SELECT flights.dep_d", ["dep_delay"], []),                      # the bare table name
    ("SELECT a.na| FROM flights.airlines a", ["name"], ["dep_delay"]),  # an alias, cursor mid-text
    ("SELECT x.dep_d| FROM (SELECT * FROM flights.flights) x", ["dep_delay"], []),  # unresolved alias
    ("SELECT dep_d FROM python.modules", [], ["dep_delay"]),         # only the mentioned tables' columns
    ("SELECT ngram_c", ["ngram_count"], []),
    ("SELECT emb", ["embed", "embed_codes_path"], ["embed_impl"]),
    ("SELECT * FROM range(3) WHE", ["WHERE"], []),
    ("select * from range(3) whe", ["where"], []),
    (".ta", [".tables"], [".schema"]),
    (".schema fl", ["flights.flights"], []),
    (".mode duck", ["duckbox"], []),
    (".headers o", ["on", "off"], []),
])
def test_completion(completer, text: str, wanted: list[str], unwanted: list[str]) -> None:
    got = complete(completer, text)
    for w in wanted:
        assert w in got, got
    for u in unwanted:
        assert u not in got, got


def test_completion_quotes_names_that_need_it(completer) -> None:
    from lakeql.completion import SqlCompleter, Vocabulary

    vocab = Vocabulary(tables={"my dom.t-1": [("a b", "INTEGER"), ("select", "INTEGER")]},
                       parts={"my dom.t-1": ("my dom", "t-1")},
                       reserved=set(completer.vocab.reserved))
    c = SqlCompleter(vocab)
    assert complete(c, "SELECT * FROM my") == ['"my dom"."t-1"']
    assert set(complete(c, "SELECT ")) >= {'"a b"', '"select"'}


def test_completion_of_paths(completer, tmp_path: Path) -> None:
    (tmp_path / "script.sql").write_text("SELECT 1;")
    got = complete(completer, f".read {tmp_path}/scr")
    assert got == ["ipt.sql"]


# ---------------------------------------------------------------------------------------------- interactive
def test_interactive_history_is_one_entry_per_statement(tmp_path: Path) -> None:
    """The prompt_toolkit session, fed through a pipe, in a fresh process: its event loop must not share
    a process with what other tests left behind (in the full suite an earlier test's leftovers made the
    loop's exception handler fire forever)."""
    import json
    import subprocess
    import sys

    require("prompt_toolkit")
    hist = tmp_path / "history"
    code = (
        "import io, json, sys, lakeql\n"
        "from prompt_toolkit.input import create_pipe_input\n"
        "from prompt_toolkit.output import DummyOutput\n"
        "from lakeql.demo import SAMPLE_LAKE\n"
        "from lakeql.shell import Shell\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with create_pipe_input() as inp:\n"
        "    inp.send_text(\"SELECT carrier\\rFROM flights.airlines\\r\"\n"
        "                  \"WHERE carrier = 'AA';\\r.mode csv\\r\"\n"
        "                  \"SELECT 42 AS answer;\\r.quit\\r\")\n"
        "    rc = Shell(con=lakeql.connect(SAMPLE_LAKE), stdout=out, stderr=err, interactive=True,\n"
        "               prompt_input=inp, prompt_output=DummyOutput()).run()\n"
        "print(json.dumps([rc, out.getvalue(), err.getvalue()]))\n"
    )
    env = {**__import__("os").environ, "LAKEQL_HISTORY": str(hist)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    rc, out, err = json.loads(res.stdout.strip().splitlines()[-1])
    assert rc == 0
    assert "│ AA      │" in out and "answer\n42\n" in out
    assert err == ""
    entries = [e.replace("\n+", "\n").lstrip("+") for e in
               re.split(r"\n# [^\n]*\n", "\n" + hist.read_text()) if e.strip()]
    assert [e.strip() for e in entries] == [
        "SELECT carrier\nFROM flights.airlines\nWHERE carrier = 'AA';", ".mode csv", "SELECT 42 AS answer;",
        ".quit"]


def test_history_path_override(monkeypatch, tmp_path: Path) -> None:
    from lakeql.shell import history_path

    monkeypatch.setenv("LAKEQL_HISTORY", str(tmp_path / "h"))
    assert history_path() == tmp_path / "h"
    monkeypatch.setenv("LAKEQL_HISTORY", "")
    assert history_path() is None
    monkeypatch.delenv("LAKEQL_HISTORY")
    assert history_path() == Path.home() / ".lakeql_history"


def test_piped_shell_does_not_load_prompt_toolkit(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import io, sys, lakeql\nfrom lakeql.shell import Shell\nfrom lakeql.demo import SAMPLE_LAKE\n"
            "rc = Shell(con=lakeql.connect(SAMPLE_LAKE), stdin=io.StringIO('SELECT 1;\\n')).run()\n"
            "print(rc, 'prompt_toolkit' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip().splitlines()[-1] == "0 False", res.stderr
