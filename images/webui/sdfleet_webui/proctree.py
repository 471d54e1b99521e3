"""Starting the WebUI and stopping all of it: its process group and every descendant.

sd-watchdog killed only the direct child and left a grandchild holding the GPU and the
port. Here the WebUI starts in its own session (process group), the supervisor makes
itself a *child subreaper* so orphaned descendants re-attach to it instead of to init,
and ``stop_tree`` signals the group and every descendant it can find (SIGTERM, then
SIGKILL after the grace period), then reaps them. A descendant that left the group with
setsid is still a descendant, so it is still found.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from typing import Callable

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class WebuiProcess:
    """The running framework: a Popen in a new session plus a thread that reads its output."""

    def __init__(self, argv: list[str], cwd, env: dict, on_line: Callable[[str], None]):
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.started_at = time.time()
        self._reader = threading.Thread(target=self._read, args=(on_line,), daemon=True,
                                        name=f"webui-output-{self.pid}")
        self._reader.start()

    def _read(self, on_line) -> None:
        for raw in iter(self.popen.stdout.readline, b""):
            on_line(raw.decode("utf-8", "replace").rstrip("\n"))
        self.popen.stdout.close()

    def poll(self) -> int | None:
        return self.popen.poll()


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def stop_tree(proc: WebuiProcess | None, grace: float) -> list[int]:
    """Stop the WebUI's group and all of the supervisor's descendants; returns pids killed hard."""
    members = _descendants()
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for member in members:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(members, timeout=grace)
    killed = []
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    remaining = {p.pid: p for p in alive + _descendants()}
    for member in remaining.values():
        try:
            member.kill()
            killed.append(member.pid)
        except psutil.Error:
            pass
    psutil.wait_procs(list(remaining.values()), timeout=5)
    if proc is not None:
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    reap_orphans(exclude=None)
    return killed


def reap_orphans(exclude: int | None) -> None:
    """Collect exit statuses of re-parented descendants (we are their subreaper)."""
    for child in _descendants():
        try:
            if child.pid != exclude and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) != 0


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(port):
            return True
        time.sleep(0.1)
    return port_is_free(port)
