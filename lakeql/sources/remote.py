"""Lakes on object storage: ``s3://bucket/prefix`` (and other fsspec URLs when their package is installed).

DuckDB 2.0 cannot load its own ``httpfs`` extension here (extensions are not downloadable at run time and
the ``duckdb-extension-httpfs`` wheels on PyPI are built for duckdb 1.5), so lakeql reads object storage
through Python filesystems instead:

* listing and Parquet footers: ``pyarrow.fs.S3FileSystem`` (part of pyarrow, no extra package);
* DuckDB scans (views, builders): the same filesystem wrapped as an fsspec filesystem
  (``fsspec.implementations.arrow.ArrowFSWrapper``) and registered on the connection with
  ``con.register_filesystem``, so ``read_parquet('s3://...')`` works on it.

Credentials and endpoint come from the standard AWS environment: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``) and
``AWS_ENDPOINT_URL`` (an S3-compatible server such as MinIO or moto). The index of a remote lake is local:
``--index-dir``, or by default ``~/.cache/lakeql/<hash of the URL>`` (:func:`default_index_dir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lakeql.errors import LakeNotFoundError, LakeqlError
from lakeql.lake import FileStamp, UnsupportedFileWarning

_WRAPPERS: dict[int, Any] = {}


class RemoteRoot(str):
    """The root URL of a remote lake, usable where code expects a ``Path`` root: ``root / 'a/b.parquet'``
    is the file's URL and ``root.name`` the last part of the prefix."""

    def __truediv__(self, other: object) -> RemoteRoot:
        return RemoteRoot(self.rstrip("/") + "/" + str(other).lstrip("/"))

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]

    def as_posix(self) -> str:
        return str(self)


def split_url(url: str) -> tuple[str, str]:
    """``('s3', 'bucket/prefix')`` of ``s3://bucket/prefix/``."""
    parsed = urlparse(url)
    path = (parsed.netloc + parsed.path).strip("/")
    return parsed.scheme, path


def fs_path(root: str, rel: str) -> str:
    """The filesystem path (``bucket/prefix/rel``) of a file of the lake at URL ``root``."""
    _, base = split_url(root)
    return f"{base}/{rel}" if rel else base


def s3_filesystem():
    """A ``pyarrow.fs.S3FileSystem`` configured from the AWS environment variables."""
    import pyarrow.fs as pafs

    kwargs: dict[str, Any] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme:
            kwargs["scheme"] = parsed.scheme
            kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        else:
            kwargs["endpoint_override"] = endpoint
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    from lakeql.sources.snapshot import request_retries, request_timeout

    kwargs["connect_timeout"] = kwargs["request_timeout"] = request_timeout()
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=request_retries())
    fs = pafs.S3FileSystem(**kwargs)
    _S3_ENV[id(fs)] = (fs, _aws_env())
    return fs


_S3_ENV: dict[int, tuple[Any, tuple]] = {}  # id -> (lakeql's S3 filesystem, the AWS environment it uses)
_CLIENTS: dict[tuple, Any] = {}


def _aws_env() -> tuple:
    return tuple(os.environ.get(v) for v in _AWS_ENV)


def _boto_client(env: tuple, attempts: int | None = None) -> Any:
    """A botocore S3 client for the AWS environment ``env`` (None when botocore is not installed), making
    at most ``attempts`` requests a call (default ``LAKEQL_S3_RETRIES``)."""
    from lakeql.sources.snapshot import request_retries, request_timeout

    attempts = request_retries() if attempts is None else attempts
    env = (*env, request_timeout(), attempts)
    if env in _CLIENTS:
        return _CLIENTS[env]
    try:
        import botocore.config
        import botocore.session
    except ImportError:
        _CLIENTS[env] = None
        return None
    from lakeql.sources.snapshot import concurrency

    values = dict(zip(_AWS_ENV, env[: len(_AWS_ENV)], strict=True))
    kwargs: dict[str, Any] = {}
    region = values["AWS_REGION"] or values["AWS_DEFAULT_REGION"]
    if region:
        kwargs["region_name"] = region
    endpoint = values["AWS_ENDPOINT_URL_S3"] or values["AWS_ENDPOINT_URL"]
    if endpoint:
        kwargs["endpoint_url"] = endpoint if "://" in endpoint else f"https://{endpoint}"
    if values["AWS_ACCESS_KEY_ID"]:
        kwargs.update(
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"] or "",
            aws_session_token=values["AWS_SESSION_TOKEN"],
        )
    config = botocore.config.Config(
        max_pool_connections=max(10, concurrency()),
        # 'standard': 500/502/503/504, throttling (SlowDown), timeouts and dropped connections are retried
        # with exponential backoff and jitter; a request that hangs fails after the timeout, then retries
        retries={"total_max_attempts": attempts, "mode": "standard"},
        connect_timeout=request_timeout(),
        read_timeout=request_timeout(),
        s3={"addressing_style": "path"} if endpoint else None,
    )
    client = botocore.session.get_session().create_client("s3", config=config, **kwargs)
    _CLIENTS[env] = client
    return client


