-- What people see when the router answers instead of their pod: a waiting page that
-- explains and continues by itself, or a page that says what failed and when to retry.
-- Browsers get HTML; scripts (fetch, Gradio's API calls) get JSON with the same facts.
local cjson = require("cjson.safe")
local config = require("sdfleet.config")

local _M = {}

local PHASES = {
    ["waiting-for-gpu"] = "Waiting for a GPU machine to become free or start up.",
    ["starting"] = "Your WebUI is starting.",
    ["loading-model"] = "Your WebUI is loading the model.",
    ["not-allocated"] = "Looking for a WebUI for you.",
    ["restarting"] = "Your WebUI is restarting. It opens again here as soon as it answers.",
}

-- A fetch from an open page (allocate_on_reload: it may not start a pod itself)
local NOT_RUNNING = "Your WebUI is not running. Reload the page to start it again."

local REASONS = {
    ["redis-unavailable"] = "The session store is not reachable right now.",
    ["allocator-unavailable"] = "The service that assigns WebUIs is not reachable right now.",
    ["allocator-mismatch"] = "The service that assigns WebUIs gave an inconsistent answer.",
    ["kubernetes-unavailable"] = "The cluster is not reachable right now.",
    ["verifier-unavailable"] = "Sign-in cannot be checked right now.",
}

local function escape(text)
    return (tostring(text or ""):gsub("[&<>\"']", {
        ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function wants_html()
    local accept = ngx.var.http_accept or ""
    return accept:find("text/html", 1, true) ~= nil
end

-- Gradio's browser client turns a 503 on its queue routes into "This application is
-- currently busy" and shows, for any other error status, the response's `detail` (or
-- `error`): gradio client/js/src/utils/submit.ts (gradio 5.x: `status === 503` ->
-- QUEUE_FULL_MSG, else `response.detail || response.error`); gradio 3.41's client shows
-- `output.error` of a failed /run/predict (client/js/src/client.ts). So a browser's script
-- request (Sec-Fetch-Dest: empty: fetch, XHR, EventSource) that the pod cannot answer gets
-- 502 with the sentence in both fields; other clients keep 503 + Retry-After, which they
-- retry.
local function from_page_script()
    return ngx.var.http_sec_fetch_dest == "empty"
end

local function send(status, html, json, retry_after)
    ngx.status = status
    ngx.header["Cache-Control"] = "no-store"
    if retry_after then
        ngx.header["Retry-After"] = tostring(retry_after)
    end
    if wants_html() then
        ngx.header["Content-Type"] = "text/html; charset=utf-8"
        ngx.print(html)
    else
        ngx.header["Content-Type"] = "application/json"
        ngx.print(cjson.encode(json))
    end
    -- the status line is already sent; HTTP_OK here only ends the request (any phase)
    return ngx.exit(ngx.HTTP_OK)
end

local function page(title, body)
    return "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        .. "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        .. "<title>" .. escape(title) .. "</title><style>body{font-family:sans-serif;"
        .. "max-width:36em;margin:4em auto;padding:0 1em;line-height:1.5;color:#222}"
        .. "</style></head><body>" .. body .. "</body></html>"
end

local WAITING_SCRIPT = [[
<script>
(function () {
  var delay = %d * 1000;
  function poll() {
    fetch("/_sdfleet/status", {credentials: "same-origin", cache: "no-store",
                               headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.status === "ready" || s.status === "choose" || s.status === "refused") {
          window.location.reload(); return;
        }
        if (s.message) { document.getElementById("message").textContent = s.message; }
        if (s.phase) { document.getElementById("phase").textContent = s.phase; }
        var alt = document.getElementById("alternatives");
        if (alt) { alt.hidden = !(s.alternatives && s.alternatives.length); }
        delay = (s.retryAfterSeconds || 3) * 1000;
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, delay); });
  }
  setTimeout(poll, delay);
})();
</script>]]

-- A profile's one line: its name, framework and GPU, whether one is ready, and a button
-- that starts it (POST /_sdfleet/profiles; `confirm` first when it ends a session).
local function profile_item(p, button, current)
    local ready = p.readyNow and "ready now" or ("expected wait: " .. (p.expectedWait or "a few minutes"))
    local form = ""
    if p.name == current then
        form = "<p><em>This is your current profile.</em></p>"
    elseif button then
        form = "<form method=\"post\" action=\"/_sdfleet/profiles\">"
            .. "<input type=\"hidden\" name=\"profile\" value=\"" .. escape(p.name) .. "\">"
            .. "<button type=\"submit\" data-profile=\"" .. escape(p.name) .. "\">"
            .. escape(button) .. " " .. escape(p.displayName) .. "</button></form>"
    end
    return "<li class=\"profile\" data-profile=\"" .. escape(p.name) .. "\"><strong>"
        .. escape(p.displayName) .. "</strong><br><span>" .. escape(p.framework)
        .. (p.gpu ~= "" and (" on " .. escape(p.gpu)) or "") .. " &middot; "
        .. escape(ready) .. "</span>"
        .. ((p.description or "") ~= "" and ("<br><span>" .. escape(p.description) .. "</span>") or "")
        .. form .. "</li>"
end

local function profile_list(profiles, button, current)
    local items = {}
    for _, p in ipairs(type(profiles) == "table" and profiles or {}) do
        if type(p) == "table" and type(p.name) == "string" then
            items[#items + 1] = profile_item(p, button, current)
        end
    end
    return "<ul class=\"profiles\">" .. table.concat(items) .. "</ul>"
end

local SWITCH_LINK = "<p><a href=\"/_sdfleet/profiles\">Switch profile</a></p>"

-- The status endpoint's JSON and the waiting page share this shape.
function _M.status_json(decision)
    if decision.action == "proxy" then
        return { status = "ready" }
    end
    if decision.action == "choose" then
        return { status = "choose", message = decision.message, profiles = decision.profiles }
    end
    if decision.action == "forbidden" then
        return { status = "refused", reason = decision.reason, message = decision.message }
    end
    if decision.action == "wait" then
        local message = decision.message or PHASES[decision.phase] or PHASES.starting
        if decision.allocate_on_reload and from_page_script() then
            message = NOT_RUNNING
        end
        return { status = "pending", phase = decision.phase or "starting",
                 message = message, retryAfterSeconds = decision.retry_after,
                 alternatives = decision.alternatives }
    end
    return { status = "unavailable", reason = decision.reason,
             message = decision.message or REASONS[decision.reason]
                 or "The service is not available right now.",
             retryAfterSeconds = decision.retry_after }
end

function _M.waiting(decision)
    local facts = _M.status_json(decision)
    local html = page("Starting your Stable Diffusion WebUI",
        "<h1>Starting your Stable Diffusion WebUI</h1>"
        .. "<p id=\"message\">" .. escape(facts.message) .. "</p>"
        .. "<p>Step: <span id=\"phase\">" .. escape(facts.phase) .. "</span></p>"
        .. "<p>This page checks again every few seconds and opens your WebUI as soon as "
        .. "it is ready. A new GPU machine can take a few minutes.</p>"
        .. "<div id=\"alternatives\"" .. ((facts.alternatives and #facts.alternatives > 0)
            and "" or " hidden") .. "><p>You may start one of these instead:</p>"
        .. profile_list(facts.alternatives, "Start") .. "</div>"
        .. SWITCH_LINK
        .. string.format(WAITING_SCRIPT, facts.retryAfterSeconds or 3))
    -- 503 + Retry-After: the page is not the content; nothing may cache it as such.
    if not wants_html() and from_page_script() then
        facts.detail, facts.error = facts.message, facts.message
        return send(502, html, facts, facts.retryAfterSeconds or 3)
    end
    return send(503, html, facts, facts.retryAfterSeconds or 3)
end

-- Several profiles, none chosen yet: the person picks one (remembered by the allocator).
function _M.choose(decision)
    local facts = _M.status_json(decision)
    local html = page("Choose your WebUI",
        "<h1>Choose your WebUI</h1><p>" .. escape(facts.message or "Choose the WebUI to start.")
        .. " Your choice is remembered; you can switch later.</p>"
        .. profile_list(facts.profiles, "Start"))
    return send(200, html, facts)
end

local FORBIDDEN_TITLES = { ["over-budget"] = "Your GPU-hour budget is used up",
                           ["ended-by-admin"] = "Your session was ended",
                           ["not-an-admin"] = "For administrators only" }

-- The allocator refused this person the profile (or every profile): 403 with its sentence.
function _M.forbidden(decision)
    local facts = _M.status_json(decision)
    local others = ""
    if type(decision.profiles) == "table" and #decision.profiles > 0 then
        others = "<p>You may start:</p>" .. profile_list(decision.profiles, "Start")
    end
    local title = FORBIDDEN_TITLES[decision.reason] or "Not available to you"
    local html = page(title,
        "<h1>" .. escape(title) .. "</h1><p id=\"message\">" .. escape(facts.message) .. "</p>" .. others)
    facts.error, facts.detail = facts.reason, facts.message
    return send(403, html, facts)
end

-- /_sdfleet/profiles: every profile the person may use; with a session running, switching
-- asks first (`confirm`: the profile to switch to), because it ends that session.
function _M.profiles(answer, confirm)
    local current, profiles = answer.current, answer.profiles or {}
    local body
    if confirm then
        local target
        for _, p in ipairs(profiles) do
            if p.name == confirm then
                target = p
            end
        end
        if not target then
            return _M.forbidden({ reason = "unknown-profile",
                                  message = "That profile is not one you may use." })
        end
        body = "<h1>Switch to " .. escape(target.displayName) .. "?</h1>"
            .. "<p id=\"confirm\">Switching ends your current session: unsaved work in the WebUI "
            .. "is lost (your saved outputs stay in your folder). Then " .. escape(target.displayName)
            .. " starts.</p><form method=\"post\" action=\"/_sdfleet/profiles\">"
            .. "<input type=\"hidden\" name=\"profile\" value=\"" .. escape(target.name) .. "\">"
            .. "<input type=\"hidden\" name=\"confirmed\" value=\"yes\">"
            .. "<button type=\"submit\" id=\"confirm-switch\">End my session and start "
            .. escape(target.displayName) .. "</button></form><p><a href=\"/\">Keep my current session</a></p>"
    else
        body = "<h1>Your WebUI profiles</h1>"
            .. (current and "<p>Switching ends your current session.</p>" or "")
            .. profile_list(profiles, current and "Switch to" or "Start", current)
            .. "<p><a href=\"/\">Back to my WebUI</a></p>"
    end
    return send(200, page("Your WebUI profiles", body), answer)
end

local function clock(epoch)
    return type(epoch) == "number" and os.date("!%Y-%m-%d %H:%M UTC", math.floor(epoch)) or "-"
end

-- /_sdfleet/admin: the running sessions, each with a button that ends it.
function _M.admin(answer)
    local rows = {}
    for _, row in ipairs(type(answer.sessions) == "table" and answer.sessions or {}) do
        rows[#rows + 1] = "<tr data-id=\"" .. escape(row.id) .. "\"><td>" .. escape(row.email)
            .. "</td><td>" .. escape(row.profile or "-") .. "</td><td>" .. clock(row.since)
            .. "</td><td>" .. clock(row.lastActivity) .. "</td><td>"
            .. escape(row.gpuHoursThisMonth) .. "</td><td>"
            .. escape(row.budgetLeftHours ~= nil and row.budgetLeftHours or "-") .. "</td><td>"
            .. "<form method=\"post\" action=\"/_sdfleet/admin\" onsubmit=\"return confirm("
            .. "'End this session? Unsaved work in its WebUI is lost.')\">"
            .. "<input type=\"hidden\" name=\"id\" value=\"" .. escape(row.id) .. "\">"
            .. "<button type=\"submit\" data-end=\"" .. escape(row.id) .. "\">End</button></form></td></tr>"
    end
    local body = "<h1>Running sessions</h1><p>Month " .. escape(answer.month) .. ": "
        .. #rows .. " session(s). Ending one deletes its pod; its saved outputs stay in the "
        .. "person's folder, and the person is told an administrator ended it.</p>"
        .. "<table id=\"sessions\"><tr><th>Person</th><th>Profile</th><th>Since</th>"
        .. "<th>Last activity</th><th>GPU-hours this month</th><th>Budget left (h)</th><th></th></tr>"
        .. table.concat(rows) .. "</table>"
    local cold = {}
    for _, row in ipairs(type(answer.coldStarts) == "table" and answer.coldStarts or {}) do
        cold[#cold + 1] = "<tr><td>" .. escape(row.profile) .. "</td><td>" .. escape(row.phase)
            .. "</td><td>" .. escape(row.p50) .. "</td><td>" .. escape(row.p95) .. "</td><td>"
            .. escape(row.n) .. "</td></tr>"
    end
    body = body .. "<h2>Cold starts</h2><p>From a new pod's creation to its first image, "
        .. "measured on every pod of the last 14 days, in seconds.</p>"
        .. (#cold == 0 and "<p id=\"cold-starts\">None measured yet.</p>"
            or ("<table id=\"cold-starts\"><tr><th>Profile</th><th>Phase</th><th>p50</th>"
                .. "<th>p95</th><th>Pods</th></tr>" .. table.concat(cold) .. "</table>"))
    local html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        .. "<title>Running sessions</title><style>body{font-family:sans-serif;margin:2em}"
        .. "td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #ddd}</style></head>"
        .. "<body>" .. body .. "</body></html>"
    return send(200, html, answer)
end

-- A streamed upload whose pod failed under it: it cannot be sent again.
function _M.upload_lost(decision)
    local facts = _M.status_json(decision)
    local what = "Your upload did not reach your WebUI: it stopped answering while the upload "
        .. "was on its way. "
    if decision.action == "proxy" then
        facts.message = what .. "Your WebUI is back; upload again."
    else
        facts.message = what .. facts.message .. " Upload again once it answers."
    end
    facts.detail, facts.error = facts.message, facts.message
    local html = page("Upload not delivered",
        "<h1>Upload not delivered</h1><p>" .. escape(facts.message) .. "</p>")
    return send(502, html, facts, facts.retryAfterSeconds or 3)
end

-- error_page 413: the body is larger than client_max_body_size (webui.maxUploadMb).
function _M.too_large()
    local limit = math.floor(config.settings.max_upload_bytes / 1048576)
    local declared = tonumber(ngx.var.content_length or "")
    local message = "This upload is larger than the " .. limit .. " MB this platform accepts"
        .. (declared and string.format(" (it is %.0f MB)", declared / 1048576) or "")
        .. ". Nothing was sent to your WebUI; upload a smaller file."
    local html = page("Upload too large", "<h1>Upload too large</h1><p>" .. escape(message)
        .. "</p>")
    return send(413, html, { status = "error", error = message, detail = message,
                             reason = "upload-too-large", limitBytes = config.settings.max_upload_bytes })
end

-- error_page 500: whatever nginx itself failed at (a full temporary directory, a bad
-- target), said in words instead of nginx's bare page.
function _M.router_error()
    local message = "The router could not handle this request (an internal error; it is "
        .. "logged). Your WebUI and your files are not affected; try again."
    local html = page("Router error", "<h1>Router error</h1><p>" .. escape(message) .. "</p>")
    return send(500, html, { status = "error", error = message, detail = message,
                             reason = "router-error" })
end

-- 400: a request the router refuses to interpret, e.g. two sign-in assertions.
function _M.refused(reason)
    local message = "This request carried two sign-in assertions "
        .. "(x-goog-iap-jwt-assertion); the router accepts exactly one. Reload the page."
    local html = page("Request refused", "<h1>Request refused</h1><p>" .. escape(message)
        .. "</p><p>Reason: " .. escape(reason) .. "</p>")
    return send(400, html, { status = "error", error = "bad-request", reason = reason,
                             message = message })
end

function _M.unavailable(decision)
    local facts = _M.status_json(decision)
    local retry = facts.retryAfterSeconds or 5
    local html = page("Temporarily unavailable",
        "<h1>Temporarily unavailable</h1><p>" .. escape(facts.message) .. "</p>"
        .. "<p>Your work is safe. This page tries again in " .. retry .. " seconds.</p>"
        .. "<script>setTimeout(function(){window.location.reload();}," .. retry * 1000
        .. ");</script>")
    return send(503, html, facts, retry)
end

function _M.unauthenticated(reason)
    local html = page("Sign-in required",
        "<h1>Sign-in required</h1><p>This request did not carry a valid sign-in. "
        .. "Reload the page to sign in again.</p><p>Reason: " .. escape(reason) .. "</p>")
    return send(401, html, { status = "error", error = "unauthenticated", reason = reason })
end

function _M.pod_error(status)
    local html = page("Your WebUI did not answer",
        "<h1>Your WebUI did not answer</h1><p>Your WebUI is running but did not answer "
        .. "this request in time or answered with an error. Try again.</p>")
    return send(status, html, { status = "error", error = "pod-error", upstreamStatus = status })
end

return _M
