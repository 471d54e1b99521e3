-- What people see when the router answers instead of their pod: a waiting page that
-- explains and continues by itself, or a page that says what failed and when to retry.
-- Browsers get HTML; scripts (fetch, Gradio's API calls) get JSON with the same facts.
local cjson = require("cjson.safe")

local _M = {}

local PHASES = {
    ["waiting-for-gpu"] = "Waiting for a GPU machine to become free or start up.",
    ["starting"] = "Your WebUI is starting.",
    ["loading-model"] = "Your WebUI is loading the model.",
    ["not-allocated"] = "Looking for a WebUI for you.",
}

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
        if (s.status === "ready") { window.location.reload(); return; }
        if (s.message) { document.getElementById("message").textContent = s.message; }
        if (s.phase) { document.getElementById("phase").textContent = s.phase; }
        delay = (s.retryAfterSeconds || 3) * 1000;
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, delay); });
  }
  setTimeout(poll, delay);
})();
</script>]]

-- The status endpoint's JSON and the waiting page share this shape.
function _M.status_json(decision)
    if decision.action == "proxy" then
        return { status = "ready" }
    end
    if decision.action == "wait" then
        return { status = "pending", phase = decision.phase or "starting",
                 message = decision.message or PHASES[decision.phase] or PHASES.starting,
                 retryAfterSeconds = decision.retry_after }
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
        .. string.format(WAITING_SCRIPT, facts.retryAfterSeconds or 3))
    -- 503 + Retry-After: the page is not the content; nothing may cache it as such.
    return send(503, html, facts, facts.retryAfterSeconds or 3)
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
