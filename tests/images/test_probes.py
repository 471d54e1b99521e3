"""The exec probes, run as real commands against the real supervisor and stub WebUI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from tests.images.conftest import child_env
from tests.images.supervisor_harness import SupervisorUnderTest


def probe(kind: str, sup: SupervisorUnderTest, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdfleet_webui.probe", kind], capture_output=True,
                          text=True, timeout=30,
                          env=child_env(SDFLEET_SUPERVISOR_PORT=str(sup.api_port),
                                        SDFLEET_WEBUI_PORT=str(sup.webui_port), **env))


def test_startup_and_readiness_follow_the_webui_and_only_read(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"start_delay": 1.5}]) as sup:
        early = probe("startup", sup)
        assert early.returncode == 1 and "starting" in early.stdout
        sup.wait_for(lambda i: i["state"] == "ready")
        logs_before = requests.get(sup.url + "/logs?tail=100", timeout=5).text
        requests_before = len(sup.recorded())
        for kind in ("startup", "readiness", "liveness"):
            result = probe(kind, sup)
            assert result.returncode == 0, result.stdout + result.stderr
        probe_requests = sup.recorded()[requests_before:]
        # only GETs of the health path (the supervisor's own polls are GETs of it too)
        assert probe_requests and {(m, p) for _, m, p in probe_requests} == {("GET", "/sdapi/v1/sd-models")}
        assert requests.get(sup.url + "/logs?tail=100", timeout=5).text.startswith(logs_before.rstrip("\n"))


def test_liveness_survives_one_transient_oom_and_judges_the_present(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"oom_line": True}], SDFLEET_OOM_WINDOW_SECONDS="6") as sup:
        sup.wait_for(lambda i: i["state"] == "ready" and i["recentOomEvents"] == 1)
        seen_at = time.monotonic()
        strict = probe("liveness", sup, SDFLEET_LIVENESS_OOM_LIMIT="1")
        assert strict.returncode == 1 and "out-of-memory" in strict.stdout
        assert probe("liveness", sup).returncode == 0  # one OOM: default limit 3
        # the OOM ages out of the window: the same strict probe passes again
        time.sleep(max(0.0, 6.2 - (time.monotonic() - seen_at)))
        assert probe("liveness", sup, SDFLEET_LIVENESS_OOM_LIMIT="1").returncode == 0
        assert probe("readiness", sup).returncode == 0


def test_liveness_fails_when_the_supervisor_gave_up_or_is_gone(tmp_path):
    sup = SupervisorUnderTest(tmp_path, [{"crash_after": 0.1}], SDFLEET_MAX_RESTARTS="1",
                              SDFLEET_BACKOFF_SECONDS="0.05")
    with sup:
        sup.wait_for(lambda i: i["state"] == "failed", what="give up")
        result = probe("liveness", sup)
        assert result.returncode == 1 and "gave up" in result.stdout
        assert probe("readiness", sup).returncode == 1
    gone = probe("liveness", sup)
    assert gone.returncode == 1 and "supervisor not answering" in gone.stdout


def test_liveness_fails_while_the_monitor_loop_is_stuck(tmp_path):
    """The supervisor's API answers, but its monitor loop is stuck (here: stopping a hung WebUI
    that ignores SIGTERM, with a long grace). Nothing would notice a hung WebUI then, and the
    Fleet's Agones health check cannot run beside this probe, so liveness must fail."""
    sup = SupervisorUnderTest(tmp_path, [{"hang_after": 0.3, "ignore_sigterm": True}],
                              SDFLEET_STOP_GRACE_SECONDS="20")
    with sup:
        pid = sup.wait_for(lambda i: i["state"] == "ready", what="ready")["pid"]
        sup.wait_for(lambda i: i["monitorStalledSeconds"] > 3, what="the loop stuck in the stop")
        stuck = probe("liveness", sup, SDFLEET_LIVENESS_STALL_SECONDS="2")
        assert stuck.returncode == 1 and "monitor loop has not run" in stuck.stdout
        assert probe("liveness", sup).returncode == 0   # the default limit is far longer
        os.kill(pid, signal.SIGKILL)   # end the stop the loop is stuck in (the stub we started)
        sup.wait_for(lambda i: i["monitorStalledSeconds"] < 1, what="the loop running again")
