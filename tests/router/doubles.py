"""Test doubles for what the router calls that is not under test here.

- `MetadataServer`: the GCE metadata server's identity endpoint (OIDC token for an audience).
- `AllocatorDouble`: the allocator's HTTP contract (docs/contracts.md section 3), faithful
  in what the router relies on: it checks the router's bearer token and verifies the
  person's IAP assertion itself, derives the id from the verified subject, records the
  mapping in Redis (section 2), and answers ready / pending / unavailable. Which pod an
  identity gets, and after how many pending answers, is set by the test.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt

from testing.helpers.iap import IAP_ISSUER
from testing.router.resp import Resp


def contract_id(sub: str) -> str:
    """docs/contracts.md section 1, written independently of the router's verifier."""
    prefix = "accounts.google.com:"
    if sub.startswith(prefix) and sub[len(prefix):].isdigit() and sub[len(prefix):].isascii():
        return "g-" + sub[len(prefix):]
    raw = sub.encode()
    assert 0 < len(raw) <= 37, "subject-not-supported"
    return "b-" + base64.b32hexencode(raw).decode().rstrip("=").lower()


class _Server:
    def __init__(self, handler_factory, port: int = 0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler_factory())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MetadataServer:
    """Issues HS256 'OIDC' tokens; the allocator double checks them with the same secret."""

    def __init__(self):
        self.secret = uuid.uuid4().hex
        self.requests = 0
        self.lifetime = 3600
        outer = self

        def factory():
            class Handler(BaseHTTPRequestHandler):
                def do_GET(self):  # noqa: N802
                    url = urlsplit(self.path)
                    if (url.path != "/computeMetadata/v1/instance/service-accounts/default/identity"
                            or self.headers.get("Metadata-Flavor") != "Google"):
                        self.send_response(403)
                        self.end_headers()
                        return
                    outer.requests += 1
                    audience = parse_qs(url.query)["audience"][0]
                    now = int(time.time())
                    token = jwt.encode({"aud": audience, "iss": "https://accounts.google.com",
                                        "sub": "router-sa", "iat": now,
                                        "exp": now + outer.lifetime}, outer.secret, "HS256")
                    body = token.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass
            return Handler

        self.server = _Server(factory)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def check(self, authorization: str, audience: str) -> bool:
        if not authorization.startswith("Bearer "):
            return False
        try:
            jwt.decode(authorization[7:], self.secret, algorithms=["HS256"], audience=audience)
        except jwt.PyJWTError:
            return False
        return True

    def close(self) -> None:
        self.server.close()


