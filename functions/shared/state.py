"""Session state in Redis: who has which game server, and when they were last active.

Schema (prefix `sdfleet:` by default, env REDIS_PREFIX; docs/contracts.md section 2):

  <p>map:<id>     hash    gs, target (ip:port), allocated_at (epoch s, float), sub, email,
                          and `culling` (epoch s) while the culler is deleting its game server
  <p>activity     zset    member <id>, score = last activity (router ZADDs, allocator sets
                          it on allocation); the culler finds idle ids with ZRANGEBYSCORE
  <p>sessions     zset    member <id>, score = allocated_at; the culler finds sessions over
                          the maximum age with ZRANGEBYSCORE, never by scanning
  <p>lock:<id>    string  random token, PX; allocation lock, released only by its holder
  <p>usage        stream  one entry per ended session: id, gs, start, end, gpu_minutes, reason
                          (approximately capped at USAGE_MAXLEN entries)
  <p>reconcile    hash    continue (Kubernetes list continue token), rank (mapping slice
                          cursor): where the culler's incremental reconcile resumes

Every change that touches more than one key runs as one Lua script, so a crash or a lost
connection never leaves a mapping without its index entries or the reverse. The scripts
use several keys, which a single Memorystore instance (not Redis Cluster) allows.

One client per process: redis-py keeps a connection pool, so a request reuses a warm
connection (AUTH and TLS are paid once per connection, not per request).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .config import RedisSettings

USAGE_MAXLEN = 1_000_000

RedisUnavailable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.BusyLoadingError)

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock, map, activity, sessions. ARGV: token, id, now, allocated_at, field pairs...
_RECORD_ALLOCATION = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
return 1
"""

# KEYS: map, activity, sessions. ARGV: id, gs. Drops a mapping only if it is the one read.
_DROP_MAPPING_IF = """
if redis.call('HGET', KEYS[1], 'gs') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

# KEYS: map, activity, lock. ARGV: id, gs, activity score read ('' if none), now, token, ms.
# The culler's compare step: the session is still the one it read, nobody was active
# since, and no allocation is under way. Takes the identity's allocation lock (so no new
# game server is allocated for it while its old one is deleted) and marks the mapping
# `culling` so the allocator stops handing it out. -1: an allocation holds the lock.
_CLAIM_CULL = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
if redis.call('HGET', KEYS[1], 'gs') ~= ARGV[2] then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if ARGV[3] == '' then
  if score then return 0 end
elseif (not score) or tonumber(score) ~= tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
redis.call('HSET', KEYS[1], 'culling', ARGV[4])
return 1
"""

# KEYS: map, lock. ARGV: gs, token. The game server could not be deleted: the mapping
# stays as it was and the lock is released.
_RELEASE_CLAIM = """
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
if redis.call('HGET', KEYS[1], 'gs') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'culling') end
return 0
"""

# KEYS: map, activity, sessions, usage, lock. ARGV: id, gs, maxlen, lock token ('' if
# none), usage field pairs...
_FINISH_SESSION = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[5]) == ARGV[4] then redis.call('DEL', KEYS[5]) end
if redis.call('HGET', KEYS[1], 'gs') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 5))
return 1
"""

# KEYS: map, activity, sessions. ARGV: id. Index entries whose mapping no longer exists.
_DROP_INDEX_IF_UNMAPPED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
"""


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

    @classmethod
    def parse(cls, fields: dict) -> "Mapping":
        """A mapping hash as read from Redis; CorruptRecord names what is wrong."""
        try:
            gs, target = fields["gs"], fields["target"]
            allocated_at = float(fields["allocated_at"])
            culling = float(fields["culling"]) if fields.get("culling") else None
        except KeyError as e:
            raise CorruptRecord(f"missing field {e.args[0]}") from None
        except ValueError:
            raise CorruptRecord("a timestamp is not a number") from None
        if not gs or ":" not in target:
            raise CorruptRecord("empty game server or target")
        return cls(gs, target, allocated_at, fields.get("sub", ""), fields.get("email", ""),
                   culling)


