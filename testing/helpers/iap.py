"""An IAP look-alike for tests: real ES256 keys, a JWK endpoint, and signed assertions.

IAP signs `x-goog-iap-jwt-assertion` with ES256 and publishes its public keys as a JWK set
(https://www.gstatic.com/iap/verify/public_key-jwk). `IapKeyServer` does the same on a
loopback port so the code under test verifies real signatures against real keys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

IAP_ISSUER = "https://cloud.google.com/iap"
TEST_AUDIENCE = "/projects/123456789012/global/backendServices/4242424242"


class IapKeyServer:
    def __init__(self, audience: str = TEST_AUDIENCE):
        self.audience = audience
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.requests = 0
        public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key()))
        public_jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        self.jwks = {"keys": [public_jwk]}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                outer.requests += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/iap/verify/public_key-jwk"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def mint(self, sub: str = "accounts.google.com:100000000000000000001",
             email: str = "alice@example.com", *, audience: str | None = None,
             issuer: str = IAP_ISSUER, expires_in: int = 600, not_before: int | None = None,
             issued_at: int | None = None, key=None, kid: str | None = None,
             extra: dict | None = None) -> str:
        """A signed IAP-style assertion; every claim can be bent to test rejections."""
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience or self.audience, "sub": sub,
                  "email": email, "iat": issued_at if issued_at is not None else now,
                  "exp": now + expires_in}
        if not_before is not None:
            claims["nbf"] = not_before
        claims.update(extra or {})
        return jwt.encode(claims, key or self.private_key, algorithm="ES256",
                          headers={"kid": kid or self.kid})

    def mint_unsigned(self, **claims) -> str:
        """`alg: none`: must always be refused."""
        now = int(time.time())
        body = {"iss": IAP_ISSUER, "aud": self.audience, "sub": "accounts.google.com:1",
                "email": "mallory@example.com", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, None, algorithm="none")

    def mint_hs256_with_public_key(self, **claims) -> str:
        """The classic algorithm-confusion forgery: HS256 keyed with the public key's PEM."""
        import base64
        import hashlib
        import hmac

        from cryptography.hazmat.primitives import serialization
        pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        now = int(time.time())
        body = {"iss": IAP_ISSUER, "aud": self.audience, "sub": "accounts.google.com:1",
                "email": "mallory@example.com", "iat": now, "exp": now + 600, **claims}

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode())
                         + "." + b64(json.dumps(body).encode()))
        sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(sig)
