-- A per-worker map from key to value with an expiry, bounded by count.
--
-- The hot path reads three of these on every request, so a read is two table lookups and
-- a clock read, nothing else (resty.lrucache reorders a queue on every get). There is no
-- LRU order to keep: when the map is full it starts over, and the requests that miss go
-- through @sdfleet_decide, which fills it again from the shared dict or Redis. Expired
-- entries are never returned.
local now = ngx.now

local _M = {}
local mt = { __index = _M }

function _M.new(limit)
    return setmetatable({ values = {}, expiries = {}, count = 0, limit = limit }, mt)
end

function _M.get(self, key)
    local expires = self.expiries[key]
    if expires and expires > now() then
        return self.values[key]
    end
    return nil
end

function _M.set(self, key, value, ttl)
    if self.expiries[key] == nil then
        if self.count >= self.limit then
            self.values, self.expiries, self.count = {}, {}, 0
        end
        self.count = self.count + 1
    end
    self.values[key] = value
    self.expiries[key] = now() + ttl
end

function _M.delete(self, key)
    if self.expiries[key] ~= nil then
        self.values[key], self.expiries[key] = nil, nil
        self.count = self.count - 1
    end
end

return _M
