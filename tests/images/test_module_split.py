"""The supervisor supervises processes; the Agones lifecycle is apart.

Both read as one file before: a change to Ready/Health/Shutdown meant reading restart logic.
These checks fail if the lifecycle (or a call into the SDK sidecar) moves back.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "images" / "webui" / "sdfleet_webui"
SDK_CALLS = {"ready", "health", "shutdown", "set_annotation", "gameserver"}


def _tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / name).read_text())


def test_supervisor_makes_no_agones_sdk_call():
    tree = _tree("supervisor.py")
    classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    assert "AgonesLifecycle" not in classes
    calls = {n.func.attr for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "sdk"}
    assert not calls & SDK_CALLS, f"supervisor.py calls the Agones SDK: {sorted(calls)}"


def test_lifecycle_only_reads_supervisor_state():
    """The lifecycle thread never assigns to the supervisor's attributes."""
    tree = _tree("agones_lifecycle.py")
    assert any(isinstance(n, ast.ClassDef) and n.name == "AgonesLifecycle" for n in tree.body)
    writes = [ast.unparse(t) for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AugAssign))
              for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
              if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
              and t.value.id in ("s", "supervisor")]
    assert not writes, f"the Agones lifecycle changes supervisor state: {writes}"
