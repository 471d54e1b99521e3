"""JSON answers and one-line structured logs (Cloud Logging parses JSON on stdout)."""

from __future__ import annotations

import json
import sys
import time


def json_response(payload: dict, status: int = 200, headers: dict | None = None):
    """A (body, status, headers) tuple, the shape functions-framework (Flask) accepts."""
    return (json.dumps(payload, separators=(",", ":")), status,
            {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})})


def error_response(status: int, error: str, message: str, retry_after: int | None = None):
    body = {"status": "error", "error": error, "message": message}
    headers = {}
    if retry_after is not None:
        body["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return json_response(body, status, headers)


def log(severity: str, message: str, **fields) -> None:
    """One JSON line; never pass secrets or tokens in `fields`."""
    entry = {"severity": severity, "message": message, "time": time.time(), **fields}
    print(json.dumps(entry, separators=(",", ":"), default=str), file=sys.stdout, flush=True)
