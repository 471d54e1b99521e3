"""A Kubernetes API server look-alike that knows Agones game servers and allocations.

What it speaks (JSON over HTTP/1.1 with keep-alive, bearer token required on every call):

    GET    /apis/agones.dev/v1/namespaces/<ns>/gameservers?labelSelector=&limit=&continue=
    GET    /apis/agones.dev/v1/namespaces/<ns>/gameservers/<name>
    DELETE /apis/agones.dev/v1/namespaces/<ns>/gameservers/<name>   (body may carry
           DeleteOptions with preconditions.uid / preconditions.resourceVersion -> 409)
    DELETE /apis/agones.dev/v1/namespaces/<ns>/gameservers?labelSelector=   (deletecollection;
           answers the GameServerList of what it deleted)
    PATCH  /apis/agones.dev/v1/namespaces/<ns>/gameservers/<name>   (merge patch of
           metadata.labels / metadata.annotations)
    POST   /apis/allocation.agones.dev/v1/namespaces/<ns>/gameserverallocations
    POST   /apis/{agones.dev,autoscaling.agones.dev}/v1/namespaces/<ns>/{fleets,gameservers,
           fleetautoscalers}   (Agones's own validation, agones_validation.py: 422 Invalid)

Semantics kept from the real thing: label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`,
`k in (a,b)`, `k notin (a,b)`), list paging with `limit`/`continue` in name order,
`kind: Status` error bodies with the HTTP code, a GameServerAllocation that moves one
game server matching a selector (`matchLabels` + `gameServerState`, default Ready) to
Allocated and applies `spec.metadata` labels/annotations, and answers `status.state`
`Allocated` (with `gameServerName`, `address`, `addresses`, `ports`, `nodeName`) or
`UnAllocated` when nothing matches. Deletion is immediate (the real API passes through
Shutdown first; callers must not rely on either).

Python API for tests (stable; tests/router reuses it):

    emu = AgonesEmulator(token="t", namespace="default", fleet="sdfleet-webui").start()
    emu.url                                  # http://127.0.0.1:<port>
    emu.add_ready(name, address="127.0.0.1", port=7860)   # a Ready server of the fleet
    emu.add_game_server(name, state="Scheduled", ...)      # any state, labels, fleet
    emu.add_many(names, address=..., port=...)             # bulk Ready (benchmarks)
    emu.set_state(name, "Unhealthy"); emu.make_unhealthy(name)
    emu.remove(name)                         # deleted behind the caller's back
    emu.game_server(name) -> dict | None     # a copy of the stored object
    emu.game_servers(state=None) -> list[dict]
    emu.fail_next(status=503, count=1, method=None, path_contains=None, retry_after=None)
    emu.on_request = callable(method, path)  # called before each authorised request
    # Faults after the side effect (the request is applied, then its answer goes wrong):
    emu.fail_after(mode="status"|"drop"|"delay", status=503, count=1, method=None,
                   path_contains=None, delay=3.0)
    emu.after_request = callable(method, path, status)   # after the side effect, before
                                                          # the answer is written
    # The cluster network: an SDK sidecar's Ready goes to the API server through its pod's
    # egress policy (netpol.py); a refused connection leaves the game server where it was.
    emu.use_network(policies, api_server=Endpoint(ip="172.16.0.2", port=443))
    emu.sdk_ready(name, pod=Pod(namespace, labels))   # raises SdkUnreachable when refused
    emu.add_pod_event(pod, reason, message, type_="Warning", at=None)   # core/v1 Event on a pod
    emu.calls                                # Counter of (method, kind) handled
    emu.reset()                              # empty again (servers, faults, hook, calls)
    emu.stop()
"""

from __future__ import annotations

import bisect
import collections
import gc
import re
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from testing.emulators import netpol
from testing.emulators.agones_creation import CREATE_PATH, _ValidatedCreation
from testing.emulators.agones_faults import FaultsAfterSideEffect
from testing.emulators.agones_rest import FLEET_LABEL, _GameServerApi, _Handler
from testing.emulators.kube_api import _copy, _status

