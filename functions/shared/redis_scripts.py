"""The Lua scripts the functions run in Redis: each write that must not be half-done is one
script (Redis runs a script alone), so a crash or a race never leaves a mapping without its
index entries or a usage record without its counters. Loaded by shared.state.SessionStore."""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock, map, activity, sessions, budget-ends. ARGV: token, id, now, allocated_at,
# field pairs... A mapping with `budget_ends_at` is indexed by it, so the culler finds it.
_RECORD_ALLOCATION = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
local ends = redis.call('HGET', KEYS[2], 'budget_ends_at')
if ends then redis.pcall('ZADD', KEYS[5], ends, ARGV[2]) else redis.pcall('ZREM', KEYS[5], ARGV[2]) end
return 1
"""

# KEYS: month, reserved. ARGV: pool, reserved field, allowed, cap. A group's shared budget:
# what its members' ended sessions used this month plus what running ones hold must leave
# room, and the new session holds up to `cap` of it, atomically (two members starting at
# once cannot both spend the last hour). Answers {1, held} or {0, used + held}.
_RESERVE_POOL = """
local used = tonumber(redis.call('HGET', KEYS[1], 'budget:' .. ARGV[1]) or '0')
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local left = tonumber(ARGV[3]) - used - held
if left <= 0 then return {0, tostring(used + held)} end
local take = math.min(left, tonumber(ARGV[4]))
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2], take)
return {1, tostring(take)}
"""

# KEYS: lock. ARGV: token, ms. Fencing: the allocator checks that it still holds the lock
# (and extends it) before every Kubernetes write it makes for the identity.
_EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: map, activity, sessions, lock. ARGV: id, gs, token. Drops a mapping only if it is
# the one read, and only while the caller's lock token holds.
_DROP_MAPPING_IF = """
if redis.call('GET', KEYS[4]) ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[1], 'gs') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.pcall('ZREM', KEYS[5], ARGV[1])
return 1
"""

# Batched: KEYS activity, then (map, lock) per session. ARGV now, token, ms, then
# (id, gs, activity score read or '') per session. Answers one code per session.
# The culler's compare step: the session is still the one it read, nobody was active
# since, and no allocation is under way. Takes the identity's allocation lock (so no new
# game server is allocated for it while its old one is deleted) and marks the mapping
# `culling` so the allocator stops handing it out.
# 1 claimed, 0 changed since it was read, -1 an allocation holds the lock.
_CLAIM_CULLS = """
local out = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local map, lock = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local id, gs, read = ARGV[4 + 3 * i], ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  local code = 1
  if redis.call('EXISTS', lock) == 1 then
    code = -1
  elseif redis.call('HGET', map, 'gs') ~= gs then
    code = 0
  else
    local score = redis.pcall('ZSCORE', KEYS[1], id)
    if type(score) == 'table' then score = false end   -- activity of the wrong type
    if read == '' then
      if score then code = 0 end
    elseif (not score) or tonumber(score) ~= tonumber(read) then
      code = 0
    end
  end
  if code == 1 then
    redis.call('SET', lock, ARGV[2], 'PX', ARGV[3])
    redis.call('HSET', map, 'culling', ARGV[1])
  end
  out[#out + 1] = code
end
return out
"""

# KEYS: map, lock. ARGV: gs, token. The game server could not be deleted: the mapping
# stays as it was and the lock is released.
_RELEASE_CLAIM = """
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
if redis.call('HGET', KEYS[1], 'gs') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'culling') end
return 0
"""

# Batched: KEYS activity, sessions, usage, month, then (map, lock) per session, then
# budget-ends and reserved. A session that drew on a group's shared budget charges it and
# gives back what it had reserved, in the same script. ARGV maxlen,
# lock token ('' if none), then (id, gs, start, end, seconds, gpu_seconds, reason) per
# session. Drops each mapping that still points at its gs with its index entries, appends
# the usage record, adds the GPU-seconds to the person's month, and releases the culler's
# lock: one script, so a session ends and is counted together or not at all. Answers 1/0
# per session. pcall where a key of the wrong type would otherwise abort the whole batch
# (one bad key, not the pass).
_FINISH_SESSIONS = """
local out = {}
for i = 0, (#KEYS - 6) / 2 - 1 do
  local map, lock = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local b = 3 + 7 * i
  local id, gs = ARGV[b], ARGV[b + 1]
  if ARGV[2] ~= '' and redis.pcall('GET', lock) == ARGV[2] then redis.call('DEL', lock) end
  if redis.pcall('HGET', map, 'gs') == gs then
    local profile = redis.pcall('HGET', map, 'profile')
    if type(profile) == 'string' then
      redis.pcall('HINCRBYFLOAT', KEYS[4], id .. '@' .. profile, ARGV[b + 5])
    end
    local email = redis.pcall('HGET', map, 'email')
    if type(email) ~= 'string' then email = '' end
    local pool = redis.pcall('HGET', map, 'budget_pool')
    local group = ''
    if type(pool) == 'string' then
      group = pool
      redis.pcall('HINCRBYFLOAT', KEYS[4], 'budget:' .. pool, ARGV[b + 5])
      local held = redis.pcall('HGET', map, 'budget_reserved')
      local field = redis.pcall('HGET', map, 'budget_reserved_in')
      if type(held) == 'string' and type(field) == 'string' then
        redis.pcall('HINCRBYFLOAT', KEYS[#KEYS], field, -tonumber(held))
      end
    end
    redis.call('DEL', map)
    redis.pcall('ZREM', KEYS[1], id)
    redis.pcall('ZREM', KEYS[2], id)
    redis.pcall('ZREM', KEYS[#KEYS - 1], id)
    redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'id', id, 'gs', gs,
               'start', ARGV[b + 2], 'end', ARGV[b + 3], 'seconds', ARGV[b + 4],
               'gpu_seconds', ARGV[b + 5], 'reason', ARGV[b + 6], 'email', email, 'group', group)
    redis.pcall('HINCRBYFLOAT', KEYS[4], id, ARGV[b + 5])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: usage, month. ARGV: maxlen, then the usage fields. A session that ended without a
# mapping (an orphan): its record and, if it had an identity, its GPU-seconds, together.
_RECORD_USAGE = """
redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
local id, gpu_seconds = '', '0'
for i = 2, #ARGV - 1, 2 do
  if ARGV[i] == 'id' then id = ARGV[i + 1] end
  if ARGV[i] == 'gpu_seconds' then gpu_seconds = ARGV[i + 1] end
end
if id ~= '' then redis.pcall('HINCRBYFLOAT', KEYS[2], id, gpu_seconds) end
return 1
"""

# KEYS: map, lock, activity, sessions. ARGV: id, last activity, allocated_at, field pairs...
# The culler writes back a mapping Redis lost, from the game server that is the session:
# only while there is no mapping (the allocator may have written one meanwhile) and no
# lock (an allocation or a cull is under way); activity only moves forward.
_RESTORE_MAPPING = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
local ends = redis.call('HGET', KEYS[1], 'budget_ends_at')
if ends then redis.pcall('ZADD', KEYS[5], ends, ARGV[1]) end
local seen = redis.pcall('ZSCORE', KEYS[3], ARGV[1])
if type(seen) ~= 'table' and ((not seen) or tonumber(seen) < tonumber(ARGV[2])) then
  redis.pcall('ZADD', KEYS[3], ARGV[2], ARGV[1])
end
redis.pcall('ZADD', KEYS[4], 'NX', ARGV[3], ARGV[1])
return 1
"""

# KEYS: map, activity, sessions, budget-ends. ARGV: id. Index entries whose mapping no
# longer exists.
_DROP_INDEX_IF_UNMAPPED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = 0
for i = 2, #KEYS do
  local removed = redis.pcall('ZREM', KEYS[i], ARGV[1])
  if type(removed) == 'number' then n = n + removed end
end
return n
"""
