"""The ``lakeql`` command line: ``index``, ``sql``, ``shell``, ``demo`` and capability commands.

Errors a user can fix print one line on stderr and exit with code 2 (``--debug`` shows tracebacks).
Only argparse is imported at start-up, so ``lakeql --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or status lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_index_args(p: argparse.ArgumentParser) -> None:
    """The ``lakeql index`` flags: the core's, then one group per capability from its options dataclass."""
    from lakeql import plugins
    from lakeql.options import add_arguments

    p.add_argument("lake", help="folder of Parquet files (LAKE/<domain>/<table>.parquet)")
    p.add_argument("--index-dir", help="where to write the indexes (default: LAKE/.lakeql)")
    p.add_argument("--refresh", action="store_true",
                   help="re-index only new or changed tables, rebuild missing or damaged indexes, "
                        "drop removed ones")
    p.add_argument("--verify", action="store_true",
                   help="read every index file and check its checksum before building (default: only files "
                        "whose size, times or inode changed since the last check; see docs/robustness.md)")
    p.add_argument("--csv-encoding", action="append", metavar="[TABLE=]ENC", dest="csv_encoding",
                   help="the encoding of CSV files that are not UTF-8 (instead of the guessed one): ENC for "
                        "every CSV table, TABLE=ENC for one (repeatable); any Python text codec (cp1251, "
                        "latin-9, iso8859-7, shift_jis, ...); 'auto' detects again (TABLE=auto: that "
                        "table). Kept by later builds")
    p.add_argument("--no-wait", action="store_true",
                   help="fail at once when another lakeql index runs on this lake (default: wait)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",  # lakeql.engine (issue 10)
                   help="where builders run their per-table/per-shard work (default: local; ray needs "
                        "lakeql[ray])")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster for --engine ray (ray://HOST:10001 "
                                                         "or HOST:6379; default: a local Ray)")
    p.add_argument("--only", action="append", metavar="CAPABILITY", dest="capabilities",
                   help="build only this capability (repeatable; a flag of a capability left out, such "
                        "as --embed with --only context, is an error): "
                        + ", ".join(m.NAME for m in plugins.capabilities()))
    for mod in plugins.capabilities():
        if hasattr(mod, "OPTIONS"):
            summary = (mod.OPTIONS.__doc__ or "").strip().splitlines()[0].rstrip(".")
            add_arguments(p, mod.OPTIONS, f"{mod.NAME}: {summary}")


def index_options(args: argparse.Namespace):
    """The typed :class:`~lakeql.options.IndexOptions` of parsed ``lakeql index`` arguments."""
    from lakeql.options import from_namespace

    return from_namespace(args, {"index_dir": args.index_dir, "refresh": bool(args.refresh),
                                 "verify": bool(getattr(args, "verify", False)),
                                 "progress": not args.quiet, "capabilities": args.capabilities,
                                 "wait": not getattr(args, "no_wait", False),
                                 "engine": args.engine, "ray_address": args.ray_address,
                                 "csv_encoding": getattr(args, "csv_encoding", None) or []})


