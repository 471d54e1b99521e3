"""The front's HTTP details: which headers a proxy forwards, which answers are pages the
banner may join, and the refusals and "restarting" page the front answers itself."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from .frontrules import POD_STATUS_HEADER, POD_STATUS_RESTARTING
from .logs import log

# RFC 9110 section 7.6.1: connection-specific fields are not forwarded by a proxy.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade",
                        "proxy-connection",
                        # answered by the front's own server; the WebUI gets the body directly
                        "expect"})
# The two WebSocket handshakes are separate (client<->front, front<->WebUI): each side makes
# its own key, version and extension negotiation.
WS_HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                          "sec-websocket-protocol", "sec-websocket-accept"})


# aiohttp's client adds these when absent; the WebUI must see the browser's request as sent
# (an added Accept-Encoding would gzip a response the browser never asked to be compressed).
NO_AUTO_HEADERS = ("Accept-Encoding", "User-Agent")


def forward_headers(headers, drop: frozenset = frozenset()) -> dict:
    named = {t.strip().lower() for t in headers.get("Connection", "").split(",") if t.strip()}
    out = CIMultiDict()
    for name, value in headers.items():
        low = name.lower()
        if low in HOP_BY_HOP or low in named or low in drop:
            continue
        out.add(name, value)
    return out


# The largest page the banner is added to; a larger "page" streams through untouched.
MAX_PAGE_BYTES = 4 * 1024 * 1024


def is_page_load(request: web.Request) -> bool:
    """A browser loading a page (not a script's fetch, an image or an API call)."""
    dest = request.headers.get("Sec-Fetch-Dest")
    return request.method == "GET" and (dest == "document" or (dest is None and wants_html(request)))


def banner_fits(upstream) -> bool:
    """A successful, uncompressed HTML answer of a declared, modest size (the frameworks'
    pages declare theirs; one that does not streams through without the banner)."""
    kind = upstream.headers.get("Content-Type", "")
    encoding = upstream.headers.get("Content-Encoding", "identity").lower()
    length = upstream.headers.get("Content-Length")
    return (upstream.status == 200 and kind.startswith("text/html") and encoding == "identity"
            and length is not None and length.isdigit() and int(length) <= MAX_PAGE_BYTES)


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def refusal(status: int, reason: str) -> web.Response:
    body = {"error": "not-this-persons-pod" if status == 421 else "forbidden", "message": reason}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def webui_unavailable(request: web.Request, exc: BaseException) -> web.Response:
    """The WebUI is not listening (restarting): say so, and when to try again."""
    log("webui-unreachable", level="warning", cause=type(exc).__name__, path=request.path)
    message = "Your WebUI is restarting; this page will work again in a moment."
    headers = {"Retry-After": "5", "Cache-Control": "no-store",
               POD_STATUS_HEADER: POD_STATUS_RESTARTING}
    if wants_html(request):
        html = (f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5>"
                f"<title>Restarting</title><p>{message}</p>")
        return web.Response(status=503, text=html, content_type="text/html", headers=headers)
    return web.json_response({"error": POD_STATUS_RESTARTING, "message": message,
                              "retryAfterSeconds": 5}, status=503, headers=headers)
