"""What the trusted front lets through, and when it reports activity. Pure rules, no I/O.

- ``admission``         may this request reach the WebUI? Only the person the pod is
                        allocated to (``X-Sdfleet-Identity`` equal to the GameServer's
                        ``sdfleet.dev/identity`` label, bound once for the pod's life).
                        Anyone else, and anything before allocation, gets 421 (the router's
                        "stale mapping": docs/contracts.md section 4b, images/router
                        routing.pod_unreachable), so a reused pod address can never show one
                        person another's WebUI. A request without the header did not come
                        through the router: 403.
- ``should_report``     send ``last-activity`` to Agones now? Only when something happened
                        since the last report, and at most once per throttle period.
- ``session_end``       when and why this session ends (the culler's rule, seen from the
                        pod), so the page can warn before it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .agones import GPU_ACTIVITY_KEY, annotations_of
from .syncrules import binding_decision

IDENTITY_HEADER = "X-Sdfleet-Identity"
# The front's 503 while the WebUI restarts carries this header; the router reads it and
# answers with its own "restarting" answer (images/router/lua/sdfleet/router.lua).
POD_STATUS_HEADER = "X-Sdfleet-Pod-Status"
POD_STATUS_RESTARTING = "webui-restarting"
# Agones stores SDK annotations with the prefix "agones.dev/sdk-" (googleforgames/agones
# pkg/sdkserver/sdk.go, metadataPrefix, v1.56.0): the culler reads
# "agones.dev/sdk-last-activity".
ACTIVITY_KEY = "last-activity"
SDK_PREFIX = "agones.dev/sdk-"
# Set by the allocator on the game server (docs/contracts.md section 4).
ALLOCATED_AT_ANNOTATION = "sdfleet.dev/allocated-at"
BUDGET_ENDS_AT_ANNOTATION = "sdfleet.dev/budget-ends-at"


@dataclass(frozen=True)
class Verdict:
    status: int  # 0 = pass to the WebUI
    reason: str


PASS = Verdict(0, "allocated to this person")


class Allocation:
    """The pod's owner as the front knows it: bound once, never re-bound.

    Binding follows the user-sync rule (``syncrules.binding_decision``): the first valid
    identity label on an Allocated game server, for the pod's whole life; a later different
    label, or an invalid one, closes the pod to everyone.
    """

    def __init__(self) -> None:
        self.identity: str | None = None
        self.closed_reason: str | None = None
        self.annotations: dict = {}

    def observe(self, gameserver: dict) -> None:
        if self.closed_reason:
            return
        self.annotations = annotations_of(gameserver)
        if being_deleted(gameserver):
            # The session ended (culled, switched to another profile): the person's next
            # request must reach the router's "gone" path, not this pod's last minute.
            self.closed_reason = "game server is being deleted"
            return
        decision = binding_decision(self.identity, gameserver)
        if decision.action == "bind":
            self.identity = decision.identity
        elif decision.action in ("conflict", "refuse"):
            self.closed_reason = decision.reason
        elif decision.action == "final" and self.identity is not None:
            self.closed_reason = decision.reason

    def gone(self) -> None:
        """The SDK says the game server no longer exists."""
        if self.identity is not None and not self.closed_reason:
            self.closed_reason = "game server is gone"


def being_deleted(gameserver: dict) -> bool:
    """Deletion asked for: the SDK's GameServer carries a non-zero deletion_timestamp
    (agones sdk.proto ObjectMeta, int64 seconds)."""
    stamp = (gameserver.get("object_meta") or {}).get("deletion_timestamp")
    try:
        return bool(stamp) and int(stamp) != 0
    except (TypeError, ValueError):
        return True


def admission(allocation: Allocation, request_identity: str | None) -> Verdict:
    if not request_identity:
        return Verdict(403, f"no {IDENTITY_HEADER} header: request did not come through the router")
    if allocation.closed_reason:
        return Verdict(421, f"pod closed: {allocation.closed_reason}")
    if allocation.identity is None:
        return Verdict(421, "pod is not allocated to anyone")
    if request_identity != allocation.identity:
        return Verdict(421, "pod is allocated to someone else")
    return PASS


def should_report(now: float, last_activity: float | None, reported_activity: float | None,
                  last_report_at: float | None, throttle: float) -> bool:
    """Report when there is activity newer than the last report, throttled."""
    if last_activity is None:
        return False
    if reported_activity is not None and last_activity <= reported_activity:
        return False
    return last_report_at is None or now - last_report_at >= throttle


@dataclass(frozen=True)
class SessionEnd:
    ends_at: float | None      # None: nothing ends it (no limits known)
    reason: str                # "idle" | "max-age" | "budget" | ""


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def session_end(annotations: dict, front_activity: float | None, idle_seconds: float | None,
                max_seconds: float | None) -> SessionEnd:
    """The earliest of: the last activity (the front's own, the pods' reports, the GPU's)
    plus the idle timeout, the allocation plus the longest session, and the end of the
    person's GPU-hour budget. The culler decides the same way (functions/culler/rules.py)."""
    allocated = _number(annotations.get(ALLOCATED_AT_ANNOTATION))
    reports = [_number(annotations.get(SDK_PREFIX + k)) for k in (ACTIVITY_KEY, GPU_ACTIVITY_KEY)]
    active = [t for t in (front_activity, allocated, *reports) if t is not None]
    ends = []
    if idle_seconds and active:
        ends.append((max(active) + idle_seconds, "idle"))
    if max_seconds and allocated is not None:
        ends.append((allocated + max_seconds, "max-age"))
    budget = _number(annotations.get(BUDGET_ENDS_AT_ANNOTATION))
    if budget is not None:
        ends.append((budget, "budget"))
    if not ends:
        return SessionEnd(None, "")
    ends_at, reason = min(ends)
    return SessionEnd(ends_at, reason)
