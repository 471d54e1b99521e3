"""The Redis AUTH string: from Secret Manager in production, from the env in tests.

At cold start the function reads the secret version named by `REDIS_AUTH_SECRET`
(`projects/<p>/secrets/<s>/versions/<v>`) through the Secret Manager REST API with the
function's own service account (google-auth default credentials). `REDIS_PASSWORD`, set
only by tests, wins so that no test needs Google credentials. The value is never logged.
"""

from __future__ import annotations

import base64
import re

from .config import RedisSettings

SECRET_VERSION = re.compile(r"projects/[^/]+/secrets/[^/]+/versions/[^/]+")
SECRET_MANAGER_API = "https://secretmanager.googleapis.com/v1"


def redis_password(settings: RedisSettings, fetch=None) -> str | None:
    """The AUTH string; `fetch(name) -> str` reads a secret version (injectable)."""
    if settings.password:
        return settings.password
    if not settings.auth_secret:
        return None
    if not SECRET_VERSION.fullmatch(settings.auth_secret):
        raise ValueError("REDIS_AUTH_SECRET must be projects/<p>/secrets/<s>/versions/<v>")
    return (fetch or _access_secret_version)(settings.auth_secret)


def _access_secret_version(name: str) -> str:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform"])
    response = AuthorizedSession(credentials).get(f"{SECRET_MANAGER_API}/{name}:access",
                                                  timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"Secret Manager answered {response.status_code} for {name}")
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8")
