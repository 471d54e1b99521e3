"""The loopback verifier, asked directly: real ES256 signatures against a real JWK set."""

import json
import urllib.error
import urllib.request

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from testing.router.harness import start_verifier


@pytest.fixture
def verifier(iap):
    process = start_verifier(iap.audience, iap.url)
    yield process
    process.stop()


def ask(verifier, token):
    headers = {} if token is None else {"x-goog-iap-jwt-assertion": token}
    req = urllib.request.Request(verifier.url + "/verify", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_valid_assertion_gives_the_contract_id(verifier, iap):
    status, body = ask(verifier, iap.mint(sub="accounts.google.com:42", email="a@example.com"))
    assert status == 200
    assert body["id"] == "g-42" and body["email"] == "a@example.com"
    assert body["sub"] == "accounts.google.com:42" and isinstance(body["exp"], int)


@pytest.mark.parametrize("make, reason", [
    (lambda iap: None, "missing-assertion"),
    (lambda iap: "not-a-jwt", "malformed-assertion"),
    (lambda iap: iap.mint(expires_in=-120), "expired"),
    (lambda iap: iap.mint(audience="/projects/1/global/backendServices/other"), "wrong-audience"),
    (lambda iap: iap.mint(issuer="https://accounts.google.com"), "wrong-issuer"),
    (lambda iap: iap.mint(issued_at=2**31), "not-yet-valid"),
    (lambda iap: iap.mint_unsigned(), "algorithm-not-allowed"),
    (lambda iap: iap.mint_hs256_with_public_key(), "algorithm-not-allowed"),
    (lambda iap: iap.mint(key=ec.generate_private_key(ec.SECP256R1())), "invalid-assertion"),
    (lambda iap: iap.mint(kid="rotated-away"), "unknown-key"),
    (lambda iap: iap.mint(sub="s" * 38), "subject-not-supported"),
])
def test_bad_assertions_are_refused_with_a_reason(verifier, iap, make, reason):
    status, body = ask(verifier, make(iap))
    assert (status, body["reason"]) == (401, reason)


def test_missing_required_claim_is_refused(verifier, iap):
    token = jwt.encode({"iss": "https://cloud.google.com/iap", "aud": iap.audience,
                        "sub": "accounts.google.com:1", "exp": 2**31},  # no iat
                       iap.private_key, algorithm="ES256", headers={"kid": iap.kid})
    assert ask(verifier, token)[0] == 401


def test_key_set_is_fetched_once_for_many_tokens(verifier, iap):
    for i in range(5):
        assert ask(verifier, iap.mint(sub=f"accounts.google.com:{i}"))[0] == 200
    assert iap.requests == 1


def test_keys_unreachable_is_not_a_401(iap):
    process = start_verifier(iap.audience, "http://127.0.0.1:9/nothing-here")
    try:
        assert ask(process, iap.mint())[0] == 503
    finally:
        process.stop()


# ---- the key set: fetched single-flight, refetched for unknown key ids at most every 30 s --

def _key_set(url, clock=None):
    import sys

    from testing.router.harness import ROUTER_DIR
    if str(ROUTER_DIR) not in sys.path:
        sys.path.insert(0, str(ROUTER_DIR))
    from sdfleet_router.verifier import KeySet
    return KeySet(url, lifespan=3600, **({"clock": clock} if clock else {}))


def test_concurrent_first_requests_share_one_key_set_fetch(iap):
    """Before, PyJWKClient fetched once per caller that found its cache empty."""
    import threading
    import time as _time

    served = iap.httpd.RequestHandlerClass.do_GET

    def slow_get(handler):
        _time.sleep(0.3)                          # a slow fetch: everyone arrives during it
        served(handler)

    iap.httpd.RequestHandlerClass.do_GET = slow_get
    keys = _key_set(iap.url)
    barrier, found = threading.Barrier(50), []

    def ask_key():
        barrier.wait()
        found.append(keys.signing_key(iap.kid).key_id)

    threads = [threading.Thread(target=ask_key) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert found == [iap.kid] * 50
    assert iap.requests == 1


def test_unknown_key_ids_refetch_at_most_every_30_seconds(iap):
    from sdfleet_router.verifier import Rejected
    now = [1000.0]
    keys = _key_set(iap.url, clock=lambda: now[0])
    assert keys.signing_key(iap.kid)
    for forged in ("a", "b", "c"):
        with pytest.raises(Rejected):
            keys.signing_key(forged)
    assert iap.requests == 1                      # forged key ids cause no fetches
    now[0] += 31
    rotated = dict(iap.jwks["keys"][0], kid="rotated-in")
    iap.jwks["keys"].append(rotated)
    assert keys.signing_key("rotated-in").key_id == "rotated-in"   # a real rotation is seen
    assert iap.requests == 2


def test_expired_key_set_is_fetched_again(iap):
    now = [0.0]
    keys = _key_set(iap.url, clock=lambda: now[0])
    keys.signing_key(iap.kid)
    now[0] += 3601
    keys.signing_key(iap.kid)
    assert iap.requests == 2



def test_a_failing_key_fetch_is_not_repeated_by_every_waiting_request():
    """IAP's keys unreachable during a burst: the requests that waited for the failed
    fetch fail with it (503) instead of each queueing another 5 s attempt."""
    import threading
    import time as _time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sdfleet_router.verifier import KeysUnavailable
    attempts = []

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            attempts.append(1)
            _time.sleep(0.3)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        keys = _key_set(f"http://127.0.0.1:{server.server_address[1]}/keys")
        barrier, outcomes = threading.Barrier(20), []

        def ask_key():
            barrier.wait()
            try:
                keys.signing_key("k")
            except KeysUnavailable:
                outcomes.append("unavailable")

        threads = [threading.Thread(target=ask_key) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert outcomes == ["unavailable"] * 20
        assert len(attempts) <= 2          # the first fetch, and at most one straggler's
    finally:
        server.shutdown()
        server.server_close()
