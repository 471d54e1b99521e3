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
        local message = decision.message or PHASES[decision.phase] or PHASES.starting
        if decision.allocate_on_reload and from_page_script() then
            message = NOT_RUNNING
        end
        return { status = "pending", phase = decision.phase or "starting",
                 message = message, retryAfterSeconds = decision.retry_after }
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
    if not wants_html() and from_page_script() then
        facts.detail, facts.error = facts.message, facts.message
        return send(502, html, facts, facts.retryAfterSeconds or 3)
    end
    return send(503, html, facts, facts.retryAfterSeconds or 3)
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
