-- The two decision rules of the router, each in one function:
--   decide(person)                  where does this person's request go?
--   pod_unreachable(...) + forget() when is a mapping invalidated?
local ttlcache = require("sdfleet.ttlcache")
local allocator = require("sdfleet.allocator")
local config = require("sdfleet.config")
local store = require("sdfleet.store")

local _M = {}

-- identity -> target for a few seconds, per worker (a worker that finds the pod dead
-- invalidates its own entry; other workers find out on their own next failure)
local routes = ttlcache.new(10000)
local restarting = ngx.shared.sdfleet_restarting
-- A WebUI restart (crash, model switch, out of memory) takes seconds to minutes. Past this,
-- the allocator is asked again (the culler has dropped a pod that is really gone by then).
local RESTART_MEMORY_SECONDS = 600
-- How often one identity's open page may ask the allocator to adopt (never allocate) its
-- game server after Redis lost the mapping: a tab's burst of requests asks once.
local ADOPT_EVERY_SECONDS = 5
local TARGET_PATTERN = "^%d+%.%d+%.%d+%.%d+:%d+$"

local function proxy(id, target)
    routes:set(id, target, config.settings.route_cache_seconds)
    return { action = "proxy", target = target }
end

local function unavailable(reason, message, retry_after)
    return { action = "unavailable", reason = reason, message = message,
             retry_after = retry_after or config.settings.retry_after_seconds }
end

-- The person switched to another pod: no worker of this replica may use a route it
-- remembers from before (the shared dict tells the others, for as long as they remember).
function _M.forget_local(id)
    routes:delete(id)
    restarting:set("switched:" .. id, true, config.settings.route_cache_seconds + 1)
end

local function remembered(id)
    local target = routes:get(id)
    if target and restarting:get("switched:" .. id) then
        routes:delete(id)
        return nil
    end
    return target
end

-- The route this worker holds for the id, if any (no I/O).
function _M.known_target(id)
    return remembered(id)
end

-- Whether to ask the allocator again about a pod remembered as restarting: once per
-- restart_recheck_seconds per replica, in case Agones has meanwhile found the pod unhealthy
-- (its supervisor gave up) and the culler has not yet dropped the mapping.
local function recheck_due(id)
    local every = config.settings.restart_recheck_seconds
    if every <= 0 then
        return true
    end
    return (restarting:add("recheck:" .. id, true, every))
end

local function restarting_wait()
    return { action = "wait", phase = "restarting",
             retry_after = config.settings.restart_poll_seconds }
end

-- A decision: {action="proxy", target=}, {action="wait", phase=, message=, retry_after=},
-- {action="choose", profiles=} (several profiles, none chosen yet), {action="forbidden",
-- message=} (the allocator refused the person this profile),
-- {action="unavailable", reason=, message=, retry_after=} or {action="unauthenticated"}.
-- Only the verified id is ever a cache or Redis key, so nobody is sent to another's pod.
--   avoid_target   the pod that just failed: never the answer
--   may_allocate   false for requests nobody is looking at (a page's images, scripts,
--                  styles, favicon, fetches of an open page): they never start a pod
-- A pod that failed while the allocator still counts it as the person's (a WebUI
-- restarting) is remembered per replica; until its WebUI answers again the person waits
-- for it, and the allocator is not asked again while the mapping still points there.
function _M.decide(person, avoid_target, may_allocate)
    local id = person.id
    local target = remembered(id)
    if target and target ~= avoid_target then
        return { action = "proxy", target = target }
    end

    local stored, err = store.target(id)
    if err then
        ngx.log(ngx.ERR, "redis unavailable: ", err)
        return unavailable("redis-unavailable")
    end
    if stored and stored:match(TARGET_PATTERN) then
        if stored ~= avoid_target then
            return proxy(id, stored)
        end
        if restarting:get(id) == stored and not recheck_due(id) then
            return restarting_wait()
        end
    end
    if may_allocate == false then
        -- An open page's request: Redis may have lost the mapping (a flush, a failover)
        -- of a pod that is still the person's. Adopting it is a read of the cluster; a
        -- new pod is only ever started by a page load.
        if not stored and restarting:add("adopt:" .. id, true, ADOPT_EVERY_SECONDS) then
            local answer = allocator.allocate(true)
            if answer and answer.status == "ready" and answer.id == id
                    and type(answer.target) == "string" and answer.target:match(TARGET_PATTERN)
                    and answer.target ~= avoid_target then
                return proxy(id, answer.target)
            end
        end
        return { action = "wait", phase = "not-allocated", allocate_on_reload = true,
                 retry_after = config.settings.retry_after_seconds }
    end

    local answer, alloc_err = allocator.allocate()
    if not answer then
        ngx.log(ngx.ERR, "allocator unavailable: ", alloc_err)
        return unavailable("allocator-unavailable")
    end
    if answer.status == "unauthenticated" then
        return { action = "unauthenticated" }
    end
    if answer.status == "ready" then
        if answer.id ~= id or type(answer.target) ~= "string"
                or not answer.target:match(TARGET_PATTERN) then
            ngx.log(ngx.ERR, "allocator answered ready with a mismatched id or bad target")
            return unavailable("allocator-mismatch")
        end
        if answer.target == avoid_target then  -- still this person's pod: its WebUI restarts
            restarting:set(id, answer.target, RESTART_MEMORY_SECONDS)
            recheck_due(id)  -- starts the interval
            return restarting_wait()
        end
        return proxy(id, answer.target)
    end
    return _M.from_allocator(answer)
