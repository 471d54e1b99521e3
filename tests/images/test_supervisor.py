"""The supervisor as a real child process, supervising the stub WebUI."""

from __future__ import annotations

import subprocess
import sys
import time

import requests

from tests.images.conftest import child_env
from tests.images.supervisor_harness import SupervisorUnderTest, gone


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


def test_the_supervisor_api_only_reads_no_switch_no_shutdown(tmp_path):
    """No framework switching in a one-framework image, and no
    POST that a WebUI extension (same container, same user) could use to end a session."""
    with SupervisorUnderTest(tmp_path, [{}]) as sup:
        sup.wait_for(lambda i: i["state"] == "ready")
        for path, body in (("/switch", {"framework": "comfyui"}), ("/shutdown", {})):
            answer = requests.post(sup.url + path, json=body, timeout=5)
            assert answer.status_code == 405, (path, answer.status_code)
        time.sleep(0.3)
        info = sup.info()
        assert info["framework"] == "automatic1111" and info["state"] == "ready"
        assert "availableFrameworks" not in info
        assert not sup.events("framework-switch")


def test_one_oom_error_printed_over_many_lines_is_one_event(tmp_path):
    """Liveness counts OOM events; one error's traceback is one event."""
    with SupervisorUnderTest(tmp_path, [{"oom_traceback": True}]) as sup:
        sup.wait_for(lambda i: i["state"] == "ready")
        sup.wait_for(lambda i: "OutOfMemoryError" in requests.get(sup.url + "/logs?tail=50", timeout=5).text,
                     what="traceback logged")
        time.sleep(0.3)
        assert sup.info()["recentOomEvents"] == 1
        result = subprocess.run([sys.executable, "-m", "sdfleet_webui.probe", "liveness"],
                                env=child_env(SDFLEET_SUPERVISOR_PORT=str(sup.api_port)),
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout  # default limit 3 events


def test_logs_tail_is_bounded_and_validated(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"oom_line": True}], SDFLEET_LOG_LINES="50") as sup:
        sup.wait_for(lambda i: i["state"] == "ready")
        lines = requests.get(sup.url + "/logs?tail=2", timeout=5).text.splitlines()
        assert len(lines) == 2 and "OutOfMemoryError" in lines[-1]
        bad = requests.get(sup.url + "/logs?tail=51", timeout=5)
        assert bad.status_code == 400 and "tail='51'" in bad.json()["message"] and "1 to 50" in bad.json()["message"]
        assert (sup.scratch / "logs" / "webui.log").read_text().count("stub webui") == 1
        assert sup.info()["recentOomEvents"] == 1


def test_a_baked_image_uses_its_own_models_and_others_the_shared_store(tmp_path):
    """With no SDFLEET_MODELS_ROOT, the supervisor takes the baked models
    when their manifest is there (a fleet then needs no model store), else /models."""
    from sdfleet_webui.supervisor import SupervisorConfig
    baked = tmp_path / "baked"
    env = {"SDFLEET_BAKED_MODELS": str(baked)}
    assert str(SupervisorConfig.from_env(dict(env)).launch.models_root) == "/models"
    baked.mkdir()
    (baked / ".sdfleet-manifest.json").write_text('{"files": {}, "defaultCheckpoint": null}')
    assert SupervisorConfig.from_env(dict(env)).launch.models_root == baked
    chosen = SupervisorConfig.from_env(dict(env, SDFLEET_MODELS_ROOT="/models"))
    assert str(chosen.launch.models_root) == "/models"  # an explicit root wins


