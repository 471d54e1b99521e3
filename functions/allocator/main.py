"""Cloud Function `allocate`: the router asks it for a person's GPU workspace.

    POST /allocate   find or allocate the caller's game server (see allocation.py);
                     body {"adoptOnly": true}: find it, never allocate;
                     {"profile": "<name>"}: the person's choice, {"switch": true} with it:
                     end a session in another profile first
    GET  /status     the same answer shapes, never allocating
    GET  /profiles   the profiles the caller may use, their current and chosen one
    GET  /admin, POST /admin/end   administrators only (admin.py)

The caller is identified only by the IAP assertion in `x-goog-iap-jwt-assertion`
(verified here, on top of the platform's own check of the router's OIDC token). Bad or
missing assertion: 401 and nothing is read or written. Redis or the Kubernetes API down:
503 with Retry-After; every write is a single script, so nothing is half-written.
HTTP contract: functions/README.md and docs/contracts.md section 3.

Clients (Redis pool, Kubernetes pool, cached IAP keys) are built once per instance at
cold start and reused by every request.
"""

from __future__ import annotations

import os
import re
import time

from admin import AdminDesk
from allocation import Allocator
from membership import GroupMembership
from shared.agones import AgonesClient, KubernetesError, KubernetesUnavailable
from shared.budgets import budget_reset_day
from shared.config import AllocatorSettings, KubernetesSettings, RedisSettings
from shared.metrics import ALLOCATOR_ANSWER
from shared.redis_client import connect
from shared.responses import error_response, json_response, log
from shared.state import RedisUnavailable, SessionStore
from shared.verifier import IapAuthenticator, KeysUnavailable, Unauthenticated

_redis_settings = RedisSettings.from_env()
_settings = AllocatorSettings.from_env()
_store = SessionStore(connect(_redis_settings, _redis_settings.password),
                      _redis_settings.prefix, budget_reset_day(os.environ))
_authenticator = IapAuthenticator(_settings.iap_audience, _settings.iap_certs_url,
                                  _settings.clock_skew_seconds)
_allocator = Allocator(_store, AgonesClient(KubernetesSettings.from_env()), _settings,
                       membership=GroupMembership(_settings.groups_api_url,
                                                  cache_seconds=_settings.group_cache_seconds))
_admin = AdminDesk(_allocator)
PROFILE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,18}[a-z0-9])?")


def _body(request) -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _allocate(who, request):
    body = _body(request)
    profile = body.get("profile")
    if profile is not None and not (isinstance(profile, str) and PROFILE_NAME.fullmatch(profile)):
        return error_response(400, "bad-profile", "profile must be a profile's name")
    return _allocator.allocate(who, adopt_only=body.get("adoptOnly") is True, profile=profile,
                               switch=body.get("switch") is True)


ROUTES = {"/allocate": ("POST", _allocate),
          "/status": ("GET", lambda who, _request: _allocator.status(who)),
          "/profiles": ("GET", lambda who, _request: _allocator.offer(who)),
          "/admin": ("GET", lambda who, _request: _admin.sessions(who)),
          "/admin/end": ("POST", lambda who, request: _admin.end(who, _body(request).get("id")))}


def allocate(request):
    route = ROUTES.get(request.path.rstrip("/") or "/")
    if route is None:
        return error_response(404, "not-found", "use POST /allocate, GET /status or GET /profiles")
    method, handler = route
    if request.method != method:
        return error_response(405, "method-not-allowed", f"{request.path} takes {method}")
    try:
        who = _authenticator.identify(request.headers)
    except Unauthenticated as e:
        log("NOTICE", "unauthenticated request refused", reason=e.reason)
        return error_response(401, "unauthenticated", e.message)
    except KeysUnavailable:
        log("ERROR", "IAP signing keys unavailable")
        return error_response(503, "iap-keys-unavailable",
                              "The sign-in keys cannot be fetched; try again shortly.", 5)
    started, outcome, answer = time.monotonic(), "unavailable", None
    try:
        answer = handler(who, request)
        if isinstance(answer, dict):
            outcome = answer_outcome(answer)
        return answer if not isinstance(answer, dict) else json_response(answer)
    except RedisUnavailable as e:
        log("ERROR", "redis unavailable", id=who.id, error=type(e).__name__)
        return error_response(503, "redis-unavailable",
                              "Session storage is unavailable; try again shortly.", 2)
    except KubernetesUnavailable as e:
        log("ERROR", "kubernetes unavailable", id=who.id, error=str(e))
        return error_response(503, "kubernetes-unavailable",
                              "The cluster cannot be reached; try again shortly.", 3)
    except KubernetesError as e:
        log("ERROR", "kubernetes refused the request", id=who.id, status=e.status, error=str(e))
        return json_response({"status": "unavailable", "id": who.id,
                              "reason": "allocation-rejected",
                              "message": "The cluster refused to assign a GPU workspace."})
    finally:
        if handler is _allocate:
            # The line the allocator's metrics are made of (functions/shared/metrics.py).
            log("INFO", ALLOCATOR_ANSWER, outcome=outcome,
                profile=str((answer or {}).get("profile") or "") if isinstance(answer, dict) else "",
                latency_ms=round((time.monotonic() - started) * 1000, 1))


def answer_outcome(answer: dict) -> str:
    """What the person was told, in one word: ready, the waiting phase, refused, ..."""
    status = str(answer.get("status") or "")
    if status == "pending":
        return str(answer.get("phase") or "pending")
    return status or "unknown"
