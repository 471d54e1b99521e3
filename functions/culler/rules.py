"""The culler's decision rule: what to do with one session, given what the pass saw.

`decide` is the whole policy, in one place; cull_pass.py only gathers the facts and
carries the verdicts out. Redis is a cache of the cluster: an Allocated game server
labelled with an identity *is* that person's session, so one whose mapping is missing (a
flush, a failover) gets it back and the ordinary rules apply to it (`_unmapped`). A `SessionView` is what one pass knows about one identity:
its mapping (or why it could not be read), its last activity, and, when the pass looked
the game server up, the game server (None = it is gone).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from shared.agones import GPU_ACTIVITY_ANNOTATION, LAST_ACTIVITY_ANNOTATION, GameServer
from shared.identity_id import is_identity_id
from shared.state import Mapping

BROKEN_STATES = {"Unhealthy", "Error", "Shutdown"}
STALE_CLAIM_SECONDS = 120   # a `culling` mark older than this was left by a pass that died


class Action(enum.Enum):
    KEEP = "keep"
    CULL = "cull"                    # delete the game server, then end the session
    END = "end"                      # the game server is gone or not ours: end the session
    DROP_INDEX = "drop-index"        # activity/session entries without a mapping
    SHUTDOWN_ORPHAN = "shutdown-orphan"  # an Allocated game server no mapping points to
    SKIP = "skip"                    # unreadable record: log it, touch nothing
    RESTORE = "restore"              # a live session whose mapping Redis lost: write it back


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str


@dataclass(frozen=True)
class Limits:
    idle_seconds: float
    max_session_seconds: float
    orphan_grace_seconds: float


@dataclass(frozen=True)
class SessionView:
    id: str | None
    mapping: Mapping | None = None
    corrupt: str | None = None
    last_activity: float | None = None      # Redis `activity` score (the router's record)
    game_server_seen: bool = False
    game_server: GameServer | None = None
    # The pass needed the pod's own activity report (idle by Redis) and could not read it.
    pod_activity_unknown: bool = False
    # An unmapped game server whose identity has a mapping to another game server.
    mapped_elsewhere: bool = False


def needs_pod_report(view: SessionView, now: float, limits: Limits) -> bool:
    """Idle by the router's record alone: `decide` needs the pod's own report before it may
    call the session idle (the router sees a long WebSocket only at its ends)."""
    if view.mapping is None or view.corrupt or view.game_server_seen or view.mapping.culling is not None:
        return False
    router_record = view.last_activity if view.last_activity is not None else view.mapping.allocated_at
    return now - router_record >= limits.idle_seconds


def pod_reported_activity(gs: GameServer | None, now: float) -> float | None:
    """What the pod last reported through the Agones SDK: the trusted front's traffic
    (SetAnnotation("last-activity", "<unix seconds>"), stored as `agones.dev/sdk-last-activity`)
    or the supervisor's busy GPU (`agones.dev/sdk-gpu-activity`), the later of the two:
    it counts traffic on long WebSocket/SSE connections the router sees only at their ends.
    An unreadable value counts as no report; a future one as now (a skewed clock must not
    make a pod immortal; the maximum session age still applies)."""
    if gs is None:
        return None
    reports = []
    # The front's traffic and the supervisor's busy GPU (a queue running with no tab open).
    for key in (LAST_ACTIVITY_ANNOTATION, GPU_ACTIVITY_ANNOTATION):
        try:
            reported = float(gs.annotations.get(key, ""))
        except (TypeError, ValueError):
            continue
        if math.isfinite(reported):
            reports.append(min(reported, now))
    return max(reports) if reports else None


def decide(view: SessionView, now: float, limits: Limits) -> Verdict:
    if view.corrupt:
        return Verdict(Action.SKIP, f"corrupt-record: {view.corrupt}")
    gs, mapping = view.game_server, view.mapping

    if mapping is None:
        if gs is None:
            return Verdict(Action.DROP_INDEX, "no-mapping")
        if gs.state == "Allocated" and not gs.deleting:
            return _unmapped(view, gs, now, limits)
        return Verdict(Action.KEEP, "not-allocated")

    if mapping.culling is not None and now - mapping.culling < STALE_CLAIM_SECONDS:
        return Verdict(Action.KEEP, "cull-in-progress")

    if view.game_server_seen:
        if gs is None:
            return Verdict(Action.END, "game-server-gone")
        if gs.deleting or gs.state in BROKEN_STATES:
            return Verdict(Action.CULL, "game-server-unhealthy")
        if gs.state != "Allocated" or gs.identity != view.id:
            return Verdict(Action.END, "game-server-not-allocated")

    if now - mapping.allocated_at >= limits.max_session_seconds:
        return Verdict(Action.CULL, "max-age")
    if mapping.budget_ends_at is not None and now >= mapping.budget_ends_at:
        return Verdict(Action.CULL, "budget")
    # Last activity: the later of the router's record (Redis) and the pod's own report.
    reports = [t for t in (view.last_activity, pod_reported_activity(gs, now)) if t is not None]
    last_active = max(reports) if reports else mapping.allocated_at
    if now - last_active >= limits.idle_seconds:
        if view.pod_activity_unknown:
            return Verdict(Action.KEEP, "pod-activity-unknown")
        return Verdict(Action.CULL, "idle")
    return Verdict(Action.KEEP, "active")


def _unmapped(view: SessionView, gs: GameServer, now: float, limits: Limits) -> Verdict:
    """An Allocated game server of our fleet that no mapping points to. Labelled with an
    identity that has no other mapping, it is that person's session (Redis lost the
    mapping): with the pod's own activity report it is judged like any session, and kept
    ones get their mapping back. It is an orphan, shut down after the grace period, when it
    has no identity, when its identity is mapped to another game server, or when its pod
    never reported activity."""
    past_grace = now - gs.allocated_at >= limits.orphan_grace_seconds
    reported = pod_reported_activity(gs, now)
    if (view.id is None or not is_identity_id(view.id) or view.mapped_elsewhere
            or reported is None or gs.target is None):
        if past_grace:
            return Verdict(Action.SHUTDOWN_ORPHAN, "orphan")
        return Verdict(Action.KEEP, "orphan-within-grace")
    if now - gs.allocated_at >= limits.max_session_seconds:
        return Verdict(Action.SHUTDOWN_ORPHAN, "max-age")
    if gs.budget_ends_at is not None and now >= gs.budget_ends_at:
        return Verdict(Action.SHUTDOWN_ORPHAN, "budget")
    if now - reported >= limits.idle_seconds:
        return Verdict(Action.SHUTDOWN_ORPHAN, "idle")
    return Verdict(Action.RESTORE, "mapping-rebuilt")
