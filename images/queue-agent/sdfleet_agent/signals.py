"""SIGTERM / SIGINT handled without deadlocks.

A Python signal handler runs on the main thread between two of its bytecodes, possibly
while that thread holds a lock the handler needs: `Event.set()` against the very
`Event.wait()` it interrupted (the Event's lock is re-taken when a timed wait returns), or
a logging lock mid-line. The agent then hangs on SIGTERM instead of finishing or releasing
its job before the kubelet kills it. (The WebUI image has the same module.) So the Python
handler does nothing: the signal number reaches a thread through a pipe that CPython's C
handler writes (`signal.set_wakeup_fd`), and that thread does the work.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable


def on_termination(act: Callable[[str], None]) -> None:
    """Call `act(signal_name)` on a helper thread for each SIGTERM or SIGINT. Main thread only."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)

    def relay() -> None:
        while True:
            for number in os.read(read_fd, 16):
                act(signal.Signals(number).name)

    threading.Thread(target=relay, daemon=True, name="signal-relay").start()
