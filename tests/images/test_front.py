"""The trusted front (images/webui/sdfleet_webui/front.py) on loopback: real HTTP,
WebSocket and SSE through it to a real aiohttp WebUI stand-in; the allocation comes from the
Agones SDK REST stub (tests/images/agones_sdk_stub.py)."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time

import pytest
import requests
import websockets.sync.client as ws_client

from testing.helpers.servers import free_port
from tests.images.agones_sdk_stub import AgonesSdkStub
from tests.images.front_harness import Backend, FrontUnderTest

ALICE, BOB = "g-111", "g-222"


def as_person(identity: str, **headers) -> dict:
    return {"X-Sdfleet-Identity": identity, **headers}


@pytest.fixture
def pod():
    """One allocated-to-Alice pod: SDK stub, WebUI stand-in, front on a shared address."""
    sdk, backend = AgonesSdkStub(), Backend("alice-webui").start()
    sdk.allocate({"sdfleet.dev/identity": ALICE})
    front = FrontUnderTest(free_port(), backend.port, sdk.port).start()
    yield sdk, backend, front
    front.stop()
    backend.stop()
    sdk.close()


def test_a_reused_pod_address_never_shows_one_person_another_persons_webui():
    """Alice's pod dies; Bob's pod comes up on the same address; Alice's next request
    (a stale route in the router) gets 421, never Bob's WebUI."""
    address = free_port()
    sdk_a, webui_a = AgonesSdkStub(), Backend("alice-webui").start()
    sdk_a.allocate({"sdfleet.dev/identity": ALICE})
    with FrontUnderTest(address, webui_a.port, sdk_a.port) as front:
        r = requests.get(front.url + "/", headers=as_person(ALICE), timeout=5)
        assert r.status_code == 200 and r.json()["backend"] == "alice-webui"
    webui_a.stop()
    sdk_a.close()

    sdk_b, webui_b = AgonesSdkStub(), Backend("bob-webui").start()
    sdk_b.allocate({"sdfleet.dev/identity": BOB})
    try:
        with FrontUnderTest(address, webui_b.port, sdk_b.port) as front:
            stale = requests.get(front.url + "/file=outputs/img.png", headers=as_person(ALICE), timeout=5)
            assert stale.status_code == 421
            assert "bob-webui" not in stale.text
            assert webui_b.requests == []  # Bob's WebUI never even saw Alice's request
            with pytest.raises(Exception):
                ws_client.connect(f"ws://127.0.0.1:{address}/ws",
                                  additional_headers=as_person(ALICE), open_timeout=5)
            assert webui_b.requests == []
            own = requests.get(front.url + "/", headers=as_person(BOB), timeout=5)
            assert own.status_code == 200 and own.json()["backend"] == "bob-webui"
    finally:
        webui_b.stop()
        sdk_b.close()


def test_before_allocation_everyone_gets_421_and_a_request_racing_the_allocation_waits():
    sdk, backend = AgonesSdkStub(), Backend("webui").start()
    try:
        with FrontUnderTest(free_port(), backend.port, sdk.port, allocation_wait=0.6) as front:
            r = requests.get(front.url + "/", headers=as_person(ALICE), timeout=5)
            assert r.status_code == 421 and backend.requests == []
            # the router got the allocator's answer a moment before the SDK saw the label
            threading.Timer(0.2, lambda: sdk.allocate({"sdfleet.dev/identity": ALICE})).start()
            r = requests.get(front.url + "/", headers=as_person(ALICE), timeout=5)
            assert r.status_code == 200 and r.json()["backend"] == "webui"
    finally:
        backend.stop()
        sdk.close()


def test_a_request_that_did_not_come_through_the_router_is_refused(pod):
    _, backend, front = pod
    r = requests.get(front.url + "/", timeout=5)
    assert r.status_code == 403 and backend.requests == []


def test_a_changed_identity_label_closes_the_pod_to_everyone(pod):
    sdk, backend, front = pod
    assert requests.get(front.url + "/", headers=as_person(ALICE), timeout=5).status_code == 200
    sdk.allocate({"sdfleet.dev/identity": BOB})
    deadline = time.monotonic() + 5
    while front.front.allocation.closed_reason is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for person in (ALICE, BOB):
        assert requests.get(front.url + "/", headers=as_person(person), timeout=5).status_code == 421


