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
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.emulators import agones_validation, netpol

# Creation of Agones objects, validated as Agones's webhook does (agones_validation.py).
CREATE_PATH = re.compile(
    r"^/apis/(agones\.dev|autoscaling\.agones\.dev)/v1/namespaces/([^/]+)/"
    r"(fleets|gameservers|fleetautoscalers)$")
CREATE_KINDS = {("agones.dev", "fleets"): "Fleet", ("agones.dev", "gameservers"): "GameServer",
                ("autoscaling.agones.dev", "fleetautoscalers"): "FleetAutoscaler"}
GS_PATH = re.compile(r"^/apis/agones\.dev/v1/namespaces/([^/]+)/gameservers(?:/([^/]+))?$")
GSA_PATH = re.compile(
    r"^/apis/allocation\.agones\.dev/v1/namespaces/([^/]+)/gameserverallocations$")
FLEET_LABEL = "agones.dev/fleet"
EVENTS_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")


class SdkUnreachable(ConnectionError):
    """The SDK sidecar could not open the API server: its pod's egress policy refuses it."""


def _copy(obj):
    """A private copy of stored JSON data (the C JSON codec is far quicker than deepcopy)."""
    return json.loads(json.dumps(obj))


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Selector:
    """A parsed label selector: `matches(labels)`, and the equality/set requirements
    (`(key, values)`) an index can use to find candidates without scanning."""

    def __init__(self, tests: list, lookups: list):
        self.tests, self.lookups = tests, lookups

    def __call__(self, labels: dict) -> bool:
        return all(t(labels) for t in self.tests)

    matches = __call__


def parse_label_selector(selector: str) -> Selector:
    """The Kubernetes label selector syntax, as a predicate over a labels dict."""
    tests, lookups = [], []
    # split on commas that are not inside parentheses
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", raw)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda l, k=key, vs=values: l.get(k) in vs)
                lookups.append((key, values))
            else:
                tests.append(lambda l, k=key, vs=values: l.get(k) not in vs)
            continue
        m = re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*(\S*)", raw)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda l, k=key, v=value: l.get(k) != v)
            else:
                tests.append(lambda l, k=key, v=value: l.get(k) == v)
                lookups.append((key, {value}))
            continue
        if raw.startswith("!"):
            tests.append(lambda l, k=raw[1:]: k not in l)
            continue
        if re.fullmatch(r"[A-Za-z0-9./_-]+", raw):
            tests.append(lambda l, k=raw: k in l)
            continue
        raise ValueError(f"unable to parse requirement: {raw!r}")
    return Selector(tests, lookups)


class _ValidatedCreation:
    """POST of Fleets, GameServers and FleetAutoscalers, refused (422 Invalid, the causes in
    `details.causes`) exactly when Agones's webhook would refuse them; admitted ones are kept
    in `emu.created[(kind, namespace, name)]`. Feature gates: `emu.features`, set from the
    chart's `featureGates` string with `emu.set_feature_gates("A=true&B=false")`."""

    def set_feature_gates(self, gates: str) -> None:
        self.features = agones_validation.features_from_gates(gates)

    def _create_validated(self, group: str, namespace: str, plural: str, body: bytes):
        kind = CREATE_KINDS[(group, plural)]
        self.calls[("POST", kind)] += 1
        try:
            obj = json.loads(body or b"{}")
        except ValueError:
            return 400, _status(400, "BadRequest", "body is not JSON"), {}
        if obj.get("kind") != kind:
            return 400, _status(400, "BadRequest", f"kind {obj.get('kind')!r} on {plural}"), {}
        features = getattr(self, "features", None) or agones_validation.DEFAULT_FEATURES
        problems = agones_validation.validate(obj, features)
        name = (obj.get("metadata") or {}).get("name", "")
        if problems:
            status = _status(422, "Invalid", f"{kind}.{group} {name!r} is invalid: "
                             + "; ".join(problems))
            status["details"] = {"name": name, "group": group, "kind": kind,
                                 "causes": [{"field": p.split(":", 1)[0],
                                             "message": p.split(":", 1)[1].strip()}
                                            for p in problems]}
            return 422, status, {}
        with self._lock:
            created = getattr(self, "created", None)
            if created is None:
                created = self.created = {}
            if (kind, namespace, name) in created:
                return 409, _status(409, "AlreadyExists", f"{plural} {name!r} already exists"), {}
            stored = _copy(obj)
            stored.setdefault("metadata", {}).update(namespace=namespace, uid=self._next_uid())
            created[(kind, namespace, name)] = stored
        return 201, _copy(stored), {}



