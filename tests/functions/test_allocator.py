"""The allocator under a real functions-framework, against real Redis and real JWTs."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.functions.conftest import call, iap_headers

ALICE = "accounts.google.com:100000000000000000001"
ALICE_ID = "g-100000000000000000001"


def post_allocate(proc, token):
    return call("POST", proc.url + "/allocate", iap_headers(token))


def get_status(proc, token):
    return call("GET", proc.url + "/status", iap_headers(token))


def test_happy_path_ready_with_target_and_state_written(allocator, clean, m_iap, m_agones,
                                                        m_redis_client):
    m_agones.add_ready("gs-a", "10.8.1.7", 7860)
    status, body, _ = post_allocate(allocator, m_iap.mint(sub=ALICE, email="alice@example.com"))
    assert status == 200, body
    assert body["status"] == "ready" and body["id"] == ALICE_ID
    assert body["gameServer"] == "gs-a" and body["target"] == "10.8.1.7:7860"
    gs = m_agones.game_server("gs-a")
    assert gs["status"]["state"] == "Allocated"
    assert gs["metadata"]["labels"]["sdfleet.dev/identity"] == ALICE_ID
    assert gs["metadata"]["annotations"]["sdfleet.dev/email"] == "alice@example.com"
    assert abs(float(gs["metadata"]["annotations"]["sdfleet.dev/allocated-at"])
               - body["allocatedAt"]) < 1e-6
    mapping = m_redis_client.hgetall(f"sdfleet:map:{ALICE_ID}")
    assert mapping["gs"] == "gs-a" and mapping["target"] == "10.8.1.7:7860"
    assert mapping["sub"] == ALICE and mapping["email"] == "alice@example.com"
    assert m_redis_client.zscore("sdfleet:activity", ALICE_ID) is not None
    assert m_redis_client.zscore("sdfleet:sessions", ALICE_ID) == pytest.approx(body["allocatedAt"])
    assert not m_redis_client.exists(f"sdfleet:lock:{ALICE_ID}")


def test_idempotent_and_status_never_allocates(allocator, clean, m_iap, m_agones):
    m_agones.add_ready("gs-a", port=7001)
    m_agones.add_ready("gs-b", port=7002)
    token = m_iap.mint(sub=ALICE)
    _, before, _ = get_status(allocator, token)
    assert before["status"] == "pending" and before["phase"] == "not-allocated"
    assert m_agones.calls[("POST", "allocation")] == 0
    first = post_allocate(allocator, token)[1]
    second = post_allocate(allocator, token)[1]
    assert first["gameServer"] == second["gameServer"]
    assert len(m_agones.game_servers("Allocated")) == 1
    status = get_status(allocator, token)[1]
    assert status["status"] == "ready" and status["gameServer"] == first["gameServer"]
    assert m_agones.calls[("POST", "allocation")] == 1


def test_fifty_concurrent_first_calls_for_ten_identities_allocate_exactly_ten(
        allocator, clean, m_iap, m_agones, m_redis_client):
    for i in range(30):
        m_agones.add_ready(f"gs-{i:02d}", port=8000 + i)
    subs = [f"accounts.google.com:2000000000000{i:02d}" for i in range(10)]
    tokens = [m_iap.mint(sub=s, email=f"u{i}@example.com") for i, s in enumerate(subs)]
    calls = [tokens[i % 10] for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as ex:
        results = list(ex.map(lambda t: post_allocate(allocator, t), calls))
    assert all(status == 200 and body["status"] == "ready" for status, body, _ in results), results
    by_id = {}
    for _, body, _ in results:
        by_id.setdefault(body["id"], set()).add(body["gameServer"])
    assert len(by_id) == 10 and all(len(v) == 1 for v in by_id.values())
    allocated = m_agones.game_servers("Allocated")
    assert len(allocated) == 10
    assert {g["metadata"]["labels"]["sdfleet.dev/identity"] for g in allocated} == set(by_id)
    assert m_redis_client.zcard("sdfleet:activity") == 10


def test_empty_pool_pending_with_phase_then_ready(allocator, clean, m_iap, m_agones):
    token = m_iap.mint(sub=ALICE)
    status, body, _ = post_allocate(allocator, token)
    assert status == 200 and body["status"] == "pending"
    assert body["phase"] == "waiting-for-gpu" and body["retryAfterSeconds"] > 0
    assert body["message"]
    m_agones.add_game_server("gs-new", state="Scheduled", port=7100)
    body = post_allocate(allocator, token)[1]
    assert body["status"] == "pending" and body["phase"] == "starting"
    # once a pod is starting, the page asks every 2 s: at most 2 s between Ready and hand-out
    assert body["retryAfterSeconds"] <= 2
    # its WebUI has started and says so through the Agones SDK (SetAnnotation)
    m_agones.add_game_server("gs-new", state="Scheduled", port=7100,
                             annotations={"agones.dev/sdk-sdfleet-phase": "loading-model"})
    body = post_allocate(allocator, token)[1]
    assert body["status"] == "pending" and body["phase"] == "loading-model"
    assert "model" in body["message"] and body["retryAfterSeconds"] <= 2
    assert get_status(allocator, token)[1]["phase"] == "not-allocated"
    m_agones.set_state("gs-new", "Ready")
    body = post_allocate(allocator, token)[1]
    assert body["status"] == "ready" and body["gameServer"] == "gs-new"


def test_game_server_deleted_behind_our_back_is_reallocated(allocator, clean, m_iap, m_agones,
                                                            m_redis_client):
    m_agones.add_ready("gs-a", port=7001)
    m_agones.add_ready("gs-b", port=7002)
    token = m_iap.mint(sub=ALICE)
    first = post_allocate(allocator, token)[1]
    m_agones.remove(first["gameServer"])
    status = get_status(allocator, token)[1]
    assert status["status"] == "pending"          # status sees it is gone, changes nothing
    second = post_allocate(allocator, token)[1]
    assert second["status"] == "ready" and second["gameServer"] != first["gameServer"]
    assert m_redis_client.hget(f"sdfleet:map:{ALICE_ID}", "gs") == second["gameServer"]


def test_unhealthy_game_server_is_replaced_and_stale_mapping_dropped_when_pool_empty(
        allocator, clean, m_iap, m_agones, m_redis_client):
    m_agones.add_ready("gs-a", port=7001)
    token = m_iap.mint(sub=ALICE)
    post_allocate(allocator, token)
    m_agones.make_unhealthy("gs-a")
    body = post_allocate(allocator, token)[1]
    assert body["status"] == "pending"
    # the router must not keep proxying to the dead pod
    assert not m_redis_client.exists(f"sdfleet:map:{ALICE_ID}")
    m_agones.add_ready("gs-b", port=7002)
    assert post_allocate(allocator, token)[1]["gameServer"] == "gs-b"


def test_lost_mapping_adopts_the_already_allocated_game_server(allocator, clean, m_iap,
                                                               m_agones, m_redis_client):
    m_agones.add_ready("gs-a", port=7001)
    m_agones.add_ready("gs-b", port=7002)
    token = m_iap.mint(sub=ALICE)
    first = post_allocate(allocator, token)[1]
    m_redis_client.delete(f"sdfleet:map:{ALICE_ID}")   # as if the mapping write was lost
    again = post_allocate(allocator, token)[1]
    assert again["gameServer"] == first["gameServer"]
    assert len(m_agones.game_servers("Allocated")) == 1


def test_transient_429_and_5xx_are_retried(allocator, clean, m_iap, m_agones):
    m_agones.add_ready("gs-a", port=7001)
    m_agones.fail_next(429, count=1, method="POST", retry_after=1)
    m_agones.fail_next(503, count=1, method="POST")
    body = post_allocate(allocator, m_iap.mint(sub=ALICE))[1]
    assert body["status"] == "ready" and body["gameServer"] == "gs-a"


def test_kubernetes_down_is_503_with_retry_after_and_nothing_written(
        allocator, clean, m_iap, m_agones, m_redis_client):
    m_agones.add_ready("gs-a", port=7001)
    m_agones.fail_next(500, count=50)
    status, body, headers = post_allocate(allocator, m_iap.mint(sub=ALICE))
    assert status == 503 and body["error"] == "kubernetes-unavailable"
    assert int(headers["Retry-After"]) > 0 and body["retryAfterSeconds"] > 0
    assert m_redis_client.keys("sdfleet:*") == []
    m_agones.reset()
    m_agones.add_ready("gs-a", port=7001)
    assert post_allocate(allocator, m_iap.mint(sub=ALICE))[1]["status"] == "ready"


def _forgeries(iap):
    from cryptography.hazmat.primitives.asymmetric import ec
    now = int(time.time())
    other_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": iap.mint(sub=ALICE, issued_at=now - 7200, expires_in=-3600),
        "not-yet-valid": iap.mint(sub=ALICE, not_before=now + 3600),
        "issued-in-future": iap.mint(sub=ALICE, issued_at=now + 3600, expires_in=7200),
        "wrong-audience": iap.mint(sub=ALICE, audience="/projects/1/global/backendServices/2"),
        "wrong-issuer": iap.mint(sub=ALICE, issuer="https://evil.example.com"),
        "bad-signature": iap.mint(sub=ALICE, key=other_key),
        "unknown-kid": iap.mint(sub=ALICE, key=other_key, kid="someone-else"),
        "alg-none": iap.mint_unsigned(sub=ALICE),
        "hs256-with-public-key": iap.mint_hs256_with_public_key(sub=ALICE),
        "subject-too-long": iap.mint(sub="x" * 38),
    }


FORGERY_NAMES = ["missing", "garbage", "expired", "not-yet-valid", "issued-in-future",
                 "wrong-audience", "wrong-issuer", "bad-signature", "unknown-kid", "alg-none",
                 "hs256-with-public-key", "subject-too-long"]


@pytest.mark.parametrize("path,method", [("/allocate", "POST"), ("/status", "GET")])
def test_every_bad_assertion_is_401_and_nothing_is_allocated_or_written(
        allocator, clean, m_iap, m_agones, m_redis_client, path, method):
    m_agones.add_ready("gs-a", port=7001)
    forgeries = _forgeries(m_iap)
    for name in FORGERY_NAMES:
        status, body, _ = call(method, allocator.url + path, iap_headers(forgeries[name]))
        assert status == 401, (name, body)
        assert body["status"] == "error" and body["error"] == "unauthenticated", name
    # a plain identity header is never trusted either
    status, _, _ = call(method, allocator.url + path,
                        {"x-goog-authenticated-user-email": "accounts.google.com:alice@example.com"})
    assert status == 401
    assert m_redis_client.keys("*") == []
    assert m_agones.calls.total() == 0
    assert m_agones.game_server("gs-a")["status"]["state"] == "Ready"


def test_slightly_expired_token_within_clock_skew_is_accepted(allocator, clean, m_iap, m_agones):
    m_agones.add_ready("gs-a", port=7001)
    now = int(time.time())
    token = m_iap.mint(sub=ALICE, issued_at=now - 600, expires_in=-10)
    assert post_allocate(allocator, token)[1]["status"] == "ready"


def test_unknown_paths_and_methods(allocator, clean, m_iap):
    token = m_iap.mint(sub=ALICE)
    assert call("GET", allocator.url + "/allocate", iap_headers(token))[0] == 405
    assert call("POST", allocator.url + "/elsewhere", iap_headers(token))[0] == 404


def test_redis_killed_mid_test_gives_503_then_recovers(redis_server, m_iap, m_agones):
    from tests.functions.conftest import base_env, start_function
    m_agones.reset()
    for i in range(3):
        m_agones.add_ready(f"gs-{i}", port=7000 + i)
    proc = start_function("allocator", "allocate", base_env(redis_server, m_iap, m_agones))
    try:
        token = m_iap.mint(sub=ALICE)
        assert post_allocate(proc, token)[1]["status"] == "ready"
        redis_server.kill()
        status, body, headers = post_allocate(proc, m_iap.mint(sub="accounts.google.com:42"))
        assert status == 503 and body["error"] == "redis-unavailable"
        assert int(headers["Retry-After"]) > 0
        status, body, _ = get_status(proc, token)
        assert status == 503 and body["error"] == "redis-unavailable"
        allocated_while_down = len(m_agones.game_servers("Allocated"))
        assert allocated_while_down == 1        # nothing allocated without a place to record it
        redis_server.start()                    # empty, as after a failover without persistence
        body = post_allocate(proc, token)[1]
        # the mapping was lost with Redis: the allocator adopts Alice's labelled game server
        assert body["status"] == "ready" and body["gameServer"] == "gs-0"
        body = post_allocate(proc, m_iap.mint(sub="accounts.google.com:42"))[1]
        assert body["status"] == "ready" and body["gameServer"] != "gs-0"
        assert len(m_agones.game_servers("Allocated")) == 2
    finally:
        proc.stop()
        m_agones.reset()


def test_log_never_contains_secrets(allocator, m_redis):
    log = allocator.log()
    assert m_redis.password not in log
    assert "x-goog-iap-jwt-assertion" not in log.lower() or "eyJ" not in log
    for line in filter(None, log.splitlines()):
        if line.startswith("{"):
            json.loads(line)     # structured lines are valid JSON


def test_adopt_only_finds_the_persons_labelled_pod_and_never_allocates(
        allocator, clean, m_iap, m_agones, m_redis_client):
    """The router's request for an open page after Redis lost the mapping."""
    token = m_iap.mint(sub=ALICE, email="alice@example.com")
    adopt = {**iap_headers(token), "Content-Type": "application/json"}
    m_agones.add_ready("gs-free", port=7001)
    status, body, _ = call("POST", allocator.url + "/allocate", adopt, b'{"adoptOnly": true}')
    assert status == 200 and (body["status"], body["phase"]) == ("pending", "not-allocated")
    assert m_agones.calls[("POST", "allocation")] == 0
    assert m_agones.game_server("gs-free")["status"]["state"] == "Ready"
    m_agones.add_game_server("gs-alice", state="Allocated", port=7002,
                             labels={"sdfleet.dev/identity": ALICE_ID},
                             annotations={"sdfleet.dev/allocated-at": repr(time.time() - 600)})
    status, body, _ = call("POST", allocator.url + "/allocate", adopt, b'{"adoptOnly": true}')
    assert status == 200 and body["status"] == "ready" and body["gameServer"] == "gs-alice"
    assert m_redis_client.hget(f"sdfleet:map:{ALICE_ID}", "gs") == "gs-alice"
    assert m_agones.calls[("POST", "allocation")] == 0
