"""The submit Lambda's configuration, read once from the environment at cold start.

Everything the Pulumi EKS deployment sets is validated here, so a misconfigured stack fails
at initialisation with one message that names every bad variable, instead of failing (or,
worse, publishing jobs nobody consumes) on the first request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import env

# What a runtime name may look like: it is an SNS filter value and part of a queue name.
RUNTIME_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(RuntimeError):
    """The environment does not describe a usable submit function."""


class Limits(BaseModel):
    """What one job may ask for; the GPU behind each runtime is sized for these."""

    model_config = ConfigDict(frozen=True)

    max_width: int = Field(2048, ge=64)
    max_height: int = Field(2048, ge=64)
    max_steps: int = Field(150, ge=1)
    max_batch_size: int = Field(8, ge=1)
    max_n_iter: int = Field(4, ge=1)
    max_prompt_chars: int = Field(4000, ge=1)
    max_init_images: int = Field(4, ge=1)


class SubmitSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
    runtimes: tuple[str, ...] = Field(min_length=1)
    results_bucket: str
    allowed_image_hosts: tuple[str, ...] = ()
    limits: Limits = Limits()
    # The config's checkpoint names (models.items): a job naming another model is a 400.
    models: tuple[str, ...] = ()
    # How long a presigned result or upload URL is valid.
    url_expiry_seconds: int = Field(900, ge=60, le=43200)
    # For GET /jobs/{id}: an attempt running longer than this has died (the agent's job
    # timeout plus its margin), and after max_receive_count attempts the job is dead-lettered.
    attempt_seconds: int = Field(1200, ge=60, le=86400)
    max_receive_count: int = Field(3, ge=1, le=1000)

    @field_validator("runtimes")
    @classmethod
    def _runtime_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not RUNTIME_NAME.match(name):
                raise ValueError(f"{name!r} is not a runtime name (lower-case letters, digits, '-')")
        return names

    @field_validator("allowed_image_hosts")
    @classmethod
    def _host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not HOST_NAME.match(host):
                raise ValueError(f"{host!r} is not a host name (lower case, no scheme, no port)")
        return hosts

    @field_validator("results_bucket")
    @classmethod
    def _bucket_name(cls, name: str) -> str:
        if not BUCKET_NAME.match(name):
            raise ValueError(f"{name!r} is not an S3 bucket name")
        return name


# environment variable -> (where it goes, required?)
ENVIRONMENT = {
    env.JOBS_TOPIC_ARN: ("topic_arn", True),
    env.RUNTIMES: ("runtimes", True),
    env.RESULTS_BUCKET: ("results_bucket", True),
    env.ALLOWED_IMAGE_HOSTS: ("allowed_image_hosts", False),
    env.MAX_WIDTH: ("limits.max_width", False),
    env.MAX_HEIGHT: ("limits.max_height", False),
    env.MAX_STEPS: ("limits.max_steps", False),
    env.MAX_BATCH_SIZE: ("limits.max_batch_size", False),
    env.MAX_N_ITER: ("limits.max_n_iter", False),
    env.MAX_PROMPT_CHARS: ("limits.max_prompt_chars", False),
    env.MAX_INIT_IMAGES: ("limits.max_init_images", False),
    env.MODELS: ("models", False),
    env.URL_EXPIRY_SECONDS: ("url_expiry_seconds", False),
    env.ATTEMPT_SECONDS: ("attempt_seconds", False),
    env.MAX_RECEIVE_COUNT: ("max_receive_count", False),
}
LISTS = {"runtimes", "allowed_image_hosts", "models"}


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def load_settings(env: Mapping[str, str]) -> SubmitSettings:
    """Build the settings from `env`, or raise ConfigError naming every bad variable."""
    raw: dict = {"limits": {}}
    missing = []
    for variable, (target, required) in ENVIRONMENT.items():
        value = env.get(variable, "").strip()
        if not value:
            if required:
                missing.append(variable)
            continue
        if target.startswith("limits."):
            raw["limits"][target.split(".", 1)[1]] = value
        else:
            raw[target] = _split(value) if target in LISTS else value
    if missing:
        raise ConfigError(f"submit function misconfigured: missing environment variable(s) "
                          f"{', '.join(missing)}")
    try:
        return SubmitSettings.model_validate(raw)
    except ValidationError as error:
        to_variable = {target: variable for variable, (target, _) in ENVIRONMENT.items()}
        problems = []
        for item in error.errors():
            target = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
            variable = to_variable.get(target, target)
            problems.append(f"{variable}={env.get(variable, '')!r}: {item['msg']}")
        raise ConfigError("submit function misconfigured: " + "; ".join(problems)) from None
