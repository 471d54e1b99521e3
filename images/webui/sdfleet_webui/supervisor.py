"""The WebUI container's entrypoint (`python -m sdfleet_webui.supervisor`): run the framework,
keep it up, tell Agones about it. One monitor loop (``Supervisor.tick``) polls the WebUI's API every ``SDFLEET_POLL_SECONDS``
and applies the rules of ``policy``: restart with exponential back-off when the process
exits, never comes up or stops answering; stop whole process trees (``proctree``); give up
after too many restarts. This module is process supervision only; the Agones side (Ready,
Health, Shutdown, the loading phase) is ``agones_lifecycle.AgonesLifecycle``, a thread
that reads the supervisor's state and never changes it.

The local API (``supervisor_api``) listens on loopback ``:7861`` and only reads:
``GET /info``, ``GET /logs?tail=N``. One image runs one framework (no switching: another
framework is another fleet), and no call can end the session (see supervisor_api).
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import frameworks as fw
from . import settings as st
from .agones import AgonesSdk
from .agones_lifecycle import AgonesLifecycle
from .gpuwatch import GpuWatch
from .logbuffer import LogBuffer
from .logs import emit_line, log
from .manifest import MANIFEST_NAME, Manifest
from .metrics import WEBUI_GAVE_UP, WEBUI_READY, WEBUI_RESTART
from .modelview import model_view
from .policy import (
    Observation,
    RestartPolicy,
    backoff_delay,
    last_error_line,
    restart_reason,
    serving_state,
    should_give_up,
)
from .prefetch import Prefetched, prefetch
from .proctree import WebuiProcess, become_subreaper, reap_orphans, stop_tree, wait_port_free
from .signals import on_termination
from .warmup import Generated, generate_once

# How often a starting WebUI is checked: the check is a loopback GET, and every second of
# detection delay is a second someone waits.
STARTING_POLL_SECONDS = 0.5


@dataclass
class SupervisorConfig:
    framework: str
    launch: fw.LaunchSettings
    policy: RestartPolicy
    api_host: str = "127.0.0.1"
    api_port: int = 7861
    poll_seconds: float = 2.0
    check_timeout: float = 5.0
    stop_grace: float = 20.0
    log_lines: int = 2000
    log_file: Path | None = None
    log_file_bytes: int = 10 * 1024 * 1024
    log_files: int = 3
    oom_window: float = 300.0
    oom_event_gap: float = 10.0
    agones_port: int | None = None
    agones_health_seconds: float = 5.0
    agones_grace: float = 300.0
    gpu_busy_percent: float = 20.0
    gpu_window: float = 60.0
    prefetch_workers: int = 8
    extra_env: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "SupervisorConfig":
        """From the environment (names, defaults and limits: settings.SupervisorSettings)."""
        s = st.SupervisorSettings.from_env(env)
        models_root = s.models_root or default_models_root(s.baked_models)
        default_checkpoint = None
        if s.models_only is not None:
            # The profile offers some of the models: the framework sees only those.
            only = [n.strip() for n in s.models_only.split(",") if n.strip()]
            models_root, default_checkpoint, missing = model_view(
                models_root, only, s.scratch / "models-view")
            if missing:
                print(f"sdfleet: models of this profile not on the store yet: {', '.join(missing)}",
                      flush=True)
        launch = fw.LaunchSettings(
            frameworks_root=s.frameworks_root, models_root=models_root, scratch=s.scratch,
            port=s.webui_port, listen_host=s.listen_host,
            insecure_extension_access=s.insecure_extension_access,
            extra_args=tuple(shlex.split(s.cli_args)), command_override=s.webui_command,
            default_checkpoint=(s.default_checkpoint_path or default_checkpoint
                                or Manifest(models_root).default_checkpoint_path()))
        policy = RestartPolicy(
            start_timeout=s.start_timeout, hang_timeout=s.hang_timeout,
            backoff_base=s.backoff_base, backoff_max=s.backoff_max,
            backoff_reset=s.backoff_reset, max_restarts=s.max_restarts,
            restart_window=s.restart_window)
        return cls(
            framework=s.framework, launch=launch, policy=policy,
            api_host=s.api_host, api_port=s.api_port, poll_seconds=s.poll_seconds,
            check_timeout=s.check_timeout, stop_grace=s.stop_grace, log_lines=s.log_lines,
            log_file=s.scratch / "logs" / "webui.log", log_file_bytes=s.log_file_bytes,
            log_files=s.log_files, oom_window=s.oom_window, oom_event_gap=s.oom_event_gap,
            agones_port=s.agones_sdk_port, agones_health_seconds=s.agones_health_seconds,
            agones_grace=s.agones_grace, gpu_busy_percent=s.gpu_busy_percent,
            gpu_window=s.gpu_window, prefetch_workers=s.prefetch_workers)


def default_models_root(baked: Path) -> Path:
    """The image's baked models when it has them (their manifest is there), else the shared
    store at /models. A fleet of a baked image then needs no model store mount."""
    return baked if (baked / MANIFEST_NAME).is_file() else Path("/models")


class Supervisor:
    def __init__(self, config: SupervisorConfig):
        self.config = config
        self.framework = config.framework
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        # Wakes the monitor loop before its next tick: a warm-up image made, a stop asked.
        self.wake = threading.Event()
        # Set when the WebUI becomes ready: the Agones lifecycle tells Agones at once instead
        # of at its next Health tick (seconds a person would wait on the waiting page).
        self.became_ready = threading.Event()
        self.logs = LogBuffer(config.log_lines, config.log_file, config.log_file_bytes,
                              config.log_files, echo=emit_line,
                              oom_event_gap=config.oom_event_gap)
        self.started_at = time.time()
        self.proc: WebuiProcess | None = None
        self.state = "starting"
        self.restarts = 0
        self.consecutive_failures = 0
        self.restart_times: list[float] = []
        self.restart_at = 0.0
        self.last_exit_code: int | None = None
        self.last_restart_reason: str | None = None
        self.answering = False
        self.last_answer_at: float | None = None  # this start
        self.ever_answered_at: float | None = None  # whole pod life
        self.ready_since: float | None = None
        # The pod's first start, step by step (the cold start a person waits through).
        self.cold_start: dict[str, float] = {"supervisorStarted": round(self.started_at, 3)}
        # When the monitor loop last finished a tick: a loop stuck somewhere (a stop that
        # never returns, a deadlock) would leave every other field stale and "fine"; the
        # liveness probe fails on this instead (probe.liveness_verdict).
        self.last_tick_at = time.time()
        self.session = requests.Session()
        # The proof of this start that the framework generates (warmup.generate_once), made
        # on its own thread: a first model load takes minutes and the loop must go on.
        self.start_number = 0
        self.generated: Generated | None = None
        self.warmup_thread: threading.Thread | None = None
        self.prefetch_thread: threading.Thread | None = None
        self.prefetched: Prefetched | None = None
        self.lifecycle: AgonesLifecycle | None = None

    # --- the WebUI process -------------------------------------------------------------
    def start_webui(self) -> None:
        launch = self.config.launch
        fw.prepare(self.framework, launch)
        argv, cwd = fw.launch_command(self.framework, launch)
        env = dict(os.environ, **self.config.extra_env)
        with self.lock:
            self.proc = WebuiProcess(argv, cwd, env, self.logs.add)
            self.state, self.answering = "starting", False
            self.last_answer_at, self.ready_since = None, None
            self.start_number += 1
            self.generated, self.warmup_thread = None, None
            self.cold_start.setdefault("webuiStarted", round(time.time(), 3))
        log("webui-started", framework=self.framework, pid=self.proc.pid, argv=argv[:3])
        if self.prefetch_thread is None:
            self.start_prefetch()

    def start_prefetch(self) -> None:
        """Read the default checkpoint into the page cache while the framework imports, once
        per pod (later starts find it cached)."""
        launch = self.config.launch
        if not launch.default_checkpoint or self.config.prefetch_workers < 1:
            return
        path = Path(launch.models_root) / launch.default_checkpoint

        def progress(done: int, total: int) -> None:
            log("checkpoint-reading", path=str(path), gib=round(done / 2**30, 1),
                of_gib=round(total / 2**30, 1))

        def run() -> None:
            result = prefetch(path, self.config.prefetch_workers, progress=progress,
                              stop=self.stop_event)
            with self.lock:
                self.prefetched = result
                if result.error is None:
                    self.cold_start.setdefault("checkpointRead", round(time.time(), 3))
            log("checkpoint-read" if result.error is None else "checkpoint-not-read",
                level="info" if result.error is None else "warning", path=result.path,
                mib=round(result.bytes_read / 2**20), seconds=round(result.seconds, 2),
                mib_per_second=round(result.mib_per_second), error=result.error)

        self.prefetch_thread = threading.Thread(target=run, daemon=True, name="prefetch")
        self.prefetch_thread.start()

    def stop_webui(self, why: str) -> None:
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is None:
            return
        killed = stop_tree(proc, self.config.stop_grace)
        log("webui-stopped", framework=self.framework, pid=proc.pid, why=why, killed_hard=killed)
        if not wait_port_free(self.config.launch.port, timeout=5.0):
            log("port-still-held", level="error", port=self.config.launch.port,
                cause="something outside the supervisor's tree holds the WebUI port")

    def api_answers(self) -> bool:
        url = (f"http://127.0.0.1:{self.config.launch.port}"
               f"{fw.HEALTH_PATHS[self.framework]}")
        try:
            response = self.session.get(url, timeout=self.config.check_timeout)
            return response.status_code == 200
        except requests.RequestException:
            return False

    def start_warmup(self) -> None:
        """Ask the framework for one tiny image, once per start, on a thread."""
        number, framework, launch = self.start_number, self.framework, self.config.launch

        def run() -> None:
            with requests.Session() as http:
                result = generate_once(framework, f"http://127.0.0.1:{launch.port}",
                                       launch.default_checkpoint, self.config.policy.start_timeout,
                                       session=http)
            with self.lock:
                if number == self.start_number:
                    self.generated = result
            self.wake.set()   # Ready now, not at the next tick
            log("webui-generated" if result.ok else "webui-cannot-generate",
                level="info" if result.ok else "error", framework=framework,
                seconds=round(result.seconds, 2), detail=result.detail)

        self.warmup_thread = threading.Thread(target=run, daemon=True, name="warmup")
        self.warmup_thread.start()

    # --- the monitor loop ---------------------------------------------------------------
    def poll_interval(self) -> float:
        """Every STARTING_POLL_SECONDS while the WebUI starts (each one of them is part of a
        person's wait), the configured interval once it serves."""
        if self.state == "ready":
            return self.config.poll_seconds
        return min(self.config.poll_seconds, STARTING_POLL_SECONDS)

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def tick(self) -> None:
        now = time.time()
        if self.state in ("failed", "stopped"):
            return
        if self.state == "backoff":
            if now >= self.restart_at:
                self.start_webui()
            return
        proc = self.proc
        if proc is None:
            return
        reap_orphans(exclude=proc.pid)
        exit_code = proc.poll()
        answering = exit_code is None and self.api_answers()
        now = time.time()
        with self.lock:
            self.answering = answering
            if answering:
                self.last_answer_at = self.ever_answered_at = now
                self.cold_start.setdefault("apiAnswered", round(now, 3))
                if self.generated is None and self.warmup_thread is None:
                    self.start_warmup()
            generated = self.generated
            state = serving_state(answering, bool(generated and generated.ok), self.state)
            if state == "ready" and self.state != "ready":
                self.ready_since = now
                self.cold_start.setdefault("firstImage", round(now, 3))
                self.became_ready.set()
                log(WEBUI_READY, framework=self.framework, pid=proc.pid,
                    seconds_to_ready=round(now - proc.started_at, 2))
            self.state = state
            if state == "ready" and now - self.ready_since >= self.config.policy.backoff_reset:
                self.consecutive_failures = 0
        reason = restart_reason(Observation(now, exit_code, answering, proc.started_at,
                                            self.last_answer_at), self.config.policy)
        if reason is None and generated is not None and not generated.ok:
            said = last_error_line(self.logs.tail(200))
            reason = f"cannot generate: {generated.detail}" + (f" (WebUI: {said})" if said else "")
        if reason:
            self._restart(reason, exit_code)

    def _restart(self, reason: str, exit_code: int | None) -> None:
        log("webui-failed", level="warning", framework=self.framework, reason=reason)
        self.stop_webui(reason)
        now = time.time()
        with self.lock:
            self.last_exit_code = exit_code if exit_code is not None else self.last_exit_code
            self.last_restart_reason = reason
            self.restart_times.append(now)
            self.restarts += 1
            self.consecutive_failures += 1
            self.answering = False
            if should_give_up(self.restart_times, now, self.config.policy):
                self.state = "failed"
                log(WEBUI_GAVE_UP, level="error", framework=self.framework,
                    restarts=len(self.restart_times), window=self.config.policy.restart_window)
                return
            delay = backoff_delay(self.consecutive_failures, self.config.policy)
            self.state, self.restart_at = "backoff", now + delay
        log(WEBUI_RESTART, framework=self.framework, delay=delay,
            consecutive_failures=self.consecutive_failures)

    # --- status -------------------------------------------------------------------------
    def info(self) -> dict:
        now = time.time()
        with self.lock:
            proc = self.proc
            return {
                "framework": self.framework,
                "state": self.state,
                "pid": proc.pid if proc else None,
                "uptimeSeconds": round(now - proc.started_at, 3) if proc else None,
                "supervisorUptimeSeconds": round(now - self.started_at, 3),
                "restarts": self.restarts,
                "lastExitCode": self.last_exit_code,
                "lastRestartReason": self.last_restart_reason,
                "answering": self.answering,
                "generated": self.generated.ok if self.generated else None,
                "generateSeconds": round(self.generated.seconds, 2) if self.generated else None,
                "readySince": self.ready_since,
                "coldStart": dict(self.cold_start),
                "lastAnswerAt": self.last_answer_at,
                "recentOomEvents": self.logs.ooms_since(now - self.config.oom_window),
                "oomWindowSeconds": self.config.oom_window,
                "webuiPort": self.config.launch.port,
                "healthPath": fw.HEALTH_PATHS[self.framework],
                "agones": self.lifecycle.status() if self.lifecycle else None,
                "lastTickAt": self.last_tick_at,
                "monitorStalledSeconds": round(max(0.0, now - self.last_tick_at), 3),
            }

    def run(self) -> None:
        if not become_subreaper():
            log("subreaper-unavailable", level="warning",
                cause="orphaned grandchildren may escape process-tree cleanup")
        from .supervisor_api import serve
        server = serve(self)
        if self.config.agones_port is not None:
            self.lifecycle = AgonesLifecycle(self, AgonesSdk(self.config.agones_port),
                                             GpuWatch(self.config.gpu_busy_percent,
                                                      self.config.gpu_window))
            self.lifecycle.start()
        self.start_webui()
        try:
            while not self.stop_event.is_set():
                self.tick()
                self.last_tick_at = time.time()
                self.wake.wait(self.poll_interval())
                self.wake.clear()
        finally:
            with self.lock:
                self.state = "stopped"
            self.stop_webui("supervisor stopping")
            server.shutdown()
            log("supervisor-stopped")


def main() -> int:
    try:
        config = SupervisorConfig.from_env()
    except st.SettingError as exc:
        log("config-error", level="error", cause=str(exc))
        return 2
    supervisor = Supervisor(config)

    def on_signal(name: str) -> None:
        log("signal", signal=name)
        supervisor.stop()

    on_termination(on_signal)
    log("supervisor-starting", framework=config.framework, api=f"{config.api_host}:{config.api_port}",
        agones=config.agones_port is not None)
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
