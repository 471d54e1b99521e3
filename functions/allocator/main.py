"""Cloud Function `allocate`: the router asks it for a person's GPU workspace.

    POST /allocate   find or allocate the caller's game server (see allocation.py);
                     body {"adoptOnly": true}: find it, never allocate
    GET  /status     the same answer shapes, never allocating

The caller is identified only by the IAP assertion in `x-goog-iap-jwt-assertion`
(verified here, on top of the platform's own check of the router's OIDC token). Bad or
missing assertion: 401 and nothing is read or written. Redis or the Kubernetes API down:
503 with Retry-After; every write is a single script, so nothing is half-written.
HTTP contract: functions/README.md and docs/contracts.md section 3.

Clients (Redis pool, Kubernetes pool, cached IAP keys) are built once per instance at
cold start and reused by every request.
"""

from __future__ import annotations

from allocation import Allocator
from shared.agones import AgonesClient, KubernetesError, KubernetesUnavailable
from shared.config import AllocatorSettings, KubernetesSettings, RedisSettings
from shared.verifier import IapAuthenticator, KeysUnavailable, Unauthenticated
from shared.responses import error_response, json_response, log
from shared.state import RedisUnavailable, SessionStore, connect

_redis_settings = RedisSettings.from_env()
_settings = AllocatorSettings.from_env()
_store = SessionStore(connect(_redis_settings, _redis_settings.password),
                      _redis_settings.prefix)
_authenticator = IapAuthenticator(_settings.iap_audience, _settings.iap_certs_url,
                                  _settings.clock_skew_seconds)
_allocator = Allocator(_store, AgonesClient(KubernetesSettings.from_env()), _settings)

def _allocate(who, request):
    body = request.get_json(silent=True)
    return _allocator.allocate(who, adopt_only=isinstance(body, dict) and body.get("adoptOnly") is True)


ROUTES = {"/allocate": ("POST", _allocate),
          "/status": ("GET", lambda who, _request: _allocator.status(who))}


def allocate(request):
    route = ROUTES.get(request.path.rstrip("/") or "/")
    if route is None:
        return error_response(404, "not-found", "use POST /allocate or GET /status")
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
    try:
        return json_response(handler(who, request))
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
