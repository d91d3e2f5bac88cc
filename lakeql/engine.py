"""Where a build's per-item work runs: :class:`LocalEngine` (this machine) or :class:`RayEngine` (Ray).

Builders hand their per-table / per-shard / per-batch loops to ``ctx.engine.map(fn, items)``; the
engine only decides where ``fn`` runs. The driver (the ``lakeql index`` process) keeps every store
write: ``fn`` is a top-level, picklable function of plain arguments (paths, option dataclasses, table
descriptions) that returns plain results (Arrow tables, numpy arrays, small dicts); the builder merges
them and commits the manifest atomically as before, so both engines write the same index.

* ``LocalEngine`` (the default, no Ray import): a thread pool (``pool="thread"``, for work that releases
  the GIL such as DuckDB scans), a process pool (``pool="process"``, spawned workers that exit with
  their parent: see :func:`worker_init`) or a plain loop (``pool="serial"``).
* ``RayEngine``: Ray tasks (retried when a worker dies) or, with ``setup``, a pool of Ray actors that
  each run ``setup()`` once (e.g. load an encoder once per actor) and then ``fn(state, item)``. With no
  address, a local Ray is started with this machine's CPUs; with an address that does not answer, a
  :class:`~lakeql.errors.LakeqlError` before anything is written.

Why workers must die with their parent: a ``kill -9`` of ``lakeql index`` used to leave n-gram shard
workers alive (about 180 MB each) for as long as their shard took; see :func:`worker_init`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from lakeql.errors import LakeqlError

ENGINES = ("local", "ray")
POOLS = ("thread", "process", "serial")
CONNECT_TIMEOUT = 5.0  # seconds to wait for a Ray address to answer
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 1.0  # how often the fallback watchdog checks that the parent is alive
RAY_RETRIES = 3  # Ray re-runs a task whose worker process died this many times


class WorkerDied(LakeqlError):
    """A worker process died mid-build (killed, out of memory): nothing of this build was committed."""


# ------------------------------------------------------------------------------ worker lifetime
def worker_init(parent: int | None = None) -> None:
    """Make this worker process exit when its parent dies (the local process pool's initializer).

    On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment its parent
    dies, even by ``kill -9``. Everywhere, a daemon watchdog thread checks ``os.getppid()`` every
    :data:`WATCH_SECONDS` and exits when the worker was re-parented. Ctrl-C is left to the parent (the
    worker ignores SIGINT, the parent stops its pool), so a terminal shows one message, not one
    traceback per worker.
    """
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog still works
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # pragma: no cover - not the main thread (Ray runs us in its own way)
        pass
    threading.Thread(target=_watch_parent, args=(parent,), name="lakeql-parent-watchdog",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def _process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, start time)}`` of every live process (Linux /proc; empty elsewhere)."""
    table: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for name in entries:
        if name.isdigit() and (fields := _stat_fields(int(name))) and fields[0] != "Z":
            table[int(name)] = (int(fields[1]), int(fields[19]))
    return table


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, parent pid, ..., start time at
    index 19), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _below(table: dict[int, tuple[int, int]], roots: Sequence[int]) -> dict[int, int]:
    """``{pid: start time}`` of every process of ``table`` below any of ``roots`` (roots excluded)."""
    children: dict[int, list[int]] = {}
    for child, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(child)
    out: dict[int, int] = {}
    frontier = list(roots)
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in out:
                out[child] = table[child][1]
                frontier.append(child)
    return out


def descendants(pid: int) -> dict[int, int]:
    """``{pid: start time}`` of every live descendant of ``pid`` (Linux /proc; empty elsewhere)."""
    return _below(_process_table(), [pid])


def _is_ray(pid: int) -> bool:
    """Whether a process is one of Ray's (raylet, gcs_server, its agents and ``ray::`` workers)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return cmd.startswith(b"ray::") or b"/ray/" in cmd


def _started_at(pid: int) -> int | None:
    """A process's start time (clock ticks after boot), or None once gone: with the pid, its identity."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


