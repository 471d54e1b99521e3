"""Every deployable's modules import without a circle, and each folder imports only from below.

A circle is found on the import statements themselves, lazy ones inside functions included (a
lazy import hides a circle from Python, not from the reader); imports under `if TYPE_CHECKING:`
never run and are not counted. Each deployable is read from the folder it is shipped from, so
`shared.state` in a Cloud Function and `sdfleet_webui.supervisor` in the WebUI image resolve as
they do in the archive or image.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (source root, the top-level names whose modules are the deployable's own): what `sys.path`
# holds when the deployable runs.
DEPLOYABLES = {
    "the Pulumi program, tools and test support": (ROOT, ("components", "tools", "policy", "testing",
                                                          "benchmarks")),
    "the policy pack as published": (ROOT / "policy", ("sdfleet_policies",)),
    "the allocator function": (ROOT / "functions", ("allocator", "shared")),
    "the culler function": (ROOT / "functions", ("culler", "shared")),
    "the submit Lambda": (ROOT / "functions" / "submit", ("sdfleet_submit", "handler")),
    "the WebUI image": (ROOT / "images" / "webui", ("sdfleet_webui",)),
    "the router image": (ROOT / "images" / "router", ("sdfleet_router",)),
    "the queue agent image": (ROOT / "images" / "queue-agent", ("sdfleet_agent",)),
}

# Which repository folder may import which: a folder imports only the folders listed for it.
# The policy pack is published alone to the Pulumi service, so it imports nothing of ours;
# `testing` (emulators, harnesses) serves the tests, the benchmarks and `make demo`.
MAY_IMPORT = {
    "components": {"components"},
    "policy": {"policy"},
    "testing": {"testing"},
    "tools": {"tools", "components", "policy", "testing"},
    "benchmarks": {"benchmarks", "testing", "tools", "components", "policy"},
}

# Inside components/, from the bottom: the registries (accelerators, frameworks, images), the
# stack config, the cloud-neutral cluster layer; each cloud's layer may use all of these but
# not the other cloud.
_BOTTOM = {"components.registries", "components.images", "components.env_names"}
COMPONENT_LAYERS = {
    "components.registries": {"components.registries"},
    "components.images": {"components.registries"},
    "components.env_names": set(),
    "components.config": {"components.config"} | _BOTTOM,
    "components.k8s": {"components.k8s", "components.config"} | _BOTTOM,
    "components.gcp": {"components.gcp", "components.k8s", "components.config"} | _BOTTOM,
    "components.aws": {"components.aws", "components.k8s", "components.config"} | _BOTTOM,
}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def module_files(root: Path, tops: tuple[str, ...]) -> dict[str, Path]:
    """Module name -> file, for the deployable's own modules under `root`."""
    found: dict[str, Path] = {}
    for top in tops:
        if (root / f"{top}.py").is_file():
            found[top] = root / f"{top}.py"
            continue
        folder = root / top
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            # A function's folder is its archive's root: its files are top-level modules there.
            if not (folder / "__init__.py").is_file():
                parts = parts[1:]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts:
                found[".".join(parts)] = path
    return found


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) for each of the deployable's own modules this one imports, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
                       for alias in node.names]
        found += [(node.lineno, t) for t in targets if t in known and t != name]
    return found


def import_graph(root: Path, tops: tuple[str, ...]) -> dict[str, list[tuple[int, str]]]:
    known = module_files(root, tops)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def circles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for _, w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


@pytest.mark.parametrize("deployable", sorted(DEPLOYABLES))
def test_no_import_circle(deployable):
    root, tops = DEPLOYABLES[deployable]
    graph = import_graph(root, tops)
    assert len(graph) >= 3, f"the walk found the modules of {deployable}"
    assert sum(len(edges) for edges in graph.values()) >= 2, "and their imports"
    found = circles(graph)
    described = ["  " + " -> ".join(group) + "\n" + "\n".join(
        f"    {a} imports {b} (line {line})" for a in group for line, b in graph[a] if b in group)
        for group in found]
    assert not found, f"import circles in {deployable}:\n" + "\n".join(described)


def test_each_folder_imports_only_from_below():
    graph = import_graph(*DEPLOYABLES["the Pulumi program, tools and test support"])
    upward = [f"{a} imports {b} (line {line})" for a, edges in graph.items() for line, b in edges
              if b.split(".")[0] not in MAY_IMPORT[a.split(".")[0]]]
    upward += [f"{a} imports {b} (line {line})" for a, edges in graph.items() for line, b in edges
               if _layer(a) in COMPONENT_LAYERS and b.startswith("components.")
               and _layer(b) not in COMPONENT_LAYERS[_layer(a)]]
    assert {_layer(m) for m in graph if m.startswith("components.")} <= set(COMPONENT_LAYERS) | {
        "components.preflight"}, "every folder of components/ has its place in COMPONENT_LAYERS"
    upward = sorted(set(upward))
    assert not upward, "imports from a higher folder:\n" + "\n".join(upward)


def test_the_checks_see_a_lazy_circle_and_a_relative_one(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (package / "c.py").write_text("from .a import x\nfrom typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from pkg import b\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.c"] == [(1, "pkg.a")], "the TYPE_CHECKING import is not counted"
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
