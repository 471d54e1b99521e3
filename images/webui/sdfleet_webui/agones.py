"""A small client of the Agones SDK sidecar's REST API (``localhost:$AGONES_SDK_HTTP_PORT``).

Paths and shapes as the real sidecar serves them: ``PUT /metadata/annotation``
(``{"key", "value"}``; the sidecar adds the ``agones.dev/sdk-`` prefix), ``POST /ready``, ``POST /health``,
``POST /shutdown`` (body ``{}``), ``GET /gameserver`` (a GameServer with ``object_meta``,
``status.state``) and ``GET /watch/gameserver`` (newline-delimited ``{"result": GameServer}``
objects, one per change, on a long-lived response).
"""

from __future__ import annotations

import json
import threading
from typing import Iterator

import requests
import urllib3

IDENTITY_LABEL = "sdfleet.dev/identity"
# The allocator reads it (as agones.dev/sdk-sdfleet-phase) to tell a waiting person what
# the pod that will be theirs is doing.
PHASE_KEY = "sdfleet-phase"
# When this pod's first start reached each step it can see (JSON of unix seconds): stored on
# the game server as agones.dev/sdk-sdfleet-cold-start, so every deploy measures its own.
COLD_START_KEY = "sdfleet-cold-start"
# The supervisor's report that the GPU is busy, as unix seconds (agones.dev/sdk-gpu-activity).
GPU_ACTIVITY_KEY = "gpu-activity"
# How long an open watch may stay quiet before it is re-opened (and /gameserver re-read, so
# a change made while reconnecting is never missed). Quiet is normal: nothing changed.
WATCH_SILENCE = 30.0


class AgonesUnavailable(Exception):
    """The SDK sidecar did not answer (it may start after us: callers retry)."""


class AgonesSdk:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 3.0):
        self.base = f"http://{host}:{port}"
        self.timeout = timeout
        self.session = requests.Session()

    def _post(self, path: str) -> None:
        try:
            response = self.session.post(self.base + path, json={}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AgonesUnavailable(f"POST {path}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise AgonesUnavailable(f"POST {path}: HTTP {response.status_code}")

    def set_annotation(self, key: str, value: str) -> None:
        try:
            response = self.session.put(self.base + "/metadata/annotation",
                                        json={"key": key, "value": value}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AgonesUnavailable(f"PUT /metadata/annotation: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise AgonesUnavailable(f"PUT /metadata/annotation: HTTP {response.status_code}")

    def ready(self) -> None:
        self._post("/ready")

    def health(self) -> None:
        self._post("/health")

    def shutdown(self) -> None:
        self._post("/shutdown")

    def gameserver(self) -> dict:
        try:
            response = self.session.get(self.base + "/gameserver", timeout=self.timeout)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise AgonesUnavailable(f"GET /gameserver: {type(exc).__name__}") from None

    def watch(self, stop: threading.Event, read_timeout: float = WATCH_SILENCE) -> Iterator[dict]:
        """GameServer updates until the stream ends or stays quiet for `read_timeout`; then
        the caller re-reads `/gameserver` and reconnects. A quiet stream is normal (the SDK
        writes only on change), so silence ends it without an error; a refused or broken
        connection raises AgonesUnavailable."""
        try:
            with requests.get(self.base + "/watch/gameserver", stream=True,
                              timeout=(self.timeout, read_timeout)) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if isinstance(message, dict) and isinstance(message.get("result"), dict):
                        yield message["result"]
        except (requests.RequestException, ValueError) as exc:
            if quiet(exc):
                return
            raise AgonesUnavailable(f"GET /watch/gameserver: {type(exc).__name__}") from None


def quiet(exc: BaseException) -> bool:
    """A read that timed out on an open stream (requests raises ReadTimeout, or
    ConnectionError around urllib3's ReadTimeoutError while streaming): silence, not failure."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    seen = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.ReadTimeoutError):
            return True
        seen = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) \
            else seen.__context__
    return False


def state_of(gameserver: dict) -> str:
    return str((gameserver.get("status") or {}).get("state") or "")


def labels_of(gameserver: dict) -> dict:
    return dict((gameserver.get("object_meta") or {}).get("labels") or {})


def annotations_of(gameserver: dict) -> dict:
    return dict((gameserver.get("object_meta") or {}).get("annotations") or {})
