-- The Cookie header the pod gets: the person's cookies without IAP's own.
--
-- IAP's own cookies (its session, `__Host-GCP_IAP_AUTH_TOKEN_*`, and `GCP_IAP_UID`,
-- `GCP_IAP_XSRF_NONCE_*`) never reach the pod: code running there (any WebUI extension)
-- could replay the session as the person, like the assertion the router also keeps back.
--
-- A browser behind IAP sends them with every request, so the filter runs on the hot path.
-- It uses only plain `find` and byte checks (LuaJIT compiles them; Lua patterns such as
-- gmatch/match it does not, and they cost about 85,000 instructions on a browser's request),
-- and its result is cached per worker, keyed by the exact raw header: the filtered value
-- is a function of the raw header alone, so an entry can only ever be served for the very
-- same bytes it was computed from, whoever sends them. The cache is bounded by entries and
-- bytes; when full it starts over.
local find, sub, byte, concat = string.find, string.sub, string.byte, table.concat

local _M = {}

local MAX_ENTRIES = 1000
local MAX_BYTES = 4 * 1024 * 1024  -- raw + filtered, per worker
_M.MAX_ENTRIES, _M.MAX_BYTES = MAX_ENTRIES, MAX_BYTES

local cache, entries, bytes = {}, 0, 0

local function blank(b)  -- what Lua's %s matches: space, \t \n \v \f \r
    return b == 32 or (b >= 9 and b <= 13)
end

local function is_iap(raw, first)
    return sub(raw, first, first + 6) == "GCP_IAP" or sub(raw, first, first + 13) == "__Host-GCP_IAP"
end

-- The header without IAP's cookies: the other `name=value` pairs in their order, trimmed,
-- joined by "; " ("" when nothing is left: the pod then gets no Cookie header).
function _M.filter(raw)
    local kept, n = {}, 0
    local start, last = 1, #raw
    while start <= last do
        local semicolon = find(raw, ";", start, true)
        local stop = semicolon and semicolon - 1 or last
        local first = start
        while first <= stop and blank(byte(raw, first)) do
            first = first + 1
        end
        local final = stop
        while final >= first and blank(byte(raw, final)) do
            final = final - 1
        end
        if first <= final and not is_iap(raw, first) then
            n = n + 1
            kept[n] = sub(raw, first, final)
        end
        start = stop + 2
    end
    return concat(kept, "; ")
end

-- What the pod gets for this raw Cookie header.
function _M.for_pod(raw)
    local filtered = cache[raw]
    if filtered then
        return filtered
    end
    if not find(raw, "GCP_IAP", 1, true) then
        return raw  -- nothing of IAP's: passed as sent, nothing cached
    end
    filtered = _M.filter(raw)
    local size = #raw + #filtered
    if entries >= MAX_ENTRIES or bytes + size > MAX_BYTES then
        cache, entries, bytes = {}, 0, 0
    end
    if size <= MAX_BYTES then
        cache[raw] = filtered
        entries, bytes = entries + 1, bytes + size
    end
    return filtered
end

-- For tests: how much the cache holds.
function _M.cache_size()
    return entries, bytes
end

return _M
