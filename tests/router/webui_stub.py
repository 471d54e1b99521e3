"""A stand-in WebUI pod: real HTTP, WebSocket and server-sent events on one loopback port.

Gradio uses all three on one port, so the stub does too. Every answer names the stub
(`backend`) and echoes what it received, so tests can tell whose pod answered and which
headers reached it. `expected_identity`, when set, makes the stub answer 421 to anyone
else, as a pod that checks its allocation label would. `requests_per_connection`, when set,
makes the stub close a kept-alive connection when the next request arrives on it, without
answering, as a server whose keep-alive timer fired just then does (uvicorn's is 5 s).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import threading

from testing.helpers.servers import free_port

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The pod's front says its WebUI restarts with this (images/webui/sdfleet_webui/frontrules.py;
# tests/contracts checks the router reads the same words).
FRONT_STATUS_HEADER, FRONT_RESTARTING = "X-Sdfleet-Pod-Status", "webui-restarting"


class WebUiStub:
    def __init__(self, name: str, port: int | None = None, expected_identity: str | None = None,
                 requests_per_connection: int | None = None):
        self.name = name
        self.requests_per_connection = requests_per_connection
        self.dropped_requests = 0
        self.port = port or free_port()
        self.expected_identity = expected_identity
        self.webui_restarting = False  # answer as the pod's front does while its WebUI restarts
        self.requests: list[dict] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "WebUiStub":
        ready = threading.Event()

        def run():
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True))
            ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, as a killed pod would."""
        if not self._loop:
            return

        async def shutdown():
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._writers.add(writer)
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if self.requests_per_connection and served >= self.requests_per_connection:
                    self.dropped_requests += 1
                    return  # closed with the request unanswered
                served += 1
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        key = k.strip().lower()
                        headers[key] = (headers[key] + ", " if key in headers else "") + v.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await self._read_chunked(reader)
                self.requests.append({"method": method, "path": path, "headers": headers})
                ident = headers.get("x-sdfleet-identity")
                if self.expected_identity and ident != self.expected_identity:
                    await self._send(writer, 421, {"error": "not-this-pod"})
                elif self.webui_restarting:
                    await self._send(writer, 503, {"error": FRONT_RESTARTING, "retryAfterSeconds": 5,
                                                   "message": "Your WebUI is restarting."},
                                     {"Retry-After": "5", FRONT_STATUS_HEADER: FRONT_RESTARTING})
                elif headers.get("upgrade", "").lower() == "websocket":
                    await self._websocket(reader, writer, headers)
                    return
                elif path.startswith("/sse"):
                    await self._sse(writer)
                    return
                elif path.startswith("/status/"):
                    await self._send(writer, int(path.rsplit("/", 1)[1]), {"backend": self.name})
                else:
                    await self._send(writer, 200, {
                        "backend": self.name, "method": method, "path": path,
                        "headers": headers, "body_bytes": len(body),
                        "body_sha256": hashlib.sha256(body).hexdigest()})
                if headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        body = b""
        while True:
            size = int((await reader.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                return body
            body += await reader.readexactly(size)
            await reader.readline()

    @staticmethod
    async def _send(writer, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()

    async def _sse(self, writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n")
        for i in range(3):
            writer.write(f"data: {self.name} event {i}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(0.3)

    async def _websocket(self, reader, writer, headers) -> None:
        accept = base64.b64encode(hashlib.sha1(
            (headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        await writer.drain()
        while True:
            b1, b2 = await reader.readexactly(2)
            opcode, length = b1 & 0x0F, b2 & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(length)))
            if opcode == 0x8:  # close
                writer.write(b"\x88\x00")
                await writer.drain()
                return
            if opcode == 0x9:  # ping
                writer.write(bytes([0x8A, len(data)]) + data)
                continue
            reply = f"{self.name}: ".encode() + data
            header = bytes([0x81, len(reply)]) if len(reply) < 126 else \
                bytes([0x81, 126]) + struct.pack("!H", len(reply))
            writer.write(header + reply)
            await writer.drain()
