"""HTTP client of ComfyUI's API, for a runtime whose framework is `comfyui`.

A job becomes a workflow in ComfyUI's API format, built from a fixed template filled with the
job's fields (workflow()), then:

    POST /prompt {"prompt": <workflow>, "client_id": ...} -> {"prompt_id", "number", "node_errors"}
        (400 {"error", "node_errors"} when ComfyUI's validation refuses it: permanent)
    GET  /history/{prompt_id} -> {prompt_id: {"outputs": {node: {"images": [{filename,
        subfolder, type}]}}, "status": {"status_str": "success"|"error", "completed", ...}}}
        ({} while it is queued or running)
    GET  /queue -> {"queue_running": [...], "queue_pending": [...]} (items: [number, prompt_id,
        ...]): a prompt in neither the queue nor the history was lost (ComfyUI restarted)
    GET  /view?filename=&subfolder=&type=output -> the image bytes
    POST /upload/image (multipart: image, type=input, overwrite) -> {"name", "subfolder", "type"}
        for img2img init images; POST /interrupt and POST /queue {"delete": [...]} to abandon.

Routes and shapes from ComfyUI's server.py (comfyanonymous/ComfyUI, server.py at 005f3ba, the
version the search index holds; the image pins 005d79c, same API) and execution.py
(PromptQueue.task_done: history entries with "outputs" and "status").
"""

from __future__ import annotations

import logging
import posixpath
import random
import time
import uuid

import requests

from .errors import PermanentJobError, RetryableJobError
from .webui import CONNECT_TIMEOUT, FrameworkClient, Generation

log = logging.getLogger("sdfleet.agent.comfyui")

POLL_SECONDS = 0.5
# ComfyUI's extra_model_paths for the store (WebUI image, frameworks.py) maps its
# `checkpoints` to this folder of the store; ckpt_name is relative to it.
CHECKPOINT_FOLDER = "Stable-diffusion"
DEFAULT_DENOISE_IMG2IMG = 0.75

# A1111 sampler names (what jobs use) -> ComfyUI KSampler sampler_name (comfy/samplers.py
# KSAMPLER_NAMES); a " Karras" suffix selects the "karras" scheduler.
SAMPLERS = {
    "Euler": "euler", "Euler a": "euler_ancestral", "Heun": "heun", "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral", "LMS": "lms", "DPM fast": "dpm_fast",
    "DPM adaptive": "dpm_adaptive", "DPM++ 2S a": "dpmpp_2s_ancestral", "DPM++ SDE": "dpmpp_sde",
    "DPM++ 2M": "dpmpp_2m", "DPM++ 2M SDE": "dpmpp_2m_sde", "DPM++ 3M SDE": "dpmpp_3m_sde",
    "DDIM": "ddim", "UniPC": "uni_pc",
}


def sampler_and_scheduler(name: str | None) -> tuple[str, str]:
    if not name:
        return "euler", "normal"
    base, karras = (name[:-len(" Karras")], True) if name.endswith(" Karras") else (name, False)
    if base not in SAMPLERS:
        raise PermanentJobError(f"sampler_name {name!r} is not available on ComfyUI; allowed: "
                                f"{', '.join(sorted(SAMPLERS))} (optionally with ' Karras')")
    return SAMPLERS[base], "karras" if karras else "normal"


def ckpt_name(checkpoint_file: str) -> str:
    """ComfyUI's name of a store-relative checkpoint file."""
    prefix = CHECKPOINT_FOLDER + "/"
    return checkpoint_file[len(prefix):] if checkpoint_file.startswith(prefix) \
        else posixpath.basename(checkpoint_file)


