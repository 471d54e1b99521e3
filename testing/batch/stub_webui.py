"""A stand-in for the AUTOMATIC1111 WebUI API, run as a real HTTP server (child process).

It is the agent's peer, not the code under test. Behaviour is set over HTTP so a test can
change it while an agent is connected:

    POST /_stub/config {"mode": "success"|"slow"|"500"|"hang"|"crash", "slowSeconds": 2,
                        "healthy": true, "models": [...], "failTimes": 0}
                        (healthy false: /internal/ping and /sdapi/v1/sd-models answer 503)
    GET  /_stub/calls   every generation request seen: path, prompt, model, init images
    GET  /sdapi/v1/progress   A1111's progress: `eta_relative`, the seconds a slow generation
                        has left (0 when idle)

Modes: success answers at once; slow sleeps slowSeconds first; 500 answers 500; hang never
answers; crash kills this process mid-request (the connection drops). `failTimes` makes
the first N generation requests answer 500 whatever the mode.

Images are real PNGs (1x1) whose tEXt chunk says which prompt and index they are, so tests
can tell which job produced which object.

    python testing/batch/stub_webui.py --port 7860
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_MODELS = [
    {"title": "v1-5-pruned-emaonly.safetensors [6ce0161689]", "model_name": "v1-5-pruned-emaonly",
     "hash": "6ce0161689", "filename": "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors"},
    {"title": "sdxl-base-1.0.safetensors [31e35c80fc]", "model_name": "sdxl-base-1.0",
     "hash": "31e35c80fc", "filename": "/models/Stable-diffusion/sdxl-base-1.0.safetensors"},
]


def png(text: str) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x10\x20\x30")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"tEXt", b"sdfleet\x00" + text.encode()) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "success"
        self.slow_seconds = 2.0
        self.healthy = True
        self.models = list(DEFAULT_MODELS)
        self.fail_times = 0
        self.calls: list[dict] = []
        self.interrupts = 0
        self.busy_until = 0.0


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, no Nagle: like a real server, and no 40 ms delayed-ACK stalls
    # on keep-alive connections that would be charged to the agent.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test logs short
        pass

    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        if self.path == "/internal/ping":
            return self._send(200 if STATE.healthy else 503, {})
        if self.path == "/sdapi/v1/sd-models":  # the agent's default health check
            return self._send(200 if STATE.healthy else 503, STATE.models)
        if self.path.split("?")[0] == "/sdapi/v1/progress":
            with STATE.lock:
                left = max(0.0, STATE.busy_until - time.time())
            return self._send(200, {"progress": 0.0 if left else 1.0, "eta_relative": left,
                                    "state": {}, "current_image": None, "textinfo": None})
        if self.path == "/_stub/calls":
            with STATE.lock:
                return self._send(200, {"calls": STATE.calls, "interrupts": STATE.interrupts})
        self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        body = self._body()
        if self.path == "/_stub/config":
            with STATE.lock:
                STATE.mode = body.get("mode", STATE.mode)
                STATE.slow_seconds = float(body.get("slowSeconds", STATE.slow_seconds))
                STATE.healthy = bool(body.get("healthy", STATE.healthy))
                STATE.models = body.get("models", STATE.models)
                STATE.fail_times = int(body.get("failTimes", STATE.fail_times))
            return self._send(200, {"ok": True})
        if self.path == "/sdapi/v1/refresh-checkpoints":
            return self._send(200, None)
        if self.path == "/sdapi/v1/interrupt":
            with STATE.lock:
                STATE.interrupts += 1
            return self._send(200, None)
        if self.path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
            return self._generate(body)
        self._send(404, {"detail": "Not Found"})

    def _generate(self, payload: dict):
        call = {"path": self.path, "prompt": payload.get("prompt"), "started": time.time(),
                "model": (payload.get("override_settings") or {}).get("sd_model_checkpoint"),
                "initImageSha256": [hashlib.sha256(base64.b64decode(i)).hexdigest()
                                    for i in payload.get("init_images") or []],
                "finished": False}
        with STATE.lock:
            STATE.calls.append(call)
            mode = STATE.mode
            failing = STATE.fail_times > 0
            STATE.fail_times -= 1 if failing else 0
        if failing or mode == "500":
            return self._send(500, {"error": "RuntimeError", "detail": "CUDA out of memory"})
        if mode == "crash":
            self.wfile.flush()
            os._exit(3)
        if mode == "hang":
            time.sleep(3600)
        if mode == "slow":
            with STATE.lock:
                STATE.busy_until = time.time() + STATE.slow_seconds
            time.sleep(STATE.slow_seconds)
        count = int(payload.get("batch_size", 1)) * int(payload.get("n_iter", 1))
        images = [base64.b64encode(png(f"{payload.get('prompt')}#{i}")).decode()
                  for i in range(count)]
        call["finished"] = True
        parameters = {k: v for k, v in payload.items() if k != "init_images"}
        info = json.dumps({"prompt": payload.get("prompt"), "seed": 1234, "all_seeds": [1234] * count})
        self._send(200, {"images": images, "parameters": parameters, "info": info})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", default="success")
    args = parser.parse_args()
    STATE.mode = args.mode
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
