"""The agent's configuration from its environment, validated at start.

The one place the agent's env names, defaults and limits live (the batch manifests,
components/k8s/batch.py, set these names; tests/contracts checks the agent reads every one
they set). Parsed by pydantic-settings: each field names its variable (``env_field``), an
empty variable counts as unset, and a bad one stops the agent with a message naming the
variable, the value and what is allowed. Durations are seconds (floats allowed, so tests can
use short heartbeats), except the SQS visibility timeout, which SQS takes in whole seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from . import env

# The read-only GET each framework answers once its API serves (the WebUI image's
# sdfleet_webui/frameworks.py HEALTH_PATHS; ComfyUI server.py `GET /system_stats`).
HEALTH_PATHS = {"automatic1111": "/sdapi/v1/sd-models", "comfyui": "/system_stats"}


class ConfigError(RuntimeError):
    """The environment does not describe a usable agent."""


def env_field(name: str, default: Any = ..., **limits: Any) -> Any:
    """A settings field read from the variable ``name`` (only that name, case-sensitive)."""
    return Field(default, validation_alias=name, **limits)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' env source over the mapping the agent was given."""

    def __init__(self, settings_cls, environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value.strip() for name, value in self._environ.items() if value.strip()}


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore")

    queue_url: str = env_field(env.QUEUE_URL, pattern=r"^https?://")
    runtime: str = env_field(env.RUNTIME, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    results_bucket: str = env_field(env.RESULTS_BUCKET, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    completion_topic_arn: str = env_field(env.COMPLETION_TOPIC_ARN, pattern=r"^arn:aws[a-z-]*:sns:")
    dead_letter_queue_url: str | None = env_field(env.DEAD_LETTER_QUEUE_URL, None, pattern=r"^https?://")
    webui_url: str = env_field(env.WEBUI_URL, "http://127.0.0.1:7860", pattern=r"^https?://")
    webui_framework: Literal["automatic1111", "comfyui"] = env_field(env.WEBUI_FRAMEWORK, "automatic1111")
    webui_health_path: str | None = env_field("WEBUI_HEALTH_PATH", None, pattern=r"^/")
    # The shared model store, read-only: its manifest maps config model names to files.
    models_root: str = env_field(env.MODELS_ROOT, "/models", pattern=r"^/")
    mode: Literal["service", "job"] = env_field(env.AGENT_MODE, "service")
    visibility_timeout: int = env_field(env.VISIBILITY_TIMEOUT_SECONDS, 120, ge=2, le=43200)
    heartbeat_seconds: float = env_field(env.HEARTBEAT_SECONDS, 30.0, gt=0)
    job_timeout_seconds: float = env_field(env.JOB_TIMEOUT_SECONDS, 600.0, gt=0)
    health_timeout_seconds: float = env_field("HEALTH_TIMEOUT_SECONDS", 5.0, gt=0)
    health_retry_seconds: float = env_field("HEALTH_RETRY_SECONDS", 5.0, gt=0)
    startup_timeout_seconds: float = env_field(env.STARTUP_TIMEOUT_SECONDS, 900.0, gt=0)
    wait_time_seconds: int = env_field("WAIT_TIME_SECONDS", 20, ge=0, le=20)
    shutdown_grace_seconds: float = env_field(env.SHUTDOWN_GRACE_SECONDS, 25.0, ge=0)
    retry_backoff_base_seconds: int = env_field("RETRY_BACKOFF_BASE_SECONDS", 30, ge=0, le=43200)
    retry_backoff_max_seconds: int = env_field("RETRY_BACKOFF_MAX_SECONDS", 900, ge=0, le=43200)
    job_mode_empty_polls: int = env_field("JOB_MODE_EMPTY_POLLS", 3, ge=1)
    # The queue's redrive maxReceiveCount: the last try records the failure and dead-letters.
    max_receive_count: int | None = env_field(env.MAX_RECEIVE_COUNT, None, ge=1, le=1000)
    # Comma-separated (NoDecode: not JSON, as pydantic-settings would otherwise expect).
    allowed_image_hosts: Annotated[tuple[str, ...], NoDecode] = env_field(env.ALLOWED_IMAGE_HOSTS, ())
    max_init_image_bytes: int = env_field("MAX_INIT_IMAGE_BYTES", 20 * 1024 * 1024, ge=1)
    # CloudWatch's namespace characters ("AWS/" is AWS's own: refused below).
    metrics_namespace: str | None = env_field(env.METRICS_NAMESPACE, None,
                                              pattern=r"^[A-Za-z0-9._/#:-]{1,255}$")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return (init_settings,)  # only what load_settings passes: no .env, no secrets dir

    @field_validator("allowed_image_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split(",") if h.strip())
        return value

    @field_validator("metrics_namespace")
    @classmethod
    def _not_aws_own(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("AWS/"):
            raise ValueError("namespaces starting AWS/ are AWS's own")
        return value

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



REQUIRED = tuple(f.validation_alias for f in AgentSettings.model_fields.values() if f.is_required())


def load_settings(env: Mapping[str, str]) -> AgentSettings:
    """Settings from `env`, or ConfigError naming every bad or missing variable."""
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(f"queue agent misconfigured: missing environment variable(s) "
                          f"{', '.join(missing)}")
    try:
        return AgentSettings(**_MappingSource(AgentSettings, env)())
    except ValidationError as error:
        # pydantic reports a field by the name it was given, the variable (validation_alias).
        variables = {f.validation_alias for f in AgentSettings.model_fields.values()}
        problems = []
        for item in error.errors(include_url=False):
            where = str(item["loc"][0]) if item["loc"] else ""
            variable = where if where in variables else None
            shown = f"{variable}={env.get(variable, '')!r}: " if variable else ""
            problems.append(shown + item["msg"].removeprefix("Value error, "))
        raise ConfigError("queue agent misconfigured: " + "; ".join(problems)) from None
