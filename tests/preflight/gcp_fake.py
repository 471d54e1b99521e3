"""A local fake of the Google REST reads the preflight makes, served over real HTTP.

Paths are `/<host>/<API path>` (the preflight's SDFLEET_GCP_API_ROOT layout); answers follow
the APIs' documented shapes: Service Usage `services.get` (`state`), Resource Manager v3
`projects.get` (`parent`), Compute `regions.get` (`quotas[]` of metric/limit/usage),
`machineTypes.get` / `acceleratorTypes.get` (404 when the zone has none). `/echo` plays the
egress address service.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CRM = "cloudresourcemanager.googleapis.com"
SU = "serviceusage.googleapis.com"
CE = "compute.googleapis.com"


class GcpFake:
    def __init__(self, project: str, region: str):
        self.project, self.region = project, region
        self.enabled = {"serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com",
                        "compute.googleapis.com"}
        self.parent = "organizations/1234"
        self.quotas: dict[str, tuple[float, float]] = {}     # metric -> (limit, usage)
        self.machine_types: dict[str, set[str]] = {}         # zone -> names
        self.accelerators: dict[str, set[str]] = {}          # zone -> names
        self.egress = "198.18.0.10"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                status, body = fake.answer(self.path)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str):
        if path == "/echo":
            return 200, self.egress + "\n"
        host, _, rest = path.lstrip("/").partition("/")
        parts = rest.split("/")
        not_found = 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
        if host == SU and len(parts) == 5 and parts[:2] == ["v1", "projects"]:
            state = "ENABLED" if parts[4] in self.enabled else "DISABLED"
            return 200, {"name": f"projects/1/services/{parts[4]}", "state": state}
        if host == CRM and parts[:2] == ["v3", "projects"] and parts[2] == self.project:
            body = {"name": "projects/1", "projectId": self.project}
            if self.parent:
                body["parent"] = self.parent
            return 200, body
        if host == CE and parts[:3] == ["compute", "v1", "projects"] and parts[3] == self.project:
            if parts[4:] == ["regions", self.region]:
                return 200, {"name": self.region, "quotas": [
                    {"metric": m, "limit": limit, "usage": usage}
                    for m, (limit, usage) in self.quotas.items()]}
            if len(parts) == 8 and parts[4] == "zones":
                zone, kind, name = parts[5], parts[6], parts[7]
                table = {"machineTypes": self.machine_types,
                         "acceleratorTypes": self.accelerators}.get(kind, {})
                if name in table.get(zone, set()):
                    return 200, {"name": name, "zone": zone}
        return not_found
