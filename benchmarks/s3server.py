"""A moto S3 server (server mode) that sleeps ``--latency-ms`` per request and counts requests by kind.

Stands in for real S3, where every request costs tens of milliseconds: with the sleep, serial request
loops show their real cost and concurrency shows its gain. Run as its own process (it must not share the
GIL with the client being measured)::

    python benchmarks/s3server.py --port 5123 --latency-ms 30

``GET /__counts`` answers the counts so far as JSON (``LIST``, ``HEAD``, ``GET`` (whole object),
``GET_RANGE``, ``PUT``, ``OTHER``, and ``bytes`` sent), ``POST /__reset`` zeroes them. Neither is slowed
or counted. Used by ``benchmarks/s3scale.py`` and ``tests/test_s3_scale.py``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from urllib.parse import parse_qs


def request_kind(method: str, path: str, query: str, has_range: bool) -> str:
    """``LIST``/``HEAD``/``GET``/``GET_RANGE``/``PUT``/``OTHER`` of one S3 request (path style)."""
    key = path.lstrip("/").partition("/")[2]
    q = parse_qs(query, keep_blank_values=True)
    if method == "GET" and (not key or "list-type" in q or "prefix" in q or "delimiter" in q):
        return "LIST"
    if method == "HEAD":
        return "HEAD"
    if method == "GET":
        return "GET_RANGE" if has_range else "GET"
    if method == "PUT":
        return "PUT"
    return "OTHER"


class CountingLatency:
    """WSGI middleware: sleep, count, pass on to moto."""

    def __init__(self, app, latency: float) -> None:
        self.app = app
        self.latency = latency
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.inflight = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/__counts":
            body = json.dumps(dict(self.counts)).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path == "/__reset":
            with self.lock:
                self.counts.clear()
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        kind = request_kind(
            environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), "HTTP_RANGE" in environ
        )
        with self.lock:
            self.counts[kind] += 1
            self.inflight += 1
            self.counts["max_inflight"] = max(self.counts["max_inflight"], self.inflight)
        try:
            if self.latency:
                time.sleep(self.latency)
            out = list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.inflight -= 1
        n = sum(len(b) for b in out)
        with self.lock:
            self.counts["bytes"] += n
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    args = ap.parse_args()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = CountingLatency(DomainDispatcherApplication(create_backend_app), args.latency_ms / 1000)
    server = make_server("127.0.0.1", args.port, app, True, request_handler=MotoRequestHandler)
    print(f"ready http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
