"""Every deployable's code imports with only what it ships: its own requirements, on its own Python.

The development venv holds every program's dependencies at once, so a program that imports a
package only another program's requirements list passes every test and fails at start in its
image or function (ComfyUI crash-looped on a missing `requests` this way). Here each
deployable gets a venv of its own, made from its requirements file alone with the Python its
image or runtime runs, and every module of exactly what its image or archive holds is imported
there, from a folder laid out as the image or archive lays it out.

Venvs are cached by their inputs (interpreter version, requirements text) under
~/.cache/sdfleet/venvs, so an unchanged deployable is not installed again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.image_builds.test_requirements_resolve import CACHE, DEPLOYABLES, ROOT, interpreter

VENVS = CACHE.parent / "venvs"


def _package(folder: str) -> Callable[[], dict[str, Path]]:
    """The files of one package folder, at the archive path the image copies them to."""
    def layout() -> dict[str, Path]:
        base = ROOT / folder
        return {f"{base.name}/{p.relative_to(base).as_posix()}": p for p in sorted(base.rglob("*.py"))
                if "__pycache__" not in p.parts}
    return layout


def _function(name: str) -> Callable[[], dict[str, Path]]:
    """A Cloud Function's archive as the stack uploads it (the function's folder and shared/)."""
    def layout() -> dict[str, Path]:
        from components.gcp.functions import _source_files
        return {arc: path for arc, path in _source_files(name).items() if arc.endswith(".py")}
    return layout


def _submit() -> dict[str, Path]:
    """The submit Lambda's archive (its entry point and package; dependencies from the venv)."""
    base = ROOT / "functions/submit"
    files = {"handler.py": base / "handler.py"}
    files.update(_package("functions/submit/sdfleet_submit")())
    return files


@functools.cache
def _plan(stack: str):
    from tools.preview import read_stack_config, run_program
    return run_program(read_stack_config(stack), stack=stack, preview=False)


def _function_env(name: str) -> Callable[[], dict[str, str]]:
    """The variables the dev stack gives the function (its secret as a placeholder): a
    function reads its settings at import, as Cloud Functions starts it."""
    def env() -> dict[str, str]:
        (function,) = [f for f in _plan("dev").of_type("gcp:cloudfunctionsv2/function:Function")
                       if f.name.endswith(f"-{name}")]
        service = function.inputs["serviceConfig"]
        values = dict(service["environmentVariables"])
        values.update({s["key"]: "placeholder" for s in service.get("secretEnvironmentVariables", [])})
        return values
    return env


def _lambda_env() -> dict[str, str]:
    """The variables the aws-dev stack gives the submit Lambda."""
    from tools.preview import read_stack_config
    (function,) = _plan("aws-dev").of_type("aws:lambda/function:Function")
    region = read_stack_config("aws-dev")["aws:region"]
    # The runtime's own reserved variables (Lambda docs, "Defined runtime environment variables").
    return {**function.inputs["environment"]["variables"],
            "AWS_REGION": region, "AWS_DEFAULT_REGION": region}


@dataclass(frozen=True)
class Shipped:
    label: str
    deployable: str                        # a name in test_requirements_resolve.DEPLOYABLES
    layout: Callable[[], dict[str, Path]]  # archive path -> file
    env: Callable[[], dict[str, str]] = dict   # what the platform sets before the code starts


SHIPPED = [
    Shipped("webui-image", "webui", _package("images/webui/sdfleet_webui")),
    Shipped("router-image", "router-verifier", _package("images/router/sdfleet_router")),
    Shipped("queue-agent-image", "queue-agent", _package("images/queue-agent/sdfleet_agent")),
    Shipped("allocator-function", "functions", _function("allocator"), _function_env("allocator")),
    Shipped("culler-function", "functions", _function("culler"), _function_env("culler")),
    Shipped("submit-lambda", "submit", _submit, _lambda_env),
]


def own_venv(name: str, python: str, requirements: str) -> Path:
    """A venv with exactly `requirements` on `python`, made once per (version, text)."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(json.dumps([version, requirements]).encode()).hexdigest()[:16]
    venv = VENVS / f"{name}-{key}"
    if (venv / ".complete").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    (venv / "requirements.txt").write_text(requirements)
    proc = subprocess.run([str(venv / "bin/python"), "-m", "pip", "--isolated", "install", "--quiet",
                           "--disable-pip-version-check", "-r", str(venv / "requirements.txt")],
                          capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.fail(f"{name}: its requirements did not install on Python {version}:\n{proc.stderr[-3000:]}")
    (venv / ".complete").write_text(version)
    return venv


def modules(layout: dict[str, Path]) -> list[str]:
    names = []
    for arc in layout:
        parts = arc[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.append(".".join(parts))
    return sorted(names)


IMPORT_ALL = """
import importlib, json, sys, traceback
sys.path.insert(0, sys.argv[1])
failed = {}
for name in json.loads(sys.argv[2]):
    try:
        importlib.import_module(name)
    except BaseException as err:
        failed[name] = traceback.format_exception_only(type(err), err)[-1].strip()
print(json.dumps(failed))
"""


def import_everything(venv: Path, layout: dict[str, Path], folder: Path,
                      platform_env: dict[str, str] | None = None) -> dict[str, str]:
    for arc, path in layout.items():
        target = folder / arc
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(platform_env or {})
    # -I: neither this checkout nor the user's site-packages leak onto sys.path.
    proc = subprocess.run([str(venv / "bin/python"), "-I", "-c", IMPORT_ALL, str(folder),
                           json.dumps(modules(layout))],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("shipped", SHIPPED, ids=[s.label for s in SHIPPED])
def test_every_shipped_module_imports_with_only_its_own_requirements(shipped, tmp_path):
    deployable = next(d for d in DEPLOYABLES if d.name == shipped.deployable)
    venv = own_venv(deployable.name, interpreter(deployable.python),
                    (ROOT / deployable.requirements).read_text())
    layout = shipped.layout()
    assert layout, shipped
    failed = import_everything(venv, layout, tmp_path / "shipped", shipped.env())
    assert not failed, (f"{deployable.name} on Python {deployable.python} with only "
                        f"{deployable.requirements}: {failed}")


def test_a_module_that_needs_an_unlisted_package_is_caught(tmp_path):
    """The guard's own fault: a shipped module importing a package its requirements lack."""
    deployable = next(d for d in DEPLOYABLES if d.name == "router-verifier")
    venv = own_venv(deployable.name, interpreter(deployable.python),
                    (ROOT / deployable.requirements).read_text())
    extra = tmp_path / "needs_boto3.py"
    extra.write_text("import boto3\n")
    failed = import_everything(venv, {"needs_boto3.py": extra}, tmp_path / "shipped")
    assert "needs_boto3" in failed and "boto3" in failed["needs_boto3"]
