"""Find the tables of a lake: a folder of data files, one table per file or per folder.

Layout rules (documented in the README); a data file is Parquet (``.parquet``, ``.parq``, ``.pq``), CSV
(``.csv``, ``.tsv``, optionally ``.gz``) or JSON (``.json``, ``.ndjson``, ``.jsonl``, optionally ``.gz``):

* ``LAKE/<name>.parquet``                      -> table ``main.<name>``
* ``LAKE/<domain>/<name>.parquet``             -> table ``<domain>.<name>`` (the domain is a DuckDB schema)
* ``LAKE/<domain>/<name>/**/*.parquet``        -> one table made of every file below the folder
  (hive partitions such as ``year=2024/`` become columns)
* ``LAKE/<name>/`` holding hive partition folders (``k=v``) directly -> table ``main.<name>``
* a folder holding ``_delta_log/`` is a Delta table, one holding ``metadata/*.metadata.json`` an Iceberg
  table: their live Parquet files are read from the table log (:mod:`lakeql.sources.tableformats`)
* names starting with ``.`` or ``_`` are skipped (the default index dir ``LAKE/.lakeql`` among them);
  other files lakeql cannot read are named in a warning (:class:`UnsupportedFileWarning`) and in
  ``Lake.problems``, never skipped silently.

Nothing here opens a data file: discovery is a directory listing plus ``stat`` (local folders) or one
recursive listing (object storage, see :mod:`lakeql.sources.remote`), cheap enough to run on every
connect and every staleness check. Discovery works over that listing (:func:`tables_from_listing`), so
local and remote lakes follow exactly the same rules.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeql.errors import LakeNotFoundError, LakeqlError, UnknownTableError, did_you_mean, shown

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
FORMAT_SUFFIXES = {**{s: "parquet" for s in PARQUET_SUFFIXES},
                   ".csv": "csv", ".tsv": "csv", ".csv.gz": "csv", ".tsv.gz": "csv",
                   ".json": "json", ".ndjson": "json", ".jsonl": "json", ".json.gz": "json",
                   ".ndjson.gz": "json", ".jsonl.gz": "json"}
# Files that are plainly not data (never warned about).
IGNORED_SUFFIXES = (".md", ".txt", ".rst", ".crc", ".py", ".sh", ".yaml", ".yml", ".toml", ".ini", ".log",
                    ".lock", ".tmp", ".pid", ".gitignore", ".gitkeep")
ROOT_DOMAIN = "main"
# names DuckDB keeps for catalogs and schemas of its own, and the catalog lakeql attaches for its row
# views (lakeql.rows.ROWS_SCHEMA): a domain (schema) of that name cannot be created or is ambiguous in
# every query ('system.t': the catalog or the schema?), so such a folder is left out
RESERVED_DOMAINS = frozenset({"system", "temp", "memory", "pg_catalog", "information_schema", "lakeql_rows"})


class UnsupportedFileWarning(UserWarning):
    """A file in the lake that lakeql cannot read as a table (named, never skipped silently)."""


@dataclass(frozen=True)
class Problem:
    """Something in the lake left out of it: an unreadable file or table, or an unsupported format.

    ``kind``: ``'unsupported'`` (a file of a format lakeql cannot read), ``'file'`` (an unreadable file,
    its table kept without it) or ``'table'`` (no file of the table is readable: the table is left out).
    """

    kind: str
    path: str  # relative to the lake root
    error: str
    table_name: str = ""


@dataclass(frozen=True)
class FileStamp:
    """What a Parquet file looked like when it was seen: enough to tell that it changed."""

    path: str  # relative to the lake root, with '/' separators
    size: int
    mtime_ns: int
    # the object's ETag from the listing of a lake on object storage ('' for local files): an object
    # rewritten with the same size within the same second (S3 times are whole seconds) is a change too
    etag: str = ""


@dataclass
class Table:
    """One lake table: a domain (DuckDB schema), a name, and the Parquet files that form it."""

    domain: str
    name: str
    root: Path  # the lake root
    source: str  # file or folder, relative to the lake root
    files: list[FileStamp] = field(default_factory=list)
    hive: bool = False
    format: str = "parquet"  # 'parquet', 'csv' or 'json': how DuckDB reads ``files``
    seen: list[FileStamp] | None = None  # every file that defines the table as discovered (fingerprint)
    layout: str = "file"  # 'file', 'folder', 'hive', 'delta' or 'iceberg'
    #: CSV files read through a UTF-8 copy (:mod:`lakeql.csvenc`): path -> (encoding, local copy)
    decoded: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: CSV files read with ``header = true``: their first line is the header DuckDB's sniffer missed
    #: (:mod:`lakeql.csvheader`; catalogued, ``catalog/tables.parquet`` ``csv_header``)
    csv_header: bool = False
    #: CSV files read with ``sample_size = -1``: DuckDB's sniffer typed a column from its sample (20,480
    #: rows) that a later value does not fit (``NA`` in a DOUBLE column), so the types come from the whole
    #: file (:func:`lakeql.catalog._count_rows`; catalogued, ``catalog/tables.parquet`` ``csv_whole_sniff``)
    csv_whole_sniff: bool = False
    #: the encoding the user named for this CSV table's files that are not UTF-8 (``--csv-encoding``,
    #: :mod:`lakeql.csvnamed`), used instead of the guessed one; None: detected
    csv_encoding: str | None = None

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
        """Absolute paths (or URLs, for a lake on object storage) of the table's files."""
        dec = self.decoded
        if dec:  # a CSV file that is not UTF-8 is read through its UTF-8 copy
            return [dec[f.path][1] if f.path in dec else join_root(self.root, f.path) for f in self.files]
        return [join_root(self.root, f.path) for f in self.files]

    @property
    def source_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fingerprint(self) -> str:
        """A hash of every file's path, size and mtime as discovered (unreadable files and table logs
        included): changes when any file changes, and equals :func:`rescan_fingerprint` until then.

        Kept while the same list (of the same length) defines the table: a refresh of 10,000 tables asks
        each table's fingerprint ~9 times (a sha1 over its files each).

        A CSV table whose encoding the user named (:attr:`csv_encoding`) has another fingerprint than the
        same files read by detection: its text differs, so its catalog row and indexes are made again."""
        files = self.seen if self.seen is not None else self.files
        memo = self.__dict__.get("_fingerprint")
        if memo is not None and memo[0] is files and memo[1] == len(files) and memo[3] == self.csv_encoding:
            return memo[2]
        fp = with_encoding(fingerprint_of(files), self.csv_encoding)
        self.__dict__["_fingerprint"] = (files, len(files), fp, self.csv_encoding)
        return fp

    @property
    def skipped(self) -> list[FileStamp]:
        """Data files discovered but left out (unreadable)."""
        if self.seen is None or self.layout in ("delta", "iceberg"):
            return []
        kept = {f.path for f in self.files}
        return [f for f in self.seen if f.path not in kept]

    def with_files(self, files: list[FileStamp]) -> Table:
        """A copy of this table made of ``files`` only (same fingerprint: what was discovered)."""
        keep = {f.path for f in files}
        return Table(self.domain, self.name, self.root, self.source, list(files), self.hive, self.format,
                     list(self.seen if self.seen is not None else self.files), self.layout,
                     {p: d for p, d in self.decoded.items() if p in keep}, self.csv_header,
                     self.csv_whole_sniff, self.csv_encoding)

    def scan_sql(self) -> str:
        """A DuckDB table-function expression (``read_parquet``/``read_csv``/``read_json``) over exactly
        this table's files.

        Kept while what it is made of is the same (the same file objects, root, format and options): a
        refresh of 10,000 tables writes each table's view twice (``lake.duckdb`` and ``views/``)."""
        basis = (tuple(self.files), self.root, self.format, self.hive, self.csv_header, self.csv_whole_sniff,
                 tuple(self.decoded.items()))
        memo = self.__dict__.get("_scan_sql")
        if memo is not None and memo[0] == basis:
            return memo[1]
        sql = scan_sql(self.format, self.paths, self.hive, self.csv_header, self.csv_whole_sniff)
        self.__dict__["_scan_sql"] = (basis, sql)
        return sql


