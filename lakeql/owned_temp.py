"""Temp folders in the system temp directory that name their owning process, and their cleanup.

A long-lived process (the MCP server) needs a private folder in ``$TMPDIR`` (DuckDB's spill folder).
Removing it on every way out is done by its owner (``close()``, a finalizer, signal handlers), but a
``kill -9``, an OOM kill or a power loss skips all of them: before this module, ``/tmp`` collected one
``lakeql-mcp-*`` folder per such server. So each folder records its owner: ``PREFIX<pid>-<random>`` with
an ``owner`` file holding ``<pid> <start time> <where>`` (the start time from ``/proc``, so a reused pid is
not mistaken for the owner; ``where``: a digest of the host name, boot id and pid namespace, since a pid
means nothing in another container or on another machine sharing the folder), and the next process that
makes one removes the folders of dead owners (:func:`remove_stale`).

Never removed: a folder of a live owner, a folder owned by another user (``/tmp`` is shared), a symlink,
a folder made in another pid namespace, boot or host, and a folder without a readable ``owner`` file
(made by an older lakeql, whose server may be alive).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

OWNER_FILE = "owner"


def where() -> str:
    """A short digest of this host, boot and pid namespace: the scope in which a recorded pid means this
    process (another container sharing ``/tmp`` has its own pids)."""
    import hashlib
    import socket

    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as f:
                parts.append(f.read().strip())
        except OSError:
            parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    return hashlib.sha1("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None where unknown."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def owner_alive(pid: int, start: int | None) -> bool:
    """Whether process ``pid`` (started at ``start``, when known) still runs; a zombie counts as dead."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # another user's process holds the pid now, or ours is refused signal 0 (SELinux or AppArmor
        # signal rules, a user namespace): /proc's start time tells which; without it, a reuse
        now = process_start(pid)
        return now is not None and start is not None and now == start and not _zombie(pid)
    except OSError:
        return True  # cannot tell: keep the folder
    now = process_start(pid)
    if now is None:  # no /proc (macOS): the pid exists, trust it
        return not _zombie(pid)
    if start is not None and now != start:
        return False  # the pid was reused by a later process
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] == b"Z"


def make_owned_temp(prefix: str) -> Path:
    """A new private folder ``$TMPDIR/<prefix><pid>-<random>`` (mode 0700) with its ``owner`` file.

    Stale folders of the same prefix are removed first (:func:`remove_stale`)."""
    remove_stale(prefix)
    pid = os.getpid()
    start = process_start(pid)
    record = f"{pid} {'-' if start is None else start} {where()}\n"  # made first: the folder goes unowned
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}-"))  # (so kept) only for one write
    try:
        (path / OWNER_FILE).write_text(record)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def remove_owned(path: str | os.PathLike[str], pid: int) -> None:
    """Remove ``path`` if this process is ``pid``, the one that made it. A finalizer (``weakref.finalize``)
    and ``close()`` run in a forked child too (a gunicorn or celery prefork worker, a plain ``os.fork``)
    when it collects its copy of the owner or exits normally: the folder is its live parent's, not its
    own."""
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


_OWNER_RE = re.compile(r"\A(\d{1,10}) (\d{1,20}|-) ([0-9a-f]{16})\n?\Z")


def read_owner(path: Path) -> tuple[int, int | None, str] | None:
    """``(pid, start, where)`` of an owned folder, or None when its ``owner`` file is missing or
    malformed."""
    try:
        fd = os.open(path / OWNER_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        text = os.read(fd, 64).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    m = _OWNER_RE.match(text)
    if m is None:
        return None
    return int(m.group(1)), (None if m.group(2) == "-" else int(m.group(2))), m.group(3)


def remove_stale(prefix: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove ``<root>/<prefix><pid>-*`` folders (root: the system temp directory) of this user whose
    owning process is dead; returns them. Errors are ignored (another process may remove one too)."""
    base = Path(root if root is not None else tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else None
    name_re = re.compile(re.escape(prefix) + r"(\d{1,10})-[^/]*\Z")
    removed: list[Path] = []
    here = where()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        m = name_re.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or (uid is not None and st.st_uid != uid):
            continue
        owner = read_owner(Path(entry.path))
        if owner is None or owner[0] != int(m.group(1)) or owner[2] != here:
            continue  # not an owner record of this host, boot and pid namespace: cannot tell
        if owner_alive(owner[0], owner[1]):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed
