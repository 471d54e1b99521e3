"""Proof that the framework can generate: one tiny image through the API the product uses.

An answering API is not a working WebUI: A1111 serves ``/sdapi/v1/sd-models`` after
"Stable diffusion model failed to load", and ComfyUI loads no model until the first prompt.
So the supervisor calls a WebUI ready only after ``generate_once`` got an image back: a
64x64 picture in one step, which on a GPU costs well under a second once the checkpoint is
in memory. For ComfyUI it is also the load of the checkpoint, so the person's first
prompt does not pay for it.

- A1111 and SD.Next: ``POST /sdapi/v1/txt2img`` (their shared API), nothing saved.
- ComfyUI: ``POST /prompt`` with a seven-node workflow ending in ``PreviewImage`` (temp
  folder only), then ``GET /history/<id>`` until it finishes and ``GET /view`` of the image.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

import requests

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE, STEPS = 64, 1
PROMPT = "a lighthouse"  # any text: it only has to reach the text encoder
CHECKPOINTS_FOLDER = "Stable-diffusion"  # docs/contracts.md section 6
COMFYUI_CLIENT_ID = "sdfleet-warmup"


@dataclass(frozen=True)
class Generated:
    ok: bool
    detail: str  # why not, in the framework's words where it gave any
    seconds: float


class NotGenerated(Exception):
    pass


def generate_once(framework: str, base_url: str, checkpoint: str | None, timeout: float,
                  session: requests.Session | None = None, poll: float = 0.5) -> Generated:
    """Ask the framework for one image; ``checkpoint`` is relative to the models root."""
    http = session or requests.Session()
    started = time.monotonic()
    try:
        if framework == "comfyui":
            name = (comfyui_checkpoint_name(checkpoint) if checkpoint
                    else _comfyui_first_checkpoint(http, base_url, timeout))
            _comfyui(http, base_url, name, timeout, poll)
        else:
            _sdapi(http, base_url, timeout)
    except NotGenerated as exc:
        return Generated(False, str(exc), time.monotonic() - started)
    except requests.RequestException as exc:
        return Generated(False, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    return Generated(True, f"{SIZE}x{SIZE} image in {STEPS} step", time.monotonic() - started)


def comfyui_checkpoint_name(checkpoint: str) -> str:
    """ComfyUI names a checkpoint by its path under the checkpoints folder."""
    path = PurePosixPath(checkpoint)
    parts = path.parts[1:] if path.parts and path.parts[0] == CHECKPOINTS_FOLDER else path.parts
    return "/".join(parts)


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(body, dict):
        # A1111/SD.Next: {"error", "detail", "errors"}; ComfyUI: {"error": {...}, "node_errors"}
        parts = [str(body[key]) for key in ("error", "detail", "errors", "node_errors") if body.get(key)]
        return f"HTTP {response.status_code}: {'; '.join(parts)[:300]}"
    return f"HTTP {response.status_code}: {str(body)[:300]}"


def _sdapi(http: requests.Session, base_url: str, timeout: float) -> None:
    payload = {"prompt": PROMPT, "negative_prompt": "", "steps": STEPS, "width": SIZE,
               "height": SIZE, "batch_size": 1, "n_iter": 1, "cfg_scale": 1.0, "seed": 1,
               "save_images": False, "send_images": True,
               "do_not_save_samples": True, "do_not_save_grid": True}
    response = http.post(f"{base_url}/sdapi/v1/txt2img", json=payload, timeout=timeout)
    if response.status_code != 200:
        raise NotGenerated(_error_text(response))
    images = response.json().get("images") or []
    if not images:
        raise NotGenerated("txt2img answered without an image")
    if not is_png(base64.b64decode(images[0].split(",", 1)[-1])):
        raise NotGenerated("txt2img answered with something that is not a PNG image")


def comfyui_workflow(checkpoint_name: str) -> dict:
    """ComfyUI's API format: node id -> {class_type, inputs}; links are [node id, output]."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint_name}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "5": {"class_type": "KSampler",
              "inputs": {"seed": 1, "steps": STEPS, "cfg": 1.0, "sampler_name": "euler",
                         "scheduler": "normal", "denoise": 1.0, "model": ["1", 0],
                         "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def _comfyui_first_checkpoint(http: requests.Session, base_url: str, timeout: float) -> str:
    """The first checkpoint ComfyUI offers, for a pod started without a default one."""
    response = http.get(f"{base_url}/object_info/CheckpointLoaderSimple", timeout=timeout)
    if response.status_code != 200:
        raise NotGenerated(_error_text(response))
    spec = response.json().get("CheckpointLoaderSimple", {}).get("input", {}).get("required", {})
    choice = spec.get("ckpt_name") or [[]]
    # ["name", ...] as the first element, or ("COMBO", {"options": [...]}) in newer versions
    names = choice[0] if isinstance(choice[0], list) else (choice[1] or {}).get("options", [])
    if not names:
        raise NotGenerated("no checkpoint to load: ComfyUI lists none (the model list has none)")
    return names[0]


def _comfyui(http: requests.Session, base_url: str, checkpoint_name: str, timeout: float,
             poll: float) -> None:
    deadline = time.monotonic() + timeout
    response = http.post(f"{base_url}/prompt", timeout=timeout,
                         json={"prompt": comfyui_workflow(checkpoint_name),
                               "client_id": COMFYUI_CLIENT_ID})
    if response.status_code != 200:
        raise NotGenerated(_error_text(response))
    prompt_id = response.json().get("prompt_id")
    if not prompt_id:
        raise NotGenerated("/prompt answered without a prompt_id")
    while True:
        history = http.get(f"{base_url}/history/{prompt_id}", timeout=timeout)
        entry = history.json().get(prompt_id) if history.status_code == 200 else None
        status = (entry or {}).get("status") or {}
        if entry and (status.get("completed") or status.get("status_str") in ("success", "error")):
            break
        if time.monotonic() >= deadline:
            raise NotGenerated(f"no image within {timeout:g}s")
        time.sleep(poll)
    if status.get("status_str") == "error":
        messages = [m[1].get("exception_message", "") for m in status.get("messages", [])
                    if isinstance(m, list) and len(m) == 2 and m[0] == "execution_error"
                    and isinstance(m[1], dict)]
        raise NotGenerated("execution error: " + ("; ".join(messages) or "no message")[:300])
    images = [image for output in entry.get("outputs", {}).values()
              for image in output.get("images", [])]
    if not images:
        raise NotGenerated("the prompt finished without an image")
    image = images[0]
    view = http.get(f"{base_url}/view", timeout=timeout,
                    params={"filename": image.get("filename", ""),
                            "subfolder": image.get("subfolder", ""), "type": image.get("type", "temp")})
    if view.status_code != 200 or not is_png(view.content):
        raise NotGenerated(f"/view did not return the image (HTTP {view.status_code})")
