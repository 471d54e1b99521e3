"""`make demo`: the real data plane on one machine.

Real: the router (nginx + Lua, its verifier), Redis, the allocator and culler under
functions-framework, and in each pod the image's supervisor, trusted front and user sync.
Stood in: Google's sign-in and IAP (``iap.IapStandIn``: local keys, the same assertion),
the cluster (the Agones emulator plus ``cluster.FleetController``), the GPU node and image
pull (a few simulated seconds), Cloud Scheduler (a timer calling the culler with an OIDC
token) and Stable Diffusion (``standin_webui.py``).

Config: the stack file (``Pulumi.demo.yaml``) read by the same loader as ``make plan``, plus
the demo's own timings under ``sdfleet:demo`` (``DemoConfig``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from components.config import ConfigError, parse_stack_config
from components.config.budgets import budget_records
from components.gcp.functions import FUNCTIONS_ENV, profile_records
from testing.emulators.agones import AgonesEmulator
from testing.helpers.iap import IapKeyServer
from testing.helpers.servers import ManagedProcess, RedisServer, free_port
from testing.router.harness import router_env, start_router, start_verifier
from tools.demo.cluster import FleetController, FleetSettings, PodSettings
from tools.demo.iap import IapStandIn
from tools.preview import read_stack_config

REPO = Path(__file__).resolve().parents[2]
DEMO_KEY = "sdfleet:demo"
SCHEDULER_EMAIL = "demo-scheduler@sdfleet-demo.iam.gserviceaccount.com"
CULLER_AUDIENCE = "https://culler.demo.local/cull"


class DemoConfig(BaseModel):
    """``sdfleet:demo``: what only the demo needs; every other value is the stack's."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    accounts: Optional[list[str]] = Field(
        None, description="The accounts the sign-in page offers (default: the user: members).")
    idle_seconds: Optional[Annotated[int, Field(ge=10)]] = Field(
        None, description="Idle timeout (default: culling.idleMinutes).")
    max_session_seconds: Optional[Annotated[int, Field(ge=30)]] = Field(
        None, description="Longest session (default: culling.maxSessionHours).")
    orphan_grace_seconds: Optional[Annotated[int, Field(ge=5)]] = Field(
        None, description="Grace of an allocated pod without a mapping.")
    culler_seconds: Annotated[float, Field(ge=1, le=60)] = Field(
        10, description="How often the stand-in for Cloud Scheduler calls the culler.")
    node_seconds: Annotated[float, Field(ge=0, le=120)] = Field(
        3, description="Simulated time for a GPU node to come up.")
    pull_seconds: Annotated[float, Field(ge=0, le=120)] = Field(
        3, description="Simulated time to pull the WebUI image.")
    step_seconds: Annotated[float, Field(ge=0, le=5)] = Field(
        0.05, description="Time the stand-in WebUI takes per step (20 steps: about a second).")
    activity_report_seconds: Annotated[float, Field(ge=0.1, le=60)] = Field(
        5, description="How often a pod's front reports activity.")
    sync_seconds: Annotated[float, Field(ge=0.1, le=600)] = Field(
        5, description="How often a pod's user sync copies new files back.")
    max_replicas: Optional[Annotated[int, Field(ge=1, le=8)]] = Field(
        None, description="Most pods at once (default: fleet.maxReplicas, at most 8 here).")
    warn_seconds: Optional[Annotated[float, Field(ge=1)]] = Field(
        None, description="The session banner's lead time (default: culling.warnMinutes).")
    no_capacity: list[str] = Field(
        default_factory=list,
        description="Profiles whose GPU pool gets no node (a stock-out), to see that page.")


def load(stack: str, config_file: str | Path | None = None, overrides: dict | None = None):
    """(stack config, demo config); ConfigError names every bad key."""
    raw = read_stack_config(stack, config_file)
    stack_config = parse_stack_config(raw, stack=stack)
    if stack_config.platform.cloud != "gcp" or stack_config.platform.access is None:
        raise ConfigError([f"Pulumi.{stack}.yaml: the demo runs the GCP interactive platform "
                           "(cloud: gcp with access:); this stack is not one"])
    demo_raw = {**(raw.get(DEMO_KEY) or {}), **(overrides or {})}
    try:
        demo = DemoConfig.model_validate(demo_raw)
    except ValidationError as exc:
        raise ConfigError([f"{DEMO_KEY}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} "
                           f"(got {e.get('input')!r})" for e in exc.errors()]) from None
    return stack_config, demo


