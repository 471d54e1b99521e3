"""The structure of components/, checked on the source (AST), not on a plan: the in-cluster layer is cloud-neutral, pod conventions have one home, components take
one args object each, and only the config loader reads `pulumi.Config`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "components"
K8S = COMPONENTS / "k8s"
PODS = K8S / "pods.py"
LOADER = COMPONENTS / "config" / "loader.py"
CLOUD_PACKAGES = ("components.gcp", "components.aws")


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imported_modules(module: ast.Module) -> list[tuple[int, str]]:
    """Every module an import statement names (at any depth, lazy imports too)."""
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_the_cluster_layer_imports_no_cloud_layer():
    offending = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in modules(K8S) for line, name in imported_modules(tree(path))
                 if name in CLOUD_PACKAGES or name.startswith(tuple(p + "." for p in CLOUD_PACKAGES))
]
    assert len(modules(K8S)) >= 8  # the walk saw the package
    assert not offending, "components/k8s must stay cloud-neutral:\n" + "\n".join(offending)


def test_the_import_check_sees_a_lazy_import():
    sample = ast.parse("def f():\n    from components.gcp.node_pools import POOL_LABEL\n")
    assert (2, "components.gcp.node_pools") in imported_modules(sample)


def dict_keys(node: ast.Dict) -> set[str]:
    return {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}


# What only components/k8s/pods.py spells out: a toleration, a security context's fields, the
# pool label, the GPU resource name, the images' interpreter.
def pod_convention_literals(module: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.Dict):
            keys = dict_keys(node)
            if {"operator", "effect"} <= keys:
                found.append((node.lineno, "a toleration"))
            for key in ("allowPrivilegeEscalation", "seccompProfile", "capabilities"):
                if key in keys:
                    found.append((node.lineno, f"a security context ({key})"))
        elif isinstance(node, ast.Constant) and node.value in (
                "sdfleet.dev/pool", "nvidia.com/gpu", "/opt/sdfleet/venv/bin/python"):
            found.append((node.lineno, repr(node.value)))
    return found


def test_pod_conventions_have_one_home():
    offending = [f"{path.relative_to(ROOT)}:{line}: {what}"
                 for path in modules(COMPONENTS) if path != PODS
                 for line, what in pod_convention_literals(tree(path))]
    assert pod_convention_literals(tree(PODS)), "pods.py itself defines them"
    assert not offending, ("spelled out outside components/k8s/pods.py (take it from there, or "
                           "let the cloud layer pass it as a Taint/NodePlacement):\n"
                           + "\n".join(offending))


# --- One args object per component ----------------------------------------------
MAX_PARAMS = 4
NOT_COUNTED = {"self", "name", "resource_name", "opts"}


def constructor_params() -> dict[str, int]:
    """class -> parameters of its __init__ besides self/name/opts (*args and **kwargs count)."""
    out = {}
    for path in modules(COMPONENTS):
        for node in ast.walk(tree(path)):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    a = item.args
                    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                    count = len([n for n in names if n not in NOT_COUNTED])
                    count += bool(a.vararg) + bool(a.kwarg)
                    out[f"{path.relative_to(ROOT)}:{node.name}"] = count
    return out


def test_components_take_at_most_four_constructor_parameters():
    counts = constructor_params()
    assert len(counts) >= 30  # every component class was seen
    assert counts["components/k8s/batch.py:RuntimeWorkload"] == 1
    too_many = {k: v for k, v in counts.items() if v > MAX_PARAMS}
    assert not too_many, f"more than {MAX_PARAMS} parameters (use one args object): {too_many}"


def test_every_component_takes_one_args_object():
    """A ComponentResource's constructor is (name, args, opts): adding an input is a field of
    its args dataclass, never a new positional parameter at every call site."""
    found = {}
    for path in modules(COMPONENTS):
        for node in ast.walk(tree(path)):
            if not (isinstance(node, ast.ClassDef)
                    and any("ComponentResource" in ast.unparse(b) for b in node.bases)):
                continue
            init = next((i for i in node.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None)
            if init is not None:
                a = init.args
                found[f"{path.relative_to(ROOT)}:{node.name}"] = [
                    x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in NOT_COUNTED]
    assert len(found) >= 30
    # One input besides name and opts: its args dataclass (the platforms: the stack config).
    wrong = {k: v for k, v in found.items() if len(v) != 1}
    assert not wrong, f"components not taking one args object: {wrong}"


def reads_pulumi_config(module: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(module):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "Config"
                    and isinstance(func.value, ast.Name) and func.value.id == "pulumi") or \
                    (isinstance(func, ast.Name) and func.id == "Config"):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "pulumi.runtime.config":
            lines.append(node.lineno)
    return lines


def test_only_the_config_loader_reads_pulumi_config():
    assert reads_pulumi_config(tree(LOADER)), "the loader is where config is read"
    offending = [f"{path.relative_to(ROOT)}:{line}" for path in modules(COMPONENTS)
                 if path != LOADER for line in reads_pulumi_config(tree(path))]
    assert not offending, ("pulumi.Config read outside components/config/loader.py (read it "
                           "once there and pass the value in): " + ", ".join(offending))


@pytest.mark.parametrize("source, expected", [
    ("import pulumi\npulumi.Config('sdfleet').get_secret('x')\n", [2]),
    ("from pulumi import Config\nConfig('gcp')\n", [2]),
    ("import pulumi\npulumi.export('a', 1)\n", []),
])
def test_the_config_check_sees_each_spelling(source, expected):
    assert reads_pulumi_config(ast.parse(source)) == expected
