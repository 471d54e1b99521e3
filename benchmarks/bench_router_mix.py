"""Router on a realistic mix: `python -m benchmarks.bench_router_mix` (part of `make bench`).

bench_router sends the smallest request there is, which shows the router's per-request cost
at its largest. What people do with a WebUI is heavier. One session here is what a browser
does with a Gradio app, on one kept-alive connection plus one WebSocket:

- page load: the HTML page, its 300 KB script and a 2 MB image (a generated picture)
  (Gradio 5 paths: `/`, `/assets/...`, `/gradio_api/file=...`);
- a queue call: `POST /gradio_api/queue/join`, then `GET /gradio_api/queue/data` answered by
  server-sent events streamed one by one (estimation, process_starts, progress...,
  process_completed, close_stream), as Gradio 5 does (gradio/routes.py: queue_join,
  queue_data);
- a WebSocket: upgrade, five messages echoed, close (ComfyUI's `/ws`; Gradio 3's queue).

The backend is nginx (static files with sendfile, the SSE stream and the WebSocket echo in
Lua), so neither proxy waits on a slow WebUI. The same sessions go through the plain nginx
proxy (bench_router.plain_block) and the router in steady state, interleaved round by round.

What is reported, and why: the load generator is Python on the same 2 cores and is slower
than either proxy, so sessions per second are bounded by the client as much as by the proxy
and say little about the router (reported as `router.mix_sessions_per_s`). The capacity of
a router replica is set by the CPU its worker spends per session, measured exactly (all
in-flight sessions finish before the counters are read): `router.mix_ratio` is the plain
proxy's CPU per session over the router's, i.e. the router's sessions per CPU-second as a
fraction of the plain proxy's, median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time

from benchmarks.bench_router import ID, SteadyState, log, plain_block, steady_state, worker_cpu_seconds
from benchmarks.report import emit
from testing.helpers.servers import free_port
from testing.router.harness import start_nginx, start_router

ROUNDS, SECONDS, USERS = 7, 4, 8
SCRIPT_BYTES, IMAGE_BYTES = 300 * 1024, 2 * 1024 * 1024
PROGRESS_EVENTS, WS_MESSAGES = 6, 5
SSE_GAP_SECONDS = 0.001
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
SCRIPT_PATH = "/assets/index-4f3a9c.js"
IMAGE_PATH = "/gradio_api/file=/tmp/gradio/0a1b2c3d/image.png"


def make_assets() -> tuple[str, dict[str, bytes]]:
    """A folder with the page, its script and the image; returns it and path -> bytes."""
    root = tempfile.mkdtemp(prefix="sdfleet-mix-assets-")
    rng = random.Random(18)
    script = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz(){};=. \n") for _ in range(SCRIPT_BYTES))
    image = rng.randbytes(IMAGE_BYTES)  # incompressible, like a PNG
    html = (b"<!doctype html><html><head><meta charset=utf-8><title>Stable Diffusion</title>"
            b'<script type="module" crossorigin src="' + SCRIPT_PATH.encode() + b'"></script>'
            b"</head><body>" + b"<div class=gradio-container></div>" * 300 + b"</body></html>")
    files = {"/index.html": html, "/script.js": script, "/image.png": image}
    for name, data in files.items():
        with open(root + name, "wb") as f:
            f.write(data)
    return root, {"/": html, SCRIPT_PATH: script, IMAGE_PATH: image}


def sse_events(n_progress: int) -> list[dict]:
    """What Gradio 5 streams for one queued call of a generation with `n_progress` steps."""
    return ([{"msg": "estimation", "event_id": "e", "rank": 0, "queue_size": 1},
             {"msg": "process_starts", "event_id": "e", "eta": 4.2}]
            + [{"msg": "progress", "event_id": "e", "progress_data": [
                {"index": i, "length": n_progress, "unit": "steps", "desc": None}]}
               for i in range(n_progress)]
            + [{"msg": "process_completed", "event_id": "e", "success": True, "output": {
                "data": [{"path": IMAGE_PATH.split("=", 1)[1], "url": IMAGE_PATH,
                          "mime_type": "image/png"}], "is_generating": False,
                "duration": 4.1}},
               {"msg": "close_stream"}])


def backend_block(port: int, assets: str) -> str:
    events = "".join(f"data: {json.dumps(e)}\n\n" for e in sse_events(PROGRESS_EVENTS))
    return f"""
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        sendfile on;
        root {assets};
        location = / {{ default_type text/html; try_files /index.html =404; }}
        location = {SCRIPT_PATH} {{ default_type text/javascript; try_files /script.js =404; }}
        location ^~ /gradio_api/file= {{ default_type image/png; try_files /image.png =404; }}
        location = /gradio_api/queue/join {{
            default_type application/json;
            return 200 '{{"event_id": "e"}}';
        }}
        location = /gradio_api/queue/data {{
            default_type text/event-stream;
            content_by_lua_block {{
                ngx.header["Cache-Control"] = "no-cache"
                for event in ([==[{events}]==]):gmatch("(.-\\n\\n)") do
                    ngx.print(event)
                    ngx.flush(true)
                    -- events come apart in time, as a generation's do (so each one is a
                    -- read and a write in the proxy), shortened to 1 ms
                    ngx.sleep({SSE_GAP_SECONDS})
                end
            }}
        }}
        location = /ws {{
            lua_socket_log_errors off;
            content_by_lua_block {{
                local bit = require("bit")
                local key = ngx.var.http_sec_websocket_key
                ngx.status = 101
                ngx.header["Upgrade"] = "websocket"
                ngx.header["Sec-WebSocket-Accept"] =
                    ngx.encode_base64(ngx.sha1_bin(key .. "{WS_GUID}"))
                ngx.send_headers()
                ngx.flush(true)
                local sock = ngx.req.socket(true)
                while true do
                    local head = sock:receive(2)
                    if not head then return end
                    local b1, b2 = head:byte(1, 2)
                    local opcode, len = bit.band(b1, 15), bit.band(b2, 127)
                    if len == 126 then
                        local ext = sock:receive(2)
                        len = ext:byte(1) * 256 + ext:byte(2)
                    end
                    local mask = {{ sock:receive(4):byte(1, 4) }}
                    local data = len > 0 and sock:receive(len) or ""
                    local out = {{}}
                    for i = 1, len do
                        out[i] = string.char(bit.bxor(data:byte(i), mask[(i - 1) % 4 + 1]))
                    end
                    if opcode == 8 then
                        sock:send(string.char(0x88, 0))
                        return
                    end
                    local size = len < 126 and string.char(len)
                        or string.char(126, bit.rshift(len, 8), bit.band(len, 255))
                    sock:send(string.char(0x80 + opcode) .. size .. table.concat(out))
                end
            }}
        }}
    }}"""


class MixError(RuntimeError):
    pass


class Connection:
    """One kept-alive HTTP/1.1 connection, as a browser (or IAP's load balancer) holds."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port = port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in
                            {"Host": "sd.example.com", **headers}.items())
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      on_chunk=None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" \
            if method == "POST" else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head[9:12])
        fields = {k.strip().lower(): v.strip() for k, v in
                  (line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)}
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
                if on_chunk:
                    on_chunk(chunk[:-2])
            data = b"".join(parts)
        else:
            data = await self.reader.read()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def _masked(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([0x80 | opcode]) + size + key + _masked(payload, key)


async def websocket_echo(port: int, headers: dict[str, str], messages: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write((f"GET /ws HTTP/1.1\r\nHost: sd.example.com\r\n{head}Upgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        answer = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if not answer.startswith("HTTP/1.1 101") or accept not in answer:
            raise MixError(f"WebSocket upgrade refused: {answer.splitlines()[0]}")
        for i in range(messages):
            message = json.dumps({"type": "progress", "data": {"value": i, "max": messages,
                                  "prompt_id": "8d6c2a1e-0f4b-4c1e-9a3b-2f5e7d9c1b0a"}}).encode()
            writer.write(_client_frame(0x1, message))
            b1, b2 = await reader.readexactly(2)
            n = b2 & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            if b1 != 0x81 or await reader.readexactly(n) != message:
                raise MixError("WebSocket echo differs from the message sent")
        writer.write(_client_frame(0x8, b""))
        if (await reader.readexactly(2))[0] != 0x88:
            raise MixError("WebSocket close not answered")
    finally:
        writer.close()


async def session(conn: Connection, port: int, headers: dict[str, str],
                  expected: dict[str, bytes], check_bodies: bool,
                  check_streaming: bool = False) -> None:
    """One person's page load, queue call and WebSocket; raises MixError on any difference.
    `check_streaming`: the SSE events arrived apart (only meaningful on an idle machine:
    under load the backend's 1 ms gaps run late and events leave it together)."""
    for path, want in expected.items():
        status, data = await conn.request("GET", path)
        if status != 200 or len(data) != len(want) or (check_bodies and data != want):
            raise MixError(f"GET {path}: {status}, {len(data)} bytes (want {len(want)})")
    status, data = await conn.request("POST", "/gradio_api/queue/join", json.dumps(
        {"data": ["a watercolor fox", 30, 7.5], "fn_index": 2, "session_hash": "s1x9"}).encode())
    if status != 200 or json.loads(data) != {"event_id": "e"}:
        raise MixError(f"POST queue/join: {status} {data[:100]!r}")
    chunks = []
    status, data = await conn.request("GET", "/gradio_api/queue/data?session_hash=s1x9",
                                      on_chunk=chunks.append)
    events = [json.loads(e[6:]) for e in data.decode().split("\n\n") if e.startswith("data: ")]
    if status != 200 or events != sse_events(PROGRESS_EVENTS):
        raise MixError(f"GET queue/data: {status}, events {events[:3]}...")
    if check_streaming and len(chunks) < len(events) // 2:
        raise MixError(f"{len(events)} SSE events arrived in {len(chunks)} pieces: "
                       "the proxy buffered the stream")
    await websocket_echo(port, headers, WS_MESSAGES)


async def load(port: int, headers: dict[str, str], expected: dict[str, bytes], users: int,
               seconds: float) -> tuple[int, float]:
    """`users` people doing sessions back to back for `seconds`; every started session
    finishes. Returns (sessions completed, elapsed seconds)."""
    started = time.monotonic()
    deadline = started + seconds

    async def person(n: int) -> int:
        conn, done = Connection(port, headers), 0
        try:
            while time.monotonic() < deadline:
                await session(conn, port, headers, expected, check_bodies=done == 0)
                done += 1
        finally:
            conn.close()
        return done

    counts = await asyncio.gather(*(person(n) for n in range(users)))
    return sum(counts), time.monotonic() - started


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per proxy per round")
    parser.add_argument("--users", type=int, default=USERS)
    return parser.parse_args(argv)


def run(world: SteadyState, args: argparse.Namespace) -> None:
    assets, expected = make_assets()
    backend_port, plain_port, router_port = free_port(), free_port(), free_port()
    world.processes.append(start_nginx("mix-backend", backend_block(backend_port, assets),
                                       backend_port))
    # the person's pod is the mix backend (read by the router's first request)
    world.store("HSET", f"sdfleet:map:{ID}", "target", f"127.0.0.1:{backend_port}")
    proxies = {"plain": start_nginx("mix-plain", plain_block(plain_port, backend_port),
                                    plain_port),
               "router": start_router(world.router_env(router_port))}
    world.processes.extend(proxies.values())

    rate = {name: [] for name in proxies}
    cpu_us = {name: [] for name in proxies}
    client_busy = []  # the load generator's CPU share: near 1.0, it is what bounds the rate
    for proxy in proxies.values():  # warm up (verdict and route cached), every byte checked
        asyncio.run(session(Connection(proxy.port, world.headers), proxy.port, world.headers,
                            expected, check_bodies=True, check_streaming=True))
    for round_no in range(args.rounds):
        # alternate which goes first, so a slow phase of the machine favours neither
        order = list(proxies) if round_no % 2 == 0 else list(reversed(proxies))
        for name in order:
            before, client_before = worker_cpu_seconds(proxies[name]), time.process_time()
            done, elapsed = asyncio.run(load(proxies[name].port, world.headers, expected,
                                             args.users, args.seconds))
            client_busy.append((time.process_time() - client_before) / elapsed)
            cpu_us[name].append((worker_cpu_seconds(proxies[name]) - before) / done * 1e6)
            rate[name].append(done / elapsed)
        log(f"mix round {round_no + 1}: " + ", ".join(
            f"{n} {rate[n][-1]:.1f} sessions/s {cpu_us[n][-1]:.0f} us/session" for n in proxies)
            + f"; load generator busy {statistics.mean(client_busy[-2:]):.0%} of a core")

    capacity_ratio = statistics.median(p / r for p, r in zip(cpu_us["plain"], cpu_us["router"]))
    throughput_ratio = statistics.median(r / p for r, p in zip(rate["router"], rate["plain"]))
    emit("router.mix_ratio", capacity_ratio, "ratio", ">=0.95",
         baseline=statistics.median(cpu_us["plain"]), ratio=capacity_ratio)
    emit("router.mix_cpu_us_per_session", statistics.median(cpu_us["router"]), "us", "report",
         baseline=statistics.median(cpu_us["plain"]), ratio=capacity_ratio)
    emit("router.mix_sessions_per_s", statistics.median(rate["router"]), "sessions/s",
         "report", baseline=statistics.median(rate["plain"]), ratio=throughput_ratio)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with steady_state() as world:
        run(world, args)
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    log(f"bench_router_mix took {time.monotonic() - started:.0f}s")
    sys.exit(code)
