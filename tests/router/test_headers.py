"""What the pod is told about the request: the Host as the client sent it, and no identity a
client (or another proxy) could have written."""

import socket

import pytest

from tests.router.client import request

ALICE = "accounts.google.com:100000000000000000001"
BOB = "accounts.google.com:200000000000000000002"
ALICE_ID = "g-100000000000000000001"


@pytest.fixture
def alice(platform):
    pod = platform.backend("alice-pod")
    platform.allocator.give(ALICE, pod.target)
    token = platform.iap.mint(sub=ALICE, email="alice@example.com")
    assert request(platform.port, "/", token=token).status == 200
    return pod, token


def raw(port: int, head: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head.encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("host", ["sd.example.com:8443", "127.0.0.1:8080", "[::1]:8443",
                                  "SD.Example.com"])
def test_pod_gets_the_host_header_as_the_client_sent_it(platform, alice, host):
    # Gradio builds file URLs from Host: behind a URL with a port, the port must survive.
    pod, token = alice
    for _ in range(3):  # the deciding path first, then the hot path
        reply = request(platform.port, "/file", token=token, headers=[("Host", host)])
        assert reply.status == 200
        assert reply.json()["headers"]["host"] == host


@pytest.mark.parametrize("host", ["a/b", "a..b", "a\x01b", "a b"])
def test_host_nginx_cannot_parse_is_refused_before_any_pod(platform, alice, host):
    pod, token = alice
    before = len(pod.requests)
    answer = raw(platform.port, f"GET /x HTTP/1.1\r\nHost: {host}\r\n"
                 f"x-goog-iap-jwt-assertion: {token}\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert len(pod.requests) == before


# The list (14.4) and one header of each family the router clears.
IDENTITY_HEADERS = [
    "X-Authenticated-User", "X-Authenticated-Email", "X-Remote-Email",
    "X-Forwarded-Access-Token", "X-Auth-User", "X-Iap-User",
    "X-Auth-Request-Email", "X-Authorization", "X-Forwarded-User", "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username", "X-Forwarded-Groups", "X-Forwarded-Host",
    "X-Remote-User", "Remote-User", "Remote-Email", "Remote-Groups",
    "X-Goog-Authenticated-User-Email", "X-Goog-Authenticated-User-Id",
    "X-User", "X-User-Email", "X-Userid", "X-Username", "X-Email", "X-Webauth-User",
    "X-Sdfleet-Identity", "X-Sdfleet-Anything", "Proxy-Authorization",
]


def test_identity_header_families_never_reach_the_pod(platform, alice):
    # every family at once, in any spelling, on the deciding path and then the hot path
    pod, token = alice
    forged = [(variant, f"bob@example.com-{i}") for i, name in enumerate(IDENTITY_HEADERS)
              for variant in (name, name.lower(), name.upper())]
    for _ in range(3):
        reply = request(platform.port, "/whoami", token=token, headers=forged)
        assert reply.status == 200, reply.text
        seen = reply.json()["headers"]
        leaked = {k: v for k, v in seen.items() if "bob" in v
                  or (k in {n.lower() for n in IDENTITY_HEADERS}
                      and k not in ("x-sdfleet-identity",))}
        assert leaked == {}
        assert seen["x-sdfleet-identity"] == ALICE_ID
        # only the id: the email is in the game server's annotation
        assert "x-sdfleet-email" not in seen


def test_what_the_pod_legitimately_needs_still_passes(platform, alice):
    pod, token = alice
    reply = request(platform.port, "/whoami", token=token, headers=[
        ("X-Forwarded-Proto", "https"),          # set by the load balancer
        ("X-Forwarded-For", "203.0.113.9"),      # replaced by the router's view of the client
        ("Comfy-User", "default"),               # ComfyUI's frontend
        ("X-Requested-With", "XMLHttpRequest"),
        ("Origin", "https://sd.example.com"), ("Referer", "https://sd.example.com/")])
    seen = reply.json()["headers"]
    assert seen["x-forwarded-proto"] == "https"  # PUBLIC_SCHEME: the load balancer's scheme
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["comfy-user"] == "default" and seen["x-requested-with"] == "XMLHttpRequest"
    assert seen["origin"] == "https://sd.example.com"


@pytest.mark.parametrize("html", [True, False])
def test_two_assertion_headers_are_refused(platform, alice, html):
    # nginx 1.22 (here) reads the first of two header lines; nginx >= 1.23 (OpenResty in the
    # image) joins them with ", ". Either way two assertions are refused, never one chosen.
    pod, token = alice
    bob = platform.iap.mint(sub=BOB)
    fresh = platform.iap.mint(sub=ALICE, extra={"nonce": "fresh"})
    before = len(pod.requests)
    for first, second in [(bob, token), (fresh, bob)]:
        reply = request(platform.port, "/", token=first, html=html,
                        headers=[("x-goog-iap-jwt-assertion", second)])
        assert reply.status == 400
        assert "two sign-in assertions" in reply.text
        assert reply.headers["content-type"].startswith("text/html" if html else "application/json")
    # what nginx >= 1.23 makes of them, also once the router knows the first token (hot path)
    reply = request(platform.port, "/", token=f"{token}, {bob}", html=html)
    assert reply.status == 400 and "two sign-in assertions" in reply.text
    assert len(pod.requests) == before
    assert len(platform.allocator.calls) == 1
