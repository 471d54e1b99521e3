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
local TARGET_PATTERN = "^%d+%.%d+%.%d+%.%d+:%d+$"

local function proxy(id, target)
    routes:set(id, target, config.settings.route_cache_seconds)
    return { action = "proxy", target = target }
end

local function unavailable(reason, message, retry_after)
    return { action = "unavailable", reason = reason, message = message,
             retry_after = retry_after or config.settings.retry_after_seconds }
end

-- The route this worker holds for the id, if any (no I/O).
function _M.known_target(id)
    return routes:get(id)
end

-- A decision: {action="proxy", target=}, {action="wait", phase=, message=, retry_after=},
-- {action="unavailable", reason=, message=, retry_after=} or {action="unauthenticated"}.
-- Only the verified id is ever a cache or Redis key, so nobody is sent to another's pod.
function _M.decide(person, avoid_target)
    local target = routes:get(person.id)
    if target and target ~= avoid_target then
        return { action = "proxy", target = target }
    end

    local stored, err = store.target(person.id)
    if err then
        ngx.log(ngx.ERR, "redis unavailable: ", err)
        return unavailable("redis-unavailable")
    end
    if stored and stored ~= avoid_target and stored:match(TARGET_PATTERN) then
        return proxy(person.id, stored)
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
        if answer.id ~= person.id or type(answer.target) ~= "string"
                or not answer.target:match(TARGET_PATTERN) then
            ngx.log(ngx.ERR, "allocator answered ready with a mismatched id or bad target")
            return unavailable("allocator-mismatch")
        end
        if answer.target == avoid_target then  -- still the pod that just failed
            return { action = "wait", phase = "starting",
                     message = "Your WebUI is restarting.",
                     retry_after = config.settings.retry_after_seconds }
        end
        return proxy(person.id, answer.target)
    end
    if answer.status == "pending" then
        return { action = "wait", phase = answer.phase, message = answer.message,
                 retry_after = tonumber(answer.retryAfterSeconds) or 3 }
    end
    return unavailable(answer.reason or "unavailable", answer.message, answer.retryAfterSeconds)
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
