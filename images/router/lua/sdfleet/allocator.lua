-- The allocator's HTTP contract (docs/contracts.md section 3), called with an OIDC token
-- for the function URL from the metadata server (cached until 5 minutes before it
-- expires) and the person's own IAP assertion, which the allocator verifies itself.
local cjson = require("cjson.safe")
local config = require("sdfleet.config")

local _M = {}

local oidc = ngx.shared.sdfleet_oidc
local REFRESH_BEFORE_EXPIRY = 300

local function expiry_of(jwt)
    local payload = jwt:match("^[^.]+%.([^.]+)%.")
    if not payload then
        return nil
    end
    payload = payload:gsub("-", "+"):gsub("_", "/")
    payload = payload .. string.rep("=", (4 - #payload % 4) % 4)
    local claims = cjson.decode(ngx.decode_base64(payload) or "")
    return type(claims) == "table" and tonumber(claims.exp) or nil
end

-- "Bearer <token>", "" when the deployment sends none (local runs), or nil, err.
local function authorization()
    if not config.settings.allocator_bearer then
        return ""
    end
    local cached = oidc:get("allocator")
    if cached then
        return cached
    end
    local res = ngx.location.capture("/_sdfleet/metadata-identity")
    if res.status ~= 200 then
        return nil, "metadata server answered " .. res.status
    end
    local token = res.body:gsub("%s+$", "")
    local exp = expiry_of(token)
    if not exp then
        return nil, "metadata server returned no usable token"
    end
    local value = "Bearer " .. token
    local ttl = exp - ngx.time() - REFRESH_BEFORE_EXPIRY
    if ttl > 0 then
        oidc:set("allocator", value, ttl)
    end
    return value
end

local ANSWERS = { ready = true, pending = true, unavailable = true, choose = true,
                  refused = true, profiles = true, admin = true, ended = true }

-- POST /allocate: the decoded answer, or nil, err (the allocator could not be asked).
-- adopt_only: find the person's game server, never allocate one. profile: the person's
-- choice (a name the allocator checks), switch: end a session in another profile for it.
function _M.allocate(adopt_only, profile, switch)
    local body = "{}"
    if adopt_only then
        body = '{"adoptOnly":true}'
    elseif profile then
        body = cjson.encode({ profile = profile, switch = switch == true })
    end
    return _M.ask("/_sdfleet/allocate", ngx.HTTP_POST, body)
end

-- GET /profiles: what the person may choose, their current and chosen profile.
function _M.profiles()
    return _M.ask("/_sdfleet/allocator-profiles", ngx.HTTP_GET, "")
end

-- The administrators' page: GET /admin, and POST /admin/end {"id": ...}.
function _M.admin_sessions()
    return _M.ask("/_sdfleet/allocator-admin", ngx.HTTP_GET, "")
end

function _M.admin_end(id)
    return _M.ask("/_sdfleet/allocator-admin/end", ngx.HTTP_POST, cjson.encode({ id = id }))
end

function _M.ask(location, method, body)
    local auth, err = authorization()
    if not auth then
        return nil, err
    end
    local res = ngx.location.capture(location,
                                     { method = method,
                                       vars = { sdfleet_allocator_auth = auth,
                                                sdfleet_allocator_body = body } })
    local answer = cjson.decode(res.body or "")
    if res.status == 200 and type(answer) == "table" and ANSWERS[answer.status] then
        -- JSON null decodes to cjson.null, which Lua counts as true: make it nil.
        for key, value in pairs(answer) do
            if value == cjson.null then
                answer[key] = nil
            end
        end
        return answer
    end
    if res.status == 503 and type(answer) == "table" then
        return { status = "unavailable", reason = answer.error or "allocator-unavailable",
                 message = answer.message,
                 retryAfterSeconds = tonumber(answer.retryAfterSeconds) }
    end
    if res.status == 401 then
        return { status = "unauthenticated" }
    end
    return nil, "allocator answered " .. tostring(res.status)
end

return _M
