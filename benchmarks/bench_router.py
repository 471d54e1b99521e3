"""Router benchmarks: `python -m benchmarks.bench_router` (part of `make bench`).

One run, one machine, same backend (an nginx `return 200` server, so the router is what
is measured), each nginx with one worker and wrk with one thread:

- plain:  nginx `proxy_pass` to the backend over an upstream keepalive pool (the baseline)
- router: the sdfleet router in steady state (token verdict and route cached)
- naive:  a Lua router that opens a new Redis connection, AUTHs, reads and writes on every
          request and proxies without keepalive (the reference system's pattern)
- floor:  the plain proxy plus the two Lua phases any per-person keepalive router needs on
          nginx (set_by_lua to choose, balancer_by_lua to connect), both doing nothing but
          return a constant: the ceiling of this architecture, reported next to the router
- chp:    Zero to JupyterHub's configurable-http-proxy routing `/user/<name>/` to the same
          backend, its route added through its REST API as JupyterHub adds it
          (benchmarks/chp_proxy.py): what a team would otherwise run

Rounds are interleaved and the median kept, so slow phases of a shared machine hit all
of them alike; ratios are taken within a round. Prints BENCH lines on stdout; everything
else goes to stderr. `--rounds/--seconds` shrink the run (the smoke test runs it tiny).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Iterator

from benchmarks.chp_proxy import ConfigurableHttpProxy
from benchmarks.report import emit
from testing.helpers.iap import IapKeyServer
from testing.helpers.servers import ManagedProcess, RedisServer, free_port
from testing.router.harness import router_env, start_nginx, start_router, start_verifier
from testing.router.resp import Resp

SUB, ID = "accounts.google.com:100000000000000000001", "g-100000000000000000001"
# What a browser behind IAP also sends on every request: IAP's own cookies (the names the
# router filters out, images/router/lua/sdfleet/pod_cookie.lua; the session token's size is
# assumed, about 1 KB) beside the app's own.
BROWSER_COOKIE = ("GCP_IAP_UID=100000000000000000001; __Host-GCP_IAP_AUTH_TOKEN_3F2A9C4B7D1E6F08="
                  + "".join(chr(97 + (i * 7) % 26) for i in range(1024))
                  + "; theme=dark; _ga=GA1.1.1234567890.1764460800")
ROUNDS, SECONDS, CONNECTIONS = 5, 3, 32
LATENCY_CONNECTIONS, LATENCY_SECONDS = 4, 2


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def backend_block(port: int) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{ return 200 "ok\\n"; }}
    }}"""


def plain_block(port: int, backend: int) -> str:
    """What one would write to put Gradio behind nginx: keepalive pool, WebSocket-ready
    headers, no buffering. The router adds identity, routing and activity to exactly this."""
    return f"""
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;
        }}
    }}"""


def floor_block(port: int, backend: int) -> str:
    """plain_block with a set_by_lua and a balancer_by_lua that do no work at all."""
    return plain_block(port, backend).replace(
        f"upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}",
        # balancer_by_lua before keepalive: keepalive wraps whichever balancer precedes it
        "upstream backend { server 0.0.0.1; balancer_by_lua_block {\n"
        f"        require('ngx.balancer').set_current_peer('127.0.0.1', {backend}) }}\n"
        "        keepalive 64; }"
    ).replace("        location / {\n",
              "        location / {\n            set_by_lua_block $target { return '' }\n")


def naive_block(port: int, redis: RedisServer) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{
            set $target "";
            access_by_lua_block {{
                local ok, redis = pcall(require, "resty.redis")
                if not ok then redis = require("nginx.redis") end
                local id = ngx.var.http_x_user  -- the reference trusted a plain header
                local red = redis:new()
                red:set_timeout(1000)
                assert(red:connect("127.0.0.1", {redis.port}))
                assert(red:auth("{redis.password}"))
                local target = red:hget("sdfleet:map:" .. id, "target")
                red:zadd("sdfleet:activity", ngx.now(), id)
                red:close()
                ngx.var.target = target
            }}
            proxy_pass http://$target;
            proxy_buffering off;
        }}
    }}"""


def wrk(url: str, headers: dict[str, str], connections: int,
        seconds: int) -> tuple[float, float, int]:
    """(requests per second, p99 latency in ms, requests completed)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [url], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99, int(re.search(r"(\d+) requests in", out).group(1))


