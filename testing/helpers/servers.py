"""Real servers on free loopback ports, for tests and benchmarks.

Every server here is a real program (redis-server, nginx, functions-framework, moto...)
started as a child process; tests may kill and restart them to exercise faults.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _ports_below_ephemeral_range() -> range | None:
    """Ports the kernel never picks for outgoing connections on this machine."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(10000, low) if low > 11000 else None


_QUIET_PORTS = _ports_below_ephemeral_range()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, for a server a test is about to start.

    Taken below the kernel's ephemeral range where possible: a port from bind(0) comes from
    that range, and between this check and the server's own bind any outgoing connection
    (tests open many) may be given it. Never the same port twice in one process."""
    if _QUIET_PORTS is not None:
        for _ in range(200):
            port = random.choice(_QUIET_PORTS)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0,
                  proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} "
                               f"before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class ManagedProcess:
    """A child process in its own process group, stopped with its whole group."""

    def __init__(self, args: list[str], port: int, env: dict | None = None,
                 cwd: str | os.PathLike | None = None, log_name: str = "server"):
        self.args, self.port, self.env, self.cwd = args, port, env, cwd
        self.log_path = Path(tempfile.mkdtemp(prefix="sdfleet-")) / f"{log_name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "ManagedProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.cwd, start_new_session=True)
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.args[0]} did not start:\n{self.log()}") from None
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Hard fault: SIGKILL the whole group, as a crash would."""
        self._signal_group(signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal_group(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RedisServer(ManagedProcess):
    """A real redis-server with AUTH on, persistence off, on a free loopback port."""

    def __init__(self, password: str = "test-redis-password", port: int | None = None):
        self.password = password
        self.workdir = tempfile.mkdtemp(prefix="sdfleet-redis-")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        port = port or free_port()
        super().__init__([binary, "--port", str(port), "--bind", "127.0.0.1",
                          "--requirepass", password, "--save", "", "--appendonly", "no",
                          "--dir", self.workdir], port=port, log_name="redis")

    def restart(self) -> None:
        """Start again on the same port (data is gone, as after a failover without persistence)."""
        self.stop()
        self.start()