# ---- faults after the side effect ----------------------------------------------------------
# A real API server can apply a request and still fail the caller: the response is lost
# with the connection, a proxy in front answers 5xx after the write, or the answer comes
# after the client's timeout. These are the faults that make a retried POST double-apply.

AFTER_MODES = ("status", "drop", "delay")


class FaultsAfterSideEffect:
    """Mixed into AgonesEmulator (which owns `_lock`, `_after_faults`, `after_request`,
    `calls`)."""

    def fail_after(self, mode: str = "status", status: int = 503, count: int = 1,
                   method: str | None = None, path_contains: str | None = None,
                   delay: float = 3.0) -> None:
        """The next `count` matching requests are applied, then: `status` answers `status`
        instead of the real answer; `drop` closes the connection without any answer; `delay`
        answers normally after `delay` seconds (past the client's read timeout)."""
        if mode not in AFTER_MODES:
            raise ValueError(f"mode must be one of {AFTER_MODES}")
        with self._lock:
            self._after_faults.append({"mode": mode, "status": status, "count": count,
                                       "method": method, "path": path_contains, "delay": delay})

    def after_side_effect(self, method: str, raw_path: str, answer: tuple):
        """Called by the handler once the request has been applied: the answer to write, or
        None to drop the connection."""
        path = urlsplit(raw_path).path
        if self.after_request:
            self.after_request(method, path, answer[0])
        fault = None
        with self._lock:
            for candidate in self._after_faults:
                if ((candidate["method"] is None or candidate["method"] == method)
                        and (candidate["path"] is None or candidate["path"] in path)):
                    candidate["count"] -= 1
                    if candidate["count"] <= 0:
                        self._after_faults.remove(candidate)
                    fault = candidate
                    break
        if fault is None:
            return answer
        self.calls[(method, f"after-fault-{fault['mode']}")] += 1
        if fault["mode"] == "drop":
            return None
        if fault["mode"] == "delay":
            time.sleep(fault["delay"])
            return answer
        return (fault["status"], _status(fault["status"], "InjectedFaultAfterSideEffect",
                                         "fault injected by test after the request was applied"),
                {})