def files_word(table: Table | None) -> str:
    """How error messages name a table's data files: ``Parquet files``, ``CSV files``, ``JSON files``."""
    fmt = getattr(table, "format", "parquet")
    return {"parquet": "Parquet", "csv": "CSV", "json": "JSON"}.get(fmt, "data") + " files"


def lake_files_word(tables: Any) -> str:
    """How error messages name a lake's data files: its tables' formats (``CSV files``, ``Parquet and CSV
    files``; ``data files`` for an empty lake)."""
    names = sorted({files_word(t).removesuffix(" files") for t in tables})
    if not names:
        return "data files"
    return (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]) + " files"


def join_root(root: Path | str, rel: str) -> str:
    """``root/rel`` for a local root, or a URL for a lake on object storage (``s3://b/prefix``)."""
    if isinstance(root, str) and "://" in root:
        return root.rstrip("/") + "/" + rel
    if _PLAIN_REL.fullmatch(rel) is not None and os.sep == "/":
        # what pathlib makes of a relative path with no empty or '.' parts: the parts joined by '/' (a
        # refresh of 10,000 tables joins ~20,000 of them; pathlib's parsing was ~0.3 CPU s of it)
        base = str(root) if isinstance(root, Path) else str(Path(root))
        if base == ".":  # Path(".") / rel is rel
            return rel
        return base + rel if base.endswith("/") else f"{base}/{rel}"
    return str(Path(root) / rel)


