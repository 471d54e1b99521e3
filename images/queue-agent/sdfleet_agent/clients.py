"""The client that speaks a framework's API: the one place that knows both clients."""

from __future__ import annotations

from .comfyui import ComfyUiClient
from .webui import FrameworkClient, WebUiClient


def make_client(framework: str, base_url: str, health_path: str, job_timeout: float,
                health_timeout: float) -> FrameworkClient:
    """The client that speaks `framework`'s API."""
    if framework == "comfyui":
        return ComfyUiClient(base_url, health_path, job_timeout, health_timeout)
    return WebUiClient(base_url, health_path, job_timeout, health_timeout)
