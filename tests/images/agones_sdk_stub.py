"""A stand-in for the Agones SDK sidecar's REST API, with Agones' state semantics.

Serves the real paths: ``PUT /metadata/annotation`` (``{"key", "value"}``, stored with
the SDK's ``agones.dev/sdk-`` prefix), ``POST /ready`` (Scheduled/Allocated -> Ready, like Agones: Ready on
an Allocated game server returns it to the pool), ``POST /health``, ``POST /shutdown``,
``GET /gameserver`` and ``GET /watch/gameserver`` (newline-delimited ``{"result": ...}``,
one line at connect and one per change). ``allocate(labels, annotations)`` plays the
allocator: it sets the state to Allocated and adds the labels, as a GameServerAllocation
does. Every call is recorded with its time.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AgonesSdkStub:
    def __init__(self, name: str = "webui-fleet-abcde"):
        self.cond = threading.Condition()
        self.version = 0
        self.calls: list[tuple[float, str, str]] = []
        self.gs = {"object_meta": {"name": name, "namespace": "default", "uid": "u-1",
                                   "resource_version": "1", "generation": "1",
                                   "creation_timestamp": str(int(time.time())),
                                   "labels": {"agones.dev/fleet": "webui-fleet"}, "annotations": {}},
                   "spec": {"health": {"disabled": False, "period_seconds": 5,
                                       "failure_threshold": 3, "initial_delay_seconds": 5}},
                   "status": {"state": "Scheduled", "address": "10.8.1.7",
                              "ports": [{"name": "webui", "port": 7860}]}}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, body: dict, status: int = 200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub._record("POST", self.path)
                if self.path == "/ready":
                    stub._set_state("Ready")
                elif self.path == "/shutdown":
                    stub._set_state("Shutdown")
                elif self.path != "/health":
                    return self._reply({"error": "Not Found", "code": 5}, 404)
                self._reply({})

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub._record("PUT", self.path)
                if self.path != "/metadata/annotation":
                    return self._reply({"error": "Not Found", "code": 5}, 404)
                with stub.cond:
                    stub.gs["object_meta"]["annotations"][
                        "agones.dev/sdk-" + str(body["key"])] = str(body["value"])
                    stub._changed()
                self._reply({})

            def do_GET(self):
                stub._record("GET", self.path)
                if self.path == "/gameserver":
                    if stub.removed:
                        return self._reply({"error": "game server gone", "code": 5}, 404)
                    return self._reply(stub.snapshot())
                if self.path != "/watch/gameserver":
                    return self._reply({"error": "Not Found", "code": 5}, 404)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                seen = -1
                try:
                    while not stub.closed:
                        with stub.cond:
                            stub.cond.wait_for(lambda: stub.version != seen or stub.closed, timeout=0.5)
                            if stub.closed or stub.removed:
                                break
                            if stub.version == seen:
                                continue
                            seen, body = stub.version, copy.deepcopy(stub.gs)
                        line = json.dumps({"result": body}).encode() + b"\n"
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.closed = False
        self.removed = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _record(self, method: str, path: str) -> None:
        with self.cond:
            self.calls.append((time.time(), method, path))

    def _set_state(self, state: str) -> None:
        with self.cond:
            self.gs["status"]["state"] = state
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.gs["object_meta"]["resource_version"] = str(self.version + 1)
        self.cond.notify_all()

    def delete(self) -> None:
        """Deletion asked for: the game server carries a deletion timestamp (finalizers keep it)."""
        with self.cond:
            self.gs["object_meta"]["deletion_timestamp"] = str(int(time.time()))
            self._changed()

    def remove(self) -> None:
        """The game server is gone: /gameserver answers 404 and the watch ends."""
        with self.cond:
            self.removed = True
            self._changed()

    def snapshot(self) -> dict:
        with self.cond:
            return copy.deepcopy(self.gs)

    def annotation(self, key: str) -> str | None:
        with self.cond:
            return self.gs["object_meta"]["annotations"].get(key)

    @property
    def state(self) -> str:
        with self.cond:
            return self.gs["status"]["state"]

    def allocate(self, labels: dict, annotations: dict | None = None) -> None:
        with self.cond:
            self.gs["status"]["state"] = "Allocated"
            self.gs["object_meta"]["labels"].update(labels)
            self.gs["object_meta"]["annotations"].update(annotations or {})
            self._changed()

    def times(self, method: str, path: str) -> list[float]:
        with self.cond:
            return [t for t, m, p in self.calls if m == method and p == path]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
