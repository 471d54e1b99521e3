-- nginx phase entry points. Each one is short: the rules live in identity, routing,
-- activity and pages.
local activity = require("sdfleet.activity")
local identity = require("sdfleet.verifier_client")
local pod_cookie = require("sdfleet.pod_cookie")
local pages = require("sdfleet.pages")
local routing = require("sdfleet.routing")

local balancer = require("ngx.balancer")
local ttlcache = require("sdfleet.ttlcache")

local peers = ttlcache.new(10000)  -- "ip:port" -> { ip, port }, parsed once per worker
local PEER_SECONDS = 3600

local _M = {}

local function respond(decision)
    if decision.action == "refused" then
        return pages.refused(decision.reason)
    elseif decision.action == "wait" then
        return pages.waiting(decision)
    elseif decision.action == "choose" then
        return pages.choose(decision)
    elseif decision.action == "forbidden" then
        return pages.forbidden(decision)
    elseif decision.action == "unauthenticated" then
        return pages.unauthenticated("allocator-refused")
    end
    return pages.unavailable(decision)
end

local function verified_person()
    local person, status, reason = identity.person()
    if person then
        return person
    end
    if status == 400 then
        pages.refused(reason)
    elseif status == 401 then
        pages.unauthenticated(reason)
    else
        pages.unavailable({ action = "unavailable", reason = reason })
    end
    return nil
end

-- What the pod gets: the verified identity (only the id: the pod's front checks it against
-- its game server's label, and the email is in the game server's annotation), and the
-- person's cookies without IAP's own. A variable left unset reads as "" (the pod gets no
-- such header): no cookie header reaches the pod unless it went through pod_cookie.
local function tell_pod(person)
    ngx.var.sdfleet_id = person.id
    local cookie = ngx.var.http_cookie
    if cookie then
        ngx.var.sdfleet_cookie = pod_cookie.for_pod(cookie)
    end
end

-- set_by_lua on the hot path: the target when this worker knows both the token's verdict
-- and the route, "" to send the request to @sdfleet_decide (upgrades never get here).
function _M.cached_target()
    local token = ngx.var.http_x_goog_iap_jwt_assertion
    if not token then
        return ""
    end
    local person = identity.known_person(token)
    local target = person and routing.known_target(person.id)
    if not target or activity.due(person.id) then
        return ""  -- @sdfleet_decide routes it and records the activity
    end
    tell_pod(person)
    return target
end

-- Side requests of a page (its images, scripts, styles, the favicon) and fetches made by an
-- open page never start a pod: only a page load (or a client that is not a browser) does,
-- and the waiting page's status polls. Browsers say which is which (Sec-Fetch-Dest, Fetch
-- Metadata: https://www.w3.org/TR/fetch-metadata/); the favicon and robots.txt are asked
-- for without a page by some clients.
local SIDE_PATHS = { ["/favicon.ico"] = true, ["/robots.txt"] = true,
                     ["/apple-touch-icon.png"] = true }
local PAGE_DESTS = { document = true, iframe = true, frame = true }

local function may_allocate()
    if SIDE_PATHS[ngx.var.uri] then
        return false
    end
    local dest = ngx.var.http_sec_fetch_dest
    return dest == nil or dest == "" or PAGE_DESTS[dest] == true
end

-- access_by_lua in @sdfleet_decide: everything the hot path could not answer.
local function access()
    local person = verified_person()
    if not person then
        return
    end
    tell_pod(person)
    local decision = routing.decide(person, nil, may_allocate())
    if decision.action ~= "proxy" then
        return respond(decision)
    end
    ngx.var.sdfleet_target = decision.target
end

-- balancer_by_lua: the target chosen by the hot path or access. (A kept-alive connection
-- found closed gets another try from nginx itself: proxy_next_upstream in the proxy block.)
function _M.balance()
    local target = ngx.var.sdfleet_target
    local peer = peers:get(target)
    if not peer then
        local host, port = target:match("^(.+):(%d+)$")
        if not host then
            return ngx.exit(500)
        end
        peer = { host, tonumber(port) }
        peers:set(target, peer, PEER_SECONDS)
    end
    local ok, err = balancer.set_current_peer(peer[1], peer[2])
    if not ok then
        ngx.log(ngx.ERR, "cannot set pod peer: ", err)
        return ngx.exit(500)
    end
end

-- Does the person's WebUI at this target answer? "up", "someone-else" (421) or "down".
local function probe(person, target)
    local res = ngx.location.capture("/_sdfleet/probe", { vars = {
        sdfleet_target = target, sdfleet_id = person.id } })
    if res.status == 421 then
        return "someone-else"
    elseif res.status == 0 or (res.status >= 502 and res.status <= 504) then
        return "down"
    end
    return "up"