def direct_get(
    fs: Any,
    path: str,
    start: int,
    end: int,
    unmodified_since_ns: int = 0,
    etag: str = "",
    listed: tuple[int, int] | None = None,
) -> bytes | None:
    """Bytes ``[start, end)`` of ``bucket/key`` with one GET and no HEAD (botocore), or None when that is
    not possible here (not lakeql's S3 filesystem, or botocore is not installed): the caller reads
    through pyarrow then (a HEAD and a GET). Errors are the client's (the caller decides).
    ``unmodified_since_ns``: the object's time as listed; a GET of an object written since fails
    (``PreconditionFailed``) instead of answering bytes of another version; ``etag``: the ETag listed,
    likewise (``If-Match``: exact, where times are whole seconds). A body shorter than the range asked
    is an error (:class:`TruncatedBody`), never bytes taken for the object's. ``listed``: the object's
    (size, time in ns) as listed: a GET refused for ``etag`` by a store that lists the object's ETag
    otherwise than its GETs answer it (:func:`served_etag`) is made again with the one it serves."""
    hit = _S3_ENV.get(id(fs))
    if hit is None or hit[0] is not fs or end <= start:
        return None if end > start else b""
    client = _boto_client(hit[1])
    if client is None:
        return None
    bucket, _, key = path.partition("/")
    extra: dict[str, Any] = {}
    if unmodified_since_ns > 0:
        import datetime as dt

        extra["IfUnmodifiedSince"] = dt.datetime.fromtimestamp(unmodified_since_ns // 10**9, dt.UTC)
    served = _SERVED.get((path, etag)) if etag else None
    if etag:
        extra["IfMatch"] = f'"{served or etag}"'
    from lakeql.sources.snapshot import request_retries

    attempts, sent, attempt = request_retries(), 0, 0
    while True:
        # botocore retries a request that fails or times out before its body; a body cut short or
        # stalled while it is read is retried here (the same backoff: 0.05-1 s doubling, with jitter).
        # Both draw on one budget of LAKEQL_S3_RETRIES requests: each retry here gets a client allowed
        # only the requests left (else a flaky object could cost LAKEQL_S3_RETRIES squared)
        attempt += 1
        if sent:
            client = _boto_client(hit[1], attempts - sent)
        try:
            got = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **extra)
        except Exception as exc:
            if not etag or served is not None or listed is None or error_kind(exc) != "changed":
                raise
            served = served_etag(client, bucket, key, etag, listed)
            if served is None:  # the object changed since it was listed
                raise
            if len(_SERVED) >= 100_000:
                _SERVED.clear()
            _SERVED[(path, etag)] = served
            extra["IfMatch"] = f'"{served}"'
            attempt -= 1
            continue
        sent += 1 + int((got.get("ResponseMetadata") or {}).get("RetryAttempts") or 0)
        try:
            with contextlib.closing(got["Body"]) as body:
                data = _read_body(body, end - start)
            length = int(got.get("ContentLength", -1))
            if len(data) != end - start and length == end - start or 0 <= length != len(data):
                raise TruncatedBody(f"got {len(data)} of {end - start} bytes")
            return data
        except Exception as exc:
            if sent >= attempts or error_kind(exc) not in ("truncated", "timeout", "unreachable"):
                raise
            import random

            time.sleep(min(1.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))


# (bucket/key, ETag listed) -> the ETag the store's GETs answer for that same version (see served_etag)
_SERVED: dict[tuple[str, str], str] = {}


def _parts(etag: str) -> str:
    """The part count of a multipart upload's ETag (``<md5>-<parts>``), '' for a single-part one."""
    return etag.rsplit("-", 1)[1] if "-" in etag else ""


