"""SIGTERM reaches a program whose main thread is busy in timed Event waits, every time.

The main thread here does what the supervisor's loop does (`stop.wait(timeout)` over and
over); a Python-level handler calling `stop.set()` could deadlock against that wait. The
relay thread of `on_termination` cannot."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.images.conftest import child_env

CHILD = """
import threading, time
from sdfleet_webui.signals import on_termination
stop = threading.Event()
on_termination(lambda name: (print(name, flush=True), stop.set()))
print("ready", flush=True)
while not stop.is_set():
    stop.wait(0.0002)
print("stopped", flush=True)
"""


def test_sigterm_always_stops_a_loop_of_timed_waits():
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", CHILD], env=child_env(),
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=10)
        assert child.returncode == 0 and out.split() == ["SIGTERM", "stopped"]
