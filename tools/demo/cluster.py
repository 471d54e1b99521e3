"""The demo's cluster: the Agones emulator as the API, a fleet controller that keeps the
buffer of game servers, and for each game server a pod made of the image's real programs.

A pod here is what a WebUI pod runs, as processes on loopback instead of containers: the
WebUI container's supervisor (running the stand-in WebUI) and the trusted sidecar (the
front on the game server's port, and the user sync with the person's own folder under the
demo's users root). Each program gets
the Agones SDK REST API it talks to in a pod, served by ``SdkBridge`` from the emulator's
game server (so Ready, annotations and the allocator's labels are the emulator's state).
The fleet controller plays Agones and the cluster autoscaler: it keeps ``buffer``
unallocated game servers (up to ``max_replicas``), shows the simulated GPU node and image
pull as the game server's Starting and Scheduled states, and stops a pod's processes when
its game server is deleted (a cull) or shut down (its supervisor gave up).
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from testing.emulators.agones import AgonesEmulator
from testing.helpers.servers import free_port

SDK_PREFIX = "agones.dev/sdk-"  # what Agones prefixes SDK annotations and labels with
REPO = Path(__file__).resolve().parents[2]


def sdk_view(obj: dict) -> dict:
    """A game server as the SDK's REST API shows it (the proto's JSON names)."""
    meta, status = obj["metadata"], obj["status"]
    return {"object_meta": {"name": meta["name"], "namespace": meta["namespace"],
                            "uid": meta["uid"], "resource_version": meta["resourceVersion"],
                            # the SDK gives unix seconds; the API an RFC 3339 time
                            "creation_timestamp": str(calendar.timegm(time.strptime(
                                meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))),
                            "labels": dict(meta["labels"]),
                            "annotations": dict(meta["annotations"])},
            "status": {"state": status["state"], "address": status["address"],
                       "ports": copy.deepcopy(status["ports"])}}


class SdkBridge:
    """The SDK sidecar's REST API (``/ready``, ``/health``, ``/shutdown``, ``/gameserver``,
    ``/watch/gameserver``, ``PUT /metadata/annotation``) for one game server."""

    def __init__(self, emulator: AgonesEmulator, name: str, loop: asyncio.AbstractEventLoop):
        self.emulator, self.name, self.loop = emulator, name, loop
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.closing = False

    async def _gameserver(self, _request):
        obj = self.emulator.game_server(self.name)
        return web.json_response(sdk_view(obj)) if obj else web.json_response(
            {"error": "game server gone", "code": 5}, status=404)

    async def _watch(self, request):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        seen = None
        while not self.closing:
            obj = self.emulator.game_server(self.name)
            if obj is None:
                break
            version = obj["metadata"]["resourceVersion"]
            if version != seen:
                seen = version
                try:
                    await response.write(json.dumps({"result": sdk_view(obj)}).encode() + b"\n")
                except ConnectionError:  # the program closed its watch
                    break
            await asyncio.sleep(0.2)
        return response

    async def _state(self, request):
        await request.read()
        state = {"/ready": "Ready", "/shutdown": "Shutdown"}.get(request.path)
        if state == "Ready":
            current = self.emulator.game_server(self.name) or {"status": {}}
            if current["status"].get("state") == "Allocated":
                state = None  # the supervisor never asks this; Agones would release the pod
        if state:
            self.emulator.sdk_update(self.name, state=state)
        return web.json_response({})

    async def _annotation(self, request):
        body = await request.json()
        self.emulator.sdk_update(self.name,
                                 annotations={SDK_PREFIX + str(body["key"]): str(body["value"])})
        return web.json_response({})

    def start(self) -> "SdkBridge":
        async def go():
            app = web.Application()
            app.router.add_get("/gameserver", self._gameserver)
            app.router.add_get("/watch/gameserver", self._watch)
            for path in ("/ready", "/health", "/shutdown"):
                app.router.add_post(path, self._state)
            app.router.add_put("/metadata/annotation", self._annotation)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)
        return self

    def stop(self) -> None:
        self.closing = True  # ends the open watch streams, so the server can close
        if self.runner:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(15)
            self.runner = None


@dataclass(frozen=True)
class PodSettings:
    """How the demo runs a pod; the timings are the demo's, everything else the image's."""

    pod_python: Path          # the image's own programs (the WebUI image's Python venv)
    standin_python: Path      # the stand-in WebUI's own venv, as a framework has its own
    users_root: Path
    run_root: Path
    framework: str = "automatic1111"  # the stand-in speaks A1111's API
    step_seconds: float = 0.05
    activity_report_seconds: float = 5.0
    sync_seconds: float = 5.0
    # The session's end as the culler sees it, for the page's banner.
    idle_seconds: float = 1800.0
    max_session_seconds: float = 8 * 3600.0
    warn_seconds: float = 600.0


class Pod:
    """The processes of one game server's pod, each in its own process group."""

    def __init__(self, name: str, front_port: int, sdk_port: int, settings: PodSettings):
        self.name, self.front_port, self.sdk_port, self.s = name, front_port, sdk_port, settings
        self.dir = settings.run_root / name
        self.webui_port, self.supervisor_port = free_port(), free_port()
        self.processes: dict[str, subprocess.Popen] = {}

    def _env(self, **extra: str) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(REPO / "images" / "webui"),
                "AGONES_SDK_HTTP_PORT": str(self.sdk_port), **extra}

    def start(self) -> "Pod":
        scratch, logs = self.dir / "scratch", self.dir / "logs"
        models = self.dir / "models"  # the stand-in needs no model files
        for folder in (scratch, logs, models):
            folder.mkdir(parents=True, exist_ok=True)
        standin = (f"{self.s.standin_python} {REPO / 'tools' / 'demo' / 'standin_webui.py'} "
                   f"--port {{port}} --data-dir {{data_dir}} --step-seconds {self.s.step_seconds}")
        python = str(self.s.pod_python)
        programs = {
            # The WebUI container: the supervisor running the stand-in.
            "webui": ([python, "-m", "sdfleet_webui.supervisor"], self._env(
                SDFLEET_FRAMEWORK=self.s.framework, SDFLEET_WEBUI_COMMAND=standin,
                SDFLEET_WEBUI_PORT=str(self.webui_port),
                SDFLEET_SUPERVISOR_PORT=str(self.supervisor_port), SDFLEET_SCRATCH=str(scratch),
                SDFLEET_MODELS_ROOT=str(models), SDFLEET_AGONES="auto",
                SDFLEET_START_TIMEOUT_SECONDS="120")),
            # The trusted sidecar: the front on the game server's port and the user sync.
            "user-sync": ([python, "-m", "sdfleet_webui.trusted"], self._env(
                SDFLEET_FRONT_HOST="127.0.0.1", SDFLEET_FRONT_PORT=str(self.front_port),
                SDFLEET_FRONT_UPSTREAM=f"http://127.0.0.1:{self.webui_port}",
                SDFLEET_ACTIVITY_REPORT_SECONDS=str(self.s.activity_report_seconds),
                SDFLEET_USERS_ROOT=str(self.s.users_root), SDFLEET_SCRATCH=str(scratch),
                SDFLEET_SYNC_INTERVAL_SECONDS=str(self.s.sync_seconds),
                SDFLEET_IDLE_SECONDS=str(self.s.idle_seconds),
                SDFLEET_MAX_SESSION_SECONDS=str(self.s.max_session_seconds),
                SDFLEET_WARN_SECONDS=str(self.s.warn_seconds))),
        }
        for program, (argv, env) in programs.items():
            with open(logs / f"{program}.log", "ab") as log:
                self.processes[program] = subprocess.Popen(
                    argv, env=env, cwd=scratch, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
        return self

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every program's group (the user sync copies the person's files back on
        it), then SIGKILL what is left after ``grace``, as the kubelet does."""
        for proc in self.processes.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            _signal_group(proc, signal.SIGKILL)  # anything the program left in its group
        shutil.rmtree(self.dir, ignore_errors=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class FleetSettings:
    buffer: int
    max_replicas: int
    node_seconds: float   # a simulated GPU node coming up (the game server is Starting)
    pull_seconds: float   # a simulated image pull (Scheduled, before the pod's programs run)
    name: str = ""        # the fleet (one per profile); default: the emulator's
    # No GPU node ever comes: pods stay pending and the cluster autoscaler's event says why.
    no_capacity: bool = False


# What GKE's cluster autoscaler writes on a pod whose node pool cannot grow for lack of
# GPUs in the zone (a FailedScaleUp event, docs/decisions/2026-12-profiles.md).
STOCK_OUT_MESSAGE = ("Node scale up in zones us-central1-a associated with this pod failed: "
                     "GCE out of resources. Pod is at risk of not being scheduled.")


class FleetController:
    """Agones' fleet controller and the autoscaler, for the demo: one reconcile rule."""

    def __init__(self, emulator: AgonesEmulator, fleet: FleetSettings, pods: PodSettings,
                 loop: asyncio.AbstractEventLoop):
        self.emulator, self.fleet, self.pod_settings, self.loop = emulator, fleet, pods, loop
        self.pods: dict[str, tuple[Pod, SdkBridge]] = {}
        self.booting: dict[str, float] = {}  # name -> when its node was asked for
        self.stuck: set[str] = set()          # pending for lack of GPUs (no_capacity)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="demo-fleet")
        self.lock = threading.Lock()

    def start(self) -> "FleetController":
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopping.wait(0.3):
            try:
                self.reconcile(time.time())
            except Exception as exc:  # the demo goes on; the next pass tries again
                print(f"demo fleet: {type(exc).__name__}: {exc}", flush=True)

    @property
    def fleet_name(self) -> str:
        return self.fleet.name or self.emulator.fleet

    def reconcile(self, now: float) -> None:
        servers = {obj["metadata"]["name"]: obj for obj in self.emulator.game_servers()
                   if obj["metadata"]["labels"].get("agones.dev/fleet") == self.fleet_name}
        with self.lock:
            for name, (pod, bridge) in list(self.pods.items()):
                state = servers.get(name, {}).get("status", {}).get("state")
                if state is None or state in ("Shutdown", "Unhealthy"):
                    del self.pods[name]
                    threading.Thread(target=self._retire, args=(name, pod, bridge),
                                     daemon=True).start()
            for name, asked_at in list(self.booting.items()):
                if name not in servers:
                    del self.booting[name]
                elif self.fleet.no_capacity:
                    if now - asked_at >= self.fleet.node_seconds and name not in self.stuck:
                        self.stuck.add(name)
                        self.emulator.add_pod_event(name, "FailedScaleUp", STOCK_OUT_MESSAGE)
                elif now - asked_at >= self.fleet.node_seconds + self.fleet.pull_seconds:
                    del self.booting[name]
                    # the kubelet's event once the image is pulled and the container runs
                    self.emulator.add_pod_event(name, "Started", "Started container webui",
                                                type_="Normal", source="kubelet",
                                                field_path="spec.containers{webui}")
                    self._launch(name, servers[name])
                elif now - asked_at >= self.fleet.node_seconds:
                    if servers[name]["status"]["state"] == "Starting":
                        self.emulator.sdk_update(name, state="Scheduled")
                        # the scheduler's event once a (simulated) GPU node is there
                        self.emulator.add_pod_event(name, "Scheduled", "Successfully assigned "
                                                    f"{name} to a GPU node", type_="Normal",
                                                    source="default-scheduler")
            unallocated = sum(1 for name, obj in servers.items()
                              if obj["status"]["state"] not in ("Allocated", "Shutdown", "Unhealthy")
                              and (name in self.pods or name in self.booting))
            total = len(self.pods) + len(self.booting)
            while unallocated < self.fleet.buffer and total < self.fleet.max_replicas:
                self._ask_for_game_server(now)
                unallocated, total = unallocated + 1, total + 1

    def _ask_for_game_server(self, now: float) -> None:
        name = f"{self.fleet_name}-{secrets.token_hex(3)}"
        self.emulator.add_game_server(name, state="Starting", port=free_port(),
                                      fleet=self.fleet_name)
        self.booting[name] = now

    def _launch(self, name: str, obj: dict) -> None:
        bridge = SdkBridge(self.emulator, name, self.loop).start()
        pod = Pod(name, obj["status"]["ports"][0]["port"], bridge.port, self.pod_settings).start()
        self.pods[name] = (pod, bridge)

    def _retire(self, name: str, pod: Pod, bridge: SdkBridge) -> None:
        pod.stop()
        bridge.stop()
        self.emulator.remove(name)

    def all_pids(self) -> list[int]:
        with self.lock:
            return [pid for pod, _ in self.pods.values() for pid in pod.pids()]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        with self.lock:
            pods, self.pods = list(self.pods.items()), {}
        workers = [threading.Thread(target=self._retire, args=(name, pod, bridge))
                   for name, (pod, bridge) in pods]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
