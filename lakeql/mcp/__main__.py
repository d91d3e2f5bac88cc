"""``python -m lakeql.mcp --lake LAKE ...``: the same as ``lakeql mcp`` (for agents without the script)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from lakeql.mcp import add_commands

    parser = argparse.ArgumentParser(prog="python -m lakeql.mcp")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["mcp", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - one line for the user unless --debug
        from lakeql.errors import LakeqlError

        if args.debug or not isinstance(exc, LakeqlError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
