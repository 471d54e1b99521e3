"""Zero to JupyterHub's proxy, configurable-http-proxy (CHP), run as JupyterHub runs it.

What a team would put in front of per-person notebook/WebUI servers instead of the sdfleet
router. Installed from npm at the version the z2jh chart ships (benchmarks/chp/package.json,
locked by package-lock.json; `make bench` runs `npm ci` there).

How JupyterHub drives it, and so how the benchmark does:
- started with the z2jh chart's arguments: `--ip --api-ip --api-port --default-target
  <hub> --error-target <hub>/hub/error --port` and the API token in CONFIGPROXY_AUTH_TOKEN
  (zero-to-jupyterhub-k8s, jupyterhub/templates/proxy/deployment.yaml, chart pinning
  quay.io/jupyterhub/configurable-http-proxy:5.3.0 in jupyterhub/values.yaml);
- one route per user server, `/user/<name>/` -> the server's URL, added with
  `POST <api>/api/routes/user/<name>/`, header `Authorization: token <token>`, body
  `{"user": name, "server_name": "", "target": url, "jupyterhub": true}`
  (jupyterhub/jupyterhub, jupyterhub/proxy.py: Proxy.add_user, ConfigurableHTTPProxy.add_route
  and api_request);
- the person's requests carry the route's prefix: `/user/<name>/...`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import urllib.request
from pathlib import Path

from testing.helpers.servers import ManagedProcess, free_port, wait_for_port

CHP_DIR = Path(__file__).resolve().parent / "chp"
CHP_BIN = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
MIN_NODE_MAJOR = 20  # configurable-http-proxy 5.3.0 package.json: "engines": {"node": ">= 20"}


def check_installed() -> None:
    """A clear error instead of a missing-file traceback when the npm install step was skipped."""
    node = shutil.which("node")
    if not node:
        raise RuntimeError("configurable-http-proxy needs Node.js >= 20 (`node` not on PATH)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        raise RuntimeError(f"configurable-http-proxy 5.3.0 needs Node.js >= {MIN_NODE_MAJOR}, "
                           f"found {version}")
    if not CHP_BIN.exists():
        raise RuntimeError(f"{CHP_BIN} is missing: run `make bench`, or "
                           f"`npm ci --prefix {CHP_DIR}`")


class ConfigurableHttpProxy:
    """One CHP process (one Node.js event loop, like one nginx worker) and its REST API."""

    def __init__(self, hub_url: str = "http://127.0.0.1:9"):
        check_installed()
        self.port, self.api_port = free_port(), free_port()
        self.token = secrets.token_hex(32)
        self.hub_url = hub_url  # the z2jh default target; never reached by user routes
        self.process = ManagedProcess(
            [str(CHP_BIN), "--ip", "127.0.0.1", "--api-ip", "127.0.0.1",
             "--api-port", str(self.api_port), "--default-target", hub_url,
             "--error-target", f"{hub_url}/hub/error", "--port", str(self.port)],
            self.port, env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token},
            log_name="chp")

    def start(self) -> ConfigurableHttpProxy:
        self.process.start()
        wait_for_port(self.api_port, proc=self.process.proc)
        return self

    def stop(self) -> None:
        self.process.stop()

    @property
    def proc(self):  # so the benchmark reads this process's CPU time like an nginx's
        return self.process.proc

    def _api(self, method: str, path: str, body: dict | None = None) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/routes{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def add_user_route(self, name: str, target: str) -> None:
        """What JupyterHub does when `name`'s server is ready."""
        self._api("POST", f"/user/{name}/", {"user": name, "server_name": "", "target": target,
                                             "jupyterhub": True})

    def routes(self) -> dict:
        return json.loads(self._api("GET", ""))

    @staticmethod
    def user_path(name: str) -> str:
        return f"/user/{name}/"
