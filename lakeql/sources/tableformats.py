"""Delta and Iceberg tables: the live Parquet files of a table, read from its log.

A Delta table (a folder with ``_delta_log/``) is read with ``deltalake`` and an Iceberg table (a folder
with ``metadata/*.metadata.json``) with ``pyiceberg``, both optional (``pip install 'lakeql[formats]'``).
Only the list of live data files is taken from the log; DuckDB then reads those Parquet files like any
other table. Features that change rows beyond the file list (Delta deletion vectors or column mapping,
Iceberg delete files) are refused with a clear error rather than read wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lakeql.errors import LakeqlError
from lakeql.lake import FileStamp, Table, join_root


def live_files(table: Table, stamps: dict[str, FileStamp], fs: Any = None) -> list[FileStamp]:
    """The stamps of the Parquet files that form ``table`` now (paths relative to the lake root)."""
    if table.layout == "delta":
        uris = _delta_files(table)
    elif table.layout == "iceberg":
        uris = _iceberg_files(table, stamps)
    else:
        raise LakeqlError(f"{table.layout} is not a table format with a log")
    out = []
    for uri in uris:
        rel = _relative(table, uri)
        if rel not in stamps:
            raise LakeqlError(f"the {table.layout} log of {table.source!r} names a missing data file {rel!r}")
        out.append(stamps[rel])
    return out


def _relative(table: Table, uri: str) -> str:
    root = join_root(table.root, "")
    text = uri
    if "://" in text and not str(table.root).startswith(text.split("://", 1)[0] + "://"):
        parsed = urlparse(text)
        text = unquote(parsed.path) if parsed.scheme == "file" else text
    text = text.removeprefix(root).removeprefix("/" if not root.endswith("/") else "")
    if text.startswith(str(table.root)):
        text = text[len(str(table.root)):].lstrip("/")
    return text


def _delta_files(table: Table) -> list[str]:
    try:
        from deltalake import DeltaTable
    except ImportError:
        raise LakeqlError(f"{table.source!r} is a Delta table: install deltalake "
                          "(pip install 'lakeql[formats]') to read it") from None
    uri = join_root(table.root, table.source)
    try:
        dt = DeltaTable(uri, storage_options=_storage_options(uri))
        proto = dt.protocol()
        features = set(getattr(proto, "reader_features", None) or [])
        if features & {"deletionVectors", "columnMapping"}:
            raise LakeqlError(f"Delta table {table.source!r} uses {sorted(features)}: lakeql reads plain "
                              "Parquet-file Delta tables only")
        if dt.metadata().partition_columns:
            raise LakeqlError(f"Delta table {table.source!r} is partitioned: lakeql reads unpartitioned "
                              "Delta tables only")
        return list(dt.file_uris())
    except LakeqlError:
        raise
    except Exception as exc:  # noqa: BLE001 - deltalake raises many types for a bad log
        raise LakeqlError(f"cannot read the Delta log of {table.source!r}: {str(exc).splitlines()[0]}"
                          ) from None


def _storage_options(uri: str) -> dict[str, str]:
    if not uri.startswith("s3://"):
        return {}
    import os

    opts = {k: os.environ[v] for k, v in (("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                                          ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
                                          ("AWS_REGION", "AWS_REGION"),
                                          ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL")) if v in os.environ}
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def _iceberg_files(table: Table, stamps: dict[str, FileStamp]) -> list[str]:
    try:
        from pyiceberg.table import StaticTable
    except ImportError:
        raise LakeqlError(f"{table.source!r} is an Iceberg table: install pyiceberg "
                          "(pip install 'lakeql[formats]') to read it") from None
    metas = sorted((p for p in stamps if p.startswith(table.source + "/metadata/")
                    and p.endswith(".metadata.json")), key=_metadata_version)
    if not metas:
        raise LakeqlError(f"Iceberg table {table.source!r} has no metadata/*.metadata.json")
    uri = join_root(table.root, metas[-1])
    try:
        st = StaticTable.from_metadata(uri if "://" in uri else Path(uri).as_uri())
        tasks = list(st.scan().plan_files())
    except Exception as exc:  # noqa: BLE001
        raise LakeqlError(f"cannot read the Iceberg metadata of {table.source!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    if any(task.delete_files for task in tasks):
        raise LakeqlError(f"Iceberg table {table.source!r} has delete files: lakeql reads append-only "
                          "Iceberg tables only")
    return [task.file.file_path for task in tasks]


def _metadata_version(path: str) -> tuple[int, str]:
    name = path.rsplit("/", 1)[-1]
    head = name.split("-", 1)[0].lstrip("v").split(".", 1)[0]
    return (int(head) if head.isdigit() else -1, name)
