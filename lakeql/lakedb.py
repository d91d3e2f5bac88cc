"""``lake.duckdb`` updated in place by ``lakeql index --refresh``: only the views that changed.

``lake.duckdb`` holds a schema per domain, a view per table (and the rowid views the stock CLI's search
macros need) and lakeql's pure-SQL macros. At 10,000 tables writing it anew costs 7-9 CPU s (each
``CREATE VIEW`` binds its query, opening the table's Parquet footers); a refresh that changed one table
instead copies the file's catalog into a new file (``COPY FROM DATABASE``: no view is bound again),
applies the difference (``DROP`` what is gone, ``CREATE OR REPLACE`` what is new or changed) on the
copy, checkpoints it and renames it into place (:meth:`lakeql.store.Store.atomic_file`): a build killed
at any point leaves the previous file, which the manifest vouches for.

The statements the file was made from are kept beside it (:data:`SIDECAR`, zlib-compressed JSON of
``[drop, create]`` pairs and the macros); the manifest row of ``lake.duckdb`` records the SHA-1 of that
file, so a record the manifest does not vouch for (another build's, a damaged one) is never used: the
file is then written whole, as is any change touching more than :data:`MAX_SHARE` of the statements, a
change of the macros or storage version, or a previous file that left a view out. The views are those
a full write makes (the same statements).

Size: a byte copy updated in place grows (a checkpoint writes the whole catalog before it frees the old
one: the first update of a file doubles it, later ones reuse the freed blocks). Copying the catalog into
a new file instead (:func:`copy_catalog`) keeps a full write's size but costs ~1.1 CPU s at 10,000 views
where the update in place costs ~0.4 (benchmarks/results/refresh10k3.md). So the update is made in place
while the file is at most :data:`GROW_MAX` times the size of the last file written whole or compacted
(``compact_bytes`` in the manifest row, :func:`in_place_ok`), and compacted (a new file, the catalog
copied) when it is larger: the file stays under ``GROW_MAX`` times a full write's size plus one update.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import zlib
from pathlib import Path
from typing import Any

from lakeql.dbutil import OUT, database_file, inflate, new_database_file

SIDECAR = ".lake.duckdb.sql.z"
#: the name the previous file is attached as while its catalog is copied (a '/': no schema's name, as
#: :data:`lakeql.dbutil.OUT`)
PREV = '"lakeql/prev"'
#: above this share of changed statements the file is written whole
MAX_SHARE = 0.25
#: a file at most this many times the size it had when last written whole (or compacted) is updated in
#: place; a larger one is compacted (above 2: an update in place of a fresh file doubles it)
GROW_MAX = 2.5


def in_place_ok(target: Path, compact_bytes: object) -> bool:
    """True when ``target`` may be updated in place: ``compact_bytes`` (the size recorded when it was last
    written whole or compacted) is known and the file is at most :data:`GROW_MAX` times that."""
    if not isinstance(compact_bytes, int) or isinstance(compact_bytes, bool) or compact_bytes <= 0:
        return False
    try:
        return target.stat().st_size <= GROW_MAX * compact_bytes
    except OSError:
        return False


def drop_wal(target: Path) -> None:
    """Remove ``target.wal``: left by a stock duckdb CLI session that opened the file read-write (its
    default) and was killed before it checkpointed, it belongs to the file just renamed away. Beside the
    new file the stock CLI refuses to open it ('WAL does not match database file'; after an update in
    place: 'the WAL checkpoint iteration does not match the database file'). What it held (objects made
    in that session) a full write would not keep either."""
    with contextlib.suppress(FileNotFoundError):
        Path(f"{target}.wal").unlink()


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def encode(named: list[tuple[str, str]], macros: list[str], storage: str) -> bytes:
    """The sidecar's bytes for these statements (deterministic: the same statements, the same bytes)."""
    return zlib.compress(
        json.dumps(
            {"version": 1, "storage": storage, "views": named, "macros": macros}, separators=(",", ":")
        ).encode("utf-8", "surrogatepass"),
        1,
    )


def load(store, params: dict[str, Any]) -> dict[str, Any] | None:
    """The statements ``lake.duckdb`` was made from, when the manifest row's ``params`` vouch for them."""
    want = params.get("statements")
    if not want:
        return None
    try:
        data = (store.root / SIDECAR).read_bytes()
    except OSError:
        return None
    if _sha(data) != want:
        return None
    try:
        obj = json.loads(inflate(data))
    except (ValueError, zlib.error):
        return None
    return obj if isinstance(obj, dict) and obj.get("version") == 1 else None


def save(store, data: bytes) -> str:
    """Write the sidecar (temp name, renamed into place); returns its SHA-1 for the manifest row."""
    target = store.root / SIDECAR
    tmp = store._temp_name(target)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return _sha(data)


_IDENT = r'(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_]*)'
#: the only statements a record may hold as the undo of a create (it is SQL run on a connection: a record
#: is vouched for by the manifest, and even then runs nothing but these)
UNDO_RE = re.compile(
    rf"DROP VIEW IF EXISTS {_IDENT}(?:\.{_IDENT})?|DROP SCHEMA IF EXISTS {_IDENT} CASCADE", re.S
)