def test_http_passes_unchanged_host_with_its_port_and_query(pod):
    _, _, front = pod
    r = requests.post(front.url + "/api/predict?x=1&y=2", data=b"abc",
                      headers=as_person(ALICE, Host="sd.example.com:8443", Cookie="a=b"), timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["path"] == "/api/predict?x=1&y=2"
    assert body["headers"]["Host"] == "sd.example.com:8443"
    assert body["headers"]["Cookie"] == "a=b" and body["body_bytes"] == 3


def test_the_front_adds_no_headers_of_its_own(pod):
    _, _, front = pod
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    conn.putrequest("GET", "/plain", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", "pod.local")
    conn.putheader("X-Sdfleet-Identity", ALICE)
    conn.endheaders()
    seen = json.loads(conn.getresponse().read())["headers"]
    conn.close()
    assert "Accept-Encoding" not in seen and "User-Agent" not in seen, seen


def test_websocket_passes_text_binary_and_subprotocol(pod):
    _, _, front = pod
    with ws_client.connect(f"ws://127.0.0.1:{front.port}/ws", additional_headers=as_person(ALICE),
                           subprotocols=["gradio"], open_timeout=5) as ws:
        assert ws.subprotocol == "gradio"
        ws.send("hello")
        assert ws.recv(timeout=5) == "alice-webui: hello"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=5) == b"\x03\x02\x01"
        big = "x" * 300_000
        ws.send(big)
        assert ws.recv(timeout=5) == "alice-webui: " + big


def test_sse_events_arrive_as_they_are_sent_not_at_the_end(pod):
    _, backend, front = pod
    backend.sse_interval = 0.4
    started = time.monotonic()
    arrivals = []
    with requests.get(front.url + "/sse?events=4", headers=as_person(ALICE), stream=True,
                      timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith(b"data:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    assert arrivals[0] < 0.35, f"first event held back by the front: {arrivals}"
    assert arrivals[-1] - arrivals[0] > 0.9  # spread like the stream, not one burst


def test_a_200_mb_upload_streams_through_without_being_held(pod):
    """The body must reach the WebUI while the client is still sending: the client waits,
    half-way, until the WebUI has seen bytes; a front that buffers whole bodies deadlocks."""
    _, backend, front = pod
    size, chunk = 200 * 1024 * 1024, b"\x5a" * (1024 * 1024)
    digest = hashlib.sha256()

    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=120)
    conn.putrequest("POST", "/upload")
    for name, value in as_person(ALICE, **{"Content-Length": str(size)}).items():
        conn.putheader(name, value)
    conn.endheaders()
    for i in range(size // len(chunk)):
        if i == 100:
            deadline = time.monotonic() + 15
            while backend.upload_received == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert backend.upload_received > 0, "WebUI saw nothing after 100 MB were sent"
        digest.update(chunk)
        conn.send(chunk)
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"backend": "alice-webui", "bytes": size,
                                           "sha256": digest.hexdigest()}
    conn.close()


def test_a_webui_that_is_down_gives_503_with_retry_after_not_a_reset():
    sdk = AgonesSdkStub()
    sdk.allocate({"sdfleet.dev/identity": ALICE})
    try:
        with FrontUnderTest(free_port(), free_port(), sdk.port) as front:
            r = requests.get(front.url + "/", headers=as_person(ALICE, Accept="text/html"), timeout=5)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5"
            assert "restarting" in r.text
    finally:
        sdk.close()


def activity_reports(sdk: AgonesSdkStub) -> list[float]:
    return sdk.times("PUT", "/metadata/annotation")


def test_a_long_websocket_carrying_traffic_keeps_reporting_activity_and_an_idle_one_does_not(pod):
    """Throttle 0.2 s stands for 30 s: 3 s of traffic is a 7.5-minute generation."""
    sdk, _, front = pod
    with ws_client.connect(f"ws://127.0.0.1:{front.port}/ws", additional_headers=as_person(ALICE),
                           open_timeout=5) as ws:
        time.sleep(0.5)
        start = time.time()
        before = len(activity_reports(sdk))
        while time.time() - start < 3.0:  # progress messages, as a long generation sends
            ws.send("progress")
            ws.recv(timeout=5)
            time.sleep(0.05)
        during = [t for t in activity_reports(sdk) if t >= start]
        # once per throttle period while it carries traffic (0.2 s throttle over 3 s)
        assert len(during) >= 8, f"only {len(during)} reports in 3 s of traffic"
        gaps = [b - a for a, b in zip(during, during[1:])]
        assert min(gaps) >= 0.19, f"throttle not respected: {gaps}"
        value = int(sdk.annotation("agones.dev/sdk-last-activity"))
        assert abs(value - time.time()) < 2
        # the same connection, open and silent: nothing new to report
        time.sleep(0.5)
        idle_from = len(activity_reports(sdk))
        time.sleep(2.0)
        assert len(activity_reports(sdk)) == idle_from, "an idle open WebSocket reported activity"
    assert before >= 1  # the upgrade itself counted once


def test_an_sse_stream_reports_while_it_carries_events(pod):
    sdk, backend, front = pod
    backend.sse_interval = 0.1
    time.sleep(0.5)
    start = time.time()
    with requests.get(front.url + "/sse?events=25", headers=as_person(ALICE), stream=True,
                      timeout=10) as r:
        for _ in r.iter_lines():
            pass
    during = [t for t in activity_reports(sdk) if t >= start]
    assert len(during) >= 8, f"only {len(during)} activity reports over a 2.5 s stream"


def test_refused_requests_are_not_activity(pod):
    sdk, _, front = pod
    time.sleep(0.5)
    count = len(activity_reports(sdk))
    for _ in range(10):
        requests.get(front.url + "/", headers=as_person(BOB), timeout=5)
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(activity_reports(sdk)) == count


def test_the_trusted_sidecar_program_serves_the_front_and_syncs_then_stops_on_sigterm(tmp_path):
    """`python -m sdfleet_webui.trusted`, as the user-sync container runs it."""
    import signal
    import subprocess
    import sys

    from tests.images.conftest import child_env

    sdk, backend = AgonesSdkStub(), Backend("alice-webui").start()
    sdk.allocate({"sdfleet.dev/identity": ALICE})
    port, users, scratch = free_port(), tmp_path / "users", tmp_path / "scratch"
    users.mkdir()
    env = child_env(AGONES_SDK_HTTP_PORT=str(sdk.port), SDFLEET_FRONT_HOST="127.0.0.1",
                    SDFLEET_FRONT_PORT=str(port), SDFLEET_FRONT_UPSTREAM=f"http://127.0.0.1:{backend.port}",
                    SDFLEET_USERS_ROOT=str(users), SDFLEET_SCRATCH=str(scratch),
                    SDFLEET_SYNC_INTERVAL_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "sdfleet_webui.trusted"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/", headers=as_person(ALICE), timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer is not None and answer.json()["backend"] == "alice-webui"
        assert requests.get(f"http://127.0.0.1:{port}/", headers=as_person(BOB), timeout=5).status_code == 421
        (scratch / "home" / "comfyui").mkdir(parents=True, exist_ok=True)
        (scratch / "home" / "comfyui" / "new.png").write_bytes(b"png")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, output
        assert (users / ALICE / "comfyui" / "new.png").read_bytes() == b"png"  # final sync ran
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        backend.stop()
        sdk.close()


def test_the_front_refuses_an_upstream_that_is_not_loopback():
    import subprocess
    import sys

    from tests.images.conftest import child_env
    result = subprocess.run([sys.executable, "-m", "sdfleet_webui.trusted"],
                            env=child_env(SDFLEET_FRONT_UPSTREAM="http://10.0.0.5:7870"),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "SDFLEET_FRONT_UPSTREAM='http://10.0.0.5:7870'" in result.stderr and "loopback" in result.stderr


@pytest.mark.parametrize("how", ["delete", "remove"])
def test_a_deleted_game_server_sends_its_person_back_to_the_router(how):
    """Culled or switched away: the pod may run for its termination grace period, but the
    person's requests get 421 (the router's "gone" path: a new pod) instead of the old WebUI."""
    sdk, backend = AgonesSdkStub(), Backend("alice-webui").start()
    sdk.allocate({"sdfleet.dev/identity": ALICE})
    front = FrontUnderTest(free_port(), backend.port, sdk.port).start()
    try:
        assert requests.get(front.url + "/x", headers=as_person(ALICE)).status_code == 200
        getattr(sdk, how)()
        deadline = time.monotonic() + 5
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = requests.get(front.url + "/x", headers=as_person(ALICE)).status_code
            time.sleep(0.05)
        assert status == 421
    finally:
        front.stop()
        backend.stop()
        sdk.close()