end

-- /_sdfleet/status, polled by the waiting page: "ready" only once the person's WebUI
-- answers, so the page never reloads into a WebUI that is still down.
local function status()
    local person = verified_person()
    if not person then
        return
    end
    local decision = routing.decide(person, nil, true)
    if decision.action == "proxy" then
        local answer = probe(person, decision.target)
        if answer == "up" then
            routing.answered(person.id)
        else
            decision = routing.after_failure(person, decision.target,
                                             answer == "someone-else", true)
            -- a new pod from the allocator is ready; its first page load proves it
        end
    end
    local facts = pages.status_json(decision)
    ngx.header["Cache-Control"] = "no-store"
    if facts.status ~= "ready" then
        ngx.header["Retry-After"] = tostring(facts.retryAfterSeconds or 3)
    end
    ngx.say(require("cjson.safe").encode(facts))
end

-- A form post from this platform's own page: the browser says so (Fetch Metadata), or its
-- Origin is this host. Anything else could be another site making the person switch.
local function same_origin()
    local site = ngx.var.http_sec_fetch_site
    if site then
        return site == "same-origin"
    end
    local origin = ngx.var.http_origin
    return origin ~= nil and origin:match("^https?://([^/]+)$") == ngx.var.http_host
end

local PROFILE_NAME = "^[a-z][-a-z0-9]*$"

-- /_sdfleet/profiles: GET lists the person's profiles (?switch=<name> asks to confirm a
-- switch); POST profile=<name> starts it, ending a running session only once confirmed.
-- The allocator checks that the person may use it; the router only carries the name.
local function profiles()
    local person = verified_person()
    if not person then
        return
    end
    local allocator = require("sdfleet.allocator")
    if ngx.req.get_method() == "POST" then
        if not same_origin() then
            return pages.forbidden({ reason = "cross-site", message = "This request did not "
                .. "come from this platform's own page; go back and use the button there." })
        end
        ngx.req.read_body()
        local args = ngx.req.get_post_args(5) or {}
        local name = args.profile
        if type(name) ~= "string" or not name:match(PROFILE_NAME) then
            return pages.forbidden({ reason = "unknown-profile",
                                     message = "That profile is not one you may use." })
        end
        if args.confirmed ~= "yes" then
            local current = allocator.profiles()
            if current and current.status == "profiles" and current.current
                    and current.current ~= name then
                return pages.profiles(current, name)
            end
        end
        local answer = allocator.allocate(false, name, true)
        if not answer then
            return pages.unavailable({ action = "unavailable", reason = "allocator-unavailable" })
        end
        if answer.status == "unauthenticated" then
            return pages.unauthenticated("allocator-refused")
        end
        if answer.status == "refused" or answer.status == "unavailable" then
            return respond(routing.from_allocator(answer))
        end
        routing.forget_local(person.id)  -- this worker's route may be the old pod
        return ngx.redirect("/", ngx.HTTP_SEE_OTHER)
    end
    local answer = allocator.profiles()
    if not answer then
        return pages.unavailable({ action = "unavailable", reason = "allocator-unavailable" })
    end
    if answer.status == "unauthenticated" then
        return pages.unauthenticated("allocator-refused")
    end
    if answer.status ~= "profiles" then
        return respond(routing.from_allocator(answer))
    end
    local confirm = ngx.var.arg_switch
    if confirm and not confirm:match(PROFILE_NAME) then
        confirm = nil
    end
    return pages.profiles(answer, confirm)
end

-- /_sdfleet/admin: GET lists running sessions, POST id=<identity id> ends one. The
-- allocator decides who is an administrator; the router only shows its answers.
local function admin()
    local person = verified_person()
    if not person then
        return
    end
    local allocator = require("sdfleet.allocator")
    if ngx.req.get_method() == "POST" then
        if not same_origin() then
            return pages.forbidden({ reason = "cross-site", message = "This request did not "
                .. "come from this platform's own page; go back and use the button there." })
        end
        ngx.req.read_body()
        local args = ngx.req.get_post_args(5) or {}
        local answer = allocator.admin_end(type(args.id) == "string" and args.id or "")
        if not answer then
            return pages.unavailable({ action = "unavailable", reason = "allocator-unavailable" })
        end
        if answer.status == "refused" or answer.status == "unavailable" then
            return respond(routing.from_allocator(answer))
        end
        return ngx.redirect("/_sdfleet/admin", ngx.HTTP_SEE_OTHER)
    end
    local answer = allocator.admin_sessions()
    if not answer then
        return pages.unavailable({ action = "unavailable", reason = "allocator-unavailable" })
    end
    if answer.status == "unauthenticated" then
        return pages.unauthenticated("allocator-refused")
    end
    if answer.status ~= "admin" then
        return respond(routing.from_allocator(answer))
    end
    return pages.admin(answer)
