"""Local HTTP servers playing CivitAI (API + download redirect), a file host and a
Hugging Face-style resolver, with the faults the fetcher must survive.

Three real servers on loopback ports (different ports = different hosts for requests,
so tokens must not follow redirects to the file host):

- api:   ``GET /api/v1/model-versions/<id>``, ``GET /api/download/models/<id>`` -> 302
- files: ``GET|HEAD /files/<name>`` with Range / If-Range, ETag
- hf:    ``HEAD|GET /<org>/<repo>/resolve/<rev>/<file>`` -> 302 to files, with
         ``X-Linked-Etag`` (the SHA-256), ``X-Linked-Size`` and ``X-Repo-Commit``, as the Hub
         answers an LFS file (huggingface_hub file_download.py ``get_hf_file_metadata`` reads
         these; ``HF_ENDPOINT`` points huggingface_hub here)

Faults per file: answer statuses first (429 with Retry-After, 503...), cut the connection
after N bytes, publish a wrong hash, need a token (401), ignore Range.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class HostedFile:
    name: str
    data: bytes
    model_type: str = "Checkpoint"
    version_id: int | None = None
    published_sha256: str | None = None  # None -> the true hash
    needs_token: str | None = None
    statuses_first: list = field(default_factory=list)  # e.g. [(429, {"Retry-After": "1"})]
    cut_after: int | None = None  # first full GET closes the connection after this many bytes
    statuses_after_cut: list = field(default_factory=list)  # answered to the requests after the cut
    ignore_range: bool = False
    content_disposition: str | None = None
    chunk_delay: float = 0.0
    gets: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:16]}"'


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class FakeModelHosts:
    def __init__(self):
        self.files: dict[str, HostedFile] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.api = self._serve("api")
        self.file_host = self._serve("files")
        self.hf = self._serve("hf")

    # --- set-up -------------------------------------------------------------------
    def add(self, hosted: HostedFile) -> HostedFile:
        self.files[hosted.name] = hosted
        return hosted

    def url(self, server: str, path: str) -> str:
        srv = {"api": self.api, "files": self.file_host, "hf": self.hf}[server]
        return f"http://127.0.0.1:{srv.server_address[1]}{path}"

    @property
    def civitai_api_base(self) -> str:
        return self.url("api", "/api")

    @property
    def hf_endpoint(self) -> str:
        return self.url("hf", "")

    def seen(self, server: str | None = None, path_prefix: str = "") -> list[dict]:
        with self.lock:
            return [r for r in self.requests if (server is None or r["server"] == server)
                    and r["path"].startswith(path_prefix)]

    def close(self) -> None:
        for srv in (self.api, self.file_host, self.hf):
            srv.shutdown()
            srv.server_close()

    # --- plumbing -----------------------------------------------------------------
    def _serve(self, role: str) -> _Server:
        hosts = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                hosts._handle(role, self, head=False)

            def do_HEAD(self):
                hosts._handle(role, self, head=True)

        server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def _record(self, role: str, handler, head: bool) -> None:
        with self.lock:
            self.requests.append({"server": role, "method": "HEAD" if head else "GET",
                                  "path": handler.path,
                                  # HTTP names are case-insensitive (httpx sends lower case)
                                  "headers": {k.title(): v for k, v in handler.headers.items()},
                                  "at": time.monotonic()})

    def _handle(self, role: str, h: BaseHTTPRequestHandler, head: bool) -> None:
        self._record(role, h, head)
        if role == "api":
            self._api(h)
        elif role == "hf":
            self._hf(h, head)
        else:
            with self.lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            try:
                self._file(h, head)
            finally:
                with self.lock:
                    self.active -= 1

    @staticmethod
    def _send(h, status: int, body: bytes = b"", headers: dict | None = None, head=False) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body and not head:
            h.wfile.write(body)

    def _by_version(self, version: int) -> HostedFile | None:
        return next((f for f in self.files.values() if f.version_id == version), None)

    def _token_ok(self, h, hosted: HostedFile) -> bool:
        return not hosted.needs_token or h.headers.get("Authorization") == f"Bearer {hosted.needs_token}"

    def _api(self, h) -> None:
        m = re.fullmatch(r"/api/v1/model-versions/(\d+)", h.path)
        d = re.fullmatch(r"/api/download/models/(\d+)", h.path)
        hosted = self._by_version(int((m or d).group(1))) if (m or d) else None
        if hosted is None:
            return self._send(h, 404, b'{"error":"No model with id"}', {"Content-Type": "application/json"})
        if m:
            body = {"id": hosted.version_id, "modelId": 1000 + hosted.version_id, "name": "v1",
                    "model": {"name": hosted.name, "type": hosted.model_type},
                    "files": [
                        {"name": "preview.png", "type": "Training Data", "primary": False,
                         "hashes": {"SHA256": "00" * 32}, "downloadUrl": self.url("files", "/files/none")},
                        {"name": hosted.name, "type": "Model", "primary": True,
                         "sizeKB": len(hosted.data) / 1024,
                         "hashes": {"SHA256": (hosted.published_sha256 or hosted.sha256).upper()},
                         "downloadUrl": self.url("api", f"/api/download/models/{hosted.version_id}")}]}
            return self._send(h, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        if not self._token_ok(h, hosted):
            return self._send(h, 401, b'{"error":"Unauthorized"}', {"Content-Type": "application/json"})
        return self._send(h, 302, b"", {"Location": self.url("files", f"/files/{hosted.name}?sig=secret-signature")})

    def _hf(self, h, head: bool) -> None:
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", h.path)
        hosted = self.files.get(m.group(3)) if m else None
        if hosted is None:
            return self._send(h, 404, b"Entry not found", head=head)
        if not self._token_ok(h, hosted):
            return self._send(h, 401, b"Access to model is restricted", head=head)
        return self._send(h, 302, b"", {
            "Location": self.url("files", f"/files/{hosted.name}?X-Amz-Signature=cdn-secret"),
            "X-Linked-Etag": f'"{hosted.published_sha256 or hosted.sha256}"',
            "X-Linked-Size": str(len(hosted.data)), "ETag": '"abc123-git-oid"',
            "X-Repo-Commit": "0123456789abcdef0123456789abcdef01234567"}, head=head)

    def _file(self, h, head: bool) -> None:
        name = h.path.split("?", 1)[0].removeprefix("/files/")
        hosted = self.files.get(name)
        if hosted is None:
            return self._send(h, 404, b"no such file", head=head)
        if hosted.statuses_first:
            status, headers = hosted.statuses_first.pop(0)
            return self._send(h, status, b"slow down", headers, head=head)
        headers = {"ETag": hosted.etag, "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if hosted.content_disposition:
            headers["Content-Disposition"] = hosted.content_disposition
        data, status = hosted.data, 200
        rng = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        if rng and not hosted.ignore_range and (if_range is None or if_range == hosted.etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(hosted.data):
                return self._send(h, 416, b"", {"Content-Range": f"bytes */{len(hosted.data)}"}, head=head)
            status, data = 206, hosted.data[start:]
            headers["Content-Range"] = f"bytes {start}-{len(hosted.data) - 1}/{len(hosted.data)}"
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if head:
            return
        hosted.gets += 1
        limit = len(data)
        if hosted.cut_after is not None and status == 200:
            limit, hosted.cut_after = hosted.cut_after, None
            hosted.statuses_first.extend(hosted.statuses_after_cut)
            h.close_connection = True
        step = 64 * 1024
        for offset in range(0, limit, step):
            h.wfile.write(data[offset:min(limit, offset + step)])
            if hosted.chunk_delay:
                time.sleep(hosted.chunk_delay)
        h.wfile.flush()
