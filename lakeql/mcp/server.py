"""The MCP tools and resources of ``lakeql mcp``, declared on the official SDK (``mcp``, MCPServer).

Each tool is a thin wrapper over :class:`~lakeql.mcp.service.LakeService`; its docstring is the
description an agent reads and its annotated parameters are the JSON schema. Any failure becomes a tool
error result with a one-line reason (the server keeps serving). Resources: ``INDEX.md`` and every schema
file under ``lakeql://schemas/<path>``, listed in pages of :data:`RESOURCE_PAGE` (``resources/list`` with the
spec's opaque ``cursor`` / ``nextCursor``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import inspect
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

from lakeql.mcp.service import LakeService, Limits

log = logging.getLogger("lakeql.mcp")

INSTRUCTIONS = (
    "A read-only data lake of Parquet tables queried with DuckDB SQL. Start with list_domains or "
    "search_tables(question), open the suggested files with read_schema(path), write SQL against "
    "\"domain\".\"table\", check it with check_sql, then run it with query. A wide table's file comes in "
    "pages of columns: read_schema(path, offset=N) for the next, or columns='word' to pick columns by "
    "name. Only SELECT queries run; "
    "results are capped. find_tables finds tables by words, unionable tables of the same shape. "
    "semantic_search / ngram_search / ngram_count work on columns with those indexes; "
    "joinable finds join partners of a column."
)

RESOURCE_PAGE = 200  # schema files per resources/list answer: a 10,000-table lake was one 3.3 MB answer
_CURSOR = re.compile(r"lakeql-resources:1:([0-9]{1,9}):([0-9]{1,9})")  # version, offset, listing size
_BAD_CURSOR = ("invalid cursor for resources/list: pass the nextCursor of the previous page unchanged, "
               "or no cursor to start from the first page")

MIME = {".md": "text/markdown", ".yaml": "application/yaml", ".yml": "application/yaml",
        ".json": "application/json", ".toon": "text/plain"}
URI_PREFIX = "lakeql://schemas/"
# resources/read templates, most specific first (the SDK tries them in order); the last one takes the rest
TEMPLATES = [(".md", "text/markdown"), (".yaml", "application/yaml"), (".yml", "application/yaml"),
             (".json", "application/json"), ("", "text/plain")]


def _safe(fn: Callable[..., str]) -> Callable[..., str]:
    """Turn every exception of a tool into a ToolError with a readable one-line reason (control
    characters shown as ``\\xNN``)."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        for name, value in kwargs.items():  # JSON can carry a lone surrogate ("\ud800"); UTF-8 cannot
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise ToolError(f"argument {name!r} is not valid Unicode (a lone surrogate "
                                    f"U+{ord(value[exc.start]):04X} at character {exc.start}): send UTF-8 "
                                    "text") from None
        try:
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - an agent gets the reason; the server keeps serving
            from lakeql.render import escape_controls

            log.info("tool %s failed: %r", fn.__name__, exc)
            msg = escape_controls(str(exc).strip()) or type(exc).__name__  # NUL, ESC: as in table cells
            raise ToolError(msg) from None

    return wrapper