def demo_accounts(members: list[str], demo: DemoConfig) -> list[str]:
    accounts = demo.accounts or [m.split(":", 1)[1] for m in members if m.startswith("user:")]
    if not accounts:
        raise ConfigError([f"{DEMO_KEY}.accounts: missing, and access.members has no user: "
                           "member to offer on the sign-in page"])
    return accounts


def missing_installs() -> list[str]:
    """What `make demo` installs first; named, so running the module by hand says what to do."""
    needed = {REPO / ".venvs" / "webui" / "bin" / "python": "the WebUI image's venv (make webui-env)",
              REPO / ".venvs" / "demo-webui" / "bin" / "python": "the stand-in WebUI's venv (make demo-env)",
              Path(sys.executable).parent / "functions-framework": "functions-framework (make venv)"}
    missing = [f"{path}: {what}" for path, what in needed.items() if not path.exists()]
    for binary in ("nginx", "redis-server"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists() \
                and not Path(f"/usr/bin/{binary}").exists():
            missing.append(f"{binary}: a Debian package (make debian-packages)")
    return missing


class Demo:
    def __init__(self, stack: str = "demo", port: int | None = None,
                 state_dir: Path | None = None, config_file: str | Path | None = None,
                 overrides: dict | None = None):
        self.stack_config, self.demo = load(stack, config_file, overrides)
        platform = self.stack_config.platform
        self.platform = platform
        self.accounts = demo_accounts(platform.access.members, self.demo)
        self.port = port or free_port()
        self.state_dir = Path(state_dir or REPO / ".demo").resolve()
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                            name="demo-loop")
        self.started: list = []
        self.stop_event = threading.Event()
        self.profiles = platform.effective_profiles
        prefix = f"{platform.name_prefix}-webui"
        # The names the platform gives the fleets (components/k8s/fleet.py).
        self.fleet_names = {p.name: prefix if p.implicit else f"{prefix}-{p.name}"
                            for p in self.profiles}
        unknown = set(self.demo.no_capacity) - set(self.fleet_names)
        if unknown:
            raise ConfigError([f"{DEMO_KEY}.noCapacity: {sorted(unknown)} are not profiles: "
                               f"{', '.join(self.fleet_names)}"])

    # --- settings derived from the stack ------------------------------------------------
    @property
    def idle_seconds(self) -> int:
        return self.demo.idle_seconds or self.platform.culling.idle_minutes * 60

    def _function_env(self) -> dict[str, str]:
        culling = self.platform.culling
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO / "functions"), "THREADS": "8",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis.port),
            "REDIS_PASSWORD": self.redis.password, "REDIS_TLS": "false",
            "REDIS_PREFIX": "sdfleet:",
            "IAP_AUDIENCE": self.keys.audience, "IAP_CERTS_URL": self.keys.url,
            "K8S_API_URL": self.emulator.url, "K8S_TOKEN": self.emulator.token,
            "AGONES_NAMESPACE": self.emulator.namespace, "FLEET_NAME": self.fleet_names[
                next(p for p in self.profiles if p.default).name],
            "IDLE_TIMEOUT_SECONDS": str(self.idle_seconds),
            "MAX_SESSION_SECONDS": str(self.demo.max_session_seconds
                                       or culling.max_session_hours * 3600),
            "ORPHAN_GRACE_SECONDS": str(self.demo.orphan_grace_seconds
                                        or culling.orphan_grace_minutes * 60),
            "CULL_INVOKER_AUDIENCE": CULLER_AUDIENCE, "CULL_INVOKER_EMAILS": SCHEDULER_EMAIL,
            "OIDC_CERTS_URL": self.keys.url,
            "GPUS_PER_POD": repr(self.platform.fleet_pool.gpus_per_pod),
            **({} if self.profiles[0].implicit else {FUNCTIONS_ENV.PROFILES: json.dumps(
                profile_records(self.profiles, self.fleet_names, self.platform, "us-central1"))}),
            **({} if self.platform.budgets is None else {FUNCTIONS_ENV.BUDGETS: json.dumps(
                budget_records(self.platform.budgets))}),
            **({FUNCTIONS_ENV.ADMINS: json.dumps(list(self.platform.access.admins))}
               if self.platform.access.admins else {}),
        }

    def _function(self, name: str, target: str) -> ManagedProcess:
        port = free_port()
        process = ManagedProcess(
            [str(Path(sys.executable).parent / "functions-framework"), "--source",
             str(REPO / "functions" / name / "main.py"), "--target", target,
             "--host", "127.0.0.1", "--port", str(port)],
            port=port, env=self._function_env(), cwd=str(REPO), log_name=name)
        return self._keep(process.start(timeout=30))

    def _keep(self, thing):
        self.started.append(thing)
        return thing

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Demo":
        missing = missing_installs()
        if missing:
            raise RuntimeError("make demo needs, first:\n  " + "\n  ".join(missing))
        self.loop_thread.start()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        platform = self.platform
        (self.state_dir / "users").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.state_dir / "run", ignore_errors=True)
        self.redis = self._keep(RedisServer().start())
        self.keys = IapKeyServer()
        self.emulator = AgonesEmulator(token="demo-k8s-token", namespace=platform.fleet.namespace,
                                       fleet=f"{platform.name_prefix}-webui").start()
        self.allocator = self._function("allocator", "allocate")
        self.culler = self._function("culler", "cull")
        self.verifier = self._keep(start_verifier(self.keys.audience, self.keys.url))
        router_port = free_port()
        env = router_env(allocator_url=f"{self.allocator.url}/allocate", metadata_url="none",
                         redis_port=self.redis.port, redis_password=self.redis.password,
                         verifier_port=self.verifier.port, port=router_port,
                         workers=2, PUBLIC_SCHEME="http", ROUTE_CACHE_SECONDS="1",
                         RESTART_RECHECK_SECONDS="5",
                         CLIENT_MAX_BODY_SIZE=f"{platform.webui.max_upload_mb}m",
                         PROXY_READ_TIMEOUT=f"{platform.webui.request_timeout_seconds}s",
                         PROXY_SEND_TIMEOUT=f"{platform.webui.request_timeout_seconds}s")
        self.router = self._keep(start_router(env))
        self.iap = IapStandIn(self.keys, self.router.url, platform.access.members,
                              self.accounts, self.port).start(self.loop)
        pods = PodSettings(
            pod_python=REPO / ".venvs" / "webui" / "bin" / "python",
            standin_python=REPO / ".venvs" / "demo-webui" / "bin" / "python",
            users_root=self.state_dir / "users", run_root=self.state_dir / "run",
            step_seconds=self.demo.step_seconds,
            activity_report_seconds=self.demo.activity_report_seconds,
            sync_seconds=self.demo.sync_seconds, idle_seconds=self.idle_seconds,
            max_session_seconds=self.demo.max_session_seconds
            or platform.culling.max_session_hours * 3600,
            warn_seconds=self.demo.warn_seconds or platform.culling.warn_minutes * 60)
        self.fleets = [FleetController(self.emulator, FleetSettings(
            buffer=max(1, profile.warm),
            max_replicas=min(8, self.demo.max_replicas or profile.max_sessions),
            node_seconds=self.demo.node_seconds, pull_seconds=self.demo.pull_seconds,
            name=self.fleet_names[profile.name],
            no_capacity=profile.name in self.demo.no_capacity), pods, self.loop).start()
            for profile in self.profiles]
        self.fleet = self.fleets[0]
        self.scheduler = threading.Thread(target=self._schedule_culls, daemon=True,
                                          name="demo-scheduler")
        self.scheduler.start()

    def _schedule_culls(self) -> None:
        while not self.stop_event.wait(self.demo.culler_seconds):
            try:
                self.cull_now()
            except OSError as exc:  # a failed pass is the culler's to report; the next runs
                print(f"demo scheduler: the culler answered {exc}", flush=True)

    def cull_now(self) -> dict:
        """One culler pass now, called as Cloud Scheduler calls it (an OIDC token for the
        scheduler's account); the browser tests use it instead of waiting a minute."""
        token = self.keys.mint(sub="109876543210", email=SCHEDULER_EMAIL, audience=CULLER_AUDIENCE,
                               issuer="https://accounts.google.com", extra={"email_verified": True})
        request = urllib.request.Request(f"{self.culler.url}/cull", data=b"", method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"{}")

    def redis_client(self):
        """A client of the demo's Redis (tests and curious operators)."""
        import redis
        return redis.Redis(port=self.redis.port, password=self.redis.password,
                           decode_responses=True)

    def pids(self) -> list[int]:
        """Every process the demo started (for the test that nothing outlives it)."""
        own = [p.proc.pid for p in self.started if isinstance(p, ManagedProcess) and p.proc]
        return own + [pid for fleet in getattr(self, "fleets", []) for pid in fleet.all_pids()]

    def stop(self) -> None:
        self.stop_event.set()
        for fleet in getattr(self, "fleets", []):
            fleet.stop()
        if hasattr(self, "iap"):
            self.iap.stop(self.loop)
        for thing in reversed(self.started):
            thing.stop()
        self.started.clear()
        if hasattr(self, "emulator"):
            self.emulator.stop()
        if hasattr(self, "keys"):
            self.keys.close()
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.loop_thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
