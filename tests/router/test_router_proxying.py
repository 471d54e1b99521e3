"""What the router carries: WebSocket, server-sent events, large uploads (Gradio uses all)."""

import hashlib
import http.client
import os
import time

import pytest
from websockets.sync.client import connect

from testing.router.resp import Resp
from tests.router.client import request
from tests.router.conftest import Platform

ALICE = "accounts.google.com:100000000000000000001"
ALICE_ID = "g-100000000000000000001"


@pytest.fixture
def alice(platform):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).status == 200
    return pod, token


def test_websocket_through_the_router(platform, alice):
    pod, token = alice
    redis = Resp(platform.redis.port, platform.redis.password)
    redis("ZADD", "sdfleet:activity", 1, ALICE_ID)
    time.sleep(1.1)  # past the activity throttle
    with connect(f"ws://127.0.0.1:{platform.port}/queue/join",
                 additional_headers={"x-goog-iap-jwt-assertion": token,
                                     "X-Sdfleet-Identity": "g-someone-else"},
                 open_timeout=5) as ws:
        for i in range(3):
            ws.send(f"frame {i}")
            assert ws.recv(timeout=5) == f"alice-pod: frame {i}"
        time.sleep(0.3)
        # the upgrade the pod accepted counts as activity while the socket is open
        assert float(redis("ZSCORE", "sdfleet:activity", ALICE_ID)) > 1
    upgrade = [r for r in pod.requests if r["path"] == "/queue/join"][0]
    assert upgrade["headers"]["x-sdfleet-identity"] == ALICE_ID
    redis.close()


def test_websocket_without_token_is_refused(platform, alice):
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{platform.port}/queue/join", open_timeout=5)
    assert refused.value.response.status_code == 401


def test_server_sent_events_are_not_buffered(platform, alice):
    _, token = alice
    conn = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=10)
    conn.request("GET", "/sse/progress", headers={"x-goog-iap-jwt-assertion": token,
                                                  "Accept": "text/event-stream"})
    started = time.monotonic()
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    first = resp.readline()
    first_at = time.monotonic() - started
    rest = resp.read()
    total = time.monotonic() - started
    conn.close()
    assert first == b"data: alice-pod event 0\n"
    assert b"data: alice-pod event 2" in rest
    # the stub sends an event every 0.3 s: the first must arrive before the stream ends
    assert first_at < 0.25 and total >= 0.6


def test_large_upload_reaches_the_pod_intact(platform, alice):
    _, token = alice
    body = os.urandom(24 * 1024 * 1024)
    reply = request(platform.port, "/upload", token=token, method="POST", body=body, timeout=60)
    assert reply.status == 200
    assert reply.json()["body_bytes"] == len(body)
    assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_limit_comes_from_config(redis_server, iap):
    platform = Platform(redis_server, iap, CLIENT_MAX_BODY_SIZE="1m")
    try:
        pod = platform.backend("alice-pod")
        platform.allocator.give(ALICE, pod.target)
        token = iap.mint(sub=ALICE)
        ok = request(platform.port, "/upload", token=token, method="POST", body=b"x" * 500_000)
        assert ok.status == 200
        too_big = request(platform.port, "/upload", token=token, method="POST",
                          body=b"x" * 2_000_000)
        assert too_big.status == 413
    finally:
        platform.close()
