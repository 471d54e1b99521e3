"""The supervisor's local HTTP API (loopback by default, port 7861).

- ``GET /info``            framework, state, pid, uptime, restarts, last exit code, ...
- ``GET /logs?tail=N``     the last N lines of the WebUI's output (text/plain)

Read-only, so it needs no secret. There is deliberately no ``/switch`` and no
``/shutdown``:
- one image holds one framework; a person on another framework gets a pod from another
  fleet, so switching is the platform's job, not the pod's;
- any secret this API could check would sit in the WebUI container, where third-party
  extensions run as the same user and could read it. Ending a session is the culler's job
  (it deletes the GameServer through the Kubernetes API) or the supervisor's own decision
  when it gives up restarting.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


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
            return self._json(405, {"error": "method-not-allowed",
                                    "message": f"POST {path}: this API only reads (GET /info, GET /logs)"})

    server = _Server((config.api_host, config.api_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="supervisor-api").start()
    return server
