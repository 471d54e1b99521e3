"""The supervisor's decision rules, each one small pure function.

- ``restart_reason``     when the WebUI must be restarted (exited, never came up, hung)
- ``backoff_delay``      how long to wait before the next start
- ``should_give_up``     when restarting is pointless (too many restarts in a window)
- ``serving_state``      what the WebUI is: starting, loading-model (its API answers but it
                         has not yet made an image), ready (it made one), unresponsive
- ``should_mark_ready``  when to tell Agones "Ready": once the WebUI made an image, once per
                         pod, and never when the game server is already Ready or Allocated
                         (calling Ready on an Allocated game server would hand this
                         person's pod back to the pool)
- ``should_ping_health`` when to send Agones health pings: while the WebUI answers, and
                         for a grace period after it last did (restarts in progress); not
                         after giving up, so Agones marks the pod Unhealthy and replaces it
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    start_timeout: float = 900.0
    hang_timeout: float = 120.0
    backoff_base: float = 2.0
    backoff_max: float = 120.0
    backoff_reset: float = 300.0
    max_restarts: int = 10
    restart_window: float = 1800.0


@dataclass(frozen=True)
class Observation:
    now: float
    exit_code: int | None  # None while the process runs
    answering: bool
    started_at: float
    last_answer_at: float | None  # since this start


def restart_reason(obs: Observation, policy: RestartPolicy) -> str | None:
    if obs.exit_code is not None:
        return f"exited with code {obs.exit_code}"
    if obs.answering:
        return None
    if obs.last_answer_at is None:
        if obs.now - obs.started_at > policy.start_timeout:
            return f"API not answering {policy.start_timeout:g}s after start"
        return None
    if obs.now - obs.last_answer_at > policy.hang_timeout:
        return f"API stopped answering {obs.now - obs.last_answer_at:.0f}s ago"
    return None


def backoff_delay(consecutive_failures: int, policy: RestartPolicy) -> float:
    if consecutive_failures <= 0:
        return 0.0
    return min(policy.backoff_max, policy.backoff_base * 2 ** (consecutive_failures - 1))


def should_give_up(restart_times: list[float], now: float, policy: RestartPolicy) -> bool:
    if policy.max_restarts <= 0:
        return False
    recent = [t for t in restart_times if now - t <= policy.restart_window]
    return len(recent) > policy.max_restarts


def serving_state(answering: bool, generated: bool, previous: str) -> str:
    """Ready means the framework generated an image since this start (warmup.generate_once),
    not merely that its API answers: an API answers after a failed model load."""
    if answering:
        return "ready" if generated else "loading-model"
    return "unresponsive" if previous == "ready" else previous


def last_error_line(lines: list[str]) -> str | None:
    """The WebUI's own words for a failed start: its last line that reports an error."""
    for line in reversed(lines):
        lowered = line.lower()
        if any(word in lowered for word in ("error", "failed", "exception")):
            return line.strip()[:300]
    return None


PRE_READY_STATES = frozenset({"", "Creating", "Starting", "Scheduled", "RequestReady", "PortAllocation"})


def should_announce_loading(webui_running: bool, serving: bool, marked_ready: bool,
                            announced: bool) -> bool:
    """Tell Agones (and so the waiting page) "loading-model" once: the WebUI process runs,
    has not made its first image yet, and the game server was never marked Ready."""
    return webui_running and not serving and not marked_ready and not announced


def should_mark_ready(webui_serving: bool, already_marked: bool, gameserver_state: str) -> bool:
    return webui_serving and not already_marked and gameserver_state in PRE_READY_STATES


def should_ping_health(now: float, answering: bool, last_answer_at: float | None,
                       supervisor_started_at: float, gave_up: bool, grace: float,
                       start_timeout: float = 0.0) -> bool:
    """Ping Agones Health while the WebUI answers; before it ever answered, for as long as
    the first start may take (``start_timeout``: model loads take minutes, and the pod's
    startup probe allows the same budget, components/k8s/fleet.py); after it answered, for
    ``grace`` since it last did. Never after giving up."""
    if gave_up:
        return False
    if answering:
        return True
    if last_answer_at is None:
        return now - supervisor_started_at <= max(grace, start_timeout)
    return now - last_answer_at <= grace
