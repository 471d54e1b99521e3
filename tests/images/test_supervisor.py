"""The supervisor as a real child process, supervising the stub WebUI."""

from __future__ import annotations

import time

import requests

from tests.images.supervisor_harness import TOKEN, SupervisorUnderTest, gone


def test_crashes_are_restarted_with_growing_backoff(tmp_path):
    plan = [{"crash_after": 0.3, "exit_code": 3}] * 3 + [{}]
    with SupervisorUnderTest(tmp_path, plan) as sup:
        info = sup.wait_for(lambda i: i["state"] == "ready" and i["restarts"] == 3, what="3 restarts")
        assert info["lastExitCode"] == 3 and "exited with code 3" in info["lastRestartReason"]
        delays = [e["delay"] for e in sup.events("webui-restart-scheduled")]
        assert delays == [0.3, 0.6, 1.2]
        starts = [e["ts"] for e in sup.events("webui-started")]
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert gaps[2] > gaps[0] + 0.5  # back-off really waited longer each time
        assert info["uptimeSeconds"] >= 0 and info["pid"]


def test_grandchild_holding_the_port_is_killed_and_the_port_freed(tmp_path):
    plan = [{"grandchild": True, "crash_after": 0.5}, {}]
    with SupervisorUnderTest(tmp_path, plan) as sup:
        info = sup.wait_for(lambda i: i["state"] == "ready" and i["restarts"] == 1, what="restart")
        grandchild = int(sup.plan.with_suffix(".grandchild").read_text())
        assert gone(grandchild), "the grandchild holding the port survived"
        # the new WebUI owns the port: it answered and is the supervisor's current child
        assert any(p == "/sdapi/v1/sd-models" and at > time.time() - 5 for at, _, p in sup.recorded())
        assert info["pid"] != grandchild


def test_hung_webui_is_restarted(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"hang_after": 0.5}, {}]) as sup:
        info = sup.wait_for(lambda i: i["restarts"] == 1 and i["state"] == "ready", what="hang restart")
        assert "stopped answering" in info["lastRestartReason"]
        assert info["lastExitCode"] is None  # it never exited: it was stopped


def test_slow_start_is_not_mistaken_for_a_hang(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"start_delay": 2.0}]) as sup:
        assert sup.info()["state"] == "starting"
        info = sup.wait_for(lambda i: i["state"] == "ready", what="slow start")
        assert info["restarts"] == 0


def test_sigterm_stops_the_whole_tree_even_a_webui_ignoring_sigterm(tmp_path):
    sup = SupervisorUnderTest(tmp_path, [{"ignore_sigterm": True}], SDFLEET_STOP_GRACE_SECONDS="0.5")
    with sup:
        pid = sup.wait_for(lambda i: i["state"] == "ready")["pid"]
    assert sup.process.proc.returncode == 0
    assert gone(pid)
    stopped = sup.events("webui-stopped")[-1]
    assert stopped["killed_hard"] == [pid]


def test_switch_needs_the_token_and_switches_framework(tmp_path):
    with SupervisorUnderTest(tmp_path, [{}]) as sup:
        sup.wait_for(lambda i: i["state"] == "ready")
        body = {"framework": "comfyui"}
        assert requests.post(sup.url + "/switch", json=body, timeout=5).status_code == 401
        wrong = requests.post(sup.url + "/switch", json=body, timeout=5,
                              headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
        assert wrong.status_code == 401 and sup.info()["framework"] == "automatic1111"
        auth = {"Authorization": "Bearer " + TOKEN}
        bad = requests.post(sup.url + "/switch", json={"framework": "invokeai"}, headers=auth, timeout=5)
        assert bad.status_code == 400 and "'invokeai'" in bad.json()["message"] \
            and "comfyui" in bad.json()["message"]
        ok = requests.post(sup.url + "/switch", json=body, headers=auth, timeout=5)
        assert ok.status_code == 202
        info = sup.wait_for(lambda i: i["framework"] == "comfyui" and i["state"] == "ready",
                            what="switch to comfyui")
        assert info["healthPath"] == "/system_stats"
        assert any(p == "/system_stats" for _, _, p in sup.recorded())
        assert TOKEN not in sup.full_log()
        sup.token_file.unlink()  # no secret mounted: switching is off, not open
        assert requests.post(sup.url + "/switch", json=body, headers=auth, timeout=5).status_code == 403


def test_logs_tail_is_bounded_and_validated(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"oom_line": True}], SDFLEET_LOG_LINES="50") as sup:
        sup.wait_for(lambda i: i["state"] == "ready")
        lines = requests.get(sup.url + "/logs?tail=2", timeout=5).text.splitlines()
        assert len(lines) == 2 and "OutOfMemoryError" in lines[-1]
        bad = requests.get(sup.url + "/logs?tail=51", timeout=5)
        assert bad.status_code == 400 and "tail='51'" in bad.json()["message"] and "1 to 50" in bad.json()["message"]
        assert (sup.scratch / "logs" / "webui.log").read_text().count("stub webui") == 1
        assert sup.info()["recentOomEvents"] == 1
