"""CLI commands of the context capability: ``lakeql schemas`` and ``lakeql check``."""

from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    p = sub.add_parser("schemas", help="write the lake's schema as files for agents (INDEX.md, one folder "
                                       "per domain, one file per table)")
    p.add_argument("lake", help="folder of Parquet files")
    p.add_argument("--out", required=True, help="folder to write the schema files into")
    p.add_argument("--format", default="yaml", choices=["yaml", "md", "json", "toon"],
                   help="format of the table files (default yaml)")
    p.add_argument("--index-dir", help="index dir whose catalog and join graph to reuse "
                                       "(default: LAKE/.lakeql when it exists)")
    p.add_argument("--domain-size", type=int, default=250, metavar="N",
                   help="split flat lakes (and bigger domains) into domains of at most N tables")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or status lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("check", help="check SQL against the lake's tables and columns (exit 1 on errors)")
    p.add_argument("words", nargs="+", metavar="[LAKE] SQL",
                   help="the lake folder (or use --lake) and the SQL text ('-' reads it from stdin)")
    p.add_argument("--lake", help="folder of Parquet files")
    p.add_argument("--index-dir", help="index dir (default: LAKE/.lakeql)")
    p.add_argument("--search-path", help="schema (domain) that bare table names resolve in (default main)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing, just set the exit code")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.set_defaults(func=cmd_check)


def _catalog(lake_path: str, index_dir: str | None):
    from lakeql.catalog import Catalog
    from lakeql.lake import discover
    from lakeql.store import Store

    lake = discover(lake_path)
    store = Store.for_lake(lake, index_dir)
    use_store = store if store.root.exists() else None
    return lake, use_store, Catalog.open(lake, use_store)


def cmd_schemas(args: argparse.Namespace) -> int:
    from lakeql.context.generate import generate
    from lakeql.errors import LakeqlError
    from lakeql.progress import say

    if args.domain_size < 2:
        raise LakeqlError(f"--domain-size must be at least 2, got {args.domain_size}")
    if args.out is not None and not str(args.out).strip():  # Path('') is the current directory
        raise LakeqlError("--out is empty (''): pass the folder to write the schema files into")
    lake, store, catalog = _catalog(args.lake, args.index_dir)
    res = generate(lake, catalog, args.out, args.format, store=store, cap=args.domain_size)
    say(f"{res.tables} tables in {res.domains} domains -> {res.out}: {res.written} files written, "
        f"{res.unchanged} unchanged, {res.removed} removed ({res.seconds:.1f} s: {res.stage_line()})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from lakeql.cliargs import lake_and_query, sql_text
    from lakeql.context.check import SchemaInfo, check
    from lakeql.errors import LakeqlError

    lake, sql = lake_and_query(args, "check")
    if not lake:
        raise LakeqlError("lakeql check needs the lake: lakeql check LAKE \"SQL\" (or --lake LAKE)")
    sql = sql_text(sql)
    _, _, catalog = _catalog(lake, args.index_dir)
    import lakeql

    con = lakeql.connect(lake, index_dir=args.index_dir)  # DuckDB's parser and binder check too
    problems = check(sql, SchemaInfo.from_catalog(catalog), args.search_path, con=con)
    if not args.quiet:
        for p in problems:
            where = f"{p.line}:{p.col}: " if p.line is not None else ""
            print(f"{p.severity}: {where}{p.message}")
        if not problems:
            print("ok: no problems found")
    return 1 if any(p.severity == "error" for p in problems) else 0
