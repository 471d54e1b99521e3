"""Every third-party module the allocator and culler import is pinned in the archive's
requirements.txt (functions/requirements.txt, packaged by components/gcp/functions.py).

The tests run with the whole dev venv, where a module pulled in for another area imports
fine; the deployed function has only what its requirements.txt installs. `jwt` (PyJWT) was
imported by functions/shared/verifier.py and installed by nothing the functions pin: both
functions would have failed at cold start.
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
# The functions' own modules: each function's files sit at its archive's root, beside shared/.
LOCAL = {"shared"} | {p.stem for p in FUNCTIONS.glob("*/*.py")}


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (FUNCTIONS / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize("function", ["allocator", "culler"])
def test_every_imported_distribution_is_pinned(function):
    modules = (_imports(FUNCTIONS / function) | _imports(FUNCTIONS / "shared")) - LOCAL
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}
    owners = packages_distributions()
    pinned = _pinned()
    missing = {m: owners.get(m) for m in third_party
               if not any(d.lower().replace("_", "-") in pinned for d in owners.get(m, []))}
    assert not missing, f"imported but not in functions/requirements.txt: {missing}"
