"""A small Agones client over the Kubernetes REST API.

Only what the allocator and culler need: create a `GameServerAllocation`
(allocation.agones.dev/v1) that picks a Ready game server of our fleet and labels it with
the identity; get, list (label selector, paged) and delete `GameServer`s (agones.dev/v1).

HTTP goes through one urllib3 pool per process (keep-alive, cluster CA verified; plain
http only to loopback for tests). The bearer token is `K8S_TOKEN` in tests and otherwise
a google-auth access token of the function's service account (GKE accepts it for IAM-
authorised principals), refreshed before it expires.

Reads and deletes are idempotent: transient failures (connection errors, 429, 5xx) are
retried a bounded number of times with exponential back-off, honouring a short Retry-After;
after that the caller gets `KubernetesUnavailable` and answers 503. Other 4xx answers are
`KubernetesError`.

The allocation POST is not idempotent: each one that is applied allocates another game
server. It is retried here only when it surely was not applied (no connection could be
made, or 429: the API server's flow control refuses before handling). A timeout, a dropped
connection or a 5xx may come after the allocation was applied, so the client raises
`AllocationOutcomeUnknown` and the allocator looks the person's game server up by label
before it asks again (functions/allocator/allocation.py).

Why not the `kubernetes` client library (17.11): measured on this project's machine,
kubernetes==37.0.2 installs 163 MB with its dependencies (126 MB for the package itself,
plus aiohttp, pydantic, oauthlib, websocket-client...) against 0 MB here (urllib3 and
google-auth are already needed), and `import kubernetes.client` takes about 330 ms against
about 70 ms for urllib3: a cold-start cost on the culler (min instances 0, called every
minute) and on every allocator scale-up, for four REST calls. It would not remove the
hard part either: its generated CustomObjectsApi has no notion of an allocation being
applied but unanswered, which is what this module and the allocator handle.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlencode

import urllib3

from .config import KubernetesSettings
from .verifier import require_safe_url

FLEET_LABEL = "agones.dev/fleet"
IDENTITY_LABEL = "sdfleet.dev/identity"
EMAIL_ANNOTATION = "sdfleet.dev/email"
ALLOCATED_AT_ANNOTATION = "sdfleet.dev/allocated-at"
# Set by the WebUI pod's supervisor through the Agones SDK (SetAnnotation adds the prefix)
# while its WebUI starts and loads the model, before the game server is Ready.
PHASE_ANNOTATION = "agones.dev/sdk-sdfleet-phase"
# ... and, once its WebUI made its first image, the steps of its cold start (JSON of times).
COLD_START_ANNOTATION = "agones.dev/sdk-sdfleet-cold-start"
# The pod's trusted front reports traffic through the SDK: SetAnnotation("last-activity",
# "<unix seconds>"). The SDK server stores SDK annotations under the prefix
# "agones.dev/sdk-" (Agones pkg/sdkserver/sdk.go, `metadataPrefix`; sdkserver.go
# updateAnnotation sets Annotations[metadataPrefix+key]). docs/contracts.md, "Activity".
LAST_ACTIVITY_ANNOTATION = "agones.dev/sdk-last-activity"
# The pod's supervisor reports a busy GPU the same way: SetAnnotation("gpu-activity", ...).
GPU_ACTIVITY_ANNOTATION = "agones.dev/sdk-gpu-activity"
# Set at allocation when the person's GPU-hour budget ends the session before anything else.
BUDGET_ENDS_AT_ANNOTATION = "sdfleet.dev/budget-ends-at"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# The request never left: no connection was made. NewConnectionError (refused) and
# NameResolutionError subclass ConnectTimeoutError in urllib3 2.x (urllib3/exceptions.py).
NOT_SENT_ERRORS = (urllib3.exceptions.ConnectTimeoutError,)
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER_SECONDS = 2.0


class KubernetesUnavailable(Exception):
    pass


class AllocationOutcomeUnknown(KubernetesUnavailable):
    """The allocation POST may or may not have been applied (timeout, lost answer, 5xx)."""


class KubernetesError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"Kubernetes API answered {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class GameServer:
    name: str
    uid: str
    state: str
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    target: str | None = None            # ip:port of the WebUI, once it has an address
    created_at: float = 0.0
    deleting: bool = False

    @property
    def identity(self) -> str | None:
        return self.labels.get(IDENTITY_LABEL)

    @property
    def fleet(self) -> str:
        return str(self.labels.get(FLEET_LABEL) or "")

    @property
    def phase(self) -> str:
        """What the pod's supervisor says it is doing ("loading-model"), or ""."""
        return str(self.annotations.get(PHASE_ANNOTATION) or "")

    @property
    def budget_ends_at(self) -> float | None:
        try:
            value = float(self.annotations[BUDGET_ENDS_AT_ANNOTATION])
        except (KeyError, ValueError):
            return None
        return value if value == value and abs(value) != float("inf") else None

    @property
    def allocated_at(self) -> float:
        """When it was handed out: our annotation, else its creation time."""
        try:
            return float(self.annotations[ALLOCATED_AT_ANNOTATION])
        except (KeyError, ValueError):
            return self.created_at

    @classmethod
    def from_object(cls, obj: dict, port_name: str) -> "GameServer":
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        return cls(name=meta.get("name", ""), uid=meta.get("uid", ""),
                   state=status.get("state", ""), labels=dict(meta.get("labels") or {}),
                   annotations=dict(meta.get("annotations") or {}),
                   target=_target(status, port_name),
                   created_at=_parse_time(meta.get("creationTimestamp")),
                   deleting=bool(meta.get("deletionTimestamp")))