def connect(settings: RedisSettings, password: str | None) -> redis.Redis:
    # Two quick retries (a failover or a dropped idle connection), then the caller answers
    # 503: redis-py's default back-off would hold a request for seconds.
    kwargs = dict(host=settings.host, port=settings.port, password=password,
                  decode_responses=True, socket_timeout=2, socket_connect_timeout=2,
                  health_check_interval=30, max_connections=64,
                  retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
    if settings.tls:
        kwargs.update(ssl=True, ssl_cert_reqs="required", ssl_ca_certs=settings.ca_file)
    return redis.Redis(**kwargs)


class SessionStore:
    def __init__(self, client: redis.Redis, prefix: str = "sdfleet:"):
        self.client, self.prefix = client, prefix
        self.activity_key = f"{prefix}activity"
        self.sessions_key = f"{prefix}sessions"
        self.usage_key = f"{prefix}usage"
        self.reconcile_key = f"{prefix}reconcile"
        s = client.register_script
        self._release_lock, self._record_allocation = s(_RELEASE_LOCK), s(_RECORD_ALLOCATION)
        self._drop_mapping_if, self._claim_cull = s(_DROP_MAPPING_IF), s(_CLAIM_CULL)
        self._release_claim, self._finish_session = s(_RELEASE_CLAIM), s(_FINISH_SESSION)
        self._drop_index = s(_DROP_INDEX_IF_UNMAPPED)

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

    def release_lock(self, id_: str, token: str) -> None:
        self._release_lock(keys=[self.lock_key(id_)], args=[token])

    def record_allocation(self, id_: str, token: str, mapping: Mapping, now: float) -> bool:
        """Writes mapping + activity + session start, only while `token` holds the lock."""
        fields = ["gs", mapping.gs, "target", mapping.target,
                  "allocated_at", repr(mapping.allocated_at), "sub", mapping.sub,
                  "email", mapping.email]
        return bool(self._record_allocation(
            keys=[self.lock_key(id_), self.map_key(id_), self.activity_key, self.sessions_key],
            args=[token, id_, repr(now), repr(mapping.allocated_at), *fields]))

    def drop_mapping_if(self, id_: str, gs: str) -> bool:
        return bool(self._drop_mapping_if(
            keys=[self.map_key(id_), self.activity_key, self.sessions_key], args=[id_, gs]))

    # ---- culler ----------------------------------------------------------------------
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
        for id_, gs, score in claims:
            self._claim_cull(keys=[self.map_key(id_), self.activity_key, self.lock_key(id_)],
                             args=[id_, gs, "" if score is None else repr(score), repr(now),
                                   token, lock_ms], client=pipe)
        return [int(r) for r in pipe.execute()]

    def release_claims(self, claims: list[tuple[str, str]], token: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for id_, gs in claims:
            self._release_claim(keys=[self.map_key(id_), self.lock_key(id_)], args=[gs, token],
                                client=pipe)
        pipe.execute()

    def finish_sessions(self, ended: list[tuple[str, str, dict]], token: str = "") -> list[bool]:
        """(id, gs, usage fields): drop the mapping that still points at gs, log usage,
        release the culler's lock on the identity."""
        pipe = self.client.pipeline(transaction=False)
        for id_, gs, usage in ended:
            pairs = [x for kv in usage.items() for x in (kv[0], str(kv[1]))]
            self._finish_session(
                keys=[self.map_key(id_), self.activity_key, self.sessions_key, self.usage_key,
                      self.lock_key(id_)],
                args=[id_, gs, USAGE_MAXLEN, token, *pairs], client=pipe)
        return [r == 1 for r in pipe.execute()]

    def record_usage(self, usage: dict) -> None:
        self.client.xadd(self.usage_key, {k: str(v) for k, v in usage.items()},
                         maxlen=USAGE_MAXLEN, approximate=True)

    def drop_unmapped_index(self, ids: list[str]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for id_ in ids:
            self._drop_index(keys=[self.map_key(id_), self.activity_key, self.sessions_key],
                             args=[id_], client=pipe)
        return sum(pipe.execute())

    def mapped_game_servers(self, ids: list[str]) -> list[str | None]:
        pipe = self.client.pipeline(transaction=False)
        for id_ in ids:
            pipe.hget(self.map_key(id_), "gs")
        return [r if isinstance(r, str) else None for r in pipe.execute(raise_on_error=False)]

    def reconcile_cursor(self) -> tuple[str, int]:
        fields = self.client.hgetall(self.reconcile_key)
        try:
            rank = int(fields.get("rank", 0))
        except ValueError:
            rank = 0
        return fields.get("continue", ""), rank

    def save_reconcile_cursor(self, continue_token: str, rank: int) -> None:
        self.client.hset(self.reconcile_key, mapping={"continue": continue_token, "rank": rank})
