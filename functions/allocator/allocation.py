"""The allocation procedure: at most one live game server per identity.

    allocate(identity)
      1. a mapping whose game server is live (exists, Allocated, labelled with this
         identity, not being deleted or culled) -> ready, same game server (idempotent)
      2. otherwise take the per-identity lock (SET NX PX). Someone else holds it: wait for
         them (bounded) and answer what they produced.
      3. under the lock, look again; drop a stale mapping (compare-and-delete on its gs)
      4. adopt an Allocated game server already labelled with this identity (an earlier
         allocation whose mapping write was lost), else request a GameServerAllocation
         (Contention retried a few times)
      5. write mapping + activity + session start in one script that checks we still
         hold the lock (fencing); if we lost it, give the fresh game server back
      6. UnAllocated -> pending, with a phase read from the fleet's game servers:
         some are Scheduled/RequestReady -> `starting` (node found, image and model
         loading); otherwise -> `waiting-for-gpu` (the autoscaler needs a GPU node)

`is_live` is the one rule for "this mapping can be served".
"""

from __future__ import annotations

import time

from shared.agones import AgonesClient, GameServer, KubernetesUnavailable
from shared.config import AllocatorSettings
from shared.identity import Identity
from shared.responses import log
from shared.state import CorruptRecord, Mapping, RedisUnavailable, SessionStore

STARTING_STATES = {"Scheduled", "RequestReady"}
CONTENTION_RETRIES = 3


def is_live(gs: GameServer | None, identity_id: str, mapping: Mapping | None = None) -> bool:
    """A game server that this identity may be sent to right now."""
    return (gs is not None and gs.state == "Allocated" and not gs.deleting
            and gs.identity == identity_id and gs.target is not None
            and (mapping is None or (mapping.culling is None and mapping.gs == gs.name)))


def ready(who: Identity, mapping: Mapping) -> dict:
    return {"status": "ready", "id": who.id, "gameServer": mapping.gs,
            "target": mapping.target, "allocatedAt": mapping.allocated_at}


def pending(who: Identity, phase: str, message: str, retry_after: int = 3) -> dict:
    return {"status": "pending", "id": who.id, "phase": phase, "message": message,
            "retryAfterSeconds": retry_after}


class Allocator:
    def __init__(self, store: SessionStore, agones: AgonesClient, settings: AllocatorSettings,
                 clock=time.time):
        self.store, self.agones, self.settings, self.clock = store, agones, settings, clock

    # ---- GET /status -----------------------------------------------------------------
    def status(self, who: Identity) -> dict:
        mapping = self._mapping(who)
        if mapping is not None and is_live(self.agones.get(mapping.gs), who.id, mapping):
            return ready(who, mapping)
        if self.store.lock_held(who.id):
            return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
        return pending(who, "not-allocated", "No GPU workspace is assigned to you yet.")

    # ---- POST /allocate --------------------------------------------------------------
    def allocate(self, who: Identity) -> dict:
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        while True:
            answer = self._serve_existing(who)
            if answer:
                return answer
            token = self.store.acquire_lock(who.id, self.settings.lock_seconds * 1000)
            if token is not None:
                try:
                    return self._allocate_locked(who, token)
                finally:
                    self._release(who, token)
            # Someone else is allocating for this identity: wait for them to finish.
            while self.store.lock_held(who.id):
                if time.monotonic() >= deadline:
                    return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
                time.sleep(0.02)

    def _mapping(self, who: Identity) -> Mapping | None:
        try:
            return self.store.mapping(who.id)
        except CorruptRecord as e:
            log("WARNING", "corrupt mapping ignored", id=who.id, problem=str(e))
            return None

    def _serve_existing(self, who: Identity) -> dict | None:
        mapping = self._mapping(who)
        if mapping is not None and is_live(self.agones.get(mapping.gs), who.id, mapping):
            return ready(who, mapping)
        return None

    def _release(self, who: Identity, token: str) -> None:
        try:
            self.store.release_lock(who.id, token)
        except RedisUnavailable:
            pass  # it expires by itself; the answer already reflects what happened

    def _allocate_locked(self, who: Identity, token: str) -> dict:
        mapping = self._mapping(who)
        if mapping is not None:
            if is_live(self.agones.get(mapping.gs), who.id, mapping):
                return ready(who, mapping)
            if mapping.culling is None:
                # Stale: its game server is gone or unusable. The router must stop using it.
                self.store.drop_mapping_if(who.id, mapping.gs)
                log("INFO", "stale mapping dropped", id=who.id, gs=mapping.gs)
        now = self.clock()
        adopted = self._already_allocated(who, exclude=mapping.gs if mapping else None)
        if adopted is not None:
            new = Mapping(adopted.name, adopted.target, adopted.allocated_at, who.sub, who.email)
        else:
            allocation = None
            for attempt in range(CONTENTION_RETRIES):
                allocation = self.agones.allocate(who.id, who.email, now)
                if allocation.state != "Contention":
                    break
                time.sleep(0.02 * (attempt + 1))
            if allocation.state == "Contention":
                return pending(who, "starting", "Many people are starting at once; retrying.", 1)
            if allocation.state != "Allocated" or not allocation.target:
                return self._pending_phase(who)
            new = Mapping(allocation.game_server, allocation.target, now, who.sub, who.email)
        if not self.store.record_allocation(who.id, token, new, now):
            # Our lock expired and someone else may be allocating: give this one back.
            log("WARNING", "allocation lock lost; returning game server", id=who.id, gs=new.gs)
            self.agones.delete(new.gs)
            return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
        log("INFO", "allocated", id=who.id, gs=new.gs, target=new.target,
            adopted=adopted is not None)
        return ready(who, new)

    def _already_allocated(self, who: Identity, exclude: str | None) -> GameServer | None:
        """An Allocated game server of ours already labelled for this identity (not the
        one of a stale or being-culled mapping)."""
        candidates = [gs for gs in self.agones.fleet_game_servers(
            f"sdfleet.dev/identity={who.id}", limit=20)
            if is_live(gs, who.id) and gs.name != exclude]
        return max(candidates, key=lambda gs: gs.allocated_at) if candidates else None

    def _pending_phase(self, who: Identity) -> dict:
        """What to tell someone no Ready game server could be found for: the furthest a
        starting game server has got (its WebUI loading the model, else the pod starting:
        a node found, the image being pulled), else that a GPU machine is being waited for."""
        starting = [gs for gs in self.agones.fleet_game_servers() if gs.state in STARTING_STATES]
        if any(gs.phase == "loading-model" for gs in starting):
            return pending(who, "loading-model",
                           "A GPU workspace is loading the model; this usually takes a minute.", 3)
        if starting:
            return pending(who, "starting",
                           "A GPU workspace is starting: a machine was found and the image "
                           "is being loaded.", 3)
        return pending(who, "waiting-for-gpu",
                       "Waiting for a GPU machine to become available; this can take a few minutes.", 5)


__all__ = ["Allocator", "is_live", "KubernetesUnavailable"]
