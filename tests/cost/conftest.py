"""Plans of the real program (tools/preview.py, mock engine) for the cost estimate.

Every stack here goes through the same path as `make plan`: the stack file's config, validated
by the config models (tools/plan.py `_validate`), then the program run under mocks. The
estimate then prices what the program registered.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable, Optional

import pytest

from tests.stacks import stack_config as stack_file_config
from tools.plan import _validate
from tools.preview import PlanResult, run_program

_cache: dict[str, tuple[PlanResult, Any]] = {}


def planned(stack: str = "single-profile", edit: Optional[Callable[[dict], None]] = None
            ) -> tuple[PlanResult, Any]:
    """(plan, validated stack config) of a stack file, its platform changed by `edit`
    (`single-profile`: a one-fleet stack, planned as `dev`)."""
    config = copy.deepcopy(stack_file_config(stack))
    stack = "dev" if stack == "single-profile" else stack
    if edit:
        edit(config["sdfleet:platform"])
    key = stack + json.dumps(config, sort_keys=True)
    if key not in _cache:
        stack_config = _validate(stack, config)
        _cache[key] = (run_program(config, stack=stack, preview=True), stack_config)
    return _cache[key]


@pytest.fixture
def plan_of() -> Callable[..., tuple[PlanResult, Any]]:
    return planned
