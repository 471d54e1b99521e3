"""What someone waiting for a workspace is told: how far a starting pod has got, why no GPU
machine comes (the autoscaler's verdict, with the profiles they may use instead), or how long
a new workspace usually takes (the culler's measured cold starts)."""

from __future__ import annotations

import time
from typing import Callable

from allocator_rules import capacity_problem
from answers import pending
from redis.exceptions import RedisError
from shared.agones import AgonesClient, GameServer, KubernetesError
from shared.cold_starts import ColdStartStore, expected_wait
from shared.profiles import Profile
from shared.responses import log
from shared.state import SessionStore
from shared.verifier import Identity

STARTING_STATES = {"Scheduled", "RequestReady"}
# Game servers whose pod has no node yet: the autoscaler's events say whether one comes.
UNSCHEDULED_STATES = {"PortAllocation", "Creating", "Starting"}
# How soon the waiting page asks again once a pod is starting: at most this much is added
# between a WebUI becoming Ready and its person being handed it.
HANDOUT_POLL_SECONDS = 2
EVENT_LOOKUPS = 3               # pending pods whose events are read per answer
# The culler rewrites the cold-start summary at most once a minute: a waiting page asking every
# few seconds reads it from here, not from Redis each time.
SUMMARY_TTL_SECONDS = 60


class WaitingPhase:
    """The pending answer for one person and profile, read from the fleet and Redis."""

    def __init__(self, store: SessionStore, agones: AgonesClient, clock=time.time):
        self.store, self.agones, self.clock = store, agones, clock
        self._summary: tuple[float, dict] | None = None    # (read at, cold-start summary)

    def answer(self, who: Identity, target: Profile,
               alternatives: Callable[[], list[dict]]) -> dict:
        """What to tell someone no Ready game server could be found for: the furthest a
        starting game server has got (its WebUI loading the model, else the pod starting:
        a node found, the image being pulled); else why no GPU machine can come (the
        autoscaler's verdict on the pending pods), with the other profiles they may use;
        else that a GPU machine is being waited for."""
        servers = self.agones.fleet_game_servers(fleet=target.fleet)
        starting = [gs for gs in servers if gs.state in STARTING_STATES]
        if not starting:
            problem = self.capacity(target, [gs for gs in servers
                                               if gs.state in UNSCHEDULED_STATES])
            if problem is not None:
                others = alternatives()
                return pending(who, "no-capacity", problem.message, 10,
                               reason=problem.kind, profile=target.name, alternatives=others)
        if any(gs.phase == "loading-model" for gs in starting):
            return pending(who, "loading-model",
                           "A GPU workspace is loading the model; this usually takes a minute.",
                           HANDOUT_POLL_SECONDS)
        if starting:
            return pending(who, "starting",
                           "A GPU workspace is starting: a machine was found and the image "
                           "is being loaded.", HANDOUT_POLL_SECONDS)
        usual = self.usual_start(target)
        if usual is None:
            return pending(who, "waiting-for-gpu",
                           "Waiting for a GPU machine to become available; this can take a few minutes.", 3)
        minutes = max(1, round(usual / 60))
        return pending(who, "waiting-for-gpu",
                       f"Waiting for a GPU machine to become available; a new workspace usually "
                       f"takes about {minutes} minute{'s' if minutes > 1 else ''} to start.", 3,
                       expectedWaitSeconds=round(usual))

    def usual_start(self, target: Profile) -> float | None:
        """The measured p50 of this profile's cold starts (the culler keeps it), if known."""
        now = self.clock()
        if self._summary is not None and now - self._summary[0] < SUMMARY_TTL_SECONDS:
            return expected_wait(self._summary[1], target.name)
        try:
            summary = ColdStartStore(self.store.client, self.store.prefix).summary()
        except RedisError:
            return None
        # Nothing measured yet is not kept: the first measurements show at once.
        self._summary = (now, summary) if summary else None
        return expected_wait(summary, target.name)

    def capacity(self, target: Profile, unscheduled: list[GameServer]):
        """The autoscaler's reason no node comes for this profile's pending pods, if any;
        logged once per profile and kind for the operators."""
        events = []
        for gs in sorted(unscheduled, key=lambda g: g.created_at)[:EVENT_LOOKUPS]:
            try:
                events += self.agones.pod_events(gs.name)
            except KubernetesError as e:
                log("WARNING", "pod events unreadable", gs=gs.name, status=e.status)
                return None
        problem = capacity_problem(events, target, self.clock())
        if problem is not None and self.store.first_report(target.name, problem.kind):
            log("WARNING", "no GPU capacity", profile=target.name, fleet=target.fleet,
                kind=problem.kind, event=problem.detail)
        return problem

