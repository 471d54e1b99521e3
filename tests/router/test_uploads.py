"""Uploads up to the advertised limit pass a router whose /tmp is the pod's small in-memory
volume; larger ones and lost ones are explained, never a bare nginx error page."""

import hashlib
import os
import threading
import time

import pytest

from components.config import WebuiConfig
from components.k8s.router import TMP_SIZE_MIB
from testing.router.resp import Resp
from tests.router.client import request
from tests.router.conftest import Platform

ALICE = "accounts.google.com:100000000000000000001"
ALICE_ID = "g-100000000000000000001"
MB = 1024 * 1024
# what the platform advertises by default (webui.maxUploadMb), as the Router component
# renders it into CLIENT_MAX_BODY_SIZE
MAX_UPLOAD_MB = WebuiConfig().max_upload_mb


@pytest.fixture
def small_tmp_platform(redis_server, iap):
    """The router as deployed: the advertised upload limit, /tmp a tmpfs of the pod's size."""
    p = Platform(redis_server, iap, tmp_mb=TMP_SIZE_MIB, ROUTE_CACHE_SECONDS="1",
                 CLIENT_MAX_BODY_SIZE=f"{MAX_UPLOAD_MB}m")
    yield p
    p.close()


def _alice(platform):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).status == 200
    return pod, token


def _upload(platform, token, body, results, i, headers=None):
    reply = request(platform.port, "/upload", token=token, method="POST", body=body,
                    headers=headers, timeout=120)
    results[i] = reply


def test_the_router_tmp_really_is_that_small(small_tmp_platform):
    # The reproduction is honest: nginx's run dir (temporary files included) is a tmpfs of
    # the pod's size, in nginx's own mount namespace.
    pid = small_tmp_platform.router.proc.pid
    run_dir = small_tmp_platform.env["NGINX_RUN_DIR"]
    with open(f"/proc/{pid}/mountinfo") as f:
        mounts = [line.split() for line in f]
    mount = next(m for m in mounts if m[4] == run_dir)
    fs_type, options = mount[mount.index("-") + 1], mount[-1]
    assert fs_type == "tmpfs" and f"size={TMP_SIZE_MIB * 1024}k" in options.split(",")
    assert MAX_UPLOAD_MB > 2 * TMP_SIZE_MIB  # the advertised limit is far above /tmp


def test_nginx_failing_is_a_page_never_its_bare_500(platform):
    # a mapping nginx cannot connect to at all (balancer_by_lua refuses the peer)
    redis = Resp(platform.redis.port, platform.redis.password)
    redis("HSET", f"sdfleet:map:{ALICE_ID}", "target", "300.1.1.1:80", "gs", "gs-x")
    redis.close()
    token = platform.iap.mint(sub=ALICE)
    for html in (True, False):
        reply = request(platform.port, "/", token=token, html=html)
        assert reply.status == 500
        assert "The router could not handle this request" in reply.text
        assert "<center>nginx</center>" not in reply.text


def test_upload_of_150_mb_reaches_the_pod_through_a_64_mib_tmp(small_tmp_platform):
    pod, token = _alice(small_tmp_platform)
    body = os.urandom(150 * MB)
    reply = request(small_tmp_platform.port, "/upload", token=token, method="POST", body=body,
                    timeout=120)
    assert reply.status == 200, reply.text[:300]
    assert reply.json()["body_bytes"] == len(body)
    assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_two_concurrent_40_mb_uploads_both_reach_the_pod(small_tmp_platform):
    pod, token = _alice(small_tmp_platform)
    bodies = [os.urandom(40 * MB), os.urandom(40 * MB)]
    results: list = [None, None]
    threads = [threading.Thread(target=_upload, args=(small_tmp_platform, token, b, results, i))
               for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for body, reply in zip(bodies, results):
        assert reply.status == 200, reply.text[:300]
        assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_upload_is_streamed_too(small_tmp_platform):
    # a body of unknown length (Transfer-Encoding: chunked) cannot be held in memory either
    import http.client
    pod, token = _alice(small_tmp_platform)
    chunk = os.urandom(MB)
    conn = http.client.HTTPConnection("127.0.0.1", small_tmp_platform.port, timeout=120)
    conn.request("POST", "/upload", body=iter([chunk] * 80), encode_chunked=True,
                 headers={"x-goog-iap-jwt-assertion": token, "Accept": "application/json",
                          "Transfer-Encoding": "chunked"})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    assert reply.status == 200, data[:300]
    assert b'"body_bytes": %d' % (80 * MB) in data


@pytest.mark.parametrize("html", [True, False])
def test_upload_over_the_limit_is_413_with_an_explanation(redis_server, iap, html):
    platform = Platform(redis_server, iap, CLIENT_MAX_BODY_SIZE="1m")
    try:
        pod, token = _alice(platform)
        reply = request(platform.port, "/upload", token=token, method="POST",
                        body=b"x" * (2 * MB), html=html)
        assert reply.status == 413
        assert reply.headers["content-type"].startswith("text/html" if html else "application/json")
        assert "larger than the 1 MB this platform accepts (it is 2 MB)" in reply.text
        if not html:  # what Gradio's client shows of an error (see pages.lua)
            assert "larger than the 1 MB" in reply.json()["detail"]
        assert not [r for r in pod.requests if r["path"] == "/upload"]
    finally:
        platform.close()


def test_streamed_upload_to_a_pod_that_is_gone_is_explained(platform):
    pod, token = _alice(platform)
    pod.stop()
    reply = request(platform.port, "/upload", token=token, method="POST", body=b"u" * (3 * MB),
                    headers=[("Sec-Fetch-Dest", "empty")])
    assert reply.status == 502
    assert "Your upload did not reach your WebUI" in reply.json()["detail"]
    # an upload never starts a new pod by itself
    assert len(platform.allocator.calls) == 1


def test_streamed_uploads_never_meet_a_closing_kept_alive_connection(platform):
    # The pod closes kept-alive connections under the next request (its idle timer). A
    # streamed body cannot be sent twice, so it always goes on a new connection: every
    # upload arrives, and the pod is never taken for dead.
    pod = platform.backend("alice-pod", requests_per_connection=1)
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE)
    for i in range(4):
        assert request(platform.port, "/small", token=token).status == 200  # keeps one open
        body = os.urandom(2 * MB)
        reply = request(platform.port, "/upload", token=token, method="POST", body=body)
        assert reply.status == 200, reply.text[:300]
        assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert pod.dropped_requests >= 1
    assert len(platform.allocator.calls) == 1


def test_pod_dying_under_a_streamed_upload_is_explained_not_replayed(platform):
    # Half the body already went to the pod; it cannot be sent again (to this pod or a new
    # one), so the person is told, and the router does not re-send a truncated body.
    pod, token = _alice(platform)
    platform.allocator.pod_gone(pod.target)  # the pod is gone for good
    new = platform.backend("new-pod")
    platform.allocator.pods["g-100000000000000000001"] = [new.target]
    threading.Timer(0.5, pod.stop).start()
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=60)

    def slow_body():
        for _ in range(40):
            yield b"s" * MB
            time.sleep(0.05)
    conn.request("POST", "/upload", body=slow_body(), headers={
        "x-goog-iap-jwt-assertion": token, "Accept": "application/json",
        "Sec-Fetch-Dest": "empty", "Content-Length": str(40 * MB)})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    assert reply.status == 502, data[:300]
    assert b"Your upload did not reach your WebUI" in data
    assert not [r for r in new.requests if r["path"] == "/upload"]  # never replayed
