"""Identity ids and JWT verification, in-process, with real keys from the key server."""

from __future__ import annotations

import re
import time

import pytest
from shared.config import AllocatorSettings, ConfigError, RedisSettings
from shared.identity_id import SubjectNotSupported, identity_id, subject_of
from shared.verifier import IAP_ISSUER, IapAuthenticator, JwtVerifier, Unauthenticated, require_safe_url

from tests.functions import conftest  # noqa: F401  (puts functions/ on sys.path)

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_google_subjects_map_to_g_prefix():
    assert identity_id("accounts.google.com:1234567890") == "g-1234567890"


@pytest.mark.parametrize("sub", [
    "alice@example.com", "alice.example.com", "alice:example.com", "ALICE", "alice",
    "accounts.google.com:12a", "accounts.google.com:", "ü-ñ", "x" * 37, "g-123", "b-abc",
])
def test_other_subjects_are_label_safe_and_reversible(sub):
    id_ = identity_id(sub)
    assert len(id_) <= 63 and LABEL.fullmatch(id_), id_
    assert subject_of(id_) == sub


def test_encoding_is_injective_where_the_reference_collided():
    subs = ["a@b.c", "a.b.c", "a:b.c", "a@b:c", "A@b.c", "accounts.google.com:1",
            "accounts.google.com.1", "g-1", "b-1"]
    ids = [identity_id(s) for s in subs]
    assert len(set(ids)) == len(subs)


def test_subjects_that_cannot_be_encoded_are_refused_not_truncated():
    with pytest.raises(SubjectNotSupported, match="38 bytes") as e:
        identity_id("x" * 38)
    assert e.value.reason == "subject-not-supported"
    with pytest.raises(SubjectNotSupported):
        identity_id("")


def test_a_verified_subject_without_an_id_is_unauthenticated(iap):
    """The verifier turns the encoder's refusal into a 401-style refusal with its reason."""
    authenticator = IapAuthenticator(iap.audience, iap.url)
    with pytest.raises(Unauthenticated) as e:
        authenticator.identify({"x-goog-iap-jwt-assertion": iap.mint(sub="x" * 38)})
    assert e.value.reason == "subject-not-supported"


def test_keys_are_cached_and_refetched_for_an_unknown_kid(iap):
    verifier = JwtVerifier(iap.url, iap.audience, (IAP_ISSUER,))
    for _ in range(5):
        assert verifier.verify(iap.mint(sub="accounts.google.com:1"))["sub"] == "accounts.google.com:1"
    assert iap.requests == 1
    with pytest.raises(Unauthenticated):
        verifier.verify(iap.mint(kid="rotated-away"))
    assert iap.requests == 1      # an unknown kid refetches at most every 30 s
    verifier._fetched_at -= 31
    with pytest.raises(Unauthenticated):
        verifier.verify(iap.mint(kid="rotated-away"))
    assert iap.requests == 2


def test_expired_beyond_skew_is_refused(iap):
    verifier = JwtVerifier(iap.url, iap.audience, (IAP_ISSUER,), clock_skew_seconds=30)
    now = int(time.time())
    assert verifier.verify(iap.mint(issued_at=now - 100, expires_in=-20))
    with pytest.raises(Unauthenticated):
        verifier.verify(iap.mint(issued_at=now - 100, expires_in=-40))


def test_plain_http_key_urls_only_to_loopback():
    assert require_safe_url("http://127.0.0.1:1/x", "u")
    assert require_safe_url("https://www.gstatic.com/iap/verify/public_key-jwk", "u")
    with pytest.raises(ValueError):
        require_safe_url("http://www.gstatic.com/iap/verify/public_key-jwk", "u")


def test_redis_password_comes_from_the_env_the_platform_fills_from_secret_manager():
    # components/gcp/functions.py maps the Secret Manager secret to REDIS_PASSWORD
    # (secret_environment_variables); nothing reads Secret Manager by hand any more.
    settings = RedisSettings.from_env({"REDIS_HOST": "h", "REDIS_PASSWORD": "from-secret"})
    assert settings.password == "from-secret"


def test_tls_without_a_pinned_ca_is_a_config_error():
    with pytest.raises(ConfigError, match="REDIS_CA_FILE"):
        RedisSettings.from_env({"REDIS_HOST": "10.0.0.3", "REDIS_TLS": "true"})


def test_config_errors_name_the_variable():
    with pytest.raises(ConfigError, match="REDIS_HOST"):
        RedisSettings.from_env({})
    with pytest.raises(ConfigError, match="REDIS_PORT"):
        RedisSettings.from_env({"REDIS_HOST": "h", "REDIS_PORT": "six"})
    with pytest.raises(ConfigError, match="IAP_AUDIENCE"):
        AllocatorSettings.from_env({})


def test_limits_the_stack_config_owns_have_no_second_default_here():
    """The idle timeout and the session cap come from the stack config (culling.*); a culler
    or allocator started without them refuses to run instead of guessing another value."""
    from shared.config import CullerSettings
    culler = {"CULL_INVOKER_EMAILS": "s@p.iam.gserviceaccount.com",
              "CULL_INVOKER_AUDIENCE": "https://c/cull", "MAX_SESSION_SECONDS": "7200",
              "FLEET_NAME": "sdfleet-webui"}
    with pytest.raises(ConfigError, match="IDLE_TIMEOUT_SECONDS is required"):
        CullerSettings.from_env(culler)
    with pytest.raises(ConfigError, match="MAX_SESSION_SECONDS is required"):
        CullerSettings.from_env({**culler, "MAX_SESSION_SECONDS": "", "IDLE_TIMEOUT_SECONDS": "600"})
    assert CullerSettings.from_env({**culler, "IDLE_TIMEOUT_SECONDS": "600"}).idle_seconds == 600
    with pytest.raises(ConfigError, match="MAX_SESSION_SECONDS is required"):
        AllocatorSettings.from_env({"IAP_AUDIENCE": "/projects/1/global/backendServices/2",
                                    "FLEET_NAME": "sdfleet-webui"})
