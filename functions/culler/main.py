"""Cloud Function `cull`: one pass of the idle culler (cull_pass.py, rules.py).

    POST /cull   -> 200 {summary}; Cloud Scheduler calls it every minute
    POST /export -> 200 {"exported", "cursor"}: ended sessions to BigQuery (export.py), daily

Authentication: Cloud Scheduler sends a Google-signed OIDC token for the function URL.
The platform checks it (only the scheduler's service account may invoke), and so does
this function: signature (Google's JWK set), audience `CULL_INVOKER_AUDIENCE`, issuer
accounts.google.com, and the service-account email in `CULL_INVOKER_EMAILS`. 401 for a
missing or bad token, 403 for a valid token of someone else. Redis or the Kubernetes API
down: 503 with Retry-After (the pass changed nothing it could not finish atomically).

Clients and the worker pool for Kubernetes calls are built once per instance.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from cull_pass import CullPass
from export import ExportFailed, UsageExport
from shared.agones import AgonesClient, KubernetesUnavailable
from shared.budgets import budget_reset_day
from shared.config import CullerSettings, KubernetesSettings, RedisSettings
from shared.env import BIGQUERY_URL, USAGE_TABLE
from shared.redis_client import connect
from shared.responses import error_response, json_response, log
from shared.state import RedisUnavailable, SessionStore
from shared.verifier import JwtVerifier, KeysUnavailable, Unauthenticated

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")

_redis_settings = RedisSettings.from_env()
_settings = CullerSettings.from_env()
_k8s_settings = KubernetesSettings.from_env()
_store = SessionStore(connect(_redis_settings, _redis_settings.password),
                      _redis_settings.prefix, budget_reset_day(os.environ))
_agones = AgonesClient(_k8s_settings)
_pool = ThreadPoolExecutor(max_workers=_k8s_settings.workers, thread_name_prefix="k8s")
_export = (UsageExport(_store, os.environ[USAGE_TABLE],
                       os.environ.get(BIGQUERY_URL) or "https://bigquery.googleapis.com",
                       fleets=_k8s_settings.fleets)
           if os.environ.get(USAGE_TABLE) else None)
# Google signs OIDC tokens with RS256; ES256 is accepted only if the key set holds EC keys.
_invoker = JwtVerifier(_settings.oidc_certs_url, _settings.invoker_audience, GOOGLE_ISSUERS,
                       ("RS256", "ES256"))


def _authorise(headers) -> None:
    auth = headers.get("Authorization", "")
    token = auth[7:] if auth.startswith("Bearer ") else None
    claims = _invoker.verify(token)
    if claims.get("email") not in _settings.invoker_emails or claims.get("email_verified") is False:
        raise PermissionError("this caller may not run the culler")


def cull(request):
    path = request.path.rstrip("/") or "/"
    if path not in ("/cull", "/", "/export"):
        return error_response(404, "not-found", "use POST /cull or POST /export")
    if request.method != "POST":
        return error_response(405, "method-not-allowed", f"{path} takes POST")
    try:
        _authorise(request.headers)
    except Unauthenticated as e:
        log("NOTICE", "culler call refused", reason=e.reason)
        return error_response(401, "unauthenticated", e.message)
    except PermissionError as e:
        log("NOTICE", "culler call refused", reason="not-an-invoker")
        return error_response(403, "forbidden", str(e))
    except KeysUnavailable:
        return error_response(503, "keys-unavailable", "The token keys cannot be fetched.", 30)
    if path == "/export":
        return _run_export()
    try:
        summary = CullPass(_store, _agones, _settings, _pool).run()
    except RedisUnavailable as e:
        log("ERROR", "culler pass aborted: redis unavailable", error=type(e).__name__)
        return error_response(503, "redis-unavailable", "Session storage is unavailable.", 30)
    except KubernetesUnavailable as e:
        log("ERROR", "culler pass aborted: kubernetes unavailable", error=str(e))
        return error_response(503, "kubernetes-unavailable", "The cluster cannot be reached.", 30)
    log("INFO", "culler pass", **summary)
    return json_response(summary)


def _run_export():
    if _export is None:
        return error_response(404, "not-found", "the usage export is off (config usageExport.enabled)")
    try:
        return json_response(_export.run())
    except ExportFailed as e:
        log("ERROR", "usage export failed", error=str(e))
        return error_response(503, "export-failed", str(e), 300)
    except RedisUnavailable as e:
        log("ERROR", "usage export aborted: redis unavailable", error=type(e).__name__)
        return error_response(503, "redis-unavailable", "Session storage is unavailable.", 300)
