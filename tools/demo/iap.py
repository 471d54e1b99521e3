"""The demo's stand-in for Identity-Aware Proxy: a sign-in page and a proxy in front of the
router that adds the same signed assertion IAP adds.

IAP, at the load balancer, signs each request of a signed-in person with ES256
(``x-goog-iap-jwt-assertion``: issuer ``https://cloud.google.com/iap``, the backend
service as audience, ``sub`` = ``accounts.google.com:<numeric id>``) and the router verifies
it against IAP's published keys. Here the keys are a local key pair (the router's verifier
is pointed at its JWK set), the sign-in is a form that takes an email the stack's
``access.members`` admit, and the person is remembered in an HMAC-signed cookie. Every HTML
page that passes gets a line at the top saying this is a local demo.

Everything else is a plain streaming proxy: request and response bodies stream (a 150 MB
upload is never held in memory), WebSocket connections are relayed message by message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import secrets
import time
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web

from testing.helpers.iap import IapKeyServer

COOKIE = "sdfleet_demo_person"
SIGNIN = "/_demo/signin"
SIGNOUT = "/_demo/signout"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "host",
                        "content-length", "accept-encoding"})
BANNER = ('<div id="sdfleet-demo-banner" style="position:fixed;bottom:0;left:0;right:0;'
          'z-index:2147483647;background:#fde68a;color:#111;font:13px/1.6 sans-serif;'
          'padding:2px 10px;text-align:center">Local demo of sdfleet: the sign-in stands in '
          'for Google IAP and the WebUI is a stand-in, not Stable Diffusion. Signed in as '
          '<b>{email}</b> · <a href="' + SIGNOUT + '">sign out</a></div>')


def subject_of(email: str) -> str:
    """A stable IAP-style subject for an email: ``accounts.google.com:`` + 21 digits."""
    number = int.from_bytes(hashlib.sha256(email.lower().encode()).digest()[:9], "big")
    return f"accounts.google.com:1{number % 10 ** 20:020d}"


def admitted(email: str, members: list[str]) -> bool:
    """IAP's rule for the stack's ``access.members`` that a demo can check: ``user:`` and
    ``domain:`` (a group's members are not known here)."""
    email = email.strip().lower()
    domain = email.rpartition("@")[2]
    return any(m.lower() == f"user:{email}" or m.lower() == f"domain:{domain}" for m in members)


class IapStandIn:
    def __init__(self, keys: IapKeyServer, router_url: str, members: list[str],
                 accounts: list[str], port: int):
        self.keys, self.router_url, self.members = keys, router_url.rstrip("/"), members
        self.accounts, self.port = accounts, port
        self.secret = secrets.token_bytes(32)
        self.tokens: dict[str, tuple[str, float]] = {}
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None

    # --- who is signed in ---------------------------------------------------------------
    def _cookie_value(self, email: str) -> str:
        mac = hmac.new(self.secret, email.encode(), hashlib.sha256).hexdigest()
        return f"{quote(email)}|{mac}"

    def person(self, request: web.Request) -> str | None:
        quoted, _, mac = request.cookies.get(COOKIE, "").rpartition("|")
        email = unquote(quoted)
        good = hmac.new(self.secret, email.encode(), hashlib.sha256).hexdigest()
        return email if email and hmac.compare_digest(mac, good) else None

    def assertion(self, email: str) -> str:
        token, expires = self.tokens.get(email, ("", 0.0))
        if time.time() > expires - 60:
            token = self.keys.mint(sub=subject_of(email), email=email, expires_in=600)
            self.tokens[email] = (token, time.time() + 600)
        return token

    # --- pages --------------------------------------------------------------------------
    def _page(self, title: str, body: str, status: int = 200) -> web.Response:
        text = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                "</title></head><body style='font:16px/1.5 sans-serif;max-width:36em;"
                f"margin:3em auto'>{body}<p style='color:#555'>This is a local demo of sdfleet: "
                "this page stands in for Google's sign-in and Identity-Aware Proxy.</p>"
                "</body></html>")
        return web.Response(text=text, status=status, content_type="text/html")

    async def signin_page(self, request: web.Request) -> web.Response:
        target = request.query.get("next", "/")
        buttons = "".join(
            f"<button name='email' value='{html.escape(a)}' style='display:block;margin:.4em 0'>"
            f"Sign in as {html.escape(a)}</button>" for a in self.accounts)
        return self._page("Sign in (demo)", (
            "<h1>Sign in to the sdfleet demo</h1>"
            f"<form method='post' action='{SIGNIN}'>"
            f"<input type='hidden' name='next' value='{html.escape(target)}'>{buttons}"
            "<p>or another member's email: <input name='email' id='email' type='email'> "
            "<button type='submit' id='signin'>Sign in</button></p></form>"))

    async def signin(self, request: web.Request) -> web.Response:
        form = await request.post()
        email = str(form.get("email", "")).strip().lower()
        target = str(form.get("next", "/"))
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        if not admitted(email, self.members):
            return self._page("Access denied", (
                f"<h1>You don't have access</h1><p>{html.escape(email) or 'That account'} is "
                "not among the stack's <code>access.members</code>; IAP would refuse it too."
                f"</p><p><a href='{SIGNIN}'>Try another account</a></p>"), status=403)
        response = web.HTTPFound(target)
        response.set_cookie(COOKIE, self._cookie_value(email), httponly=True, samesite="Lax",
                            path="/")
        raise response

    async def signout(self, _request: web.Request) -> web.Response:
        response = web.HTTPFound(SIGNIN)
        response.del_cookie(COOKIE, path="/")
        raise response

    # --- the proxy ----------------------------------------------------------------------
    def _upstream_headers(self, request: web.Request, email: str) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and not k.lower().startswith("x-goog-")
                   and not k.lower().startswith("sec-websocket")}
        headers["Host"] = request.host
        headers["x-goog-iap-jwt-assertion"] = self.assertion(email)
        headers["x-goog-authenticated-user-email"] = f"accounts.google.com:{email}"
        headers["x-goog-authenticated-user-id"] = subject_of(email)
        return headers

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        email = self.person(request)
        if email is None:
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPFound(f"{SIGNIN}?next={quote(request.path_qs)}")
            return web.json_response({"error": "sign in first", "signIn": SIGNIN}, status=401)
        headers = self._upstream_headers(request, email)
        url = self.router_url + request.path_qs
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, url, headers)
        body = request.content if request.body_exists else None
        async with self.session.request(request.method, url, headers=headers, data=body,
                                        allow_redirects=False) as upstream:
            out_headers = {k: v for k, v in upstream.headers.items()
                           if k.lower() not in HOP_BY_HOP}
            if upstream.content_type == "text/html":
                text = await upstream.text()
                banner = BANNER.format(email=html.escape(email))
                text = text.replace("</body>", banner + "</body>", 1) if "</body>" in text \
                    else text + banner
                out_headers.pop("Content-Type", None)
                return web.Response(status=upstream.status, headers=out_headers,
                                    body=text.encode(), content_type="text/html")
            response = web.StreamResponse(status=upstream.status, headers=out_headers)
            if upstream.headers.get("Content-Length"):
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _websocket(self, request: web.Request, url: str, headers: dict) -> web.StreamResponse:
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                     if p.strip()]
        ws_url = "ws" + url[len("http"):]
        async with self.session.ws_connect(ws_url, headers=headers, protocols=protocols,
                                           autoping=True, max_msg_size=0) as upstream:
            client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                           autoping=True, max_msg_size=0)
            await client.prepare(request)

            async def pump(source, sink):
                async for message in source:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await sink.send_str(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        await sink.send_bytes(message.data)
                    else:
                        break
                await sink.close()

            await asyncio.gather(pump(client, upstream), pump(upstream, client),
                                 return_exceptions=True)
            return client

    # --- lifecycle ----------------------------------------------------------------------
    async def _start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=None, connect=10),
                                             cookie_jar=aiohttp.DummyCookieJar())
        app = web.Application(client_max_size=0)
        app.router.add_get(SIGNIN, self.signin_page)
        app.router.add_post(SIGNIN, self.signin)
        app.router.add_get(SIGNOUT, self.signout)
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        except OSError:
            await self.runner.cleanup()
            await self.session.close()
            self.runner = self.session = None
            raise

    def start(self, loop: asyncio.AbstractEventLoop) -> "IapStandIn":
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(10)
        return self

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        async def go():
            if self.runner:
                await self.runner.cleanup()
            if self.session:
                await self.session.close()
        asyncio.run_coroutine_threadsafe(go(), loop).result(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

