"""One hand-off from the stack to the functions: every environment name the stack sets on a
function comes from functions/shared/env.py, and every name there is read by the functions."""

from __future__ import annotations

import re
from pathlib import Path

from shared import env

ROOT = Path(__file__).resolve().parents[2]
NAMES = {k: v for k, v in vars(env).items() if k.isupper() and isinstance(v, str)}


def test_the_stack_sets_function_env_only_through_env_py():
    source = (ROOT / "components/gcp/functions.py").read_text()
    literal = set(re.findall(r'"([A-Z][A-Z0-9_]{3,})"\s*:', source))
    # the IAM settle wait is the local Command's, not a function's
    assert literal <= {"SDFLEET_SETTLE_SECONDS"}, literal
    assert "FUNCTIONS_ENV." in source


def test_every_name_is_read_by_the_functions():
    code = "\n".join(p.read_text() for p in (ROOT / "functions").rglob("*.py")
                     if p.name != "env.py" and "vendor" not in p.parts)
    unread = [k for k in NAMES if not re.search(rf"\b(names|env)\.{k}\b|import[^\n]*\b{k}\b", code)]
    assert not unread, unread
