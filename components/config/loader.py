"""Loading: the stack file (a key given twice, a plaintext secret), then `sdfleet:platform`
through the models and the cross-field rules. Inside a Pulumi program `load()` is the one place
that reads `pulumi.Config`, secrets included."""

from __future__ import annotations

import re
from typing import Any, Optional

from pydantic import ValidationError

from components.config.errors import ConfigError, _lines_from_validation_error
from components.config.fields import CONFIG_KEY, SECRET_KEYS
from components.config.models import PlatformConfig, StackConfig, StackSecrets
from components.config.rules import cross_field_problems


def parse_platform(raw: Any, *, stack: str, gcp_project: Optional[str] = None,
                   gcp_region: Optional[str] = None,
                   aws_region: Optional[str] = None) -> StackConfig:
    """Validate the raw `sdfleet:platform` object; raise ConfigError with every problem."""
    if raw is None:
        raise ConfigError([f"{CONFIG_KEY}: missing; see Pulumi.dev.yaml for a complete example"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{CONFIG_KEY}: expected a mapping of settings (got {type(raw).__name__})"])
    try:
        platform = PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_lines_from_validation_error(exc, PlatformConfig)) from None
    problems = cross_field_problems(platform, gcp_region, aws_region)
    if platform.cloud == "gcp" and not gcp_project:
        problems.insert(0, "gcp:project: missing; set it with `pulumi config set gcp:project <id>`")
    if problems:
        raise ConfigError(problems)
    return StackConfig(platform=platform, stack=stack, gcp_project=gcp_project,
                       gcp_region=gcp_region, aws_region=aws_region)


def _yaml_path(path: tuple) -> str:
    """A key path inside a stack file, in the form the errors use (`sdfleet:platform.a[0].b`)."""
    parts = list(path[1:] if path[:1] == ("config",) else path)
    out = str(parts.pop(0)) if parts else "(top level)"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def read_stack_yaml(text: str, source: str = "stack file") -> Any:
    """Parse a stack file, refusing a key given twice in one mapping (YAML says keys are
    unique; PyYAML would silently keep the last one, so a half-edited file would deploy
    something nobody wrote)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from None
    problems: list[str] = []

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    problems.append(f"{_yaml_path(path + (key,))}: duplicate key (lines {seen[key]} "
                                    f"and {line} of {source}); keep one")
                seen.setdefault(key, line)
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    if problems:
        raise ConfigError(problems)
    return yaml.safe_load(text)


def _secret_like(key: str) -> bool:
    return key in SECRET_KEYS or re.search(r"(token|secret|password)", key, re.IGNORECASE) is not None


def secret_key_problems(config: dict[str, Any]) -> list[str]:
    """`sdfleet:civitaiToken: hf_...` in plain text: the stack file (committed, shown in
    previews) would hold the credential. Such keys must be `secure:` values."""
    problems = []
    for full_key, value in config.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace != "sdfleet" or key == "platform" or not _secret_like(key):
            continue
        if not (isinstance(value, dict) and set(value) == {"secure"}
                and isinstance(value["secure"], str)):
            problems.append(f"{full_key}: a plaintext value where a secret is required; set it "
                            f"with `pulumi config set --secret {full_key} <value>` (the stack "
                            "file then holds `secure: <ciphertext>`)")
    return problems


def missing_secret_problems(platform: PlatformConfig, config: dict[str, Any]) -> list[str]:
    """Secret keys the platform makes necessary (`config` maps full keys to stack-file values):
    a custom OAuth client needs its secret."""
    key = "sdfleet:iapOauthClientSecret"
    if platform.access is not None and platform.access.oauth_client_id is not None:
        value = config.get(key)
        if value is None:
            return [f"{key}: missing; access.oauthClientId is set, so IAP needs the client's "
                    f"secret: `pulumi config set --secret {key.split(':')[1]} <secret>`"]
        if not (isinstance(value, dict) and set(value) == {"secure"}):
            return [f"{key}: a plaintext value; set it as a secret with "
                    f"`pulumi config set --secret {key.split(':')[1]} <secret>`"]
    return []


# Secret key -> StackSecrets field.
SECRET_FIELDS = {"civitaiToken": "civitai_token", "huggingfaceToken": "huggingface_token",
                 "iapOauthClientSecret": "iap_oauth_client_secret"}


def parse_stack_config(config: dict[str, Any], *, stack: str) -> StackConfig:
    """Validate a whole `config:` map of a stack file (what `make plan` reads): the secret
    keys, then `sdfleet:platform` with its provider keys. Raises ConfigError."""
    import json

    problems = secret_key_problems(config)
    raw = config.get(CONFIG_KEY)
    if isinstance(raw, str):  # set with `pulumi config set sdfleet:platform '{...}'`
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(problems + [f"{CONFIG_KEY}: not valid JSON: {exc}"]) from None
    try:
        stack_config = parse_platform(raw, stack=stack, gcp_project=config.get("gcp:project"),
                                      gcp_region=config.get("gcp:region"),
                                      aws_region=config.get("aws:region"))
    except ConfigError as exc:
        raise ConfigError(problems + exc.lines) from None
    problems += missing_secret_problems(stack_config.platform, config)
    if problems:
        raise ConfigError(problems)
    return stack_config


def load() -> StackConfig:
    """Read and validate the current stack's config (inside a Pulumi program)."""
    import json

    import pulumi
    from pulumi.runtime.config import get_config, is_config_secret

    plaintext = [f"sdfleet:{key}" for key in SECRET_KEYS
                 if get_config(f"sdfleet:{key}") is not None and not is_config_secret(f"sdfleet:{key}")]
    if plaintext:
        raise ConfigError(secret_key_problems({key: get_config(key) for key in plaintext}))
    sdfleet = pulumi.Config("sdfleet")
    raw = sdfleet.get_object("platform")
    if isinstance(raw, str):  # a JSON string set with `pulumi config set sdfleet:platform '{...}'`
        raw = json.loads(raw)
    stack = parse_platform(raw, stack=pulumi.get_stack(),
                           gcp_project=pulumi.Config("gcp").get("project"),
                           gcp_region=pulumi.Config("gcp").get("region"),
                           aws_region=pulumi.Config("aws").get("region"))
    # Every secret key set here is a secret (checked above): what the stack file would hold.
    present = {f"sdfleet:{key}": {"secure": "(set)"} for key in SECRET_KEYS
               if get_config(f"sdfleet:{key}") is not None}
    missing = missing_secret_problems(stack.platform, present)
    if missing:
        raise ConfigError(missing)
    # Secrets are read here once and handed to the platform; no component reads config.
    secrets = StackSecrets(**{field: sdfleet.get_secret(key) for key, field in SECRET_FIELDS.items()})
    return stack.model_copy(update={"secrets": secrets})
