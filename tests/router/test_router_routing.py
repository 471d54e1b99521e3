"""Where requests go: waiting page, then the person's own pod; failures; activity."""

import threading
import time

import pytest

from testing.router.resp import Resp
from tests.router.client import request
from tests.router.conftest import Platform

ALICE = "accounts.google.com:100000000000000000001"
BOB = "accounts.google.com:200000000000000000002"
ALICE_ID, BOB_ID = "g-100000000000000000001", "g-200000000000000000002"


@pytest.fixture
def redis(platform):
    client = Resp(platform.redis.port, platform.redis.password)
    yield client
    client.close()


def test_new_person_gets_waiting_page_then_their_pod(platform, redis):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target, pending=2)
    token = platform.iap.mint(sub=ALICE)

    page = request(platform.port, "/", token=token, html=True)
    assert page.status == 503 and page.headers["retry-after"] == "1"
    assert page.headers["cache-control"] == "no-store"
    assert "Waiting for a GPU node to start." in page.text and "waiting-for-gpu" in page.text
    assert 'fetch("/_sdfleet/status"' in page.text and "location.reload()" in page.text

    # what the page's script sees while it polls, until the pod is ready
    polled = request(platform.port, "/_sdfleet/status", token=token).json()
    assert polled["status"] == "pending" and polled["phase"] == "waiting-for-gpu"
    assert request(platform.port, "/_sdfleet/status", token=token).json() == {"status": "ready"}

    reply = request(platform.port, "/", token=token, html=True)
    assert reply.status == 200 and reply.json()["backend"] == "alice-pod"
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "target") == pod.target
    assert pod.requests and all(r["headers"]["x-sdfleet-identity"] == ALICE_ID
                                for r in pod.requests)


def test_scripts_get_json_not_html_while_waiting(platform):
    platform.allocator.give(ALICE, pending=5)
    reply = request(platform.port, "/api/predict", token=platform.iap.mint(sub=ALICE),
                    method="POST", body=b"{}")
    assert reply.status == 503 and reply.headers["retry-after"]
    assert reply.json()["status"] == "pending"


def test_two_people_never_see_each_others_pod(platform):
    alice_pod, bob_pod = platform.backend("alice-pod"), platform.backend("bob-pod")
    platform.allocator.give(ALICE, alice_pod.target)
    platform.allocator.give(BOB, bob_pod.target)
    tokens = {"alice-pod": platform.iap.mint(sub=ALICE), "bob-pod": platform.iap.mint(sub=BOB)}
    wrong: list = []

    def browse(expected):
        for i in range(40):
            reply = request(platform.port, f"/page/{i}", token=tokens[expected])
            if reply.status != 200 or reply.json()["backend"] != expected:
                wrong.append((expected, reply.status, reply.text[:80]))

    threads = [threading.Thread(target=browse, args=(name,))
               for name in ["alice-pod", "bob-pod"] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert {r["headers"]["x-sdfleet-identity"] for r in alice_pod.requests} == {ALICE_ID}
    assert {r["headers"]["x-sdfleet-identity"] for r in bob_pod.requests} == {BOB_ID}


def test_mapping_in_redis_is_used_without_asking_the_allocator(platform, redis):
    pod = platform.backend("alice-pod")
    redis("HSET", f"sdfleet:map:{ALICE_ID}", "target", pod.target, "gs", "gs-1")
    reply = request(platform.port, "/", token=platform.iap.mint(sub=ALICE))
    assert reply.json()["backend"] == "alice-pod"
    assert platform.allocator.calls == []


def test_allocator_gets_the_routers_oidc_token_fetched_once(platform):
    for i in range(4):
        sub = f"accounts.google.com:{i}"
        platform.allocator.give(sub, platform.backend(f"pod-{i}").target)
        assert request(platform.port, "/", token=platform.iap.mint(sub=sub)).status == 200
    assert len(platform.allocator.calls) == 4
    assert all(call["bearer_ok"] for call in platform.allocator.calls)
    assert platform.metadata.requests == 1


def test_killed_pod_leads_to_reallocation(platform, redis):
    first, second = platform.backend("first-pod"), platform.backend("second-pod")
    platform.allocator.give(ALICE, first.target, second.target)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).json()["backend"] == "first-pod"

    first.stop()  # the pod is gone; mapping and router cache still point at it
    platform.allocator.pod_gone(first.target)
    body = b"x" * 50_000  # the same request, body included, reaches the new pod
    reply = request(platform.port, "/run", token=token, method="POST", body=body)
    assert reply.status == 200 and reply.json()["backend"] == "second-pod"
    assert reply.json()["body_bytes"] == len(body)
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "target") == second.target
    assert len([c for c in platform.allocator.calls if c.get("allocated")]) == 2


def test_failed_pod_mapping_is_deleted_only_if_it_still_points_there(platform, redis):
    old, new = platform.backend("old-pod"), platform.backend("new-pod")
    platform.allocator.give(ALICE, old.target)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).json()["backend"] == "old-pod"
    # another replica already replaced the mapping; this replica's cache still says old-pod
    redis("HSET", f"sdfleet:map:{ALICE_ID}", "target", new.target)
    old.stop()
    reply = request(platform.port, "/", token=token)
    assert reply.json()["backend"] == "new-pod"
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "target") == new.target
    assert len(platform.allocator.calls) == 1  # only the first allocation


