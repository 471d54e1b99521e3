"""Loopback verifier for IAP assertions: nginx asks it once per token, then caches the verdict.

Debian's nginx Lua has no maintained ES256/JWT library, so verification lives here, in the
router pod's second container, listening on loopback only. `GET /verify` reads the
`x-goog-iap-jwt-assertion` header and answers

    200 {"id": "<contract id>", "sub": ..., "email": ..., "exp": <epoch seconds>}
    401 {"error": "unauthenticated", "reason": "<machine-readable>"}

Checks: ES256 signature against IAP's JWK set (fetched from IAP_CERTS_URL, cached, fetched
again when an unknown key id appears), audience IAP_AUDIENCE, issuer
https://cloud.google.com/iap, `exp`/`iat` present and in range. google-auth's
`id_token.verify_token` delegates JWK sets to PyJWT anyway (and fetches them on every call
without checking the issuer), so PyJWT is used directly. Tokens are never logged.

Bursts: after a router starts, every first request of every person reaches this server at
once (nginx opens one upstream connection per waiting request). So the listening socket
has a real backlog (LISTEN_BACKLOG; socketserver's default of 5 made the rest wait for SYN
retransmissions, 1 s, 3 s..., past nginx's connect timeout), every connection gets its own
thread, and the key set is fetched single-flight (`KeySet`): one fetch at a time, and a
request that waited for a fetch uses its result instead of fetching again. PyJWT's
PyJWKClient fetches once per caller that finds its cache empty or the key id unknown.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

from sdfleet_router.identity_id import SubjectNotSupported, identity_id

IAP_ISSUER = "https://cloud.google.com/iap"
DEFAULT_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
ASSERTION_HEADER = "x-goog-iap-jwt-assertion"
LEEWAY_SECONDS = 5
# Connections the kernel queues before accept(): well above the burst a fresh router sends
# (the kernel caps it at net.core.somaxconn, 4096 by default since Linux 5.4).
LISTEN_BACKLOG = 1024
# An unknown key id refetches the set at most this often: a stream of forged key ids must
# not turn into a stream of fetches.
UNKNOWN_KID_REFETCH_SECONDS = 30

log = logging.getLogger("sdfleet.verifier")


class Rejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """IAP's key set could not be fetched: the router answers 503, not 401."""


class KeySet:
    """IAP's JWK set, cached for `lifespan` seconds and fetched single-flight."""

    def __init__(self, url: str, lifespan: float = 3600, timeout: float = 5,
                 clock=time.monotonic):
        self.url, self.lifespan, self.timeout, self.clock = url, lifespan, timeout, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._generation = 0                 # bumped by every successful fetch
        self._attempts = 0                   # bumped by every fetch, failed ones too
        self._fetch_lock = threading.Lock()

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The key for `kid`; KeysUnavailable if the set cannot be fetched, Rejected
        ("unknown-key") if a fresh set does not hold it."""
        generation, attempts = self._generation, self._attempts
        keys, fetched_at = self._keys, self._fetched_at
        fresh = fetched_at is not None and self.clock() - fetched_at < self.lifespan
        if fresh and kid in keys:
            return keys[kid]
        if fresh and self.clock() - fetched_at < UNKNOWN_KID_REFETCH_SECONDS:
            raise Rejected("unknown-key")
        with self._fetch_lock:
            # Someone else fetched while we waited for the lock: use theirs, and if theirs
            # failed, fail too instead of queueing one more timeout behind it.
            if self._attempts != attempts and self._generation == generation:
                raise KeysUnavailable("IAP key set: the fetch in flight failed")
            if self._generation == generation:
                self._fetch()
            if kid in self._keys:
                return self._keys[kid]
        raise Rejected("unknown-key")

    def _fetch(self) -> None:
        self._attempts += 1
        request = urllib.request.Request(self.url, headers={"User-Agent": "sdfleet-verifier"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.loads(response.read())
            key_set = jwt.PyJWKSet.from_dict(document)
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise KeysUnavailable(f"IAP key set: {type(exc).__name__}") from None
        self._keys = {k.key_id: k for k in key_set.keys if k.key_id}
        self._fetched_at = self.clock()
        self._generation += 1


class IapVerifier:
    def __init__(self, audience: str, certs_url: str = DEFAULT_CERTS_URL,
                 keys_lifespan_seconds: int = 3600):
        if not audience:
            raise ValueError("IAP_AUDIENCE must be set: without it any IAP-signed token "
                             "for another backend would be accepted")
        self.audience = audience
        self.keys = KeySet(certs_url, keys_lifespan_seconds)

    def verify(self, token: str) -> dict:
        """The verified claims turned into the router's identity, or Rejected."""
        if not token:
            raise Rejected("missing-assertion")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Rejected("malformed-assertion") from None
        if header.get("alg") != "ES256":
            raise Rejected("algorithm-not-allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Rejected("unknown-key")
        key = self.keys.signing_key(kid)
        try:
            claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=self.audience,
                                issuer=IAP_ISSUER, leeway=LEEWAY_SECONDS,
                                options={"require": ["exp", "iat", "aud", "iss", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Rejected("expired") from None
        except jwt.InvalidAudienceError:
            raise Rejected("wrong-audience") from None
        except jwt.InvalidIssuerError:
            raise Rejected("wrong-issuer") from None
        except jwt.ImmatureSignatureError:
            raise Rejected("not-yet-valid") from None
        except jwt.PyJWTError:
            raise Rejected("invalid-assertion") from None
        subject = claims["sub"]
        if not isinstance(subject, str):
            raise Rejected("invalid-assertion")
        try:
            ident = identity_id(subject)
        except SubjectNotSupported:
            raise Rejected(SubjectNotSupported.reason) from None
        email = claims.get("email") if isinstance(claims.get("email"), str) else ""
        return {"id": ident, "sub": subject, "email": email, "exp": int(claims["exp"])}


def make_handler(verifier: IapVerifier):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keepalive from nginx's upstream pool

        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path == "/healthz":
                return self._answer(200, {"status": "ok"})
            if self.path != "/verify":
                return self._answer(404, {"error": "not-found"})
            try:
                verdict = verifier.verify(self.headers.get(ASSERTION_HEADER, ""))
            except Rejected as exc:
                return self._answer(401, {"error": "unauthenticated", "reason": exc.reason})
            except KeysUnavailable:
                log.warning("IAP key set unavailable")
                return self._answer(503, {"error": "keys-unavailable"})
            return self._answer(200, verdict)

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # request lines carry no secrets, but keep quiet
            pass

    return Handler


class VerifierServer(ThreadingHTTPServer):
    """A thread per connection (nginx keeps them alive) and a backlog that holds a burst."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = os.environ.get("VERIFIER_HOST", "127.0.0.1")
    port = int(os.environ.get("VERIFIER_PORT", "8081"))
    verifier = IapVerifier(os.environ.get("IAP_AUDIENCE", ""),
                           os.environ.get("IAP_CERTS_URL", DEFAULT_CERTS_URL))
    server = VerifierServer((host, port), make_handler(verifier))
    log.info("verifier listening on %s:%d", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
