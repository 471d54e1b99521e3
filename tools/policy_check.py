"""Run the sdfleet policy pack over a mock-engine plan (`make plan`), as CrossGuard would.

The same `ResourceValidationPolicy`/`StackValidationPolicy` objects that `policy/__main__.py`
serves to the Pulumi CLI are called here with the argument objects pulumi_policy defines,
built the way its analyzer builds them (`_PolicyAnalyzerServicer.Analyze`/`AnalyzeStack`):
- props are the resource inputs, wrapped by `unknown_checking_proxy`, with the plan's
  "(known after deployment)" marks turned back into the engine's unknown sentinel;
- a policy that reads an unknown value is reported as CrossGuard reports it during preview:
  an advisory "can't run policy during preview";
- `not_applicable` is honoured; policy config carries the stack settings.

Policy config comes from the validated stack config (see `policy_config`), so the budget cap,
label keys and EKS CIDRs are exactly those `make plan` validated.
"""

from __future__ import annotations

import asyncio
from inspect import isawaitable
from typing import Any, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy.sdfleet_policies import POLICIES

# The marks tools/preview.py writes for values a plan cannot show (unknown, secret); to a policy
# both are unreadable.
from tools.preview import SECRET_MARK, UNKNOWN_MARK


def policy_config(stack_config) -> dict[str, dict[str, Any]]:
    """Per-policy config from the validated stack config (what --policy-pack-config would hold)."""
    if stack_config is None:
        return {}
    platform = stack_config.platform
    config: dict[str, dict[str, Any]] = {
        "gpu-node-budget": {"maxGpuNodes": platform.limits.max_gpu_nodes},
        "cost-labels": {"requiredKeys": sorted(platform.labels)},
    }
    if platform.aws is not None:
        config["eks-endpoint-restricted"] = {"allowedCidrs": list(platform.aws.cluster.public_access_cidrs)}
    return config


def _engine_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _engine_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_engine_value(v) for v in value]
    if value in (UNKNOWN_MARK, SECRET_MARK):
        return UNKNOWN_STRING_VALUE
    return value


def _props(inputs: dict) -> Any:
    return unknown_checking_proxy(_engine_value(inputs))


def _provider_urn(ref: Optional[str]) -> Optional[str]:
    # A provider reference is "<urn>::<id>"; URNs themselves contain "::".
    return ref.rsplit("::", 1)[0] if ref else None


def _options(registration) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None,
                                 aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                 additional_secret_outputs=[], parent=registration.parent)


def _level(policy) -> EnforcementLevel:
    level = policy.enforcement_level or EnforcementLevel.MANDATORY
    # As in CrossGuard: a remediation that still reports is a mandatory violation.
    return EnforcementLevel.MANDATORY if level == EnforcementLevel.REMEDIATE else level


def _run(validate, args, on_violation) -> Optional[str]:
    """Call one validation; the reason it could not run, if any (None: it ran)."""
    try:
        result = validate(args, on_violation)
        if isawaitable(result):
            asyncio.run(result)
    except UnknownValueError as exc:
        return f"can't run during preview: {exc.message}"
    except _NotApplicableError:
        return ""
    return None


def evaluate(result, stack_config=None, policies=None) -> tuple[list[dict], list[dict]]:
    """(violations, evaluated) for a tools.preview.PlanResult.

    violations: {"policy", "level", "resource" (URN, or the stack), "message"};
    evaluated: {"policy", "level", "description"} for every enabled policy.
    """
    policies = POLICIES if policies is None else policies
    config = policy_config(stack_config)
    stack_urn = f"stack:{result.stack}"
    registrations = [r for r in result.resources if r.type != "pulumi:pulumi:Stack"]
    props = {r.urn: _props(r.inputs) for r in registrations}
    providers = {r.urn: PolicyProviderResource(r.type, props[r.urn], r.urn, r.name)
                 for r in registrations if r.type.startswith("pulumi:providers:")}

    violations: list[dict] = []
    evaluated: list[dict] = []

    for policy in policies:
        level = _level(policy)
        if level == EnforcementLevel.DISABLED:
            continue
        evaluated.append({"policy": policy.name, "level": level.value,
                          "description": policy.description})

        def report(message: str, urn: Optional[str] = None, *, _resource: str = stack_urn,
                   _policy=policy, _level=level) -> None:
            violations.append({"policy": _policy.name, "level": _level.value,
                               "resource": urn or _resource, "message": message})

        def cannot_run(reason: str, resource: str, _policy=policy) -> None:
            # CrossGuard reports these as advisory diagnostics, never as blocking.
            violations.append({"policy": _policy.name, "level": EnforcementLevel.ADVISORY.value,
                               "resource": resource, "message": reason})

        policy_config_ = config.get(policy.name)
        if isinstance(policy, ResourceValidationPolicy):
            for r in registrations:
                args = ResourceValidationArgs(
                    r.type, props[r.urn], r.urn, r.name, _options(r),
                    providers.get(_provider_urn(r.provider)), policy_config_, {})
                # Resource policies always report against the resource they validate.
                reason = _run(policy.validate, args,
                              lambda msg, _urn=None, _r=r.urn: report(msg, _r))
                if reason:
                    cannot_run(reason, r.urn)
        elif isinstance(policy, StackValidationPolicy):
            args = StackValidationArgs(_stack_resources(registrations, props, providers),
                                       policy_config_, {})
            reason = _run(policy.validate, args, report)
            if reason:
                cannot_run(reason, stack_urn)
    return violations, evaluated


def _stack_resources(registrations, props, providers) -> list[PolicyResource]:
    """PolicyResources with parents and dependencies linked, as AnalyzeStack links them."""
    by_urn = {r.urn: PolicyResource(r.type, props[r.urn], r.urn, r.name, _options(r),
                                    providers.get(_provider_urn(r.provider)), None, [], {})
              for r in registrations}
    for r in registrations:
        resource = by_urn[r.urn]
        if r.parent in by_urn:
            resource.parent = by_urn[r.parent]
        resource.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
        resource.property_dependencies = {
            prop: [by_urn[d] for d in urns if d in by_urn]
            for prop, urns in getattr(r, "property_dependencies", {}).items()}
    return list(by_urn.values())
