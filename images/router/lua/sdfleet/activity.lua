-- Activity is what the culler measures idleness by. It is recorded only for traffic the
-- pod actually served, and written to Redis at most once per identity per interval per
-- replica (the shared dict is the throttle; the write happens in a timer because the log
-- and header-filter phases cannot use sockets).
local ttlcache = require("sdfleet.ttlcache")
local config = require("sdfleet.config")
local store = require("sdfleet.store")

local _M = {}

local recent = ngx.shared.sdfleet_activity   -- per replica: the throttle
local recent_here = ttlcache.new(10000)      -- per worker: skips the shared dict lock

local function write(premature, id, at)
    if premature then
        return
    end
    local _, err = store.record_activity(id, at)
    if err then
        recent:delete(id)  -- try again with the next served request
        ngx.log(ngx.WARN, "could not record activity: ", err)
    end
end

-- Whether a served request of this identity should be recorded now. The hot path checks
-- this and sends a due request through the location that records activity, so the many
-- requests in between run no log phase at all.
function _M.due(id)
    return not recent_here:get(id)
end

function _M.served(id)
    if not id or id == "" or recent_here:get(id) then
        return
    end
    local interval = config.settings.activity_interval_seconds
    recent_here:set(id, true, interval)
    if not recent:add(id, true, interval) then
        return  -- written recently by this replica
    end
    local ok, err = ngx.timer.at(0, write, id, ngx.now())
    if not ok then
        recent:delete(id)
        ngx.log(ngx.WARN, "could not schedule activity write: ", err)
    end
end

return _M
