"""Find the tables of a lake: a folder of Parquet files, one table per file or per folder.

Layout rules (documented in the README):

* ``LAKE/<name>.parquet``                      -> table ``main.<name>``
* ``LAKE/<domain>/<name>.parquet``             -> table ``<domain>.<name>`` (the domain is a DuckDB schema)
* ``LAKE/<domain>/<name>/**/*.parquet``        -> one table made of every file below the folder
  (hive partitions such as ``year=2024/`` become columns)
* ``LAKE/<name>/`` holding hive partition folders (``k=v``) directly -> table ``main.<name>``
* names starting with ``.`` or ``_`` are skipped (the default index dir ``LAKE/.lakeql`` among them).

Nothing here opens a Parquet file: discovery is a directory walk plus ``stat``, so it is cheap enough to
run on every connect and every staleness check.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from lakeql.errors import LakeNotFoundError, LakeqlError, UnknownTableError, did_you_mean

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
ROOT_DOMAIN = "main"


@dataclass(frozen=True)
class FileStamp:
    """What a Parquet file looked like when it was seen: enough to tell that it changed."""

    path: str  # relative to the lake root, with '/' separators
    size: int
    mtime_ns: int


@dataclass
class Table:
    """One lake table: a domain (DuckDB schema), a name, and the Parquet files that form it."""

    domain: str
    name: str
    root: Path  # the lake root
    source: str  # file or folder, relative to the lake root
    files: list[FileStamp] = field(default_factory=list)
    hive: bool = False

    @property
    def key(self) -> str:
        """``domain.name``: the name users pass to lakeql functions."""
        return f"{self.domain}.{self.name}"

    @property
    def sql_name(self) -> str:
        """The quoted DuckDB name ``"domain"."name"``."""
        return f"{quote_ident(self.domain)}.{quote_ident(self.name)}"

    @property
    def paths(self) -> list[str]:
        """Absolute paths of the table's files."""
        return [str(self.root / f.path) for f in self.files]

    @property
    def source_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fingerprint(self) -> str:
        """A hash of every file's path, size and mtime: changes when any file changes."""
        return fingerprint_of(self.files)

    def scan_sql(self) -> str:
        """A ``read_parquet(...)`` expression over exactly this table's files."""
        return read_parquet_sql(self.paths, self.hive)


def fingerprint_of(files: list[FileStamp]) -> str:
    h = hashlib.sha1()
    for f in sorted(files, key=lambda s: s.path):
        h.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode())
    return h.hexdigest()


def quote_ident(name: str) -> str:
    """Quote a DuckDB identifier (doubling embedded quotes); safe for any name."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a DuckDB string literal (doubling embedded single quotes)."""
    return "'" + value.replace("'", "''") + "'"


def read_parquet_sql(paths: list[str], hive: bool = False) -> str:
    listing = ", ".join(quote_literal(p) for p in paths)
    opts = ", union_by_name = true"
    if hive:
        opts += ", hive_partitioning = true"
    else:
        opts += ", hive_partitioning = false"
    return f"read_parquet([{listing}]{opts})"


@dataclass
class Lake:
    """The tables found under a lake root."""

    root: Path
    tables: dict[str, Table]

    def table(self, name: str) -> Table:
        """Resolve a user-supplied table name.

        Accepts ``domain.name`` or a bare ``name`` when it is unique across domains (``main`` first);
        comparisons ignore case as DuckDB does. Raises :class:`UnknownTableError` with suggestions.
        """
        return resolve_table(self.tables, name)

    def table_column(self, spec: str, what: str = "TABLE.COLUMN") -> tuple[Table, str]:
        """Resolve ``'domain.table.column'`` (or ``'table.column'``) into (table, column name).

        The one ``TABLE.COLUMN`` parser of lakeql: tries every dot from the right, so column names
        with dots work, and quoted parts (``'"my dom"."t"."c"'``) are unquoted. ``what`` names the flag
        or argument in errors (``--embed``). The column is not checked here (see the catalog).
        """
        text = str(spec or "").strip()
        text = _unquote_dotted(text) or text
        if "." not in text.strip("."):
            raise LakeqlError(f"{what} expects TABLE.COLUMN (e.g. python.functions.docstring), got {spec!r}")
        last: UnknownTableError | None = None
        for i in range(len(text) - 1, 0, -1):
            if text[i] != ".":
                continue
            try:
                return self.table(text[:i]), text[i + 1:]
            except UnknownTableError as exc:
                if "ambiguous" in str(exc):
                    raise UnknownTableError(f"{what} {spec!r}: {exc}") from None
                last = last or exc
        raise UnknownTableError(f"{what} {spec!r}: {last}")

    @property
    def domains(self) -> list[str]:
        return sorted({t.domain for t in self.tables.values()})


