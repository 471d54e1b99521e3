"""Where a person's identity is verified: the IAP assertion, checked, becomes an Identity.

IAP signs `x-goog-iap-jwt-assertion` with ES256 and publishes its public keys as a JWK
set. `JwtVerifier` fetches that set (from a configurable URL, so tests serve their own),
keeps it for the time the server's Cache-Control allows (bounded to [60 s, 1 h]), and
refetches at most every 30 s when a token names an unknown key id (IAP rotates keys).
The signature, `iat`/`exp` (with a small clock skew) and the audience are checked by
google-auth (`google.auth.jwt.decode`); on top of it we pin the algorithm (never `none`
or HS256, whatever the header says), check `nbf`, the issuer and that `sub` is present.
`IapAuthenticator` turns the verified subject into its id (`identity_id.py`).
"""


from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt as google_jwt
from jwt.api_jwk import PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from .identity_id import SubjectNotSupported, identity_id

IAP_ISSUER = "https://cloud.google.com/iap"
IAP_JWT_HEADER = "x-goog-iap-jwt-assertion"


class Unauthenticated(Exception):
    """The request does not carry a valid identity; `reason` is machine-readable."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class KeysUnavailable(Exception):
    """The public keys could not be fetched: we cannot tell good tokens from bad."""


@dataclass(frozen=True)
class Identity:
    id: str
    sub: str
    email: str


def require_safe_url(url: str, what: str) -> str:
    """https everywhere; plain http only to loopback (local tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in
                                   ("127.0.0.1", "localhost", "::1")):
        return url
    raise ValueError(f"{what} must be an https URL (plain http only to loopback): {url!r}")


class JwtVerifier:
    """Verifies JWTs signed by keys from one JWK-set URL; thread-safe, keys cached."""

    MIN_CACHE_SECONDS, MAX_CACHE_SECONDS, UNKNOWN_KID_REFETCH_SECONDS = 60, 3600, 30

    def __init__(self, certs_url: str, audience: str, issuers: tuple[str, ...],
                 algorithms: tuple[str, ...] = ("ES256",), clock_skew_seconds: int = 30,
                 session: requests.Session | None = None):
        self.certs_url = require_safe_url(certs_url, "key set URL")
        if not audience:
            raise ValueError("an expected audience is required")
        self.audience, self.issuers, self.algorithms = audience, issuers, algorithms
        self.clock_skew_seconds = clock_skew_seconds
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._pems: dict[str, bytes] = {}
        self._expires_at = 0.0
        self._fetched_at = 0.0

    # -- keys ------------------------------------------------------------------------
    def _fetch(self) -> None:
        try:
            response = self._session.get(self.certs_url, timeout=5)
            response.raise_for_status()
            key_set = PyJWKSet.from_dict(response.json())
        except (requests.RequestException, ValueError, PyJWKError, PyJWKSetError) as e:
            raise KeysUnavailable(f"cannot fetch the signing keys: {type(e).__name__}") from e
        pems = {}
        for key in key_set.keys:
            if key.key_id and key.public_key_use in ("sig", None):
                pems[key.key_id] = key.key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        max_age = self.MAX_CACHE_SECONDS
        m = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
        if m:
            max_age = int(m.group(1))
        now = time.monotonic()
        self._pems, self._fetched_at = pems, now
        self._expires_at = now + min(max(max_age, self.MIN_CACHE_SECONDS), self.MAX_CACHE_SECONDS)

    def _key_for(self, kid: str) -> bytes | None:
        with self._lock:
            now = time.monotonic()
            if now >= self._expires_at or (
                    kid not in self._pems
                    and now - self._fetched_at >= self.UNKNOWN_KID_REFETCH_SECONDS):
                self._fetch()
            return self._pems.get(kid)

    # -- tokens ----------------------------------------------------------------------
    def verify(self, token: str | None) -> dict:
        """The verified claims, or Unauthenticated / KeysUnavailable."""
        if not token:
            raise Unauthenticated("missing-token", "no identity assertion was sent")
        try:
            header = google_jwt.decode_header(token)
        except (ValueError, TypeError, json.JSONDecodeError,
                google_auth_exceptions.GoogleAuthError):
            raise Unauthenticated("malformed-token", "the identity assertion is malformed") from None
        if header.get("alg") not in self.algorithms:
            raise Unauthenticated("bad-algorithm", "the identity assertion's algorithm is refused")
        kid = header.get("kid")
        pem = self._key_for(kid) if isinstance(kid, str) else None
        if pem is None:
            raise Unauthenticated("unknown-key", "the identity assertion names an unknown key")
        try:
            claims = google_jwt.decode(token, certs={kid: pem}, audience=self.audience,
                                       clock_skew_in_seconds=self.clock_skew_seconds)
        except (ValueError, TypeError, google_auth_exceptions.GoogleAuthError) as e:
            raise Unauthenticated("invalid-token", _reason_text(e)) from None
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, (int, float))
                                or time.time() + self.clock_skew_seconds < nbf):
            raise Unauthenticated("invalid-token", "the identity assertion is not valid yet")
        if claims.get("iss") not in self.issuers:
            raise Unauthenticated("invalid-token", "the identity assertion has the wrong issuer")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthenticated("invalid-token", "the identity assertion has no subject")
        return claims


def _reason_text(error: Exception) -> str:
    text = str(error)
    for needle, message in (("expired", "the identity assertion has expired"),
                            ("too early", "the identity assertion is not valid yet"),
                            ("audience", "the identity assertion is for another audience"),
                            ("signature", "the identity assertion's signature is invalid")):
        if needle in text:
            return message
    return "the identity assertion is invalid"


class IapAuthenticator:
    """IAP assertion -> Identity (verified sub and email, and the id derived from sub)."""

    def __init__(self, audience: str, certs_url: str, clock_skew_seconds: int = 30):
        self.verifier = JwtVerifier(certs_url, audience, (IAP_ISSUER,), ("ES256",),
                                    clock_skew_seconds)

    def identify(self, headers) -> Identity:
        claims = self.verifier.verify(headers.get(IAP_JWT_HEADER))
        email = claims.get("email") if isinstance(claims.get("email"), str) else ""
        try:
            id_ = identity_id(claims["sub"])
        except SubjectNotSupported as error:
            raise Unauthenticated(error.reason, str(error)) from None
        return Identity(id=id_, sub=claims["sub"], email=email)