#: a relative path pathlib keeps as it is: no leading '/', no empty part ('//', a trailing '/') and no
#: '.' part
_PLAIN_REL = re.compile(r"(?!/)(?:(?!\.(?:/|$))[^/]+)(?:/(?!\.(?:/|$))[^/]+)*")


def scan_sql(fmt: str, paths: list[str], hive: bool = False, header: bool = False,
             whole_sniff: bool = False, text_column: str | None = None) -> str:
    """The DuckDB scan of ``paths`` in format ``fmt`` (columns unified by name across files). ``header``:
    CSV files whose first line is their header although DuckDB's sniffer says not
    (:mod:`lakeql.csvheader`). ``whole_sniff``: CSV files typed from every row (``sample_size = -1``), a
    late value not fitting the type sniffed from DuckDB's sample (:func:`lakeql.catalog._count_rows`).
    ``text_column``: a CSV column read as VARCHAR whatever this scan's sniffer makes of it (the n-gram reader
    of one file of a table whose view reads it as text: a file sniffed alone could type it DATE, review21)."""
    if fmt == "parquet":
        return read_parquet_sql(paths, hive)
    listing = ", ".join(quote_path(p) for p in paths)
    opts = f", union_by_name = true, hive_partitioning = {'true' if hive else 'false'}"
    if fmt == "csv":
        whole = ", sample_size = -1" if whole_sniff else ""
        types = f", types = {{{quote_literal(text_column)}: 'VARCHAR'}}" if text_column is not None else ""
        return f"read_csv([{listing}]{opts}{', header = true' if header else ''}{whole}{types})"
    if fmt == "json":
        return f"read_json([{listing}]{opts})"
    raise LakeqlError(f"unknown table format {fmt!r}")


def fingerprint_of(files: list[FileStamp]) -> str:
    h = hashlib.sha1()
    for f in sorted(files, key=lambda s: s.path):
        tag = f"\0{f.etag}" if f.etag else ""  # local files: the fingerprint they always had
        h.update(f"{f.path}\0{f.size}\0{f.mtime_ns}{tag}\n".encode())
    return h.hexdigest()


def with_encoding(fp: str, encoding: str | None) -> str:
    """``fp`` of a table whose CSV encoding was named (:mod:`lakeql.csvnamed`): another fingerprint."""
    if not encoding:
        return fp
    return hashlib.sha1(f"{fp}\0csv_encoding\0{encoding}".encode()).hexdigest()


def key_sql_name(key: str, tables: dict[str, Table] | None = None) -> str:
    """The quoted DuckDB name of the table ``key`` (``domain.name``). A domain or a table name may hold
    dots, so the split comes from the lake's own :class:`Table` when ``tables`` knows the key."""
    if tables is not None and key in tables:
        return tables[key].sql_name
    d, _, n = key.partition(".")
    return f"{quote_ident(d)}.{quote_ident(n)}"


def quote_ident(name: str) -> str:
    """Quote a DuckDB identifier (doubling embedded quotes); safe for any name."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a DuckDB string literal (doubling embedded single quotes)."""
    return "'" + value.replace("'", "''") + "'"


_GLOB_CHARS = re.compile(r"([\[*?])")