def workflow(params: dict, checkpoint: str, seed: int, job_id: str,
             init_image: str | None = None) -> dict:
    """The API-format workflow of one txt2img (or img2img with `init_image`) generation."""
    sampler, scheduler = sampler_and_scheduler(params.get("sampler_name"))
    graph: dict = {
        "checkpoint": {"class_type": "CheckpointLoaderSimple",
                       "inputs": {"ckpt_name": checkpoint}},
        "positive": {"class_type": "CLIPTextEncode",
                     "inputs": {"text": params.get("prompt", ""), "clip": ["checkpoint", 1]}},
        "negative": {"class_type": "CLIPTextEncode",
                     "inputs": {"text": params.get("negative_prompt", ""),
                                "clip": ["checkpoint", 1]}},
        "sampler": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": params.get("steps", 20), "cfg": params.get("cfg_scale", 7.0),
            "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0,
            "model": ["checkpoint", 0], "positive": ["positive", 0],
            "negative": ["negative", 0], "latent_image": ["latent", 0]}},
        "decode": {"class_type": "VAEDecode",
                   "inputs": {"samples": ["sampler", 0], "vae": ["checkpoint", 2]}},
        "save": {"class_type": "SaveImage",
                 "inputs": {"filename_prefix": f"sdfleet-{job_id}", "images": ["decode", 0]}},
    }
    batch = params.get("batch_size", 1)
    if init_image is None:
        graph["latent"] = {"class_type": "EmptyLatentImage", "inputs": {
            "width": params.get("width", 512), "height": params.get("height", 512),
            "batch_size": batch}}
    else:
        graph["load"] = {"class_type": "LoadImage", "inputs": {"image": init_image}}
        graph["encoded"] = {"class_type": "VAEEncode",
                            "inputs": {"pixels": ["load", 0], "vae": ["checkpoint", 2]}}
        graph["latent"] = {"class_type": "RepeatLatentBatch",
                           "inputs": {"samples": ["encoded", 0], "amount": batch}}
        graph["sampler"]["inputs"]["denoise"] = params.get("denoising_strength",
                                                           DEFAULT_DENOISE_IMG2IMG)
    return graph


