"""The WebUI's output: a bounded in-memory tail for /logs, rotating files in scratch space,
and a sliding-window count of out-of-memory lines.

The OOM count is a *window*, not a total: the liveness probe asks "how many in the last
few minutes", so one transient out-of-memory event stops mattering once it is old. And it
counts *events*, not lines: one out-of-memory error is printed over several lines (the
exception, its chained cause, the framework's own "error" line, a Gradio copy), so OOM
lines less than ``oom_event_gap`` seconds after the previous OOM line belong to the same
event (``oom_event_starts``).
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import re
import threading
import time
from pathlib import Path

OOM_PATTERN = re.compile(r"out of memory|OutOfMemoryError|CUDA error: out of memory", re.IGNORECASE)


class LogBuffer:
    def __init__(self, max_lines: int, file_path: Path | None, file_bytes: int, file_count: int,
                 echo=None, oom_event_gap: float = 10.0):
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._ooms: collections.deque[float] = collections.deque(maxlen=1000)  # event starts
        self._last_oom_line: float | None = None
        self._oom_event_gap = oom_event_gap
        self._lock = threading.Lock()
        self._echo = echo
        self._file_logger = None
        if file_path is not None:
            file_path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(file_path, maxBytes=file_bytes,
                                                           backupCount=file_count, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._file_logger = logging.getLogger(f"sdfleet.webui-output.{id(self)}")
            self._file_logger.propagate = False
            self._file_logger.setLevel(logging.INFO)
            self._file_logger.addHandler(handler)

    @property
    def capacity(self) -> int:
        return self._lines.maxlen or 0

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            if OOM_PATTERN.search(line):
                now = time.time()
                if oom_event_starts(self._last_oom_line, now, self._oom_event_gap):
                    self._ooms.append(now)
                self._last_oom_line = now
        if self._file_logger is not None:
            self._file_logger.info(line)
        if self._echo is not None:
            self._echo(line)

    def tail(self, n: int) -> list[str]:
        with self._lock:
            return list(self._lines)[-n:] if n > 0 else []

    def ooms_since(self, since: float) -> int:
        with self._lock:
            return sum(1 for t in self._ooms if t >= since)


def oom_event_starts(previous_oom_line_at: float | None, now: float, gap: float) -> bool:
    """An OOM line starts a new event unless it follows another OOM line within ``gap``."""
    return previous_oom_line_at is None or now - previous_oom_line_at > gap