def resolve_table(tables: dict[str, Table], name: str) -> Table:
    """Find ``name`` among ``tables`` (see :meth:`Lake.table`)."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownTableError("table name is empty: pass 'domain.table' (see lakeql_tables())")
    raw = name.strip()
    if raw in tables:
        return tables[raw]
    lowered = {k.lower(): t for k, t in tables.items()}
    if raw.lower() in lowered:
        return lowered[raw.lower()]
    unquoted = _unquote_dotted(raw)
    if unquoted and unquoted.lower() in lowered:
        return lowered[unquoted.lower()]
    bare = [t for t in tables.values() if t.name.lower() == raw.lower()]
    if len(bare) == 1:
        return bare[0]
    if len(bare) > 1:
        options = ", ".join(sorted(t.key for t in bare))
        raise UnknownTableError(f"table name {raw!r} is ambiguous: use one of {options}")
    raise UnknownTableError(f"unknown table {raw!r}{did_you_mean(raw, tables)}")


def _unquote_dotted(name: str) -> str | None:
    """Turn '"dom"."my table"' into 'dom.my table'; None when not of that form."""
    if '"' not in name:
        return None
    parts, buf, inq, i = [], "", False, 0
    while i < len(name):
        ch = name[i]
        if ch == '"':
            if inq and i + 1 < len(name) and name[i + 1] == '"':
                buf += '"'
                i += 1
            else:
                inq = not inq
        elif ch == "." and not inq:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
        i += 1
    parts.append(buf)
    return ".".join(parts)


def _is_parquet(name: str) -> bool:
    return name.lower().endswith(PARQUET_SUFFIXES)


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _stem(name: str) -> str:
    for suf in PARQUET_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _stamp(root: Path, path: Path) -> FileStamp:
    st = path.stat()
    return FileStamp(path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns)


def _folder_files(root: Path, folder: Path) -> tuple[list[FileStamp], bool]:
    """Every Parquet file below ``folder`` (sorted) and whether hive partition folders are used."""
    stamps: list[FileStamp] = []
    hive = False
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        if any("=" in d for d in dirnames):
            hive = True
        for fn in sorted(filenames):
            if _is_parquet(fn) and not _hidden(fn):
                stamps.append(_stamp(root, Path(dirpath) / fn))
    return stamps, hive


def discover(root: str | os.PathLike[str]) -> Lake:
    """Walk ``root`` and return its tables (see the module docstring for the layout rules).

    Raises :class:`LakeNotFoundError` when ``root`` is missing or holds no Parquet file, and
    :class:`LakeqlError` when two files or folders map to the same table name.
    """
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise LakeNotFoundError(f"lake path {str(root)!r} does not exist: pass a folder of Parquet files")
    if root_path.is_file():
        if not _is_parquet(root_path.name):
            raise LakeNotFoundError(f"{str(root)!r} is not a folder or a Parquet file")
        root_path = root_path.resolve()
        t = Table(ROOT_DOMAIN, _stem(root_path.name), root_path.parent, root_path.name,
                  [_stamp(root_path.parent, root_path)])
        return Lake(root_path.parent, {t.key: t})
    root_path = root_path.resolve()
    found: list[Table] = []
    for entry in sorted(root_path.iterdir(), key=lambda p: p.name):
        if _hidden(entry.name):
            continue
        if entry.is_file() and _is_parquet(entry.name):
            found.append(Table(ROOT_DOMAIN, _stem(entry.name), root_path, entry.name,
                               [_stamp(root_path, entry)]))
        elif entry.is_dir():
            children = [c for c in entry.iterdir() if not _hidden(c.name)]
            if any(c.is_dir() and "=" in c.name for c in children):
                files, _ = _folder_files(root_path, entry)
                if files:
                    found.append(Table(ROOT_DOMAIN, entry.name, root_path, entry.name, files, True))
                continue
            for child in sorted(children, key=lambda p: p.name):
                if child.is_file() and _is_parquet(child.name):
                    found.append(Table(entry.name, _stem(child.name), root_path,
                                       child.relative_to(root_path).as_posix(),
                                       [_stamp(root_path, child)]))
                elif child.is_dir():
                    files, hive = _folder_files(root_path, child)
                    if files:
                        found.append(Table(entry.name, child.name, root_path,
                                           child.relative_to(root_path).as_posix(), files, hive))
    if not found:
        raise LakeNotFoundError(
            f"no Parquet files under {str(root)!r}: a lake is a folder of .parquet files "
            "(LAKE/<domain>/<table>.parquet or LAKE/<table>.parquet)")
    tables: dict[str, Table] = {}
    seen: dict[str, Table] = {}
    for t in found:
        folded = t.key.lower()
        if folded in seen:
            other = seen[folded]
            raise LakeqlError(
                f"two sources map to table {t.key!r}: {other.source!r} and {t.source!r} "
                "(table names ignore case): rename or move one of them")
        seen[folded] = t
        tables[t.key] = t
    return Lake(root_path, tables)


__all__ = ["FileStamp", "Lake", "Table", "discover", "quote_ident", "quote_literal", "read_parquet_sql",
           "resolve_table", "UnknownTableError"]
