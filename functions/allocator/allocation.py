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

    Profiles (one fleet each): the request names one (the person's choice) or not; the
    rules (rules.py: admit, choose) say which profile it starts, whether to ask the person
    to choose, or refuse. A person has one session at a time: asking for another profile
    with `switch` ends the current one first (its game server deleted, its usage recorded)
    under the same lock, then allocates in the other fleet.

`is_live` is the one rule for "this mapping can be served".
"""

from __future__ import annotations

import time

from allocator_rules import Admission, BudgetVerdict, admit, budget_of, choose, pool_budget, within_budget
from answers import pending, ready, refused
from membership import GroupMembership
from shared.agones import (
    AgonesClient,
    Allocation,
    AllocationOutcomeUnknown,
    GameServer,
    KubernetesUnavailable,
)
from shared.budgets import next_month_start
from shared.config import AllocatorSettings
from shared.profiles import Profile, load_profiles
from shared.responses import log
from shared.state import CorruptRecord, Mapping, RedisUnavailable, SessionStore, usage_record
from shared.verifier import Identity
from waiting import WaitingPhase

CONTENTION_RETRIES = 3
ALLOCATION_ATTEMPTS = 3     # POSTs per call when the outcome of one is unknown


class LockLost(Exception):
    """Our allocation lock expired and may be held by someone else."""


def is_live(gs: GameServer | None, identity_id: str, mapping: Mapping | None = None) -> bool:
    """A game server that this identity may be sent to right now."""
    return (gs is not None and gs.state == "Allocated" and not gs.deleting
            and gs.identity == identity_id and gs.target is not None
            and (mapping is None or (mapping.culling is None and mapping.gs == gs.name)))


class Allocator:
    def __init__(self, store: SessionStore, agones: AgonesClient, settings: AllocatorSettings,
                 clock=time.time, membership: GroupMembership | None = None):
        self.store, self.agones, self.settings, self.clock = store, agones, settings, clock
        self.profiles: list[Profile] = list(settings.profiles) or load_profiles(
            {}, agones.settings.fleet)
        self.by_fleet = {p.fleet: p for p in self.profiles}
        self.membership = membership
        # The clock is read through the allocator, so a test's or a caller's clock holds.
        self.waiting = WaitingPhase(store, agones, clock=lambda: self.clock())

    # ---- profiles --------------------------------------------------------------------
    def _admissions(self, who: Identity) -> dict[str, Admission]:
        answers: dict[str, bool | None] = {}

        def group_answer(group: str) -> bool | None:
            if group not in answers:
                answers[group] = (self.membership.is_member(group, who.email)
                                  if self.membership is not None and who.email else None)
            return answers[group]
        return {p.name: admit(who.email or "", p, group_answer) for p in self.profiles}

    def _offer(self, admissions: dict[str, Admission], exclude: str | None = None) -> list[dict]:
        """The profiles a person may use, with whether one is ready now."""
        offer = []
        for p in self.profiles:
            if not admissions[p.name].allowed or p.name == exclude:
                continue
            ready_now = any(gs.state == "Ready" for gs in
                            self.agones.fleet_game_servers(limit=50, fleet=p.fleet))
            offer.append({**p.public(), "readyNow": ready_now,
                          "expectedWait": "ready now" if ready_now else "a few minutes"})
        return offer

    def profile_of(self, gs: GameServer | None) -> Profile | None:
        return self.by_fleet.get(gs.fleet) if gs is not None else None

    def offer(self, who: Identity) -> dict:
        """GET /profiles: what the person may choose, and their current and chosen one."""
        admissions = self._admissions(who)
        mapping = self._mapping(who)
        current = None
        if mapping is not None:
            gs = self.agones.get(mapping.gs)
            if is_live(gs, who.id, mapping):
                current = self.profile_of(gs)
        return {"status": "profiles", "id": who.id, "profiles": self._offer(admissions),
                "current": current.name if current else None,
                "chosen": self.store.chosen_profile(who.id)}

    # ---- GET /status -----------------------------------------------------------------
    def status(self, who: Identity) -> dict:
        mapping = self._mapping(who)
        if mapping is not None:
            gs = self.agones.get(mapping.gs)
            if is_live(gs, who.id, mapping):
                return ready(who, mapping, self.profile_of(gs))
        if self.store.lock_held(who.id):
            return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
        return pending(who, "not-allocated", "No GPU workspace is assigned to you yet.")

    # ---- POST /allocate --------------------------------------------------------------
    def allocate(self, who: Identity, adopt_only: bool = False, profile: str | None = None,
                 switch: bool = False) -> dict:
        """``adopt_only``: find the person's game server (mapped, or Allocated and labelled
        with their identity) but never request a new one: the router asks so for requests
        of an open page after Redis lost the mapping. ``profile``: the person's choice;
        with ``switch`` a session in another profile is ended for it."""
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        target: Profile | None = None
        while True:
            answer = self._serve_existing(who, profile if switch else None)
            if answer:
                return answer
            if target is None and not adopt_only:
                notice = self.store.client.getdel(f"{self.store.prefix}ended-by-admin:{who.id}")
                if notice:
                    # Said once: the next page load starts a new session as usual.
                    return refused(who, Admission(
                        False, "ended-by-admin", "An administrator ended your session. Your "
                        "saved outputs are in your folder; reload the page to start a new one."),
                        [])
                admissions = self._admissions(who)
                choice = choose(self.profiles, admissions, self.store.chosen_profile(who.id),
                                profile)
                if choice.refused is not None:
                    log("NOTICE", "profile refused", id=who.id, profile=profile,
                        reason=choice.refused.reason)
                    return refused(who, choice.refused, self._offer(admissions))
                if choice.ask:
                    return {"status": "choose", "id": who.id,
                            "message": "Choose the WebUI to start.",
                            "profiles": self._offer(admissions)}
                target = choice.profile
                if profile is not None:
                    self.store.remember_profile(who.id, target.name)
            token = self.store.acquire_lock(who.id, self.settings.lock_seconds * 1000)
            if token is not None:
                try:
                    return self._allocate_locked(who, token, adopt_only, target, switch)
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

    def _serve_existing(self, who: Identity, switching_to: str | None = None) -> dict | None:
        """The person's live session; when they switch to another profile, not that one."""
        mapping = self._mapping(who)
        if mapping is None:
            return None
        gs = self.agones.get(mapping.gs)
        if not is_live(gs, who.id, mapping):
            return None
        current = self.profile_of(gs)
        if switching_to is not None and (current is None or current.name != switching_to):
            return None
        return ready(who, mapping, current)

    def _release(self, who: Identity, token: str) -> None:
        try:
            self.store.release_lock(who.id, token)
        except RedisUnavailable:
            pass  # it expires by itself; the answer already reflects what happened

    def _allocate_locked(self, who: Identity, token: str, adopt_only: bool = False,
                         target: Profile | None = None, switch: bool = False) -> dict:
        target = target or next(p for p in self.profiles if p.default)
        mapping = self._mapping(who)
        if mapping is not None:
            gs = self.agones.get(mapping.gs)
            if is_live(gs, who.id, mapping):
                current = self.profile_of(gs)
                if not switch or (current is not None and current.name == target.name):
                    return ready(who, mapping, current)
                # A switch: the current session ends before the new one starts, so the
                # person never holds two game servers.
                self._end_for_switch(who, mapping, gs, target)
                mapping = None
            elif mapping.culling is None:
                # Stale: its game server is gone or unusable. The router must stop using it.
                if self.store.drop_mapping_if(who.id, mapping.gs, token):
                    log("INFO", "stale mapping dropped", id=who.id, gs=mapping.gs)
        now = self.clock()
        exclude = mapping.gs if mapping else None
        # A switch adopts only in the new profile's fleet; otherwise a labelled game server
        # of any profile is the person's session (Redis lost its mapping).
        adopted = self._already_allocated(who, exclude, target if switch else None)
        budget = BudgetVerdict(True)
        if adopted is not None:
            new = Mapping(adopted.name, adopted.target, adopted.allocated_at, who.sub, who.email,
                          budget_ends_at=adopted.budget_ends_at)
        elif adopt_only:
            return pending(who, "not-allocated", "No GPU workspace is assigned to you yet.")
        else:
            budget = self._budget(who, target, now)
            if not budget.allowed:
                log("NOTICE", "over budget", id=who.id, profile=target.name, budget=budget.source)
                return refused(who, Admission(False, "over-budget", budget.message), [])
            kept = False
            try:
                try:
                    allocation, adopted = self._request_allocation(who, token, now, exclude,
                                                                   target, budget.ends_at)
                except LockLost:
                    return pending(who, "starting", "Your GPU workspace is being assigned.", 1)
                if adopted is not None:
                    new = Mapping(adopted.name, adopted.target, adopted.allocated_at, who.sub,
                                  who.email, budget_ends_at=adopted.budget_ends_at)
                elif allocation.state == "Contention":
                    return pending(who, "starting", "Many people are starting at once; retrying.", 1)
                elif allocation.state != "Allocated" or not allocation.target:
                    return self.waiting.answer(
                        who, target, lambda: self._offer(self._admissions(who), exclude=target.name))
                else:
                    new = Mapping(allocation.game_server, allocation.target, now, who.sub,
                                  who.email, budget_ends_at=budget.ends_at,
                                  budget_pool=budget.pool, budget_reserved=budget.held,
                                  budget_reserved_in=budget.held_in,
                                  profile=target.name)
                if not self.store.record_allocation(who.id, token, new, now):
                    answer = self._settle_after_lost_lock(who, new, now)
                    written = self._mapping(who)
                    kept = (written is not None and written.gs == new.gs
                            and written.budget_pool is not None)
                    return answer
                kept = new.budget_pool is not None
            finally:
                if budget.pool is not None and not kept:
                    # The session never started (or someone else's write won): give back
                    # what it held of the group's budget.
                    self.store.release_pool(budget.held_in, budget.held)
            profile = self.by_fleet.get(adopted.fleet) if adopted is not None else target
            log("INFO", "allocated", id=who.id, gs=new.gs, target=new.target,
                adopted=adopted is not None, profile=profile.name if profile else None)
            return ready(who, new, profile)
        if not self.store.record_allocation(who.id, token, new, now):
            return self._settle_after_lost_lock(who, new, now)
        profile = self.by_fleet.get(adopted.fleet) if adopted is not None else target
        log("INFO", "allocated", id=who.id, gs=new.gs, target=new.target,
            adopted=adopted is not None, profile=profile.name if profile else None)
        return ready(who, new, profile)

    def _budget(self, who: Identity, target: Profile, now: float) -> BudgetVerdict:
        """May a new session start under the person's GPU-hour budget, and until when?"""
        budgets = self.settings.budgets
        if budgets is None:
            return BudgetVerdict(True)

        def group_answer(group: str):
            return (self.membership.is_member(group, who.email)
                    if self.membership is not None and who.email else None)
        budget = budget_of(who.email or "", budgets, group_answer, target.name)
        if budget is not None and budget.pool is not None:
            # Shared by the group's members: used and held, checked and held atomically.
            cap = self.settings.max_session_seconds * target.gpus_per_pod
            ok, amount, field = self.store.reserve_pool(budget.pool, budget.gpu_hours * 3600,
                                                        cap, now)
            return pool_budget(ok, amount, field, budget, target.gpus_per_pod, now,
                               next_month_start(now, budgets.reset_day), budgets.contact)
        return within_budget(self.store.used_this_month(who.id, now,
                                                        budget.profile if budget else None), budget,
                             target.gpus_per_pod, now, next_month_start(now, budgets.reset_day),
                             budgets.contact)

    def _end_for_switch(self, who: Identity, mapping: Mapping, gs: GameServer,
                        target: Profile) -> None:
        """Delete the person's game server and end its session (usage recorded with
        reason `switched`); the lock held by the caller keeps anything else out."""
        self.agones.delete(gs.name, gs.uid or None)
        now = self.clock()
        profile = self.profile_of(gs)
        usage = usage_record(who.id, gs.name, mapping.allocated_at, now, "switched",
                             profile.gpus_per_pod if profile else 1.0)
        self.store.finish_sessions([(who.id, gs.name, usage)])
        log("INFO", "session ended", **usage, to=target.name)

    def _request_allocation(self, who: Identity, token: str, now: float, exclude: str | None,
                            target: Profile, budget_ends_at: float | None = None
                            ) -> tuple[Allocation, GameServer | None]:
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
                allocation = self.agones.allocate(who.id, who.email, now, target.fleet,
                                                  budget_ends_at)
            except AllocationOutcomeUnknown as e:
                unknown += 1
                # The POST may have been applied: look for its game server before asking
                # again, or the person would hold two.
                found = self._already_allocated(who, exclude, target)
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

    def _already_allocated(self, who: Identity, exclude: str | None,
                           target: Profile | None = None) -> GameServer | None:
        """An Allocated game server of ours already labelled for this identity (not the
        one of a stale or being-culled mapping); of the target profile's fleet when given."""
        candidates = [gs for gs in self.agones.fleet_game_servers(
            f"sdfleet.dev/identity={who.id}", limit=20,
            fleet=target.fleet if target is not None and len(self.profiles) > 1 else None)
            if is_live(gs, who.id) and gs.name != exclude]
        return max(candidates, key=lambda gs: gs.allocated_at) if candidates else None


__all__ = ["Allocator", "is_live", "KubernetesUnavailable", "LockLost"]
