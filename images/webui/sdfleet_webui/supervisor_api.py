"""The supervisor's local HTTP API (loopback by default, port 7861).

- ``GET /info``            framework, state, pid, uptime, restarts, last exit code, ...
- ``GET /logs?tail=N``     the last N lines of the WebUI's output (text/plain)
- ``POST /switch``         ``{"framework": "comfyui"}``; needs ``Authorization: Bearer <token>``
- ``POST /shutdown``       ask Agones to shut the game server down; same token

The token is read from the mounted secret file at each request (so rotation works) and
compared in constant time. Without a token file the two POSTs are refused: a WebUI
extension (third-party code in the same network namespace) must never be able to switch
frameworks or end the session.
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import frameworks as fw
from .logs import log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def token_matches(header: str | None, token_file) -> tuple[bool, str]:
    """(allowed, reason). Constant-time comparison of a Bearer token with the secret file."""
    try:
        expected = token_file.read_bytes().strip()
    except OSError:
        return False, f"switching is disabled: no token file at {token_file}"
    if not expected:
        return False, f"switching is disabled: the token file {token_file} is empty"
    if not header or not header.startswith("Bearer "):
        return False, "missing bearer token"
    given = header[len("Bearer "):].strip().encode()
    if not hmac.compare_digest(given, expected):
        return False, "wrong token"
    return True, "ok"


def serve(supervisor) -> _Server:
    config = supervisor.config

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/info":
                return self._json(200, supervisor.info())
            if url.path == "/logs":
                raw = (parse_qs(url.query).get("tail") or ["100"])[0]
                capacity = supervisor.logs.capacity
                if not raw.isdigit() or not 1 <= int(raw) <= capacity:
                    return self._json(400, {"error": "bad-parameter", "message":
                                            f"tail={raw!r} is not allowed; expected an integer "
                                            f"from 1 to {capacity}"})
                data = ("\n".join(supervisor.logs.tail(int(raw))) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return self.wfile.write(data)
            return self._json(404, {"error": "not-found", "message": f"no route {url.path}"})

        def do_POST(self):
            path = urlsplit(self.path).path
            if path not in ("/switch", "/shutdown"):
                return self._json(404, {"error": "not-found", "message": f"no route {path}"})
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 65536)) if length else b""
            allowed, reason = token_matches(self.headers.get("Authorization"), config.token_file)
            if not allowed:
                log("api-refused", level="warning", path=path, reason=reason)
                return self._json(401 if "disabled" not in reason else 403,
                                  {"error": "unauthenticated", "message": reason})
            if path == "/shutdown":
                supervisor.request_shutdown()
                return self._json(202, {"status": "shutting-down"})
            try:
                framework = json.loads(body or b"{}").get("framework")
            except (ValueError, AttributeError):
                framework = None
            if framework not in fw.FRAMEWORKS:
                return self._json(400, {"error": "bad-parameter", "message":
                                        f"framework={framework!r} is not supported; expected one "
                                        f"of {list(fw.FRAMEWORKS)}"})
            if not fw.is_available(framework, config.launch):
                return self._json(409, {"error": "not-installed", "message":
                                        f"framework {framework!r} is not installed in this image"})
            supervisor.request_switch(framework)
            log("api-switch", framework=framework)
            return self._json(202, {"status": "switching", "framework": framework})

    server = _Server((config.api_host, config.api_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="supervisor-api").start()
    return server