def build_server(service: LakeService, page_size: int = RESOURCE_PAGE):
    """An MCPServer with lakeql's tools and the schema files as resources (``page_size`` per
    resources/list page)."""
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    from lakeql import __version__

    server = MCPServer(name="lakeql", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)

    def tool(fn: Callable[..., str]) -> Callable[..., str]:
        # {max_rows}, {max_chars}, {timeout} in a docstring: this server's limits (an agent plans by them)
        limits = service.limits
        doc = (fn.__doc__ or "").replace("{max_rows}", f"{limits.max_rows:,}").replace(
            "{max_chars}", f"{limits.max_chars:,}").replace("{timeout}", f"{limits.timeout:g}")
        server.tool(annotations=read_only, structured_output=False,
                    description=inspect.cleandoc(doc) or None)(_safe(fn))
        return fn

    @tool
    def list_domains(
        offset: Annotated[int, Field(ge=0, description="first domain to list (0-based), for the next page "
                                                       "of a lake with many domains")] = 0,
    ) -> str:
        """List the lake's domains (groups of tables): table count, total rows, table names and the
        domain's schema file. Start here to see what data exists. A long list comes in pages: the note at
        the end names the call for the next one."""
        return service.list_domains(offset)

    @tool
    def search_tables(
        question: Annotated[str, Field(description="the question in plain words, e.g. 'which airline "
                                                   "flew the most flights?'")],
        k: Annotated[int, Field(ge=1, le=50, description="how many schema files to return")] = 3,
    ) -> str:
        """Find the schema files (one per table) most relevant to a question, best first, with scores.
        Read them with read_schema(path) before writing SQL."""
        return service.search_tables(question, k)

    @tool
    def read_schema(
        path: Annotated[str, Field(description="a path from search_tables or INDEX.md, relative to the "
                                               "schemas folder, e.g. 'INDEX.md' or 'flights/flights.yaml'")],
        offset: Annotated[int, Field(ge=0, description="table files: first column to show (0-based), "
                                                       "for the next page of a wide table; other files "
                                                       "(INDEX.md, _DOMAIN.md): first line (0-based)")] = 0,
        limit: Annotated[int | None, Field(ge=1, le=10_000, description=(
            "table files: how many columns to show; other files: how many lines (default: all that "
            "fit)"))] = None,
        columns: Annotated[str | None, Field(max_length=4_100, description=(
            "table files: only columns whose name contains this text, or matches a *glob*; several "
            "comma-separated, e.g. 'price,*_id'"))] = None,
    ) -> str:
        """Read one schema file: a table's columns with types, null shares, samples, keys and join hints
        (or INDEX.md / <domain>/_DOMAIN.md). Only files in the schemas folder can be read. A wide table
        comes in pages of columns, each valid in the file's format, with a note saying how many there are
        and the call for the next page (YAML/Markdown: the last '# lakeql:' line; JSON/TOON: the
        'lakeql_page' field);
        `columns` picks columns by name."""
        return service.read_schema(path, offset, limit, columns)

    @tool
    def check_sql(
        sql: Annotated[str, Field(description="the SQL to check (DuckDB dialect)")],
    ) -> str:
        """Check SQL before running it: syntax errors with line and column, statements that are not
        queries, direct file reads, unknown tables/columns with 'did you mean' suggestions, and type
        errors found by DuckDB's binder. Returns OK or one row per problem."""
        return service.check_sql(sql)

    @tool
    def query(
        sql: Annotated[str, Field(description="one read-only SELECT over \"domain\".\"table\" (DuckDB SQL); "
                                              "lakeql functions such as semantic_search(...) may be used")],
        max_rows: Annotated[int | None, Field(
            ge=1, le=10_000, description="most rows to return (default and cap: the server's limit, 1,000 "
                                         "unless set otherwise)")] = None,
    ) -> str:
        """Run one read-only SELECT query and return the rows as a Markdown table. Anything else
        (COPY, ATTACH, CREATE, SET, several statements, reading files directly) is refused. Results are
        capped at {max_rows} rows and {max_chars} characters (columns that do not fit are left out), and a
        query running longer than {timeout} s is interrupted; a cut result ends with a note saying how to
        get the next rows (LIMIT/OFFSET): aggregate or add LIMIT."""
        return service.query(sql, max_rows)

    @tool
    def joinable(
        table: Annotated[str, Field(description="'domain.table' (or a unique table name)")],
        column: Annotated[str, Field(description="the column to find join partners for")],
        k: Annotated[int, Field(ge=1, le=100, description="how many candidates")] = 5,
        mode: Annotated[Literal["equi", "auto", "semantic"], Field(
            description="'equi': exact value overlap (fast, the default); 'auto' / 'semantic': also values "
                        "that mean the same (slower: seconds)")] = "equi",
    ) -> str:
        """Find columns in other tables that this column joins with, best first, each with its score,
        containment and a ready JOIN statement."""
        return service.joinable(table, column, k, mode)

    @tool
    def semantic_search(
        table: Annotated[str, Field(description="'domain.table'")],
        column: Annotated[str, Field(description="a text column with an embed index")],
        query: Annotated[str, Field(description="what the rows should mean, in plain words")],
        k: Annotated[int, Field(ge=1, le=100, description="how many rows")] = 5,
        filter: Annotated[str | None, Field(  # noqa: A002 - the name of the SQL argument
            description="optional SQL condition over the table's own columns, applied first, e.g. "
                        "\"lines > 500\"")] = None,
    ) -> str:
        """Find the rows whose text column means the same as the query (embedding search), with scores.
        Works only on columns indexed with 'lakeql index --embed TABLE.COLUMN'; the error lists them."""
        return service.semantic_search(table, column, query, k, filter)

    @tool
    def find_tables(
        query: Annotated[str, Field(description="words describing the data you need")],
        k: Annotated[int, Field(ge=1, le=100, description="how many tables")] = 10,
    ) -> str:
        """Find tables by words: BM25 over table names, descriptions, column names and sample values
        (with `matched`: which fields matched). Complements search_tables, which returns schema files."""
        return service.find_tables(query, k)

    @tool
    def unionable(
        table: Annotated[str, Field(description="'domain.table'")],
        k: Annotated[int, Field(ge=1, le=100, description="how many candidate tables")] = 5,
    ) -> str:
        """Tables that hold more rows of the same kind as this one (same columns, possibly renamed), with
        a runnable UNION ALL BY NAME query that renames the columns."""
        return service.unionable(table, k)

    @tool
    def ngram_search(
        table: Annotated[str, Field(description="'domain.table'")],
        column: Annotated[str, Field(description="a text column with an ngram index")],
        phrase: Annotated[str, Field(description="the exact phrase to find (case-sensitive)")],
        k: Annotated[int, Field(ge=1, le=100, description="how many rows")] = 10,
    ) -> str:
        """Find rows whose text column contains an exact phrase (full-text index), with snippets.
        Works only on columns indexed with 'lakeql index --ngram TABLE.COLUMN'; the error lists them."""
        return service.ngram_search(table, column, phrase, k)

    @tool
    def ngram_count(
        table: Annotated[str, Field(description="'domain.table'")],
        column: Annotated[str, Field(description="a text column with an ngram index")],
        phrase: Annotated[str, Field(description="the exact phrase to count (case-sensitive)")],
    ) -> str:
        """Count how often an exact phrase occurs in a text column (all rows, exact). Works only on
        columns indexed with 'lakeql index --ngram TABLE.COLUMN'; the error lists them."""
        return service.ngram_count(table, column, phrase)

    listing = SchemaListing(service)
    _read_resources(server, service, listing)
    _paginate_resources(server, listing, page_size)
    return server