def served_etag(client: Any, bucket: str, key: str, etag: str, listed: tuple[int, int]) -> str | None:
    """The ETag a store's GETs answer for the object version listed with ``etag`` and (size, time in ns)
    ``listed``, when that store lists it otherwise (some S3-compatible stores give a multipart object
    one ETag in listings and another in GET/HEAD); None when the object changed since the listing.

    One HEAD: the same size and (whole-second) time, and an ETag of another kind (multipart or not, or
    another part count) is the listed version under another name; an ETag of the same kind with another
    value is another version (a rewrite within the listed second keeps size and time, not the ETag)."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception:  # noqa: BLE001 - gone, denied, failing: the GET's refusal stands
        return None
    served = str(head.get("ETag", "")).strip('"')
    if not served or served == etag or _parts(served) == _parts(etag):
        return None
    modified = head.get("LastModified")
    if int(head.get("ContentLength", -1)) != listed[0] or modified is None or listed[1] <= 0:
        return None
    return served if int(modified.timestamp()) == listed[1] // 10**9 else None


class TruncatedBody(OSError):
    """An object's body ended before its ``Content-Length`` (a dropped transfer)."""


class BodyTimeout(TimeoutError):
    """An object's body kept coming too slowly: each read got bytes within the read timeout, but the
    whole took longer than :func:`body_seconds` allows (a stalled or trickling transfer)."""


MIN_BODY_RATE = 100_000  # bytes/s: the slowest transfer of a body taken for a live one


def body_seconds(nbytes: int) -> float:
    """Seconds a body of ``nbytes`` may take in all: ``LAKEQL_S3_TIMEOUT``, plus 1 s per 100 kB."""
    from lakeql.sources.snapshot import request_timeout

    return request_timeout() + nbytes / MIN_BODY_RATE


def _read_body(body: Any, nbytes: int) -> bytes:
    """The bytes of botocore's streaming ``body``, read as they arrive (urllib3's ``read1``) so that the
    whole read is bounded by :func:`body_seconds` as well as each wait by the read timeout; the
    response's own ``read`` where urllib3 has no ``read1``."""
    raw = getattr(body, "_raw_stream", None)
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        return body.read()  # botocore checks the bytes against Content-Length (IncompleteReadError)
    deadline = time.monotonic() + body_seconds(nbytes)
    parts = []
    while chunk := read1(1 << 20):
        parts.append(chunk)
        if time.monotonic() > deadline:
            got = sum(len(p) for p in parts)
            raise BodyTimeout(f"{got} of {nbytes} bytes in {body_seconds(nbytes):.1f} s")
    return b"".join(parts)


def filesystem_for(url: str):
    """The pyarrow filesystem of a lake URL (s3 natively; other schemes through fsspec)."""
    scheme, _ = split_url(url)
    if scheme in ("s3", "s3a"):
        return s3_filesystem()
    try:
        import fsspec
        import pyarrow.fs as pafs

        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme)))
    except (ImportError, ValueError) as exc:
        raise LakeNotFoundError(
            f"cannot open {url!r}: no filesystem for {scheme}:// ({exc}); lakeql "
            "reads s3:// lakes, and other fsspec URLs when their package is installed"
        ) from None


_FS_CACHE: dict[tuple, Any] = {}


_AWS_ENV = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


def cached_filesystem(root: str) -> Any:
    """One filesystem per lake URL and AWS environment (for callers that hold a table but not its lake):
    a process that changes the endpoint or the credentials gets a filesystem that uses them."""
    key = (str(root), *_aws_env())
    if key not in _FS_CACHE:
        _FS_CACHE[key] = filesystem_for(root)
    return _FS_CACHE[key]


def remote_listing(root: str, fs: Any, sub: str = "") -> list[FileStamp]:
    """Every file below ``root/sub`` (relative to ``root``): one recursive listing request sequence.

    Hidden names (``.x``, ``_x``) are skipped except ``_delta_log`` (as for local lakes).
    """
    import pyarrow.fs as pafs

    fs = fs if fs is not None else cached_filesystem(root)
    from lakeql.sources.snapshot import active

    snap = active(fs)
    if snap is not None and snap.root == str(root):  # a build running: its listing, no request
        return snap.below(sub)

    base = fs_path(root, "")
    target = fs_path(root, sub) if sub else base
    listed = _boto_listing(fs, target)
    if listed is not None:
        return _stamps(base, listed)
    info = fs.get_file_info(target)
    if info.type == pafs.FileType.File:
        infos = [info]
    elif info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(target, recursive=True, allow_not_found=True))
    else:
        return []
    return _stamps(
        base,
        [(i.path, int(i.size or 0), int(i.mtime_ns or 0), "") for i in infos if i.type == pafs.FileType.File],
    )


