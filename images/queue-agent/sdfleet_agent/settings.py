"""The agent's configuration from its environment, validated at start.

Durations are seconds (floats allowed, so tests can use short heartbeats), except the SQS
visibility timeout, which SQS takes in whole seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The read-only GET each framework answers once its API serves (the WebUI image's
# sdfleet_webui/frameworks.py HEALTH_PATHS; ComfyUI server.py `GET /system_stats`).
HEALTH_PATHS = {"automatic1111": "/sdapi/v1/sd-models", "comfyui": "/system_stats"}


class ConfigError(RuntimeError):
    """The environment does not describe a usable agent."""


class AgentSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    queue_url: str = Field(pattern=r"^https?://")
    runtime: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    results_bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    completion_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:")
    dead_letter_queue_url: str | None = Field(None, pattern=r"^https?://")
    webui_url: str = Field("http://127.0.0.1:7860", pattern=r"^https?://")
    webui_framework: Literal["automatic1111", "comfyui"] = "automatic1111"
    webui_health_path: str | None = Field(None, pattern=r"^/")
    # The shared model store, read-only: its manifest maps config model names to files.
    models_root: str = Field("/models", pattern=r"^/")
    mode: Literal["service", "job"] = "service"
    visibility_timeout: int = Field(120, ge=2, le=43200)
    heartbeat_seconds: float = Field(30.0, gt=0)
    job_timeout_seconds: float = Field(600.0, gt=0)
    health_timeout_seconds: float = Field(5.0, gt=0)
    health_retry_seconds: float = Field(5.0, gt=0)
    startup_timeout_seconds: float = Field(900.0, gt=0)
    wait_time_seconds: int = Field(20, ge=0, le=20)
    shutdown_grace_seconds: float = Field(25.0, ge=0)
    retry_backoff_base_seconds: int = Field(30, ge=0, le=43200)
    retry_backoff_max_seconds: int = Field(900, ge=0, le=43200)
    job_mode_empty_polls: int = Field(3, ge=1)
    # The queue's redrive maxReceiveCount: the last try records the failure and dead-letters.
    max_receive_count: int | None = Field(None, ge=1, le=1000)
    allowed_image_hosts: tuple[str, ...] = ()
    max_init_image_bytes: int = Field(20 * 1024 * 1024, ge=1)

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> "AgentSettings":
        # A heartbeat slower than the lease lets the message reappear mid-job: a second
        # agent would run it again.
        if self.heartbeat_seconds * 2 > self.visibility_timeout:
            raise ValueError(f"HEARTBEAT_SECONDS ({self.heartbeat_seconds}) must be at most half "
                             f"of VISIBILITY_TIMEOUT_SECONDS ({self.visibility_timeout})")
        return self

    @property
    def health_path(self) -> str:
        return self.webui_health_path or HEALTH_PATHS[self.webui_framework]


# environment variable -> settings field
ENVIRONMENT = {
    "QUEUE_URL": "queue_url",
    "RUNTIME": "runtime",
    "RESULTS_BUCKET": "results_bucket",
    "COMPLETION_TOPIC_ARN": "completion_topic_arn",
    "DEAD_LETTER_QUEUE_URL": "dead_letter_queue_url",
    "WEBUI_URL": "webui_url",
    "WEBUI_HEALTH_PATH": "webui_health_path",
    "WEBUI_FRAMEWORK": "webui_framework",
    "MODELS_ROOT": "models_root",
    "AGENT_MODE": "mode",
    "VISIBILITY_TIMEOUT_SECONDS": "visibility_timeout",
    "HEARTBEAT_SECONDS": "heartbeat_seconds",
    "JOB_TIMEOUT_SECONDS": "job_timeout_seconds",
    "HEALTH_TIMEOUT_SECONDS": "health_timeout_seconds",
    "HEALTH_RETRY_SECONDS": "health_retry_seconds",
    "STARTUP_TIMEOUT_SECONDS": "startup_timeout_seconds",
    "WAIT_TIME_SECONDS": "wait_time_seconds",
    "SHUTDOWN_GRACE_SECONDS": "shutdown_grace_seconds",
    "RETRY_BACKOFF_BASE_SECONDS": "retry_backoff_base_seconds",
    "RETRY_BACKOFF_MAX_SECONDS": "retry_backoff_max_seconds",
    "JOB_MODE_EMPTY_POLLS": "job_mode_empty_polls",
    "MAX_RECEIVE_COUNT": "max_receive_count",
    "ALLOWED_IMAGE_HOSTS": "allowed_image_hosts",
    "MAX_INIT_IMAGE_BYTES": "max_init_image_bytes",
}
REQUIRED = ("QUEUE_URL", "RUNTIME", "RESULTS_BUCKET", "COMPLETION_TOPIC_ARN")


def load_settings(env: Mapping[str, str]) -> AgentSettings:
    """Settings from `env`, or ConfigError naming every bad or missing variable."""
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(f"queue agent misconfigured: missing environment variable(s) "
                          f"{', '.join(missing)}")
    raw: dict = {}
    for variable, field in ENVIRONMENT.items():
        value = env.get(variable, "").strip()
        if value:
            raw[field] = ([h.strip() for h in re.split(r",", value) if h.strip()]
                          if field == "allowed_image_hosts" else value)
    try:
        return AgentSettings.model_validate(raw)
    except ValidationError as error:
        to_variable = {field: variable for variable, field in ENVIRONMENT.items()}
        problems = []
        for item in error.errors(include_url=False):
            field = str(item["loc"][0]) if item["loc"] else ""
            variable = to_variable.get(field)
            shown = f"{variable}={env.get(variable, '')!r}: " if variable else ""
            problems.append(shown + item["msg"].removeprefix("Value error, "))
        raise ConfigError("queue agent misconfigured: " + "; ".join(problems)) from None
