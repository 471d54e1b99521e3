-- Redis, as the router uses it (docs/contracts.md section 2): read a mapping, delete it
-- only if it still points at a failed pod, record activity. One keepalive pool per
-- worker; AUTH (and TLS) only when a connection is new.
local config = require("sdfleet.config")

local ok, redis = pcall(require, "resty.redis")  -- OpenResty
if not ok then
    redis = require("nginx.redis")                -- Debian's lua-nginx-redis
end

local _M = {}

local FORGET_IF_STILL = "if redis.call('HGET', KEYS[1], 'target') == ARGV[1] then "
    .. "return redis.call('DEL', KEYS[1]) end return 0"
local KEEPALIVE_MS = 60000
local POOL_SIZE = 64

local function connect()
    local s = config.settings
    local red = redis:new()
    -- rawget: the client turns any unknown method name into a Redis command
    if rawget(redis, "set_timeouts") then
        red:set_timeouts(s.redis_connect_timeout_ms, s.redis_read_timeout_ms,
                         s.redis_read_timeout_ms)
    else
        red:set_timeout(s.redis_read_timeout_ms)
    end
    local pool = "sdfleet-redis:" .. s.redis_host .. ":" .. s.redis_port
        .. (s.redis_tls and ":tls" or "")
    local connected, err = red:connect(s.redis_host, s.redis_port, { pool = pool })
    if not connected then
        return nil, "connect: " .. tostring(err)
    end
    if red:get_reused_times() == 0 then
        if s.redis_tls then
            local sock = rawget(red, "_sock")
            -- Verified: the chain against lua_ssl_trusted_certificate (the instance's own
            -- server CA) and the name with nginx's ngx_ssl_check_host (OpenSSL
            -- X509_check_host), which reads the subject CN when there is no DNS SAN.
            -- Memorystore's certificate names the instance IP in its CN, so REDIS_HOST
            -- (that IP) is the right name; Python's IP rule is stricter (functions/shared/
            -- state.py). tests/router/test_redis_tls_memorystore.py holds both cases.
            local name = s.redis_server_name ~= "" and s.redis_server_name or s.redis_host
            -- pcall: Debian's resty.core can raise (an assert) instead of returning a
            -- verification failure; either way the connection is refused, never used
            local ok_call, session, tls_err = pcall(sock.sslhandshake, sock, nil, name, true)
            if not ok_call or tls_err then
                red:close()
                return nil, "tls: " .. tostring(ok_call and tls_err or session)
            end
        end
        if s.redis_password then
            local authed, auth_err = red:auth(s.redis_password)
            if not authed then
                red:close()
                return nil, "auth: " .. tostring(auth_err)
            end
        end
    end
    return red
end

-- Run one command; a connection that saw an error is closed, never pooled.
local function run(command, ...)
    local red, err = connect()
    if not red then
        return nil, err
    end
    local res, cmd_err = red[command](red, ...)
    if cmd_err then
        red:close()
        return nil, command .. ": " .. tostring(cmd_err)
    end
    red:set_keepalive(KEEPALIVE_MS, POOL_SIZE)
    return res
end

local function key(kind, id)
    return config.settings.redis_prefix .. kind .. id
end

-- The pod target of this identity: a string, false when there is no mapping, or nil, err.
function _M.target(id)
    local res, err = run("hget", key("map:", id), "target")
    if err then
        return nil, err
    end
    if res == ngx.null or res == nil or res == "" then
        return false
    end
    return res
end

function _M.forget_if_still(id, failed_target)
    return run("eval", FORGET_IF_STILL, 1, key("map:", id), failed_target)
end

function _M.record_activity(id, at)
    return run("zadd", config.settings.redis_prefix .. "activity", string.format("%.3f", at), id)
end

return _M
