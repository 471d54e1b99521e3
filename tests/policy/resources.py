"""Synthetic plans for policy tests: Registrations as tools/preview.py records them."""

from __future__ import annotations

from typing import Optional

from tools import policy_check
from tools.preview import UNKNOWN_MARK, PlanResult, Registration

STACK = "test"


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::sdfleet::{type_}::{name}"


def res(type_: str, name: str, inputs: dict, *, deps: Optional[list[Registration]] = None,
        provider: Optional[Registration] = None) -> Registration:
    return Registration(urn=urn(type_, name), type=type_, name=name, parent=None, inputs=inputs,
                        provider=f"{provider.urn}::{UNKNOWN_MARK}" if provider else None,
                        custom=True, dependencies=[d.urn for d in deps or []])


def plan(*resources: Registration) -> PlanResult:
    return PlanResult(stack=STACK, preview=True, resources=list(resources), outputs={})


def violations(policy: str, *resources: Registration, stack_config=None) -> list[dict]:
    """The violations one policy reports for these resources (any level)."""
    found, evaluated = policy_check.evaluate(plan(*resources), stack_config)
    assert policy in {e["policy"] for e in evaluated}, f"{policy} was not evaluated"
    return [v for v in found if v["policy"] == policy]
