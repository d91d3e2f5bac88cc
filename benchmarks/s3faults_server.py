"""A moto S3 server (server mode) that injects faults on chosen requests, in front of moto's own app.

What real object stores do and moto does not: throttling (``503 SlowDown``), internal errors (``500``),
requests that hang, bodies cut short of their ``Content-Length``, credentials refused, an object deleted or
rewritten between the listing and the read. Nothing of lakeql is patched: the client talks HTTP to this
server, which answers some requests itself and passes the rest to moto. Run as its own process::

    python benchmarks/s3faults_server.py --port 5123 [--latency-ms 0]

Control (neither slowed nor counted):

* ``POST /__faults`` with a JSON list of rules replaces the rules; ``GET /__faults`` answers how many
  requests each rule hit so far (``{"hits": [...]}``); ``POST /__reset`` zeroes the request counts
  (``GET /__counts``, as in ``benchmarks/s3server.py``).

A rule: ``{"kind": "GET"|"GET_RANGE"|"LIST"|"HEAD"|"PUT"|"*", "key": "substring of bucket/key",
"times": 1 (-1: every matching request), "skip": 0 (let that many matching requests through first),
"range": "substring of the Range header" (optional: e.g. ``"bytes=0-"``, reads from an object's start, not
its footer)}`` plus one action:

* ``"status": 503, "code": "SlowDown"``: an S3 error response instead of moto's;
* ``"hang": 30``: sleep that many seconds, then answer normally;
* ``"trickle": 0.1``: moto's answer, one byte of its body every that many seconds (each read gets a byte
  long before a read timeout: only a bound on the whole request ends it);
* ``"truncate": 100``: moto's answer with its ``Content-Length`` but that many bytes fewer (the
  connection then closes, as a dropped transfer does);
* ``"list_etags": true``: a LIST answered with other ETags than the objects' own (as stores that list a
  multipart object's ETag otherwise than its GET answers it, or an object rewritten in between);
* ``"list_time": "2026-01-01T00:00:00.000Z"``: a LIST answered with that ``LastModified`` for every
  object (S3 times are whole seconds: two writes within one second list the same time, which a test
  cannot otherwise arrange on a busy machine);
* ``"then_delete": "bucket/key"`` or ``"then_put": "bucket/key", "body_hex": "..."``: answer normally,
  then delete (or overwrite) that object in moto (an object changing between a LIST and its GETs).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3server import CountingLatency, request_kind  # noqa: E402

_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
    "<Resource>{resource}</Resource><RequestId>fault-injected</RequestId></Error>"
)
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FaultInjector:
    """WSGI middleware in front of :class:`CountingLatency` (which is in front of moto)."""

    def __init__(self, app: CountingLatency) -> None:
        self.app = app
        self.rules: list[dict] = []
        self.hits: list[int] = []
        self.lock = threading.Lock()

    def _pick(self, kind: str, target: str, range_: str = "") -> dict | None:
        with self.lock:
            for i, rule in enumerate(self.rules):
                if rule.get("kind", "*") not in ("*", kind) or rule.get("key", "") not in target:
                    continue
                if "range" in rule and (not range_ or rule["range"] not in range_):
                    continue
                rule["_seen"] = rule.get("_seen", 0) + 1
                if rule["_seen"] <= int(rule.get("skip", 0)):
                    continue
                times = int(rule.get("times", 1))
                if times >= 0 and self.hits[i] >= times:
                    continue
                self.hits[i] += 1
                return rule
        return None

    def _moto(self, environ: dict, method: str, target: str, body: bytes = b"") -> None:
        """A request of our own to moto (the client's Host and Authorization headers: moto routes by them)."""
        import io

        env = {k: v for k, v in environ.items() if k.startswith("HTTP_") and k != "HTTP_RANGE"}
        env.update(
            {
                "REQUEST_METHOD": method,
                "PATH_INFO": "/" + target,
                "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": environ.get("SERVER_PORT", "80"),
                "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.version": (1, 0),
                "wsgi.multithread": True,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
                "CONTENT_LENGTH": str(len(body)),
                "CONTENT_TYPE": "application/octet-stream",
            }
        )
        env.pop("HTTP_CONTENT_MD5", None)
        env.pop("HTTP_X_AMZ_CONTENT_SHA256", None)
        status: list[str] = []
        out = self.app.app(env, lambda s, h, exc_info=None: status.append(s))
        b"".join(out)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/__faults":
            if environ["REQUEST_METHOD"] == "POST":
                n = int(environ.get("CONTENT_LENGTH") or 0)
                rules = json.loads(environ["wsgi.input"].read(n) or b"[]")
                with self.lock:
                    self.rules, self.hits = rules, [0] * len(rules)
            body = json.dumps({"hits": self.hits}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path.startswith("/__"):
            return self.app(environ, start_response)
        kind = request_kind(
            environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), "HTTP_RANGE" in environ
        )
        target = path.lstrip("/")
        rule = self._pick(kind, target, environ.get("HTTP_RANGE", ""))
        if rule is None:
            return self.app(environ, start_response)
        if "status" in rule:
            with self.app.lock:
                self.app.counts[kind] += 1
                self.app.counts["faults"] += 1
            status = int(rule["status"])
            body = _ERROR_XML.format(
                code=rule.get("code", "InternalError"),
                message=rule.get("message", "injected fault"),
                resource="/" + target,
            ).encode()
            start_response(
                f"{status} {_REASONS.get(status, 'Error')}",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if "hang" in rule:
            time.sleep(float(rule["hang"]))
            return self.app(environ, start_response)
        if "truncate" in rule:
            out = b"".join(self.app(environ, start_response))
            return [out[: max(0, len(out) - int(rule["truncate"]))]]
        if "trickle" in rule:  # the body one byte at a time, that many seconds apart (no read waits long)
            out = b"".join(self.app(environ, start_response))
            delay = float(rule["trickle"])

            def slowly():
                for i in range(len(out)):
                    time.sleep(delay)
                    yield out[i : i + 1]

            return slowly()
        if rule.get("list_etags") or rule.get("list_time"):
            got: list = []
            out = b"".join(self.app(environ, lambda s, h, exc_info=None: got.append((s, h))))
            if rule.get("list_etags"):  # '"<md5>"' listed as '"<md5>0-2"' (a multipart upload's form)
                out = re.sub(rb"<ETag>(?:&quot;|&#34;|\")?([0-9a-f]+)", rb"\g<0>0-2", out)
            if rule.get("list_time"):  # every object listed with this LastModified
                when = str(rule["list_time"]).encode()
                tag = b"<LastModified>" + when + b"</LastModified>"
                out = re.sub(rb"<LastModified>[^<]*</LastModified>", tag, out)
            status, headers = got[0]
            headers = [(k, str(len(out)) if k.lower() == "content-length" else v) for k, v in headers]
            start_response(status, headers)
        else:
            out = b"".join(self.app(environ, start_response))
        if "then_delete" in rule:
            self._moto(environ, "DELETE", rule["then_delete"])
        if "then_put" in rule:
            self._moto(environ, "PUT", rule["then_put"], bytes.fromhex(rule.get("body_hex", "")))
        return [out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    args = ap.parse_args()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = FaultInjector(
        CountingLatency(DomainDispatcherApplication(create_backend_app), args.latency_ms / 1000)
    )
    server = make_server("127.0.0.1", args.port, app, True, request_handler=MotoRequestHandler)
    print(f"ready http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