def build_parser() -> argparse.ArgumentParser:
    """The whole CLI: every command and flag (imports only argparse and lakeql's light modules)."""
    parser = argparse.ArgumentParser(
        prog="lakeql",
        description="A folder of Parquet tables as a searchable data lake: every operation is a SQL "
                    "function in DuckDB.",
        epilog="Start with 'lakeql demo'. Docs: README.md (SQL reference, CLI, Python).")
    from lakeql import __version__

    parser.add_argument("--version", action="version", version=f"lakeql {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="catalogue the lake and build its indexes")
    _add_index_args(p)
    _add_common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("sql", help="run SQL statements against the lake and print each result",
                       usage="lakeql sql [-h] [--lake LAKE] [--index-dir DIR] [--format FORMAT] [--quiet] "
                             "[--debug] [LAKE] QUERY")
    p.add_argument("words", nargs="+", metavar="[LAKE] QUERY",
                   help="the lake folder (or use --lake) and the SQL text ('-' reads it from stdin)")
    p.add_argument("--lake", help="folder of Parquet files")
    p.add_argument("--index-dir", help="index dir (default: LAKE/.lakeql)")
    p.add_argument("--format", choices=["table", "csv", "json", "ndjson"], default="table")
    _add_common(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("shell", help="an interactive SQL shell (like duckdb's) with every lakeql function")
    p.add_argument("lake_folder", nargs="?", metavar="LAKE", help="folder of Parquet files (or use --lake)")
    p.add_argument("--lake", help="folder of Parquet files")
    p.add_argument("--index-dir", help="index dir (default: LAKE/.lakeql)")
    _add_common(p)
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("demo", help="index the bundled sample lake and run an example of each capability")
    p.add_argument("--keep", metavar="DIR",
                   help="build the demo index in DIR (default: ~/.cache/lakeql/demo-index, so the shell "
                        "command printed at the end works)")
    p.add_argument("--temp", action="store_true", help="build the demo index in a temp dir, removed after")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    for add in command_hooks():
        add(sub)
    return parser


#: modules besides the capabilities that add CLI commands through ``add_commands(subparsers)``
COMMAND_MODULES = ("lakeql.mcp", "lakeql.doctor")


def command_hooks() -> list:
    """Every ``add_commands`` hook: the capabilities' and the front ends' (all cheap to import)."""
    import importlib

    from lakeql import plugins

    hooks = [fn for _, fn in plugins.hook("add_commands")]
    for name in COMMAND_MODULES:
        hooks.append(importlib.import_module(name).add_commands)
    return hooks


#: the cyclic garbage collector's first threshold while ``lakeql index`` runs (Python's default: 700)
INDEX_GC_THRESHOLD = 100_000


def cmd_index(args: argparse.Namespace) -> int:
    import contextlib

    with few_collections():
        from lakeql.indexer import build_index
        from lakeql.parquet_io import without_pandas

        # lakeql hands pyarrow no pandas objects: skip its import (~0.3 CPU s); Ray Data needs pandas
        with without_pandas() if args.engine == "local" else contextlib.nullcontext():
            build_index(args.lake, index_options(args))
    return 0


@contextmanager
def few_collections(threshold: int = INDEX_GC_THRESHOLD) -> Iterator[None]:
    """Run the garbage collector after ``threshold`` new container objects instead of 700, restored
    afterwards. Importing numpy, pyarrow, DuckDB and scipy makes ~200k objects: at 700 a refresh ran
    ~140 collections (full ones walk every module's objects), 0.05-0.06 CPU s of a 1.1-1.3 CPU s
    refresh; cyclic garbage is still collected, in fewer, larger batches (<= ``threshold`` objects)."""
    import gc

    old = gc.get_threshold()
    gc.set_threshold(max(old[0], threshold), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def cmd_sql(args: argparse.Namespace) -> int:
    from lakeql import cliargs
    from lakeql.connection import connect
    from lakeql.sqlrun import run_sql

    lake, query = cliargs.lake_and_query(args, "sql")
    query = cliargs.sql_text(query)
    con = connect(lake, index_dir=args.index_dir)
    from lakeql.render import keep_arrow_exact

    keep_arrow_exact(con)  # a TIMETZ keeps its offset in a result read as Arrow (one with an INTERVAL)
    return run_sql(con, query, args.format, sys.stdout, is_tty=sys.stdout.isatty())


def cmd_shell(args: argparse.Namespace) -> int:
    from lakeql import cliargs
    from lakeql.shell import Shell

    return Shell(cliargs.one_lake(args.lake_folder, args.lake), args.index_dir).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from lakeql.demo import TEMP, run_demo

    return run_demo(keep=TEMP if args.temp else args.keep)


def _is_flag(word: str) -> bool:
    """An option argparse did not know (not ``-`` for stdin, nor a query such as ``-- note\nSELECT 1``)."""
    return word.startswith("-") and word != "-" and not any(c.isspace() for c in word)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``lakeql`` command; returns its exit code. Called without ``argv`` (the ``lakeql`` command
    itself), a finished local ``lakeql index`` ends the process at once (:func:`_exit_now`)."""
    command = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "words") and not any(_is_flag(word) for word in extra):
        # `lakeql sql LAKE --format csv QUERY`: argparse stops the positionals at --format
        args.words += extra
    elif extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if command and args.func is cmd_index:
        _calm_blas_threads()
    import warnings

    from lakeql import progress

    quiet_before, show_before = progress._QUIET, warnings.showwarning
    progress.set_quiet(bool(getattr(args, "quiet", False)))
    _one_line_warnings()
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors become one line, the rest too unless --debug
        if getattr(args, "debug", False) or os.environ.get("LAKEQL_DEBUG"):
            raise
        print(f"lakeql: error: {format_error(exc)}", file=sys.stderr)
        return 2
    finally:
        if not command:  # main([...]) from Python: one call's '--quiet' does not silence later work, nor
            progress.set_quiet(quiet_before)  # its one-line warnings replace the caller's way of showing them
            warnings.showwarning = show_before
    if command and args.func is cmd_index and getattr(args, "engine", "local") == "local":
        _exit_now(code)
    return code


#: ``OPENBLAS_THREAD_TIMEOUT`` for ``lakeql index``: OpenBLAS' idle workers spin 2**n cycles before they
#: sleep (its default n = 28: ~0.1 s a worker, from the moment numpy is imported)
BLAS_THREAD_TIMEOUT = "4"


def _calm_blas_threads() -> None:
    """Before numpy is imported by the ``lakeql index`` command: OpenBLAS starts one worker per core when
    numpy loads, and each spins ~0.1 s waiting for work that a refresh never gives it (~0.035 CPU s of
    a 1 CPU s refresh on 2 cores; DuckDB, Arrow and faiss have their own threads). The workers still
    run every BLAS call; they sleep instead of spinning between calls. A value the user set is kept."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's finalization: after ``lakeql index`` every index file
    is written, synced and renamed into place, its thread pools and DuckDB files are closed, and lakeql
    registers no exit handler; tearing down the ~500 modules and the objects of numpy, pyarrow, DuckDB
    and scipy costs 0.1-0.13 CPU s (~10% of a refresh after a 1% append). stdout and stderr are flushed
    first; if that fails, the interpreter exits as usual."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _one_line_warnings() -> None:
    """Show warnings (e.g. an unreadable Parquet file that was skipped) as one 'lakeql: warning:' line."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        print(f"lakeql: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


def format_error(exc: BaseException) -> str:
    """One line for an exception (see :func:`lakeql.errors.format_error`)."""
    from lakeql.errors import format_error as fmt

    return fmt(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