def encode_cursor(offset: int, total: int) -> str:
    """The opaque ``nextCursor`` of the page starting at ``offset`` of a listing of ``total`` resources."""
    return base64.urlsafe_b64encode(f"lakeql-resources:1:{offset}:{total}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, total: int) -> int:
    """The offset a cursor from :func:`encode_cursor` points at; anything else is an MCP invalid-params
    error (code -32602, as the spec asks) with the fix, never a traceback."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import INVALID_PARAMS

    match = None
    if isinstance(cursor, str) and 0 < len(cursor) <= 64 and cursor.isascii():
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        except (binascii.Error, ValueError):
            raw = ""
        match = _CURSOR.fullmatch(raw)
    if match is None:
        raise MCPError(code=INVALID_PARAMS, message=_BAD_CURSOR)
    offset, size = int(match.group(1)), int(match.group(2))
    if size != total:
        raise MCPError(code=INVALID_PARAMS, message="the cursor is from another listing of the resources "
                                                    "(the server restarted on a changed lake): list them "
                                                    "again without a cursor")
    if not 0 < offset < total:
        raise MCPError(code=INVALID_PARAMS, message=_BAD_CURSOR)
    return offset


class SchemaListing:
    """The schema files as MCP resources, listed on the first resources/list or resources/read (not at
    startup: registering a 9,763-table lake's files with the SDK one by one took 8.9 s before the server
    answered anything), then fixed for the life of the server."""

    def __init__(self, service: LakeService) -> None:
        self._service = service
        self._lock = threading.Lock()
        self._resources: list | None = None
        self._files: frozenset[str] = frozenset()

    def resources(self) -> list:
        """Every schema file as an MCP Resource (INDEX.md first), made once."""
        with self._lock:  # two first calls (a list and a read) make it once
            if self._resources is None:
                from mcp_types import Resource

                files = self._service.schema_files()
                self._resources = [
                    Resource(uri=URI_PREFIX + rel, name=rel, mime_type=mime_of(rel),
                             description=("The lake's schema overview: domains and how to navigate"
                                          if rel == "INDEX.md" else f"Schema file {rel}"))
                    for rel in files]
                self._files = frozenset(files)
            return self._resources

    def find(self, rel: str) -> str | None:
        """``rel`` when it is exactly one of the listed schema files, else None."""
        self.resources()
        return rel if rel in self._files else None


def mime_of(rel: str) -> str:
    """The MIME type of a schema file, by its extension."""
    return MIME.get(os.path.splitext(rel)[1].lower(), "text/plain")


def _read_resources(server, service: LakeService, listing: SchemaListing) -> None:
    """Serve resources/read of ``lakeql://schemas/<path>`` through resource templates (the SDK's public
    API): one per MIME type, so a read answers the MIME type its listing entry gives.

    The SDK rejects a path with ``..`` components, an absolute path or a NUL byte (also percent-encoded)
    and any URI of another scheme or over its length cap as "Unknown resource" (-32602); what is left
    is served only when it is exactly a file of the listing, read through :meth:`LakeService.read_schema`
    (which refuses anything resolving outside the schemas folder again)."""
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

    from lakeql.errors import LakeqlError

    def reader(ext: str) -> Callable[[str], str]:
        def read(path: str) -> str:
            rel = listing.find(path + ext)
            if rel is None:
                raise ResourceNotFoundError(
                    f"no schema file {URI_PREFIX}{path}{ext}: list them with resources/list or read "
                    f"{URI_PREFIX}INDEX.md")
            try:
                return service.read_schema(rel)
            except LakeqlError as exc:  # e.g. the file went away since the listing
                raise ResourceError(str(exc)) from None

        return read

    for ext, mime in TEMPLATES:
        server.resource(f"{URI_PREFIX}{{+path}}{ext}", name=f"schema file{ext and ' (' + ext + ')'}",
                        description="A schema file of the lake, by its path under the schemas folder "
                                    "(listed by resources/list; start with INDEX.md)",
                        mime_type=mime)(reader(ext))


def _lowlevel(server):
    """The SDK's low-level server behind ``server`` (a private attribute of MCPServer in mcp 2.3), or a
    clear error at startup when the installed SDK no longer has it."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if not (callable(getattr(lowlevel, "add_request_handler", None))
            and callable(getattr(lowlevel, "get_request_handler", None))
            and lowlevel.get_request_handler("resources/list") is not None):
        from importlib.metadata import version

        raise RuntimeError(
            f"lakeql cannot page resources/list with the installed mcp SDK {version('mcp')}: "
            "MCPServer._lowlevel_server.add_request_handler (mcp 2.3) is gone; install a supported "
            "SDK: pip install 'mcp>=2.3,<2.4'")
    return lowlevel