def test_ready_means_the_webui_made_an_image_not_that_its_api_answers(tmp_path):
    """A1111 answers /sdapi/v1/sd-models after "Stable diffusion model failed to load": the
    supervisor asks for one tiny image and calls the WebUI ready only when it came back."""
    with SupervisorUnderTest(tmp_path, [{"generate_delay": 1.5}]) as sup:
        loading = sup.wait_for(lambda i: i["state"] == "loading-model", what="loading-model")
        assert loading["answering"] is True and loading["generated"] is None
        info = sup.wait_for(lambda i: i["state"] == "ready", what="ready")
        assert info["generated"] is True and info["generateSeconds"] >= 1.5
        posts = [path for _, method, path in sup.recorded() if method == "POST"]
        assert posts == ["/sdapi/v1/txt2img"]  # once per start, not per health check
        assert sup.events("webui-generated")


def test_a_failed_model_load_is_a_failed_start_with_the_webuis_words(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"cannot_generate": True}, {}]) as sup:
        info = sup.wait_for(lambda i: i["restarts"] == 1 and i["state"] == "ready",
                            what="restart after the failed load")
        reason = info["lastRestartReason"]
        assert reason.startswith("cannot generate: HTTP 500") and "Can't load tokenizer" in reason
        assert "Stable diffusion model failed to load" in reason  # the WebUI's own log line
        failed = sup.events("webui-cannot-generate")
        assert failed and failed[0]["level"] == "error"


def test_comfyui_is_ready_after_a_prompt_made_an_image(tmp_path):
    """ComfyUI loads no checkpoint until a prompt needs it: the warm-up prompt loads the
    default checkpoint (named as ComfyUI names it, under its checkpoints folder)."""
    with SupervisorUnderTest(tmp_path, [{}], SDFLEET_FRAMEWORK="comfyui",
                             SDFLEET_DEFAULT_CHECKPOINT_PATH="Stable-diffusion/sd15/base.safetensors") as sup:
        sup.wait_for(lambda i: i["state"] == "ready", what="ready")
        calls = [(method, path) for _, method, path in sup.recorded() if method == "POST"
                 or path.startswith(("/history", "/view"))]
        assert calls[0] == ("POST", "/prompt")
        assert any(path.startswith("/history/") for _, path in calls)
        assert any(path.startswith("/view?") for _, path in calls)
        body = sup.request_bodies("/prompt")[0]
        assert body["prompt"]["1"]["inputs"]["ckpt_name"] == "sd15/base.safetensors"


def test_comfyui_whose_prompt_fails_is_restarted(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"cannot_generate": True}, {}],
                             SDFLEET_FRAMEWORK="comfyui") as sup:
        info = sup.wait_for(lambda i: i["restarts"] == 1 and i["state"] == "ready", what="restart")
        assert "execution error: Can't load tokenizer" in info["lastRestartReason"]


def test_ready_follows_the_warm_up_image_at_once_not_at_the_next_tick(tmp_path):
    """With the production interval (2 s), a starting WebUI is checked every 0.5 s and its
    warm-up image wakes the loop: no tick's wait is added to a person's wait."""
    with SupervisorUnderTest(tmp_path, [{}], SDFLEET_POLL_SECONDS="2.0") as sup:
        steps = sup.wait_for(lambda i: i["state"] == "ready", what="ready")["coldStart"]
        assert steps["firstImage"] - steps["apiAnswered"] < 0.5
        assert steps["apiAnswered"] - steps["webuiStarted"] < 1.5


def test_a_log_record_and_the_webuis_own_line_never_share_a_line(tmp_path):
    """The supervisor's records (stderr) and the WebUI's echoed output (stdout) go to one pod
    log: each line is written in one piece, so every record stays a JSON line of its own."""
    import json
    import threading

    from sdfleet_webui import logs

    out = tmp_path / "pod.log"
    with open(out, "w", buffering=1) as sink:
        def records():
            for i in range(300):
                logs.emit_line(json.dumps({"event": "e", "i": i}), sink)

        def echoes():
            for i in range(300):
                logs.emit_line(f"WebUI says {i}", sink)

        threads = [threading.Thread(target=records), threading.Thread(target=echoes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = out.read_text().splitlines()
    assert len(lines) == 600
    assert all(json.loads(line)["event"] == "e" for line in lines if line.startswith("{"))