def test_pod_that_belongs_to_someone_else_is_never_used(platform, redis):
    # A stale mapping points at an address now used by Bob's pod (pod IPs are reused);
    # Bob's pod answers 421 to anyone else, and Alice is moved to her own pod.
    bobs = platform.backend("bob-pod", expected_identity=BOB_ID)
    alices = platform.backend("alice-pod", expected_identity=ALICE_ID)
    redis("HSET", f"sdfleet:map:{ALICE_ID}", "target", bobs.target)
    platform.allocator.give(ALICE, alices.target)
    reply = request(platform.port, "/", token=platform.iap.mint(sub=ALICE))
    assert reply.status == 200 and reply.json()["backend"] == "alice-pod"
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "target") == alices.target


def test_pods_own_error_keeps_the_mapping(platform, redis):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE)
    reply = request(platform.port, "/status/502", token=token, html=True)
    assert reply.status == 502 and "Your WebUI did not answer" in reply.text
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "target") == pod.target
    assert len(platform.allocator.calls) == 1


def test_dead_pod_and_no_replacement_gives_waiting_page(platform, redis):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE)
    request(platform.port, "/", token=token)
    pod.stop()
    platform.allocator.pod_gone(pod.target)
    reply = request(platform.port, "/", token=token, html=True)
    assert reply.status == 503 and "Starting your Stable Diffusion WebUI" in reply.text
    assert redis("EXISTS", f"sdfleet:map:{ALICE_ID}") == 0


def test_redis_killed_gives_503_page_then_recovers(platform):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target, pod.target)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).status == 200

    platform.redis.kill()
    time.sleep(1.2)  # the router's route cache (1 s in tests) expires
    reply = request(platform.port, "/", token=token, html=True)
    assert reply.status == 503 and reply.headers["retry-after"] == "5"
    assert "session store is not reachable" in reply.text

    platform.redis.start()  # empty again: the mapping is gone, the allocator answers
    reply = request(platform.port, "/", token=token)
    assert reply.status == 200 and reply.json()["backend"] == "alice-pod"


def test_allocator_down_gives_503_page(platform):
    platform.allocator.stop()
    reply = request(platform.port, "/", token=platform.iap.mint(sub=ALICE), html=True)
    assert reply.status == 503 and reply.headers["retry-after"]
    assert "assigns WebUIs is not reachable" in reply.text


THROTTLE_SECONDS = 3  # long enough that five loopback requests never outlast it


@pytest.fixture
def throttled_platform(redis_server, iap):
    p = Platform(redis_server, iap, ROUTE_CACHE_SECONDS="1",
                 ACTIVITY_INTERVAL_SECONDS=str(THROTTLE_SECONDS))
    yield p
    p.close()


def _score_after(redis, id_: str, seconds: float = 3.0, settle: float = 0.4):
    """The activity score once every write has landed: the allocator records one when it
    allocates, the router its own asynchronously (timer) after the pod answered."""
    deadline = time.monotonic() + seconds
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        score = redis("ZSCORE", "sdfleet:activity", id_)
        if score != last:
            last, stable_since = score, time.monotonic()
        elif last is not None and float(last) > 1 and time.monotonic() - stable_since >= settle:
            return float(last)
        time.sleep(0.05)
    raise AssertionError(f"the activity score never settled (last {last!r})")


def test_activity_only_for_served_traffic_and_throttled(throttled_platform):
    platform = throttled_platform
    redis = Resp(platform.redis.port, platform.redis.password)
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pending=1)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).status == 503  # waiting page
    time.sleep(0.3)
    assert redis("ZSCORE", "sdfleet:activity", ALICE_ID) is None

    platform.allocator.pods[ALICE_ID] = [pod.target]
    first = time.time()
    assert request(platform.port, "/", token=token).status == 200
    assert _score_after(redis, ALICE_ID) >= first - 0.01
    redis("ZADD", "sdfleet:activity", 1, ALICE_ID)  # mark: did the router write again?
    for _ in range(5):
        assert request(platform.port, "/", token=token).status == 200
    time.sleep(0.2)
    assert time.time() - first < THROTTLE_SECONDS, "too slow to judge the throttle"
    assert redis("ZSCORE", "sdfleet:activity", ALICE_ID) == "1"  # throttled

    time.sleep(max(0.0, THROTTLE_SECONDS + 0.1 - (time.time() - first)))
    assert request(platform.port, "/status/404", token=token).status == 404
    time.sleep(0.3)
    assert redis("ZSCORE", "sdfleet:activity", ALICE_ID) == "1"  # errors are not activity
    before = time.time()
    assert request(platform.port, "/", token=token).status == 200
    assert _score_after(redis, ALICE_ID) >= before - 0.01
    redis.close()


def test_metadata_server_down_gives_503_page_not_an_unauthenticated_call(platform):
    platform.metadata.close()
    reply = request(platform.port, "/", token=platform.iap.mint(sub=ALICE), html=True)
    assert reply.status == 503 and reply.headers["retry-after"]
    assert "assigns WebUIs is not reachable" in reply.text
    assert platform.allocator.calls == []  # never called without the router's token


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pod_closing_a_kept_alive_connection_is_not_a_dead_pod(platform, redis, method):
    # The router reuses connections to the pod; the WebUI closes idle ones on its own
    # timer. A request that meets such a closing connection is sent again on a new one:
    # the person gets their answer, the mapping stays, nobody is re-allocated.
    pod = platform.backend("alice-pod", requests_per_connection=1)
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE)
    body = b"prompt" * 100 if method == "POST" else None
    for _ in range(4):
        reply = request(platform.port, "/run", token=token, method=method, body=body)
        assert reply.status == 200 and reply.json()["backend"] == "alice-pod"
        assert reply.json()["body_bytes"] == len(body or b"")
    assert pod.dropped_requests >= 1  # the router did meet a closing connection
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "target") == pod.target
    assert len(platform.allocator.calls) == 1
