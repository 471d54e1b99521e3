"""No import circles among the image programs' modules, lazy (function-level) imports
included: each module can be read on its own, and a change to one never needs its importer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "images/webui/sdfleet_webui", ROOT / "images/queue-agent/sdfleet_agent",
            ROOT / "functions/shared"]


def _graph(package: Path) -> dict[str, set[str]]:
    graph = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        needs = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    needs.add(node.module.split(".")[0])
                else:
                    needs.update(alias.name for alias in node.names)
            # TYPE_CHECKING-only imports are not run: left out
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.level == 1 and inner.module:
                        needs.discard(inner.module.split(".")[0])
        graph[path.stem] = needs
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
            if state.get(nxt) is None and nxt in graph:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None:
            found = visit(start, [start])
            if found:
                return found
    return None


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_import_circles(package):
    assert _cycle(_graph(package)) is None, _cycle(_graph(package))


def test_the_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
