"""One culler pass: gather facts, apply `rules.decide`, carry the verdicts out safely.

Work per pass is proportional to what needs doing, never to how many people are tracked:

  candidates  ZRANGEBYSCORE on `activity` (idle longer than the limit) and on `sessions`
              (started before now - max age), each capped at CULL_BATCH_LIMIT
  reconcile   incremental, resumed from a cursor kept in Redis:
              - a slice of RECONCILE_MAPPINGS_PER_PASS mappings (by rank in `sessions`)
                whose game servers are looked up (gone / unhealthy / not ours)
              - one page (RECONCILE_PAGE_SIZE) of our fleet's game servers, to find
                Allocated ones that no mapping points to: a labelled one whose identity
                has no mapping is a session Redis lost (`rules._unmapped`: its mapping is
                written back, or it is culled by the ordinary rules on the pod's own
                activity report); others are orphans, shut down after the grace period
                (`sdfleet.dev/allocated-at` annotation, else creation time). With no
                cursor in Redis (a flush), the whole fleet is read in that pass.
  actions     culls: claim (one batched script: activity score and gs unchanged since
              they were read, no allocation under way; takes the identity's allocation
              lock and marks the mapping `culling`), delete the game servers (one
              deletecollection per 100 identities, by fleet + identity label; safe because
              the locks stop new allocations for them), then end the sessions (drop mapping
              and index entries, append the usage record, release the lock; one batched
              script). A game server that is still there after the deletion releases its
              claim and keeps its mapping; activity since the read keeps the session.

  pod activity  for sessions idle by Redis, their game servers are listed by identity label
              (DELETE_BATCH identities per list request): `rules.decide` takes the later of
              Redis activity and the pod's own report (annotation
              `agones.dev/sdk-last-activity`, docs/contracts.md "Activity"). If that list
              fails, those sessions are kept this pass rather than culled blind.

Each ended session writes one usage record: a JSON log line and an entry in the
`usage` stream. Every stage checks the time budget; a pass that runs out says so in its
summary (`truncated`) and the next pass continues.

Bad records never stop a pass: a member that is not an identity id (binary garbage), a
mapping of the wrong type or with missing or malformed fields is skipped and logged; a
shared key of the wrong type (the reconcile cursor, `activity`, `sessions`) costs only
the work that needs it, is logged and counted in `storeErrors`, and the cursor is reset.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from cold_start_pass import record_cold_starts
from rules import Action, Limits, SessionView, decide, needs_pod_report, pod_reported_activity
from session_views import replaced, seen, view_of
from shared.agones import (
    EMAIL_ANNOTATION,
    IDENTITY_LABEL,
    AgonesClient,
    GameServer,
    KubernetesError,
    KubernetesUnavailable,
)
from shared.config import CullerSettings
from shared.identity_id import is_identity_id, subject_of
from shared.responses import log
from shared.state import Mapping, RecordError, SessionStore, usage_record

DELETE_BATCH = 100          # identities per deletecollection request
LOCK_MARGIN_SECONDS = 15    # the culler's identity locks outlive the pass by this much


class CullPass:
    def __init__(self, store: SessionStore, agones: AgonesClient, settings: CullerSettings,
                 pool: ThreadPoolExecutor, clock=time.time):
        self.store, self.agones, self.settings, self.pool = store, agones, settings, pool
        self.clock = clock
        self.limits = Limits(settings.idle_seconds, settings.max_session_seconds,
                             settings.orphan_grace_seconds)

    def run(self) -> dict:
        started = time.monotonic()
        self.deadline = started + self.settings.pass_budget_seconds
        now = self.clock()
        summary = {"examined": 0, "culled": {}, "ended": {}, "kept": {}, "skipped": 0,
                   "indexDropped": 0, "orphansShutDown": 0, "restored": 0, "deleteFailures": 0,
                   "reconcileErrors": [], "storeErrors": [], "truncated": False}
        self.summary = summary
        self._listed: list[GameServer] = []

        timings = summary["timingsMs"] = {}
        mark = [time.monotonic()]

        def lap(name):
            t = time.monotonic()
            timings[name] = round((t - mark[0]) * 1000, 1)
            mark[0] = t

        views = self._candidate_views(now)
        lap("candidates")
        self._reconcile(views, now, summary)
        lap("reconcile")
        self._cold_starts(now, summary)
        lap("coldStarts")
        self._pod_activity(views, now)
        lap("podActivity")
        summary["examined"] = len(views)

        verdicts: dict[Action, list] = {a: [] for a in Action}
        for view in views.values():
            verdict = decide(view, now, self.limits)
            verdicts[verdict.action].append((view, verdict.reason))

        for view, reason in verdicts[Action.KEEP]:
            _count(summary["kept"], reason)
        for view, reason in verdicts[Action.SKIP]:
            summary["skipped"] += 1
            log("WARNING", "culler skipped a record", id=view.id, problem=reason)
        if verdicts[Action.DROP_INDEX]:
            summary["indexDropped"] = self.store.drop_unmapped_index(
                [v.id for v, _ in verdicts[Action.DROP_INDEX]])
        lap("decide")
        self._end(verdicts[Action.END], now, summary)
        self._cull(verdicts[Action.CULL], now, summary, lap)
        self._shutdown_orphans(verdicts[Action.SHUTDOWN_ORPHAN], now, summary)
        lap("orphans")
        self._restore(verdicts[Action.RESTORE], now, summary)
        lap("restore")

        summary["truncated"] = summary["truncated"] or self._out_of_time()
        summary["passMs"] = round((time.monotonic() - started) * 1000, 1)
        return summary

    def _out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline

    # ---- facts -----------------------------------------------------------------------
    def _store_error(self, what: str, error: Exception, default):
        """A shared key of the wrong type: log it, count it, go on without it."""
        text = str(error).split("\n")[0][:160]
        self.summary["storeErrors"].append(f"{what}: {text}")
        log("ERROR", "culler skipped a bad key", key=what, error=text)
        return default

    def _read(self, what: str, fn, *args, default):
        try:
            return fn(*args)
        except RecordError as e:
            return self._store_error(what, e, default)

    def _candidate_views(self, now: float) -> dict[str, SessionView]:
        s, limit = self.settings, self.settings.batch_limit
        ids = [i for i, _ in self._read("activity", self.store.idle_since,
                                        now - s.idle_seconds, limit, default=[])]
        ids += [i for i, _ in self._read("sessions", self.store.started_before,
                                         now - s.max_session_seconds, limit, default=[])]
        ids += [i for i, _ in self._read("budget-ends", self.store.budget_spent, now, limit,
                                         default=[])]
        self._continue, rank = self._read("reconcile", self.store.reconcile_cursor,
                                          default=("", 0))
        slice_ids = self._read("sessions", self.store.sessions_slice, rank,
                               s.reconcile_mappings_per_pass, default=[]) \
            if s.reconcile_mappings_per_pass else []
        self._next_rank = rank + len(slice_ids) if len(slice_ids) == s.reconcile_mappings_per_pass else 0
        unique = list(dict.fromkeys(ids + slice_ids))
        # Members that are not identity ids (binary garbage, hand edits) are skipped: they
        # cannot name a key or a label safely.
        bad = {id_ for id_ in unique if not is_identity_id(id_)}
        good = [id_ for id_ in unique if id_ not in bad]
        self._slice_ids = set(slice_ids) - bad
        views = {id_: SessionView(id=id_, corrupt=f"not an identity id: {id_!r}"[:120])
                 for id_ in bad}
        views.update({id_: view_of(id_, fields, score)
                      for id_, (fields, score) in zip(good, self.store.read_sessions(good))})
        return views

    def _reconcile(self, views: dict[str, SessionView], now: float, summary: dict) -> None:
        # The mapping slice: does each one's game server still exist, and is it ours?
        lookups = [v for id_, v in views.items() if id_ in self._slice_ids and v.mapping]
        if lookups:
            results = self.pool.map(lambda v: _try(self.agones.get, v.mapping.gs), lookups)
            for view, (gs, error) in zip(lookups, results):
                if error:
                    summary["reconcileErrors"].append(f"get {view.mapping.gs}: {error}")
                else:
                    views[view.id] = seen(view, gs)
        # One page of the fleet: Allocated game servers nobody points to. After Redis lost
        # its data (no cursor), every page this pass's budget allows: those are people's
        # sessions whose mappings are to be rebuilt.
        pages = 10 ** 6 if self._read("reconcile", self.store.cache_was_lost, default=False) else 1
        if pages > 1:
            summary["fullReconcile"] = True
        token = self._continue
        while pages > 0:
            pages -= 1
            page, token = self._fleet_page(token, summary)
            self._listed += page
            self._unmapped_views(views, page)
            if not token or self._out_of_time():
                break
        if self.store.save_reconcile_cursor(token, self._next_rank):
            self._store_error("reconcile", RecordError("cursor of the wrong type; reset"), None)

    def _cold_starts(self, now: float, summary: dict) -> None:
        recorded = record_cold_starts(
            self.store, self.agones, self.settings.profile_for, self._listed, now,
            self._out_of_time, lambda e: self._store_error("cold-starts", e, None))
        if recorded:
            summary["coldStarts"] = recorded

    def _fleet_page(self, continue_token: str, summary: dict) -> tuple[list[GameServer], str]:
        try:
            return self.agones.list(self.agones.fleet_selector,
                                    limit=self.settings.reconcile_page_size,
                                    continue_token=continue_token or None)
        except KubernetesError as e:
            if e.status == 410:   # continue token expired: start the listing again
                return [], ""
            summary["reconcileErrors"].append(f"list: {e}")
        except KubernetesUnavailable as e:
            summary["reconcileErrors"].append(f"list: {e}")
        return [], continue_token

    def _unmapped_views(self, views: dict[str, SessionView], page: list[GameServer]) -> None:
        allocated = [gs for gs in page if gs.state == "Allocated" or gs.state in ("Unhealthy", "Error")]
        labelled = [gs for gs in allocated if gs.identity]
        mapped = self.store.mapped_game_servers([gs.identity for gs in labelled])
        broken = []
        for gs, mapped_gs in zip(labelled, mapped):
            if mapped_gs == gs.name:
                if gs.identity in views:
                    views[gs.identity] = seen(views[gs.identity], gs)
                elif gs.state != "Allocated" or gs.deleting:
                    broken.append(gs)     # a mapped server that went bad: read its session
            elif gs.state == "Allocated":
                views[f"orphan:{gs.name}"] = SessionView(id=gs.identity, game_server=gs,
                                                         mapped_elsewhere=mapped_gs is not None)
        rows = self.store.read_sessions([gs.identity for gs in broken]) if broken else []
        for gs, (fields, score) in zip(broken, rows):
            views[gs.identity] = seen(view_of(gs.identity, fields, score), gs)
        for gs in allocated:
            if not gs.identity and gs.state == "Allocated":
                views[f"orphan:{gs.name}"] = SessionView(id=None, game_server=gs)

    def _pod_activity(self, views: dict[str, SessionView], now: float) -> None:
        """The game servers of sessions idle by Redis, so `decide` can read the pod's own
        activity report: one list per DELETE_BATCH identities, by fleet + identity label."""
        wanted = [v for v in views.values() if needs_pod_report(v, now, self.limits)]
        if not wanted:
            return
        batches = [wanted[i:i + DELETE_BATCH] for i in range(0, len(wanted), DELETE_BATCH)]
        fleet = self.agones.fleet_selector

        def list_batch(batch):
            selector = f"{fleet},{IDENTITY_LABEL} in ({','.join(v.id for v in batch)})"
            # Unpaged: the selector bounds it to these identities, and a page boundary
            # would make a live game server look gone.
            return _try(lambda: self.agones.list(selector)[0])

        for batch, (listed, error) in zip(batches, self.pool.map(list_batch, batches)):
            if error:
                self.summary["reconcileErrors"].append(f"pod activity: {error}")
                for v in batch:
                    views[v.id] = replaced(v, pod_activity_unknown=True)
                continue
            by_name = {gs.name: gs for gs in listed}
            for v in batch:
                views[v.id] = seen(v, by_name.get(v.mapping.gs))

    # ---- actions ---------------------------------------------------------------------
    def _end(self, items, now: float, summary: dict) -> None:
        """Sessions whose game server is already gone or no longer ours."""
        ended = [(v.id, v.mapping.gs, usage_record(v.id, v.mapping.gs, v.mapping.allocated_at, now, r,
                                                self.settings.gpus_for(v.mapping.gs)))
                 for v, r in items]
        for (id_, gs, usage), done in zip(ended, self.store.finish_sessions(ended) if ended else []):
            if done:
                _count(summary["ended"], usage["reason"])
                log("INFO", "session ended", **usage)

    def _cull(self, items, now: float, summary: dict, lap=lambda name: None) -> None:
        if not items or self._out_of_time():
            summary["truncated"] = summary["truncated"] or bool(items)
            return
        token = self._token = secrets.token_hex(16)
        lock_ms = int((self.deadline - time.monotonic() + LOCK_MARGIN_SECONDS) * 1000)
        claimed = self.store.claim_culls(
            [(v.id, v.mapping.gs, v.last_activity) for v, _ in items], now, token, lock_ms)
        for result in claimed:
            if result == 0:
                _count(summary["kept"], "activity-during-pass")
            elif result < 0:
                _count(summary["kept"], "allocation-in-progress")
        to_delete = [(v, r) for (v, r), result in zip(items, claimed) if result == 1]
        lap("claim")
        errors = self._delete_sessions([v for v, _ in to_delete], now, summary)
        lap("delete")
        failed = [(v.id, v.mapping.gs) for v, _ in to_delete if v.id in errors]
        for view, _ in to_delete:
            if view.id in errors:
                summary["deleteFailures"] += 1
                log("ERROR", "game server deletion failed; mapping kept", id=view.id,
                    gs=view.mapping.gs, error=errors[view.id])
        if failed:
            self.store.release_claims(failed, token)
        ended = [(v.id, v.mapping.gs, usage_record(v.id, v.mapping.gs, v.mapping.allocated_at, now, r,
                                                self.settings.gpus_for(v.mapping.gs)))
                 for v, r in to_delete if v.id not in errors]
        for (id_, gs, usage), done in zip(ended, self.store.finish_sessions(ended, token)
                                          if ended else []):
            _count(summary["culled"], usage["reason"])
            log("INFO", "session ended", **usage)
        lap("finish")

    def _delete_sessions(self, views: list[SessionView], now: float, summary: dict) -> dict:
        """Deletes the claimed sessions' game servers, DELETE_BATCH identities per request
        (deletecollection by fleet + identity label; safe because each identity's lock is
        held, so no new game server can be allocated for it meanwhile). Answers
        {id: error} for the sessions whose game server is still there."""
        # Fencing: delete only for identities whose lock our token still holds (an expired
        # claim may already belong to an allocation making a new game server).
        errors = {v.id: "cull lock lost before deletion"
                  for v, held in zip(views, self.store.locks_held([v.id for v in views],
                                                                  self._token)) if not held}
        views = [v for v in views if v.id not in errors]
        batches = [views[i:i + DELETE_BATCH] for i in range(0, len(views), DELETE_BATCH)]
        results = self.pool.map(
            lambda batch: _try(self.agones.delete_for_identities, [v.id for v in batch])
            if not self._out_of_time() else (None, "pass time budget used up"), batches)
        unconfirmed = []
        for batch, (deleted, error) in zip(batches, results):
            if error:
                errors.update({v.id: error for v in batch})
                continue
            names = {gs.name for gs in deleted}
            unconfirmed += [v for v in batch if v.mapping.gs not in names]
            expected = {v.mapping.gs for v in batch}
            for gs in deleted:      # an orphan labelled with the same identity went too
                if gs.name not in expected:
                    usage = usage_record(gs.identity or "", gs.name, gs.allocated_at, now,
                                         "orphan", self.settings.gpus_for(gs.name))
                    self._read("usage", self.store.record_usage, usage, default=None)
                    summary["orphansShutDown"] += 1
                    log("INFO", "session ended", **usage)
        # Not in the deleted list: gone already (fine), or still there (a failure).
        for view, (gs, error) in zip(unconfirmed, self.pool.map(
                lambda v: _try(self.agones.get, v.mapping.gs), unconfirmed)):
            if error or gs is not None:
                errors[view.id] = error or "game server still exists"
        return errors

    def _delete(self, name: str, uid: str | None) -> tuple[bool, str | None]:
        if self._out_of_time():
            return False, "pass time budget used up"
        _, error = _try(self.agones.delete, name, uid)
        return error is None, error

    def _restore(self, items, now: float, summary: dict) -> None:
        """Mappings Redis lost, written back from the game servers that are the sessions."""
        if not items:
            return
        rows = []
        for view, _ in items:
            gs = view.game_server
            mapping = Mapping(gs.name, gs.target, gs.allocated_at, subject_of(view.id),
                              str(gs.annotations.get(EMAIL_ANNOTATION, "")),
                              budget_ends_at=gs.budget_ends_at)
            rows.append((view.id, mapping, pod_reported_activity(gs, now)))
        restored = self._read("restore", self.store.restore_mappings, rows, default=[])
        summary["restored"] = sum(1 for done in restored if done)
        for (id_, mapping, _), done in zip(rows, restored):
            if done:
                log("INFO", "mapping rebuilt from the cluster", id=id_, gs=mapping.gs,
                    target=mapping.target)

    def _shutdown_orphans(self, items, now: float, summary: dict) -> None:
        if not items:
            return
        results = list(self.pool.map(
            lambda item: self._delete(item[0].game_server.name, item[0].game_server.uid), items))
        for (view, reason), (ok, error) in zip(items, results):
            gs = view.game_server
            if not ok:
                summary["deleteFailures"] += 1
                log("ERROR", "orphan deletion failed", gs=gs.name, error=error)
                continue
            usage = usage_record(view.id or "", gs.name, gs.allocated_at, now, reason,
                                 self.settings.gpus_for(gs.name))
            self._read("usage", self.store.record_usage, usage, default=None)
            summary["orphansShutDown"] += 1
            log("INFO", "session ended", **usage)


def _try(fn, *args):
    try:
        return fn(*args), None
    except (KubernetesError, KubernetesUnavailable) as e:
        return None, str(e)


def _count(counter: dict, key: str) -> None:
    counter[key] = counter.get(key, 0) + 1

