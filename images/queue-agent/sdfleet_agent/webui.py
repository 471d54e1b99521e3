"""HTTP client of the AUTOMATIC1111-style WebUI API that runs beside the agent.

- health: GET <health path> answers 2xx within a few seconds.
- model: the job's config name is mapped to its file by the model store's manifest
  (models.py); the checkpoint is the one /sdapi/v1/sd-models lists with exactly that file
  name. Closest-name matching would silently run the wrong model.
- progress: GET /sdapi/v1/progress gives `eta_relative` (seconds left; A1111 modules/api/api.py
  `progressapi`, ProgressResponse), which the agent uses on SIGTERM to decide whether a job
  still fits in the grace period.
- generation: POST /sdapi/v1/txt2img or /sdapi/v1/img2img with a read timeout. Timeouts,
  dropped connections and 5xx are retryable; 4xx (the WebUI refusing the parameters) is not.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import posixpath
from dataclasses import dataclass, field

import requests

from .errors import PermanentJobError, RetryableJobError

log = logging.getLogger("sdfleet.agent.webui")

CONNECT_TIMEOUT = 5.0


@dataclass
class Generation:
    images: list[bytes]
    info: object
    parameters: dict = field(default_factory=dict)
    model: str | None = None  # the WebUI's own name of the checkpoint it used


class FrameworkClient:
    """What every framework's client holds: where the WebUI answers, where its health route
    is, how long a job and a health wait may take, and one kept-alive HTTP session."""

    def __init__(self, base_url: str, health_path: str, job_timeout: float,
                 health_timeout: float):
        self.base_url = base_url.rstrip("/")
        self.health_path = health_path
        self.job_timeout = job_timeout
        self.health_timeout = health_timeout
        self.session = requests.Session()


class WebUiClient(FrameworkClient):
    """AUTOMATIC1111's API (`/sdapi/v1/*`)."""

    def __init__(self, base_url: str, health_path: str, job_timeout: float,
                 health_timeout: float):
        super().__init__(base_url, health_path, job_timeout, health_timeout)
        self._models: list[dict] | None = None

    def healthy(self) -> bool:
        try:
            response = self.session.get(self.base_url + self.health_path,
                                        timeout=(CONNECT_TIMEOUT, self.health_timeout))
            return response.ok
        except requests.RequestException:
            return False

    def interrupt(self) -> None:
        """Best effort: ask the WebUI to stop the generation we are abandoning."""
        try:
            requests.post(self.base_url + "/sdapi/v1/interrupt", timeout=2)
        except requests.RequestException:
            pass

    def eta_seconds(self) -> float | None:
        """Seconds the running generation still needs, as A1111 estimates it (None: unknown)."""
        try:
            answer = self.session.get(self.base_url + "/sdapi/v1/progress",
                                      params={"skip_current_image": "true"}, timeout=2)
            eta = answer.json().get("eta_relative") if answer.ok else None
            return float(eta) if isinstance(eta, (int, float)) and eta >= 0 else None
        except (requests.RequestException, ValueError, AttributeError):
            return None

    # -- models --------------------------------------------------------------------------

    def checkpoint_title(self, file: str) -> str:
        """The WebUI title of the checkpoint stored as `file` (store-relative), or
        PermanentJobError."""
        name = posixpath.basename(file)
        for refresh in (False, True):
            if refresh:
                self._call("POST", "/sdapi/v1/refresh-checkpoints", None, CONNECT_TIMEOUT * 6)
            if refresh or self._models is None:
                self._models = self._call("GET", "/sdapi/v1/sd-models", None, CONNECT_TIMEOUT * 6)
            matches = [m for m in self._models if name == _file_of(m)]
            if len(matches) == 1:
                return matches[0]["title"]
            if len(matches) > 1:
                raise PermanentJobError(f"model {name!r} is ambiguous on this runtime: "
                                        f"{', '.join(m['title'] for m in matches)}")
        available = ", ".join(sorted(m.get("title", "?") for m in self._models)) or "none"
        raise PermanentJobError(f"checkpoint file {name!r} is not loaded by this runtime's "
                                f"WebUI; available: {available}")

    # -- generation ----------------------------------------------------------------------

    def generate(self, job, init_images: list[bytes], checkpoint_file: str | None) -> Generation:
        task, params = job.task, job.params
        checkpoint_title = self.checkpoint_title(checkpoint_file) if checkpoint_file else None
        payload = {**params, "send_images": True, "save_images": False}
        if checkpoint_title:
            payload["override_settings"] = {"sd_model_checkpoint": checkpoint_title}
            payload["override_settings_restore_afterwards"] = False
        if task == "img2img":
            payload["init_images"] = [base64.b64encode(i).decode("ascii") for i in init_images]
        answer = self._call("POST", f"/sdapi/v1/{task}", payload, self.job_timeout)
        if not isinstance(answer, dict) or not isinstance(answer.get("images"), list) \
                or not answer["images"]:
            raise RetryableJobError(f"{task} answered without images")
        images = [_decode_image(image) for image in answer["images"]]
        info = answer.get("info")
        if isinstance(info, str):
            try:
                info = json.loads(info)
            except ValueError:
                pass
        return Generation(images, info, answer.get("parameters") or {}, checkpoint_title)

    def _call(self, method: str, path: str, payload: dict | None, read_timeout: float):
        try:
            response = self.session.request(method, self.base_url + path, json=payload,
                                            timeout=(CONNECT_TIMEOUT, read_timeout))
        except requests.Timeout:
            raise RetryableJobError(f"{method} {path}: no answer within {read_timeout}s") from None
        except requests.RequestException as error:
            raise RetryableJobError(f"{method} {path}: {type(error).__name__}") from None
        if response.status_code >= 500:
            raise RetryableJobError(f"{method} {path}: WebUI answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentJobError(f"{method} {path}: WebUI refused the job "
                                    f"({response.status_code}): {response.text[:500]}")
        try:
            return response.json()
        except ValueError:
            raise RetryableJobError(f"{method} {path}: answer is not JSON") from None


def _file_of(model: dict) -> str | None:
    """The file name of a checkpoint as /sdapi/v1/sd-models lists it (`filename`: full path)."""
    if not model.get("filename"):
        return None
    return posixpath.basename(str(model["filename"]).replace("\\", "/"))


def _decode_image(encoded: object) -> bytes:
    if not isinstance(encoded, str):
        raise RetryableJobError("WebUI image is not a base64 string")
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RetryableJobError("WebUI image is not valid base64") from None