class ComfyUiClient(FrameworkClient):
    def __init__(self, base_url: str, health_path: str, job_timeout: float,
                 health_timeout: float):
        super().__init__(base_url, health_path, job_timeout, health_timeout)
        self.client_id = str(uuid.uuid4())
        self._current: str | None = None

    def healthy(self) -> bool:
        try:
            return self.session.get(self.base_url + self.health_path,
                                    timeout=(CONNECT_TIMEOUT, self.health_timeout)).ok
        except requests.RequestException:
            return False

    def eta_seconds(self) -> float | None:
        return None  # ComfyUI's REST API reports no estimate

    def interrupt(self) -> None:
        """Best effort: stop our running prompt and drop it from the queue."""
        current, self._current = self._current, None
        try:
            requests.post(self.base_url + "/interrupt", timeout=2)
            if current:
                requests.post(self.base_url + "/queue", json={"delete": [current]}, timeout=2)
        except requests.RequestException:
            pass

    # -- generation ----------------------------------------------------------------------

    def generate(self, job, init_images: list[bytes], checkpoint_file: str | None) -> Generation:
        if not checkpoint_file:
            raise PermanentJobError("ComfyUI needs a checkpoint: name a model in the job, or set "
                                    "models.defaultCheckpoint in the stack config")
        params = dict(job.params)
        checkpoint = ckpt_name(checkpoint_file)
        init = self._upload(init_images[0], job.job_id) if job.task == "img2img" else None
        seed = params.get("seed", -1)
        seed = random.randrange(2**32) if seed is None or seed < 0 else seed
        deadline = time.monotonic() + self.job_timeout
        images: list[bytes] = []
        seeds = []
        for iteration in range(params.get("n_iter", 1)):
            run_seed = (seed + iteration * params.get("batch_size", 1)) % 2**32
            graph = workflow(params, checkpoint, run_seed, job.job_id, init)
            prompt_id = self._submit(graph)
            outputs = self._follow(prompt_id, deadline)
            images += [self._view(ref) for ref in outputs]
            seeds.append(run_seed)
        if not images:
            raise RetryableJobError("ComfyUI finished without images")
        return Generation(images, {"seeds": seeds, "ckpt_name": checkpoint}, {}, checkpoint)

    def _submit(self, graph: dict) -> str:
        answer = self._request("POST", "/prompt", json={"prompt": graph,
                                                        "client_id": self.client_id})
        if answer.status_code == 400:
            raise PermanentJobError(f"ComfyUI refused the workflow: {answer.text[:500]}")
        body = self._json(answer, "POST /prompt")
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        if not prompt_id:
            raise RetryableJobError("POST /prompt answered without a prompt_id")
        self._current = prompt_id
        return prompt_id

    def _follow(self, prompt_id: str, deadline: float) -> list[dict]:
        """Poll /history/{id} until the prompt is done; the image refs of its outputs."""
        while True:
            history = self._json(self._request("GET", f"/history/{prompt_id}"), "GET /history")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry:
                self._current = None
                status = entry.get("status") or {}
                if status.get("status_str") == "error":
                    raise RetryableJobError(f"ComfyUI failed the prompt: {_error_of(status)}")
                refs = []
                for node in sorted(entry.get("outputs") or {}):
                    refs += [i for i in entry["outputs"][node].get("images", [])
                             if i.get("type") == "output"]
                return refs
            if not self._queued(prompt_id):
                # Re-check the history: the prompt may have finished between the two calls.
                again = self._json(self._request("GET", f"/history/{prompt_id}"), "GET /history")
                if not (isinstance(again, dict) and again.get(prompt_id)):
                    raise RetryableJobError(f"prompt {prompt_id} is neither queued nor in the "
                                            "history (ComfyUI restarted?)")
                continue
            if time.monotonic() > deadline:
                self.interrupt()
                raise RetryableJobError(f"ComfyUI prompt not done within {self.job_timeout}s")
            time.sleep(POLL_SECONDS)

    def _queued(self, prompt_id: str) -> bool:
        queue = self._json(self._request("GET", "/queue"), "GET /queue")
        items = (queue.get("queue_running") or []) + (queue.get("queue_pending") or [])
        return any(len(item) > 1 and item[1] == prompt_id for item in items)

    def _view(self, ref: dict) -> bytes:
        answer = self._request("GET", "/view", params={
            "filename": ref["filename"], "subfolder": ref.get("subfolder", ""), "type": "output"})
        if answer.status_code != 200 or not answer.content:
            raise RetryableJobError(f"GET /view {ref.get('filename')}: {answer.status_code}")
        return answer.content

    def _upload(self, image: bytes, job_id: str) -> str:
        answer = self._request("POST", "/upload/image",
                               files={"image": (f"sdfleet-{job_id}.png", image, "image/png")},
                               data={"type": "input", "overwrite": "true"})
        body = self._json(answer, "POST /upload/image")
        if answer.status_code != 200 or not isinstance(body, dict) or not body.get("name"):
            raise RetryableJobError(f"POST /upload/image answered {answer.status_code}")
        return posixpath.join(body.get("subfolder") or "", body["name"])

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            answer = self.session.request(method, self.base_url + path,
                                          timeout=(CONNECT_TIMEOUT, 60), **kwargs)
        except requests.RequestException as error:
            raise RetryableJobError(f"{method} {path}: {type(error).__name__}") from None
        if answer.status_code >= 500:
            raise RetryableJobError(f"{method} {path}: ComfyUI answered {answer.status_code}")
        return answer

    @staticmethod
    def _json(answer: requests.Response, what: str):
        try:
            return answer.json()
        except ValueError:
            raise RetryableJobError(f"{what}: answer is not JSON") from None


def _error_of(status: dict) -> str:
    for kind, data in status.get("messages") or []:
        if kind == "execution_error" and isinstance(data, dict):
            return f"{data.get('node_type')}: {data.get('exception_message', '')}".strip()[:500]
    return "execution error"
