"""The administrators' view: running sessions with their usage and budgets, and ending one.

    GET  /admin        {"status": "admin", "sessions": [...], "month": "YYYY-MM"}
    POST /admin/end    body {"id": "<identity id>"}: end that person's session

Only members of `access.admins` (SDFLEET_ADMINS; user:, group:, domain:, checked like a
profile's access); anyone else gets a refusal. Every action is logged with who did it. The
person whose session was ended is told so on their next page load (`ended-by-admin:<id>`).
"""

from __future__ import annotations

import time

from allocator_rules import Admission, admit, budget_of
from shared.cold_starts import ColdStartStore
from shared.identity_id import is_identity_id
from shared.profiles import Profile, fleet_of
from shared.responses import log
from shared.state import usage_record
from shared.verifier import Identity

NOT_AN_ADMIN = Admission(False, "not-an-admin",
                         "This page is for the platform's administrators only.")
MAX_ROWS = 1000


class AdminDesk:
    def __init__(self, allocator):
        self.allocator = allocator
        self.store, self.agones = allocator.store, allocator.agones
        self.admins = Profile("admin", "the administrators' page", "", "", "", "", "",
                              tuple(allocator.settings.admins), 0, 1.0, False)

    def _profile(self, game_server: str) -> Profile | None:
        fleet = fleet_of(game_server, [p.fleet for p in self.allocator.profiles])
        return self.allocator.by_fleet.get(fleet) if fleet else None

    def _is_admin(self, who: Identity) -> bool:
        if not self.admins.access:
            return False
        membership = self.allocator.membership

        def group_answer(group):
            return membership.is_member(group, who.email) if membership and who.email else None
        return admit(who.email or "", self.admins, group_answer).allowed

    def _refused(self, who: Identity) -> dict:
        log("NOTICE", "admin page refused", id=who.id, email=who.email)
        return {"status": "refused", "id": who.id, "reason": NOT_AN_ADMIN.reason,
                "message": NOT_AN_ADMIN.message, "profiles": []}

    def sessions(self, who: Identity) -> dict:
        if not self._is_admin(who):
            return self._refused(who)
        now = self.allocator.clock()
        client = self.store.client
        ids = [i for i, _ in client.zrange(self.store.sessions_key, 0, MAX_ROWS - 1, withscores=True)]
        month = self.store.month_key(now)
        used = client.hmget(month, ids) if ids else []
        budgets = self.allocator.settings.budgets
        rows = []
        for id_, spent in zip(ids, used):
            mapping = self.allocator._mapping(Identity(id_, "", ""))
            if mapping is None:
                continue
            profile = self._profile(mapping.gs)
            last = client.zscore(self.store.activity_key, id_)
            budget = budget_of(mapping.email, budgets, lambda g: None) if budgets else None
            spent_hours = float(spent or 0) / 3600
            rows.append({"id": id_, "email": mapping.email, "gameServer": mapping.gs,
                         "profile": profile.name if profile else None,
                         "since": mapping.allocated_at, "lastActivity": last,
                         "gpuHoursThisMonth": round(spent_hours, 2),
                         "budgetLeftHours": None if budget is None or budget.pool
                         else round(max(0.0, budget.gpu_hours - spent_hours), 2)})
        log("INFO", "admin page", admin=who.email, sessions=len(rows))
        cold = ColdStartStore(client, self.store.prefix).summary()
        return {"status": "admin", "id": who.id, "month": month.rsplit(":", 1)[-1],
                "now": now, "sessions": rows,
                # p50/p95 per phase of the pods' cold starts, per profile (the culler keeps it)
                "coldStarts": [{"profile": profile, "phase": phase, **numbers}
                               for profile, by_phase in sorted(cold.items())
                               for phase, numbers in by_phase.items()]}

    def end(self, who: Identity, id_: str) -> dict:
        if not self._is_admin(who):
            return self._refused(who)
        if not isinstance(id_, str) or not is_identity_id(id_):
            return {"status": "refused", "id": who.id, "reason": "bad-id",
                    "message": "That is not a session's id.", "profiles": []}
        token = self.store.acquire_lock(id_, self.allocator.settings.lock_seconds * 1000)
        if token is None:
            return {"status": "pending", "id": who.id, "phase": "busy",
                    "message": "That session is being started or ended right now; try again.",
                    "retryAfterSeconds": 2}
        try:
            mapping = self.allocator._mapping(Identity(id_, "", ""))
            if mapping is None:
                return {"status": "ended", "id": who.id, "ended": None}
            gs = self.agones.get(mapping.gs)
            if gs is not None:
                self.agones.delete(gs.name, gs.uid or None)
            now = self.allocator.clock()
            profile = self._profile(mapping.gs)
            usage = usage_record(id_, mapping.gs, mapping.allocated_at, now, "admin",
                                 profile.gpus_per_pod if profile else 1.0)
            self.store.finish_sessions([(id_, mapping.gs, usage)])
            self.store.client.set(f"{self.store.prefix}ended-by-admin:{id_}", who.email or "an administrator",
                                  ex=3600)
            log("NOTICE", "admin ended a session", admin=who.email, id=id_, email=mapping.email,
                gs=mapping.gs)
            return {"status": "ended", "id": who.id, "ended": id_, "at": time.time()}
        finally:
            self.allocator._release(Identity(id_, "", ""), token)