def _paginate_resources(server, listing: SchemaListing, page_size: int) -> None:
    """Answer resources/list in pages of ``page_size`` (the SDK's MCPServer lists everything at once)."""
    import anyio
    from mcp_types import ListResourcesResult, PaginatedRequestParams

    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    lowlevel = _lowlevel(server)

    async def list_resources(ctx, params: PaginatedRequestParams | None) -> ListResourcesResult:
        resources = await anyio.to_thread.run_sync(listing.resources)  # walks the schemas folder once
        total = len(resources)
        cursor = params.cursor if params is not None else None
        start = 0 if cursor is None else decode_cursor(cursor, total)
        end = start + page_size
        return ListResourcesResult(resources=resources[start:end],
                                   next_cursor=encode_cursor(end, total) if end < total else None)

    # MCPServer (mcp 2.3) has no public hook for this: its low-level server's handler is replaced
    lowlevel.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
    if lowlevel.get_request_handler("resources/list").handler is not list_resources:
        raise RuntimeError("lakeql could not install its resources/list handler on the installed mcp SDK: "
                           "install a supported SDK: pip install 'mcp>=2.3,<2.4'")


def _stop_now(service: LakeService, code: int) -> None:
    """A stop signal's exit once the service is open: interrupt the running queries, close the service
    (its temp folder goes) within ~2.5 s, then end the process. Leaving through the event loop
    (SystemExit) waited for its worker threads: a running query (up to --timeout) or the stdin reader
    (until the client's next line): no exit in 30 s on SIGTERM during a query or on SIGINT (trial12)."""
    import sys

    _ignore_signals()
    # in a thread: the handler may have interrupted the main thread while it held a lock close() takes
    closer = threading.Thread(target=service.close, kwargs={"wait": 1.5}, daemon=True)
    closer.start()
    closer.join(2.5)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


#: seconds ``serve()`` embedded in another program waits, after the server stopped, for a warm-up still
#: inside native code (its queries are interrupted; a model load or an encode runs to its end)
EMBEDDED_WARM_WAIT = 30.0