@dataclass(frozen=True)
class Allocation:
    state: str                      # Allocated | UnAllocated | Contention
    game_server: str | None = None
    target: str | None = None


def _target(status: dict, port_name: str) -> str | None:
    """`<pod IP>:<webui port>`: the PodIP address when Agones reports one."""
    address = next((a.get("address") for a in status.get("addresses") or []
                    if a.get("type") == "PodIP"), None) or status.get("address")
    ports = status.get("ports") or []
    port = next((p.get("port") for p in ports if p.get("name") == port_name), None)
    if port is None and ports:
        port = ports[0].get("port")
    return f"{address}:{port}" if address and port else None


def fleet_selector(fleets) -> str:
    fleets = list(fleets)
    if len(fleets) == 1:
        return f"{FLEET_LABEL}={fleets[0]}"
    return f"{FLEET_LABEL} in ({','.join(fleets)})"


def _parse_time(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class TokenSource:
    """Bearer tokens: a fixed one (tests) or google-auth default credentials."""

    def __init__(self, static_token: str | None = None):
        self._static, self._lock, self._credentials = static_token, threading.Lock(), None

    def token(self) -> str:
        if self._static:
            return self._static
        with self._lock:
            import google.auth
            from google.auth.transport.requests import Request
            if self._credentials is None:
                self._credentials, _ = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/cloud-platform"])
            if not self._credentials.valid:
                self._credentials.refresh(Request())
            return self._credentials.token


class AgonesClient:
    def __init__(self, settings: KubernetesSettings, tokens: TokenSource | None = None):
        self.settings = settings
        self.base = require_safe_url(settings.api_url, "K8S_API_URL")
        self.tokens = tokens or TokenSource(settings.token)
        pool_args = dict(maxsize=max(settings.workers, 4), block=False,
                         timeout=urllib3.Timeout(connect=2.0, read=settings.timeout_seconds),
                         retries=False)
        if self.base.startswith("https"):
            if settings.ca_data:
                pool_args["ca_cert_data"] = base64.b64decode(settings.ca_data).decode()
            elif settings.ca_file:
                pool_args["ca_certs"] = settings.ca_file
            pool_args["cert_reqs"] = "CERT_REQUIRED"
        self.http = urllib3.PoolManager(num_pools=2, **pool_args)
        ns = quote(settings.namespace, safe="")
        self.gs_path = f"/apis/agones.dev/v1/namespaces/{ns}/gameservers"
        self.gsa_path = f"/apis/allocation.agones.dev/v1/namespaces/{ns}/gameserverallocations"
        self.events_path = f"/api/v1/namespaces/{ns}/events"

    # ---- transport -------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None,
                 ok=(200, 201), idempotent: bool = True) -> tuple[int, dict]:
        """One call; transient failures retried only where a repeat is harmless (see the
        module docstring). `idempotent=False` raises AllocationOutcomeUnknown instead of
        retrying whenever the request may have been applied."""
        data = json.dumps(body).encode() if body is not None else None
        last = "no attempt"
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(min(0.05 * 2 ** attempt, MAX_RETRY_AFTER_SECONDS))
            headers = {"Authorization": f"Bearer {self.tokens.token()}",
                       "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self.http.request(method, self.base + path, body=data,
                                             headers=headers)
            except NOT_SENT_ERRORS as e:
                last = type(e).__name__
                continue
            except urllib3.exceptions.HTTPError as e:
                last = type(e).__name__
                if not idempotent:
                    raise AllocationOutcomeUnknown(f"{method} {path}: {last}") from None
                continue
            status = response.status
            if status in RETRYABLE_STATUS:
                last = f"HTTP {status}"
                if not idempotent and status != 429:
                    raise AllocationOutcomeUnknown(f"{method} {path}: {last}")
                retry_after = response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    time.sleep(min(float(retry_after), MAX_RETRY_AFTER_SECONDS))
                continue
            try:
                payload = json.loads(response.data or b"{}")
            except ValueError:
                payload = {}
            if status in ok or status == 404:
                return status, payload
            raise KubernetesError(status, str(payload.get("message", ""))[:200])
        raise KubernetesUnavailable(f"{method} {path.split('?')[0]} failed: {last}")

    # ---- game servers ----------------------------------------------------------------
    def get(self, name: str) -> GameServer | None:
        status, obj = self._request("GET", f"{self.gs_path}/{quote(name, safe='')}")
        return None if status == 404 else GameServer.from_object(obj, self.settings.port_name)

    def list(self, label_selector: str, limit: int | None = None,
             continue_token: str | None = None) -> tuple[list[GameServer], str]:
        query = {"labelSelector": label_selector}
        if limit:
            query["limit"] = str(limit)
        if continue_token:
            query["continue"] = continue_token
        status, obj = self._request("GET", f"{self.gs_path}?{urlencode(query)}")
        if status == 404:
            raise KubernetesError(404, "the GameServer resource is not served (is Agones installed?)")
        items = [GameServer.from_object(o, self.settings.port_name) for o in obj.get("items") or []]
        return items, (obj.get("metadata") or {}).get("continue") or ""

    @property
    def fleet_selector(self) -> str:
        """Our fleets' game servers (one fleet per profile)."""
        return fleet_selector(self.settings.fleets)

    def fleet_game_servers(self, extra_selector: str = "", limit: int = 500,
                           fleet: str | None = None) -> list[GameServer]:
        """Game servers of one fleet, or of all ours."""
        base = f"{FLEET_LABEL}={fleet}" if fleet else self.fleet_selector
        selector = base + (f",{extra_selector}" if extra_selector else "")
        return self.list(selector, limit=limit)[0]

    def pod_events(self, pod: str) -> list[dict]:
        """The events of one pod (a game server's pod has the game server's name)."""
        query = urlencode({"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={pod}",
                           "limit": "50"})
        status, obj = self._request("GET", f"{self.events_path}?{query}")
        return [] if status == 404 else list(obj.get("items") or [])

    def delete(self, name: str, uid: str | None = None) -> bool:
        """True if deleted now, False if it was already gone. 409: uid changed (reused name)."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        status, _ = self._request("DELETE", f"{self.gs_path}/{quote(name, safe='')}", body,
                                  ok=(200, 202))
        return status != 404

    def delete_for_identities(self, identities: list[str]) -> list[GameServer]:
        """deletecollection of our fleet's game servers labelled with these identities;
        answers what was deleted. One request for a whole batch of culls."""
        selector = f"{self.fleet_selector},{IDENTITY_LABEL} in ({','.join(identities)})"
        status, obj = self._request(
            "DELETE", f"{self.gs_path}?{urlencode({'labelSelector': selector})}",
            {"kind": "DeleteOptions", "apiVersion": "v1"}, ok=(200, 202))
        if status == 404:
            return []
        return [GameServer.from_object(o, self.settings.port_name) for o in obj.get("items") or []]

    # ---- allocation ------------------------------------------------------------------
    def allocate(self, identity: str, email: str, allocated_at: float,
                 fleet: str | None = None, budget_ends_at: float | None = None) -> Allocation:
        """Ask Agones for one Ready game server of the fleet (default: the first of ours),
        labelled with the identity. Raises AllocationOutcomeUnknown when it may have been
        applied without an answer."""
        body = {
            "apiVersion": "allocation.agones.dev/v1", "kind": "GameServerAllocation",
            "spec": {
                "selectors": [{"matchLabels": {FLEET_LABEL: fleet or self.settings.fleet},
                               "gameServerState": "Ready"}],
                "scheduling": "Packed",
                "metadata": {"labels": {IDENTITY_LABEL: identity},
                             "annotations": {EMAIL_ANNOTATION: email,
                                             ALLOCATED_AT_ANNOTATION: repr(allocated_at),
                                             **({BUDGET_ENDS_AT_ANNOTATION: repr(budget_ends_at)}
                                                if budget_ends_at is not None else {})}},
            },
        }
        status, obj = self._request("POST", self.gsa_path, body, idempotent=False)
        if status == 404:
            raise KubernetesError(404, "GameServerAllocation is not served (is Agones installed?)")
        st = obj.get("status") or {}
        state = st.get("state", "")
        if state == "Allocated":
            return Allocation(state, st.get("gameServerName"),
                              _target(st, self.settings.port_name))
        return Allocation(state or "UnAllocated")
