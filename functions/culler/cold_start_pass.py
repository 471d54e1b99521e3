"""The culler's share of cold starts: each young game server seen for the first time has its
pod's steps (annotation) and events turned into phases, recorded, and the p50/p95 summary the
allocator's waiting page reads is rewritten."""

from __future__ import annotations

from typing import Callable

from redis.exceptions import RedisError
from shared import cold_starts
from shared.agones import (
    COLD_START_ANNOTATION,
    AgonesClient,
    GameServer,
    KubernetesError,
    KubernetesUnavailable,
)
from shared.responses import log
from shared.state import SessionStore

COLD_STARTS_PER_PASS = 20  # pods whose events are read per pass for their cold start


def record_cold_starts(store: SessionStore, agones: AgonesClient, profile_for: Callable[[str], str],
                       listed: list[GameServer], now: float, out_of_time: Callable[[], bool],
                       store_error: Callable[[Exception], None]) -> int:
    """How many cold starts were recorded (0 when none was new or Redis refused)."""
    young = [gs for gs in listed if COLD_START_ANNOTATION in gs.annotations
             and now - gs.created_at < cold_starts.RECENT_SECONDS]
    if not young:
        return 0
    cold = cold_starts.ColdStartStore(store.client, store.prefix)
    try:
        new = [gs for gs, first in zip(young, cold.first_sightings([gs.name for gs in young]))
               if first][:COLD_STARTS_PER_PASS]
    except RedisError as e:
        store_error(e)
        return 0
    records = []
    for gs in new:
        if out_of_time():
            break
        try:
            events = agones.pod_events(gs.name)
        except (KubernetesError, KubernetesUnavailable):
            events = []     # the annotation's steps still give most phases
        steps = cold_starts.steps_from(gs.annotations.get(COLD_START_ANNOTATION), events)
        record = {"gs": gs.name, "profile": profile_for(gs.name),
                  "at": round(now, 3), "phases": cold_starts.phases(steps)}
        records.append(record)
        # One line per pod: what log-based metrics and an operator's search read.
        log("INFO", "cold start", gs=gs.name, profile=record["profile"], **record["phases"])
    if not records:
        return 0
    try:
        cold.record(records)
        cold.save_summary(cold_starts.summarize(cold.recent(now)))
    except RedisError as e:
        store_error(e)
        return 0
    return len(records)
