"""The allocation procedure: at most one live game server per identity.

    allocate(identity)
      1. a mapping whose game server is live (exists, Allocated, labelled with this
         identity, not being deleted or culled) -> ready, same game server (idempotent)
      2. otherwise take the per-identity lock (SET NX PX). Someone else holds it: wait for
         them (bounded) and answer what they produced.
      3. under the lock, look again; drop a stale mapping (compare-and-delete on its gs)
      4. adopt an Allocated game server already labelled with this identity (an earlier
         allocation whose mapping write was lost, or a mapping Redis lost), else (unless
         the caller asked to adopt only) request a GameServerAllocation
         (Contention retried a few times). The POST is never retried blindly: after a
         timeout, a lost answer or a 5xx it may have been applied, so the game server
         labelled with the identity is looked up first and adopted if it is there.
      5. write mapping + activity + session start in one script that checks we still
         hold the lock (fencing)

    Fencing: the lock's token is checked at every write that matters. Before each
    allocation POST the lock is extended only if our token still holds it (else we stop:
    someone else is allocating for this identity now). The stale-mapping drop and the
    mapping write are scripts that compare the token. If the lock was lost while the POST
    ran, the fresh game server is never deleted on the spot (the new holder may have
    adopted it): it is settled under a newly taken lock (`_settle_after_lost_lock`), or
    left labelled for the holder to adopt, or for the culler's orphan rule.
      6. UnAllocated -> pending, with a phase read from the fleet's game servers:
         some are Scheduled/RequestReady -> `starting` (node found, image and model
         loading); otherwise -> `waiting-for-gpu` (the autoscaler needs a GPU node)

`is_live` is the one rule for "this mapping can be served".
"""

from __future__ import annotations

import time

from shared.agones import (AgonesClient, AllocationOutcomeUnknown, Allocation, GameServer,
                           KubernetesUnavailable)
from shared.config import AllocatorSettings
from shared.verifier import Identity
from shared.responses import log
from shared.state import CorruptRecord, Mapping, RedisUnavailable, SessionStore

STARTING_STATES = {"Scheduled", "RequestReady"}
CONTENTION_RETRIES = 3
ALLOCATION_ATTEMPTS = 3     # POSTs per call when the outcome of one is unknown


class LockLost(Exception):
    """Our allocation lock expired and may be held by someone else."""


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
    def allocate(self, who: Identity, adopt_only: bool = False) -> dict:
        """``adopt_only``: find the person's game server (mapped, or Allocated and labelled
        with their identity) but never request a new one: the router asks so for requests
        of an open page after Redis lost the mapping."""
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        while True:
            answer = self._serve_existing(who)
            if answer:
                return answer
            token = self.store.acquire_lock(who.id, self.settings.lock_seconds * 1000)
            if token is not None:
                try:
                    return self._allocate_locked(who, token, adopt_only)
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

    def _allocate_locked(self, who: Identity, token: str, adopt_only: bool = False) -> dict:
        mapping = self._mapping(who)
        if mapping is not None:
            if is_live(self.agones.get(mapping.gs), who.id, mapping):
                return ready(who, mapping)
            if mapping.culling is None:
                # Stale: its game server is gone or unusable. The router must stop using it.
                if self.store.drop_mapping_if(who.id, mapping.gs, token):
                    log("INFO", "stale mapping dropped", id=who.id, gs=mapping.gs)
        now = self.clock()
        exclude = mapping.gs if mapping else None
        adopted = self._already_allocated(who, exclude)
        if adopted is not None:
            new = Mapping(adopted.name, adopted.target, adopted.allocated_at, who.sub, who.email)
        elif adopt_only:
            return pending(who, "not-allocated", "No GPU workspace is assigned to you yet.")
        else:
            try:
                allocation, adopted = self._request_allocation(who, token, now, exclude)
            except LockLost:
                return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
            if adopted is not None:
                new = Mapping(adopted.name, adopted.target, adopted.allocated_at, who.sub,
                              who.email)
            elif allocation.state == "Contention":
                return pending(who, "starting", "Many people are starting at once; retrying.", 1)
            elif allocation.state != "Allocated" or not allocation.target:
                return self._pending_phase(who)
            else:
                new = Mapping(allocation.game_server, allocation.target, now, who.sub, who.email)
        if not self.store.record_allocation(who.id, token, new, now):
            return self._settle_after_lost_lock(who, new, now)
        log("INFO", "allocated", id=who.id, gs=new.gs, target=new.target,
            adopted=adopted is not None)
        return ready(who, new)

    def _request_allocation(self, who: Identity, token: str, now: float,
                            exclude: str | None) -> tuple[Allocation, GameServer | None]:
        """POST a GameServerAllocation, under the lock, never twice blindly: (allocation,
        None), or (_, game server) when an earlier POST whose answer was lost is found
        applied. Raises LockLost, or KubernetesUnavailable when every attempt was
        inconclusive."""
        allocation = Allocation("UnAllocated")
        contention = unknown = 0
        while True:
            # Fence: only the lock's current holder may allocate for this identity.
            if not self.store.extend_lock(who.id, token, self.settings.lock_seconds * 1000):
                log("WARNING", "allocation lock lost before allocating", id=who.id)
                raise LockLost()
            try:
                allocation = self.agones.allocate(who.id, who.email, now)
            except AllocationOutcomeUnknown as e:
                unknown += 1
                # The POST may have been applied: look for its game server before asking
                # again, or the person would hold two.
                found = self._already_allocated(who, exclude)
                log("WARNING", "allocation outcome unknown; looked up by label", id=who.id,
                    error=str(e), found=found.name if found else None, attempt=unknown)
                if found is not None:
                    return allocation, found
                if unknown >= ALLOCATION_ATTEMPTS:
                    raise KubernetesUnavailable(f"allocation failed {unknown} times: {e}") from e
                time.sleep(0.05 * unknown)
                continue
            if allocation.state != "Contention" or contention + 1 >= CONTENTION_RETRIES:
                return allocation, None
            contention += 1
            time.sleep(0.02 * contention)

    def _settle_after_lost_lock(self, who: Identity, new: Mapping, now: float) -> dict:
        """Our lock expired while we allocated `new.gs`: someone else may have taken the
        lock since and adopted it. Deleting it now could take it from under them, so it is
        settled only under a lock we hold again."""
        token = self.store.acquire_lock(who.id, self.settings.lock_seconds * 1000)
        if token is None:
            # The holder will adopt it (it is Allocated and labelled with the identity), or
            # the culler shuts it down as an orphan after the grace period.
            log("WARNING", "allocation lock lost; game server left for the lock holder",
                id=who.id, gs=new.gs)
            return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
        try:
            mapping = self._mapping(who)
            if mapping is not None and mapping.gs == new.gs:
                log("INFO", "allocation lock lost; game server adopted meanwhile", id=who.id,
                    gs=new.gs)
                return ready(who, mapping)
            if mapping is not None and is_live(self.agones.get(mapping.gs), who.id, mapping):
                # Someone else gave this person another game server: ours is a duplicate,
                # and nobody can adopt it while we hold the lock.
                log("WARNING", "allocation lock lost; duplicate game server returned",
                    id=who.id, gs=new.gs, kept=mapping.gs)
                self.agones.delete(new.gs)
                return ready(who, mapping)
            if self.store.record_allocation(who.id, token, new, now):
                log("INFO", "allocated", id=who.id, gs=new.gs, target=new.target,
                    relocked=True)
                return ready(who, new)
            return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
        finally:
            self._release(who, token)

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


__all__ = ["Allocator", "is_live", "KubernetesUnavailable", "LockLost"]
