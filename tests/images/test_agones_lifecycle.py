"""The supervisor's Agones lifecycle against a stub SDK sidecar speaking the REST API."""

from __future__ import annotations

import time

import pytest
import requests

from tests.images.agones_sdk_stub import AgonesSdkStub
from tests.images.supervisor_harness import SupervisorUnderTest


@pytest.fixture
def sdk():
    stub = AgonesSdkStub()
    yield stub
    stub.close()


def agones_env(sdk, **extra):
    env = dict(AGONES_SDK_HTTP_PORT=str(sdk.port), SDFLEET_AGONES="auto",
               SDFLEET_AGONES_HEALTH_SECONDS="0.1", SDFLEET_AGONES_GRACE_SECONDS="1")
    env.update(extra)
    return env


def wait(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_ready_only_after_the_webui_made_an_image_and_only_once(tmp_path, sdk):
    with SupervisorUnderTest(tmp_path, [{"start_delay": 1.5, "generate_delay": 1.0}],
                             **agones_env(sdk)) as sup:
        wait(lambda: sdk.state == "Ready", what="Ready")
        generated = min(at for at, method, path in sup.recorded() if path == "/sdapi/v1/txt2img")
        ready_calls = sdk.times("POST", "/ready")
        # the generation took a second: Ready came after the image, not after the request
        assert len(ready_calls) == 1 and ready_calls[0] >= generated + 1.0
        assert sdk.times("POST", "/health")  # pinging
        sup.wait_for(lambda i: i["agones"]["markedReady"] is True, what="markedReady")


def test_a_restart_after_allocation_never_calls_ready_again(tmp_path, sdk):
    plan = [{"crash_after": 1.5}, {}]
    with SupervisorUnderTest(tmp_path, plan, **agones_env(sdk)) as sup:
        wait(lambda: sdk.state == "Ready", what="Ready")
        sdk.allocate({"sdfleet.dev/identity": "g-1234"})
        sup.wait_for(lambda i: i["restarts"] == 1 and i["state"] == "ready", what="restart")
        time.sleep(0.5)
        assert len(sdk.times("POST", "/ready")) == 1
        assert sdk.state == "Allocated"


def test_a_supervisor_restarted_in_an_allocated_pod_does_not_release_it(tmp_path, sdk):
    sdk.allocate({"sdfleet.dev/identity": "g-1234"})  # e.g. the container restarted
    with SupervisorUnderTest(tmp_path, [{}], **agones_env(sdk)) as sup:
        sup.wait_for(lambda i: i["agones"] and i["agones"]["markedReady"], what="ready decision")
        assert sdk.times("POST", "/ready") == [] and sdk.state == "Allocated"
        assert '"state": "Allocated"' in sup.full_log()


def test_health_pings_stop_once_the_webui_is_dead_past_the_grace_period(tmp_path, sdk):
    plan = [{"crash_after": 1.0}, {"start_delay": 60}]
    with SupervisorUnderTest(tmp_path, plan, SDFLEET_START_TIMEOUT_SECONDS="60",
                             **agones_env(sdk)) as sup:
        sup.wait_for(lambda i: i["restarts"] == 1, what="crash")
        last_answer = max(at for at, _, path in sup.recorded() if path == "/sdapi/v1/sd-models")
        time.sleep(2.5)
        pings = sdk.times("POST", "/health")
        assert any(last_answer < t <= last_answer + 1.0 for t in pings)  # within grace: still pinging
        assert not [t for t in pings if t > last_answer + 1.5]  # past grace: silent
        assert sup.info()["agones"]["pingingHealth"] is False
        assert sdk.state == "Ready"  # no Shutdown: Agones' health check decides


def test_giving_up_sends_shutdown(tmp_path, sdk):
    with SupervisorUnderTest(tmp_path, [{"crash_after": 0.2}], SDFLEET_MAX_RESTARTS="2",
                             SDFLEET_BACKOFF_SECONDS="0.1", **agones_env(sdk)) as sup:
        sup.wait_for(lambda i: i["state"] == "failed", what="give up")
        wait(lambda: sdk.state == "Shutdown", what="Shutdown")
        assert len(sdk.times("POST", "/shutdown")) == 1


def test_no_request_to_the_supervisor_can_shut_the_session_down(tmp_path, sdk):
    with SupervisorUnderTest(tmp_path, [{}], **agones_env(sdk)) as sup:
        wait(lambda: sdk.state == "Ready", what="Ready")
        assert requests.post(sup.url + "/shutdown", timeout=5).status_code == 405
        time.sleep(0.5)
        assert sdk.state == "Ready" and sdk.times("POST", "/shutdown") == []


def test_health_pings_last_through_a_first_start_longer_than_the_grace_period(tmp_path, sdk):
    """A model load may take most of the startup probe's budget; Agones
    health must not lapse while it runs (it used to stop ``grace`` after the start)."""
    with SupervisorUnderTest(tmp_path, [{"start_delay": 3.5}], SDFLEET_START_TIMEOUT_SECONDS="20",
                             **agones_env(sdk)) as sup:
        started = time.time()
        wait(lambda: sdk.state == "Ready", what="Ready")
        pings = sdk.times("POST", "/health")
        # grace is 1 s: pings between 1.5 s and 3 s after start exist only under the start budget
        assert [t for t in pings if started + 1.5 < t < started + 3.0], pings
        assert sup.info()["agones"]["pingingHealth"] is True


def test_loading_model_is_announced_before_ready_and_only_once(tmp_path, sdk):
    # The allocator tells people waiting for a pod that its WebUI is loading the model: the
    # supervisor says so through the SDK while the WebUI starts, before Ready.
    with SupervisorUnderTest(tmp_path, [{"start_delay": 1.5}], **agones_env(sdk)) as sup:
        wait(lambda: sdk.annotation("agones.dev/sdk-sdfleet-phase") == "loading-model",
             what="loading-model annotation")
        assert sdk.state == "Scheduled"  # announced while still starting
        wait(lambda: sdk.state == "Ready", what="Ready")
        sup.wait_for(lambda i: i["agones"]["markedReady"] is True, what="markedReady")
        wait(lambda: sdk.annotation("agones.dev/sdk-sdfleet-cold-start"), what="cold start")
        # two annotations: the phase once, before Ready; the cold start's steps, after it
        announced = sdk.times("PUT", "/metadata/annotation")
        ready = sdk.times("POST", "/ready")[0]
        assert len(announced) == 2 and announced[0] < ready <= announced[1]


def test_a_webui_whose_model_failed_to_load_is_never_marked_ready(tmp_path, sdk):
    """Its API answers (A1111 lists checkpoints after a failed load) but it cannot generate:
    no Ready, so nobody is sent to a WebUI that hangs on their first prompt; the supervisor
    restarts it and, with every start failing, gives up and shuts the game server down."""
    plan = [{"cannot_generate": True}]
    with SupervisorUnderTest(tmp_path, plan, SDFLEET_MAX_RESTARTS="2",
                             SDFLEET_RESTART_WINDOW_SECONDS="60", **agones_env(sdk)) as sup:
        info = sup.wait_for(lambda i: i["state"] == "failed", what="giving up")
        assert "cannot generate" in info["lastRestartReason"]
        wait(lambda: sdk.times("POST", "/shutdown"), what="Shutdown")
        assert sdk.times("POST", "/ready") == []
        assert sdk.annotation("agones.dev/sdk-sdfleet-phase") == "loading-model"


def test_agones_hears_ready_as_soon_as_the_webui_is_ready_not_at_the_next_tick(tmp_path, sdk):
    """Health ticks are seconds apart; a person on the waiting page should not wait for one."""
    env = agones_env(sdk, SDFLEET_AGONES_HEALTH_SECONDS="8")
    with SupervisorUnderTest(tmp_path, [{"start_delay": 1.0}], **env) as sup:
        wait(lambda: sdk.state == "Ready", timeout=30, what="Ready")
        became_ready = sup.events("webui-ready")[0]["ts"]
        assert sdk.times("POST", "/ready")[0] - became_ready < 1.0


def test_each_pod_records_its_cold_start_on_its_game_server(tmp_path, sdk):
    """From the game server's creation (node and image pull included) to the first image:
    every real deploy measures its own cold starts."""
    import json
    with SupervisorUnderTest(tmp_path, [{"start_delay": 0.5, "generate_delay": 0.5}],
                             **agones_env(sdk)) as sup:
        wait(lambda: sdk.annotation("agones.dev/sdk-sdfleet-cold-start"), what="cold start")
        steps = json.loads(sdk.annotation("agones.dev/sdk-sdfleet-cold-start"))
        order = ["gameServerCreated", "supervisorStarted", "webuiStarted", "apiAnswered", "firstImage"]
        assert list(steps) == order
        times = [steps[k] for k in order]
        assert times == sorted(times)
        assert steps["firstImage"] - steps["apiAnswered"] >= 0.5  # the warm-up image
        assert sup.info()["coldStart"]["firstImage"] == steps["firstImage"]