end

-- The allocator's answers other than ready, as decisions (the profile's names and texts
-- come from the allocator: the router knows no framework or GPU).
function _M.from_allocator(answer)
    if answer.status == "pending" then
        return { action = "wait", phase = answer.phase, message = answer.message,
                 alternatives = answer.alternatives,
                 retry_after = tonumber(answer.retryAfterSeconds) or 3 }
    end
    if answer.status == "choose" then
        return { action = "choose", message = answer.message, profiles = answer.profiles }
    end
    if answer.status == "refused" then
        return { action = "forbidden", reason = answer.reason, message = answer.message,
                 profiles = answer.profiles }
    end
    return unavailable(answer.reason or "unavailable", answer.message, answer.retryAfterSeconds)
end

-- The pod's front said its WebUI is restarting (503 + X-Sdfleet-Pod-Status): the pod is
-- the person's and alive, so the mapping stays, the allocator is not asked, and the person
-- gets the same "restarting" answer as when the router notices it first.
function _M.webui_restarting(id, target)
    restarting:set(id, target, RESTART_MEMORY_SECONDS)
    recheck_due(id)  -- starts the interval, as when the allocator confirmed the pod
    return restarting_wait()
end

-- The WebUI at this target answered: it is no longer restarting.
function _M.answered(id)
    if restarting:get(id) then
        restarting:delete(id)
        restarting:delete("recheck:" .. id)
    end
end

-- After the pod failed as a pod (see pod_unreachable): where this person goes now. A pod
-- that says it is someone else's (421) loses its mapping at once; a pod that does not
-- answer keeps it, and the allocator (which asks Agones) decides whether it is still the
-- person's pod (then the person waits for its WebUI) or gives a new one.
function _M.after_failure(person, failed_target, someone_elses, may_allocate)
    if routes:get(person.id) == failed_target then
        routes:delete(person.id)
    end
    if someone_elses then
        _M.answered(person.id)
        _M.forget(person.id, failed_target)
    end
    return _M.decide(person, failed_target, may_allocate)
end

local function last_entry(value)
    -- $upstream_* lists every attempt ("-, -" or "0.001 : -"); the last one counts.
    value = value or ""
    return value:match("([^,:]*)$") or value
end

-- Did the pod fail as a pod (gone, refusing, dropping the connection before answering,
-- or saying it belongs to someone else)? Then its mapping is invalidated. A pod that
-- answered with its own error, or is slow to answer, keeps its mapping.
function _M.pod_unreachable(status, header_time, connect_time)
    if status == 421 then
        return true
    end
    if status == 502 then
        return not last_entry(header_time):find("%d")
    end
    if status == 504 then
        return not last_entry(connect_time):find("%d")
    end
    return false
end

-- Forget a mapping only while it still points at the pod that failed: another replica
-- (or the allocator) may already have replaced it.
function _M.forget(id, failed_target)
    if routes:get(id) == failed_target then
        routes:delete(id)
    end
    local _, err = store.forget_if_still(id, failed_target)
    if err then
        ngx.log(ngx.ERR, "could not invalidate mapping in redis: ", err)
    end
end

return _M