REAPER_READY = b"r"  # what the watcher writes once it has noted the caller's own children
REAPER_START_TIMEOUT = 60.0  # seconds to wait for that (an import under heavy load)


def start_reaper():
    """A watcher process that SIGKILLs this process's Ray descendants once this process exits, even by
    ``kill -9`` (Linux): started before a local Ray, whose agent processes otherwise outlive us. Returns
    once the watcher has noted this process's existing children (those it must never touch): otherwise a
    slow start under load could count Ray's first processes as ours and leave them alive."""
    import select
    import subprocess

    if not sys.platform.startswith("linux"):
        return None
    proc = subprocess.Popen([sys.executable, "-c", "from lakeql.engine import reap; reap()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own session: a Ctrl-C does not stop it first
    ready, _, _ = select.select([proc.stdout], [], [], REAPER_START_TIMEOUT)
    if not ready or proc.stdout.read(1) != REAPER_READY:  # it failed: go on without it, as off Linux
        proc.kill()
        proc.wait()
        return None
    return proc


def reap(interval: float = 0.5) -> None:
    """The watcher's body: note the parent's new Ray descendants every ``interval`` s until stdin closes
    (the parent exited or closed it), then stop and kill them and everything below them."""
    import select

    parent, me = os.getppid(), os.getpid()
    before = set(descendants(parent))  # the caller's own children are never touched
    try:
        os.write(sys.stdout.fileno(), REAPER_READY)
    except OSError:
        return
    seen: dict[int, int] = {}
    while os.getppid() == parent:
        seen.update({p: t for p, t in descendants(parent).items() if p != me and p not in before
                     and p not in seen and _is_ray(p)})
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    _kill_trees(seen, me)


def _kill_trees(roots: dict[int, int], me: int) -> None:
    """SIGKILL the processes ``roots`` (pid -> start time, checked so a reused pid is spared) and all their
    descendants. Each is stopped (SIGSTOP) first and the tree read again until no new process appears:
    a raylet killed while it starts a worker would otherwise leave that worker behind, reparented out of
    sight (a kill -9 of a Ray build in CI once left one)."""
    stopped: dict[int, int] = {}
    todo = dict(roots)
    for _ in range(100):  # a bound: each round stops a whole generation, a tree is never this deep
        if not todo:
            break
        for pid, start in todo.items():
            if pid != me and _started_at(pid) == start:
                try:
                    os.kill(pid, signal.SIGSTOP)
                    stopped[pid] = start
                except OSError:
                    pass
        todo = {p: t for p, t in _below(_process_table(), list(stopped)).items() if p not in stopped}
    for pid, start in stopped.items():
        if _started_at(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# ------------------------------------------------------------------------------ the engines
class Engine:
    """The interface builders use: ``map`` runs ``fn`` over ``items`` and returns results in order."""

    name = "engine"

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *, desc: str = "",
            resources: dict[str, float] | None = None, pool: str = "thread", workers: int | None = None,
            setup: Callable[[], Any] | None = None, return_exceptions: bool = False,
            unit: str = "item", on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``[fn(item) for item in items]`` (``fn(state, item)`` with ``state = setup()`` per worker).

        ``resources``: what one call needs (``{"cpu": 1, "gpu": 0, "memory_mb": ...}``; Ray schedules
        by it, the local engine ignores it). ``pool``/``workers``: how the local engine runs the items
        (Ray uses its cluster). ``return_exceptions``: an exception raised by ``fn`` is returned in its
        item's place instead of stopping the map (one unreadable table must not stop a build); a dead
        worker is never returned, it raises :class:`WorkerDied` (the Ray engine retries it first).
        ``on_result(i, result)``: called in the driver as each item completes (in completion order), and
        the results are not kept (the list holds None): the driver writes each result as it arrives
        instead of holding a lake's worth in memory. ``desc``: a progress bar (none when empty).
        """
        raise NotImplementedError

    @property
    def parallelism(self) -> int:
        """How many items run at once at most."""
        return 1

    def close(self) -> None:
        """Release what the engine started (pools, a local Ray)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEngine(Engine):
    """Today's behaviour: threads, spawned processes or a plain loop on this machine."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    @property
    def parallelism(self) -> int:
        return self.workers

    def map(self, fn, items, *, desc="", resources=None, pool="thread", workers=None, setup=None,
            return_exceptions=False, unit="item", on_result=None):
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        items = list(items)
        n = max(1, min(workers or self.workers, len(items)))
        sink = _Sink(len(items), desc, unit, on_result)
        try:
            if setup is not None or pool == "serial" or n == 1 or len(items) <= 1:
                return _serial(fn, items, setup, return_exceptions, sink)
            if pool == "thread":
                return _threads(fn, items, n, return_exceptions, sink)
            return _processes(fn, items, n, return_exceptions, sink)
        finally:
            sink.close()


class _Sink:
    """Where results go: the output list (or ``on_result``), and the progress bar."""

    def __init__(self, n: int, desc: str, unit: str, on_result: Callable[[int, Any], None] | None) -> None:
        from lakeql.progress import bar

        self.out: list[Any] = [None] * n
        self.on_result = on_result
        self.pb = bar(n, desc=desc, unit=unit) if desc else None

    def put(self, i: int, value: Any) -> None:
        if self.on_result is not None:
            self.on_result(i, value)
        else:
            self.out[i] = value
        if self.pb is not None:
            self.pb.update(1)

    def close(self) -> None:
        if self.pb is not None:
            self.pb.close()


def _serial(fn, items, setup, return_exceptions, sink: _Sink) -> list[Any]:
    state = setup() if setup is not None else None
    for i, item in enumerate(items):
        try:
            value = fn(state, item) if setup is not None else fn(item)
        except Exception as exc:
            if not return_exceptions:
                raise
            value = exc
        sink.put(i, value)
    return sink.out


def _collect(futures: dict, return_exceptions: bool, sink: _Sink, broken: tuple[type, ...] = ()
             ) -> list[Any]:
    from concurrent.futures import as_completed

    for fut in as_completed(futures):
        i = futures[fut]
        try:
            value = fut.result()
        except broken as exc:
            raise WorkerDied(f"a build worker process died ({exc}); nothing of this build was "
                             "committed: run lakeql index again (with fewer --ngram-jobs if memory is "
                             "short)") from exc
        except Exception as exc:
            if not return_exceptions:
                raise
            value = exc
        sink.put(i, value)
    return sink.out


def _threads(fn, items, n, return_exceptions, sink: _Sink) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n) as ex:
        futures = {ex.submit(fn, item): i for i, item in enumerate(items)}
        return _collect(futures, return_exceptions, sink)


def _processes(fn, items, n, return_exceptions, sink: _Sink) -> list[Any]:
    """Spawned workers that die with this process (:func:`worker_init`); Ctrl-C stops them at once."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ex = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"), initializer=worker_init,
                             initargs=(os.getpid(),))
    try:
        futures = {ex.submit(fn, item): i for i, item in enumerate(items)}
        out = _collect(futures, return_exceptions, sink, (BrokenProcessPool,))
    except BaseException:  # Ctrl-C, a dead worker, an error: stop every worker now, not after its item
        for p in list((getattr(ex, "_processes", None) or {}).values()):
            if p.is_alive():
                p.kill()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return out


class RayEngine(Engine):
    """Ray tasks (or an actor pool, with ``setup``) on a local Ray or a cluster at ``address``."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        self._started = False
        self._reaper = None
        ray = _import_ray()
        if address:
            check_address(address, connect_timeout)
        if ray.is_initialized():  # e.g. a test or a notebook started Ray: use it, leave it running
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": "ERROR", "configure_logging": True}
        if not address:  # Ray's helper processes (agents) outlive a kill -9 of ours by a minute or more
            self._reaper = start_reaper()
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises many types (ConnectionError, RuntimeError...)
            self.close()
            where = f"at {address}" if address else "locally"
            raise LakeqlError(f"cannot start or reach Ray {where}: {type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0][:200]}; check --ray-address "
                              "(ray://HOST:10001 or HOST:6379) or run without --engine ray") from exc
        self._started = True

    @property
    def parallelism(self) -> int:
        ray = _import_ray()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    @property
    def gpus(self) -> int:
        """GPUs in the Ray cluster (embedding actors ask for one each when the device is not cpu)."""
        return int(_import_ray().cluster_resources().get("GPU", 0))

    def close(self) -> None:
        if self._started:
            _import_ray().shutdown()
            self._started = False
        if self._reaper is not None:  # EOF: it kills what Ray's shutdown left, then exits
            self._reaper.stdin.close()
            self._reaper.wait(timeout=30)
            self._reaper.stdout.close()
            self._reaper = None

    def map(self, fn, items, *, desc="", resources=None, pool="thread", workers=None, setup=None,
            return_exceptions=False, unit="item", on_result=None):
        items = list(items)
        if not items:
            return []
        opts = _ray_options(resources)
        sink = _Sink(len(items), desc, unit, on_result)
        try:
            if setup is not None:
                return self._actors(fn, items, setup, opts, workers, return_exceptions, sink)
            return self._tasks(fn, items, opts, return_exceptions, sink)
        finally:
            sink.close()

    def _tasks(self, fn, items, opts, return_exceptions, sink: _Sink) -> list[Any]:
        """One Ray task per item, at most a few per CPU in flight (bounded object-store use)."""
        ray = _import_ray()
        remote = ray.remote(_call_task).options(max_retries=RAY_RETRIES, **opts)
        fn_ref = ray.put(fn)
        window = 4 * self.parallelism
        pending: dict[Any, int] = {}
        nxt = 0
        try:
            while nxt < len(items) or pending:
                while nxt < len(items) and len(pending) < window:
                    pending[remote.remote(fn_ref, items[nxt])] = nxt
                    nxt += 1
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    sink.put(i, _ray_result(ray, ref, return_exceptions))
        except BaseException:  # an error or Ctrl-C: stop the tasks still running
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return sink.out

    def _actors(self, fn, items, setup, opts, workers, return_exceptions, sink: _Sink) -> list[Any]:
        """A pool of actors, each running ``setup()`` once (a model loaded once per actor)."""
        ray = _import_ray()
        from ray.util import ActorPool

        n = max(1, min(workers or self.parallelism, len(items)))
        actor_cls = ray.remote(_StatefulWorker).options(max_restarts=1, max_task_retries=RAY_RETRIES,
                                                         **opts)
        actors = [actor_cls.remote(setup) for _ in range(n)]
        try:
            fn_ref = ray.put(fn)
            apool = ActorPool(actors)
            for i, item in enumerate(items):
                apool.submit(lambda a, v, i=i: a.run.remote(fn_ref, v, i), item)
            while apool.has_next():
                try:
                    i, value = apool.get_next_unordered()
                except Exception as exc:  # noqa: BLE001 - classified below
                    raise _ray_error(ray, exc) from exc
                if isinstance(value, _Raised):
                    if not return_exceptions:
                        raise value.exc
                    value = value.exc
                sink.put(i, value)
            return sink.out
        finally:
            for a in actors:
                ray.kill(a)


class _Raised:
    """An exception raised by ``fn`` inside an actor, carried back as a value (not an actor failure)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _StatefulWorker:
    """A Ray actor: ``setup()`` once, then ``fn(state, item)`` per call."""

    def __init__(self, setup: Callable[[], Any]) -> None:
        self.state = setup()

    def run(self, fn: Callable[[Any, Any], Any], item: Any, i: int) -> tuple[int, Any]:
        try:
            return i, fn(self.state, item)
        except Exception as exc:  # noqa: BLE001 - returned to the driver, which decides
            return i, _Raised(exc)


def _call_task(fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of every Ray task (top level, so Ray pickles it by reference)."""
    return fn(item)


def _ray_options(resources: dict[str, float] | None) -> dict[str, Any]:
    r = resources or {}
    out: dict[str, Any] = {"num_cpus": float(r.get("cpu", 1))}
    if r.get("gpu"):
        out["num_gpus"] = float(r["gpu"])
    if r.get("memory_mb"):
        out["memory"] = int(r["memory_mb"] * 1024 * 1024)
    return out


def _ray_result(ray, ref, return_exceptions: bool) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # fn raised: the original exception type
        cause = exc.as_instanceof_cause()
        if return_exceptions:
            return cause
        raise cause from None
    except Exception as exc:  # noqa: BLE001 - worker/node death after the retries, object loss
        raise _ray_error(ray, exc) from exc


def _ray_error(ray, exc: BaseException) -> BaseException:
    if isinstance(exc, ray.exceptions.RayTaskError):
        return exc.as_instanceof_cause()
    return WorkerDied(f"a Ray worker died and its retries failed ({type(exc).__name__}); nothing of this "
                      "build was committed: check the cluster's memory and run lakeql index again")


# ------------------------------------------------------------------------------ construction
def _import_ray():
    try:
        import ray
    except ImportError:
        raise LakeqlError("--engine ray needs Ray: pip install 'lakeql[ray]' (or run without "
                          "--engine ray)") from None
    return ray


def address_host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address (``ray://host:10001``, ``host:6379``), None for ``auto``/local."""
    a = address.strip()
    if a in ("auto", "local", ""):
        return None
    for prefix in ("ray://", "http://", "https://"):
        if a.startswith(prefix):
            a = a[len(prefix):]
    a = a.split("/", 1)[0]
    host, sep, port = a.rpartition(":")
    if not sep or not port.isdigit():
        raise LakeqlError(f"--ray-address {address!r} is not HOST:PORT: use ray://HOST:10001 (Ray client) "
                          "or HOST:6379 (a node of the cluster)")
    return host.strip("[]"), int(port)


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast (within ``timeout`` s, before anything is written) when a Ray address does not answer."""
    import socket

    hp = address_host_port(address)
    if hp is None:
        return
    try:
        sock = socket.create_connection(hp, timeout=timeout)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise LakeqlError(f"no Ray cluster answers at {address} ({reason} within {timeout:.0f} s): start "
                          "one with 'ray start --head' or fix --ray-address") from None
    # Ray's GCS and client servers speak gRPC (HTTP/2): a server answers the client preface with its
    # SETTINGS frame at once. A port that accepts but stays silent made ray.init() retry for many minutes.
    try:
        with sock:
            sock.sendall(_H2_PREFACE)
            reply = b""
            while len(reply) < 9:
                got = sock.recv(9 - len(reply))
                if not got:
                    break
                reply += got
    except OSError:
        reply = b""
    if len(reply) < 9 or reply[3] != 0x04:  # frame type 4: SETTINGS
        heard = "nothing" if not reply else "something else"
        raise LakeqlError(f"{address} accepts connections but is not a Ray cluster (it answered {heard} to "
                          f"a gRPC hello within {timeout:.0f} s): pass the GCS address (HOST:6379) or the "
                          "Ray client address (ray://HOST:10001) as --ray-address")


#: an HTTP/2 client connection preface and an empty SETTINGS frame (what every gRPC client sends first)
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def make_engine(engine: str | Engine | None = "local", ray_address: str | None = None) -> Engine:
    """The engine named by the core options (``engine``, ``ray_address``); an Engine passes through."""
    if isinstance(engine, Engine):
        return engine
    name = engine or "local"
    if name == "local":
        if ray_address:
            raise LakeqlError("--ray-address needs --engine ray")
        return LocalEngine()
    if name == "ray":
        return RayEngine(ray_address)
    raise LakeqlError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")
