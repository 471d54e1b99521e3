"""Loads an import-free module of a deployed program by path: its `env.py` (the names of the
variables it reads) or its `metrics.py` (the log lines its metrics count).

Each program keeps such a list in one small module that imports nothing; the Pulumi program
sets variables by those names and defines metrics on those lines, so neither can drift from
what the program does. Loaded by path: the programs' packages are not installed where the
Pulumi program runs, and one small file costs nothing against the `make plan` budget.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_import_free(relative_path: str) -> ModuleType:
    """The module at `relative_path` (from the repository root), loaded on its own."""
    path = ROOT / relative_path
    name = "sdfleet_env_" + relative_path.replace("/", "_").replace("-", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
