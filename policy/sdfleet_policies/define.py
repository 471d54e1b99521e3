"""Defining a policy, and the stack settings a policy reads (policy config, else the stack's
`sdfleet:platform`, else the config model's default)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .inputs import as_json

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY


def stack_platform_config() -> dict:
    """`sdfleet:platform` of the stack being analyzed, when the CLI handed it to the pack."""
    try:
        import pulumi.runtime

        raw = pulumi.runtime.get_config("sdfleet:platform")
    except Exception:  # noqa: BLE001 (no runtime config: fall back to defaults)
        return {}
    parsed = as_json(raw) if raw else None
    return parsed if isinstance(parsed, dict) else {}


def setting(config: Mapping[str, Any], key: str, from_stack: Callable[[dict], Any],
            default: Any) -> Any:
    if key in config and config[key] is not None:
        return config[key]
    value = from_stack(stack_platform_config())
    return default if value is None else value


def resource_policy(name: str, description: str,
                    types: Iterable[str] | Callable[[str], bool],
                    check: Callable[[str, Any, ResourceValidationArgs], Iterable[str]],
                    level: EnforcementLevel = MANDATORY,
                    config_schema: Optional[PolicyConfigSchema] = None) -> ResourceValidationPolicy:
    """A ResourceValidationPolicy for some resource types (type tokens, or a predicate on the
    token): `check(type, props, args)` yields one message per violation."""
    applies = types if callable(types) else frozenset(types).__contains__

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not applies(args.resource_type):
            return
        for message in check(args.resource_type, args.props, args):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=level, config_schema=config_schema)