def process_cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process (all its threads), to the nanosecond: the kernel's
    CPU-time clock of another process, clockid (~pid << 3) | CPUCLOCK_SCHED (Linux
    include/linux/posix-timers.h, MAKE_PROCESS_CPUCLOCK; glibc's clock_getcpuclockid(3)
    builds the same id, sysdeps/unix/sysv/linux/kernel-posix-cpu-timers.h). The
    utime + stime of /proc/<pid>/stat count in 10 ms ticks: 2-3 % of a 4 s round."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_cpu_seconds(server) -> float:
    """CPU time used so far by an nginx master's workers, or by a process with no
    children (configurable-http-proxy: one Node.js process)."""
    kids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                          text=True).stdout.split() or [str(server.proc.pid)]
    return sum(process_cpu_seconds(int(pid)) for pid in kids)


@dataclass
class SteadyState:
    """What every router benchmark runs against: Redis holding the person's mapping, IAP
    keys, the loopback verifier and a `return 200` backend, and the request to send."""

    redis: RedisServer
    iap: IapKeyServer
    backend_port: int
    verifier: ManagedProcess
    headers: dict[str, str]
    processes: list[ManagedProcess]

    @property
    def browser_headers(self) -> dict[str, str]:
        return {**self.headers, "cookie": BROWSER_COOKIE}

    def store(self, *command: str) -> str:
        return Resp(self.redis.port, self.redis.password)(*command)

    def router_env(self, port: int) -> dict[str, str]:
        return router_env(allocator_url="http://127.0.0.1:9/allocate", metadata_url="none",
                          redis_port=self.redis.port, redis_password=self.redis.password,
                          verifier_port=self.verifier.port, port=port, workers=1)


@contextlib.contextmanager
def steady_state() -> Iterator[SteadyState]:
    redis = RedisServer().start()
    iap = IapKeyServer()
    processes: list[ManagedProcess] = []
    try:
        backend_port = free_port()
        processes.append(start_nginx("backend", backend_block(backend_port), backend_port))
        Resp(redis.port, redis.password)("HSET", f"sdfleet:map:{ID}", "target",
                                         f"127.0.0.1:{backend_port}", "gs", "gs-bench")
        verifier = start_verifier(iap.audience, iap.url)
        processes.append(verifier)
        # Every proxy gets the same request: what IAP forwards, plus the header the naive
        # router (like the reference system) takes the identity from.
        headers = {"x-goog-iap-jwt-assertion": iap.mint(sub=SUB, expires_in=3600), "x-user": ID}
        yield SteadyState(redis, iap, backend_port, verifier, headers, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        redis.stop()
        iap.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=int, default=SECONDS, help="per proxy per round")
    parser.add_argument("--warmup", type=int, default=1,
                        help="seconds of load per run before the rounds (LuaJIT, V8), 0: none")
    return parser.parse_args(argv)


