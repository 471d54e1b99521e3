"""A stand-in for a Stable Diffusion WebUI process (no GPU here), run by the supervisor.

    python stub_webui.py --port P --framework F --plan plan.json --record requests.log

Each start takes the next behaviour from the plan (a counter file beside it remembers how
many starts happened); the last behaviour repeats. Behaviour keys:

- ``start_delay``: seconds before listening (a slow model load)
- ``crash_after``: exit with ``exit_code`` after this many seconds of serving
- ``hang_after``: stop answering (requests block) after this many seconds
- ``grandchild``: hand the listening socket to a grandchild in its own session that keeps
  it open forever, then the child itself crashes after ``crash_after`` (a grandchild
  holding the port); the grandchild's pid is written to ``<plan>.grandchild``
- ``oom_line``: print a CUDA out-of-memory line once serving
- ``oom_traceback``: print one out-of-memory error over several lines, as frameworks do
- ``ignore_sigterm``: survive SIGTERM (the supervisor must SIGKILL after the grace period)
- ``cannot_generate``: answer the health paths but fail every generation as a framework does
  after a failed model load (A1111: 500 with its error body and a log line; ComfyUI: the
  prompt ends in an execution error)
- ``generate_delay``: seconds a generation takes (a model loading on the first one)

Every request is appended to the record file as ``<epoch> METHOD PATH``, and every POST
body to ``<record>.bodies`` as a JSON line. It answers GET on the
three frameworks' health paths with JSON, and generates a tiny PNG through A1111's
``/sdapi/v1/txt2img`` and ComfyUI's ``/prompt`` + ``/history`` + ``/view``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HEALTH = {"/sdapi/v1/sd-models": [{"title": "stub.safetensors", "model_name": "stub"}],
          "/system_stats": {"system": {"os": "posix"}, "devices": []}}


def tiny_png() -> bytes:
    """A 1x1 grey PNG, built by hand: the stub needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


MODEL_ERROR = "Stable diffusion model failed to load"


def next_behaviour(plan_path: Path) -> dict:
    plan = json.loads(plan_path.read_text())
    counter = plan_path.with_suffix(".starts")
    starts = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(starts + 1))
    return plan[min(starts, len(plan) - 1)]


def serve(sock: socket.socket, framework: str, record: Path, hang: threading.Event,
          behaviour: dict) -> None:
    history: dict[str, dict] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _record(self):
            with open(record, "a") as out:
                out.write(f"{time.time():.3f} {self.command} {self.path}\n")

        def do_GET(self):
            self._record()
            if hang.is_set():
                time.sleep(3600)
            path = self.path.split("?")[0]
            if path.startswith("/history/"):
                prompt_id = path.rsplit("/", 1)[1]
                return self._send(200, {prompt_id: history[prompt_id]} if prompt_id in history else {})
            if path == "/view":
                return self._send(200, tiny_png(), "image/png")
            if path == "/object_info/CheckpointLoaderSimple":
                return self._send(200, {"CheckpointLoaderSimple": {"input": {"required": {
                    "ckpt_name": [["stub.safetensors"], {}]}}}})
            body = HEALTH.get(path)
            self._send(200 if body is not None else 404,
                       body if body is not None else {"framework": framework})

        def do_POST(self):
            self._record()
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.split("?")[0]
            with open(record.with_suffix(".bodies"), "a") as out:
                out.write(json.dumps({"path": path, "body": request}) + "\n")
            if path in ("/sdapi/v1/txt2img", "/prompt"):
                time.sleep(behaviour.get("generate_delay", 0))
                failing = behaviour.get("cannot_generate")
                if failing:
                    print(f"{MODEL_ERROR}: OSError: Can't load tokenizer", flush=True)
            if path == "/sdapi/v1/txt2img":
                if failing:
                    return self._send(500, {"error": "OSError", "detail": "",
                                            "errors": "Can't load tokenizer"})
                image = base64.b64encode(tiny_png()).decode()
                return self._send(200, {"images": [image], "parameters": request, "info": "{}"})
            if path == "/prompt":
                prompt_id = str(uuid.uuid4())
                image = {"filename": "warm.png", "subfolder": "", "type": "temp"}
                history[prompt_id] = (
                    {"outputs": {}, "status": {"status_str": "error", "completed": False, "messages": [
                        ["execution_error", {"exception_message": "Can't load tokenizer"}]]}}
                    if failing else
                    {"outputs": {"7": {"images": [image]}},
                     "status": {"status_str": "success", "completed": True, "messages": []}})
                return self._send(200, {"prompt_id": prompt_id, "number": 0, "node_errors": {}})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, status: int, body, content_type: str = "application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--framework", default="automatic1111")
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--hold-fd", type=int, default=None)
    args = parser.parse_args()
    if args.hold_fd is not None:  # the grandchild: keep the port, never answer
        time.sleep(3600)
        return
    behaviour = next_behaviour(args.plan)
    print(f"stub webui {args.framework} pid={os.getpid()} behaviour={behaviour}", flush=True)
    if behaviour.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
    time.sleep(behaviour.get("start_delay", 0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))
    except OSError as exc:
        print(f"cannot bind port {args.port}: {exc}", flush=True)
        sys.exit(3)
    sock.listen(16)
    if behaviour.get("grandchild"):
        grandchild = subprocess.Popen([sys.executable, __file__, "--port", str(args.port),
                                       "--plan", str(args.plan), "--record", str(args.record),
                                       "--hold-fd", str(sock.fileno())],
                                      pass_fds=[sock.fileno()], start_new_session=True)
        args.plan.with_suffix(".grandchild").write_text(str(grandchild.pid))
    hang = threading.Event()
    serve(sock, args.framework, args.record, hang, behaviour)
    print("Running on local URL: http://127.0.0.1:%d" % args.port, flush=True)
    if behaviour.get("oom_line"):
        print("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
    if behaviour.get("oom_traceback"):  # one OOM error as a framework prints it: many lines
        for line in ("*** Error completing request", "Traceback (most recent call last):",
                     "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                     "RuntimeError: CUDA error: out of memory",
                     "The above exception was the direct cause of the following exception:",
                     "torch.OutOfMemoryError: CUDA out of memory.",
                     "gradio: OutOfMemoryError: CUDA out of memory"):
            print(line, flush=True)
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if "crash_after" in behaviour and elapsed >= behaviour["crash_after"]:
            print("Traceback: stub crash", flush=True)
            os._exit(behaviour.get("exit_code", 1))
        if "hang_after" in behaviour and elapsed >= behaviour["hang_after"]:
            hang.set()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
