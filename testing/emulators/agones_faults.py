"""Faults the emulator injects after it applied a request (the answers that make a retried POST
double-apply)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from testing.emulators.kube_api import _status

# ---- faults after the side effect ----------------------------------------------------------
# A real API server can apply a request and still fail the caller: the response is lost
# with the connection, a proxy in front answers 5xx after the write, or the answer comes
# after the client's timeout. These are the faults that make a retried POST double-apply.

AFTER_MODES = ("status", "drop", "delay")


class FaultsAfterSideEffect:
    """Mixed into AgonesEmulator (which owns `_lock`, `_after_faults`, `after_request`,
    `calls`)."""

    def fail_after(self, mode: str = "status", status: int = 503, count: int = 1,
                   method: str | None = None, path_contains: str | None = None,
                   delay: float = 3.0) -> None:
        """The next `count` matching requests are applied, then: `status` answers `status`
        instead of the real answer; `drop` closes the connection without any answer; `delay`
        answers normally after `delay` seconds (past the client's read timeout)."""
        if mode not in AFTER_MODES:
            raise ValueError(f"mode must be one of {AFTER_MODES}")
        with self._lock:
            self._after_faults.append({"mode": mode, "status": status, "count": count,
                                       "method": method, "path": path_contains, "delay": delay})

    def after_side_effect(self, method: str, raw_path: str, answer: tuple):
        """Called by the handler once the request has been applied: the answer to write, or
        None to drop the connection."""
        path = urlsplit(raw_path).path
        if self.after_request:
            self.after_request(method, path, answer[0])
        fault = None
        with self._lock:
            for candidate in self._after_faults:
                if ((candidate["method"] is None or candidate["method"] == method)
                        and (candidate["path"] is None or candidate["path"] in path)):
                    candidate["count"] -= 1
                    if candidate["count"] <= 0:
                        self._after_faults.remove(candidate)
                    fault = candidate
                    break
        if fault is None:
            return answer
        self.calls[(method, f"after-fault-{fault['mode']}")] += 1
        if fault["mode"] == "drop":
            return None
        if fault["mode"] == "delay":
            time.sleep(fault["delay"])
            return answer
        return (fault["status"], _status(fault["status"], "InjectedFaultAfterSideEffect",
                                         "fault injected by test after the request was applied"),
                {})
