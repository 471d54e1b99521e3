"""Modules copied between separately built images stay identical.

Each image under images/ is built from its own folder (its Dockerfile COPYs only from there),
so a module two images need is kept as one copy per image. These tests are what makes such a
copy safe: change one copy without the other and they fail. The module docstring may say which
image it is in; everything else (imports, functions, their docstrings) must match exactly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each entry: the copies of one module, first one is the reference.
SHARED_COPIES = [
    ("images/webui/sdfleet_webui/signals.py", "images/queue-agent/sdfleet_agent/signals.py"),
]


def code_without_module_docstring(path: Path) -> str:
    """The module's syntax tree, minus its module docstring, as comparable text."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return ast.dump(ast.Module(body=body, type_ignores=[]), include_attributes=False)


@pytest.mark.parametrize("copies", SHARED_COPIES, ids=lambda c: Path(c[0]).name)
def test_copies_of_a_shared_module_are_identical(copies):
    reference, *others = (ROOT / path for path in copies)
    expected = code_without_module_docstring(reference)
    for other in others:
        assert code_without_module_docstring(other) == expected, (
            f"{other.relative_to(ROOT)} differs from {reference.relative_to(ROOT)}: "
            "change both copies together")


def test_the_comparison_sees_a_changed_copy(tmp_path):
    """A one-token change in a copy is a difference (the check is not vacuous)."""
    reference = ROOT / SHARED_COPIES[0][0]
    changed = tmp_path / "signals.py"
    changed.write_text(reference.read_text(encoding="utf-8").replace("(signal.SIGTERM, signal.SIGINT)",
                                                                      "(signal.SIGTERM,)"),
                       encoding="utf-8")
    assert changed.read_text(encoding="utf-8") != reference.read_text(encoding="utf-8")
    assert code_without_module_docstring(changed) != code_without_module_docstring(reference)
