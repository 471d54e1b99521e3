"""The pod's Agones lifecycle, driven by the supervisor's state (read-only).

Ready once the WebUI made its first image (the supervisor's "ready"; once per pod, never after the game server is past Ready:
Ready on an Allocated game server would release it); Health pings during the first start
(for as long as it may take, ``SDFLEET_START_TIMEOUT_SECONDS``, the budget the pod's startup
probe allows too), while the WebUI answers, and for a grace period after it last did;
Shutdown when the supervisor gives up. The rules are in ``policy``; this thread only applies
them through the SDK sidecar (``agones.AgonesSdk``). Process supervision (starting,
restarting, stopping the WebUI) is ``supervisor``'s job, not this module's.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

from .agones import COLD_START_KEY, GPU_ACTIVITY_KEY, PHASE_KEY, AgonesSdk, AgonesUnavailable, state_of
from .logs import log
from .policy import should_announce_loading, should_mark_ready, should_ping_health

if TYPE_CHECKING:
    from .supervisor import Supervisor


class AgonesLifecycle(threading.Thread):
    """Ready / Health / Shutdown through the SDK sidecar, driven by the supervisor's state."""

    # A busy GPU is reported at most this often (the culler's idle timeout is minutes).
    GPU_REPORT_SECONDS = 30.0

    def __init__(self, supervisor: Supervisor, sdk: AgonesSdk, gpu=None):
        super().__init__(daemon=True, name="agones-lifecycle")
        self.supervisor, self.sdk, self.gpu = supervisor, sdk, gpu
        self.gpu_reported_at: float | None = None
        self.marked_ready = False
        self.shutdown_sent = False
        self.loading_announced = False
        self.pinging = False
        self.last_ping_at: float | None = None

    def status(self) -> dict:
        return {"markedReady": self.marked_ready, "pingingHealth": self.pinging,
                "lastHealthPingAt": self.last_ping_at, "shutdownSent": self.shutdown_sent}

    def step(self) -> None:
        s = self.supervisor
        now = time.time()
        with s.lock:
            answering, gave_up = s.answering, s.state == "failed"
            serving = s.state == "ready"
            webui_running = s.proc is not None
            ever_answered_at = s.ever_answered_at
        if gave_up and not self.shutdown_sent:
            self.sdk.shutdown()
            self.shutdown_sent = True
            log("agones-shutdown", reason="gave up restarting")
        if should_announce_loading(webui_running, serving, self.marked_ready,
                                   self.loading_announced):
            self.sdk.set_annotation(PHASE_KEY, "loading-model")
            self.loading_announced = True
            log("agones-phase", phase="loading-model")
        if serving and not self.marked_ready:
            gameserver = self.sdk.gameserver()
            gs_state = state_of(gameserver)
            if should_mark_ready(serving, self.marked_ready, gs_state):
                self.sdk.ready()
                log("agones-ready", previous_state=gs_state)
                self._report_cold_start(gameserver)
            else:
                log("agones-ready-skipped", state=gs_state,
                    cause="game server already past Ready; calling Ready would release it")
            self.marked_ready = True
        self.report_gpu(now)
        self.pinging = should_ping_health(now, answering, ever_answered_at, s.started_at,
                                          gave_up or self.shutdown_sent, s.config.agones_grace,
                                          s.config.policy.start_timeout)
        if self.pinging:
            self.sdk.health()
            self.last_ping_at = now

    def report_gpu(self, now: float) -> bool:
        """Sample the GPU; while it is busy, tell Agones (at most every GPU_REPORT_SECONDS)."""
        if self.gpu is None or self.gpu.sample() is None or not self.gpu.busy():
            return False
        if self.gpu_reported_at is not None and now - self.gpu_reported_at < self.GPU_REPORT_SECONDS:
            return False
        self.sdk.set_annotation(GPU_ACTIVITY_KEY, str(int(now)))
        self.gpu_reported_at = now
        return True

    def _report_cold_start(self, gameserver: dict) -> None:
        """The first start's steps, from the game server's creation (which includes waiting
        for a node and pulling the image) to the first image, on the game server."""
        with self.supervisor.lock:
            steps = dict(self.supervisor.cold_start)
        created = (gameserver.get("object_meta") or {}).get("creation_timestamp")
        try:
            steps = {"gameServerCreated": float(created), **steps}
        except (TypeError, ValueError):
            pass
        self.sdk.set_annotation(COLD_START_KEY, json.dumps(steps, separators=(",", ":")))
        first = steps.get("gameServerCreated", steps["supervisorStarted"])
        log("cold-start", seconds_to_first_image=round(steps.get("firstImage", first) - first, 2),
            steps=steps)

    def run(self) -> None:
        s = self.supervisor
        while not s.stop_event.is_set():
            try:
                self.step()
            except AgonesUnavailable as exc:
                log("agones-unavailable", level="warning", cause=str(exc))
            # the next Health tick, or at once when the WebUI became ready
            if s.became_ready.wait(s.config.agones_health_seconds):
                s.became_ready.clear()
