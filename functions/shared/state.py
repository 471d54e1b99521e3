"""Session state in Redis: who has which game server, and when they were last active.

Schema (prefix `sdfleet:` by default, env REDIS_PREFIX; docs/contracts.md section 2):

  <p>map:<id>     hash    gs, target (ip:port), allocated_at (epoch s, float), sub, email,
                          and `culling` (epoch s) while the culler is deleting its game server
  <p>activity     zset    member <id>, score = last activity (router ZADDs, allocator sets
                          it on allocation); the culler finds idle ids with ZRANGEBYSCORE
  <p>sessions     zset    member <id>, score = allocated_at; the culler finds sessions over
                          the maximum age with ZRANGEBYSCORE, never by scanning
  <p>lock:<id>    string  random token, PX; per-identity lock held by the allocator while it
                          allocates and by the culler while it deletes that identity's game
                          server; released only by its holder (compare-and-delete)
  <p>usage        stream  one entry per ended session: id, gs, start, end, seconds,
                          gpu_seconds, reason, email, group (the shared budget it drew on,
                          or ''); approximately capped at USAGE_MAXLEN
  <p>usage:<YYYY-MM>  hash  member <id> -> GPU-seconds of that person's sessions that ended in
                          that UTC month; <id>@<profile> -> those of one profile;
                          budget:<group> -> a group's shared budget; all incremented in the
                          same script that ends a session
  <p>reconcile    hash    continue (Kubernetes list continue token), rank (mapping slice
                          cursor): where the culler's incremental reconcile resumes
  <p>profile:<id> string  the profile the person chose last (EX PROFILE_CHOICE_SECONDS);
                          lost with a flush, the person is asked again
  <p>capacity-logged:<profile>:<kind>  string, EX CAPACITY_LOG_SECONDS: a capacity failure
                          is logged once per profile and kind, not once per poll

Every change that touches more than one key runs as one Lua script, so a crash or a lost
connection never leaves a mapping without its index entries or the reverse. The scripts
use several keys, which a single Memorystore instance (not Redis Cluster) allows.

One client per process: redis-py keeps a connection pool, so a request reuses a warm
connection (AUTH and TLS are paid once per connection, not per request).
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass

import redis

from .budgets import period_label
from .redis_scripts import (
    _CLAIM_CULLS,
    _DROP_INDEX_IF_UNMAPPED,
    _DROP_MAPPING_IF,
    _EXTEND_LOCK,
    _FINISH_SESSIONS,
    _RECORD_ALLOCATION,
    _RECORD_USAGE,
    _RELEASE_CLAIM,
    _RELEASE_LOCK,
    _RESERVE_POOL,
    _RESTORE_MAPPING,
)

GAME_SERVER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
TARGET = re.compile(r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")
USAGE_MAXLEN = 1_000_000
USAGE_FIELDS = ("id", "gs", "start", "end", "seconds", "gpu_seconds", "reason")
SCRIPT_BATCH = 200      # sessions per batched script call: Redis stays responsive between
PROFILE_CHOICE_SECONDS = 180 * 86400
CAPACITY_LOG_SECONDS = 600

RedisUnavailable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.BusyLoadingError)
# A command refused for what a key holds (WRONGTYPE...): one bad record, not an outage.
RecordError = redis.exceptions.ResponseError

def _mapping_fields(mapping: "Mapping") -> list[str]:
    fields = ["gs", mapping.gs, "target", mapping.target,
              "allocated_at", repr(mapping.allocated_at), "sub", mapping.sub,
              "email", mapping.email]
    if mapping.budget_ends_at is not None:
        fields += ["budget_ends_at", repr(mapping.budget_ends_at)]
    if mapping.profile is not None:
        fields += ["profile", mapping.profile]
    if mapping.budget_pool is not None and mapping.budget_reserved is not None:
        fields += ["budget_pool", mapping.budget_pool, "budget_reserved",
                   repr(mapping.budget_reserved), "budget_reserved_in", mapping.budget_reserved_in or ""]
    return fields


def _chunks(items: list, size: int = SCRIPT_BATCH):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class CorruptRecord(ValueError):
    pass


@dataclass(frozen=True)
class Mapping:
    gs: str
    target: str
    allocated_at: float
    sub: str
    email: str
    culling: float | None = None
    budget_ends_at: float | None = None   # the person's GPU-hour budget ends the session then
    budget_pool: str | None = None        # the group whose shared budget it draws on
    budget_reserved: float | None = None  # what it holds of that budget until it ends
    budget_reserved_in: str | None = None  # the reservation's field (`<YYYY-MM>|<group>`)
    profile: str | None = None            # its usage also counts as `<id>@<profile>`

    @classmethod
    def parse(cls, fields: dict) -> "Mapping":
        """A mapping hash as read from Redis; CorruptRecord names what is wrong."""
        try:
            gs, target = fields["gs"], fields["target"]
            allocated_at = float(fields["allocated_at"])
            culling = float(fields["culling"]) if fields.get("culling") else None
            budget = float(fields["budget_ends_at"]) if fields.get("budget_ends_at") else None
        except KeyError as e:
            raise CorruptRecord(f"missing field {e.args[0]}") from None
        except ValueError:
            raise CorruptRecord("a timestamp is not a number") from None
        if not (math.isfinite(allocated_at) and (culling is None or math.isfinite(culling))
                and (budget is None or math.isfinite(budget))):
            raise CorruptRecord("a timestamp is not finite")
        # A Kubernetes object name (DNS-1123 subdomain) and <ip>:<port>: anything else
        # (binary garbage included) could not be looked up or proxied to.
        if not GAME_SERVER_NAME.fullmatch(gs) or len(gs) > 253:
            raise CorruptRecord("the game server name is not a Kubernetes object name")
        if not TARGET.fullmatch(target):
            raise CorruptRecord("the target is not <address>:<port>")
        try:
            held = float(fields["budget_reserved"]) if fields.get("budget_reserved") else None
        except ValueError:
            raise CorruptRecord("a budget amount is not a number") from None
        return cls(gs, target, allocated_at, fields.get("sub", ""), fields.get("email", ""),
                   culling, budget, fields.get("budget_pool") or None, held,
                   fields.get("budget_reserved_in") or None, fields.get("profile") or None)


class SessionStore:
    def __init__(self, client: redis.Redis, prefix: str = "sdfleet:", reset_day: int = 1):
        self.client, self.prefix, self.reset_day = client, prefix, reset_day
        self.activity_key = f"{prefix}activity"
        self.sessions_key = f"{prefix}sessions"
        self.usage_key = f"{prefix}usage"
        self.reconcile_key = f"{prefix}reconcile"
        self.budget_ends_key = f"{prefix}budget-ends"
        self.reserved_key = f"{prefix}reserved"
        s = client.register_script
        self._release_lock, self._record_allocation = s(_RELEASE_LOCK), s(_RECORD_ALLOCATION)
        self._drop_mapping_if, self._claim_culls = s(_DROP_MAPPING_IF), s(_CLAIM_CULLS)
        self._release_claim, self._finish_sessions = s(_RELEASE_CLAIM), s(_FINISH_SESSIONS)
        self._drop_index = s(_DROP_INDEX_IF_UNMAPPED)
        self._extend_lock = s(_EXTEND_LOCK)
        self._restore_mapping = s(_RESTORE_MAPPING)
        self._record_usage = s(_RECORD_USAGE)
        self._reserve_pool = s(_RESERVE_POOL)

    def map_key(self, id_: str) -> str:
        return f"{self.prefix}map:{id_}"

    def lock_key(self, id_: str) -> str:
        return f"{self.prefix}lock:{id_}"

    # ---- allocator -------------------------------------------------------------------
    def mapping(self, id_: str) -> Mapping | None:
        fields = self.client.hgetall(self.map_key(id_))
        return Mapping.parse(fields) if fields else None

    def acquire_lock(self, id_: str, ttl_ms: int) -> str | None:
        token = secrets.token_hex(16)
        return token if self.client.set(self.lock_key(id_), token, nx=True, px=ttl_ms) else None

    def lock_held(self, id_: str) -> bool:
        return bool(self.client.exists(self.lock_key(id_)))

    def extend_lock(self, id_: str, token: str, ttl_ms: int) -> bool:
        """True (and the lock lives `ttl_ms` more) only while `token` still holds it."""
        return bool(self._extend_lock(keys=[self.lock_key(id_)], args=[token, ttl_ms]))

    def locks_held(self, ids: list[str], token: str) -> list[bool]:
        """For each id: does `token` still hold its lock (the culler, before deleting)?"""
        pipe = self.client.pipeline(transaction=False)
        for id_ in ids:
            pipe.get(self.lock_key(id_))
        return [value == token for value in pipe.execute(raise_on_error=False)]

    def release_lock(self, id_: str, token: str) -> None:
        self._release_lock(keys=[self.lock_key(id_)], args=[token])

    def record_allocation(self, id_: str, token: str, mapping: Mapping, now: float) -> bool:
        """Writes mapping + activity + session start, only while `token` holds the lock."""
        fields = _mapping_fields(mapping)
        return bool(self._record_allocation(
            keys=[self.lock_key(id_), self.map_key(id_), self.activity_key, self.sessions_key,
                  self.budget_ends_key],
            args=[token, id_, repr(now), repr(mapping.allocated_at), *fields]))

    def drop_mapping_if(self, id_: str, gs: str, token: str) -> bool:
        """Drops the mapping if it still points at `gs` and `token` holds the lock."""
        return bool(self._drop_mapping_if(
            keys=[self.map_key(id_), self.activity_key, self.sessions_key, self.lock_key(id_),
                  self.budget_ends_key],
            args=[id_, gs, token]))

    def chosen_profile(self, id_: str) -> str | None:
        return self.client.get(f"{self.prefix}profile:{id_}")

    def remember_profile(self, id_: str, profile: str) -> None:
        self.client.set(f"{self.prefix}profile:{id_}", profile, ex=PROFILE_CHOICE_SECONDS)

    def first_report(self, profile: str, kind: str) -> bool:
        """True once per CAPACITY_LOG_SECONDS for a profile's capacity failure of a kind."""
        return bool(self.client.set(f"{self.prefix}capacity-logged:{profile}:{kind}", "1",
                                    nx=True, ex=CAPACITY_LOG_SECONDS))

    # ---- culler ----------------------------------------------------------------------
    def budget_spent(self, now: float, limit: int) -> list[tuple[str, float]]:
        """Sessions whose budget ended by `now`."""
        return self.client.zrangebyscore(self.budget_ends_key, "-inf", repr(now), start=0,
                                         num=limit, withscores=True)

    def reserve_pool(self, pool: str, allowed: float, cap: float, now: float
                     ) -> tuple[bool, float, str]:
        """(held, seconds held or used so far, the reservation's field) for a group budget."""
        field = f"{period_label(now, self.reset_day)}|{pool}"
        ok, amount = self._reserve_pool(keys=[self.month_key(now), self.reserved_key],
                                        args=[pool, field, repr(allowed), repr(cap)])
        return bool(ok), float(amount), field

    def release_pool(self, field: str, amount: float) -> None:
        """Give back a reservation whose session never started."""
        self.client.hincrbyfloat(self.reserved_key, field, -amount)

    def used_this_month(self, id_: str, now: float, profile: str | None = None) -> float:
        """GPU-seconds of the person's sessions (of one profile) that ended this calendar
        month (UTC)."""
        field = id_ if profile is None else f"{id_}@{profile}"
        return float(self.client.hget(self.month_key(now), field) or 0.0)

    def idle_since(self, before: float, limit: int) -> list[tuple[str, float]]:
        return self.client.zrangebyscore(self.activity_key, "-inf", f"({before!r}",
                                         start=0, num=limit, withscores=True)

    def started_before(self, before: float, limit: int) -> list[tuple[str, float]]:
        return self.client.zrangebyscore(self.sessions_key, "-inf", f"({before!r}",
                                         start=0, num=limit, withscores=True)

    def sessions_slice(self, rank: int, count: int) -> list[str]:
        return self.client.zrange(self.sessions_key, rank, rank + count - 1)

    def read_sessions(self, ids: list[str]) -> list[tuple[dict | Exception, float | None]]:
        """For each id: its mapping hash (or the error reading it) and activity score."""
        pipe = self.client.pipeline(transaction=False)
        for id_ in ids:
            pipe.hgetall(self.map_key(id_))
            pipe.zscore(self.activity_key, id_)
        results = pipe.execute(raise_on_error=False)
        out = []
        for i in range(0, len(results), 2):
            fields, score = results[i], results[i + 1]
            if isinstance(fields, redis.exceptions.ConnectionError):
                raise fields
            out.append((fields, score if isinstance(score, float) else None))
        return out

    def claim_culls(self, claims: list[tuple[str, str, float | None]], now: float,
                    token: str, lock_ms: int) -> list[int]:
        """(id, gs, score read) -> 1 claimed (lock taken with `token`), 0 changed since it
        was read, -1 an allocation for that identity is under way."""
        pipe = self.client.pipeline(transaction=False)
        for chunk in _chunks(claims):
            keys, args = [self.activity_key], [repr(now), token, lock_ms]
            for id_, gs, score in chunk:
                keys += [self.map_key(id_), self.lock_key(id_)]
                args += [id_, gs, "" if score is None else repr(score)]
            self._claim_culls(keys=keys, args=args, client=pipe)
        return [int(code) for codes in pipe.execute() for code in codes]

    def release_claims(self, claims: list[tuple[str, str]], token: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for id_, gs in claims:
            self._release_claim(keys=[self.map_key(id_), self.lock_key(id_)], args=[gs, token],
                                client=pipe)
        pipe.execute()

    def finish_sessions(self, ended: list[tuple[str, str, dict]], token: str = "") -> list[bool]:
        """(id, gs, usage fields): drop the mapping that still points at gs, append the
        usage record, release the culler's lock on the identity."""
        pipe = self.client.pipeline(transaction=False)
        for chunk in _chunks(ended):
            month = self.month_key(chunk[0][2]["end"])
            keys, args = [self.activity_key, self.sessions_key, self.usage_key, month], [USAGE_MAXLEN, token]
            for id_, gs, usage in chunk:
                keys += [self.map_key(id_), self.lock_key(id_)]
                args += [id_, gs] + [str(usage[f]) for f in USAGE_FIELDS[2:]]
            keys += [self.budget_ends_key, self.reserved_key]
            self._finish_sessions(keys=keys, args=args, client=pipe)
        return [code == 1 for codes in pipe.execute() for code in codes]

    def record_usage(self, usage: dict) -> None:
        fields = [str(x) for k in USAGE_FIELDS for x in (k, usage[k])]
        self._record_usage(keys=[self.usage_key, self.month_key(usage["end"])],
                           args=[USAGE_MAXLEN, *fields])

    def month_key(self, end: float) -> str:
        """The person-by-person GPU-seconds of the budget month a session ended in (a UTC
        calendar month, or from budgets.resetDay)."""
        return f"{self.prefix}usage:{period_label(end, self.reset_day)}"

    def month_usage(self, month: str) -> dict[str, float]:
        """GPU-seconds per identity for a month `YYYY-MM`."""
        return {k: float(v) for k, v in self.client.hgetall(f"{self.prefix}usage:{month}").items()}

    def drop_unmapped_index(self, ids: list[str]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for id_ in ids:
            self._drop_index(keys=[self.map_key(id_), self.activity_key, self.sessions_key,
                                   self.budget_ends_key], args=[id_], client=pipe)
        return sum(pipe.execute())

    def restore_mappings(self, items: list[tuple[str, Mapping, float]]) -> list[bool]:
        """Writes back (id, mapping, last activity) where Redis has no mapping and no lock."""
        pipe = self.client.pipeline(transaction=False)
        for id_, mapping, last_activity in items:
            fields = _mapping_fields(mapping)
            self._restore_mapping(
                keys=[self.map_key(id_), self.lock_key(id_), self.activity_key, self.sessions_key,
                      self.budget_ends_key],
                args=[id_, repr(last_activity), repr(mapping.allocated_at), *fields], client=pipe)
        return [r == 1 for r in pipe.execute(raise_on_error=False)]

    def cache_was_lost(self) -> bool:
        """No reconcile cursor: Redis was flushed (or this is the first pass ever), so the
        next reconcile reads the whole fleet instead of one page."""
        return not self.client.exists(self.reconcile_key)

    def mapped_game_servers(self, ids: list[str]) -> list[str | None]:
        pipe = self.client.pipeline(transaction=False)
        for id_ in ids:
            pipe.hget(self.map_key(id_), "gs")
        return [r if isinstance(r, str) else None for r in pipe.execute(raise_on_error=False)]

    def reconcile_cursor(self) -> tuple[str, int]:
        """(continue token, rank); RecordError if the key is not a hash."""
        fields = self.client.hgetall(self.reconcile_key)
        try:
            rank = max(int(fields.get("rank", 0)), 0)
        except ValueError:
            rank = 0
        token = fields.get("continue", "")
        return (token if token.isprintable() and token.isascii() else ""), rank

    def save_reconcile_cursor(self, continue_token: str, rank: int) -> bool:
        """Saves the cursor; a cursor key of the wrong type is replaced (it only says where
        the next incremental reconcile resumes). True if it had to be replaced."""
        try:
            self.client.hset(self.reconcile_key, mapping={"continue": continue_token, "rank": rank})
            return False
        except RecordError:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.reconcile_key)
            pipe.hset(self.reconcile_key, mapping={"continue": continue_token, "rank": rank})
            pipe.execute()
            return True


def usage_record(id_: str, gs: str, start: float, end: float, reason: str,
           gpus_per_pod: float = 1.0) -> dict:
    """One ended session: its wall-clock seconds and the GPU-seconds it held (a pod holds
    `gpus_per_pod` GPUs: the node's accelerators shared by its time-sharing clients)."""
    seconds = max(end - start, 0.0)
    return {"id": id_, "gs": gs, "start": round(start, 3), "end": round(end, 3),
            "seconds": round(seconds, 3), "gpu_seconds": round(seconds * gpus_per_pod, 3),
            "reason": reason}
