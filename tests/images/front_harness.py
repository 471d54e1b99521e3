"""A WebUI stand-in (aiohttp: HTTP, streamed uploads, SSE, WebSocket) and a runner for the
trusted front, both on loopback ports, each on its own event loop thread.

Every answer of the stand-in names it (``backend``), so a test can tell whose pod answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

from aiohttp import web

from testing.helpers.servers import free_port


class LoopThread:
    """An asyncio loop on a daemon thread; ``call`` runs a coroutine on it and waits."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Backend:
    def __init__(self, name: str, port: int | None = None, sse_interval: float = 0.1):
        self.name, self.port = name, port or free_port()
        self.sse_interval = sse_interval
        self.upload_first_byte_at: float | None = None
        self.upload_received = 0
        self.requests: list[dict] = []
        self.lt = LoopThread()
        self.runner = None

    async def _echo(self, request: web.Request):
        body = await request.read()
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers)})
        return web.json_response({"backend": self.name, "method": request.method,
                                  "path": request.path_qs, "headers": dict(request.headers),
                                  "body_bytes": len(body)})

    async def _upload(self, request: web.Request):
        digest, total = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            if self.upload_first_byte_at is None:
                self.upload_first_byte_at = time.monotonic()
            digest.update(chunk)
            total += len(chunk)
            self.upload_received = total
        return web.json_response({"backend": self.name, "bytes": total, "sha256": digest.hexdigest()})

    async def _sse(self, request: web.Request):
        count = int(request.query.get("events", "3"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        for i in range(count):
            await response.write(f"data: {self.name} event {i}\n\n".encode())
            await asyncio.sleep(self.sse_interval)
        await response.write_eof()
        return response

    async def _ws(self, request: web.Request):
        ws = web.WebSocketResponse(protocols=("gradio",))
        await ws.prepare(request)
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                await ws.send_str(f"{self.name}: {message.data}")
            elif message.type == web.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    def start(self) -> "Backend":
        async def go():
            app = web.Application(client_max_size=1024 ** 3)
            app.router.add_post("/upload", self._upload)
            app.router.add_get("/sse", self._sse)
            app.router.add_get("/ws", self._ws)
            app.router.add_route("*", "/{tail:.*}", self._echo)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.lt.call(go())
        return self

    def stop(self) -> None:
        if self.runner:
            self.lt.call(self.runner.cleanup())
            self.runner = None
        self.lt.close()


class FrontUnderTest:
    """The real ``sdfleet_webui.front.Front`` on its own loop, in front of ``upstream_port``."""

    def __init__(self, port: int, upstream_port: int, agones_port: int, **overrides):
        from sdfleet_webui.front import Front, FrontConfig
        config = dict(host="127.0.0.1", port=port, upstream=f"http://127.0.0.1:{upstream_port}",
                      agones_port=agones_port, report_seconds=0.2, allocation_wait=0.5,
                      connect_timeout=1.0)
        config.update(overrides)
        self.lt = LoopThread()
        self.front = Front(FrontConfig(**config))
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FrontUnderTest":
        self.lt.call(self.front.start())
        return self

    def stop(self) -> None:
        self.lt.call(self.front.stop())
        self.lt.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
