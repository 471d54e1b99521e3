"""Router cost in instructions: `python -m benchmarks.bench_router_instructions`.

Throughput on a shared 2-core VM moves by 10-15 % from one run to the next, more than most
changes to the router's hot path. Instructions do not: callgrind counts the user-space
instructions nginx executes per request, the same for the same binary and config whatever
else the machine is doing. So this is the number to watch while changing the hot path
(kernel time, the same for both proxies, is not in it).

One nginx worker under callgrind per proxy, warmed up, counters zeroed, then a fixed
number of requests from wrk in steady state (verdict and route cached); instructions over
requests. Same `return 200` backend as bench_router, and two requests:
- minimal: bench_router's request (the IAP assertion, no cookie): router.instructions_per_request;
- browser: the same plus the cookies a browser behind IAP sends with every request (IAP's
  own, which the router filters out before the pod, and the app's):
  router.instructions_per_browser_request.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchmarks.bench_router import floor_block, log, plain_block, steady_state, wrk
from benchmarks.report import emit
from testing.helpers.servers import ManagedProcess, free_port
from testing.router.harness import ROUTER_DIR, nginx_binary, start_nginx

SECONDS = 6  # under callgrind nginx serves ~1,500 requests/s: about 9,000 per proxy


def under_callgrind(name: str, conf_path: str, run_dir: str, port: int,
                    env: dict | None = None) -> tuple[ManagedProcess, str]:
    """The same config with the master process off, so callgrind sees the worker itself."""
    with open(conf_path) as f:
        text = "master_process off;\n" + f.read()
    path = conf_path + ".callgrind"
    with open(path, "w") as f:
        f.write(text)
    out = os.path.join(tempfile.mkdtemp(prefix=f"sdfleet-callgrind-{name}-"), "callgrind.out")
    process = ManagedProcess(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              nginx_binary(), "-p", run_dir, "-c", path], port, env=env,
                             log_name=f"callgrind-{name}").start(timeout=60)
    return process, out


def instructions_per_request(process: ManagedProcess, out: str, url: str,
                             headers: dict[str, str], seconds: int = SECONDS) -> tuple[float, int]:
    for _ in range(20):  # warm up: JIT traces, verdict and route cached, pools open
        request = urllib.request.Request(url, headers=headers)
        assert urllib.request.urlopen(request, timeout=30).read() == b"ok\n"
    wrk(url, headers, 8, 2)
    pid = str(process.proc.pid)
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    _, _, requests = wrk(url, headers, 8, seconds)
    before = set(glob.glob(out + "*"))
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while not (set(glob.glob(out + "*")) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    dump = max(set(glob.glob(out + "*")) - before, key=os.path.getmtime)
    summary = subprocess.run(["callgrind_annotate", dump], capture_output=True, text=True,
                             check=True).stdout
    total = int(re.search(r"([\d,]+) \(100", summary).group(1).replace(",", ""))
    return total / requests, requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=SECONDS, help="per proxy per request")
    args = parser.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        print("valgrind (callgrind) is needed: apt-get install valgrind", file=sys.stderr)
        return 1
    with steady_state() as world:
        # the plain proxy: rendered by the same launcher, then run under callgrind
        plain_port = free_port()
        plain = start_nginx("plain-config", plain_block(plain_port, world.backend_port),
                            plain_port)
        plain_conf, plain_dir = plain.args[-1], plain.args[2]
        plain.stop()
        # the two-Lua-phase floor (bench_router.floor_block): what any per-person keepalive
        # router on nginx + Lua costs before doing anything, the reference for its goal
        floor_port = free_port()
        floor = start_nginx("floor-config", floor_block(floor_port, world.backend_port),
                            floor_port)
        floor_conf, floor_dir = floor.args[-1], floor.args[2]
        floor.stop()
        # the router: its config rendered exactly as the image does
        router_port = free_port()
        env = world.router_env(router_port)
        router_conf = os.path.join(env["NGINX_RUN_DIR"], "nginx.conf")
        subprocess.run([sys.executable, "-m", "sdfleet_router.render_config", "--out",
                        router_conf], env={**os.environ, **env}, check=True, cwd=ROUTER_DIR)

        # the request as bench_router sends it, and as a browser behind IAP sends it
        requests = {"minimal": world.headers, "browser": world.browser_headers}
        counts: dict[tuple[str, str], float] = {}
        for name, conf, run_dir, port, run_env in [
                ("plain", plain_conf, plain_dir, plain_port, None),
                ("floor", floor_conf, floor_dir, floor_port, None),
                ("router", router_conf, env["NGINX_RUN_DIR"], router_port,
                 {**os.environ, "REDIS_PASSWORD": world.redis.password})]:
            process, out = under_callgrind(name, conf, run_dir, port, run_env)
            world.processes.append(process)
            for kind, headers in requests.items():
                if name == "floor" and kind == "browser":
                    continue  # the floor reads no header: the same as the minimal request
                count, done = instructions_per_request(
                    process, out, f"http://127.0.0.1:{port}/", headers, args.seconds)
                counts[name, kind] = count
                log(f"{name}, {kind} request: {count:.0f} instructions per request "
                    f"over {done} requests")
            process.stop()
        for kind, line in [("minimal", "router.instructions_per_request"),
                           ("browser", "router.instructions_per_browser_request")]:
            router, plain = round(counts["router", kind]), round(counts["plain", kind])
            emit(line, router, "instructions", "report", baseline=plain, ratio=plain / router)
        floor, plain = round(counts["floor", "minimal"]), round(counts["plain", "minimal"])
        emit("router.instructions_two_phase_floor", floor, "instructions", "report",
             baseline=plain, ratio=plain / floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
