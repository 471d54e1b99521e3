"""The emulator's REST handlers (list, get, patch, delete, delete collection, allocate, events)
and its HTTP server side; the emulator's state and test controls stay in agones.py."""

from __future__ import annotations

import bisect
import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from testing.emulators.kube_api import _copy, _status, parse_label_selector

if TYPE_CHECKING:
    from testing.emulators.agones import AgonesEmulator

FLEET_LABEL = "agones.dev/fleet"


class _GameServerApi:
    """Mixed into AgonesEmulator (which owns the store, its lock, indexes and faults)."""

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
    emu: AgonesEmulator  # set on the subclass the emulator makes (agones.py)

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
