"""HTTP client of the AUTOMATIC1111-style WebUI API that runs beside the agent.

- health: GET <health path> answers 2xx within a few seconds.
- model: chosen by exact name only (title, model_name, or checkpoint file name as listed by
  /sdapi/v1/sd-models); a name that is not there fails the job with the list of available
  names. Closest-name matching would silently run the wrong model.
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


class WebUiClient:
    def __init__(self, base_url: str, health_path: str, job_timeout: float,
                 health_timeout: float):
        self.base_url = base_url.rstrip("/")
        self.health_path = health_path
        self.job_timeout = job_timeout
        self.health_timeout = health_timeout
        self.session = requests.Session()
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

    # -- models --------------------------------------------------------------------------

    def checkpoint_title(self, name: str) -> str:
        """The WebUI title of the checkpoint named exactly `name`, or PermanentJobError."""
        for refresh in (False, True):
            if refresh:
                self._call("POST", "/sdapi/v1/refresh-checkpoints", None, CONNECT_TIMEOUT * 6)
            if refresh or self._models is None:
                self._models = self._call("GET", "/sdapi/v1/sd-models", None, CONNECT_TIMEOUT * 6)
            matches = [m for m in self._models if name in _names_of(m)]
            if len(matches) == 1:
                return matches[0]["title"]
            if len(matches) > 1:
                raise PermanentJobError(f"model {name!r} is ambiguous on this runtime: "
                                        f"{', '.join(m['title'] for m in matches)}")
        available = ", ".join(sorted(m.get("title", "?") for m in self._models)) or "none"
        raise PermanentJobError(f"model {name!r} is not available on this runtime "
                                f"(exact names only); available: {available}")

    # -- generation ----------------------------------------------------------------------

    def generate(self, task: str, params: dict, init_images: list[bytes],
                 checkpoint_title: str | None) -> Generation:
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
        return Generation(images, info, answer.get("parameters") or {})

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


def _names_of(model: dict) -> set[str]:
    names = {model.get("title"), model.get("model_name")}
    if model.get("filename"):
        names.add(posixpath.basename(str(model["filename"]).replace("\\", "/")))
    return {name for name in names if name}


def _decode_image(encoded: object) -> bytes:
    if not isinstance(encoded, str):
        raise RetryableJobError("WebUI image is not a base64 string")
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RetryableJobError("WebUI image is not valid base64") from None
