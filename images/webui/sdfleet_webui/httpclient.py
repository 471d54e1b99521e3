"""HTTP with retries: which answers are worth retrying and how long to wait.

``retry_delay`` is the one back-off rule: a server's ``Retry-After`` (seconds or an HTTP
date) wins, capped at the policy's maximum; otherwise exponential back-off. Permanent
answers (401, 403, 404, ...) are never retried: ``permanent_failure`` turns them into a
cause a person can act on. Tokens travel only in headers, and only to the host they
belong to (``auth_headers_for``); requests drops them on redirects to another host, so a
signed CDN URL never sees them.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from .logs import log, redact_url

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """A model could not be made available; the message names the model and the cause."""

    def __init__(self, model: str, cause: str):
        super().__init__(f"model {model!r}: {cause}")
        self.model, self.cause = model, cause


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_delay(attempt: int, policy: RetryPolicy, retry_after: str | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``."""
    asked = parse_retry_after(retry_after)
    if asked is not None:
        return min(asked, policy.max_backoff_seconds)
    base = policy.backoff_seconds * (2 ** (attempt - 1))
    return min(policy.max_backoff_seconds, base * random.uniform(1.0, 1.25))


def permanent_failure(status: int, what: str, token_hint: str | None) -> str | None:
    """The cause text for an answer that retrying cannot fix, else None."""
    if status in (401, 403):
        hint = f"; {token_hint}" if token_hint else ""
        return f"{what} was refused (HTTP {status}){hint}"
    if status in (404, 410):
        return f"{what} was not found (HTTP {status})"
    if 400 <= status < 500 and status not in TRANSIENT_STATUSES and status != 416:
        return f"{what} failed (HTTP {status})"
    return None


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def auth_headers_for(url: str, tokens: dict[str, str | None]) -> dict[str, str]:
    """Bearer header for ``url`` if a token belongs to its host (``tokens``: base URL -> token)."""
    for base, token in tokens.items():
        if token and host_of(base) == host_of(url):
            return {"Authorization": f"Bearer {token}"}
    return {}


def send(session: requests.Session, method: str, url: str, *, model: str, what: str,
         policy: RetryPolicy, sleep=time.sleep, **kwargs) -> requests.Response:
    """One request, retried on connection errors and transient statuses."""
    kwargs.setdefault("timeout", (policy.connect_timeout, policy.read_timeout))
    for attempt in range(1, policy.attempts + 1):
        last = attempt == policy.attempts
        try:
            response = session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if last:
                raise FetchError(model, f"{what}: {redact_url(url)} unreachable after "
                                        f"{attempt} attempts ({type(exc).__name__})") from None
            delay = retry_delay(attempt, policy)
            log("retry", level="warning", model=model, what=what, url=redact_url(url),
                cause=type(exc).__name__, attempt=attempt, delay=round(delay, 2))
            sleep(delay)
            continue
        if response.status_code in TRANSIENT_STATUSES:
            if last:
                response.close()
                raise FetchError(model, f"{what}: HTTP {response.status_code} from "
                                        f"{redact_url(url)} after {attempt} attempts")
            delay = retry_delay(attempt, policy, response.headers.get("Retry-After"))
            log("retry", level="warning", model=model, what=what, url=redact_url(url),
                status=response.status_code, attempt=attempt, delay=round(delay, 2))
            response.close()
            sleep(delay)
            continue
        return response
    raise AssertionError("unreachable")
