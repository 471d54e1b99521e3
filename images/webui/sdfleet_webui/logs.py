"""Structured log lines: one JSON object per line on stderr.

Kubernetes collects container output; JSON lines keep fields (model, framework, pid)
searchable. Nothing here ever receives a token: callers log names and redacted URLs only
(``redact_url`` drops query strings and user info, where signed URLs carry secrets).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()


def log(event: str, level: str = "info", **fields) -> None:
    record = {"ts": round(time.time(), 3), "level": level, "event": event}
    record.update(fields)
    line = json.dumps(record, default=str, ensure_ascii=False)
    emit_line(line, sys.stderr)


def emit_line(line: str, stream=None) -> None:
    """One line in one write: stderr writes through, so print's separate newline could land
    after another thread's output and two records would share a line in the pod's log."""
    stream = stream if stream is not None else sys.stdout
    with _lock:
        stream.write(line + "\n")
        stream.flush()


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment (signed URLs hide secrets there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    suffix = "?…" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + suffix
