"""Runs the real supervisor (``python -m sdfleet_webui.supervisor``) as a child process
with the stub WebUI, on free loopback ports, and reads its API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
import requests

from testing.helpers.servers import ManagedProcess, free_port
from tests.images.conftest import child_env

STUB = Path(__file__).with_name("stub_webui.py")


class SupervisorUnderTest:
    def __init__(self, tmp: Path, plan: list[dict], **env: str):
        self.tmp = tmp
        self.plan = tmp / "plan.json"
        self.plan.write_text(json.dumps(plan))
        self.record = tmp / "requests.log"
        self.record.touch()
        self.webui_port, self.api_port = free_port(), free_port()
        self.scratch = tmp / "scratch"
        settings = dict(
            SDFLEET_WEBUI_COMMAND=(f"{sys.executable} {STUB} --port {{port}} --framework {{framework}} "
                                   f"--plan {self.plan} --record {self.record}"),
            SDFLEET_WEBUI_PORT=str(self.webui_port), SDFLEET_SUPERVISOR_PORT=str(self.api_port),
            SDFLEET_SCRATCH=str(self.scratch), SDFLEET_MODELS_ROOT=str(tmp / "models"),
            SDFLEET_POLL_SECONDS="0.1",
            SDFLEET_CHECK_TIMEOUT_SECONDS="0.5", SDFLEET_BACKOFF_SECONDS="0.3",
            SDFLEET_BACKOFF_MAX_SECONDS="5", SDFLEET_STOP_GRACE_SECONDS="1",
            SDFLEET_HANG_SECONDS="1", SDFLEET_START_TIMEOUT_SECONDS="20", SDFLEET_AGONES="false")
        settings.update(env)
        self.process = ManagedProcess([sys.executable, "-m", "sdfleet_webui.supervisor"],
                                      port=self.api_port, env=child_env(**settings), cwd=tmp,
                                      log_name="supervisor")

    def __enter__(self) -> "SupervisorUnderTest":
        self.process.start()
        return self

    def __exit__(self, *exc) -> None:
        self.process.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def info(self) -> dict:
        return requests.get(self.url + "/info", timeout=5).json()

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition") -> dict:
        deadline = time.monotonic() + timeout
        info = {}
        while time.monotonic() < deadline:
            info = self.info()
            if predicate(info):
                return info
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last /info: {info}\n"
                             f"supervisor log:\n{self.process.log()}")

    def events(self, name: str) -> list[dict]:
        out = []
        for line in self.full_log().splitlines():
            if line.startswith("{") and f'"event": "{name}"' in line:
                out.append(json.loads(line))
        return out

    def full_log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def recorded(self) -> list[tuple[float, str, str]]:
        rows = []
        for line in self.record.read_text().splitlines():
            at, method, path = line.split(" ", 2)
            rows.append((float(at), method, path))
        return rows

    def request_bodies(self, path: str) -> list[dict]:
        bodies = self.record.with_suffix(".bodies")
        rows = [json.loads(line) for line in bodies.read_text().splitlines()] if bodies.exists() else []
        return [row["body"] for row in rows if row["path"] == path]


def gone(pid: int) -> bool:
    """Exited and reaped (a zombie still counts as present: someone failed to reap it)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False
