"""Who may pass the router: only a verified IAP assertion; forged identity never reaches a pod."""

import pytest

from tests.router.client import request

ALICE = "accounts.google.com:100000000000000000001"
BOB = "accounts.google.com:200000000000000000002"


@pytest.fixture
def alice_pod(platform):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target)
    return pod


def test_healthz_needs_no_token_and_touches_nothing(platform):
    reply = request(platform.port, "/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")
    assert platform.allocator.calls == []


@pytest.mark.parametrize("path", ["/", "/_sdfleet/status", "/api/predict"])
def test_no_token_is_401_with_an_explaining_page(platform, alice_pod, path):
    reply = request(platform.port, path, html=True)
    assert reply.status == 401
    assert "Sign-in required" in reply.text and "missing-assertion" in reply.text
    assert alice_pod.requests == [] and platform.allocator.calls == []


@pytest.mark.parametrize("forged", [
    ("X-Goog-Authenticated-User-Email", "accounts.google.com:alice@example.com"),
    ("X-Goog-Authenticated-User-Id", ALICE),
    ("X-Forwarded-User", "alice@example.com"),
    ("X-Forwarded-Email", "alice@example.com"),
    ("X-Sdfleet-Identity", "g-100000000000000000001"),
])
def test_forged_identity_header_without_token_is_401(platform, alice_pod, forged):
    reply = request(platform.port, "/", headers=[forged])
    assert reply.status == 401 and reply.json()["error"] == "unauthenticated"
    assert alice_pod.requests == []


@pytest.mark.parametrize("make, reason", [
    (lambda iap: iap.mint(sub=ALICE, expires_in=-120), "expired"),
    (lambda iap: iap.mint(sub=ALICE, audience="/projects/9/global/backendServices/9"),
     "wrong-audience"),
    (lambda iap: iap.mint_unsigned(sub=ALICE), "algorithm-not-allowed"),
    (lambda iap: iap.mint_hs256_with_public_key(sub=ALICE), "algorithm-not-allowed"),
    (lambda iap: iap.mint(sub=ALICE)[:-4] + "AAAA", "invalid-assertion"),
])
def test_bad_tokens_are_401(platform, alice_pod, make, reason):
    token = make(platform.iap)
    for _ in range(2):  # the second answer comes from the rejection cache: still 401
        reply = request(platform.port, "/", token=token)
        assert (reply.status, reply.json()["reason"]) == (401, reason)
    assert alice_pod.requests == []


def test_pod_receives_only_trusted_identity_headers(platform, alice_pod):
    token = platform.iap.mint(sub=ALICE, email="alice@example.com")
    request(platform.port, "/", token=token)  # allocate
    injected = [
        ("X-Sdfleet-Identity", "g-200000000000000000002"),
        ("x-sdfleet-identity", "g-3"),
        ("X-Sdfleet-Email", "bob@example.com"),
        ("X-Sdfleet-Whatever", "1"),
        ("X-Forwarded-User", "bob@example.com"),
        ("X-Goog-Authenticated-User-Email", "accounts.google.com:bob@example.com"),
        ("X-Auth-Request-Email", "bob@example.com"),
        ("Remote-User", "bob"),
        ("X_Sdfleet_Identity", "g-4"),  # underscores: dropped by nginx itself
    ]
    reply = request(platform.port, "/whoami", token=token, headers=injected)
    assert reply.status == 200, reply.text
    seen = reply.json()["headers"]
    assert seen["x-sdfleet-identity"] == "g-100000000000000000001"
    assert "x-sdfleet-email" not in seen  # only the id, forged one cleared
    leaked = {k: v for k, v in seen.items()
              if "bob" in v or k.startswith(("x-forwarded-user", "x-goog", "x-auth", "remote-"))
              or k.replace("_", "-") == "x-sdfleet-identity" and k != "x-sdfleet-identity"
              or k == "x-sdfleet-whatever"}
    assert leaked == {}
    # the person's assertion stays at the router: code in the pod cannot replay it
    assert "x-goog-iap-jwt-assertion" not in seen


