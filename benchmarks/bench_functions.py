"""Benchmarks of the allocator and culler functions, on loopback, against real servers.

  allocate.p99_ms       first POST /allocate -> `ready` for 200 identities, one after
                        another, with a Ready pool: real functions-framework, redis-server,
                        ES256-signed IAP assertions, the Agones emulator. Goal < 150 ms.
  allocate.p99_ms_budgets  the same with GPU-hour budgets on (every person has a month's
                        usage to read and a budget end to write). Goal < 150 ms.
  culler.pass_ms_100k   POST /cull on the real culler function with 100,000 tracked
                        identities (mapping + activity + session entries, and an Allocated
                        game server each in the emulator), 1,000 of them idle: median of 3
                        passes (each pass culls its 1,000; they are replaced before the next).
                        Goal < 1000 ms.
  culler.ratio_vs_scan  the same pass code run in this process, against a baseline that
                        finds candidates the naive way: SCAN every mapping key, read every
                        hash and activity score (pipelined per SCAN batch) and decide each;
                        the deletions and Redis updates that follow are the same code.
                        Median of 2 runs each. Goal >= 20.

The emulator runs in a child process so that neither side of a comparison shares its
interpreter with the Kubernetes look-alike. Only BENCH lines go to stdout.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for sub in ("functions", "functions/culler"):
    sys.path.insert(0, str(ROOT / sub))

import redis  # noqa: E402

from benchmarks.report import emit  # noqa: E402
from testing.emulators.agones import AgonesEmulator  # noqa: E402
from testing.helpers.iap import IapKeyServer  # noqa: E402
from testing.helpers.servers import ManagedProcess, RedisServer, free_port  # noqa: E402

TOKEN, FLEET, P = "bench-k8s-token", "sdfleet-webui", "sdfleet:"
TRACKED, IDLE = 100_000, 1_000
CULLER_SA = "culler@bench.iam.gserviceaccount.com"
CULLER_AUD = "https://culler.bench/cull"
IDLE_SECONDS = 1800


def err(*args):
    print(*args, file=sys.stderr, flush=True)


# ---- the emulator in its own process, driven over a pipe ------------------------------
def _emulator_main(conn):
    emu = AgonesEmulator(token=TOKEN, fleet=FLEET).start()
    conn.send(emu.url)
    while True:
        cmd, args = conn.recv()
        if cmd == "stop":
            emu.stop()
            conn.send(True)
            return
        if cmd == "ready":
            emu.add_many([f"pool-{i:04d}" for i in range(args)], port=7860)
        elif cmd == "allocated":
            start, count, allocated_at = args
            emu.add_many([f"gs-{i:06d}" for i in range(start, start + count)], state="Allocated",
                         labels_for=lambda n: {"sdfleet.dev/identity": "g-" + str(10**9 + int(n[3:]))},
                         annotations_for=lambda n: {"sdfleet.dev/allocated-at": repr(allocated_at)})
        elif cmd == "reset":
            emu.reset()
        elif cmd == "working":  # Allocated, labelled, and their pods reported activity
            count, allocated_at, reported_at = args
            emu.add_many([f"live-{i:05d}" for i in range(count)], state="Allocated",
                         labels_for=lambda n: {"sdfleet.dev/identity": "g-" + str(2 * 10**9 + int(n[5:]))},
                         annotations_for=lambda n: {"sdfleet.dev/allocated-at": repr(allocated_at),
                                                    "agones.dev/sdk-last-activity": repr(reported_at)})
        elif cmd == "count":
            conn.send(len(emu.game_servers(args)))
            continue
        conn.send(True)


class EmulatorProcess:
    def __init__(self):
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_emulator_main, args=(child,), daemon=True)
        self.proc.start()
        self.url = self.conn.recv()

    def do(self, cmd, args=None):
        self.conn.send((cmd, args))
        return self.conn.recv()

    def stop(self):
        try:
            self.do("stop")
        finally:
            self.proc.join(timeout=10)
            if self.proc.is_alive():
                self.proc.kill()


def function_env(redis_server, iap, emulator_url, **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT / "functions"),
           "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port),
           "REDIS_PASSWORD": redis_server.password, "IAP_AUDIENCE": iap.audience,
           "IAP_CERTS_URL": iap.url, "K8S_API_URL": emulator_url, "K8S_TOKEN": TOKEN,
           "AGONES_NAMESPACE": "default", "FLEET_NAME": FLEET,
           "IDLE_TIMEOUT_SECONDS": str(IDLE_SECONDS), "MAX_SESSION_SECONDS": str(24 * 3600),
           "ORPHAN_GRACE_SECONDS": "300", "CULL_INVOKER_AUDIENCE": CULLER_AUD,
           "CULL_INVOKER_EMAILS": CULLER_SA, "OIDC_CERTS_URL": iap.url}
    env.update(extra)
    return env


def start_function(name, target, env):
    port = free_port()
    return ManagedProcess([str(Path(sys.executable).parent / "functions-framework"),
                           "--source", str(ROOT / "functions" / name / "main.py"),
                           "--target", target, "--host", "127.0.0.1", "--port", str(port)],
                          port=port, env=env, cwd=str(ROOT), log_name=name).start(timeout=30)


def post(conn, path, headers):
    conn.request("POST", path, body=b"", headers=headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


# ---- allocate.p99_ms -----------------------------------------------------------------
BUDGETS = json.dumps({"defaultGpuHours": 40, "contact": "ops",
                      "members": [{"member": f"user:p{i}@example.com", "gpuHours": 10}
                                  for i in range(50)]})


def bench_allocate(redis_server, iap, emu, budgets: bool = False):
    emu.do("reset")
    emu.do("ready", 210)
    extra = {"SDFLEET_BUDGETS": BUDGETS} if budgets else {}
    redis.Redis(port=redis_server.port, password=redis_server.password).flushall()
    proc = start_function("allocator", "allocate", function_env(redis_server, iap, emu.url, **extra))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
        warm = iap.mint(sub="accounts.google.com:999999")
        post(conn, "/allocate", {"x-goog-iap-jwt-assertion": warm})   # cold start, key fetch
        tokens = [iap.mint(sub=f"accounts.google.com:{5000 + i}") for i in range(200)]
        times = []
        for token in tokens:
            t0 = time.perf_counter()
            status, body = post(conn, "/allocate", {"x-goog-iap-jwt-assertion": token})
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200 or body.get("status") != "ready":
                raise RuntimeError(f"allocation did not succeed: {status} {body}")
        times.sort()
        p99 = times[int(len(times) * 0.99) - 1]
        err(f"allocate: p50={statistics.median(times):.1f} ms p99={p99:.1f} ms max={times[-1]:.1f} ms")
        emit("allocate.p99_ms_budgets" if budgets else "allocate.p99_ms", p99, "ms", "<150")
    finally:
        proc.stop()


# ---- culler --------------------------------------------------------------------------
def seed_sessions(r, emu, start, count, allocated_at, last_active):
    pipe = r.pipeline(transaction=False)
    activity, sessions = {}, {}
    for i in range(start, start + count):
        id_ = f"g-{10**9 + i}"
        pipe.hset(f"{P}map:{id_}", mapping={
            "gs": f"gs-{i:06d}", "target": f"10.8.{i // 250 % 250}.{i % 250}:7860",
            "allocated_at": repr(allocated_at), "sub": f"accounts.google.com:{10**9 + i}",
            "email": f"user{i}@example.com"})
        activity[id_], sessions[id_] = last_active, allocated_at
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.zadd(f"{P}activity", activity)
    pipe.zadd(f"{P}sessions", sessions)
    pipe.execute()
    emu.do("allocated", (start, count, allocated_at))


class ScanCandidatesPass:
    """The baseline: the same pass, but candidates found by reading everything."""

    @staticmethod
    def make(CullPass, store):
        from cull_pass import _view

        class ScanPass(CullPass):
            def _candidate_views(self, now):
                self._continue, rank = self.store.reconcile_cursor()
                self._next_rank, self._slice_ids = rank, set()
                views = {}
                for keys in _scan_batches(store.client, f"{P}map:*"):
                    ids = [k[len(P) + 4:] for k in keys]
                    for id_, (fields, score) in zip(ids, store.read_sessions(ids)):
                        views[id_] = _view(id_, fields, score)
                return views
        return ScanPass


def _scan_batches(client, pattern):
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=pattern, count=2000)
        if keys:
            yield keys
        if cursor == 0:
            return


def bench_culler(redis_server, iap, emu):
    from cull_pass import CullPass
    from shared.agones import AgonesClient
    from shared.config import CullerSettings, KubernetesSettings, RedisSettings
    from shared.redis_client import connect
    from shared.state import SessionStore

    r = redis.Redis(port=redis_server.port, password=redis_server.password, decode_responses=True)
    r.flushall()
    now = time.time()
    t0 = time.perf_counter()
    seed_sessions(r, emu, 0, TRACKED - IDLE, now - 3600, now - 60)
    seed_sessions(r, emu, TRACKED - IDLE, IDLE, now - 7200, now - 2 * IDLE_SECONDS)
    err(f"culler: seeded {r.zcard(P + 'activity')} identities in {time.perf_counter() - t0:.1f} s")
    next_start = TRACKED

    def replace_idle():
        nonlocal next_start
        t = time.time()
        seed_sessions(r, emu, next_start, IDLE, t - 7200, t - 2 * IDLE_SECONDS)
        next_start += IDLE

    env = function_env(redis_server, iap, emu.url)
    proc = start_function("culler", "cull", env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=120)
        headers = {"Authorization": "Bearer " + iap.mint(
            sub="1", email=CULLER_SA, audience=CULLER_AUD, issuer="https://accounts.google.com",
            expires_in=3600)}
        http_passes = []
        for _ in range(3):
            t0 = time.perf_counter()
            status, summary = post(conn, "/cull", headers)
            http_passes.append((time.perf_counter() - t0) * 1000)
            if status != 200 or summary["culled"].get("idle") != IDLE:
                raise RuntimeError(f"pass did not cull the idle sessions: {status} {summary}")
            err(f"culler pass (function): {http_passes[-1]:.0f} ms, culled {summary['culled']}, "
                f"examined {summary['examined']} {summary['timingsMs']}")
            replace_idle()
        emit("culler.pass_ms_100k", statistics.median(http_passes), "ms", "<1000")
    finally:
        proc.stop()

    # Same code in this process: indexed candidates vs scanning every record.
    os.environ.update(env)
    redis_settings = RedisSettings.from_env()
    store = SessionStore(connect(redis_settings, redis_settings.password), P)
    k8s = KubernetesSettings.from_env()
    agones, settings = AgonesClient(k8s), CullerSettings.from_env()
    ScanPass = ScanCandidatesPass.make(CullPass, store)
    indexed, scanned = [], []
    real_stdout, sys.stdout = sys.stdout, sys.stderr   # the passes' usage log lines
    with ThreadPoolExecutor(max_workers=k8s.workers) as pool:
        for _ in range(2):
            for cls, results in ((CullPass, indexed), (ScanPass, scanned)):
                t0 = time.perf_counter()
                summary = cls(store, agones, settings, pool).run()
                results.append((time.perf_counter() - t0) * 1000)
                if summary["culled"].get("idle") != IDLE:
                    raise RuntimeError(f"{cls.__name__} culled {summary['culled']}")
                err(f"culler pass ({cls.__name__}): {results[-1]:.0f} ms, examined {summary['examined']} {summary['timingsMs']}")
                replace_idle()
    sys.stdout = real_stdout
    ours, baseline = statistics.median(indexed), statistics.median(scanned)
    emit("culler.ratio_vs_scan", baseline / ours, "x", ">=20", baseline=baseline, ratio=baseline / ours)
    bench_rebuild(redis_server, iap, emu, env)


REBUILT = 1000


def bench_rebuild(redis_server, iap, emu, env):
    """The pass after a flush: Redis empty, 1,000 people working on their pods; every
    mapping is rebuilt from the cluster in that one pass (the same goal as a normal pass)."""
    r = redis.Redis(port=redis_server.port, password=redis_server.password, decode_responses=True)
    proc = start_function("culler", "cull", env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=120)
        headers = {"Authorization": "Bearer " + iap.mint(
            sub="1", email=CULLER_SA, audience=CULLER_AUD, issuer="https://accounts.google.com",
            expires_in=3600)}
        passes = []
        for _ in range(3):
            emu.do("reset")
            r.flushall()
            now = time.time()
            emu.do("working", (REBUILT, now - 1800, now - 30))
            t0 = time.perf_counter()
            status, summary = post(conn, "/cull", headers)
            passes.append((time.perf_counter() - t0) * 1000)
            if status != 200 or summary["restored"] != REBUILT or summary["truncated"]:
                raise RuntimeError(f"the pass did not rebuild every mapping: {status} {summary}")
            err(f"culler rebuild pass: {passes[-1]:.0f} ms, restored {summary['restored']} "
                f"{summary['timingsMs']}")
        emit("culler.rebuild_ms_1k", statistics.median(passes), "ms", "<1000")
    finally:
        proc.stop()


def main():
    started = time.monotonic()
    redis_server = RedisServer().start()
    iap = IapKeyServer()
    emu = EmulatorProcess()
    try:
        bench_allocate(redis_server, iap, emu)
        bench_allocate(redis_server, iap, emu, budgets=True)
        emu.do("reset")
        bench_culler(redis_server, iap, emu)
    finally:
        emu.stop()
        iap.close()
        redis_server.stop()
    err(f"bench_functions: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
