"""The one place this image's environment variables, their defaults and their limits live.

Each program builds one frozen settings object at start (``<Settings>.from_env()``); a bad
value stops the program with a message that names the variable, the value and what is
allowed, instead of failing later in some unrelated place. Parsing is pydantic-settings'
(an empty variable counts as unset, as the hand-written readers did); the names the
platform sets come from ``env`` (env.py, which the manifests read too), the image's own
tuning knobs are named here. ``env_field`` is how every field names its variable, so a
reader (and tests/contracts/image_model.py) finds every name a program reads in one file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from . import env
from .frameworks import FRAMEWORKS

PORT = {"ge": 1, "le": 65535}
# AGONES_SDK_HTTP_PORT is Agones' name, not ours: the controller sets it in every container of
# a game server pod (Agones v1.50.0 pkg/gameservers/controller.go, addSDKServerEnvVars).


class SettingError(ValueError):
    """A variable holds a value the program cannot use."""


def env_field(name: str, default: Any, **limits: Any) -> Any:
    """A settings field read from the variable ``name`` (only that name, case-sensitive)."""
    return Field(default, validation_alias=name, **limits)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping (tests pass their own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Case-sensitive, and an empty variable counts as unset (env_ignore_empty).
        return {name: value for name, value in self._environ.items() if value != ""}


class ImageSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, env_ignore_empty=True,
                                      extra="ignore", populate_by_name=False,
                                      validate_default=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the environment (or the mapping from_env was given): no .env files, no
        # secrets directory, no keyword overrides sneaking past the limits.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        try:
            values = _MappingSource(cls, environ)()
            return cls(**values)
        except ValidationError as error:
            raise SettingError(describe(error, cls, environ)) from None


def describe(error: ValidationError, settings_cls: type[BaseSettings],
             environ: Mapping[str, str]) -> str:
    """``NAME='value': what is allowed`` for each bad variable, from pydantic's errors."""
    problems = []
    for item in error.errors(include_url=False):
        # pydantic reports a field by the name it was given: its variable (validation_alias).
        variable = str(item["loc"][0]) if item["loc"] else settings_cls.__name__
        allowed = item["msg"].removeprefix("Value error, ")
        if item["type"] == "bool_parsing":
            allowed += " (expected one of true/false, 1/0, yes/no, on/off)"
        problems.append(f"{variable}={environ.get(variable, item.get('input'))!r}: {allowed}")
    return "; ".join(problems)


