"""Fixtures and helpers shared by tests/program/test_aws_*.py (the `cloud: aws` stack)."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable, Iterator

import pytest

from tests.program.conftest import assert_all_resolved
from tools.preview import PlanResult, Registration, read_stack_config

STACK = "aws-dev"


@pytest.fixture(scope="session")
def aws_config() -> dict:
    return read_stack_config(STACK)


@pytest.fixture
def aws_config_of(aws_config) -> Callable[..., dict]:
    """A deep copy of aws-dev's config with `sdfleet:platform` changed by `edit`."""
    def make(edit: Callable[[dict], None] | None = None) -> dict:
        config = copy.deepcopy(aws_config)
        if edit:
            edit(config["sdfleet:platform"])
        return config
    return make


@pytest.fixture(params=[True, False], ids=["preview", "update"])
def aws_plan(request, plan, aws_config) -> PlanResult:
    return plan(aws_config, preview=request.param, stack=STACK)


@pytest.fixture
def aws_update(plan, aws_config) -> PlanResult:
    result = plan(aws_config, preview=False, stack=STACK)
    assert_all_resolved(result)
    return result


def policy_documents(result: PlanResult) -> Iterator[tuple[Registration, str, dict]]:
    """(resource, input key, parsed document) for every IAM-style policy in the inputs."""
    for r in result.resources:
        for key in ("policy", "assumeRolePolicy", "redrivePolicy"):
            value = r.inputs.get(key)
            if isinstance(value, str) and value.startswith("{") and "Statement" in value:
                yield r, key, json.loads(value)


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}
