"""The session banner: a small script the trusted front adds to the HTML pages it serves, so
a person sees, in the WebUI itself, that their session is about to end (idle, the longest
session, or their GPU-hour budget) and can keep an idle one going.

The script is its own file on the page's origin (`/_sdfleet/session.js`), not inline code,
so a page's Content-Security-Policy that allows its own scripts allows it too. It asks
`/_sdfleet/session` (answered by the front; reading it is not activity) and shows a fixed
banner from `warnAt` on, above the framework's own page, touching nothing of it.
"""

from __future__ import annotations

SESSION_PATH = "/_sdfleet/session"
BANNER_PATH = "/_sdfleet/session.js"
TAG = b'<script src="/_sdfleet/session.js" defer></script>'

BANNER_SCRIPT = r"""
(function () {
  if (window.__sdfleetSession) { return; }
  window.__sdfleetSession = true;
  var WHY = {
    "idle": "it has been idle for a while",
    "max-age": "it has reached the longest a session may run; save your work",
    "budget": "your GPU-hour budget runs out; save your work"
  };
  var banner = null, state = null, offset = 0;
  function el(tag, text) { var e = document.createElement(tag); if (text) { e.textContent = text; } return e; }
  function show() {
    var left = state.endsAt - (Date.now() / 1000 + offset);
    if (left > state.endsAt - state.warnAt) { hide(); return; }
    if (!banner) {
      banner = el("div");
      banner.id = "sdfleet-session-banner";
      banner.setAttribute("role", "alert");
      // Clicks go through the banner to the page beneath; only its button takes them.
      banner.style.cssText = "position:fixed;left:0;right:0;top:0;z-index:2147483647;" +
        "background:#fde68a;color:#111;font:15px/1.4 sans-serif;padding:8px 12px;" +
        "text-align:center;box-shadow:0 1px 4px rgba(0,0,0,.3);pointer-events:none";
      banner.appendChild(el("span"));
      var keep = el("button", "Keep working");
      keep.id = "sdfleet-keep-working";
      keep.style.cssText = "margin-left:12px;pointer-events:auto";
      keep.onclick = function () {
        fetch("/_sdfleet/session/keep", {method: "POST", credentials: "same-origin",
                                         cache: "no-store"})
          .then(function (r) { return r.json(); }).then(take).catch(function () {});
      };
      banner.appendChild(keep);
      document.body.appendChild(banner);
    }
    var minutes = Math.max(0, Math.ceil(left / 60));
    banner.firstChild.textContent = "Your session ends in " + minutes + " minute" +
      (minutes === 1 ? "" : "s") + ": " + (WHY[state.reason] || "its time is up") + ".";
    banner.lastChild.hidden = !state.canKeep;
  }
  function hide() { if (banner) { banner.remove(); banner = null; } }
  function take(s) {
    state = s;
    offset = s.now - Date.now() / 1000;
    if (s.endsAt === null || s.warnAt === null) { hide(); } else { show(); }
  }
  function poll() {
    fetch("/_sdfleet/session", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.json(); }).then(take).catch(function () {})
      .then(function () { setTimeout(poll, 15000); });
  }
  setInterval(function () { if (state && state.endsAt !== null) { show(); } }, 1000);
  poll();
})();
"""


def inject_banner(page: bytes) -> bytes:
    """The page with the banner's script tag: before </head>, else </body>, else at the end."""
    if TAG in page:
        return page
    lowered = page.lower()
    for marker in (b"</head>", b"</body>"):
        at = lowered.find(marker)
        if at >= 0:
            return page[:at] + TAG + page[at:]
    return page + TAG