class SupervisorSettings(ImageSettings):
    framework: Literal[FRAMEWORKS] = env_field(env.FRAMEWORK, "automatic1111")
    scratch: Path = env_field(env.SCRATCH, Path("/scratch"))
    models_root: Path | None = env_field(env.MODELS_ROOT, None)
    models_only: str | None = env_field(env.MODELS_ONLY, None)
    baked_models: Path = env_field("SDFLEET_BAKED_MODELS", "/opt/sdfleet/baked-models")
    default_checkpoint_path: str | None = env_field("SDFLEET_DEFAULT_CHECKPOINT_PATH", None)
    frameworks_root: Path = env_field("SDFLEET_FRAMEWORKS_ROOT", Path("/opt/sdfleet/frameworks"))
    webui_port: int = env_field(env.WEBUI_PORT, 7860, **PORT)
    listen_host: str = env_field(env.LISTEN_HOST, "127.0.0.1")
    insecure_extension_access: bool = env_field("SDFLEET_INSECURE_EXTENSION_ACCESS", False)
    cli_args: str = env_field("CLI_ARGS", "")
    webui_command: str | None = env_field("SDFLEET_WEBUI_COMMAND", None)
    start_timeout: float = env_field(env.START_TIMEOUT_SECONDS, 900.0, ge=0.1)
    hang_timeout: float = env_field("SDFLEET_HANG_SECONDS", 120.0, ge=0.1)
    backoff_base: float = env_field("SDFLEET_BACKOFF_SECONDS", 2.0, ge=0.0)
    backoff_max: float = env_field("SDFLEET_BACKOFF_MAX_SECONDS", 120.0, ge=0.0)
    backoff_reset: float = env_field("SDFLEET_BACKOFF_RESET_SECONDS", 300.0, ge=0.0)
    max_restarts: int = env_field("SDFLEET_MAX_RESTARTS", 10, ge=0)
    restart_window: float = env_field("SDFLEET_RESTART_WINDOW_SECONDS", 1800.0, ge=1.0)
    agones: Literal["auto", "true", "false"] = env_field(env.AGONES, "auto")
    agones_port: int | None = env_field("AGONES_SDK_HTTP_PORT", None, **PORT)
    api_host: str = env_field("SDFLEET_SUPERVISOR_HOST", "127.0.0.1")
    api_port: int = env_field(env.SUPERVISOR_PORT, 7861, **PORT)
    poll_seconds: float = env_field("SDFLEET_POLL_SECONDS", 2.0, ge=0.01)
    check_timeout: float = env_field("SDFLEET_CHECK_TIMEOUT_SECONDS", 5.0, ge=0.05)
    stop_grace: float = env_field(env.STOP_GRACE_SECONDS, 20.0, ge=0.0)
    log_lines: int = env_field("SDFLEET_LOG_LINES", 2000, ge=10)
    log_file_bytes: int = env_field("SDFLEET_LOG_FILE_BYTES", 10 * 1024 * 1024, ge=1024)
    log_files: int = env_field("SDFLEET_LOG_FILES", 3, ge=1)
    oom_window: float = env_field("SDFLEET_OOM_WINDOW_SECONDS", 300.0, ge=1.0)
    oom_event_gap: float = env_field("SDFLEET_OOM_EVENT_GAP_SECONDS", 10.0, ge=0.0)
    agones_health_seconds: float = env_field("SDFLEET_AGONES_HEALTH_SECONDS", 5.0, ge=0.05)
    agones_grace: float = env_field("SDFLEET_AGONES_GRACE_SECONDS", 300.0, ge=0.0)
    gpu_busy_percent: float = env_field(env.GPU_BUSY_PERCENT, 20.0, ge=1.0, le=100.0)
    gpu_window: float = env_field("SDFLEET_GPU_WINDOW_SECONDS", 60.0, ge=1.0)
    # Parallel reads of the default checkpoint at start (0: the framework reads it alone).
    prefetch_workers: int = env_field("SDFLEET_PREFETCH_WORKERS", 8, ge=0, le=64)

    @property
    def agones_sdk_port(self) -> int | None:
        """The SDK sidecar's port when the supervisor talks to Agones, else None: ``auto``
        means "when Agones set its port variable", ``true`` falls back to Agones' default."""
        if self.agones == "true":
            return self.agones_port or 9358
        return self.agones_port if self.agones == "auto" else None


class FrontSettings(ImageSettings):
    host: str = env_field("SDFLEET_FRONT_HOST", "0.0.0.0")
    port: int = env_field(env.FRONT_PORT, 7860, **PORT)
    upstream: str = env_field(env.FRONT_UPSTREAM, "http://127.0.0.1:7870")
    agones_port: int = env_field("AGONES_SDK_HTTP_PORT", 9358, **PORT)
    report_seconds: float = env_field("SDFLEET_ACTIVITY_REPORT_SECONDS", 30.0, ge=0.05)
    allocation_wait: float = env_field("SDFLEET_FRONT_ALLOCATION_WAIT_SECONDS", 3.0, ge=0.0)
    connect_timeout: float = env_field("SDFLEET_FRONT_CONNECT_TIMEOUT_SECONDS", 5.0, ge=0.05)
    # The session's end as the culler decides it (the same culling config sets both).
    idle_seconds: float | None = env_field(env.IDLE_SECONDS, None, ge=1.0)
    max_session_seconds: float | None = env_field(env.MAX_SESSION_SECONDS, None, ge=1.0)
    warn_seconds: float = env_field(env.WARN_SECONDS, 600.0, ge=0.0)

    @field_validator("upstream")
    @classmethod
    def _loopback_only(cls, upstream: str) -> str:
        if not re.fullmatch(r"http://(127\.0\.0\.1|\[::1\]):[0-9]{1,5}/*", upstream):
            raise ValueError("expected http://127.0.0.1:<port> (the WebUI listens on loopback only)")
        return upstream.rstrip("/")