class AgonesEmulator(_ValidatedCreation, FaultsAfterSideEffect):
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

    def _events_list(self, namespace: str, query: dict):
        wanted = {}
        for term in filter(None, (query.get("fieldSelector") or "").split(",")):
            key, sep, value = term.partition("=")
            if not sep or key not in self.EVENT_FIELDS:
                return 400, _status(400, "BadRequest",
                                    f'"{key}" is not a known field selector'), {}
            wanted[key] = value

        def field(event: dict, key: str) -> str:
            if key == "source":
                return (event.get("source") or {}).get("component", "")
            value = event
            for part in key.split("."):
                value = (value or {}).get(part) if isinstance(value, dict) else None
            return "" if value is None else str(value)
        with self._lock:
            items = [_copy(e) for e in self._events if e["metadata"]["namespace"] == namespace
                     and all(field(e, k) == v for k, v in wanted.items())]
        return 200, {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}, {}

    def _list(self, namespace: str, query: dict):
        try:
            selector = parse_label_selector(query.get("labelSelector", ""))
        except ValueError as e:
            return 400, _status(400, "BadRequest", str(e)), {}
        limit = int(query.get("limit") or 0)
        start_after = query.get("continue") or ""
        items, next_token = [], ""
        with self._lock:
            names = self._candidates(selector)
            i = bisect.bisect_right(names, start_after) if start_after else 0
            while i < len(names):
                obj = self._servers[names[i]]
                if obj["metadata"]["namespace"] == namespace and selector(obj["metadata"]["labels"]):
                    if limit and len(items) == limit:
                        next_token = items[-1]["metadata"]["name"]
                        break
                    items.append(_copy(obj))
                i += 1
            rv = str(self._resource_version)
        return 200, {"apiVersion": "agones.dev/v1", "kind": "GameServerList",
                     "metadata": {"resourceVersion": rv, "continue": next_token},
                     "items": items}, {}

    def _find(self, namespace: str, name: str):
        obj = self._servers.get(name)
        if obj is None or obj["metadata"]["namespace"] != namespace:
            return None
        return obj

    def _not_found(self, name: str):
        return 404, _status(404, "NotFound", f'gameservers.agones.dev "{name}" not found'), {}

    def _get(self, namespace: str, name: str):
        with self._lock:
            obj = self._find(namespace, name)
            return (200, _copy(obj), {}) if obj else self._not_found(name)

    def _delete(self, namespace: str, name: str, body: bytes):
        options = json.loads(body) if body else {}
        pre = options.get("preconditions") or {}
        with self._lock:
            obj = self._find(namespace, name)
            if obj is None:
                return self._not_found(name)
            meta = obj["metadata"]
            if ("uid" in pre and pre["uid"] != meta["uid"]) or (
                    "resourceVersion" in pre and pre["resourceVersion"] != meta["resourceVersion"]):
                return 409, _status(409, "Conflict", "Precondition failed"), {}
            self._remove_locked(name)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                         "details": {"name": name, "kind": "gameservers", "uid": meta["uid"]}}, {}

    def _delete_collection(self, namespace: str, query: dict):
        """deletecollection: every matching game server; answers the list of them."""
        try:
            selector = parse_label_selector(query.get("labelSelector", ""))
        except ValueError as e:
            return 400, _status(400, "BadRequest", str(e)), {}
        with self._lock:
            doomed = [self._servers[n] for n in self._candidates(selector)
                      if self._servers[n]["metadata"]["namespace"] == namespace
                      and selector(self._servers[n]["metadata"]["labels"])]
            for obj in doomed:
                self._remove_locked(obj["metadata"]["name"])
            rv = str(self._resource_version)
        return 200, {"apiVersion": "agones.dev/v1", "kind": "GameServerList",
                     "metadata": {"resourceVersion": rv}, "items": doomed}, {}

    def _patch(self, namespace: str, name: str, body: bytes):
        patch = json.loads(body or b"{}")
        with self._lock:
            obj = self._find(namespace, name)
            if obj is None:
                return self._not_found(name)
            meta = patch.get("metadata") or {}
            self._unindex(obj)
            for field in ("labels", "annotations"):
                for k, v in (meta.get(field) or {}).items():
                    if v is None:
                        obj["metadata"][field].pop(k, None)
                    else:
                        obj["metadata"][field][k] = v
            self._index(obj)
            self._bump(obj)
            return 200, _copy(obj), {}

    def _bump(self, obj: dict) -> None:
        self._resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self._resource_version)

    def _allocate(self, namespace: str, body: bytes):
        try:
            gsa = json.loads(body)
            spec = gsa["spec"]
        except (ValueError, KeyError, TypeError):
            return 400, _status(400, "BadRequest", "invalid GameServerAllocation"), {}
        if gsa.get("kind") != "GameServerAllocation":
            return 400, _status(400, "BadRequest", "kind must be GameServerAllocation"), {}
        selectors = spec.get("selectors") or [spec.get("required") or {}]
        metadata = spec.get("metadata") or {}
        with self._lock:
            chosen = None
            for sel in selectors:
                labels_wanted = (sel or {}).get("matchLabels") or {}
                state_wanted = (sel or {}).get("gameServerState") or "Ready"
                for name in self._names:
                    obj = self._servers[name]
                    labels = obj["metadata"]["labels"]
                    if (obj["metadata"]["namespace"] == namespace
                            and obj["status"]["state"] == state_wanted
                            and all(labels.get(k) == v for k, v in labels_wanted.items())):
                        chosen = obj
                        break
                if chosen:
                    break
            result = {"apiVersion": "allocation.agones.dev/v1", "kind": "GameServerAllocation",
                      "metadata": {"namespace": namespace}, "spec": spec,
                      "status": {"state": "UnAllocated"}}
            if chosen is None:
                return 201, result, {}
            chosen["status"]["state"] = "Allocated"
            self._unindex(chosen)
            chosen["metadata"]["labels"].update(metadata.get("labels") or {})
            self._index(chosen)
            chosen["metadata"]["annotations"].update(metadata.get("annotations") or {})
            self._bump(chosen)
            status = chosen["status"]
            result["status"] = {
                "state": "Allocated", "gameServerName": chosen["metadata"]["name"],
                "address": status["address"], "addresses": _copy(status["addresses"]),
                "ports": _copy(status["ports"]), "nodeName": status["nodeName"],
                "metadata": {"labels": dict(chosen["metadata"]["labels"]),
                             "annotations": dict(chosen["metadata"]["annotations"])}}
            return 201, result, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # headers and body are written separately
    emu: AgonesEmulator

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Authorization") != f"Bearer {self.emu.token}":
            code, payload, headers = 401, _status(401, "Unauthorized", "Unauthorized"), {}
        else:
            try:
                code, payload, headers = self.emu.handle(method, self.path, body)
            except Exception as e:  # an emulator bug must surface as a 500, not a hang
                code, payload, headers = 500, _status(500, "InternalError", repr(e)), {}
            answer = self.emu.after_side_effect(method, self.path, (code, payload, headers))
            if answer is None:       # the answer is lost: the connection just closes
                self.close_connection = True
                return
            code, payload, headers = answer
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._serve("PATCH")

    def log_message(self, *args):
        pass
