"""What a client may submit: the job request, validated against the stack's limits.

The model is strict (no "512" for 512, no unknown fields) so a typo is a 400 that names the
field rather than a silently ignored option on a GPU that costs money. Everything that
depends on the stack (known runtimes, size limits, where init images may come from) is
passed in as validation context, so one model serves every stack.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .layout import upload_prefix
from .settings import SubmitSettings

TASKS = ("txt2img", "img2img")


def _settings(info: ValidationInfo) -> SubmitSettings:
    if not info.context or "settings" not in info.context:
        raise RuntimeError("JobRequest must be validated with context={'settings': ...}")
    return info.context["settings"]


def _within(value: int, low: int, high: int, what: str = "") -> int:
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}{what}")
    return value


class JobRequest(BaseModel):
    """One generation job, in AUTOMATIC1111 parameter names where A1111 has one."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    runtime: str
    task: Literal["txt2img", "img2img"] = "txt2img"
    prompt: str
    negative_prompt: str = ""
    model: str | None = Field(None, min_length=1, max_length=255)
    sampler_name: str | None = Field(None, min_length=1, max_length=64)
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = Field(7.0, ge=1.0, le=30.0)
    seed: int = Field(-1, ge=-1, le=2**32 - 1)
    batch_size: int = 1
    n_iter: int = 1
    denoising_strength: float | None = Field(None, ge=0.0, le=1.0)
    init_images: list[str] = Field(default_factory=list, validate_default=True)

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, runtime: str, info: ValidationInfo) -> str:
        known = _settings(info).runtimes
        if runtime not in known:
            raise ValueError(f"unknown runtime; this stack runs {', '.join(known)}")
        return runtime

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str | None, info: ValidationInfo) -> str | None:
        known = _settings(info).models
        if model is not None and known and model not in known:
            raise ValueError(f"unknown model; this stack's checkpoints are {', '.join(known)}")
        return model

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _prompt_length(cls, text: str, info: ValidationInfo) -> str:
        limit = _settings(info).limits.max_prompt_chars
        if info.field_name == "prompt" and not text.strip():
            raise ValueError("must not be empty")
        if len(text) > limit:
            raise ValueError(f"must be at most {limit} characters (got {len(text)})")
        return text

    @field_validator("width", "height")
    @classmethod
    def _size(cls, pixels: int, info: ValidationInfo) -> int:
        limits = _settings(info).limits
        high = limits.max_width if info.field_name == "width" else limits.max_height
        if pixels % 8:
            raise ValueError(f"must be a multiple of 8 between 64 and {high}")
        return _within(pixels, 64, high, ", a multiple of 8")

    @field_validator("steps", "batch_size", "n_iter")
    @classmethod
    def _count(cls, count: int, info: ValidationInfo) -> int:
        limits = _settings(info).limits
        high = {"steps": limits.max_steps, "batch_size": limits.max_batch_size,
                "n_iter": limits.max_n_iter}[info.field_name]
        return _within(count, 1, high)

    @field_validator("denoising_strength")
    @classmethod
    def _only_for_img2img(cls, strength: float | None, info: ValidationInfo) -> float | None:
        if strength is not None and info.data.get("task") == "txt2img":
            raise ValueError("only allowed with task img2img")
        return strength

    @field_validator("init_images")
    @classmethod
    def _allowed_links(cls, links: list[str], info: ValidationInfo) -> list[str]:
        settings = _settings(info)
        task = info.data.get("task")
        if task == "img2img" and not links:
            raise ValueError("img2img needs at least one init image link")
        if task == "txt2img" and links:
            raise ValueError("only allowed with task img2img")
        if len(links) > settings.limits.max_init_images:
            raise ValueError(f"at most {settings.limits.max_init_images} init images")
        client = (info.context or {}).get("client", "")
        for link in links:
            problem = init_image_problem(link, settings.allowed_image_hosts,
                                         settings.results_bucket, client)
            if problem:
                raise ValueError(f"{link[:200]!r}: {problem}")
        return links


def init_image_problem(link: str, allowed_hosts: tuple[str, ...], bucket: str,
                       client: str) -> str | None:
    """Why `link` may not be fetched as an init image, or None if it may.

    Allowed: `s3://<the stack's bucket>/uploads/<client>/<key>` (the client's own uploads,
    POST /uploads) and `https://<allowed host>/<path>` (no user info, default port). Anything
    else could make a GPU pod fetch from the internal network, or another client's results.
    """
    own = upload_prefix(client)
    allowed = (f"allowed: https:// on {', '.join(allowed_hosts) or '(no hosts configured)'}"
               f" or s3://{bucket}/{own}<name> (POST /uploads)")
    try:
        parts = urlsplit(link)
        port = parts.port
    except ValueError:
        return f"not a valid link; {allowed}"
    if parts.scheme == "s3":
        key = parts.path.lstrip("/")
        if (client and parts.netloc == bucket and key.startswith(own) and len(key) > len(own)
                and ".." not in key.split("/")):
            return None
        return f"only the client's own uploads may be used; {allowed}"
    if parts.scheme != "https":
        return f"scheme {parts.scheme or '(none)'} is not allowed; {allowed}"
    if parts.username is not None or parts.password is not None or port not in (None, 443):
        return f"user info and ports are not allowed; {allowed}"
    if (parts.hostname or "") not in allowed_hosts:
        return f"host {parts.hostname!r} is not allowed; {allowed}"
    return None