class SyncSettings(ImageSettings):
    users_root: Path = env_field(env.USERS_ROOT, Path("/users"))
    scratch: Path = env_field(env.SCRATCH, Path("/scratch"))
    agones_port: int = env_field("AGONES_SDK_HTTP_PORT", 9358, **PORT)
    interval: float = env_field("SDFLEET_SYNC_INTERVAL_SECONDS", 60.0, ge=0.05)
    recent_output_days: float = env_field("SDFLEET_RECENT_OUTPUT_DAYS", 7.0, ge=0.0)
    max_file_bytes: int = env_field("SDFLEET_SYNC_MAX_FILE_BYTES", 512 * 1024 * 1024, ge=1)


class ProbeSettings(ImageSettings):
    supervisor_port: int = env_field(env.SUPERVISOR_PORT, 7861, **PORT)
    webui_port: int = env_field(env.WEBUI_PORT, 7860, **PORT)
    timeout: float = env_field("SDFLEET_PROBE_TIMEOUT_SECONDS", 2.0, ge=0.05)
    oom_limit: int = env_field("SDFLEET_LIVENESS_OOM_LIMIT", 3, ge=1)
    # Longer than the longest tick that is not a fault: a stop (SDFLEET_STOP_GRACE_SECONDS,
    # 20) plus the wait for the port (5) plus a health check (SDFLEET_CHECK_TIMEOUT_SECONDS, 5).
    stall_limit: float = env_field("SDFLEET_LIVENESS_STALL_SECONDS", 300.0, ge=1.0)


class FetcherSettings(ImageSettings):
    models_root: Path = env_field(env.MODELS_ROOT, Path("/models"))
    attempts: int = env_field("SDFLEET_FETCH_ATTEMPTS", 5, ge=1)
    backoff_seconds: float = env_field("SDFLEET_FETCH_BACKOFF_SECONDS", 1.0, ge=0.0)
    max_backoff_seconds: float = env_field("SDFLEET_FETCH_MAX_BACKOFF_SECONDS", 60.0, ge=0.0)
    connect_timeout: float = env_field("SDFLEET_FETCH_CONNECT_TIMEOUT", 10.0, ge=0.1)
    read_timeout: float = env_field("SDFLEET_FETCH_READ_TIMEOUT", 60.0, ge=0.1)
    parallel: int = env_field("SDFLEET_FETCH_PARALLEL", 2, ge=1, le=16)
    offline: bool = env_field("SDFLEET_FETCH_OFFLINE", False)
    progress_seconds: float = env_field("SDFLEET_FETCH_PROGRESS_SECONDS", 5.0, ge=0.0)
    civitai_api_base: str = env_field("CIVITAI_API_BASE", "https://civitai.com/api")
    # Hugging Face's own variable (huggingface_hub reads HF_ENDPOINT too): tests point it at
    # a local host.
    hf_endpoint: str = env_field("HF_ENDPOINT", "https://huggingface.co")
    civitai_token: str | None = env_field("CIVITAI_TOKEN", None, repr=False)
    civitai_token_file: Path = env_field("CIVITAI_TOKEN_FILE", Path("/var/run/sdfleet/civitai-token"))
    hf_token: str | None = env_field("HF_TOKEN", None, repr=False)
    hf_token_file: Path = env_field("HF_TOKEN_FILE", Path("/var/run/sdfleet/hf-token"))

    def civitai_secret(self) -> str | None:
        return read_secret(self.civitai_token, self.civitai_token_file)

    def hf_secret(self) -> str | None:
        return read_secret(self.hf_token, self.hf_token_file)


def read_secret(value: str | None, path: Path | None) -> str | None:
    """A secret from its variable, else from a mounted file; None when neither is set.

    The value is never logged by any caller (the fields holding it have repr=False)."""
    if value and value.strip():
        return value.strip()
    if path and path.is_file():
        text = path.read_text().strip()
        return text or None
    return None