def glob_escape(path: str) -> str:
    """``path`` as a DuckDB file pattern that matches only itself.

    DuckDB reads every path as a glob: a file ``a*.parquet`` read ``ab.parquet`` too, and a lake at
    ``lake[1]`` the files of a folder ``lake1``. Each ``*``, ``?`` and ``[`` becomes a one-character class
    (``[*]``); DuckDB (and fsspec, for object storage) then match the name literally.
    """
    return _GLOB_CHARS.sub(r"[\1]", path)


def globbable(path: str) -> bool:
    """Whether DuckDB can read ``path`` through :func:`glob_escape`: not when it holds a backslash and a
    glob character. DuckDB splits a file pattern at ``\\`` as well as ``/`` (on Linux too) and no escape
    matches a backslash, so ``a\\b[1].parquet`` read the file ``b[1].parquet`` of a folder ``a``, or none.
    A path without glob characters is opened as it is spelled (backslash included)."""
    return "\\" not in path or not _GLOB_CHARS.search(path)


def _unglobbable_warning(path: str) -> str:
    return (
        f"skipping {path!r}: DuckDB reads a backslash in a path that also holds '*', '?' or '[' as a "
        "folder separator, so no file pattern names it: rename the file or folder"
    )


def quote_path(path: str) -> str:
    """A quoted SQL literal of ``path`` for DuckDB's file readers (:func:`glob_escape` + quoting)."""
    return quote_literal(glob_escape(str(path)))


def read_parquet_sql(paths: list[str], hive: bool = False) -> str:
    listing = ", ".join(quote_path(p) for p in paths)
    opts = ", union_by_name = true"
    if hive:
        opts += ", hive_partitioning = true"
    else:
        opts += ", hive_partitioning = false"
    return f"read_parquet([{listing}]{opts})"


@dataclass
class Lake:
    """The tables found under a lake root."""

    root: Path | str  # a local folder, or a URL (s3://bucket/prefix) for a lake on object storage
    tables: dict[str, Table]
    problems: list[Problem] = field(default_factory=list)
    fs: Any = None  # the pyarrow filesystem of a remote lake (None: local)

    @property
    def is_remote(self) -> bool:
        return isinstance(self.root, str) and "://" in self.root

    @property
    def url(self) -> str:
        """The lake root as text (a local path or a URL)."""
        return str(self.root)

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
        raw = str(spec or "").strip()
        # the text as written first: a name may itself contain '"' (then it is not the quoted form)
        texts = list(dict.fromkeys(t for t in (raw, _unquote_dotted(raw)) if t))
        if not any("." in t.strip(".") for t in texts):
            raise LakeqlError(f"{what} expects TABLE.COLUMN (e.g. python.functions.docstring), "
                              f"got {shown(spec)}")
        last: UnknownTableError | None = None
        for text in texts:
            for i in range(len(text) - 1, 0, -1):
                if text[i] != ".":
                    continue
                try:
                    table, column = self.table(text[:i]), text[i + 1:]
                except UnknownTableError as exc:
                    if "ambiguous" in str(exc):
                        raise UnknownTableError(f"{what} {spec!r}: {exc}") from None
                    last = last or exc
                    continue
                if len(column) > 1 and column[0] == column[-1] == '"':  # '"dom"."t"."c"' read as written
                    column = _unquote_dotted(column) or column
                return table, column
        raise UnknownTableError(f"{what} {spec!r}: {last}")

    @property
    def domains(self) -> list[str]:
        return sorted({t.domain for t in self.tables.values()})


