"""Where a freshly started ``lakeql mcp`` server spends its cold time, and how long each tool's FIRST call
takes as an agent sees it.

    python benchmarks/mcp_cold.py steps LAKE --index-dir DIR      # in-process: wall/CPU per warm-up step
    python benchmarks/mcp_cold.py first LAKE --index-dir DIR TOOL # spawn the server (official client,
                                                                  # stdio), call TOOL at once, time it

``steps`` runs the warm-up's steps one after another in one thread (imports, opening the lake, torch/faiss
set-up, schema_context, each semantic_search, each ngram_count, a joinable), printing wall and CPU seconds
and numba compile seconds of each, then each step again (hot). ``first`` prints the wall seconds from
spawning the server to the answer of the first TOOL call and the server's CPU seconds then (/proc).
The tools' table and column: LAKEQL_COLD_EMBED / LAKEQL_COLD_NGRAM='domain.table|column'.
"""

from __future__ import annotations

import os
import sys
import time


def _load() -> str:
    return os.popen("cut -d' ' -f1-3 /proc/loadavg").read().strip()


def steps(lake: str, index_dir: str | None) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    from numba.core import event

    compiled: list[float] = []

    class Rec(event.Listener):
        def on_start(self, ev):  # nested: a kernel compiles the kernels it calls
            self.t = [*getattr(self, "t", []), time.perf_counter()]

        def on_end(self, ev):
            started = self.t.pop()
            if not self.t:  # outermost only
                compiled.append(time.perf_counter() - started)

    event.register("numba:compile", Rec())
    from lakeql.mcp.service import LakeService, Limits, single_threaded_compute

    def show(name: str, t: float, c: float) -> None:
        jit = sum(compiled)
        compiled.clear()
        print(f"{name:60s} wall {time.perf_counter() - t:6.2f} s  cpu {time.process_time() - c:6.2f} s  "
              f"numba compile {jit:5.2f} s  load {_load()}", flush=True)

    show("import lakeql.mcp.service", t0, c0)
    t, c = time.perf_counter(), time.process_time()
    svc = LakeService(lake, index_dir, Limits(timeout=3600))  # a cold JIT compile takes minutes
    show("LakeService(): open + lock down", t, c)
    t, c = time.perf_counter(), time.process_time()
    single_threaded_compute()
    show("single_threaded_compute (torch, faiss import)", t, c)
    calls = [("schema_context", "SELECT count(*) FROM schema_context('warm up', k := 1)", [])]
    calls += [(f"semantic_search {tb}.{co}", "SELECT count(*) FROM semantic_search(?, ?, 'warm up', k := 1)",
               [tb, co]) for tb, co in svc.indexed("embed")]
    calls += [(f"ngram_count {tb}.{co}", "SELECT ngram_count(?, ?, 'a')", [tb, co]) for tb, co in
              svc.indexed("ngram")]
    calls += [(f"ngram_search {tb}.{co}", "SELECT count(*) FROM ngram_search(?, ?, 'the', k := 10)", [tb, co])
              for tb, co in svc.indexed("ngram")]
    first = svc._rows("SELECT table_name, column_name FROM lakeql_columns() LIMIT 1", [])[1][0]
    calls += [("joinable", "SELECT count(*) FROM joinable(?, ?, k := 1, mode := 'equi')", list(first))]
    for rnd in ("cold", "hot"):
        for name, sql, params in calls:
            t, c = time.perf_counter(), time.process_time()
            svc._rows(sql, params)
            show(f"{rnd} {name}", t, c)
    svc.close()


def _pair(var: str) -> tuple[str, str]:
    """(table, column) from the environment variable ``var`` ('domain.table|column')."""
    table, _, column = os.environ.get(var, "|").partition("|")
    return table, column


def _children_cpu() -> float:
    """user+sys CPU seconds of this process's live children (the spawned server), from /proc."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def first(lake: str, index_dir: str | None, tool: str, extra: list[str]) -> None:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    args = ["-m", "lakeql.mcp", "--lake", lake, *(["--index-dir", index_dir] if index_dir else []), *extra]
    env = dict(os.environ)
    # ``python -m`` puts the working directory first on sys.path: run the server in the tree PYTHONPATH
    # names, or a checkout in the current directory (another branch) is what gets measured
    tree = (os.environ.get("PYTHONPATH") or os.getcwd()).split(os.pathsep)[0]
    params = StdioServerParameters(command=sys.executable, env=env, args=args, cwd=tree)
    load = _load()

    async def run() -> None:
        t0 = time.perf_counter()
        async with Client(params, read_timeout_seconds=600) as client:
            t_init = time.perf_counter() - t0
            emb, ngr = _pair("LAKEQL_COLD_EMBED"), _pair("LAKEQL_COLD_NGRAM")
            kw = {
                "search_tables": {"question": "how many tweets mention fake news?", "k": 3},
                "ngram_search": {"table": ngr[0], "column": ngr[1], "phrase": "the", "k": 5},
                "ngram_count": {"table": ngr[0], "column": ngr[1], "phrase": "the"},
                "semantic_search": {"table": emb[0], "column": emb[1], "query": "a wall", "k": 5},
                "joinable": {"table": ngr[0], "column": ngr[1]},
                "list_domains": {},
                "find_tables": {"query": "tweets"},
            }[tool]
            t1 = time.perf_counter()
            r = await client.call_tool(tool, kw)
            t_call = time.perf_counter() - t1
            tries = 1
            while r.is_error and "warming up" in r.content[0].text and tries < 20:  # as an agent would
                await anyio.sleep(10)
                r = await client.call_tool(tool, kw)
                tries += 1
            t_ok = time.perf_counter() - t1
            total = time.perf_counter() - t0
            cpu = _children_cpu()
            text = r.content[0].text.replace("\n", " ")[:90]
            print(f"{tool:16s} first call {t_call:6.2f} s  answered after {tries} call(s) {t_ok:6.2f} s  "
                  f"(since spawn {total:6.2f} s; "
                  f"initialize {t_init:.2f} s)  server cpu {cpu:.2f} s  error={r.is_error}  "
                  f"load {load}  | {text}", flush=True)

    anyio.run(run)


if __name__ == "__main__":
    mode, lake = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    idx = None
    if "--index-dir" in rest:
        i = rest.index("--index-dir")
        idx = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    if mode == "steps":
        steps(lake, idx)
    else:
        first(lake, idx, rest[0], rest[1:])