GS_PATH = re.compile(r"^/apis/agones\.dev/v1/namespaces/([^/]+)/gameservers(?:/([^/]+))?$")
GSA_PATH = re.compile(
    r"^/apis/allocation\.agones\.dev/v1/namespaces/([^/]+)/gameserverallocations$")
EVENTS_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")


class SdkUnreachable(ConnectionError):
    """The SDK sidecar could not open the API server: its pod's egress policy refuses it."""


class AgonesEmulator(_ValidatedCreation, FaultsAfterSideEffect, _GameServerApi):
    def __init__(self, token: str = "test-k8s-token", namespace: str = "default",
                 fleet: str = "sdfleet-webui"):
        self.token, self.namespace, self.fleet = token, namespace, fleet
        self._lock = threading.Lock()
        self._servers: dict[str, dict] = {}
        self._names: list[str] = []          # sorted, for paging
        self._by_label: dict[tuple, set] = collections.defaultdict(set)   # (k, v) -> names
        self._faults: list[dict] = []
        self._resource_version = 1
        self._uid_base, self._uid_counter = uuid.uuid4().hex[:8], 0
        self.on_request = None
        self._after_faults: list[dict] = []   # see "faults after the side effect"
        self.after_request = None
        self.calls: collections.Counter = collections.Counter()
        self._httpd: ThreadingHTTPServer | None = None
        self._policies: list[dict] = []
        self._api_server: netpol.Endpoint | None = None
        self._events: list[dict] = []

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> "AgonesEmulator":
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True,
                         name="agones-emulator").start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- test controls ---------------------------------------------------------------
    def reset(self) -> None:
        """Forget every game server, fault, hook and counter (reuse across tests)."""
        with self._lock:
            self._servers.clear()
            self._names.clear()
            self._by_label.clear()
            self._faults.clear()
            self._after_faults.clear()
            self._events.clear()
            self.after_request = None
            self.on_request = None
            self.calls.clear()

    def _next_uid(self) -> str:
        """Unique per object (uuid4 per object is slow for bulk inserts)."""
        self._uid_counter += 1
        return f"{self._uid_base}-0000-4000-8000-{self._uid_counter:012x}"

    def _new_object(self, name: str, state: str, address: str, port: int, fleet: str | None,
                    labels: dict | None, annotations: dict | None, port_name: str) -> dict:
        self._resource_version += 1
        all_labels = {FLEET_LABEL: fleet or self.fleet, **(labels or {})}
        return {
            "apiVersion": "agones.dev/v1", "kind": "GameServer",
            "metadata": {"name": name, "namespace": self.namespace, "uid": self._next_uid(),
                         "resourceVersion": str(self._resource_version),
                         "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "labels": all_labels, "annotations": dict(annotations or {})},
            "spec": {"ports": [{"name": port_name, "portPolicy": "None",
                                "containerPort": port}]},
            "status": {"state": state, "address": address,
                       "addresses": [{"type": "PodIP", "address": address}],
                       "ports": [{"name": port_name, "port": port}],
                       "nodeName": "gpu-node-1"},
        }

    def add_game_server(self, name: str, state: str = "Ready", address: str = "127.0.0.1",
                        port: int = 7860, *, fleet: str | None = None,
                        labels: dict | None = None, annotations: dict | None = None,
                        port_name: str = "webui", created_at: float | None = None) -> dict:
        with self._lock:
            obj = self._new_object(name, state, address, port, fleet, labels, annotations,
                                   port_name)
            if created_at is not None:
                obj["metadata"]["creationTimestamp"] = time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(created_at))
            if name in self._servers:
                self._remove_locked(name)
            bisect.insort(self._names, name)
            self._servers[name] = obj
            self._index(obj)
            return _copy(obj)

    def add_pod_event(self, pod: str, reason: str, message: str, type_: str = "Warning",
                      at: float | None = None, source: str = "cluster-autoscaler",
                      field_path: str | None = None) -> dict:
        """An Event about a pod, as the cluster autoscaler, the scheduler or the kubelet
        writes them (core/v1 Event; the kubelet's name a container by `fieldPath`)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))
        involved = {"kind": "Pod", "namespace": self.namespace, "name": pod}
        if field_path:
            involved["fieldPath"] = field_path
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{pod}.{self._next_uid()[-8:]}", "namespace": self.namespace},
                 "involvedObject": involved,
                 "reason": reason, "message": message, "type": type_,
                 "source": {"component": source}, "firstTimestamp": stamp,
                 "lastTimestamp": stamp, "count": 1}
        with self._lock:
            self._events.append(event)
        return _copy(event)

    def add_ready(self, name: str, address: str = "127.0.0.1", port: int = 7860,
                  **kwargs) -> dict:
        return self.add_game_server(name, "Ready", address, port, **kwargs)

    def add_many(self, names, state: str = "Ready", address: str = "127.0.0.1",
                 port: int = 7860, labels_for=None, annotations_for=None) -> None:
        """Bulk insert (sorted once). `labels_for(name)` may add labels per server."""
        with self._lock:
            for name in names:
                labels = labels_for(name) if labels_for else None
                annotations = annotations_for(name) if annotations_for else None
                if name in self._servers:
                    self._unindex(self._servers[name])
                obj = self._new_object(name, state, address, port, None, labels, annotations,
                                       "webui")
                self._servers[name] = obj
                self._index(obj)
            self._names = sorted(self._servers)
        # Hundreds of thousands of long-lived dicts make every full garbage collection
        # crawl; they are never cyclic garbage, so move them out of the collector's sight.
        gc.collect()
        gc.freeze()

    def set_state(self, name: str, state: str) -> None:
        with self._lock:
            self._servers[name]["status"]["state"] = state

    def use_network(self, policies: list[dict], api_server: "netpol.Endpoint") -> None:
        """NetworkPolicies in force and where pods reach the API server."""
        self._policies, self._api_server = list(policies), api_server

    def sdk_ready(self, name: str, pod: "netpol.Pod") -> dict:
        """What the SDK sidecar does on `Ready()`: patch the game server through the API
        server (agones pkg/sdkserver/sdkserver.go updateState). Its informer's cache sync
        comes first, so a sidecar that cannot reach the API server never gets that far."""
        if self._api_server is None:
            raise RuntimeError("use_network() first: where is the API server?")
        if not netpol.surely_allowed(self._policies, pod, self._api_server):
            raise SdkUnreachable(
                f"pod {pod.namespace}/{pod.labels} may not open the API server at "
                f"{self._api_server.ip}:{self._api_server.port} (its egress policy refuses it)")
        with self._lock:
            obj = self._servers[name]
            obj["status"]["state"] = "Ready"
            self._bump(obj)
            return _copy(obj)

    def sdk_update(self, name: str, *, state: str | None = None,
                   annotations: dict | None = None) -> dict | None:
        """What a pod's SDK sidecar writes to its own game server (Ready, Shutdown,
        SetAnnotation), without the network check of ``sdk_ready``; None once it is gone.
        Ready on an Allocated game server returns it to the pool, as in Agones."""
        with self._lock:
            obj = self._servers.get(name)
            if obj is None:
                return None
            if state is not None:
                obj["status"]["state"] = state
            obj["metadata"]["annotations"].update(annotations or {})
            self._bump(obj)
            return _copy(obj)

    def make_unhealthy(self, name: str) -> None:
        self.set_state(name, "Unhealthy")

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._remove_locked(name)

    def _index(self, obj: dict) -> None:
        for kv in obj["metadata"]["labels"].items():
            self._by_label[kv].add(obj["metadata"]["name"])

    def _unindex(self, obj: dict) -> None:
        for kv in obj["metadata"]["labels"].items():
            self._by_label[kv].discard(obj["metadata"]["name"])

    def _candidates(self, selector) -> list[str]:
        """Names that may match, in name order: from the label index when the selector
        has an equality or `in` requirement narrower than a quarter of all servers."""
        best, best_size = None, len(self._names) // 4
        for key, values in selector.lookups:
            sets = [self._by_label.get((key, v), ()) for v in values]
            size = sum(len(x) for x in sets)
            if size <= best_size:
                best, best_size = sets, size
        if best is None:
            return self._names
        return sorted(set().union(*best))

    def _remove_locked(self, name: str) -> bool:
        obj = self._servers.pop(name, None)
        if obj is None:
            return False
        self._unindex(obj)
        i = bisect.bisect_left(self._names, name)
        if i < len(self._names) and self._names[i] == name:
            del self._names[i]
        return True

    def game_server(self, name: str) -> dict | None:
        with self._lock:
            obj = self._servers.get(name)
            return _copy(obj) if obj else None

    def game_servers(self, state: str | None = None) -> list[dict]:
        with self._lock:
            return [_copy(self._servers[n]) for n in self._names
                    if state is None or self._servers[n]["status"]["state"] == state]

    def fail_next(self, status: int = 503, count: int = 1, method: str | None = None,
                  path_contains: str | None = None, retry_after: int | None = None) -> None:
        """The next `count` matching requests answer `status` (e.g. 429, 500, 503)."""
        with self._lock:
            self._faults.append({"status": status, "count": count, "method": method,
                                 "path": path_contains, "retry_after": retry_after})

    # ---- request handling (called by the handler threads) ----------------------------
    def _take_fault(self, method: str, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if ((fault["method"] is None or fault["method"] == method)
                        and (fault["path"] is None or fault["path"] in path)):
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict, dict]:
        parts = urlsplit(raw_path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        fault = self._take_fault(method, path)
        if fault:
            headers = {"Retry-After": str(fault["retry_after"])} if fault["retry_after"] else {}
            return fault["status"], _status(fault["status"], "InjectedFault",
                                            "fault injected by test"), headers
        if self.on_request:
            self.on_request(method, path)
        m = GS_PATH.match(path)
        if m:
            namespace, name = m.groups()
            if name is None and method == "GET":
                self.calls[(method, "list")] += 1
                return self._list(namespace, query)
            if name is None and method == "DELETE":
                self.calls[(method, "collection")] += 1
                return self._delete_collection(namespace, query)
            if name is not None and method == "GET":
                self.calls[(method, "gameserver")] += 1
                return self._get(namespace, name)
            if name is not None and method == "DELETE":
                self.calls[(method, "gameserver")] += 1
                return self._delete(namespace, name, body)
            if name is not None and method == "PATCH":
                self.calls[(method, "gameserver")] += 1
                return self._patch(namespace, name, body)
            return 405, _status(405, "MethodNotAllowed", f"{method} not allowed"), {}
        m = GSA_PATH.match(path)
        if m and method == "POST":
            self.calls[(method, "allocation")] += 1
            return self._allocate(m.group(1), body)
        m = EVENTS_PATH.match(path)
        if m and method == "GET":
            self.calls[(method, "events")] += 1
            return self._events_list(m.group(1), query)
        m = CREATE_PATH.match(path)
        if m and method == "POST":
            return self._create_validated(m.group(1), m.group(2), m.group(3), body)
        return 404, _status(404, "NotFound", "the server could not find the requested resource"), {}

    # The field labels core/v1 Events accept in a fieldSelector (kubernetes
    # pkg/registry/core/event/strategy.go ToSelectableFields, plus metadata.*).
    EVENT_FIELDS = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                    "involvedObject.uid", "involvedObject.apiVersion",
                    "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                    "reportingComponent", "source", "type", "metadata.name", "metadata.namespace"}
