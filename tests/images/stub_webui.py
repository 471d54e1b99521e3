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

Every request is appended to the record file as ``<epoch> METHOD PATH``. It answers GET on the
three frameworks' health paths with JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

HEALTH = {"/sdapi/v1/sd-models": [{"title": "stub.safetensors", "model_name": "stub"}],
          "/system_stats": {"system": {"os": "posix"}, "devices": []}}


def next_behaviour(plan_path: Path) -> dict:
    plan = json.loads(plan_path.read_text())
    counter = plan_path.with_suffix(".starts")
    starts = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(starts + 1))
    return plan[min(starts, len(plan) - 1)]


def serve(sock: socket.socket, framework: str, record: Path, hang: threading.Event) -> None:
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
            body = HEALTH.get(self.path.split("?")[0])
            data = json.dumps(body if body is not None else {"framework": framework}).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            self._record()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
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
    serve(sock, args.framework, args.record, hang)
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
