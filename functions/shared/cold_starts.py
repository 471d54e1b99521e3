"""Cold starts as every deploy measures them: each WebUI pod's way from its game server's
creation to its first image, in phases, and their p50/p95 per profile.

The pod's supervisor writes the steps it sees on its game server (annotation
`agones.dev/sdk-sdfleet-cold-start`: created, supervisor started, WebUI started, checkpoint
read, API answered, first image); the pod's events add what only the cluster sees (when the
pod was scheduled onto a node, when its WebUI container started, so after the image pull).
The culler records each pod's cold start once (`record`), keeps the last RECORDS_KEPT in a
stream, and rewrites the summary the allocator's waiting page and the admin view read.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

# The phases, in order: (name, from step, to step). A phase whose steps are not both known
# is left out of that cold start.
PHASES = (
    ("waitingForNode", "gameServerCreated", "podScheduled"),
    ("pullingImage", "podScheduled", "containerStarted"),
    ("startingWebui", "containerStarted", "apiAnswered"),
    ("loadingModel", "apiAnswered", "firstImage"),
    ("total", "gameServerCreated", "firstImage"),
)
PHASE_NAMES = tuple(name for name, _, _ in PHASES)
RECORDS_KEPT = 2000
SUMMARY_WINDOW_SECONDS = 14 * 86400
# A game server is looked at for a cold start while it is this young, and remembered this long.
RECENT_SECONDS = 2 * 3600
SEEN_SECONDS = 6 * 3600
WEBUI_CONTAINER = "webui"


def _event_time(event: dict) -> float | None:
    text = event.get("eventTime") or event.get("firstTimestamp") or event.get("lastTimestamp")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def steps_from(annotation: str | None, events: list[dict]) -> dict[str, float]:
    """All the steps known of one cold start: the pod's own, and from its events the time it
    was scheduled and the time its WebUI container started (the image pulled)."""
    try:
        steps = json.loads(annotation or "")
    except ValueError:
        steps = {}
    out = {k: float(v) for k, v in (steps.items() if isinstance(steps, dict) else ())
           if isinstance(v, (int, float)) and math.isfinite(v)}
    for event in events:
        at = _event_time(event)
        reason = event.get("reason")
        field = ((event.get("involvedObject") or {}).get("fieldPath") or "")
        if at is None:
            continue
        if reason == "Scheduled":
            out.setdefault("podScheduled", at)
        elif reason == "Started" and field == f"spec.containers{{{WEBUI_CONTAINER}}}":
            out.setdefault("containerStarted", at)
    # Without events (expired, unreadable), the supervisor's start is the container's start.
    if "containerStarted" not in out and "supervisorStarted" in out:
        out["containerStarted"] = out["supervisorStarted"]
    return out


def phases(steps: dict[str, float]) -> dict[str, float]:
    """Seconds per phase; a phase with a missing step or a negative length (clocks) is left out."""
    out = {}
    for name, start, end in PHASES:
        if start in steps and end in steps and steps[end] >= steps[start]:
            out[name] = round(steps[end] - steps[start], 2)
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(records: list[dict]) -> dict[str, dict[str, dict]]:
    """{profile: {phase: {"p50", "p95", "n"}}} over the records given."""
    by_profile: dict[str, dict[str, list[float]]] = {}
    for record in records:
        per_phase = by_profile.setdefault(str(record.get("profile") or ""), {})
        for name, seconds in (record.get("phases") or {}).items():
            if name in PHASE_NAMES and isinstance(seconds, (int, float)):
                per_phase.setdefault(name, []).append(float(seconds))
    return {profile: {name: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)}
                      for name, v in sorted(per_phase.items(), key=lambda kv: PHASE_NAMES.index(kv[0]))}
            for profile, per_phase in by_profile.items()}


def expected_wait(summary: dict, profile: str, minimum_records: int = 5) -> float | None:
    """The usual wait for a new pod of `profile` (its p50 total), once enough were measured."""
    total = (summary.get(profile) or {}).get("total") or {}
    return float(total["p50"]) if total.get("n", 0) >= minimum_records else None


class ColdStartStore:
    """The stream of recorded cold starts and their summary, in Redis."""

    def __init__(self, client, prefix: str = "sdfleet:"):
        self.client = client
        self.stream_key = f"{prefix}cold-starts"
        self.summary_key = f"{prefix}cold-start-summary"
        self.seen_prefix = f"{prefix}cold-start-seen:"

    def first_sightings(self, names: list[str]) -> list[bool]:
        """For each game server, whether this is the first time its cold start is seen."""
        if not names:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.set(self.seen_prefix + name, 1, nx=True, ex=SEEN_SECONDS)
        return [bool(answer) for answer in pipe.execute()]

    def record(self, records: list[dict]) -> None:
        if not records:
            return
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self.stream_key, {"record": json.dumps(record, separators=(",", ":"))},
                      maxlen=RECORDS_KEPT, approximate=True)
        pipe.execute()

    def recent(self, now: float) -> list[dict]:
        """The records of the summary window, oldest first (bad entries skipped)."""
        start = f"{int((now - SUMMARY_WINDOW_SECONDS) * 1000)}-0"
        out = []
        for _, fields in self.client.xrange(self.stream_key, min=start, max="+"):
            raw = fields.get(b"record") if b"record" in fields else fields.get("record")
            try:
                record = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def save_summary(self, summary: dict) -> None:
        self.client.set(self.summary_key, json.dumps(summary, separators=(",", ":")))

    def summary(self) -> dict:
        try:
            value = json.loads(self.client.get(self.summary_key) or "{}")
        except (TypeError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}
