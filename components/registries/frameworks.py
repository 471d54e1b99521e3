"""The WebUI frameworks sdfleet runs: one registry, from which the config's accepted values,
the images built (one per framework, a stage of images/webui/Dockerfile) and the batch
runtimes derive. The programs inside the images keep their own list (they are built apart);
tests/program/test_registries.py checks each equals this one.

Adding a framework: an entry here, its stage in images/webui/Dockerfile, its command line
in images/webui/sdfleet_webui/frameworks.py (and, if batch capable, its client in the
queue agent).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    name: str          # the config value, the image's Dockerfile stage and SDFLEET_FRAMEWORK
    label: str         # what people call it
    api: str           # "sdapi" (A1111's /sdapi/v1) or "comfyui" (/prompt, /history, /view)
    batch: bool        # the queue agent can drive it
    # GPU memory a pod needs to generate with it in its default mode (SD 1.5, 512x512):
    # A1111 and SD.Next document 4 GB cards; ComfyUI offloads down to 1 GB (its README).
    min_gpu_memory_gib: float = 4


FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (
    Framework("automatic1111", "AUTOMATIC1111 Stable Diffusion WebUI", "sdapi", batch=True),
    Framework("sdnext", "SD.Next", "sdapi", batch=False),
    Framework("comfyui", "ComfyUI", "comfyui", batch=True, min_gpu_memory_gib=1),
)}

WEBUI_FRAMEWORKS = tuple(FRAMEWORKS)
BATCH_FRAMEWORKS = tuple(name for name, f in FRAMEWORKS.items() if f.batch)