def _stamps(base: str, objects: list[tuple[str, int, int, str]]) -> list[FileStamp]:
    """FileStamps relative to ``base`` of listed (path, size, mtime_ns, etag), hidden names skipped."""
    out = []
    for path, size, mtime, etag in objects:
        rel = path[len(base) :].lstrip("/")
        parts = rel.split("/")
        if "" in parts:  # 'a//b.parquet': a valid S3 key, but no filesystem path can name it
            warnings.warn(
                f"skipping {rel!r}: its key holds an empty path component ('//'), which cannot "
                "be read as a file: rename the object",
                UnsupportedFileWarning,
                stacklevel=2,
            )
            continue
        if any(
            p.startswith(".") or (p.startswith("_") and p != "_delta_log" and "_delta_log" not in parts)
            for p in parts
        ):
            continue
        out.append(FileStamp(rel, size, mtime, etag))
    return sorted(out, key=lambda f: f.path)


def _boto_listing(fs: Any, target: str) -> list[tuple[str, int, int, str]] | None:
    """(path, size, mtime_ns, etag) of every object at or below ``target`` (``bucket/prefix``): ListObjectsV2
    pages through botocore, with the ETags pyarrow's listing does not give; None when botocore is not
    there (or ``fs`` is not lakeql's S3 filesystem): the caller lists with pyarrow. A store that cannot be
    listed is a :class:`RemoteStoreError` naming the fix."""
    hit = _S3_ENV.get(id(fs))
    if hit is None or hit[0] is not fs:
        return None
    client = _boto_client(hit[1])
    if client is None:
        return None
    bucket, _, prefix = target.partition("/")
    prefix = prefix.strip("/")
    out: list[tuple[str, int, int, str]] = []
    try:
        pages = client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix + "/" if prefix else ""):
            # keys ending in '/' are folder markers (consoles make them), not files: pyarrow skips them too
            out += [_listed(bucket, o) for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        if not out and prefix:  # no folder of that name: the object itself, if there is one
            page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            out = [_listed(bucket, o) for o in page.get("Contents", []) if o["Key"] == prefix]
    except Exception as exc:  # noqa: BLE001 - botocore's errors, named with the fix
        raise store_error(exc, f"cannot list s3://{target}") from None
    return out


def _listed(bucket: str, obj: dict) -> tuple[str, int, int, str]:
    when = obj.get("LastModified")
    mtime = int(when.timestamp()) * 10**9 + when.microsecond * 1000 if when is not None else 0
    return f"{bucket}/{obj['Key']}", int(obj.get("Size", 0)), mtime, str(obj.get("ETag", "")).strip('"')


def _endpoint() -> str:
    """The S3 endpoint for messages (without any user:password@ part), or 'AWS S3'."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return "AWS S3"
    parsed = urlparse(url if "://" in url else f"https://{url}")
    host = parsed.netloc.rpartition("@")[2]
    return f"{parsed.scheme}://{host}{parsed.path.rstrip('/')}"


_USERINFO = re.compile(r"(?<=://)[^/@\s\"'<>]*@")


def redact(text: str) -> str:
    """``text`` (a message from botocore or pyarrow) without secrets: the ``user:password@`` of any URL in
    it (botocore quotes the endpoint URL it could not reach), and the values of AWS_SECRET_ACCESS_KEY and
    AWS_SESSION_TOKEN, should a message ever hold them."""
    text = _USERINFO.sub("", text)
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(var) or ""
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def error_kind(exc: BaseException) -> str:
    """What a botocore (or read) error means: 'gone', 'denied', 'changed', 'credentials', 'bucket',
    'unreachable', 'timeout', 'truncated', 'throttled', 'server', 'not-s3' or 'other'."""
    name = type(exc).__name__
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in ("PreconditionFailed", "412") or status == 412:
        return "changed"
    if code in ("NoSuchKey", "NotFound"):  # a bare 404 (no S3 error document: lakeql never HEADs) is below
        return "gone"
    if code == "NoSuchBucket":
        return "bucket"
    if code in (
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
    ) or name in ("NoCredentialsError", "PartialCredentialsError"):
        return "credentials"
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return "denied"
    if code in (
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestThrottled",
    ) or status in (429, 503):
        return "throttled"
    if status >= 500 or code in ("InternalError", "ServiceUnavailable", "500", "502", "503", "504"):
        return "server"
    if name in (
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ProxyConnectionError",
        "SSLError",
        "ConnectionError",
    ):
        return "unreachable"
    if name in ("ReadTimeoutError", "ConnectTimeoutError", "TimeoutError") or isinstance(exc, TimeoutError):
        return "timeout"
    if name in (
        "IncompleteReadError",
        "ResponseStreamingError",
        "TruncatedBody",
        "IncompleteRead",
        "ProtocolError",
    ):
        return "truncated"
    if status and not code.isalpha():  # an HTTP answer without an S3 error document
        return "not-s3"
    if code == "404":
        return "not-s3"
    if isinstance(exc, OSError) and "AWS Error " in str(exc):  # pyarrow's S3 filesystem (no botocore)
        return _pyarrow_kind(str(exc))
    return "other"


_AWS_ERROR = re.compile(r"AWS Error (\w+)(?: \(HTTP status (\d+)\))?")
_CURL_CODE = re.compile(r"curlCode: (\d+)")


def _pyarrow_kind(text: str) -> str:
    """:func:`error_kind` of an ``OSError`` of pyarrow's S3 filesystem (``... AWS Error SLOW_DOWN during
    GetObject operation: ...``; a HEAD's error has no body: ``AWS Error UNKNOWN (HTTP status 503)``)."""
    m = _AWS_ERROR.search(text)
    if m is None:
        return "other"
    name, status = m.group(1), int(m.group(2) or 0)
    if name == "NETWORK_CONNECTION":  # curl's: 28 timed out (LAKEQL_S3_TIMEOUT), 18 a body cut short
        curl = _CURL_CODE.search(text)
        return {28: "timeout", 18: "truncated"}.get(int(curl.group(1)) if curl else 0, "unreachable")
    if name in ("SLOW_DOWN", "THROTTLING", "REQUEST_LIMIT_EXCEEDED") or status in (429, 503):
        return "throttled"
    if name in (
        "INVALID_ACCESS_KEY_ID",
        "SIGNATURE_DOES_NOT_MATCH",
        "EXPIRED_TOKEN",
        "INVALID_CLIENT_TOKEN_ID",
    ):
        return "credentials"
    if name == "ACCESS_DENIED" or status == 403:
        return "denied"
    if name == "NO_SUCH_BUCKET":
        return "bucket"
    if name in ("NO_SUCH_KEY", "RESOURCE_NOT_FOUND") or status == 404:
        return "gone"
    if name == "REQUEST_TIMEOUT":
        return "timeout"
    # a GET's error answer (any status) is 'INTERNAL_FAILURE ... Failed to flush response stream'; its HEAD
    # (pyarrow opens a file with one) answered already, so a store error, not a missing or denied object
    if name in ("INTERNAL_FAILURE", "SERVICE_UNAVAILABLE") or status >= 500:
        return "server"
    return "other"


def store_error(exc: BaseException, what: str) -> Exception:
    """``exc`` (botocore's, while ``what`` was done) as one line naming the fix: a
    :class:`RemoteStoreError` when the store itself failed, else ``OSError``/``FileNotFoundError``/
    ``PermissionError`` for the one object (no credentials in any message: botocore's name the operation
    and the error code only)."""
    from lakeql.errors import RemoteStoreError
    from lakeql.sources.snapshot import request_retries, request_timeout

    kind = error_kind(exc)
    detail = redact(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
    ep = _endpoint()
    if kind == "credentials":
        return RemoteStoreError(
            f"{what}: the store refused the credentials ({detail}): check "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)"
        )
    if kind == "bucket":
        return LakeNotFoundError(
            f"{what}: the bucket does not exist at {ep}: check the URL "
            "(s3://bucket/prefix), AWS_ENDPOINT_URL and AWS_REGION"
        )
    if kind == "unreachable":
        return RemoteStoreError(
            f"{what}: cannot connect to {ep} ({detail}): check AWS_ENDPOINT_URL (and that the server runs)"
        )
    if kind == "timeout":
        return RemoteStoreError(
            f"{what}: no answer from {ep} within LAKEQL_S3_TIMEOUT={request_timeout():g} "
            f"s, {request_retries()} attempts: raise LAKEQL_S3_TIMEOUT (seconds) for a "
            "slow store, or check the network"
        )
    if kind in ("throttled", "server"):
        why = "throttled the requests" if kind == "throttled" else "kept failing"
        return RemoteStoreError(
            f"{what}: the store {why} ({detail}) after {request_retries()} attempts: "
            "run it again later, lower LAKEQL_S3_CONCURRENCY or raise LAKEQL_S3_RETRIES"
        )
    if kind == "truncated":
        return RemoteStoreError(
            f"{what}: the transfer ended before the object's length ({detail}), "
            f"{request_retries()} attempts: run it again, or raise LAKEQL_S3_RETRIES"
        )
    if kind == "not-s3":
        return RemoteStoreError(
            f"{what}: {ep} answered without an S3 error ({detail}): is AWS_ENDPOINT_URL "
            "the address of an S3 server?"
        )
    if kind == "denied":
        return PermissionError(f"{what}: access denied: check the credentials' read and list permission")
    if kind == "gone":
        return FileNotFoundError(f"{what}: gone (deleted since the lake was listed?)")
    return OSError(f"{what}: {detail}")


def open_remote(url: str) -> tuple[str, Any, list[FileStamp]]:
    """(normalized root URL, filesystem, listing) of a remote lake, or :class:`LakeNotFoundError`."""
    scheme, path = split_url(url)
    if not path:
        raise LakeNotFoundError(f"{url!r} names no bucket: pass s3://bucket/prefix")
    root = RemoteRoot(f"{scheme}://{path}")
    fs = cached_filesystem(root)
    try:
        listing = remote_listing(root, fs)
    except OSError as exc:
        raise LakeNotFoundError(
            f"cannot list {url!r} ({redact((str(exc).splitlines() or [''])[0])}): check the bucket and "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL"
        ) from None
    if not listing:
        raise LakeNotFoundError(
            f"lake path {url!r} does not exist or is empty: pass s3://bucket/prefix of a "
            "folder of Parquet files"
        )
    _LISTINGS[(str(root), id(fs))] = listing  # what a build's snapshot starts from (no second listing)
    _remember(root, fs, listing)
    return root, fs, listing


_RECENT: dict[int, tuple[Any, float, str, dict[str, FileStamp]]] = {}
_RECENT_LOCK = threading.Lock()


def listing_ttl() -> float:
    """Seconds a lake's listing answers for its objects' sizes and times on a connection
    (``LAKEQL_S3_LISTING_TTL``, default 30; 0: ask the store for each object, as before)."""
    from lakeql.sources.snapshot import _env_number

    return _env_number("LAKEQL_S3_LISTING_TTL", 30)


def _remember(root: str, fs: Any, listing: list[FileStamp], old: Any = None) -> None:
    """Keep ``listing`` as the connection-side snapshot of the lake on ``fs``; objects of ``old`` (the
    previous snapshot) whose size and time did not change keep their fetched bytes."""
    from lakeql.sources.snapshot import Snapshot

    # a connection holds less than a build: small objects up to 1 MB whole, 64 MB in all
    snap = Snapshot(
        fs, str(root), listing, whole=min(whole_limit(), 1_000_000), budget=min(budget_limit(), 64_000_000)
    )
    if old is not None:
        snap.adopt(old)
    with _RECENT_LOCK:
        _RECENT[id(fs)] = (fs, time.monotonic(), snap)


def whole_limit() -> int:
    from lakeql.sources.snapshot import whole_bytes

    return whole_bytes()


def budget_limit() -> int:
    from lakeql.sources.snapshot import cache_bytes

    return cache_bytes()


def recent_snapshot(fs: Any) -> Any | None:
    """The connection-side snapshot of the lake on ``fs``: the listing discovery made (redone when older
    than :func:`listing_ttl`: one paginated LIST per 1,000 objects instead of HEAD requests per object
    and query) and the objects read since; None when there is none (the caller asks the store)."""
    hit = _RECENT.get(id(fs))
    if hit is None or hit[0] is not fs:
        return None
    _, made, snap = hit
    ttl = listing_ttl()
    if ttl <= 0:
        return None
    if time.monotonic() - made > ttl:
        with _RECENT_LOCK:
            if _RECENT.get(id(fs)) is not hit:  # another thread re-listed
                return recent_snapshot(fs)
            _RECENT.pop(id(fs), None)
        try:
            _remember(snap.root, fs, remote_listing(snap.root, fs), old=snap)
        except (OSError, LakeqlError):
            return None
        return recent_snapshot(fs)
    return snap


def forget_listing(fs: Any) -> None:
    """Drop the connection-side listing of the lake on ``fs`` (an object changed since it was made: the
    next read lists the lake again)."""
    with _RECENT_LOCK:
        hit = _RECENT.get(id(fs))
        if hit is not None and hit[0] is fs:
            del _RECENT[id(fs)]


def recent_stamp(fs: Any, path: str) -> FileStamp | None:
    """The stamp of object ``path`` from :func:`recent_snapshot` (None: not listed, or no listing)."""
    snap = recent_snapshot(fs)
    return snap.stamp(path) if snap is not None else None


_LISTINGS: dict[tuple[str, int], list[FileStamp]] = {}


def open_object(fs: Any, root: str, rel: str):
    """A seekable file of ``root/rel``: from the running build's snapshot when it holds the object (or
    knows its size), else opened on the store."""
    from lakeql.sources.snapshot import active

    path = fs_path(root, rel)
    snap = active(fs)
    f = snap.open(path) if snap is not None else None
    return f if f is not None else fs.open_input_file(path)


def prefetch(lake: Any, tables: list[Any]) -> None:
    """Fetch the objects of ``tables`` into the running build's snapshot (concurrently; see
    :mod:`lakeql.sources.snapshot`); nothing when no build runs."""
    from lakeql.sources.snapshot import active

    snap = active(lake.fs)
    if snap is None:
        return
    snap.prefetch(fs_path(t.root, f.path) for t in tables for f in t.files)


def _fsspec_wrapper(fs: Any):
    """``fs`` (pyarrow) as an fsspec filesystem answering to ``s3://`` (what DuckDB registers)."""
    hit = _WRAPPERS.get(id(fs))
    if hit is not None and hit[0] is fs:
        return hit[1]
    from fsspec.implementations.arrow import ArrowFSWrapper

    from lakeql.sources.snapshot import active

    class LakeqlS3(ArrowFSWrapper):
        """While a build runs (:mod:`lakeql.sources.snapshot`), sizes, times and existence come from its
        listing and listed objects are read from its memory: no HEAD, one fetch per object."""

        protocol = ("s3", "s3a")
        root_marker = ""

        def _listed(self, path):
            snap = active(self.fs)
            key = self._strip_protocol(path)
            return snap.stamp(key) if snap is not None else recent_stamp(self.fs, key)

        def info(self, path, **kwargs):
            st = self._listed(path)
            if st is None:
                return super().info(path, **kwargs)
            import datetime as dt

            mtime = dt.datetime.fromtimestamp(st.mtime_ns / 1e9, dt.UTC)
            return {"name": self._strip_protocol(path), "size": int(st.size), "type": "file", "mtime": mtime}

        def modified(self, path):
            return self.info(path)["mtime"] if self._listed(path) is not None else super().modified(path)

        def exists(self, path, **kwargs):
            return True if self._listed(path) is not None else super().exists(path, **kwargs)

        def glob(self, path, **kwargs):
            text = path if isinstance(path, str) else str(path)
            if not any(c in text for c in "*?[") and self._listed(text) is not None:
                return [self._strip_protocol(text)]
            return super().glob(path, **kwargs)

        def _open(self, path, mode="rb", block_size=None, seekable=True, **kwargs):
            snap = active(self.fs)
            if mode == "rb" and snap is not None:
                f = snap.open(self._strip_protocol(path))
                if f is not None:
                    return f
            conn = recent_snapshot(self.fs) if mode == "rb" and snap is None else None
            key = self._strip_protocol(path)
            if conn is not None and conn.stamp(key) is not None:
                # a connection: the first read in a folder fetches its objects (small ones whole, else
                # their footers) concurrently, as a scan of a folder table reads every one of them
                conn.prefetch_folder(key)
                return conn.open(key)
            if mode == "rb":
                # a file whose reads name their range (DuckDB's threads seek and read one file at once:
                # pyarrow's stream keeps its position as shared state and answered other threads' ranges)
                import pyarrow.fs as pafs

                from lakeql.sources.snapshot import TailFile

                info = self.fs.get_file_info(key)
                if info.type == pafs.FileType.File:
                    return TailFile(self.fs, key, int(info.size or 0), b"", int(info.mtime_ns or 0))
            return super()._open(path, mode, block_size, seekable, **kwargs)

        @classmethod
        def _strip_protocol(cls, path):  # 's3://b/k' -> 'b/k'
            text = path if isinstance(path, str) else str(path)
            for p in ("s3://", "s3a://"):
                if text.startswith(p):
                    text = text[len(p) :]
            return text.rstrip("/")

    wrapper = LakeqlS3(fs, skip_instance_cache=True)
    _WRAPPERS[id(fs)] = (fs, wrapper)
    return wrapper


_REGISTERED: dict[int, Any] = {}  # id of a DuckDB connection -> the wrapper registered on it


def register_filesystem(con: Any, fs: Any) -> None:
    """Make ``s3://`` paths readable by DuckDB on ``con`` with ``fs`` (once per connection and
    filesystem: a connection that served another filesystem, e.g. the process-wide type connection of
    the catalog after the endpoint or the credentials changed, gets this one instead)."""
    if fs is None:
        return
    wrapper = _fsspec_wrapper(fs)
    name = wrapper.protocol[0] if isinstance(wrapper.protocol, tuple) else wrapper.protocol
    try:
        if con.filesystem_is_registered(name):
            if _REGISTERED.get(id(con)) is wrapper:
                return
            con.unregister_filesystem(name)
    except Exception:  # noqa: BLE001 - older clients: just try to register
        pass
    _REGISTERED[id(con)] = wrapper
    try:
        con.register_filesystem(wrapper)
    except Exception as exc:  # noqa: BLE001
        if "already" not in str(exc).lower():
            raise LakeqlError(f"cannot register the object-store filesystem on DuckDB: {exc}") from None


@contextlib.contextmanager
def builder_connections(fs: Any, root: str | None = None) -> Iterator[None]:
    """While a remote lake is indexed, the connections and Parquet files lakeql's builders open
    (:mod:`lakeql.sources.buildfs`) get the lake's filesystem.

    Capability builders open private DuckDB connections to scan tables; this is how they read
    ``s3://`` files without each knowing about object storage. Nothing global is patched. With the lake's
    ``root``, the build reads through a :class:`lakeql.sources.snapshot.Snapshot` of the listing
    discovery made (sizes without HEAD requests, each object fetched once).
    """
    if fs is None:
        yield
        return
    from lakeql.sources import buildfs, snapshot

    listing = _LISTINGS.get((str(root), id(fs))) if root is not None else None
    snap = snapshot.Snapshot(fs, str(root), listing) if listing is not None else None
    if snap is not None:
        snapshot.activate(snap)

    buildfs.start(fs, snap)
    try:
        yield
    finally:
        buildfs.stop(fs)
        if snap is not None:
            snapshot.deactivate(snap)


@contextlib.contextmanager
def worker_reads(table: Any, files: list[FileStamp] | None = None) -> Iterator[None]:
    """Reads of ``table`` (of ``files`` of it) by a builder task running where the build's own
    filesystem and snapshot are not: a Ray worker (``--engine ray``) or a spawned process.

    The task gets a :class:`~lakeql.lake.Table` (its root URL and its files' listed sizes, times and
    ETags: no credentials travel with it). Here the worker opens the lake's filesystem from its own AWS
    environment (on a cluster: the environment of ``ray start`` on its node), fetches the objects it reads
    once, concurrently (small ones whole, bigger ones their footer; ``LAKEQL_S3_*`` settings of the
    worker), pinned to the listed versions, and reads them from its memory: no listing, no HEAD. Workers
    do not share the driver's cache (another process, maybe another machine): an object the driver's
    catalog stage fetched is fetched again by the worker that profiles its table. A store that fails past
    the retries raises :class:`lakeql.errors.RemoteStoreError` (the driver stops the build). Nothing to
    do for a local lake or where a build's filesystem is already active (the local engine's threads)."""
    from lakeql.sources import buildfs, snapshot

    root = getattr(table, "root", None)
    if not (isinstance(root, str) and "://" in root) or buildfs._STATE["fs"] is not None:
        yield
        return
    fs = cached_filesystem(root)
    snap = snapshot.Snapshot(fs, str(root), list(table.files))
    snap.prefetch(fs_path(root, f.path) for f in (files if files is not None else table.files))
    snapshot.activate(snap)
    buildfs.start(fs, snap)
    try:
        yield
    except Exception:
        if snap.failure is not None:  # DuckDB's error hides the store's: the driver must see the store's
            raise snap.failure from None
        raise
    finally:
        buildfs.stop(fs)
        snapshot.deactivate(snap)


def default_index_dir(url: str) -> Path:
    """Where the index of a remote lake goes by default: ``~/.cache/lakeql/<hash of the URL>``."""
    digest = hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lakeql" / f"remote-{digest}"
