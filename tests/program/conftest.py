"""Run the real Pulumi program under the recording mock engine (tools/preview.py)."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from tests.stacks import stack_config
from tools.preview import SECRET_MARK, UNKNOWN_MARK, PlanResult, read_stack_config, run_program


def unresolved_paths(value: Any, path: str = "") -> list[str]:
    """Where a value is still unknown: in update mode that means an apply never ran."""
    if value == UNKNOWN_MARK:
        return [path or "(root)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in unresolved_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unresolved_paths(v, f"{path}[{i}]")]
    return []


def assert_all_resolved(result: PlanResult) -> None:
    """Fail when any registered input or stack output never resolved."""
    assert not result.preview, "only update mode resolves every value"
    problems = [f"{r.type} {r.name}{p}" for r in result.resources
                for p in unresolved_paths(r.inputs)]
    problems += [f"output {p}" for p in unresolved_paths(result.outputs)]
    assert not problems, "values that never resolved:\n" + "\n".join(problems)


@pytest.fixture(scope="session")
def dev_config() -> dict:
    """The base config of most program tests: one fleet, as stacks were before profiles
    (planned as stack `dev`); profile tests read Pulumi.dev.yaml itself (`profiles_config`)."""
    return stack_config("single-profile")


@pytest.fixture(scope="session")
def profiles_config() -> dict:
    """Pulumi.dev.yaml as shipped: two profiles."""
    return read_stack_config("dev")


@pytest.fixture
def platform_of(dev_config) -> Callable[..., dict]:
    """A deep copy of the dev stack's config with `sdfleet:platform` changed by `edit`."""
    def make(edit: Callable[[dict], None] | None = None, **provider) -> dict:
        config = copy.deepcopy(dev_config)
        if edit:
            edit(config["sdfleet:platform"])
        config.update(provider)
        return config
    return make


_cache: dict[tuple[str, bool], PlanResult] = {}


@pytest.fixture
def plan() -> Callable[..., PlanResult]:
    """Run the program with a config; results of identical runs are shared within a session."""
    def run(config: dict, preview: bool = False, stack: str = "dev") -> PlanResult:
        key = (json.dumps(config, sort_keys=True) + stack, preview)
        if key not in _cache:
            _cache[key] = run_program(config, stack=stack, preview=preview)
        return _cache[key]
    return run


@pytest.fixture(params=[True, False], ids=["preview", "update"])
def dev_plan(request, plan, dev_config) -> PlanResult:
    return plan(dev_config, preview=request.param)


@pytest.fixture
def dev_update(plan, dev_config) -> PlanResult:
    result = plan(dev_config, preview=False)
    assert_all_resolved(result)
    return result


__all__ = ["assert_all_resolved", "unresolved_paths", "SECRET_MARK", "UNKNOWN_MARK"]