end

-- What the pod's front answers while its WebUI restarts (docs/contracts.md section 5).
local POD_STATUS_RESTARTING = "webui-restarting"

local function failed_pod()
    -- $upstream_status lists every attempt ("502, 502"); the last one is the outcome.
    local status = tonumber((ngx.var.upstream_status or ""):match("(%d+)%s*$")) or 502
    local unreachable = routing.pod_unreachable(status, ngx.var.upstream_header_time,
                                                ngx.var.upstream_connect_time)
    return status, unreachable, ngx.var.sdfleet_id, ngx.var.sdfleet_target
end

-- The front answered 503 for a WebUI that is restarting: one answer for that, whoever
-- notices it first (pages.waiting: Gradio's scripts get the sentence, not "busy").
local function webui_restarting(status)
    return status == 503 and ngx.var.upstream_http_x_sdfleet_pod_status == POD_STATUS_RESTARTING
end

-- error_page for the first attempt: a pod that says it is someone else's loses its
-- mapping; a pod that does not answer is either restarting (the person waits for it) or
-- gone (the allocator gives a new one, and the request is sent there once).
local function pod_failed()
    local status, unreachable, id, target = failed_pod()
    if webui_restarting(status) then
        return respond(routing.webui_restarting(id, target))
    end
    if not unreachable then
        return pages.pod_error(status)
    end
    ngx.log(ngx.WARN, "pod ", target, " of ", id, " unreachable (", status, ")")
    local decision = routing.after_failure({ id = id }, target,
                                           status == 421, may_allocate())
    if decision.action ~= "proxy" then
        return respond(decision)
    end
    ngx.var.sdfleet_target = decision.target
    return ngx.exec("@sdfleet_pod_retry")
end

-- error_page for the retry: the new pod failed too; let the waiting page poll.
local function pod_failed_again()
    local status, unreachable, id, target = failed_pod()
    if webui_restarting(status) then
        return respond(routing.webui_restarting(id, target))
    end
    if not unreachable then
        return pages.pod_error(status)
    end
    local decision = routing.after_failure({ id = id }, target,
                                           status == 421, false)
    if decision.action == "proxy" then  -- yet another pod: the waiting page moves on to it
        decision = { action = "wait", phase = "starting",
                     message = "Your WebUI stopped answering; getting you a new one." }
    end
    return respond(decision)
end

-- error_page for a streamed upload: its body cannot be sent again, so the person is told
-- what happened and uploads again once their WebUI answers. Never allocates.
local function stream_failed()
    local status, unreachable, id, target = failed_pod()
    if webui_restarting(status) then
        return pages.upload_lost(routing.webui_restarting(id, target))
    end
    if not unreachable then
        return pages.pod_error(status)
    end
    ngx.log(ngx.WARN, "pod ", target, " of ", id, " unreachable (", status, ") under an upload")
    local decision = routing.after_failure({ id = id }, target,
                                           status == 421, false)
    return pages.upload_lost(decision)
end

-- header_filter_by_lua: a WebSocket the pod accepted counts as activity at once.
function _M.header_filter()
    if ngx.status == 101 then
        activity.served(ngx.var.sdfleet_id)
    end
end

-- log_by_lua: responses the pod served (below 400) and finished WebSockets count.
-- Only the pod answers below 400 in the proxying locations: the router's own pages are
-- 401/503, so the status alone says who served the response.
-- The session banner's polls (GET /_sdfleet/session, answered by the pod's front) are an
-- open tab asking, not a person working: they never count, or no open tab would go idle.
local SESSION_POLL = "/_sdfleet/session"

function _M.log()
    if ngx.status < 400 then
        local id = ngx.var.sdfleet_id
        if not (ngx.var.uri == SESSION_POLL and ngx.var.request_method == "GET") then
            activity.served(id)
        end
        routing.answered(id)
    end
end

-- The router never shows a bare 500: an unexpected Lua error becomes the 503 page.
local function guarded(handler)
    return function()
        local ok, err = pcall(handler)
        if not ok then
            ngx.log(ngx.ERR, "router error: ", err)
            if not ngx.headers_sent then
                return pages.unavailable({ action = "unavailable", reason = "router-error",
                                           message = "The router hit an unexpected error.",
                                           retry_after = 5 })
            end
            return ngx.exit(ngx.ERROR)
        end
    end
end

_M.access = guarded(access)
_M.status = guarded(status)
_M.profiles = guarded(profiles)
_M.admin = guarded(admin)
_M.pod_failed = guarded(pod_failed)
_M.pod_failed_again = guarded(pod_failed_again)
_M.stream_failed = guarded(stream_failed)

return _M