def serve(lake: str, index_dir: str | None = None, *, transport: str = "stdio", host: str = "127.0.0.1",
          port: int = 8000, limits: Limits | None = None, warm: bool = True, exit_process: bool = False
          ) -> None:
    """Open the lake read-only and serve it over ``transport`` ('stdio' or 'http') until stopped.

    Every way out removes the service's temp folder: stdin closed or the HTTP server stopped (``run``
    returns), SIGTERM / SIGHUP / SIGINT (handled from the start, so also while the lake opens), and an
    error while starting. A ``kill -9`` cannot be handled: the next server removes that folder
    (:mod:`lakeql.owned_temp`).

    ``exit_process``: the process is the server (``lakeql mcp``): when the warm-up is still inside native
    code at the stop, the process ends at once (``os._exit``; an interpreter exit under it aborts, and the
    client kills it 4 s later anyway). False (a program calling ``serve()``): ``serve`` returns (or
    raises) and the program goes on; the warm-up is waited for (up to :data:`EMBEDDED_WARM_WAIT` s, then
    a warning) and its connection closed when it ends."""

    live: list[LakeService] = []  # the service once open: a stop signal then ends at once (_stop_now)
    previous = _exit_on_signals(live)
    service: LakeService | None = None
    error: BaseException | None = None
    try:
        service = LakeService(lake, index_dir, limits)
        live.append(service)
        if warm:
            service.warm(background=True)
        server = build_server(service)
        if transport == "http":
            server.run("streamable-http", host=host, port=port)
        else:
            server.run("stdio")
    except BaseException as exc:
        error = exc
        raise
    finally:
        # the stdio client sends SIGTERM 2 s after closing stdin and SIGKILL 2 s later: stop within that
        _ignore_signals()
        stuck = False
        try:
            if service is not None:
                service.close(wait=1.5)
                if service.warm_running() and exit_process:
                    # the warm-up is inside native code (an encode in a UDF cannot be interrupted): a normal
                    # interpreter exit under it aborts ('terminate called ...'); the temp folder is gone
                    # already. A start that failed still says why and exits non-zero
                    os._exit(_exit_status(error))
                stuck = service.warm_running()
        finally:
            _restore_signals(previous)  # a host embedding serve() gets its own handlers back, always
        if stuck and service is not None:
            # a host program: never end it (leftovers7); wait, then close. With the host's own signal
            # handlers back (review33): a Ctrl-C or SIGTERM during the wait was ignored, then lost
            _close_after_warm_up(service, EMBEDDED_WARM_WAIT)


def _close_after_warm_up(service: LakeService, wait: float) -> None:
    """For ``serve()`` in a host program: wait up to ``wait`` s for the warm-up thread (its queries were
    interrupted by ``close``), then close the connection it held; if it is still running, say so and let a
    daemon thread close the connection when it ends (the host's process is never ended by lakeql)."""
    import warnings

    deadline = time.monotonic() + wait
    for thread in service._warm_threads():  # the warm-up and the loads calls started (review38)
        thread.join(max(0.0, deadline - time.monotonic()))
    if not service.warm_running():
        service.close(wait=0)  # the connection, now free (the temp folder went already)
        return
    warnings.warn(f"lakeql mcp: the server stopped but its warm-up is still inside native code after "
                  f"{wait:g} s; its connection is closed when it ends (ending this program before then "
                  "may abort it: pass warm=False to serve() to start without a warm-up)", RuntimeWarning,
                  stacklevel=3)

    def close_later() -> None:
        while threads := service._warm_threads():
            threads[0].join()
        service.close(wait=0)

    threading.Thread(target=close_later, name="lakeql-mcp-close", daemon=True).start()


def _exit_status(error: BaseException | None) -> int:
    """The exit status of a process leaving by ``os._exit`` after ``error`` (None: a normal stop), with
    the error written to stderr first, as the interpreter would have."""
    import sys
    import traceback

    status = 0
    if isinstance(error, SystemExit):
        code = error.code
        if isinstance(code, int) or code is None:
            status = code or 0
        else:
            print(code, file=sys.stderr)
            status = 1
    elif isinstance(error, KeyboardInterrupt):
        status = 130
    elif error is not None:
        traceback.print_exception(error)
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return status


#: the signals that stop a server: a client's SIGTERM, a closed terminal's SIGHUP, Ctrl-C's SIGINT
STOP_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")


def _exit_on_signals(live: list[LakeService] | None = None) -> dict[int, object]:
    """Make the stop signals raise SystemExit in the main thread (so ``finally`` blocks run) while the
    lake opens, and end the process at once (:func:`_stop_now`) once ``live`` holds the open service;
    returns the handlers they had. Outside the main thread (a server embedded in another program)
    nothing changes."""
    import signal
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, object] = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:  # no SIGHUP on Windows
            continue
        previous[sig] = signal.getsignal(sig)
        # "stopped as asked": exit status 0
        signal.signal(sig, lambda *_: _stop_now(live[0], 0) if live else sys.exit(0))
    return previous


def _ignore_signals() -> None:
    """Ignore further stop signals while the server closes (a second one would cut the cleanup short)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)


def _restore_signals(previous: dict[int, object]) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
