"""The FleetAutoscaler policy of a profile: a warm buffer, and with peak hours a Chain whose
first link is Agones's Schedule policy with a larger buffer."""

from __future__ import annotations

from typing import Optional

from components.config import FleetConfig
from components.config.profiles import PeakHours, Profile


def autoscaler_policy(fleet: FleetConfig | Profile) -> dict:
    """Buffer policy; with peak hours, a Chain whose first link is a scheduled larger buffer.
    Takes a profile (warm, maxSessions) or, as the implicit profile is made, the fleet section."""
    if isinstance(fleet, Profile):
        warm, low, high, peak = fleet.warm, fleet.min_replicas, fleet.max_sessions, fleet.peak_hours
    else:
        warm, low, high, peak = fleet.buffer, fleet.min_replicas, fleet.max_replicas, fleet.peak_hours
    return _policy(warm, low, high, peak)


def _policy(warm: int, low: int, high: int, peak: Optional[PeakHours]) -> dict:
    def buffer(size: int) -> dict:
        return {"type": "Buffer", "buffer": {"bufferSize": size, "minReplicas": low,
                                             "maxReplicas": high}}
    if peak is None:
        return buffer(warm)
    return {"type": "Chain", "chain": [
        {"id": "peak-hours", "type": "Schedule", "schedule": {
            "activePeriod": {"timezone": peak.timezone, "startCron": peak.start_cron,
                             "duration": peak.duration},
            "policy": buffer(peak.buffer)}},
        {"id": "default", **buffer(warm)},
    ]}