class AllocatorDouble:
    def __init__(self, iap, metadata: MetadataServer, redis_port: int, redis_password: str,
                 prefix: str = "sdfleet:", port: int = 0):
        self.iap, self.metadata, self.prefix = iap, metadata, prefix
        self.redis_port, self.redis_password = redis_port, redis_password
        self.pods: dict[str, list[str]] = {}    # id -> targets to hand out, in order
        self.pending: dict[str, int] = {}       # id -> pending answers before ready
        self.calls: list[dict] = []
        self.gone: set[str] = set()             # targets whose game server no longer exists
        self.labelled: dict[str, str] = {}      # id -> target of an Allocated game server
                                                # labelled with it (what adopting finds)
        self.lock = threading.Lock()
        self._port = port
        self.path = "/allocate"
        self._start()

    def _start(self) -> None:
        outer = self

        def factory():
            class Handler(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def do_POST(self):  # noqa: N802
                    length = int(self.headers.get("Content-Length", "0") or 0)
                    request = json.loads(self.rfile.read(length) or b"{}")
                    status, body = outer._allocate(self.headers, request.get("adoptOnly") is True)
                    data = json.dumps(body).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

                def log_message(self, *args):
                    pass
            return Handler

        self.server = _Server(factory, self._port)
        self._port = self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.path}"

    def pod_gone(self, target: str) -> None:
        """The game server behind this target is gone (Agones deleted it)."""
        self.gone.add(target)

    def give(self, sub: str, *targets: str, pending: int = 0) -> str:
        ident = contract_id(sub)
        self.pods[ident] = list(targets)
        self.pending[ident] = pending
        return ident

    def _allocate(self, headers, adopt_only: bool = False) -> tuple[int, dict]:
        call = {"bearer_ok": self.metadata.check(headers.get("Authorization", ""), self.url),
                "adopt_only": adopt_only}
        self.calls.append(call)
        if not call["bearer_ok"]:
            return 401, {"status": "error", "error": "unauthenticated", "message": "bad bearer"}
        try:
            key = jwt.PyJWK(self.iap.jwks["keys"][0]).key
            claims = jwt.decode(headers.get("x-goog-iap-jwt-assertion", ""), key,
                                algorithms=["ES256"], audience=self.iap.audience,
                                issuer=IAP_ISSUER)
        except jwt.PyJWTError:
            return 401, {"status": "error", "error": "unauthenticated", "message": "bad jwt"}
        ident = contract_id(claims["sub"])
        call["id"] = ident
        try:
            redis = Resp(self.redis_port, self.redis_password)
        except OSError:
            return 503, {"status": "error", "error": "redis-unavailable",
                         "message": "Redis is down", "retryAfterSeconds": 2}
        try:
            with self.lock:
                existing = redis("HGET", f"{self.prefix}map:{ident}", "target")
                if existing and existing not in self.gone:
                    # the real allocator answers ready only for a live game server (is_live)
                    return 200, {"status": "ready", "id": ident, "gameServer": "gs-" + ident,
                                 "target": existing, "allocatedAt": time.time()}
                if existing:  # stale: its game server is gone; dropped, as the allocator does
                    redis("DEL", f"{self.prefix}map:{ident}")
                if adopt_only:  # the real allocator's adopt step: a labelled game server only
                    target = self.labelled.get(ident)
                    if target is None or target in self.gone:
                        return 200, {"status": "pending", "id": ident, "phase": "not-allocated",
                                     "message": "No GPU workspace is assigned to you yet.",
                                     "retryAfterSeconds": 3}
                    call["adopted"] = target
                    redis("HSET", f"{self.prefix}map:{ident}", "gs", "gs-" + ident, "target", target,
                          "allocated_at", time.time(), "sub", claims["sub"], "email", "")
                    return 200, {"status": "ready", "id": ident, "gameServer": "gs-" + ident,
                                 "target": target, "allocatedAt": time.time()}
                if self.pending.get(ident, 0) > 0 or not self.pods.get(ident):
                    self.pending[ident] = max(0, self.pending.get(ident, 0) - 1)
                    return 200, {"status": "pending", "id": ident, "phase": "waiting-for-gpu",
                                 "message": "Waiting for a GPU node to start.",
                                 "retryAfterSeconds": 1}
                target = self.pods[ident].pop(0)
                now = time.time()
                redis("HSET", f"{self.prefix}map:{ident}", "gs", "gs-" + ident, "target", target,
                      "allocated_at", now, "sub", claims["sub"], "email", claims.get("email", ""))
                redis("ZADD", f"{self.prefix}activity", now, ident)
                call["allocated"] = target
                self.labelled[ident] = target
                return 200, {"status": "ready", "id": ident, "gameServer": "gs-" + ident,
                             "target": target, "allocatedAt": now}
        finally:
            redis.close()

    def stop(self) -> None:
        self.server.close()

    def start(self) -> None:
        self._start()


class CountingProxy:
    """Sits between the router and the real allocator and counts the POSTs it forwards."""

    def __init__(self, upstream_url: str):
        self.upstream = urlsplit(upstream_url)
        self.calls: list[float] = []
        outer = self

        def factory():
            class Handler(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def do_POST(self):  # noqa: N802
                    import http.client
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                    outer.calls.append(time.monotonic())
                    conn = http.client.HTTPConnection(outer.upstream.hostname,
                                                      outer.upstream.port, timeout=30)
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "connection")}
                    conn.request("POST", self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    conn.close()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length",
                                             "server", "date"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

                def log_message(self, *args):
                    pass
            return Handler

        self.server = _Server(factory)
        self.url = f"http://127.0.0.1:{self.server.port}{self.upstream.path}"

    def close(self) -> None:
        self.server.close()