def test_each_raw_cookie_header_gets_its_own_filtered_value(platform, alice_pod):
    # The filter's result is cached per worker by the exact raw header: two people with the
    # same IAP cookie layout, and one person whose cookies change, each get exactly their own
    # cookies, on the deciding path and then the hot path.
    bob_pod = platform.backend("bob-pod")
    platform.allocator.give(BOB, bob_pod.target)
    alice, bob = platform.iap.mint(sub=ALICE), platform.iap.mint(sub=BOB)
    sends = [
        (alice, "GCP_IAP_UID=1; __Host-GCP_IAP_AUTH_TOKEN_A=alice-secret; s=alice", "s=alice"),
        (bob, "GCP_IAP_UID=1; __Host-GCP_IAP_AUTH_TOKEN_A=bob-secret; s=bob", "s=bob"),
        (alice, "GCP_IAP_UID=1; __Host-GCP_IAP_AUTH_TOKEN_A=alice-secret; s=alicf", "s=alicf"),
        (bob, "GCP_IAP_UID=1; __Host-GCP_IAP_AUTH_TOKEN_A=bob-secret; s=bob; t=1", "s=bob; t=1"),
    ]
    for _ in range(3):
        for token, cookie, reaches_pod in sends:
            reply = request(platform.port, "/whoami", token=token, headers=[("Cookie", cookie)])
            assert reply.status == 200, reply.text
            assert reply.json()["headers"].get("cookie") == reaches_pod
    assert not any("secret" in str(r["headers"]) for r in alice_pod.requests + bob_pod.requests)


def test_status_endpoint_is_per_person(platform, alice_pod):
    token = platform.iap.mint(sub=ALICE, email="alice@example.com")
    reply = request(platform.port, "/_sdfleet/status", token=token,
                    headers=[("Cookie", "GCP_IAP_UID=1; sd_theme=dark")])
    assert reply.json()["status"] == "ready"
    # the probe asked the pod as the person: the id only, nothing else of theirs
    (probe,) = [r for r in alice_pod.requests if r["method"] == "HEAD"]
    assert probe["headers"]["x-sdfleet-identity"] == "g-100000000000000000001"
    assert not {"x-sdfleet-email", "cookie", "x-goog-iap-jwt-assertion"} & set(probe["headers"])
    bob = platform.iap.mint(sub=BOB)
    assert request(platform.port, "/_sdfleet/status", token=bob).json()["status"] == "pending"


def test_steady_state_does_not_ask_the_verifier(platform, alice_pod):
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).status == 200
    platform.verifier.kill()
    for _ in range(5):  # the verdict is cached until the token expires
        assert request(platform.port, "/", token=token).status == 200
    # a token the router has not seen cannot be checked now: a 503 page, not a 401 or 5xx
    fresh = platform.iap.mint(sub=ALICE, extra={"nonce": "new"})
    reply = request(platform.port, "/", token=fresh, html=True)
    assert reply.status == 503 and reply.headers["retry-after"]
    assert "Sign-in cannot be checked right now" in reply.text


@pytest.mark.parametrize("path", ["/_sdfleet/verify", "/_sdfleet/allocate",
                                  "/_sdfleet/metadata-identity"])
def test_internal_locations_are_not_reachable_from_outside(platform, alice_pod, path):
    token = platform.iap.mint(sub=ALICE)
    for method in ("GET", "POST"):
        reply = request(platform.port, path, token=token, method=method, body=b"{}")
        assert reply.status == 404
    assert platform.allocator.calls == [] and platform.metadata.requests == 0


@pytest.mark.parametrize("cookie, reaches_pod", [
    ("GCP_IAP_UID=100000000000000000001; __Host-GCP_IAP_AUTH_TOKEN_0A1B2C=session-secret; "
     "GCP_IAP_XSRF_NONCE_xyz=1; sd_theme=dark; gradio_session=abc",
     "sd_theme=dark; gradio_session=abc"),
    ("__Host-GCP_IAP_AUTH_TOKEN_0A1B2C=session-secret; GCP_IAP_UID=1", None),
    ("sd_theme=dark", "sd_theme=dark"),
])
def test_iap_session_cookies_never_reach_the_pod(platform, alice_pod, cookie, reaches_pod):
    # The first request is decided (verifier, allocator); the next ones take the hot path.
    token = platform.iap.mint(sub=ALICE)
    for _ in range(4):
        reply = request(platform.port, "/whoami", token=token, headers=[("Cookie", cookie)])
        assert reply.status == 200, reply.text
        assert reply.json()["headers"].get("cookie") == reaches_pod
    assert not any("session-secret" in str(r["headers"]) for r in alice_pod.requests)
