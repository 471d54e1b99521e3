-- Who is asking, as the loopback verifier (sdfleet_router/verifier.py) decided: this module
-- only asks it and caches its verdicts; it verifies nothing itself. Never a plain header.
-- The loopback verifier checks a token once; its verdict is cached here per token until
-- the token expires (rejections for a few seconds), so steady-state requests only do one
-- shared-dict lookup. The cache key is the whole token, so no two tokens can share a verdict.
local cjson = require("cjson.safe")
local ttlcache = require("sdfleet.ttlcache")
local config = require("sdfleet.config")

local _M = {}

local tokens = ngx.shared.sdfleet_tokens   -- per replica: the verifier is asked once
local verdicts = ttlcache.new(10000)         -- per worker: no lock, no copy on the hot path
local ID_PATTERN = "^[bg]%-[0-9a-v]+$"

local find = string.find

-- Only printable ASCII is kept of the email: no tab can break the shared dict's entry.
local function header_safe(value)
    if type(value) ~= "string" or value:find("[^\32-\126]") then
        return ""
    end
    return value
end

local function from_cache(token, entry)
    if entry:sub(1, 1) == "!" then
        return nil, 401, entry:sub(2)
    end
    local id, email, exp = entry:match("^([^\t]+)\t([^\t]*)\t(%d+)$")
    local person = { id = id, email = email }
    verdicts:set(token, person, tonumber(exp) - ngx.time())
    return person
end

-- The verified person for this token if this worker already knows it (no I/O). A token
-- with a comma is two assertion header lines joined by nginx (see person()): unknown.
function _M.known_person(token)
    if find(token, ",", 1, true) then
        return nil
    end
    return verdicts:get(token)
end

-- Exactly one assertion. A JWT never contains a comma; nginx >= 1.23 (OpenResty 1.27 in
-- the image) joins repeated header lines with ", " in $http_* variables (nginx 1.23.0
-- CHANGES; ngx_http_variable_unknown_header, src/http/ngx_http_variables.c), while 1.22
-- (Debian, the tests) returns the first line only, so the header table is also checked
-- here, on the deciding path that every token passes before it is cached.
local function repeated(token)
    if find(token, ",", 1, true) then
        return true
    end
    return type(ngx.req.get_headers(100)["x-goog-iap-jwt-assertion"]) == "table"
end

-- The person behind this request: {id=, email=}, or nil, http status, reason.
function _M.person()
    local token = ngx.var.http_x_goog_iap_jwt_assertion
    if not token or token == "" then
        return nil, 401, "missing-assertion"
    end
    if repeated(token) then
        return nil, 400, "duplicate-assertion"
    end
    local person = verdicts:get(token)
    if person then
        return person
    end
    local cached = tokens:get(token)
    if cached then
        return from_cache(token, cached)
    end

    local res = ngx.location.capture("/_sdfleet/verify")
    if res.status == 200 then
        local verdict = cjson.decode(res.body)
        if type(verdict) ~= "table" or type(verdict.id) ~= "string"
                or not verdict.id:match(ID_PATTERN) or #verdict.id > 63
                or type(verdict.exp) ~= "number" then
            ngx.log(ngx.ERR, "verifier answered 200 without a usable identity")
            return nil, 503, "verifier-unavailable"
        end
        local email = header_safe(verdict.email)
        local ttl = verdict.exp - ngx.time()
        if ttl > 0 then
            tokens:set(token, verdict.id .. "\t" .. email .. "\t" .. verdict.exp, ttl)
            verdicts:set(token, { id = verdict.id, email = email }, ttl)
        end
        return { id = verdict.id, email = email }
    elseif res.status == 401 then
        local verdict = cjson.decode(res.body)
        local reason = type(verdict) == "table" and type(verdict.reason) == "string"
            and verdict.reason or "invalid-assertion"
        tokens:set(token, "!" .. header_safe(reason), config.settings.rejected_token_seconds)
        return nil, 401, reason
    end
    ngx.log(ngx.ERR, "identity verifier unavailable, status ", res.status)
    return nil, 503, "verifier-unavailable"
end

return _M