def resolve_table(tables: dict[str, Table], name: str) -> Table:
    """Find ``name`` among ``tables`` (see :meth:`Lake.table`)."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownTableError("table name is empty: pass 'domain.table' (see lakeql_tables())")
    raw = nfc(name.strip())
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
    raise UnknownTableError(f"unknown table {shown(raw)}{did_you_mean(raw, tables)}")


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


def file_format(name: str) -> str | None:
    """The table format of a file name ('parquet', 'csv', 'json'), or None."""
    low = name.lower()
    for suf in sorted(FORMAT_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return FORMAT_SUFFIXES[suf]
    return None


def _is_parquet(name: str) -> bool:
    return name.lower().endswith(PARQUET_SUFFIXES)


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _lists_itself(target: str, lake_inside: str) -> bool:
    """True when ``target`` (a real path) is a file of the lake that the walk lists under its own name and
    reads as a table: inside the lake, with no hidden part (``current.parquet -> .versions/v3.parquet`` is
    the only name of that file, so it is kept), named with a table suffix (a Hugging Face cache's
    ``train.parquet -> ../blobs/<sha>``: the blob is no table, the link is its only table name)."""
    if not target.startswith(lake_inside) or file_format(os.path.basename(target)) is None:
        return False
    parts = target[len(lake_inside):].split(os.sep)
    return not any(p.startswith(".") for p in parts) and not any(
        p.startswith("_") and p != "_delta_log" for p in parts)


def _alias(path: str, lake_inside: str, real_dirs: dict[str, str]) -> bool:
    """True when the symlinked file ``path`` is another name for a file the walk reads as a table itself:
    one of its hops (``latest.parquet -> v3.parquet -> /store/v3.parquet``: ``v3.parquet``) is such a file
    (:func:`_lists_itself`). Its rows are then not read twice; a loop is no file (not listed either way).
    ``real_dirs``: the walk's cache of folders' real paths (10,000 links into one blob folder: one
    ``realpath`` of it, not one per link: the listing is on every connection's path)."""
    cur = path
    for _ in range(40):  # the kernel's own limit on a chain of symlinks
        try:
            nxt = os.path.join(os.path.dirname(cur), os.readlink(cur))
        except OSError:  # the end of the chain (a file) or unreadable
            return False
        folder = os.path.dirname(nxt)
        real = real_dirs.get(folder)
        if real is None:
            real = real_dirs[folder] = os.path.realpath(folder)
        cur = os.path.join(real, os.path.basename(nxt))
        if _lists_itself(cur, lake_inside):
            return True
    return False


def nfc(name: str) -> str:
    """A table, domain or user-typed name in Unicode NFC, the form people type: a folder or file named on
    macOS (or unzipped from an archive made there) is decomposed (NFD), and DuckDB compares names by their
    bytes, so ``"ürün"`` typed would never reach an NFD ``ürün``. Paths keep their own bytes."""
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def _stem(name: str) -> str:
    low = name.lower()
    for suf in sorted(FORMAT_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return name[: -len(suf)]
    return name


def _stamp(root: Path, path: Path) -> FileStamp:
    st = path.stat()
    return FileStamp(path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns)


def _ignored(name: str) -> bool:
    low = name.lower()
    return low.endswith(IGNORED_SUFFIXES) or low in ("license", "readme", "makefile", "success")


# ---------------------------------------------------------------------------------------- listings
def local_listing(root: Path, sub: str = "") -> list[FileStamp]:
    """Every file below ``root/sub`` (relative to ``root``), skipping hidden names except ``_delta_log``.

    A vanished file (deleted between the listing and its ``stat``) is simply not listed. Walks with
    ``os.scandir`` on plain strings (its ``stat`` is cached per entry): ``connect()`` lists the whole lake
    to check staleness, so this is on every connection's path (10,000 files: a few tens of ms).
    """
    base = root / sub if sub else root
    if base.is_file():
        try:
            return [_stamp(root, base)]
        except OSError:
            return []
    out: list[FileStamp] = []
    prefix_len = len(str(root).rstrip("/")) + 1

    lake_real = os.path.realpath(root)
    lake_inside = lake_real.rstrip(os.sep) + os.sep
    walked: set[str] = set()  # real paths of the folders walked so far
    real_dirs: dict[str, str] = {}  # folder -> its real path, for symlinked files (_alias)

    def walk(folder: str, real: str, hops: tuple[str, ...], inside_log: bool) -> None:
        # real: folder's real path; hops: the real paths of the folders above whose symlinks were
        # followed. A symlink to one of them or to a folder above one of them is a loop. A symlink to a
        # folder of the lake (listed anyway) or to one already walked is not followed: following every
        # path that is not a loop took factorial time (folders holding symlinks to each other).
        walked.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            name = e.name
            try:
                if e.is_dir(follow_symlinks=True):
                    if not _hidden(name) or name == "_delta_log":
                        if e.is_symlink():
                            sub, below = os.path.realpath(e.path), (*hops, real)
                            inside = sub.rstrip(os.sep) + os.sep
                            if any(r == sub or r.startswith(inside) for r in below):
                                continue  # it leads back to a folder being walked: a loop, not followed
                            if sub in walked or sub == lake_real or sub.startswith(lake_inside):
                                continue  # its files are listed already (or will be, as the lake's own)
                        else:
                            sub, below = os.path.join(real, name), hops
                        walk(e.path, sub, below, inside_log or name == "_delta_log")
                    continue
                if name.startswith(".") or (name.startswith("_") and not inside_log):
                    continue
                if e.is_symlink() and _alias(e.path, lake_inside, real_dirs):
                    continue  # another name for a file the walk lists as itself: its rows are not read twice
                st = e.stat(follow_symlinks=True)
            except OSError:
                continue
            if not globbable(e.path):
                warnings.warn(_unglobbable_warning(e.path), UnsupportedFileWarning, stacklevel=3)
                continue
            out.append(FileStamp(e.path[prefix_len:].replace(os.sep, "/"), st.st_size, st.st_mtime_ns))

    walk(str(base), os.path.realpath(base), (), "_delta_log" in base.parts)
    return out


class _Tree:
    """A listing as a folder tree: ``children(prefix)`` -> (sub-folder names, files directly inside)."""

    def __init__(self, listing: list[FileStamp]) -> None:
        self.dirs: dict[str, set[str]] = {"": set()}
        self.files: dict[str, list[FileStamp]] = {"": []}
        for f in listing:
            parts = f.path.split("/")
            for i in range(len(parts) - 1):
                parent = "/".join(parts[:i])
                self.dirs.setdefault(parent, set()).add(parts[i])
                self.dirs.setdefault("/".join(parts[:i + 1]), set())
            self.files.setdefault("/".join(parts[:-1]), []).append(f)

    def subdirs(self, prefix: str) -> list[str]:
        return sorted(self.dirs.get(prefix, ()))

    def direct(self, prefix: str) -> list[FileStamp]:
        return sorted(self.files.get(prefix, []), key=lambda f: f.path)

    def below(self, prefix: str) -> list[FileStamp]:
        out = list(self.files.get(prefix, []))
        for d in self.subdirs(prefix):
            out += self.below(_join(prefix, d))
        return sorted(out, key=lambda f: f.path)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _visible(path: str) -> bool:
    return not any(_hidden(p) for p in path.split("/"))


def table_kind(tree: _Tree, folder: str) -> str:
    """How a folder forms a table: 'delta', 'iceberg', 'hive' (k=v folders) or 'folder'."""
    subs = tree.subdirs(folder)
    if "_delta_log" in subs:
        return "delta"
    if "metadata" in subs and any(f.path.endswith(".metadata.json")
                                  for f in tree.direct(_join(folder, "metadata"))):
        return "iceberg"
    if any("=" in d for d in subs):
        return "hive"
    return "folder"


def folder_table(root: Path | str, tree: _Tree, domain: str, name: str, folder: str,
                 problems: list[Problem], fs: Any = None) -> Table | None:
    """The table made of a folder (every data file below it, or a Delta/Iceberg table's live files)."""
    domain, name = nfc(domain), nfc(name)
    kind = table_kind(tree, folder)
    everything = tree.below(folder)
    if kind in ("delta", "iceberg"):
        from lakeql.sources.tableformats import live_files

        t = Table(domain, name, root, folder, [], False, "parquet", everything, kind)
        try:
            t.files = live_files(t, {f.path: f for f in everything}, fs)
        except LakeqlError as exc:
            problems.append(Problem("table", folder, str(exc), t.key))
            warnings.warn(f"skipping table {t.key}: {exc}", UnsupportedFileWarning, stacklevel=3)
            return None
        return t
    data = [f for f in everything if _visible(f.path[len(folder) + 1:])]
    by_format: dict[str, list[FileStamp]] = {}
    for f in data:
        fmt = file_format(f.path)
        if fmt is not None:
            by_format.setdefault(fmt, []).append(f)
        elif not _ignored(f.path.rsplit("/", 1)[-1]):
            _unsupported(problems, f.path)
    if not by_format:
        return None
    fmt = max(by_format, key=lambda k: (len(by_format[k]), k == "parquet"))
    for other, fs_ in by_format.items():
        if other != fmt:
            for f in fs_:
                problems.append(Problem("unsupported", f.path, f"a {other} file in a {fmt} table folder "
                                        f"({folder}): one folder table has one format"))
                warnings.warn(f"skipping {f.path}: a {other} file in the {fmt} table folder {folder!r}",
                              UnsupportedFileWarning, stacklevel=3)
    files = by_format[fmt]
    return Table(domain, name, root, folder, files, kind == "hive", fmt, files,
                 "hive" if kind == "hive" else "folder")


def _unsupported(problems: list[Problem], path: str) -> None:
    suffix = Path(path).suffix or path.rsplit("/", 1)[-1]
    problems.append(Problem("unsupported", path, f"lakeql cannot read {suffix} files"))
    warnings.warn(f"skipping {path!r}: lakeql cannot read {suffix} files (Parquet, CSV, JSON, Delta and "
                  "Iceberg tables are read)", UnsupportedFileWarning, stacklevel=4)


def _reserved_domain(problems: list[Problem], folder: str) -> None:
    why = (f"the domain folder {folder!r} is named like one of DuckDB's (or lakeql's) own catalogs or "
           f"schemas ({', '.join(sorted(RESERVED_DOMAINS))}), so its tables could not be queried as "
           f"{folder}.<table>: rename the folder")
    problems.append(Problem("unsupported", folder, why))
    warnings.warn(f"skipping {folder!r}: {why}", UnsupportedFileWarning, stacklevel=3)


def file_table(root: Path | str, domain: str, stamp: FileStamp) -> Table:
    fname = stamp.path.rsplit("/", 1)[-1]
    fmt = file_format(fname) or "parquet"
    return Table(nfc(domain), nfc(_stem(fname)), root, stamp.path, [stamp], False, fmt, [stamp], "file")


def tables_from_listing(root: Path | str, listing: list[FileStamp], fs: Any = None
                        ) -> tuple[list[Table], list[Problem]]:
    """Apply the layout rules (module docstring) to a listing of every file below the lake root."""
    tree = _Tree(listing)
    found: list[Table] = []
    problems: list[Problem] = []
    for f in tree.direct(""):
        name = f.path
        if _hidden(name):
            continue
        if file_format(name):
            found.append(file_table(root, ROOT_DOMAIN, f))
        elif not _ignored(name):
            _unsupported(problems, f.path)
    for d in tree.subdirs(""):
        if _hidden(d):
            continue
        if table_kind(tree, d) != "folder":
            t = folder_table(root, tree, ROOT_DOMAIN, d, d, problems, fs)
            if t is not None:
                found.append(t)
            continue
        if d.lower() in RESERVED_DOMAINS:
            _reserved_domain(problems, d)
            continue
        for f in tree.direct(d):
            fname = f.path.rsplit("/", 1)[-1]
            if _hidden(fname):
                continue
            if file_format(fname):
                found.append(file_table(root, d, f))
            elif not _ignored(fname):
                _unsupported(problems, f.path)
        for child in tree.subdirs(d):
            if _hidden(child):
                continue
            t = folder_table(root, tree, d, child, _join(d, child), problems, fs)
            if t is not None:
                found.append(t)
    return found, problems


def rescan_fingerprint(table: Table, fs: Any = None) -> str:
    """The fingerprint of ``table``'s source as it is now (``'<missing>'`` when it is gone).

    Re-lists only the table's own file or folder with the rules of discovery, so it equals
    ``table.fingerprint`` exactly when nothing changed.
    """
    if isinstance(table.root, str) and "://" in table.root:
        from lakeql.sources.remote import remote_listing

        listing = remote_listing(table.root, fs, table.source)
    else:
        listing = local_listing(Path(table.root), table.source)
    if not listing:
        return "<missing>"
    if table.layout == "file":
        own = [f for f in listing if f.path == table.source]
        return with_encoding(fingerprint_of(own), table.csv_encoding)
    if table.layout in ("delta", "iceberg"):
        return fingerprint_of(listing)
    fmt = table.format
    prefix = len(table.source) + 1
    fp = fingerprint_of([f for f in listing if _visible(f.path[prefix:]) and file_format(f.path) == fmt])
    return with_encoding(fp, table.csv_encoding)


def _folder_files(root: Path, folder: Path) -> tuple[list[FileStamp], bool]:
    """Every Parquet file below ``folder`` (sorted) and whether hive partition folders are used."""
    rel = folder.relative_to(root).as_posix()
    tree = _Tree(local_listing(root, rel))
    files = [f for f in tree.below(rel) if _visible(f.path[len(rel) + 1:]) and _is_parquet(f.path)]
    return files, table_kind(tree, rel) == "hive"


def discover(root: str | os.PathLike[str]) -> Lake:
    """List ``root`` and return its tables (see the module docstring for the layout rules).

    ``root`` is a local folder or file, or a URL (``s3://bucket/prefix``) read with
    :mod:`lakeql.sources.remote`. Raises :class:`LakeNotFoundError` when ``root`` is missing or holds no
    data file. Files of formats lakeql cannot read, and sources that share a table name (all of them left
    out), are named in a warning and in ``Lake.problems``.
    """
    text = os.fsdecode(root)  # str, bytes or a path object
    if not text.strip() and not (text and os.path.isdir(text)):  # Path('') is the current directory: a
        # lake nobody meant (an unset $LAKE); a folder named ' ' is a real one
        raise LakeNotFoundError(f"the lake path is empty ({text!r}): pass a folder of Parquet files")
    fs = None
    if "://" in text and not text.startswith("file://"):
        from lakeql.sources.remote import open_remote

        root_path: Path | str
        root_path, fs, listing = open_remote(text)
    else:
        root_path = Path(text.removeprefix("file://")).expanduser()
        if not root_path.exists():
            raise LakeNotFoundError(f"lake path {text!r} does not exist: pass a folder of Parquet files")
        root_path = root_path.resolve()
        if not globbable(str(root_path)):
            raise LakeqlError(
                f"the lake path {str(root_path)!r} holds a backslash and '*', '?' or '[': DuckDB reads such "
                "a backslash as a folder separator, so no file of it can be read: rename or move the folder")
        if root_path.is_file():
            if not file_format(root_path.name):
                raise LakeNotFoundError(f"{text!r} is not a folder or a Parquet, CSV or JSON file")
            t = file_table(root_path.parent, ROOT_DOMAIN, _stamp(root_path.parent, root_path))
            return Lake(root_path.parent, {t.key: t})
        listing = local_listing(root_path)
    found, problems = tables_from_listing(root_path, listing, fs)
    if not found:
        raise LakeNotFoundError(
            f"no Parquet files under {text!r}: a lake is a folder of .parquet files "
            "(LAKE/<domain>/<table>.parquet or LAKE/<table>.parquet; CSV, JSON, Delta and Iceberg too)")
    tables = {t.key: t for t in _one_source_per_name(found, problems)}
    if not tables:
        raise LakeNotFoundError(f"no table of {text!r} is readable: {problems[-1].error}")
    return Lake(root_path, tables, problems, fs)


#: the words of the problem recorded for sources that share a table name (lakeql.catalog words its error)
SHARED_NAME = "sources map to table"


def _one_source_per_name(found: list[Table], problems: list[Problem]) -> list[Table]:
    """The tables of ``found`` whose name (ignoring case, as DuckDB does) no other source also has.

    Sources that share a name (``d/drinks.csv`` beside ``d/drinks.parquet``, ``d/Orders.parquet`` beside
    ``d/orders.parquet``, a file ``d/t.parquet`` beside a folder ``d/t/``) are all left out, each recorded
    as a ``'table'`` problem naming every one of them and warned about: picking one would answer from a
    table the user may not mean, and refusing the lake (as before) made every other table unusable.
    """
    by_name: dict[str, list[Table]] = {}
    for t in found:
        by_name.setdefault(t.key.lower(), []).append(t)
    kept: list[Table] = []
    for same in by_name.values():
        if len(same) == 1:
            kept.append(same[0])
            continue
        srcs = sorted({t.source for t in same})
        if len({s.lower() for s in srcs}) == len(srcs) and len({nfc(s).lower() for s in srcs}) < len(srcs):
            # the names differ in Unicode form only (NFC and NFD look alike): show the code points
            sources, rule = " and ".join(ascii(s) for s in srcs), "table names ignore case and Unicode form"
        else:
            sources, rule = " and ".join(repr(s) for s in srcs), "table names ignore case"
        why = (f"{len(same)} {SHARED_NAME} {same[0].key!r}: {sources} ({rule}), so it is left out: rename "
               "or move one of them")
        for t in same:
            problems.append(Problem("table", t.source, why, t.key))
        warnings.warn(f"skipping table {same[0].key}: {why}", UnsupportedFileWarning, stacklevel=3)
    return kept


__all__ = ["FileStamp", "Lake", "Problem", "Table", "UnsupportedFileWarning", "discover",
           "quote_ident", "quote_literal", "quote_path", "glob_escape", "read_parquet_sql",
           "resolve_table", "UnknownTableError"]
