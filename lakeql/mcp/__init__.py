"""``lakeql mcp``: the lake as a Model Context Protocol server for LLM agents.

Only :func:`add_commands` lives here, so ``lakeql --help`` stays fast: the MCP SDK, DuckDB and the
embedding model load when the command runs. :mod:`.service` does the work on one locked-down DuckDB
connection; :mod:`.server` declares the tools and resources on the official ``mcp`` SDK.
"""

from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    """Add ``lakeql mcp`` to the CLI's subparsers."""
    p = sub.add_parser("mcp", help="serve the lake to LLM agents over the Model Context Protocol "
                                   "(read-only, contained)")
    p.add_argument("--lake", required=True, help="folder of Parquet files")
    p.add_argument("--index-dir", help="index dir (default: LAKE/.lakeql)")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (the agent starts the server) or http (streamable HTTP; default stdio)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on with --transport http "
                                                       "(default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port for --transport http (default 8000)")
    p.add_argument("--max-rows", type=int, default=1000, metavar="N",
                   help="most rows a query returns (default 1000)")
    p.add_argument("--max-chars", type=int, default=50_000, metavar="N",
                   help="most characters of a tool result (default 50000)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="a query running longer is interrupted (default 30)")
    p.add_argument("--memory-limit", metavar="SIZE",
                   help="DuckDB memory limit of the server's connection, e.g. 4GB, at least 64MB "
                        "(default: DuckDB's, 80%% of RAM): an agent's query past it fails with a tool error")
    p.add_argument("--no-warm", action="store_true", help="do not load the embedding model at start")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    """Open the lake read-only and serve it until the client disconnects (stdio) or the process stops."""
    from lakeql.mcp.server import serve
    from lakeql.mcp.service import Limits

    limits = Limits(max_rows=args.max_rows, max_chars=args.max_chars, timeout=args.timeout,
                    memory_limit=args.memory_limit)
    if args.transport == "http" and not 0 <= args.port <= 65535:
        from lakeql.errors import LakeqlError

        raise LakeqlError(f"--port must be from 0 to 65535, got {args.port}")
    serve(args.lake, args.index_dir, transport=args.transport, host=args.host, port=args.port,
          limits=limits, warm=not args.no_warm, exit_process=True)
    return 0