def is_undo(sql: object) -> bool:
    """True when ``sql`` is a ``DROP VIEW IF EXISTS name`` / ``DROP SCHEMA IF EXISTS name CASCADE``."""
    return isinstance(sql, str) and UNDO_RE.fullmatch(sql) is not None


def diff(old: list[list[str]], new: list[tuple[str, str]]) -> tuple[list[str], list[str]] | None:
    """``(drops, creates)`` that turn a file made from ``old`` into one made from ``new``: the creates in
    ``new``'s order (schemas first), the drops of objects ``new`` no longer makes (views before schemas).
    None when ``old`` is not a list of ``[drop, create]`` pairs whose drops are :func:`is_undo`."""
    if not all(
        isinstance(p, list | tuple) and len(p) == 2 and is_undo(p[0]) and isinstance(p[1], str) for p in old
    ):
        return None
    old_creates = {c for _, c in old}
    new_creates = {c for _, c in new}
    new_drops = {d for d, _ in new}
    creates = [c for _, c in new if c not in old_creates]
    drops = [d for d, c in old if c not in new_creates and d not in new_drops]
    drops.sort(key=lambda d: d.startswith("DROP SCHEMA"))
    return drops, creates


def update(
    store,
    target: Path,
    old: dict[str, Any],
    named: list[tuple[str, str]],
    macros: list[str],
    storage: str,
    in_place: bool = False,
) -> list[str] | None:
    """Update ``target`` (made from ``old``, see :func:`load`) to hold ``named``'s views, on a copy
    renamed into place. Returns the statements left out (views that failed), or None when the file must
    be written whole instead (nothing was changed). ``in_place``: the copy is a byte copy of ``target``
    updated and checkpointed (it grows, see the module's doc; :func:`in_place_ok`); otherwise a new file
    the catalog is copied into (:func:`copy_catalog`: a full write's size)."""
    from lakeql.dbutil import run_batch, run_views

    if old.get("storage") != storage or not isinstance(old.get("views"), list):
        return None
    again: list[str] = []
    if old.get("macros") != macros:  # e.g. the index dir moved (macros name it): made again when they
        # replace every macro the file holds and make nothing else
        names, before = _macros(macros), _macros(old.get("macros") or [])
        if names is None or before is None or not before <= names:
            return None
        again = macros
    got = diff(old["views"], named)
    if got is None:
        return None
    drops, creates = got
    if len(drops) + len(creates) > max(16, MAX_SHARE * len(named)):
        return None
    with store.atomic_file(target) as tmp:
        if in_place:  # a private byte copy (a stock CLI holding target open keeps its lock)
            shutil.copyfile(target, tmp)
            opened = database_file(tmp)
        else:
            tmp.unlink()  # duckdb must create the file itself
            opened = new_database_file(tmp, storage)
        with opened as con:
            if not in_place:
                copy_catalog(con, target, store._temp_name(target))
            run_batch(con, drops)
            skipped = run_views(con, creates)
            for sql in again:
                con.execute(sql)
            return skipped


def copy_catalog(con, source: Path, scratch: Path) -> None:
    """Copy every schema, view and macro of the database file ``source`` into ``con``'s current database
    (a new file): ``COPY FROM DATABASE`` writes the catalog entries as stored, binding no view (no
    Parquet footer is opened: ~0.2 s for 2,000 views, where creating them costs ~7 s). Why not a byte
    copy of the file updated in place: a checkpoint writes the whole catalog anew before it frees the
    old one, so the first update of a file left it twice its size (the old copy's blocks free at its
    start, never truncated), and so did every later one; the new file holds one copy, the size of a
    full write (benchmarks/results/leftovers.md).

    ``source`` is read through a byte copy at ``scratch`` (a temp name, removed after): DuckDB would need
    a lock on ``source`` itself, which a stock duckdb CLI holding ``lake.duckdb`` open refuses."""
    from lakeql.lake import quote_literal

    try:
        shutil.copyfile(source, scratch)
        con.execute(f"ATTACH {quote_literal(str(scratch))} AS {PREV} (READ_ONLY)")
        try:
            con.execute(f"COPY FROM DATABASE {PREV} TO {OUT}")
        finally:
            con.execute(f"DETACH {PREV}")
    finally:
        for f in (scratch, Path(f"{scratch}.wal")):
            f.unlink(missing_ok=True)


def _macros(statements: list[str]) -> set[str] | None:
    """The names of the macros ``statements`` make, or None when they make anything else (every
    ``CREATE`` must be a ``CREATE OR REPLACE MACRO``)."""
    text = "\n".join(statements)
    names = re.findall(r"\bCREATE\s+OR\s+REPLACE\s+MACRO\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", text, re.I)
    if len(names) != len(re.findall(r"\bCREATE\b", text, re.I)):
        return None
    return {n.lower() for n in names}