def start_chp(world: SteadyState, other_people: int = 100) -> tuple[ConfigurableHttpProxy, str]:
    """CHP holding this person's route to the backend among `other_people` others' (to
    servers elsewhere), as a hub with that many running servers has; returns the URL."""
    chp = ConfigurableHttpProxy().start()
    world.processes.append(chp.process)
    chp.add_user_route(ID, f"http://127.0.0.1:{world.backend_port}")
    for n in range(other_people):
        chp.add_user_route(f"g-{n:021d}", f"http://10.0.{n // 250}.{n % 250 + 1}:7860")
    routes = chp.routes()
    # CHP keys its routes without the trailing slash (JupyterHub adds it back on reading)
    mine = routes[chp.user_path(ID).rstrip("/")]
    assert mine["target"] == f"http://127.0.0.1:{world.backend_port}", routes
    assert sum(path.startswith("/user/") for path in routes) == other_people + 1, routes
    return chp, f"http://127.0.0.1:{chp.port}{chp.user_path(ID)}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with steady_state() as world:
        redis, backend_port, headers = world.redis, world.backend_port, world.headers
        store = world.store
        router_port, plain_port, naive_port, floor_port = (free_port() for _ in range(4))
        chp, chp_url = start_chp(world)
        proxies = {"plain": start_nginx("plain", plain_block(plain_port, backend_port),
                                        plain_port),
                   "router": start_router(world.router_env(router_port)),
                   "naive": start_nginx("naive", naive_block(naive_port, redis), naive_port),
                   "floor": start_nginx("floor", floor_block(floor_port, backend_port),
                                        floor_port)}
        world.processes.extend(proxies.values())
        proxies["chp"] = chp

        # run name -> (server, URL, request headers); "+cookies" runs send what a browser
        # behind IAP sends (IAP's cookies and the app's), the others the minimal request
        runs = {name: (proxies[name], f"http://127.0.0.1:{proxies[name].port}/", headers)
                for name in ("plain", "router", "naive", "floor")}
        runs["chp"] = (chp, chp_url, headers)
        for name in ("plain", "router"):
            server, url, _ = runs[name]
            runs[f"{name}+cookies"] = (server, url, world.browser_headers)
        for _, url, request_headers in runs.values():  # warm up: verdicts, routes, pools
            req = urllib.request.Request(url, headers=request_headers)
            assert urllib.request.urlopen(req, timeout=5).read() == b"ok\n", url
            if args.warmup:  # and the JIT compilers: LuaJIT's traces, V8's for CHP
                wrk(url, request_headers, CONNECTIONS, args.warmup)

        rps = {name: [] for name in runs}
        cpu_us = {name: [] for name in runs}
        router_requests = router_redis_calls = 0
        for round_no in range(args.rounds):
            for name, (server, url, request_headers) in runs.items():
                if name == "router":
                    store("CONFIG", "RESETSTAT")
                cpu_before = worker_cpu_seconds(server)
                value, _, done = wrk(url, request_headers, CONNECTIONS, args.seconds)
                cpu_us[name].append((worker_cpu_seconds(server) - cpu_before) / done * 1e6)
                rps[name].append(value)
                if name == "router":
                    router_requests += done
                    # every command since CONFIG RESETSTAT, which counts itself
                    # ("cmdstat_config|resetstat"); INFO is counted after it answers
                    router_redis_calls += sum(int(n) for n in re.findall(
                        r"cmdstat_[^:]+:calls=(\d+)", store("INFO", "commandstats"))) - 1
            log(f"round {round_no + 1}: " + ", ".join(
                f"{n} {rps[n][-1]:.0f} req/s {cpu_us[n][-1]:.1f} us/req" for n in runs))
        urls = {name: url for name, (_, url, _) in runs.items()}

        added_p99 = []
        latency_seconds = min(LATENCY_SECONDS, args.seconds)
        for _ in range(args.rounds):
            plain_p99 = wrk(urls["plain"], headers, LATENCY_CONNECTIONS, latency_seconds)[1]
            router_p99 = wrk(urls["router"], headers, LATENCY_CONNECTIONS, latency_seconds)[1]
            added_p99.append(router_p99 - plain_p99)
            log(f"p99 at {LATENCY_CONNECTIONS} connections: plain {plain_p99:.2f} ms, "
                f"router {router_p99:.2f} ms")

        # Ratios are taken within a round (back-to-back runs), then the median across rounds.
        def ratio(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(rps[a], rps[b]))

        emit("router.throughput_ratio", ratio("router", "plain"), "ratio", ">=0.85",
             baseline=statistics.median(rps["plain"]), ratio=ratio("router", "plain"))
        emit("router.p99_added_ms", statistics.median(added_p99), "ms", "<=1")
        emit("router.ratio_vs_chp", ratio("router", "chp"), "ratio", ">=5",
             baseline=statistics.median(rps["chp"]), ratio=ratio("router", "chp"))
        emit("router.ratio_vs_naive", ratio("router", "naive"), "ratio", "report",
             baseline=statistics.median(rps["naive"]), ratio=ratio("router", "naive"))
        emit("router.two_phase_floor_ratio", ratio("floor", "plain"), "ratio", "report",
             baseline=statistics.median(rps["plain"]), ratio=ratio("floor", "plain"))
        plain_cpu, router_cpu = min(cpu_us["plain"]), min(cpu_us["router"])
        emit("router.cpu_us_per_request", router_cpu, "us", "report", baseline=plain_cpu,
             ratio=plain_cpu / router_cpu)
        emit("router.chp_cpu_us_per_request", min(cpu_us["chp"]), "us", "report",
             baseline=router_cpu, ratio=router_cpu / min(cpu_us["chp"]))
        emit("router.browser_throughput_ratio", ratio("router+cookies", "plain+cookies"),
             "ratio", "report", baseline=statistics.median(rps["plain+cookies"]),
             ratio=ratio("router+cookies", "plain+cookies"))
        emit("router.redis_commands_per_1k_requests",
             1000 * router_redis_calls / max(1, router_requests), "commands", "report")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    log(f"bench_router took {time.monotonic() - started:.0f}s")
    sys.exit(code)
