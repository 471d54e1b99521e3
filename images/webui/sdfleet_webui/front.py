"""The trusted front: the only listener on the game server port of a WebUI pod.

It runs in the trusted ``user-sync`` sidecar container (never in the WebUI container, which
runs third-party extensions); the framework listens on loopback only (containers of a pod
share one network namespace, so ``127.0.0.1:<SDFLEET_FRONT_UPSTREAM port>`` is the WebUI).

For each request (``frontrules.admission``):
- ``X-Sdfleet-Identity`` (set by the router from the verified IAP identity, client copies
  removed: images/router/README.md) must equal the ``sdfleet.dev/identity`` label the
  allocator put on this GameServer (docs/contracts.md section 4), learned from the Agones
  SDK sidecar (``GET /gameserver``, then ``GET /watch/gameserver``). Anyone else gets 421,
  which the router treats as a stale mapping (drop it, allocate again). Before allocation
  the front waits up to ``SDFLEET_FRONT_ALLOCATION_WAIT_SECONDS`` for the label (the
  router may be milliseconds ahead of the SDK's view), then answers 421.
- otherwise HTTP, WebSocket and server-sent events are proxied unchanged: bodies stream in
  both directions (no buffering: a 200 MB upload is never held in memory), the Host header
  is passed as the client sent it (Gradio builds file URLs from it), content encodings
  pass untouched.
- the WebUI not answering (restarting) gives 503 + ``Retry-After`` + ``X-Sdfleet-Pod-Status:
  webui-restarting``, never a bare connection reset; the router turns it into its own
  "restarting" answer, the one it gives when it notices the restart first.

Activity: successful responses and every chunk or message that crosses
an open WebSocket or SSE stream mark the pod active; ``report_activity`` sends it to Agones
as ``SetAnnotation("last-activity", "<unix seconds>")`` at most once per
``SDFLEET_ACTIVITY_REPORT_SECONDS`` and only when there is something new, so an idle open
connection reports nothing. Agones stores it as ``agones.dev/sdk-last-activity``.

SDK REST paths (googleforgames/agones proto/sdk/sdk.proto, v1.56.0): ``GET /gameserver``,
``GET /watch/gameserver`` (a stream of ``{"result": GameServer}`` lines),
``PUT /metadata/annotation`` with ``{"key", "value"}`` (SetAnnotation).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from . import settings as st
from .agones import WATCH_SILENCE
from .front_http import (
    HOP_BY_HOP,
    NO_AUTO_HEADERS,
    WS_HANDSHAKE,
    banner_fits,
    forward_headers,
    is_page_load,
    refusal,
    webui_unavailable,
)
from .frontrules import ACTIVITY_KEY, IDENTITY_HEADER, Allocation, admission, session_end, should_report
from .logs import log
from .sessionpage import BANNER_PATH, BANNER_SCRIPT, SESSION_PATH, inject_banner


@dataclass(frozen=True)
class FrontConfig:
    host: str = "0.0.0.0"
    port: int = 7860
    upstream: str = "http://127.0.0.1:7870"
    agones_port: int = 9358
    report_seconds: float = 30.0
    allocation_wait: float = 3.0
    connect_timeout: float = 5.0
    idle_seconds: float | None = None
    max_session_seconds: float | None = None
    warn_seconds: float = 600.0

    @classmethod
    def from_env(cls, env: dict | None = None) -> "FrontConfig":
        """From the environment (names, defaults and limits: settings.FrontSettings; the
        upstream must be on loopback: the WebUI never listens anywhere else)."""
        s = st.FrontSettings.from_env(env)
        return cls(host=s.host, port=s.port, upstream=s.upstream.rstrip("/"),
                   agones_port=s.agones_port, report_seconds=s.report_seconds,
                   allocation_wait=s.allocation_wait, connect_timeout=s.connect_timeout,
                   idle_seconds=s.idle_seconds, max_session_seconds=s.max_session_seconds,
                   warn_seconds=s.warn_seconds)


@dataclass
class ActivityMeter:
    last_activity: float | None = None
    reported_activity: float | None = None
    last_report_at: float | None = None
    reports: list = field(default_factory=list)  # (reported at, value): for /info and tests

    def touch(self) -> None:
        self.last_activity = time.time()


class Front:
    def __init__(self, config: FrontConfig):
        self.config = config
        self.allocation = Allocation()
        self.allocation_changed = asyncio.Event()
        self.meter = ActivityMeter()
        self.open_streams = 0
        self.session: aiohttp.ClientSession | None = None
        self.sdk: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.tasks: list[asyncio.Task] = []
        self.sdk_base = f"http://127.0.0.1:{config.agones_port}"

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        # No total timeout: a generation may stream for an hour over one response.
        self.session = aiohttp.ClientSession(
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout),
            connector=aiohttp.TCPConnector(limit=0, force_close=False))
        self.sdk = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=3))
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.config.host, self.config.port,
                          reuse_address=True, backlog=512).start()
        self.tasks = [asyncio.create_task(self.watch_allocation()),
                      asyncio.create_task(self.report_activity())]
        log("front-started", listen=f"{self.config.host}:{self.config.port}",
            upstream=self.config.upstream, report_seconds=self.config.report_seconds)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.runner:
            await self.runner.cleanup()
        for session in (self.session, self.sdk):
            if session:
                await session.close()

    # --- the allocation, from the Agones SDK sidecar -----------------------------------------
    def _observe(self, gameserver: dict) -> None:
        before = (self.allocation.identity, self.allocation.closed_reason)
        self.allocation.observe(gameserver)
        after = (self.allocation.identity, self.allocation.closed_reason)
        if after != before:
            log("front-allocation", identity=after[0], closed=after[1])
            self.allocation_changed.set()
            self.allocation_changed = asyncio.Event()

    async def refresh_allocation(self) -> None:
        try:
            async with self.sdk.get(self.sdk_base + "/gameserver",
                                    timeout=aiohttp.ClientTimeout(total=3)) as response:
                if response.status == 200:
                    self._observe(await response.json(content_type=None))
                elif response.status == 404 and self.allocation.identity is not None:
                    self.allocation.gone()
                    log("front-allocation", identity=self.allocation.identity,
                        closed=self.allocation.closed_reason)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log("agones-unavailable", level="warning", cause=f"GET /gameserver: {type(exc).__name__}")

    async def watch_allocation(self) -> None:
        delay = 0.2
        while True:
            await self.refresh_allocation()
            try:
                # Quiet is normal (the SDK writes only on change): after WATCH_SILENCE the
                # watch is re-opened, after a fresh read above, without a warning.
                async with self.sdk.get(self.sdk_base + "/watch/gameserver", timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=3, sock_read=WATCH_SILENCE)) as response:
                    response.raise_for_status()
                    async for line in response.content:
                        if line.strip():
                            message = json.loads(line)
                            if isinstance(message, dict) and isinstance(message.get("result"), dict):
                                self._observe(message["result"])
                delay = 0.2
                continue
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                delay = 0.2
                continue
            except (aiohttp.ClientError, ValueError) as exc:
                log("agones-unavailable", level="warning",
                    cause=f"GET /watch/gameserver: {type(exc).__name__}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def await_allocation(self, timeout: float) -> None:
        """Wait (bounded) for a first binding; the watch usually brings it within milliseconds."""
        deadline = time.monotonic() + timeout
        await self.refresh_allocation()
        while self.allocation.identity is None and not self.allocation.closed_reason:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.allocation_changed.wait(), timeout=min(left, 0.5))
            except asyncio.TimeoutError:
                await self.refresh_allocation()

    # --- activity ---------------------------------------------------------------------------
    async def report_activity(self) -> None:
        tick = min(1.0, self.config.report_seconds / 4)
        while True:
            await asyncio.sleep(tick)
            await self.report_once()

    async def report_once(self) -> bool:
        m, now = self.meter, time.time()
        if not should_report(now, m.last_activity, m.reported_activity, m.last_report_at,
                             self.config.report_seconds):
            return False
        value = m.last_activity
        try:
            async with self.sdk.put(self.sdk_base + "/metadata/annotation",
                                    json={"key": ACTIVITY_KEY, "value": str(int(value))},
                                    timeout=aiohttp.ClientTimeout(total=3)) as response:
                if response.status != 200:
                    raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log("activity-report-failed", level="warning", cause=type(exc).__name__)
            return False
        m.reported_activity, m.last_report_at = value, now
        m.reports.append((now, value))
        del m.reports[:-100]
        return True

    # --- requests ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        identity = request.headers.get(IDENTITY_HEADER)
        verdict = admission(self.allocation, identity)
        if verdict.status == 421 and self.allocation.identity is None \
                and not self.allocation.closed_reason:
            await self.await_allocation(self.config.allocation_wait)
            verdict = admission(self.allocation, identity)
        if verdict.status:
            log("front-refused", level="warning", status=verdict.status, reason=verdict.reason,
                path=request.path)
            return refusal(verdict.status, verdict.reason)
        if request.path.startswith(SESSION_PATH):
            return await self.session_answer(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.proxy_websocket(request)
        return await self.proxy_http(request)

    # --- the session's end, for the page's banner ----------------------------------------
    def session_state(self) -> dict:
        end = session_end(self.allocation.annotations, self.meter.last_activity,
                          self.config.idle_seconds, self.config.max_session_seconds)
        now = time.time()
        return {"now": now, "endsAt": end.ends_at, "reason": end.reason or None,
                "warnAt": None if end.ends_at is None else end.ends_at - self.config.warn_seconds,
                "canKeep": end.reason == "idle"}

    async def session_answer(self, request: web.Request) -> web.StreamResponse:
        """The front's own paths (never the WebUI's): the banner's script, the session's
        end (reading it is not activity), and "keep working" (which is)."""
        headers = {"Cache-Control": "no-store"}
        if request.path == BANNER_PATH and request.method == "GET":
            return web.Response(text=BANNER_SCRIPT, content_type="application/javascript",
                                headers={"Cache-Control": "max-age=300"})
        if request.path == SESSION_PATH and request.method == "GET":
            return web.json_response(self.session_state(), headers=headers)
        if request.path == SESSION_PATH + "/keep" and request.method == "POST":
            self.meter.touch()
            await self.report_once()
            return web.json_response(self.session_state(), headers=headers)
        return web.json_response({"error": "not-found"}, status=404, headers=headers)

    async def _request_body(self, request: web.Request):
        async for chunk in request.content.iter_any():
            self.meter.touch()  # an upload in progress is the person working
            yield chunk

    async def proxy_http(self, request: web.Request) -> web.StreamResponse:
        url = self.config.upstream + request.raw_path
        headers = forward_headers(request.headers)
        page = is_page_load(request)
        if page:
            # A page gets the session banner added, so it is asked for uncompressed.
            headers.popall("Accept-Encoding", None)
        data = self._request_body(request) if request.body_exists else None
        try:
            upstream = await self.session.request(request.method, url, headers=headers, data=data,
                                                  allow_redirects=False,
                                                  skip_auto_headers=NO_AUTO_HEADERS)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            return webui_unavailable(request, exc)
        async with upstream:
            if page and banner_fits(upstream):
                return await self.page_with_banner(request, upstream)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            successful = upstream.status < 400
            stream = upstream.headers.get("Content-Type", "").startswith("text/event-stream")
            if stream:
                self.open_streams += 1
            try:
                await response.prepare(request)
                if successful:
                    self.meter.touch()
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                    if successful:
                        self.meter.touch()
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # either side went away mid-stream; nothing more to send
            finally:
                if stream:
                    self.open_streams -= 1
        return response

    async def page_with_banner(self, request: web.Request, upstream) -> web.StreamResponse:
        """An HTML page, read whole (pages are small; everything else streams), with the
        banner's script tag added."""
        body = await upstream.read()
        self.meter.touch()
        response = web.Response(status=upstream.status, reason=upstream.reason,
                                body=inject_banner(body))
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                response.headers.add(name, value)
        return response

    async def proxy_websocket(self, request: web.Request) -> web.StreamResponse:
        url = self.config.upstream + request.raw_path
        headers = forward_headers(request.headers, drop=WS_HANDSHAKE)
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                     if p.strip()]
        try:
            upstream = await self.session.ws_connect(url, headers=headers, protocols=protocols,
                                                     max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status or 502, text=f"WebUI refused the WebSocket: {exc.message}")
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            return webui_unavailable(request, exc)
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                       max_msg_size=0, autoping=True)
        await client.prepare(request)
        self.meter.touch()
        self.open_streams += 1

        async def pump(source, sink) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
                self.meter.touch()

        tasks = [asyncio.create_task(pump(client, upstream)), asyncio.create_task(pump(upstream, client))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.open_streams -= 1
            await upstream.close()
            await client.close(code=upstream.close_code or aiohttp.WSCloseCode.OK)
        return client
