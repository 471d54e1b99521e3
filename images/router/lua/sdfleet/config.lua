-- Settings rendered by sdfleet_router.render_config, plus secrets read once at start.
local cjson = require("cjson.safe")

local _M = { settings = nil }

local function read_secret_file(path)
    local file, err = io.open(path, "r")
    if not file then
        error("cannot read the Redis password file: " .. tostring(err))
    end
    local value = file:read("*a") or ""
    file:close()
    return (value:gsub("%s+$", ""))
end

function _M.init(json)
    local settings = assert(cjson.decode(json), "router settings are not valid JSON")
    local password = os.getenv("REDIS_PASSWORD") or ""
    if settings.redis_password_file ~= "" then
        password = read_secret_file(settings.redis_password_file)
    end
    settings.redis_password = password ~= "" and password or nil
    _M.settings = settings
end

return _M
