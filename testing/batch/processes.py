"""The queue agent and the stub WebUI as real child processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from testing.helpers.servers import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = ROOT / "images" / "queue-agent"
SUBMIT_DIR = ROOT / "functions" / "submit"


class StubComfyUi(ManagedProcess):
    def __init__(self, port: int | None = None):
        port = port or free_port()
        super().__init__([sys.executable, str(Path(__file__).with_name("stub_comfyui.py")),
                          "--port", str(port)], port=port, log_name="comfyui")

    def configure(self, **config) -> None:
        request = urllib.request.Request(self.url + "/_stub/config", method="POST",
                                         data=json.dumps(config).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()

    def state(self) -> dict:
        with urllib.request.urlopen(self.url + "/_stub/calls", timeout=5) as response:
            return json.loads(response.read())

    def calls(self) -> list[dict]:
        return self.state()["calls"]


class StubWebUi(ManagedProcess):
    def __init__(self, mode: str = "success", port: int | None = None):
        port = port or free_port()
        super().__init__([sys.executable, str(Path(__file__).with_name("stub_webui.py")),
                          "--port", str(port), "--mode", mode], port=port, log_name="webui")

    def configure(self, **config) -> None:
        request = urllib.request.Request(self.url + "/_stub/config", method="POST",
                                         data=json.dumps(config).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()

    def calls(self) -> list[dict]:
        return self.state()["calls"]

    def state(self) -> dict:
        with urllib.request.urlopen(self.url + "/_stub/calls", timeout=5) as response:
            return json.loads(response.read())

    def generation_count(self) -> int:
        return len(self.calls())


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class AgentProcess:
    """`python -m sdfleet_agent` exactly as the container runs it, in its own process group."""

    def __init__(self, env: dict):
        self.env = {**os.environ, **env, "PYTHONPATH": str(AGENT_DIR), "PYTHONUNBUFFERED": "1"}
        self.log_path = Path(tempfile.mkdtemp(prefix="sdfleet-agent-")) / "agent.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "sdfleet_agent"], env=self.env,
                                     cwd=AGENT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        wait_until(lambda: text in self.log() or self.proc.poll() is not None, timeout,
                   what=f"agent log line {text!r}")
        assert text in self.log(), f"agent exited before logging {text!r}:\n{self.log()}"

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
